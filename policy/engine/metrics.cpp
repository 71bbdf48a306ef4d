// In-memory metrics; see the header. Why a claimed-once slot table for
// labels: a lock (or a map guarded by one) on the warm decision path is what
// the metrics must not cost; label sets are few and never go away, so a slot
// once claimed keeps its key and only its count moves. The one wait: a
// thread that meets a slot in the middle of its claim (two short copies,
// once per label set for the life of the process) yields until it is done.
#include "policy/engine/metrics.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

namespace mtasts::policy::metrics {
namespace {

std::atomic<bool> g_enabled{false};

constexpr std::uint64_t kFree = 0;
constexpr std::uint64_t kClaiming = 1;

std::uint64_t fnv1a(std::string_view a, std::string_view b) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const std::string_view part : {a, std::string_view("\0", 1), b}) {
    for (const char c : part) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
  }
  return h | 2;  // never kFree nor kClaiming
}

std::string_view cut(std::string_view text, std::size_t max) {
  return text.substr(0, std::min(text.size(), max));
}

// A label value in the exposition format: \, " and newline escaped.
std::string escaped(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

LabeledCounter::LabeledCounter(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void LabeledCounter::add(std::string_view first, std::string_view second, std::uint64_t n) {
  if (!enabled()) return;
  first = cut(first, kMaxLabelBytes);
  second = cut(second, kMaxLabelBytes);
  const std::uint64_t tag = fnv1a(first, second);
  for (std::size_t i = 0; i < kSlots; ++i) {
    Slot& slot = slots_[(tag + i) % kSlots];
    std::uint64_t seen = slot.tag.load(std::memory_order_acquire);
    if (seen == kFree) {
      if (slot.tag.compare_exchange_strong(seen, kClaiming, std::memory_order_acq_rel)) {
        // first.copy(): no memcpy from the null data() of an empty view.
        first.copy(slot.key.data(), first.size());
        second.copy(slot.key.data() + first.size() + 1, second.size());
        slot.count.fetch_add(n, std::memory_order_relaxed);
        slot.tag.store(tag, std::memory_order_release);
        return;
      }
      // Another thread claimed it meanwhile: `seen` is its tag now.
    }
    // Being written by another thread: once per slot in its life, for the
    // time of two short copies; wait for its key rather than miscount.
    while (seen == kClaiming) {
      std::this_thread::yield();
      seen = slot.tag.load(std::memory_order_acquire);
    }
    if (seen != tag) continue;
    const char* key = slot.key.data();
    if (std::string_view(key) == first && std::string_view(key + std::strlen(key) + 1) == second) {
      slot.count.fetch_add(n, std::memory_order_relaxed);
      return;
    }
  }
  other_.fetch_add(n, std::memory_order_relaxed);  // table full
}

std::uint64_t LabeledCounter::value(std::string_view first, std::string_view second) const {
  std::uint64_t total = 0;
  for (const Slot& slot : slots_) {
    if (slot.tag.load(std::memory_order_acquire) <= kClaiming) continue;
    const char* key = slot.key.data();
    if (std::string_view(key) == first && std::string_view(key + std::strlen(key) + 1) == second)
      total += slot.count.load(std::memory_order_relaxed);
  }
  return total;
}

void LabeledCounter::write(std::string& out) const {
  header(out, name_, help_, "counter");
  const auto labels = [this](std::string_view first, std::string_view second) {
    std::string text = "{" + label_names_[0] + "=\"" + escaped(first) + "\"";
    if (label_names_.size() > 1) text += "," + label_names_[1] + "=\"" + escaped(second) + "\"";
    return text + "}";
  };
  for (const Slot& slot : slots_) {
    if (slot.tag.load(std::memory_order_acquire) <= kClaiming) continue;
    const char* key = slot.key.data();
    out += name_ + labels(key, key + std::strlen(key) + 1) + " " +
           std::to_string(slot.count.load(std::memory_order_relaxed)) + "\n";
  }
  if (const auto other = other_.load(std::memory_order_relaxed); other > 0)
    out += name_ + labels("other", "other") + " " + std::to_string(other) + "\n";
}

void Counter::write(std::string& out) const {
  header(out, name_, help_, "counter");
  out += name_ + " " + std::to_string(value()) + "\n";
}

void Gauge::write(std::string& out) const {
  header(out, name_, help_, "gauge");
  out += name_ + " " + std::to_string(value()) + "\n";
}

void Histogram::observe(std::chrono::steady_clock::duration elapsed) {
  if (!enabled()) return;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const auto bucket =
      static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin());
  if (bucket < kBounds.size()) buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()),
      std::memory_order_relaxed);
}

void Histogram::write(std::string& out) const {
  header(out, name_, help_, "histogram");
  std::uint64_t cumulative = 0;
  char bound[32];
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::snprintf(bound, sizeof bound, "%g", kBounds[i]);
    out += name_ + "_bucket{le=\"" + bound + "\"} " + std::to_string(cumulative) + "\n";
  }
  const std::uint64_t count = count_.load(std::memory_order_relaxed);
  out += name_ + "_bucket{le=\"+Inf\"} " + std::to_string(std::max(count, cumulative)) + "\n";
  char sum[32];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
  out += name_ + "_sum " + sum + "\n";
  out += name_ + "_count " + std::to_string(count) + "\n";
}

Registry& registry() {
  static Registry instance;
  return instance;
}

std::string exposition(const std::string& extra) {
  const Registry& r = registry();
  std::string out;
  r.decisions.write(out);
  r.verdicts.write(out);
  r.policy_lookups.write(out);
  r.policy_memory_hits.write(out);
  r.fetches.write(out);
  r.refreshes.write(out);
  r.downgrades.write(out);
  r.discoveries_running.write(out);
  r.discovery_seconds.write(out);
  r.probes_running.write(out);
  r.probe_seconds.write(out);
  r.probes.write(out);
  r.socketmap_requests.write(out);
  r.socketmap_seconds.write(out);
  r.tlsrpt_sessions.write(out);
  r.tlsrpt_flushed.write(out);
  r.tlsrpt_dropped.write(out);
  return out + extra;
}

}  // namespace mtasts::policy::metrics
