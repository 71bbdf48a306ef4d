// Remembered STARTTLS probe results (RFC 8461 §4.2, RFC 7672) per
// (host, address, port, DANE or WebPKI), so a busy sender does not probe an
// MX host for every recipient. A success is kept longer than a failure (an
// unreachable or failing host is retried sooner). Concurrent callers for one
// key share one in-flight probe (single flight) on the engine's worker pool,
// so a caller can give up at its deadline while the probe finishes and
// fills the cache for the retry.
// Thread-safe; the prober is never called under the cache's lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "policy/engine/worker_pool.h"
#include "policy/probe.h"
#include "policy/sources.h"

namespace mtasts::policy {

struct ProbeCacheConfig {
  std::int64_t success_ttl = 3600;  // s: Verified / DaneVerified
  std::int64_t failure_ttl = 300;   // s: TlsFailure / Unreachable
  std::size_t max_entries = 50000;  // expired entries are dropped beyond this
  // Probes in flight at once (queued or running on the pool). Beyond this a
  // new probe is not started: the host is answered unverified ("overloaded",
  // not cached), so an enforce policy tempfails rather than approving an
  // unchecked host.
  std::size_t max_jobs = 512;
};

class ProbeCache {
 public:
  // `prober`, `clock` and `pool` must outlive the cache; null `pool`: the
  // cache runs probes on a pool of its own.
  ProbeCache(TlsProber& prober, const Clock& clock, ProbeCacheConfig config, WorkerPool* pool = nullptr);
  ~ProbeCache();  // waits for running probes
  ProbeCache(const ProbeCache&) = delete;
  ProbeCache& operator=(const ProbeCache&) = delete;

  // Called on the probe's worker once a probe started by this call has
  // finished (even when the caller gave up at its deadline); never for a
  // cache hit nor for a caller that joined a running probe: one call per
  // probe that actually ran (RFC 8460 §4.1, one session). Exceptions it
  // throws are caught and logged.
  using OnProbed = std::function<void(const ProbeRequest&, const ProbeResult&)>;

  // Which policy domain's mail a result decides (RFC 8460 sessions, README
  // "TLSRPT records"). probe() sets `first` when this is the first time
  // within the result's lifetime that it decides mail of `policy_domain`,
  // and the probe was not started by this call (on_probed reports those).
  // Kept with the cached entry under the cache's one lock, so a warm
  // decision takes no lock of its own for it; at most kMaxDomainsPerEntry
  // domains per entry are remembered (beyond, `first` stays false).
  struct Use {
    std::string_view policy_domain;
    bool first = false;
  };
  static constexpr std::size_t kMaxDomainsPerEntry = 10000;

  // The fresh cached result for the request's key, or the result of a probe
  // (started now or already running). nullopt when `deadline` passes first;
  // the probe then goes on and its result is cached.
  std::optional<ProbeResult> probe(const ProbeRequest& request, Deadline deadline, OnProbed on_probed = {},
                                   Use* use = nullptr);

  // Waits until no probe is running (shutdown, tests).
  void wait_idle();
  // As wait_idle, giving up at `deadline`: true when idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
