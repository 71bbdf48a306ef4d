// Probe results per (host, address, port, DANE or WebPKI); RFC 8461 §4.2,
// RFC 7672. Why DANE and its records are part of the key: a host whose TLSA
// RRset became secure, stopped being, or changed must be checked against what
// DNS says now, not answered from an older result until it expires.
// Why the shape (the Resolver's): the probe runs as a single-flight job on
// the worker pool, so a caller can stop waiting at its deadline and the
// result still lands in the cache for the retry.
#include "policy/engine/probe_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <future>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "policy/engine/lock_guarded.h"
#include "policy/engine/metrics.h"
#include "policy/engine/refusal_log.h"
#include "policy/engine/single_flight.h"
#include "policy/reason.h"

namespace mtasts::policy {

namespace {

// The TLSA records themselves are part of a DANE key: after a TLSA change
// (a key rollover, a compromised key withdrawn) the host is checked against
// the new records at once, never answered from a result of the old ones.
void append_tlsa(std::string& key, const std::vector<TlsaRecord>& records) {
  std::vector<std::string> items;
  for (const auto& r : records) {
    std::string item{static_cast<char>(r.usage), static_cast<char>(r.selector),
                     static_cast<char>(r.matching_type)};
    item.append(r.data.begin(), r.data.end());
    items.push_back(std::move(item));
  }
  std::sort(items.begin(), items.end());  // an RRset has no order
  for (const auto& item : items) {
    key += std::to_string(item.size());
    key += ':';
    key += item;
  }
}

std::string key_of(const ProbeRequest& request) {
  std::string key = request.host;
  key += '\0';
  key += request.address;
  key += '\0';
  key += std::to_string(request.port);
  key += '\0';
  if (!request.tlsa) return key + "webpki";
  key += "dane";
  append_tlsa(key, *request.tlsa);
  return key;
}

bool is_success(const ProbeResult& result) {
  return result.outcome == ProbeOutcome::Verified || result.outcome == ProbeOutcome::DaneVerified;
}

ProbeResult run_failed(const ProbeRequest& request, std::string_view why = reason::kInternalError) {
  ProbeResult result;
  result.outcome = ProbeOutcome::Unreachable;
  result.reason = why;
  result.address = request.address;
  return result;
}

// A prober must not throw, but a thread that lets an exception escape
// terminates the daemon: turn it into an unreachable host.
ProbeResult run_probe(TlsProber& prober, const ProbeRequest& request) {
  auto& m = metrics::registry();
  const metrics::Running running(m.probes_running);
  const auto started = std::chrono::steady_clock::now();
  try {
    ProbeResult result = prober.probe(request);
    if (result.address.empty()) result.address = request.address;
    m.probe_seconds.observe(std::chrono::steady_clock::now() - started);
    m.probes.add(to_string(result.outcome));
    return result;
  } catch (const std::exception& e) {
    spdlog::error("probe event=internal-error host={} address={} error=\"{}\"", request.host, request.address,
                  e.what());
  } catch (...) {
    spdlog::error("probe event=internal-error host={} address={}", request.host, request.address);
  }
  return run_failed(request);
}

// Reports a probe that ran; before the result is published, so a test (or
// the shutdown drain) that waited for the probe also sees its record.
void notify(const ProbeCache::OnProbed& on_probed, const ProbeRequest& request, const ProbeResult& result) {
  if (!on_probed) return;
  try {
    on_probed(request, result);
  } catch (const std::exception& e) {
    spdlog::error("probe event=report-failed host={} error=\"{}\"", request.host, e.what());
  } catch (...) {
    spdlog::error("probe event=report-failed host={}", request.host);
  }
}

// Heterogeneous lookup: a warm hit looks a domain up without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

struct Entry {
  ProbeResult result;
  std::int64_t stored_at = 0;
  // Policy domains whose mail this result decided (ProbeCache::Use).
  std::unordered_set<std::string, StringHash, std::equal_to<>> used_by;
};

// True when `domain` was not yet among the entry's users (and now is).
bool first_use(Entry& entry, std::string_view domain) {
  if (entry.used_by.find(domain) != entry.used_by.end()) return false;
  if (entry.used_by.size() >= ProbeCache::kMaxDomainsPerEntry) return false;
  entry.used_by.emplace(domain);
  return true;
}

}  // namespace

struct ProbeCache::Impl {
  TlsProber& prober;
  const Clock& clock;
  ProbeCacheConfig config;

