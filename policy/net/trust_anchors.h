// Trust anchors for the TLS clients of policy/net (the policy fetcher's
// shared store, the prober's context), loaded once, before any thread uses
// them. Internal to policy/net.
#pragma once

#include <openssl/x509_vfy.h>

#include <string>
#include <string_view>

namespace mtasts::policy::net {

// Loads `ca_file`, or the system store as its one bundle file (Debian's,
// which update-ca-certificates keeps beside the hashed folder; the folder
// only when the bundle cannot be read), into `store`. Then fills every
// anchor's extension cache: OpenSSL 3.0 fills it on first use behind a flag
// it tests without a lock, so concurrent verifications against one anchor
// raced there (TSan, CurlFetcherTest.ConcurrentFetchesShareOneFetcher and
// TlsProberTest.ConcurrentProbesShareOneProber); filled now, the caches are
// only read afterwards. False when nothing could be loaded.
bool load_trust_anchors(X509_STORE* store, const std::string& ca_file);

// One X509_STORE of anchors (load_trust_anchors), shared read-only by every
// TLS connection of its owner (the policy fetcher, the report poster):
// libcurl would otherwise parse the CA bundle again for every connection.
// An intermediate in the file may anchor a chain (as libcurl's own stores).
class SharedTrustStore {
 public:
  // `what` names the file in errors ("HTTPS CA file"). Throws
  // std::runtime_error with one sentence when ca_file is set but cannot be
  // read, or when no certificate could be loaded.
  SharedTrustStore(const std::string& ca_file, std::string_view what);
  ~SharedTrustStore();
  SharedTrustStore(const SharedTrustStore&) = delete;
  SharedTrustStore& operator=(const SharedTrustStore&) = delete;

  X509_STORE* get() const { return store_; }

 private:
  X509_STORE* store_;
};

}  // namespace mtasts::policy::net
