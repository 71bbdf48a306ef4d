// Trust anchors for the TLS clients of policy/net (the policy fetcher's
// shared store, the prober's context), loaded once, before any thread uses
// them. Internal to policy/net.
#pragma once

#include <openssl/x509_vfy.h>

#include <string>

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

}  // namespace mtasts::policy::net
