// HTTPS policy fetch through libcurl, RFC 8461 §3.3, implementing
// policy::PolicyFetcher:
//   https://mta-sts.<domain>/.well-known/mta-sts.txt, HTTPS only, "MUST NOT
//   follow HTTP redirects", only HTTP 200, Content-Type text/plain
//   (parameters allowed), no HTTP caching, SNI, certificate verified with the
//   §4.2 name rule (SAN dNSName only, no partial wildcards), 64 KiB cap
//   enforced while receiving, connects only to the addresses given
//   (CURLOPT_RESOLVE), proxy environment ignored unless a proxy is configured.
#pragma once

#include <string>

#include "policy/sources.h"

namespace mtasts::policy::net {

struct CurlFetcherConfig {
  long timeout_seconds = 60;  // whole transfer; RFC 8461 §3.3 suggests a minute
  long connect_timeout_seconds = 10;
  std::string ca_file;  // empty: the system trust store
  std::string proxy;    // empty: never use a proxy
  int port = 443;       // tests only
};

class CurlFetcher final : public PolicyFetcher {
 public:
  explicit CurlFetcher(CurlFetcherConfig config);
  ~CurlFetcher() override;

  Result<FetchedBody, FetchError> fetch(const std::string& policy_domain,
                                        std::span<const std::string> addresses) override;

 private:
  CurlFetcherConfig config_;
};

}  // namespace mtasts::policy::net
