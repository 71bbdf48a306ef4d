// The policy resolution engine. RFC 8461:
//  §3.3 "senders SHOULD ... fetch a new policy" only when the TXT id changed;
//       a fetch failure with a cached policy keeps the cached one;
//  §5.1 policy application control flow (no TXT with a valid cached policy:
//       keep using it until it expires);
//  §8.1 "the sender SHOULD ... refresh ... periodically" and keep the cache
//       until a new policy is successfully fetched.
// Why the shape: every network step runs in a per-domain job (single-flight)
// outside the lock, so a caller can give up at its deadline while the job
// finishes and fills the cache for the retry.
#include "policy/engine/resolver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "policy/engine/fetch_backoff.h"
#include "policy/engine/lock_guarded.h"
#include "policy/engine/memory_cache.h"
#include "policy/engine/metrics.h"
#include "policy/engine/refusal_log.h"
#include "policy/engine/single_flight.h"
#include "policy/engine/worker_pool.h"
#include "policy/reason.h"
#include "policy/txt_record.h"

namespace mtasts::policy {

namespace {

// What the `_mta-sts` TXT lookup told us.
struct TxtOutcome {
  enum class Kind { Id, NoRecord, Invalid, Error } kind = Kind::NoRecord;
  std::string id;
  std::string reason;  // for Invalid and Error: the Resolution's reason
  DnsSecurity security = DnsSecurity::Insecure;
  bool temporary = false;  // Error: may go away by itself (and may be an attacker)
  // Invalid and Error: the TLSRPT failure (resolver.h, Readings), its
  // failure-reason-code named after the TXT stage ("txt-servfail") so that a
  // report tells it apart from the same DNS failure at the policy host.
  ResultType report_type = ResultType::StsPolicyFetchError;
  std::string report_reason;
};

// A DNS failure (SERVFAIL, timeout, bogus) says nothing about the policy:
// it is temporary, so it never becomes a definite "no policy" (§5.1).
TxtOutcome txt_error(TxtOutcome out, std::string_view why, std::string_view report_reason) {
  out.kind = TxtOutcome::Kind::Error;
  out.reason = why;
  out.temporary = true;
  out.report_type = ResultType::StsPolicyFetchError;
  out.report_reason = report_reason;
  return out;
}

TxtOutcome classify_txt(const DnsAnswer& answer) {
  TxtOutcome out;
  out.security = answer.security;
  if (answer.security == DnsSecurity::Bogus) {
    return txt_error(out, reason::kDnssecBogus, "txt-dnssec-bogus");
  }
  switch (answer.status) {
    case DnsStatus::NxDomain:
    case DnsStatus::NoData:
      out.kind = TxtOutcome::Kind::NoRecord;
      return out;
    case DnsStatus::ServFail:
      return txt_error(out, reason::kDnsServfail, "txt-servfail");
    case DnsStatus::Timeout:
      return txt_error(out, reason::kDnsTimeout, "txt-timeout");
    case DnsStatus::Ok:
      break;
  }
  const auto parsed = parse_txt_rrset(answer.records);
  if (parsed) {
    out.kind = TxtOutcome::Kind::Id;
    out.id = parsed->id;
  } else if (parsed.error().code == "no-record") {
    out.kind = TxtOutcome::Kind::NoRecord;
  } else {
    // "txt-multiple-records", "txt-syntax": the published record itself is
    // wrong, whatever the network does (RFC 8460 §4.3.2.2 sts-policy-invalid).
    out.kind = TxtOutcome::Kind::Invalid;
    out.reason = "txt-" + parsed.error().code;
    out.report_type = ResultType::StsPolicyInvalid;
    out.report_reason = out.reason;
  }
  return out;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

// Where a discovery failed: at the TXT lookup, or at the fetch of a policy
// that a valid TXT record announced.
enum class FailedStep { TxtLookup, PolicyFetch };

// One failed discovery as a TLSRPT session; whose policy it belongs to is
// the Readings of resolver.h.
TlsrptSession discovery_failure(const std::string& domain, FailedStep step, ResultType type,
                                const std::string& why, const std::optional<StoredPolicy>& in_force,
                                std::int64_t now) {
  TlsrptSession s;
  s.at = now;
  s.policy_domain = domain;
  s.result_type = type;
  s.failure_reason_code = why;
  if (in_force && in_force->policy.mode != Mode::None) {
    s.policy_type = "sts";
    s.policy_string = in_force->raw;
    s.mx_patterns = joined(in_force->policy.mx);
  } else {
    s.policy_type = step == FailedStep::PolicyFetch ? "sts" : "no-policy-found";
  }
  return s;
}

// A fetch attempt's outcome: the new policy or the classified failure.
struct FetchOutcome {
  std::optional<StoredPolicy> policy;
  ResultType type = ResultType::StsPolicyFetchError;
  std::string reason;
  bool temporary = false;  // as its source found it (DNS here, FetchError::temporary)
};

FetchOutcome fetch_failed(ResultType type, std::string_view why, bool temporary) {
  FetchOutcome out;
  out.type = type;
  out.reason = why;
  out.temporary = temporary;
  return out;
}

Resolution base_resolution(const std::string& domain, PolicySource source, DnsSecurity dnssec) {
  Resolution r;
  r.domain = domain;
  r.source = source;
  r.dnssec = dnssec;
  return r;
}

Resolution from_policy(const StoredPolicy& policy, PolicySource source) {
  Resolution r = base_resolution(policy.domain, source, policy.dnssec);
  r.txt_id = policy.txt_id;
  r.policy = policy;
  return r;
}

std::string error_text(std::optional<ResultType> type, const std::string& reason) {
  if (reason.empty()) return "";
  return type ? std::string(to_string(*type)) + ":" + reason : reason;
}

std::int64_t jitter_for(const std::string& domain, std::int64_t interval) {
  const auto spread = static_cast<std::size_t>(interval / 8 + 1);
  return static_cast<std::int64_t>(std::hash<std::string>{}(domain) % spread);
}

// Policies refreshed at once by a background pass: enough to keep a large
// cache fresh, few enough to leave the pool to discoveries and probes.
constexpr std::size_t kRefreshesAtOnce = 4;

}  // namespace

struct Resolver::Impl {
  Dns& dns;
  PolicyFetcher& fetcher;
  PolicyStore& store;
  const Clock& clock;
  ResolverConfig config;

