// Probe results per (host, address, port, DANE or WebPKI); RFC 8461 §4.2,
// RFC 7672. Why DANE and its records are part of the key: a host whose TLSA
// RRset became secure, stopped being, or changed must be checked against what
// DNS says now, not answered from an older result until it expires.
// Why the shape (the Resolver's): the probe runs on a detached thread that
// owns the only reference to its promise, so a caller can stop waiting at
// its deadline and the result still lands in the cache for the retry.
#include "policy/engine/probe_cache.h"
#include "policy/reason.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

namespace mtasts::policy {

namespace {

// The TLSA records themselves are part of a DANE key: after a TLSA change
// (a key rollover, a compromised key withdrawn) the host is checked against
// the new records at once, never answered from a result of the old ones.
void append_tlsa(std::string& key, const std::vector<TlsaRecord>& records) {
  std::vector<std::string> items;
  for (const auto& r : records) {
    std::string item{static_cast<char>(r.usage), static_cast<char>(r.selector), static_cast<char>(r.matching_type)};
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
  try {
    ProbeResult result = prober.probe(request);
    if (result.address.empty()) result.address = request.address;
    return result;
  } catch (const std::exception& e) {
    spdlog::error("probe event=internal-error host={} address={} error=\"{}\"", request.host,
                  request.address, e.what());
  } catch (...) {
    spdlog::error("probe event=internal-error host={} address={}", request.host, request.address);
  }
  return run_failed(request);
}

// Reports a probe that ran; before the result is published, so a test (or
// the shutdown drain) that waited for the probe also sees its record.
void notify(const ProbeCache::OnProbed& on_probed, const ProbeRequest& request,
            const ProbeResult& result) {
  if (!on_probed) return;
  try {
    on_probed(request, result);
  } catch (const std::exception& e) {
    spdlog::error("probe event=report-failed host={} error=\"{}\"", request.host, e.what());
  } catch (...) {
    spdlog::error("probe event=report-failed host={}", request.host);
  }
}

struct Entry {
  ProbeResult result;
  std::int64_t stored_at = 0;
};

}  // namespace

struct ProbeCache::Impl {
  TlsProber& prober;
  const Clock& clock;
  ProbeCacheConfig config;

  std::mutex mu;
  std::unordered_map<std::string, Entry> entries;
  std::unordered_map<std::string, std::shared_future<ProbeResult>> inflight;
  std::condition_variable idle;
  int jobs = 0;
  int overload_refusals = 0;  // since the last overload warning
  std::int64_t overload_logged_at = -3600;

  Impl(TlsProber& p, const Clock& c, ProbeCacheConfig cfg) : prober(p), clock(c), config(cfg) {}

  bool fresh(const Entry& entry, std::int64_t now) const {
    const std::int64_t ttl = is_success(entry.result) ? config.success_ttl : config.failure_ttl;
    const std::int64_t age = now - entry.stored_at;
    return age >= 0 && age < ttl;  // a clock stepped back does not stretch a TTL
  }

  // Called with `mu` held.
  void store(const std::string& key, ProbeResult result, std::int64_t now) {
    if (entries.size() >= config.max_entries)
      std::erase_if(entries, [&](const auto& kv) { return !fresh(kv.second, now); });
    // Still full of fresh entries: a cache, so dropping it costs probes only.
    if (entries.size() >= config.max_entries) entries.clear();
    entries.insert_or_assign(key, Entry{std::move(result), now});
  }

  // Called with `mu` held: no probe started, at most one warning per 10 s.
  ProbeResult overloaded(const ProbeRequest& request) {
    ++overload_refusals;
    const std::int64_t now = clock.now();
    if (now - overload_logged_at >= 10) {
      spdlog::warn("probe event=overloaded running={} refused={} host={} note=\"host left unverified\"", jobs,
                   overload_refusals, request.host);
      overload_logged_at = now;
      overload_refusals = 0;
    }
    return run_failed(request, reason::kOverloaded);
  }

  // The cached result, the running probe to join, or a newly started probe.
  std::variant<ProbeResult, std::shared_future<ProbeResult>> lookup_or_start(const ProbeRequest& request,
                                                                             OnProbed on_probed);
  std::shared_future<ProbeResult> start(const std::string& key, const ProbeRequest& request,
                                        OnProbed on_probed);
  void run_detached(const std::string& key, const ProbeRequest& request,
                    std::shared_ptr<std::promise<ProbeResult>> promise, OnProbed on_probed);
};

std::variant<ProbeResult, std::shared_future<ProbeResult>> ProbeCache::Impl::lookup_or_start(
    const ProbeRequest& request, OnProbed on_probed) {
  const std::string key = key_of(request);
  const std::int64_t now = clock.now();
  std::lock_guard lock(mu);
  if (const auto it = entries.find(key); it != entries.end() && fresh(it->second, now))
    return it->second.result;
  if (const auto it = inflight.find(key); it != inflight.end()) return it->second;
  if (static_cast<std::size_t>(jobs) >= config.max_jobs) return overloaded(request);
  return start(key, request, std::move(on_probed));
}

// Called with `mu` held; the thread takes the lock only after probing.
std::shared_future<ProbeResult> ProbeCache::Impl::start(const std::string& key, const ProbeRequest& request,
                                                        OnProbed on_probed) {
  auto promise = std::make_shared<std::promise<ProbeResult>>();
  std::shared_future<ProbeResult> future = promise->get_future().share();
  inflight.emplace(key, future);
  ++jobs;
  try {
    run_detached(key, request, promise, std::move(on_probed));
  } catch (const std::system_error& e) {  // no thread: answer now rather than hang
    spdlog::error("probe event=thread-failed host={} error=\"{}\"", request.host, e.what());
    inflight.erase(key);
    --jobs;
    promise->set_value(run_failed(request));
  }
  return future;
}

void ProbeCache::Impl::run_detached(const std::string& key, const ProbeRequest& request,
                                    std::shared_ptr<std::promise<ProbeResult>> promise,
                                    OnProbed on_probed) {
  std::thread([this, key, request, promise = std::move(promise), on_probed = std::move(on_probed)] {
    ProbeResult result = run_probe(prober, request);
    notify(on_probed, request, result);
    // Cache and leave the in-flight table before publishing, so a caller
    // that has seen this result never joins this finished job again.
    {
      std::lock_guard done(mu);
      store(key, result, clock.now());
      inflight.erase(key);
    }
    promise->set_value(std::move(result));
    std::lock_guard done(mu);
    --jobs;
    idle.notify_all();
  }).detach();
}

ProbeCache::ProbeCache(TlsProber& prober, const Clock& clock, ProbeCacheConfig config)
    : impl_(std::make_unique<Impl>(prober, clock, config)) {}

ProbeCache::~ProbeCache() { wait_idle(); }

std::optional<ProbeResult> ProbeCache::probe(const ProbeRequest& request, Deadline deadline,
                                             OnProbed on_probed) {
  auto found = impl_->lookup_or_start(request, std::move(on_probed));
  if (auto* cached = std::get_if<ProbeResult>(&found)) return std::move(*cached);
  const auto& job = std::get<std::shared_future<ProbeResult>>(found);
  if (job.wait_until(deadline) != std::future_status::ready) return std::nullopt;
  return job.get();
}

void ProbeCache::wait_idle() {
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait(lock, [this] { return impl_->jobs == 0; });
}

bool ProbeCache::wait_idle_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(impl_->mu);
  return impl_->idle.wait_until(lock, deadline, [this] { return impl_->jobs == 0; });
}

}  // namespace mtasts::policy
