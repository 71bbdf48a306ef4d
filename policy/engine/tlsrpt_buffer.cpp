// RFC 8460 §4.1 / §4.4 aggregation. Why in memory first: a busy sender
// probes many hosts a second, and one SQLite transaction every
// flush_interval is far cheaper than one per session; the counts are what
// the report needs, never the individual sessions.
// Why an early flush past flush_at_aggregates, on the flusher's thread: the
// sink's callers (probe and discovery threads) must never wait on the store,
// and a burst of distinct domains must not sit in memory for an interval.
// Why none while the store refuses: each record would wake another write
// that fails at once; the interval paces the retries and max_pending bounds
// memory meanwhile.
// Why the key is a '\0'-joined string: every field is text without NUL (DNS
// names, addresses, policy text, reason codes), and one ordered map keeps
// take() sorted for free.
#include "policy/engine/tlsrpt_buffer.h"

#include "policy/engine/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <iterator>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <utility>

namespace mtasts::policy {

namespace {

TlsrptAggregate aggregate_of(const TlsrptSession& s, const std::string& sending_mta_ip) {
  TlsrptAggregate a;
  a.day = utc_day(s.at);
  a.policy_type = s.policy_type;
  a.policy_domain = s.policy_domain;
  a.policy_string = s.policy_string;
  a.mx_patterns = s.mx_patterns;
  a.success = s.success;
  a.sessions = 1;
  if (s.success) return a;  // §4.4: successes are counted per policy only
  a.result_type = s.result_type.value_or(ResultType::ValidationFailure);
  a.failure_reason_code = s.failure_reason_code;
  a.sending_mta_ip = sending_mta_ip.empty() ? s.sending_mta_ip : sending_mta_ip;
  a.receiving_mx_hostname = s.receiving_mx_hostname;
  a.receiving_ip = s.receiving_ip;
  a.additional_information = s.additional_information;
  return a;
}

std::string key_of(const TlsrptAggregate& a) {
  std::string key;
  for (const std::string* field :
       {&a.day, &a.policy_type, &a.policy_domain, &a.policy_string, &a.mx_patterns, &a.failure_reason_code,
        &a.sending_mta_ip, &a.receiving_mx_hostname, &a.receiving_ip, &a.additional_information}) {
    key += *field;
    key += '\0';
  }
  key += a.success ? "ok" : std::string(to_string(*a.result_type));
  return key;
}

std::int64_t sessions_in(std::span<const TlsrptAggregate> aggregates) {
  std::int64_t sessions = 0;
  for (const auto& a : aggregates) sessions += a.sessions;
  return sessions;
}

}  // namespace

struct TlsrptBuffer::Impl {
  TlsrptStore* store;
  TlsrptBufferConfig config;

  mutable std::mutex mu;
  std::map<std::string, TlsrptAggregate> pending;  // guarded by mu
  std::int64_t dropped = 0;                        // guarded by mu
  std::mutex flushing;                             // one writer at a time
  std::condition_variable wake;
  bool stopping = false;         // guarded by mu
  bool flush_requested = false;  // guarded by mu: past flush_at_aggregates
  bool store_refused = false;    // guarded by mu: the last flush failed
  std::thread flusher;

  Impl(TlsrptStore* s, TlsrptBufferConfig cfg) : store(s), config(std::move(cfg)) {}

  // Adds `a` under the lock; false when it is a new key beyond max_pending.
  bool merge(TlsrptAggregate a) {
    std::string key = key_of(a);
    if (const auto it = pending.find(key); it != pending.end()) {
      it->second.sessions += a.sessions;
      return true;
    }
    if (pending.size() >= config.max_pending) {
      dropped += a.sessions;
      return false;
    }
    pending.emplace(std::move(key), std::move(a));
    return true;
  }

  std::vector<TlsrptAggregate> take() {
    std::vector<TlsrptAggregate> batch;
    std::lock_guard lock(mu);
    batch.reserve(pending.size());
    for (auto& [key, a] : pending) batch.push_back(std::move(a));
    pending.clear();
    return batch;
  }

  // What the store refused goes back; no early flush until one succeeds
  // (set here, in the same lock, so no record sees the batch back first).
  void put_back(std::vector<TlsrptAggregate> batch) {
    std::lock_guard lock(mu);
    store_refused = true;
    for (auto& a : batch) merge(std::move(a));
  }

  std::int64_t take_dropped() {
    std::lock_guard lock(mu);
    return std::exchange(dropped, 0);
  }