  std::atomic<TlsrptSink*> sink{nullptr};
  LockGuarded<MemoryCache> memory;
  LockGuarded<FetchBackoff> backoff;
  RefusalLog refusals;
  std::unique_ptr<WorkerPool> own_pool;  // when no shared pool was given
  // Last: destroyed first, each waiting for its jobs, which use the rest.
  SingleFlight<std::string, bool> refreshes;  // background refresh, a few at a time
  SingleFlight<std::string, Resolution> discoveries;

  Impl(Dns& d, PolicyFetcher& f, PolicyStore& s, const Clock& c, ResolverConfig cfg, WorkerPool* pool)
      : dns(d),
        fetcher(f),
        store(s),
        clock(c),
        config(cfg),
        memory(cfg.memory_cache_entries),
        backoff(cfg.backoff_entries),
        own_pool(pool ? nullptr : std::make_unique<WorkerPool>(private_pool_config(cfg.max_jobs))),
        refreshes(pool ? *pool : *own_pool, kRefreshesAtOnce),
        discoveries(pool ? *pool : *own_pool, cfg.max_jobs) {}

  Deadline dns_deadline() const { return std::chrono::steady_clock::now() + config.dns_timeout; }

  bool usable(const std::optional<StoredPolicy>& p, std::int64_t now) const {
    return p && p->expires_at > now;
  }

  // The answer from memory when the TXT id was checked recently enough.
  std::optional<Resolution> fresh_answer(const std::string& domain, std::int64_t now) {
    return memory.with([&](MemoryCache& m) -> std::optional<Resolution> {
      CacheEntry* entry = m.find(domain);
      if (!entry || now - entry->checked_at >= config.txt_recheck_interval) return std::nullopt;
      if (!entry->policy) return base_resolution(domain, PolicySource::None, DnsSecurity::Insecure);
      if (!usable(entry->policy, now)) return std::nullopt;
      entry->policy->last_used = now;
      m.mark_used(domain);
      Resolution r = from_policy(*entry->policy, entry->stale ? PolicySource::Stale : PolicySource::Cache);
      r.result_type = entry->error_type;
      r.reason = entry->error_reason;
      return r;
    });
  }

