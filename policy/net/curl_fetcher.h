// HTTPS policy fetch through libcurl, RFC 8461 §3.3, implementing
// policy::PolicyFetcher:
//   https://mta-sts.<domain>/.well-known/mta-sts.txt, HTTPS only, "MUST NOT
//   follow HTTP redirects", only HTTP 200, Content-Type text/plain
//   (parameters allowed), no HTTP caching, SNI, certificate verified with the
//   §4.2 name rule (SAN dNSName only, no partial wildcards), 64 KiB cap
//   enforced while receiving, connects only to the addresses given
//   (CURLOPT_RESOLVE), proxy environment ignored unless a proxy is configured.
#pragma once

#include <memory>
#include <string>

#include "policy/sources.h"

namespace mtasts::policy::net {

class SharedTrustStore;  // policy/net/trust_anchors.h

struct CurlFetcherConfig {
  long timeout_seconds = 60;  // whole transfer; RFC 8461 §3.3 suggests a minute
  long connect_timeout_seconds = 10;
  std::string ca_file;  // empty: the system trust store
  std::string proxy;    // empty: never use a proxy
  int port = 443;       // tests only
};

// The trust anchors are read once, when the fetcher is made, into one
// certificate store that every fetch's TLS context shares (OpenSSL's
// X509_STORE is reference-counted and thread-safe): parsing the system
// bundle costs about 20 ms of CPU, which libcurl would otherwise spend on
// every fetch. A changed CA file takes effect on restart or reload.
class CurlFetcher final : public PolicyFetcher {
 public:
  // Throws std::runtime_error when the CA file (or the system store) cannot be read.
  explicit CurlFetcher(CurlFetcherConfig config);
  ~CurlFetcher() override;
  CurlFetcher(const CurlFetcher&) = delete;
  CurlFetcher& operator=(const CurlFetcher&) = delete;

  Result<FetchedBody, FetchError> fetch(const std::string& policy_domain,
                                        std::span<const std::string> addresses) override;

 private:
  CurlFetcherConfig config_;
  std::unique_ptr<SharedTrustStore> trust_;
};

}  // namespace mtasts::policy::net