  LockGuarded<std::unordered_map<std::string, Entry>> entries;
  RefusalLog refusals;
  std::unique_ptr<WorkerPool> own_pool;  // when no shared pool was given
  // Last: destroyed first, waiting for the probes that use the rest.
  SingleFlight<std::string, ProbeResult> flights;

  Impl(TlsProber& p, const Clock& c, ProbeCacheConfig cfg, WorkerPool* pool)
      : prober(p),
        clock(c),
        config(cfg),
        own_pool(pool ? nullptr : std::make_unique<WorkerPool>(private_pool_config(cfg.max_jobs))),
        flights(pool ? *pool : *own_pool, cfg.max_jobs) {}

  bool fresh(const Entry& entry, std::int64_t now) const {
    const std::int64_t ttl = is_success(entry.result) ? config.success_ttl : config.failure_ttl;
    const std::int64_t age = now - entry.stored_at;
    return age >= 0 && age < ttl;  // a clock stepped back does not stretch a TTL
  }

  std::optional<ProbeResult> cached(const std::string& key, std::int64_t now, Use* use) {
    return entries.with([&](auto& table) -> std::optional<ProbeResult> {
      const auto it = table.find(key);
      if (it == table.end() || !fresh(it->second, now)) return std::nullopt;
      if (use) use->first = first_use(it->second, use->policy_domain);
      return it->second.result;
    });
  }

  // After waiting for a probe this call did not start: does its result
  // count for `use` too? (The starter's domain was marked by store().)
  void mark_used(const std::string& key, Use& use) {
    entries.with([&](auto& table) {
      if (const auto it = table.find(key); it != table.end())
        use.first = first_use(it->second, use.policy_domain);
    });
  }

  void store(const std::string& key, ProbeResult result, std::int64_t now, const std::string& started_for) {
    entries.with([&](auto& table) {
      if (table.size() >= config.max_entries)
        std::erase_if(table, [&](const auto& kv) { return !fresh(kv.second, now); });
      // Still full of fresh entries: a cache, so dropping it costs probes only.
      if (table.size() >= config.max_entries) table.clear();
      Entry entry{std::move(result), now, {}};
      if (!started_for.empty()) entry.used_by.insert(started_for);
      table.insert_or_assign(key, std::move(entry));
    });
  }

  // No probe started: at most one warning per 10 s.
  ProbeResult overloaded(const ProbeRequest& request) {
    const int refused = refusals.note(clock.now());
    if (refused > 0)
      spdlog::warn("probe event=overloaded running={} refused={} host={} note=\"host left unverified\"",
                   flights.in_flight(), refused, request.host);
    return run_failed(request, reason::kOverloaded);
  }
};

ProbeCache::ProbeCache(TlsProber& prober, const Clock& clock, ProbeCacheConfig config, WorkerPool* pool)
    : impl_(std::make_unique<Impl>(prober, clock, config, pool)) {}

ProbeCache::~ProbeCache() = default;  // `flights` waits for running probes

std::optional<ProbeResult> ProbeCache::probe(const ProbeRequest& request, Deadline deadline,
                                             OnProbed on_probed, Use* use) {
  const std::string key = key_of(request);
  if (auto hit = impl_->cached(key, impl_->clock.now(), use)) return hit;
  Impl* impl = impl_.get();
  // Counted for by on_probed when this call starts the probe.
  std::string started_for = use && on_probed ? std::string(use->policy_domain) : std::string();
  const auto job = impl->flights.join_or_start(
      key,
      [impl, request, on_probed = std::move(on_probed)](std::stop_token stop) {
        if (stop.stop_requested()) return run_failed(request, reason::kStopping);
        ProbeResult result = run_probe(impl->prober, request);
        notify(on_probed, request, result);
        return result;
      },
      run_failed(request, reason::kOverloaded),
      [impl, key, started_for](const ProbeResult& result) {
        if (result.reason != reason::kStopping) impl->store(key, result, impl->clock.now(), started_for);
      });
  if (!job) return impl->overloaded(request);
  if (job->wait_until(deadline) != std::future_status::ready) return std::nullopt;
  ProbeResult result = job->get();
  if (use) impl->mark_used(key, *use);
  return result;
}

void ProbeCache::wait_idle() { wait_idle_until(std::chrono::steady_clock::time_point::max()); }

bool ProbeCache::wait_idle_until(std::chrono::steady_clock::time_point deadline) {
  return impl_->flights.wait_idle_until(deadline);
}

}  // namespace mtasts::policy
