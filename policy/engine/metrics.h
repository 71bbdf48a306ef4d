// The daemon's metrics (README "Metrics"), kept in memory for the
// Prometheus text endpoint (milter/metrics_server.h). Counting costs no lock
// on any path: counters and histogram buckets are relaxed atomics, and
// labelled counters find their slot in a fixed open-addressing table whose
// slots are claimed once with a compare-and-swap (metrics.cpp says why). Off (the default), every
// update is one relaxed load of the switch and a return.
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::policy::metrics {

void set_enabled(bool on);
bool enabled();

// A counter with one or two label values ("action", "reason"). At most
// kSlots distinct label sets; later new ones are counted under "other".
// Label values are cut to kMaxLabelBytes.
class LabeledCounter {
 public:
  static constexpr std::size_t kSlots = 512;
  static constexpr std::size_t kMaxLabelBytes = 63;

  LabeledCounter(std::string name, std::string help, std::vector<std::string> label_names);
  void add(std::string_view first, std::string_view second = {}, std::uint64_t n = 1);
  // Appends the metric in the text exposition format.
  void write(std::string& out) const;
  std::uint64_t value(std::string_view first, std::string_view second = {}) const;  // tests

 private:
  struct Slot {
    std::atomic<std::uint64_t> tag{0};  // 0 free, 1 being claimed, else the key's hash with bit 1 set
    std::array<char, 2 * (kMaxLabelBytes + 1)> key{};  // "first\0second\0"
    std::atomic<std::uint64_t> count{0};
  };
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::array<Slot, kSlots> slots_;
  std::atomic<std::uint64_t> other_{0};
};

class Counter {
 public:
  Counter(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  void add(std::uint64_t n = 1) {
    if (enabled()) count_.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return count_.load(std::memory_order_relaxed); }
  void write(std::string& out) const;

 private:
  std::string name_, help_;
  std::atomic<std::uint64_t> count_{0};
};

// Observations in seconds; buckets 1 ms .. 60 s.
class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1.0,  5.0,   60.0};
  Histogram(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  void observe(std::chrono::steady_clock::duration elapsed);
  void write(std::string& out) const;
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::string name_, help_;
  std::array<std::atomic<std::uint64_t>, kBounds.size()> buckets_{};  // not cumulative
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_us_{0};
};

// Up/down counts (work running now).
class Gauge {
 public:
  Gauge(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  void add(std::int64_t n) {
    if (enabled()) value_.fetch_add(n, std::memory_order_relaxed);
  }
  void write(std::string& out) const;
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::string name_, help_;
  std::atomic<std::int64_t> value_{0};
};

// A Gauge up for the life of the guard (a discovery or probe running).
class Running {
 public:
  explicit Running(Gauge& gauge) : gauge_(gauge), counted_(enabled()) {
    if (counted_) gauge_.add(1);
  }
  ~Running() {
    if (counted_) gauge_.add(-1);
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

 private:
  Gauge& gauge_;
  bool counted_;
};

// Every metric of the daemon. Names are stable: contrib/grafana's dashboard
// and the README list them (tests/integration/metrics.sh checks both).
struct Registry {
  LabeledCounter decisions{
      "mtasts_decisions_total", "Recipient-domain decisions by action and reason", {"action", "reason"}};
  LabeledCounter verdicts{
      "mtasts_verdicts_total", "Decisions by RFC 8460 result type (none: no failure)", {"result_type"}};
  LabeledCounter policy_lookups{
      "mtasts_policy_lookups_total",
      "Policy resolutions by where the answer came from (cache, fetched, stale, none)",
      {"source"}};
  Counter policy_memory_hits{"mtasts_policy_memory_hits_total",
                             "Resolutions answered from the in-memory cache without any I/O"};
  LabeledCounter fetches{
      "mtasts_policy_fetches_total", "HTTPS policy fetches by outcome (ok or the reason)", {"outcome"}};
  LabeledCounter refreshes{"mtasts_refreshes_total", "Background refreshes by outcome", {"outcome"}};
  Counter downgrades{
      "mtasts_policy_downgrade_warnings_total",
      "A cached enforce policy was kept against a weaker or missing one (RFC 8461 section 10)"};
  Gauge discoveries_running{"mtasts_discoveries_running", "Policy discoveries running now"};
  Histogram discovery_seconds{"mtasts_discovery_duration_seconds",
                              "Time of one policy discovery (TXT + fetch)"};
  Gauge probes_running{"mtasts_probes_running", "STARTTLS probes running now"};
  Histogram probe_seconds{"mtasts_probe_duration_seconds", "Time of one STARTTLS probe"};
  LabeledCounter probes{"mtasts_probes_total", "STARTTLS probes by outcome", {"outcome"}};
  LabeledCounter socketmap_requests{
      "mtasts_socketmap_requests_total", "Socketmap lookups by answer", {"answer"}};
  Histogram socketmap_seconds{"mtasts_socketmap_request_duration_seconds",
                              "Time to answer one socketmap lookup"};
  Counter tlsrpt_sessions{"mtasts_tlsrpt_sessions_recorded_total", "TLSRPT sessions recorded"};
  Counter tlsrpt_flushed{"mtasts_tlsrpt_aggregates_flushed_total", "TLSRPT counts written to the store"};
  Counter tlsrpt_dropped{"mtasts_tlsrpt_sessions_dropped_total",
                         "TLSRPT sessions dropped (buffer full, or lost at the end)"};
};

Registry& registry();

// The whole exposition: every metric of the registry, then `extra` (gauges
// read at scrape time, already in the text format).
std::string exposition(const std::string& extra = {});

}  // namespace mtasts::policy::metrics