  void remark_used(const std::vector<PolicyUse>& uses) {
    memory.with([&](MemoryCache& m) {
      for (const auto& use : uses) m.mark_used(use.domain);
    });
  }

  bool in_memory(const std::string& domain) {
    return memory.with([&](MemoryCache& m) { return m.find(domain) != nullptr; });
  }

  // Brings a stored policy into memory after a restart or an eviction. Runs
  // in discovery jobs only: a RCPT never waits on SQLite (nor on a writer
  // holding it).
  void warm_from_store(const std::string& domain) {
    if (in_memory(domain)) return;
    auto stored = store.load(domain);  // disk I/O outside the lock
    if (!stored) return;
    memory.with([&](MemoryCache& m) {
      if (m.find(domain)) return;
      CacheEntry entry;
      entry.checked_at = stored->last_checked;
      entry.policy = std::move(stored);
      m.put(domain, std::move(entry));
    });
  }

  std::optional<StoredPolicy> cached_policy(const std::string& domain, std::int64_t now) {
    return memory.with([&](MemoryCache& m) -> std::optional<StoredPolicy> {
      CacheEntry* entry = m.find(domain);
      if (!entry || !usable(entry->policy, now)) return std::nullopt;
      return entry->policy;
    });
  }

  void remember(const std::string& domain, std::optional<StoredPolicy> policy, std::int64_t now,
                PolicySource source = PolicySource::Cache, std::optional<ResultType> type = std::nullopt,
                const std::string& reason = "") {
    CacheEntry entry;
    entry.policy = std::move(policy);
    entry.checked_at = now;
    entry.stale = source == PolicySource::Stale;
    entry.error_type = type;
    entry.error_reason = reason;
    memory.with([&](MemoryCache& m) { m.put(domain, std::move(entry)); });
  }

  // The cached policy stays in force (source cache or stale); the TXT check
  // is recorded as done so the next check waits txt_recheck_interval.
  Resolution keep_cached(const StoredPolicy& cached, PolicySource source, std::optional<ResultType> type,
                         const std::string& reason, DnsSecurity dnssec, std::int64_t now) {
    const std::string error = error_text(type, reason);
    (void)store.touch(cached.domain, now, now, error);  // a failure is the store's to log
    StoredPolicy updated = cached;
    updated.last_checked = now;
    updated.last_used = now;
    updated.last_error = error;
    remember(cached.domain, updated, now, source, type, reason);
    Resolution r = from_policy(updated, source);
    r.dnssec = dnssec;
    r.result_type = type;
    r.reason = reason;
    return r;
  }

  Resolution stale(const StoredPolicy& cached, std::optional<ResultType> type, const std::string& reason,
                   DnsSecurity dnssec, std::int64_t now) {
    return keep_cached(cached, PolicySource::Stale, type, reason, dnssec, now);
  }

  // `temporary`: the answer is unknown rather than "no policy" (decide.h).
  Resolution no_policy(const std::string& domain, std::optional<ResultType> type, std::string_view reason,
                       bool temporary, DnsSecurity dnssec) {
    Resolution r = base_resolution(domain, PolicySource::None, dnssec);
    r.result_type = type;
    r.reason = reason;
    r.temporary = temporary;
    return r;
  }

  // The back-off in force for (domain, txt_id): memory first (it holds when
  // the store fails), then the store (it survives a restart).
  std::optional<FetchFailure> backoff_for(const std::string& domain, const std::string& txt_id,
                                          std::int64_t now) {
    auto remembered = backoff.with([&](const FetchBackoff& b) { return b.active(domain, txt_id, now); });
    if (remembered) return remembered;
    auto stored = store.load_failure(domain);  // disk I/O outside the lock
    if (!stored || stored->txt_id != txt_id || stored->retry_at <= now) return std::nullopt;
    backoff.with([&](FetchBackoff& b) { b.remember(*stored, now); });
    return stored;
  }

