// The policy resolution engine: RFC 8461 §3.3 (fetching), §5.1 (policy
// application control flow) and §8.1 (refresh, cache replacement).
// Sees only sources.h. Thread-safe: one Resolver serves every caller; no I/O
// happens under its lock; concurrent requests for one domain share one
// TXT-check-and-fetch (single-flight).
//
// TLSRPT (RFC 8460 §4.3.2.2, §4.4; RFC 8461 §6 reports MTA-STS failures
// through it), with a sink set: every discovery step that actually runs
// and fails is one failed session with no MX host: a `_mta-sts` TXT lookup
// of a discovery, and an HTTPS policy fetch (discovery or background
// refresh). A back-off replay, an answer from memory, a success, a missing
// TXT record (NXDOMAIN, NODATA, no "v=STSv1" record) and the refresher's
// own TXT lookup (no delivery waits on it; the next discovery records the
// failure) are none. Equal sessions of a (domain, UTC day, reason) become
// one aggregate with a count in the buffer (tlsrpt_buffer.h), so a broken
// domain costs one row a day, not one per message, and the buffer bounds
// the memory that many distinct domains take.
//
//   situation                        result-type (§4.3.2.2)  failure-reason-code
//   TXT SERVFAIL                     sts-policy-fetch-error  txt-servfail
//   TXT timeout                      sts-policy-fetch-error  txt-timeout
//   TXT answer DNSSEC-bogus          sts-policy-fetch-error  txt-dnssec-bogus
//   two or more v=STSv1 records      sts-policy-invalid      txt-multiple-records
//   the one v=STSv1 record invalid   sts-policy-invalid      txt-syntax
//   policy fetch failed              the fetcher's type      its reason ("http-404", ...)
//
// Readings, where the RFCs leave room:
// - Result type. §4.3.2.2 gives "sts-policy-fetch-error" for "a failure to
//   retrieve an MTA-STS policy, for example, because the policy host is
//   unreachable": a TXT answer we could not get (SERVFAIL, timeout, bogus)
//   is such a failure; the DNSSEC-specific "dnssec-invalid" of §4.3.2.1
//   belongs to DANE (TLSA) policies. "sts-policy-invalid" is "a validation
//   error for the overall MTA-STS Policy": RFC 8461 §3 publishes a policy
//   in two parts (TXT record and policy file), so a TXT record that breaks
//   RFC 8461 §3.1 (more than one "v=STSv1" record, bad syntax) is a
//   validation error of the overall policy, which the domain owner fixes
//   in the zone, not at the policy host.
// - Policy type (§4.4 "policy-type": "the type of policy that was applied",
//   one of "tlsa", "sts", "no-policy-found"):
//   * a cached sts policy of mode testing or enforce is in force (§5.1 of
//     RFC 8461 keeps applying it when discovery fails): the failure belongs
//     to it: "sts" with its policy-string and mx-host, next to the probe
//     sessions that go on under it;
//   * no policy in force (nothing cached, or a cached mode none, which RFC
//     8461 §5 says to treat "as though it does not have any active
//     policy"), a TXT answer we could not get (SERVFAIL, timeout, bogus):
//     not recorded. It is as often our own resolver's outage or trust
//     anchor as the domain's, and with no policy there are no successes to
//     set it against: one outage would tell every domain we mail that all
//     its sessions failed;
//   * no policy in force, the published TXT record itself is wrong (two
//     "v=STSv1" records, bad syntax): "no-policy-found". RFC 8461 §3 says a
//     policy's "presence and current version are indicated by a TXT record",
//     and §3.1 that with no single valid record senders "MUST assume the
//     recipient domain does not have an available MTA-STS Policy": no
//     policy was applied, and the sts-* result type with its txt-* code
//     tells the owner why none was found (the shape of
//     tlsrpt_no_policy_attributes in policy/socketmap.h, for Postfix);
//   * no policy in force, a valid TXT record announced one and its fetch
//     failed: "sts" without policy-string and mx-host (the announced policy,
//     whose text we do not have; large senders report
//     sts-policy-fetch-error this way).
// - A refresh that fails under a cached mode none policy is not recorded:
//   RFC 8461 §8.3 makes mode none the first step of an opt-out, after which
//   the policy host goes away, and asks senders "to distinguish clearly
//   between failures indicative of attacks and those indicative of such
//   opt-outs". A discovery under it that sees a new TXT id and fails to
//   fetch is recorded ("sts", above): the owner published a new policy.
// - A missing TXT record with a cached policy is the §8.3 opt-out too (the
//   policy applies until it expires): not a failure.
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

  // Policies held in memory now (the status line of systemd, metrics).
  std::size_t policies_in_memory() const;

  // Waits for background fetches to finish (shutdown, tests).
  void wait_idle();
  // As wait_idle, giving up at `deadline`: true when idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline);

  // Where TLSRPT sessions go; nullptr (the default) records nothing. Set it
  // before the first resolve(); the sink must outlive the resolver.
  void set_tlsrpt_sink(TlsrptSink* sink);

 private:
  Resolution resolve_uncounted(const std::string& domain, Deadline deadline);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
