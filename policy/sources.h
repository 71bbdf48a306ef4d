// The interfaces the resolution engine needs from the outside world. The
// engine (resolver.h) sees only these; policy/net and store/ implement them,
// tests implement fakes. All implementations must be thread-safe: the engine
// calls them from many threads at once, never while holding its own lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "policy/policy.h"
#include "policy/probe.h"
#include "policy/result.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

using Deadline = std::chrono::steady_clock::time_point;

// DNSSEC view of an answer (RFC 4033 §5): kept apart everywhere.
enum class DnsSecurity { Secure, Insecure, Bogus };
std::string_view to_string(DnsSecurity security);  // "secure" | "insecure" | "bogus"

enum class DnsStatus {
  Ok,        // records present
  NxDomain,  // name does not exist
  NoData,    // name exists, no records of the type
  ServFail,  // upstream failure (includes a validation failure reported as SERVFAIL)
  Timeout,   // deadline reached or resolver gave up
};
std::string_view to_string(DnsStatus status);

struct DnsAnswer {
  DnsStatus status = DnsStatus::ServFail;
  DnsSecurity security = DnsSecurity::Insecure;
  std::vector<std::string> records;  // TXT: character-strings joined; A/AAAA: text addresses
  std::string why_bogus;             // resolver's explanation when Bogus
  std::uint32_t ttl = 0;             // seconds the answer may be reused (0: do not reuse)
};

class Dns {
 public:
  virtual ~Dns() = default;
  // TXT records of `name` (an A-label FQDN without trailing dot).
  virtual DnsAnswer lookup_txt(const std::string& name, Deadline deadline) = 0;
  // A and AAAA records of `name`, IPv4 first.
  virtual DnsAnswer lookup_addresses(const std::string& name, Deadline deadline) = 0;
};

// Why a policy fetch failed: the RFC 8460 type (StsPolicyFetchError or
// StsWebpkiInvalid) and a stable reason code ("http-404", "redirect",
// "content-type", "too-large", "timeout", "connect", "tls-handshake", "cert-expired",
// "cert-untrusted", "cert-host-mismatch", ...).
struct FetchError {
  ResultType type = ResultType::StsPolicyFetchError;
  std::string reason;
  std::string detail;
  // May go away by itself (timeouts, resets, 5xx, 429, local TLS setup):
  // with no cached policy the answer is "unknown", never "no policy".
  bool temporary = false;
};

struct FetchedBody {
  std::string body;  // at most kMaxPolicyBytes
};

class PolicyFetcher {
 public:
  virtual ~PolicyFetcher() = default;
  // GET https://mta-sts.<policy_domain>/.well-known/mta-sts.txt, connecting
  // only to `addresses` (from our own DNS lookup). Blocks up to the fetcher's
  // own timeout (not the caller's decision deadline).
  virtual Result<FetchedBody, FetchError> fetch(const std::string& policy_domain,
                                                std::span<const std::string> addresses) = 0;
};

// What the store keeps for one domain. `raw` is authoritative; `policy` is
// re-parsed from it on load.
struct StoredPolicy {
  std::string domain;
  std::string txt_id;
  std::string raw;
  Policy policy;
  std::int64_t fetched_at = 0;    // unix seconds
  std::int64_t expires_at = 0;    // fetched_at + max_age
  std::int64_t last_checked = 0;  // last TXT id check
  std::int64_t last_used = 0;
  DnsSecurity dnssec = DnsSecurity::Insecure;
  std::string last_error;  // "" or "<result-type>:<reason>"
};

// A remembered fetch failure, for the 5-minute back-off per (domain, id).
struct FetchFailure {
  std::string domain;
  std::string txt_id;
  std::int64_t failed_at = 0;
  std::int64_t retry_at = 0;
  ResultType type = ResultType::StsPolicyFetchError;
  std::string reason;
  bool temporary = false;  // as the failure was found (FetchError::temporary)
};

// The usage columns of one stored policy: what touch() writes.
struct PolicyUse {
  std::string domain;
  std::int64_t last_checked = 0;
  std::int64_t last_used = 0;
  std::string last_error;
};