  // Starts a back-off in memory and in the store; a failed store write was
  // logged by the store, and the memory copy still holds.
  void back_off(const FetchFailure& failure, std::int64_t now) {
    backoff.with([&](FetchBackoff& b) { b.remember(failure, now); });
    (void)store.save_failure(failure);
  }

  void record(const TlsrptSession& session) {
    if (TlsrptSink* const to = sink.load()) to->record(session);
  }

  FetchOutcome fetch_policy(const std::string& domain, const std::string& txt_id, DnsSecurity dnssec,
                            std::int64_t now);
  Resolution discover(const std::string& domain);
  Resolution discovery_job(const std::string& domain, std::stop_token stop);
  Resolution after_txt_id(const std::string& domain, const TxtOutcome& txt,
                          const std::optional<StoredPolicy>& cached, std::int64_t now);
  void note_overloaded(const std::string& domain);
  bool refresh_one(const StoredPolicy& old, std::int64_t now);
  void purge_expired(std::int64_t now);
};

FetchOutcome Resolver::Impl::fetch_policy(const std::string& domain, const std::string& txt_id,
                                          DnsSecurity dnssec, std::int64_t now) {
  constexpr auto kFetchError = ResultType::StsPolicyFetchError;
  const auto host = dns.lookup_addresses("mta-sts." + domain, dns_deadline());
  if (host.security == DnsSecurity::Bogus) return fetch_failed(kFetchError, reason::kDnssecBogus, true);
  switch (host.status) {
    case DnsStatus::Ok:
      break;
    case DnsStatus::Timeout:
      return fetch_failed(kFetchError, reason::kDnsTimeout, true);
    case DnsStatus::ServFail:
      return fetch_failed(kFetchError, reason::kDnsServfail, true);
    case DnsStatus::NxDomain:
    case DnsStatus::NoData:
      return fetch_failed(kFetchError, reason::kDnsNoAddress, false);
  }
  auto fetched = fetcher.fetch(domain, host.records);
  auto& fetches = metrics::registry().fetches;
  if (!fetched) {
    fetches.add(fetched.error().reason);
    return fetch_failed(fetched.error().type, fetched.error().reason, fetched.error().temporary);
  }
  auto& body = fetched.value().body;
  const auto parsed = parse_policy(body);
  fetches.add(parsed.policy ? "ok" : reason::kPolicySyntax);
  if (!parsed.policy) return fetch_failed(ResultType::StsPolicyInvalid, reason::kPolicySyntax, false);
  FetchOutcome out;
  StoredPolicy p;
  p.domain = domain;
  p.txt_id = txt_id;
  p.raw = std::move(body);
  p.policy = *parsed.policy;
  p.fetched_at = now;
  p.expires_at = now + p.policy.max_age;
  p.last_checked = now;
  p.last_used = now;
  p.dnssec = dnssec;
  out.policy = std::move(p);
  return out;
}

Resolution Resolver::Impl::after_txt_id(const std::string& domain, const TxtOutcome& txt,
                                        const std::optional<StoredPolicy>& cached, std::int64_t now) {
  if (cached && cached->txt_id == txt.id)
    return keep_cached(*cached, PolicySource::Cache, std::nullopt, "", txt.security, now);

  if (const auto failure = backoff_for(domain, txt.id, now)) {
    spdlog::debug("resolve event=backoff domain={} reason={}", domain, failure->reason);
    if (cached) return stale(*cached, failure->type, failure->reason, txt.security, now);
    return no_policy(domain, failure->type, failure->reason, failure->temporary, txt.security);
  }

  auto fetched = fetch_policy(domain, txt.id, txt.security, now);
  if (!fetched.policy) {
    spdlog::info("resolve event=fetch-failed domain={} txt_id={} result_type={} reason={} temporary={}",
                 domain, txt.id, to_string(fetched.type), fetched.reason, fetched.temporary);
    back_off(FetchFailure{domain, txt.id, now, now + config.fetch_backoff, fetched.type, fetched.reason,
                          fetched.temporary},
             now);
    record(discovery_failure(domain, FailedStep::PolicyFetch, fetched.type, fetched.reason, cached, now));
    if (cached) return stale(*cached, fetched.type, fetched.reason, txt.security, now);
    return no_policy(domain, fetched.type, fetched.reason, fetched.temporary, txt.security);
  }

  // A failed write is logged by the store (rate-limited, issue #10): a second
  // line here doubled every failure. Memory still holds the policy.
  (void)store.save(*fetched.policy);
  backoff.with([&](FetchBackoff& b) { b.forget(domain); });
  (void)store.clear_failure(domain);
  remember(domain, fetched.policy, now);
  spdlog::info("resolve event=fetched domain={} txt_id={} mode={} max_age={}", domain, txt.id,
               to_string(fetched.policy->policy.mode), fetched.policy->policy.max_age);
  return from_policy(*fetched.policy, PolicySource::Fetched);
}

Resolution Resolver::Impl::discover(const std::string& domain) {
  const std::int64_t now = clock.now();
  warm_from_store(domain);
  const auto cached = cached_policy(domain, now);
  const auto txt = classify_txt(dns.lookup_txt("_mta-sts." + domain, dns_deadline()));

  // One session per TXT lookup that ran and failed (resolver.h, Readings):
  // a wrong record always; a SERVFAIL, timeout or bogus answer only under a
  // policy in force (with none, it is as often our own resolver's outage).
  const bool in_force = cached && cached->policy.mode != Mode::None;
  if (txt.kind == TxtOutcome::Kind::Invalid || (txt.kind == TxtOutcome::Kind::Error && in_force))
    record(discovery_failure(domain, FailedStep::TxtLookup, txt.report_type, txt.report_reason, cached, now));
  switch (txt.kind) {
    case TxtOutcome::Kind::Error:
      if (cached) return stale(*cached, ResultType::StsPolicyFetchError, txt.reason, txt.security, now);
      return no_policy(domain, ResultType::StsPolicyFetchError, txt.reason, txt.temporary, txt.security);
    case TxtOutcome::Kind::NoRecord:
    case TxtOutcome::Kind::Invalid:
      // §5.1: without a (valid) TXT record an unexpired cached policy still applies.
      if (cached) {
        const std::string why =
            txt.kind == TxtOutcome::Kind::NoRecord ? std::string(reason::kTxtMissing) : txt.reason;
        return stale(*cached, std::nullopt, why, txt.security, now);
      }
      remember(domain, std::nullopt, now);
      return no_policy(domain, std::nullopt, txt.reason, false, txt.security);
    case TxtOutcome::Kind::Id:
      break;
  }
  Resolution result = after_txt_id(domain, txt, cached, now);
  result.fresh_txt_check = result.source == PolicySource::Cache || result.source == PolicySource::Fetched;
  return result;
}

// One warning per 10 s at most, with how many discoveries were refused:
// a flood must not flood the log too.
void Resolver::Impl::note_overloaded(const std::string& domain) {
  const int refused = refusals.note(clock.now());
  if (refused > 0)
    spdlog::warn(
        "resolve event=overloaded running={} refused={} domain={} note=\"answered as a temporary error\"",
        discoveries.in_flight(), refused, domain);
}

// One discovery, on a pool thread. The stored policy is read here, never on
// the caller's thread; a stored policy whose TXT id was checked recently
// answers without DNS (after a restart or an eviction).
Resolution Resolver::Impl::discovery_job(const std::string& domain, std::stop_token stop) {
  try {
    warm_from_store(domain);
    if (auto fast = fresh_answer(domain, clock.now())) return *fast;
    if (stop.stop_requested())
      return no_policy(domain, std::nullopt, reason::kStopping, true, DnsSecurity::Insecure);
    auto& m = metrics::registry();
    const metrics::Running running(m.discoveries_running);
    const auto started = std::chrono::steady_clock::now();
    Resolution r = discover(domain);
    m.discovery_seconds.observe(std::chrono::steady_clock::now() - started);
    return r;
  } catch (const std::exception& e) {
    spdlog::error("resolve event=internal-error domain={} error=\"{}\"", domain, e.what());
    return no_policy(domain, std::nullopt, reason::kInternalError, true, DnsSecurity::Insecure);
  }
}

// §5.1: an expired policy is never used again (a new discovery starts
// afresh), so it is neither refreshed nor kept.
void Resolver::Impl::purge_expired(std::int64_t now) {
  const auto purged = store.forget_expired(now);  // a failure is the store's to log
  if (purged && *purged) spdlog::info("refresh event=purged reason=expired");
}

bool Resolver::Impl::refresh_one(const StoredPolicy& old, std::int64_t now) {
  if (old.expires_at <= now) return false;  // expired since the pass began
  const auto txt = classify_txt(dns.lookup_txt("_mta-sts." + old.domain, dns_deadline()));
  if (txt.kind == TxtOutcome::Kind::NoRecord || txt.kind == TxtOutcome::Kind::Invalid) {
    // §8.3: the domain withdrew MTA-STS; the cached policy applies until it
    // expires, so nothing is fetched (under the old id that would renew it).
    spdlog::info("refresh event=skipped domain={} reason=txt-missing expires_at={}", old.domain,
                 old.expires_at);
    metrics::registry().refreshes.add("txt-missing");
    return false;
  }
  const std::string txt_id = txt.kind == TxtOutcome::Kind::Id ? txt.id : old.txt_id;
  const DnsSecurity dnssec = txt.kind == TxtOutcome::Kind::Id ? txt.security : old.dnssec;
  auto fetched = fetch_policy(old.domain, txt_id, dnssec, now);
  metrics::registry().refreshes.add(fetched.policy ? "fetched" : "failed");
  if (!fetched.policy) {
    if (old.policy.mode != Mode::None)
      spdlog::warn("refresh event=failed domain={} result_type={} reason={}", old.domain,
                   to_string(fetched.type), fetched.reason);
    (void)store.touch(old.domain, old.last_checked, old.last_used, error_text(fetched.type, fetched.reason));
    // RFC 8461 §8.3: a mode none policy is the first step of an opt-out,
    // whose host may go away; only policies in force are reported.
    if (old.policy.mode != Mode::None)
      record(discovery_failure(old.domain, FailedStep::PolicyFetch, fetched.type, fetched.reason, old, now));
    return false;
  }
  const Policy& fresh = fetched.policy->policy;
  const bool weaker_mode = old.policy.mode == Mode::Enforce && fresh.mode != Mode::Enforce;
  if (weaker_mode || fresh.mx != old.policy.mx) metrics::registry().downgrades.add();
  if (weaker_mode || fresh.mx != old.policy.mx)
    spdlog::warn("refresh event=downgrade domain={} old_mode={} new_mode={} mx_changed={}", old.domain,
                 to_string(old.policy.mode), to_string(fresh.mode), fresh.mx != old.policy.mx);
  fetched.policy->last_used = old.last_used;
  (void)store.save(*fetched.policy);  // a failure is the store's to log; memory still holds it
  remember(old.domain, fetched.policy, now);
  spdlog::info("refresh event=fetched domain={} txt_id={} mode={}", old.domain, txt_id,
               to_string(fresh.mode));
  return true;
}

Resolver::Resolver(Dns& dns, PolicyFetcher& fetcher, PolicyStore& store, const Clock& clock,
                   ResolverConfig config, WorkerPool* pool)
    : impl_(std::make_unique<Impl>(dns, fetcher, store, clock, config, pool)) {}

Resolver::~Resolver() {
  wait_idle();
  flush();
}

Resolution Resolver::resolve(const std::string& domain, Deadline deadline) {
  Resolution r = resolve_uncounted(domain, deadline);
  metrics::registry().policy_lookups.add(to_string(r.source));
  return r;
}

Resolution Resolver::resolve_uncounted(const std::string& domain, Deadline deadline) {
  const std::int64_t now = impl_->clock.now();
  if (auto fast = impl_->fresh_answer(domain, now)) {
    metrics::registry().policy_memory_hits.add();
    return *fast;
  }
  const auto job = impl_->discoveries.join_or_start(
      domain,
      [impl = impl_.get(), domain](std::stop_token stop) { return impl->discovery_job(domain, stop); },
      impl_->no_policy(domain, std::nullopt, reason::kOverloaded, true, DnsSecurity::Insecure));
  if (!job) impl_->note_overloaded(domain);
  if (job && job->wait_until(deadline) == std::future_status::ready) return job->get();
  // A job goes on and fills the cache for the retry.
  const std::string_view why = job ? reason::kDeadline : reason::kOverloaded;
  if (const auto cached = impl_->cached_policy(domain, now)) {
    Resolution r = from_policy(*cached, PolicySource::Stale);
    r.reason = why;
    return r;
  }
  return impl_->no_policy(domain, std::nullopt, why, true, DnsSecurity::Insecure);
}

int Resolver::refresh_due(bool force, const std::function<bool()>& stop) {
  const std::int64_t now = impl_->clock.now();
  const std::int64_t interval = impl_->config.refresh_interval;
  impl_->purge_expired(now);
  // Names first, policies one at a time: a pass over a large store never
  // holds every policy in memory at once.
  const auto due = impl_->store.domains_due([&](const RefreshSlot& slot) {
    if (slot.expires_at <= now) return false;  // the purge failed: still never revived
    if (force) return true;
    // A policy counts as used when it was fetched (an import, a fresh fetch).
    const bool in_use = now - std::max(slot.last_used, slot.fetched_at) <= impl_->config.refresh_unused_for;
    const std::int64_t half_life = std::max<std::int64_t>(slot.max_age / 2, 1);
    return in_use &&
           now >= slot.fetched_at + std::min(interval - jitter_for(slot.domain, interval), half_life);
  });
  // On the worker pool, kRefreshesAtOnce at a time; `stop` is asked before
  // each batch (a batch ends within one fetch timeout).
  int refreshed = 0;
  for (std::size_t first = 0; first < due.size(); first += kRefreshesAtOnce) {
    if (stop && stop()) break;
    std::vector<std::shared_future<bool>> batch;
    for (std::size_t i = first; i < std::min(due.size(), first + kRefreshesAtOnce); ++i) {
      const std::string& domain = due[i];
      auto job = impl_->refreshes.join_or_start(
          domain,
          [impl = impl_.get(), domain, now](std::stop_token job_stop) {
            if (job_stop.stop_requested()) return false;
            const auto old =
                impl->store.load(domain);  // nullopt: forgotten meanwhile, or unparsable (logged)
            return old && impl->refresh_one(*old, now);
          },
          false);
      if (job) batch.push_back(std::move(*job));
    }
    for (auto& job : batch) refreshed += job.get() ? 1 : 0;
  }
  return refreshed;
}

std::size_t Resolver::policies_in_memory() const {
  return impl_->memory.with([](const MemoryCache& m) { return m.size(); });
}

void Resolver::flush() {
  // In batches: a flush of 100,000 used policies never copies them all at
  // once, and each batch is one transaction. Only the marks queued when the
  // flush starts are taken, so steady traffic cannot keep it going forever.
  constexpr std::size_t kBatch = 1000;
  std::size_t budget = 0;
  budget = impl_->memory.with([](MemoryCache& m) { return m.dirty_queued(); });
  while (budget > 0) {
    const std::size_t step = std::min(kBatch, budget);
    budget -= step;
    std::vector<PolicyUse> dirty = impl_->memory.with([&](MemoryCache& m) { return m.take_dirty(step); });
    if (dirty.empty()) continue;
    const auto touched = impl_->store.touch_all(dirty);
    if (!touched) {               // logged by the store
      impl_->remark_used(dirty);  // the next flush tries again
      return;
    }
  }
}

void Resolver::set_tlsrpt_sink(TlsrptSink* sink) { impl_->sink.store(sink); }

bool Resolver::wait_idle_until(std::chrono::steady_clock::time_point deadline) {
  return impl_->discoveries.wait_idle_until(deadline);
}

void Resolver::wait_idle() { wait_idle_until(std::chrono::steady_clock::time_point::max()); }

}  // namespace mtasts::policy
