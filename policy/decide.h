// The decision for one (message, recipient domain): a pure function of the
// facts gathered by the engine. RFC 8461 §4.1 (MX matching), §4.2 (certificate
// checks), §5 (policy application: "enforce" ... MUST NOT deliver to hosts
// that fail; "testing" ... deliver and report), §5.1 (control flow), RFC 7672
// (DANE takes precedence for hosts with secure TLSA), RFC 8460 §4.3 (result
// types). No I/O, no clock: everything it needs is in DecisionFacts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/probe.h"
#include "policy/resolution.h"
#include "policy/sources.h"

namespace mtasts::policy {

enum class Outcome {
  Pass,     // deliver: no policy, mode none, or a verified matching host
  Fail,     // a policy failure (result_type says which)
  Unknown,  // deadline or temporary error: not enough facts to pass or fail
};
std::string_view to_string(Outcome outcome);  // "pass" | "fail" | "unknown"

// The `tls=` log key.
enum class TlsStatus {
  Verified,    // WebPKI verified (§4.2)
  Dane,        // DANE verified (RFC 7672)
  NotProbed,   // probing switched off: the verdict rests on MX matching alone
  Failed,      // probes completed and failed
  Unverified,  // no probe completed (unreachable, deadline) or no candidate
  None,        // no TLS requirement applied (no policy, mode none)
};
std::string_view to_string(
    TlsStatus status);  // "verified" | "dane" | "not-probed" | "failed" | "unverified" | "none"

// How the MTA will route the message (from {rcpt_host} / {rcpt_mailer}).
enum class NextHopKind {
  RecipientDomain,  // MX lookup of the recipient domain
  SmartHost,        // a relay ("[relay.example]:587", or an MX-looked-up relay name)
  Unknown,          // no macros (non-SMTP submission): decided at end of message
};

// One candidate host in preference order, with what we learnt about it.
struct CandidateFacts {
  std::string host;  // A-label, no trailing dot; "" for an IP literal
  std::uint16_t preference = 0;
  bool matches_policy = false;  // §4.1 against the policy's mx patterns
  bool tlsa_bogus = false;      // its TLSA lookup was DNSSEC-bogus (RFC 7672 §2.1)
  // Filled by the DANE check outside a binding policy only: the host has a
  // DNSSEC-secure, usable TLSA RRset, so DANE governs it (RFC 7672 §2.2).
  bool dane = false;
  std::vector<ProbeResult> probes;  // one per address tried, in order; empty: not probed
};

// RFC 7672 applied on its own, where no enforce policy binds: the MX hosts
// in preference order as the MTA would try them, looked at until one is
// deliverable. A host without usable secure TLSA is deliverable by
// opportunistic TLS, so the walk stops there without a probe.
struct DaneFacts {
  // The MX RRset (or the proof that there is none, for the implicit MX) was
  // DNSSEC-secure. Otherwise the host names are not trusted and DANE does
  // not apply (our reading of RFC 7672 §2.2.1, as Postfix's "dane" level).
  bool mx_secure = false;
  std::vector<CandidateFacts> hosts;  // those looked at, in preference order
  bool hosts_left = false;            // more MX hosts than were looked at (max_hosts)
  bool deadline_passed = false;
};

struct DecisionFacts {
  Resolution resolution;  // the policy (or none) for the policy domain
  NextHopKind next_hop = NextHopKind::RecipientDomain;
  // MX lookup of the recipient domain (RecipientDomain only).
  DnsStatus mx_status = DnsStatus::Ok;
  DnsSecurity mx_security = DnsSecurity::Insecure;
  bool null_mx = false;
  std::vector<CandidateFacts> candidates;  // preference order; for a smart host: the relay
  bool probing_enabled = true;
  bool deadline_passed = false;  // facts are incomplete: the budget ran out
  // Set when DANE was checked outside a binding (enforce) policy.
  std::optional<DaneFacts> dane;
};

// What RFC 7672 alone says of the next hop (decide_dane below).
struct DaneVerdict {
  Outcome outcome = Outcome::Pass;
  // pass: "dane-verified" | "no-tlsa" (the host tried first has no usable
  // secure TLSA) | "mx-insecure" (DANE does not apply) | "no-candidates";
  // fail: the first DANE failure ("tlsa-invalid", "tlsa-bogus", ...);
  // unknown: "deadline" | "mx-unreachable" | "tlsa-lookup-failed" | "overloaded".
  std::string reason;
  std::optional<ResultType> result_type;  // for Fail
  std::string mx;                         // the host that passed, or the first that failed
};

struct Verdict {
  Outcome outcome = Outcome::Pass;
  std::optional<Mode> mode;               // the policy's mode; nullopt: no policy
  std::optional<ResultType> result_type;  // for Fail, and for recorded discovery errors
  std::string reason;                     // stable code (see decide.cpp)
  TlsStatus tls = TlsStatus::None;
  std::string mx;  // the host that verified, or the first that failed
  // Candidates dropped because no policy pattern matches them (§4.1): each
  // is recorded as validation-failure / mx-not-in-policy.
  std::vector<std::string> mx_not_in_policy;
  // Fail only: the failure is one the server calls temporary (ProbeResult::temporary).
  bool temporary = false;
  std::optional<DaneVerdict> dane;  // from DecisionFacts::dane, when it was checked
};

// Decides. Rules (first that applies):
//  1. no policy (or mode none)           -> Pass (discovery errors carried for reporting);
//     deadline passed with no policy known -> Unknown
//  2. MX lookup failed (servfail/timeout/bogus) -> Unknown, reason "mx-lookup-<status>"
//  3. null MX                             -> Pass, reason "null-mx" (the MTA bounces it anyway)
//  4. no candidate matches the policy     -> Fail, validation-failure, "mx-not-in-policy"
//  5. probing off                          -> Pass, tls not-probed
//  6. a matching candidate verified (WebPKI or DANE) -> Pass, mx = that host
//  7. some matching candidate failed TLS   -> Fail with the most preferred failure's type
//     (a DANE failure -- tlsa-invalid, dnssec-invalid -- is never rescued by WebPKI)
//  8. otherwise (all unreachable, deadline) -> Unknown, tls unverified
// Testing vs enforce does not change the Verdict; the milter maps it to an action.
// With facts.dane set, verdict.dane = decide_dane(*facts.dane).
Verdict decide(const DecisionFacts& facts);

// RFC 7672 on its own, over the hosts in preference order:
//  1. MX RRset not secure                 -> Pass "mx-insecure" (DANE does not apply)
//  2. the first host that is deliverable   -> Pass: no usable secure TLSA ("no-tlsa")
//     or DANE verified ("dane-verified"); a DANE failure or an unreachable
//     host moves on to the next, as the MTA does
//  3. no host deliverable, one failed DANE -> Fail with the most preferred failure
//  4. otherwise                            -> Unknown (deadline, unreachable, lookup failed)
// Never a Fail while a host was not looked at (deadline, max_hosts): Unknown.
DaneVerdict decide_dane(const DaneFacts& facts);

// RFC 7672 §2.1.1, §3.1.3: only DANE-TA(2) and DANE-EE(3) with a known
// selector (0, 1) and matching type (0, 1, 2) are usable for SMTP; a host whose
// secure TLSA RRset has no usable record is treated as having none, so the
// MTA-STS (WebPKI) check applies to it.
std::vector<TlsaRecord> usable_tlsa(const std::vector<TlsaRecord>& records);

}  // namespace mtasts::policy