  // Under the lock, after a merge: true when the flusher should write now.
  bool wants_early_flush() {
    const bool has_flusher = config.flush_interval.count() > 0;
    if (!has_flusher || flush_requested || store_refused || stopping) return false;
    if (pending.size() <= config.flush_at_aggregates) return false;
    flush_requested = true;
    return true;
  }

  void note_store_accepted() {
    std::lock_guard lock(mu);
    store_refused = false;
  }

  // One store transaction; an exception from the store is an error value.
  Result<bool> write(const std::vector<TlsrptAggregate>& batch);
  // Logs (one line) the sessions dropped since the last call.
  void report_dropped();
  bool flush();
  // Writes `all` a batch at a time; what the store refuses goes back.
  bool write_all(std::vector<TlsrptAggregate> all);
  void run();
};

Result<bool> TlsrptBuffer::Impl::write(const std::vector<TlsrptAggregate>& batch) {
  try {
    auto added = store->add(batch);
    if (added) metrics::registry().tlsrpt_flushed.add(batch.size());
    return added;
  } catch (const std::exception& e) {
    return Error{"store-error", e.what()};
  }
}

void TlsrptBuffer::Impl::report_dropped() {
  const std::int64_t lost = take_dropped();
  if (lost > 0) metrics::registry().tlsrpt_dropped.add(static_cast<std::uint64_t>(lost));
  if (lost > 0)
    spdlog::warn("tlsrpt event=dropped sessions={} reason=buffer-full max_pending={}", lost,
                 config.max_pending);
}

bool TlsrptBuffer::Impl::flush() {
  std::lock_guard one_writer(flushing);
  report_dropped();
  if (store == nullptr) return true;
  const bool written = write_all(take());
  if (written) note_store_accepted();
  return written;
}

bool TlsrptBuffer::Impl::write_all(std::vector<TlsrptAggregate> all) {
  const std::size_t step = std::max<std::size_t>(config.batch_aggregates, 1);
  for (std::size_t first = 0; first < all.size(); first += step) {
    const auto last = all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), first + step));
    const std::vector<TlsrptAggregate> batch(all.begin() + static_cast<std::ptrdiff_t>(first), last);
    const Result<bool> written = write(batch);
    if (written) continue;
    std::vector<TlsrptAggregate> kept(
        std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(first)),
        std::make_move_iterator(all.end()));
    spdlog::warn(
        "tlsrpt event=flush-failed aggregates={} sessions={} written_aggregates={} code={} action=retry",
        kept.size(), sessions_in(kept), first, written.error().code);
    put_back(std::move(kept));
    return false;
  }
  return true;
}

void TlsrptBuffer::Impl::run() {
  std::unique_lock lock(mu);
  while (!stopping) {
    wake.wait_for(lock, config.flush_interval, [this] { return stopping || flush_requested; });
    if (stopping) break;
    flush_requested = false;
    lock.unlock();
    flush();
    lock.lock();
  }
}

TlsrptBuffer::TlsrptBuffer(TlsrptStore* store, TlsrptBufferConfig config)
    : impl_(std::make_unique<Impl>(store, std::move(config))) {
  if (impl_->config.flush_interval.count() > 0) impl_->flusher = std::thread([this] { impl_->run(); });
}

TlsrptBuffer::~TlsrptBuffer() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->flusher.joinable()) impl_->flusher.join();
  if (!impl_->flush()) {
    const std::vector<TlsrptAggregate> lost = impl_->take();
    metrics::registry().tlsrpt_dropped.add(static_cast<std::uint64_t>(sessions_in(lost)));
    spdlog::error("tlsrpt event=lost sessions={} aggregates={} reason=last-flush-failed", sessions_in(lost),
                  lost.size());
  }
  impl_->report_dropped();  // what the last put_back could not keep
}

void TlsrptBuffer::record(const TlsrptSession& session) {
  metrics::registry().tlsrpt_sessions.add();
  TlsrptAggregate a = aggregate_of(session, impl_->config.sending_mta_ip);
  bool early = false;
  {
    std::lock_guard lock(impl_->mu);
    impl_->merge(std::move(a));
    early = impl_->wants_early_flush();
  }
  if (early) impl_->wake.notify_all();
}

std::vector<TlsrptAggregate> TlsrptBuffer::take() { return impl_->take(); }

bool TlsrptBuffer::flush() { return impl_->flush(); }

std::size_t TlsrptBuffer::pending_aggregates() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pending.size();
}

std::int64_t TlsrptBuffer::pending_sessions() const {
  std::lock_guard lock(impl_->mu);
  std::int64_t sessions = 0;
  for (const auto& [key, a] : impl_->pending) sessions += a.sessions;
  return sessions;
}

}  // namespace mtasts::policy