// When a stored policy was fetched, how long it may be kept and when it was
// last used: what the refresher needs to pick the policies that are due,
// without loading them.
struct RefreshSlot {
  std::string domain;
  std::int64_t fetched_at = 0;
  std::int64_t max_age = 0;
  std::int64_t expires_at = 0;
  std::int64_t last_used = 0;
};

class PolicyStore {
 public:
  virtual ~PolicyStore() = default;
  // nullopt when absent or when the stored raw text no longer parses (logged).
  virtual std::optional<StoredPolicy> load(const std::string& domain) = 0;
  // Errors (disk full, read-only) are values: the store logs them (at most once
  // per 10 s per operation and code); the engine goes on without a second line.
  virtual Result<bool> save(const StoredPolicy& policy) = 0;
  // Updates last_checked / last_used / last_error only.
  virtual Result<bool> touch(const std::string& domain, std::int64_t last_checked, std::int64_t last_used,
                             const std::string& last_error) = 0;
  // touch() for many policies in one transaction (the resolver's flush of
  // its memory cache: 100,000 rows take well under a second, not minutes).
  virtual Result<bool> touch_all(std::span<const PolicyUse> uses) = 0;
  virtual Result<bool> forget(const std::string& domain) = 0;
  // Deletes every policy whose expires_at <= now, in one statement: a policy
  // saved meanwhile with a fresh expiry is never touched. True when any went.
  virtual Result<bool> forget_expired(std::int64_t now) = 0;
  virtual std::vector<StoredPolicy> list() = 0;
  // The domains whose slot `due` accepts, without loading any policy, so a
  // refresher pass over 100,000 rows holds names only. An unreadable store
  // gives an empty list (logged).
  virtual std::vector<std::string> domains_due(const std::function<bool(const RefreshSlot&)>& due) = 0;
  virtual std::optional<FetchFailure> load_failure(const std::string& domain) = 0;
  virtual Result<bool> save_failure(const FetchFailure& failure) = 0;
  virtual Result<bool> clear_failure(const std::string& domain) = 0;
};

// One MX record (RFC 5321 §5.1). `host` is an A-label without trailing dot;
// the null MX (RFC 7505: a single record, preference 0, host ".") is reported
// as null_mx with no records; a "." target anywhere else stays as host "".
struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;
};

struct MxAnswer {
  DnsStatus status = DnsStatus::ServFail;
  DnsSecurity security = DnsSecurity::Insecure;
  std::vector<MxRecord> records;  // sorted by preference, then host
  bool null_mx = false;           // RFC 7505: the domain accepts no mail
  std::uint32_t ttl = 0;          // seconds the answer may be reused (0: do not reuse)
};

struct TlsaAnswer {
  DnsStatus status = DnsStatus::ServFail;
  DnsSecurity security = DnsSecurity::Insecure;
  std::vector<TlsaRecord> records;
  std::uint32_t ttl = 0;  // seconds the answer may be reused (0: do not reuse)
};

// DNS for next-hop checks (issue: the milter): MX and TLSA. Kept apart from
// Dns so the policy-resolution fakes stay small.
class MxDns {
 public:
  virtual ~MxDns() = default;
  virtual MxAnswer lookup_mx(const std::string& domain, Deadline deadline) = 0;
  // TLSA of _PORT._tcp.HOST (RFC 7672 §3).
  virtual TlsaAnswer lookup_tlsa(const std::string& host, std::uint16_t port, Deadline deadline) = 0;
  virtual DnsAnswer lookup_host_addresses(const std::string& host, Deadline deadline) = 0;
};

// STARTTLS probing of one (host, address). Blocks up to the request's step
// timeouts. Thread-safe.
class TlsProber {
 public:
  virtual ~TlsProber() = default;
  virtual ProbeResult probe(const ProbeRequest& request) = 0;
};

// Wall-clock time in unix seconds; injectable so expiry, back-off and refresh
// are tested without waiting.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now() const = 0;
};

// Durable storage of aggregates (store/tlsrpt_store.h). add() adds the
// sessions to the stored counts, all or nothing: an error means nothing of
// the batch was written. Thread-safe.
class TlsrptStore {
 public:
  virtual ~TlsrptStore() = default;
  virtual Result<bool> add(const std::vector<TlsrptAggregate>& batch) = 0;
};

}  // namespace mtasts::policy
