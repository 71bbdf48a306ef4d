// Remembered STARTTLS probe results (RFC 8461 §4.2, RFC 7672) per
// (host, address, port, DANE or WebPKI), so a busy sender does not probe an
// MX host for every recipient. A success is kept longer than a failure (an
// unreachable or failing host is retried sooner). Concurrent callers for one
// key share one in-flight probe (single-flight); each probe runs on its own
// thread, so a caller can give up at its deadline while the probe finishes
// and fills the cache for the retry.
// Thread-safe; the prober is never called under the cache's lock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "policy/probe.h"
#include "policy/sources.h"

namespace mtasts::policy {

struct ProbeCacheConfig {
  std::int64_t success_ttl = 3600;  // s: Verified / DaneVerified
  std::int64_t failure_ttl = 300;   // s: TlsFailure / Unreachable
  std::size_t max_entries = 50000;  // expired entries are dropped beyond this
};

class ProbeCache {
 public:
  // `prober` and `clock` must outlive the cache.
  ProbeCache(TlsProber& prober, const Clock& clock, ProbeCacheConfig config);
  ~ProbeCache();  // waits for running probes
  ProbeCache(const ProbeCache&) = delete;
  ProbeCache& operator=(const ProbeCache&) = delete;

  // The fresh cached result for the request's key, or the result of a probe
  // (started now or already running). nullopt when `deadline` passes first;
  // the probe then goes on and its result is cached.
  std::optional<ProbeResult> probe(const ProbeRequest& request, Deadline deadline);

  // Waits until no probe is running (shutdown, tests).
  void wait_idle();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
