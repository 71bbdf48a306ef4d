// The policy resolution engine: RFC 8461 §3.3 (fetching), §5.1 (policy
// application control flow) and §8.1 (refresh, cache replacement).
// Sees only sources.h. Thread-safe: one Resolver serves every caller; no I/O
// happens under its lock; concurrent requests for one domain share one
// TXT-check-and-fetch (single-flight).
// TLSRPT (RFC 8460 §4.3.2.2): with a sink set, every HTTPS policy fetch that
// actually runs and fails (discovery or background refresh) is one failed
// "sts" session (sts-policy-fetch-error / sts-webpki-invalid /
// sts-policy-invalid with the reason code); a back-off replay is not, nor a
// failed TXT lookup (no fetch was attempted).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "policy/engine/worker_pool.h"
#include "policy/resolution.h"
#include "policy/sources.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

struct ResolverConfig {
  std::int64_t txt_recheck_interval = 60;  // s; re-check the TXT id on use after this
  std::int64_t fetch_backoff = 300;        // s; per (domain, id) after a failed fetch (>= 300)
  std::int64_t refresh_interval = 86400;   // s; background HTTPS refetch, jittered
  // s; a policy not used for this long is no longer refreshed and lapses at
  // its own expiry (45 days: monthly mail stays protected)
  std::int64_t refresh_unused_for = 45 * 86400;
  std::size_t memory_cache_entries = 100000;  // bounded LRU in front of the store
  // Domains whose fetch back-off is also held in memory (fetch_backoff.h),
  // so it holds when the store cannot be written or read.
  std::size_t backoff_entries = 10000;
  std::chrono::milliseconds dns_timeout{5000};  // per lookup inside a discovery job
  // Discoveries in flight at once (queued or running on the worker pool). A
  // flood of new domains beyond this is answered at once as "overloaded" (a
  // temporary error: the cached policy if any, else unknown).
  std::size_t max_jobs = 512;
};

class Resolver {
 public:
  // Discoveries run on `pool` (shared with probes and refresh; it must
  // outlive the resolver), or on a pool of the resolver's own when null.
  Resolver(Dns& dns, PolicyFetcher& fetcher, PolicyStore& store, const Clock& clock, ResolverConfig config,
           WorkerPool* pool = nullptr);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves the policy for a normalised domain. Returns by `deadline` at the
  // latest; work still running then (a slow fetch) goes on in the background
  // and fills the cache, and this call answers {temporary, reason "deadline"}
  // (or the cached policy as Stale when one is known). With max_jobs
  // discoveries already running, a new one is not started: the same answer
  // with reason "overloaded", at once.
  Resolution resolve(const std::string& domain, Deadline deadline);

  // One pass of the background refresher (§8.1 "senders SHOULD ... refresh"):
  // re-fetches over HTTPS, regardless of the TXT id, every cached policy whose
  // refresh time has come (daily with jitter, and before half of max_age)
  // and that was used within refresh_unused_for (`force`: used or not).
  // Never a policy past its expiry (§5.1: it is not used, so not revived):
  // those are deleted from the store. Never a policy whose TXT record is
  // gone (§8.3: it applies until it expires, and a refetch under the old id
  // would extend it for ever).
  // Logs failed refreshes (except for mode none) and downgrades at warning.
  // Returns the number of policies re-fetched successfully.
  // `stop`, when given, is asked before each domain: a pass over many due
  // policies with slow servers must not hold up a shutdown.
  int refresh_due(bool force = false, const std::function<bool()>& stop = {});

  // Writes batched last_used updates to the store.
  void flush();

  // Waits for background fetches to finish (shutdown, tests).
  void wait_idle();
  // As wait_idle, giving up at `deadline`: true when idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline);

  // Where TLSRPT sessions go; nullptr (the default) records nothing. Set it
  // before the first resolve(); the sink must outlive the resolver.
  void set_tlsrpt_sink(TlsrptSink* sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
