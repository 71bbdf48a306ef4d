// Gathers the facts about one recipient's next hop and decides (decide.h):
// (DANE outside a binding policy: RFC 7672 §2.2, see DaneFacts in decide.h;
// a bracketed relay is left to the MTA's own TLS policy for it.)
// RFC 8461 §3.4 (the policy domain is the recipient domain, or the smart
// host's domain; never a parent domain), §4.1 (MX matching), §4.2-4.3
// (STARTTLS with a valid certificate), RFC 7672 (DANE for hosts with secure
// TLSA), RFC 7505 (null MX), RFC 5321 §5.1 (no MX: the address record).
// Sees only sources.h and the Resolver. Thread-safe; no I/O under its lock.
// Probes are cached per (host, address, port) -- success longer than
// failure -- and concurrent recipients share one probe (single-flight).
// TLSRPT (RFC 8460 §4.1, §4.4): with a sink set, every probe that actually
// runs is one session (cache hits and joined probes are not): Verified and
// DaneVerified count as successes, TlsFailure as a failure with its result
// type, Unreachable as nothing (no TLS was attempted). policy-type is "tlsa"
// for DANE probes, "sts" otherwise. Failures found without a probe (an MX
// host outside the policy, a bogus TLSA answer) are recorded once per
// (policy domain, host) per probe_failure_ttl, as a probe would be.
// Readings (RFC 8460 §4.4 "policy-type": "the type of policy that was
// applied", "tlsa", "sts" or "no-policy-found"): a domain with no policy in
// force (none found, or mode none, which RFC 8461 §5 treats "as though it
// does not have any active policy") gets DANE probes only, recorded as
// "tlsa"; its other hosts are not probed, so nothing is recorded for them,
// and nothing is ever recorded as "sts" under mode none. We record no
// "no-policy-found" successes: one would count a TLS negotiation nobody
// saw (the MTA's own session is its to report), and probing every host of
// every such domain to count them would cost a probe per recipient domain
// and let anyone who can make the MTA mail arbitrary domains fill the
// store. "no-policy-found" comes from discovery failures (resolver.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "policy/decide.h"
#include "policy/engine/resolver.h"
#include "policy/sources.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

struct NextHopCheckerConfig {
  bool probing_enabled = true;
  std::string ehlo_name = "localhost";
  std::chrono::milliseconds probe_step_timeout{10000};
  std::int64_t probe_success_ttl = 3600;   // s
  std::int64_t probe_failure_ttl = 300;    // s (also for unreachable hosts)
  std::size_t max_hosts = 5;               // matching MX hosts probed at most
  std::size_t max_addresses_per_host = 2;  // addresses probed per host at most
  std::size_t max_parallel_probes = 512;   // ProbeCacheConfig::max_jobs
  // RFC 7672 on its own: look up TLSA and probe DANE hosts for every
  // recipient domain no enforce policy covers (no policy, none, testing),
  // filling DecisionFacts::dane. Off: DANE only for hosts of a policy.
  bool dane_outside_policy = true;
};

// What the MTA will do with one recipient (from the milter's route).
struct NextHop {
  std::string recipient_domain;  // normalised
  NextHopKind kind = NextHopKind::RecipientDomain;
  std::string relay_host;        // SmartHost: host name ("" when an IP literal)
  std::string relay_address;     // SmartHost given as an IP literal
  bool relay_mx_lookup = false;  // SmartHost not bracketed: MX of relay_host
  std::uint16_t port = 25;
};

struct CheckResult {
  std::string policy_domain;  // whose policy applied (recipient or relay domain)
  DecisionFacts facts;
  Verdict verdict;
};

class NextHopChecker {
 public:
  // Probes run on `pool` (shared with the resolver; it must outlive the
  // checker), or on a pool of the checker's own when null. The next hops of
  // domains with a known policy are looked up in `known_policy_dns` (a DNS
  // context of their own, out of reach of a burst of lookups at arbitrary
  // domains), or in `dns` when null; all others in `dns`.
  NextHopChecker(Resolver& resolver, MxDns& dns, TlsProber& prober, const Clock& clock,
                 NextHopCheckerConfig config, WorkerPool* pool = nullptr, MxDns* known_policy_dns = nullptr);
  ~NextHopChecker();
  NextHopChecker(const NextHopChecker&) = delete;
  NextHopChecker& operator=(const NextHopChecker&) = delete;

  // Returns by `deadline`; probes still running then go on in the background
  // and fill the probe cache for the retry (facts.deadline_passed is set).
  CheckResult check(const NextHop& next_hop, Deadline deadline);

  // Waits for background probes (shutdown, tests).
  void wait_idle();
  // As wait_idle, giving up at `deadline`: true when idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline);

  // Where TLSRPT sessions go; nullptr (the default) records nothing. Set it
  // before the first check(); the sink must outlive the checker.
  void set_tlsrpt_sink(TlsrptSink* sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy
