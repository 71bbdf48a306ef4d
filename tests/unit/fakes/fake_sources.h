// Hermetic stand-ins for the engine's sources (policy/sources.h): scripted
// DNS answers and fetch results, an in-memory store and a settable clock.
// Each counts its calls so tests can assert what did (not) hit the network.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "policy/policy.h"
#include "policy/sources.h"

namespace mtasts::testing {

using namespace mtasts::policy;

inline DnsAnswer txt_answer(std::vector<std::string> records, DnsSecurity security = DnsSecurity::Insecure) {
  return DnsAnswer{DnsStatus::Ok, security, std::move(records), ""};
}
inline DnsAnswer status_answer(DnsStatus status, DnsSecurity security = DnsSecurity::Insecure) {
  return DnsAnswer{status, security, {}, ""};
}

class FakeDns final : public Dns {
 public:
  void set(const std::string& name, DnsAnswer answer) {
    std::lock_guard lock(mu_);
    answers_[name] = std::move(answer);
  }
  DnsAnswer lookup_txt(const std::string& name, Deadline) override { return answer(name); }
  DnsAnswer lookup_addresses(const std::string& name, Deadline) override { return answer(name); }
  int calls(const std::string& name) {
    std::lock_guard lock(mu_);
    return calls_[name];
  }

 private:
  DnsAnswer answer(const std::string& name) {
    std::lock_guard lock(mu_);
    ++calls_[name];
    const auto it = answers_.find(name);
    return it == answers_.end() ? status_answer(DnsStatus::NxDomain) : it->second;
  }
  std::mutex mu_;
  std::map<std::string, DnsAnswer> answers_;
  std::map<std::string, int> calls_;
};

class FakeFetcher final : public PolicyFetcher {
 public:
  void set(const std::string& domain, Result<FetchedBody, FetchError> result) {
    std::lock_guard lock(mu_);
    results_.insert_or_assign(domain, std::move(result));
  }
  void set_delay(std::chrono::milliseconds delay) { delay_ = delay; }
  Result<FetchedBody, FetchError> fetch(const std::string& domain, std::span<const std::string>) override {
    std::this_thread::sleep_for(delay_.load());
    std::lock_guard lock(mu_);
    ++calls_[domain];
    const auto it = results_.find(domain);
    if (it == results_.end()) return FetchError{ResultType::StsPolicyFetchError, "http-404", "", false};
    return it->second;
  }
  int calls(const std::string& domain) {
    std::lock_guard lock(mu_);
    return calls_[domain];
  }

 private:
  std::mutex mu_;
  std::atomic<std::chrono::milliseconds> delay_{std::chrono::milliseconds(0)};
  std::map<std::string, Result<FetchedBody, FetchError>> results_;
  std::map<std::string, int> calls_;
};

class MemoryStore final : public PolicyStore {
 public:
  std::optional<StoredPolicy> load(const std::string& domain) override {
    std::this_thread::sleep_for(load_delay_.load());  // a writer holding SQLite's lock
    std::lock_guard lock(mu_);
    ++loads_;
    const auto it = policies_.find(domain);
    if (it == policies_.end()) return std::nullopt;
    return it->second;
  }
  Result<bool> save(const StoredPolicy& p) override {
    std::lock_guard lock(mu_);
    if (full_) return Error{"store-full", "disk full"};
    policies_[p.domain] = p;
    return true;
  }
  Result<bool> touch(const std::string& domain, std::int64_t checked, std::int64_t used,
                     const std::string& error) override {
    std::lock_guard lock(mu_);
    if (full_) return Error{"store-full", "disk full"};
    if (auto it = policies_.find(domain); it != policies_.end()) {
      it->second.last_checked = checked;
      it->second.last_used = used;
      it->second.last_error = error;
    }
    return true;
  }
  Result<bool> touch_all(std::span<const PolicyUse> uses) override {
    for (const auto& u : uses) {
      auto touched = touch(u.domain, u.last_checked, u.last_used, u.last_error);
      if (!touched) return touched;
    }
    std::lock_guard lock(mu_);
    ++touch_alls_;
    return !uses.empty();
  }
  Result<bool> forget(const std::string& domain) override {
    std::lock_guard lock(mu_);
    return policies_.erase(domain) > 0;
  }
  Result<bool> forget_expired(std::int64_t now) override {
    std::lock_guard lock(mu_);
    return std::erase_if(policies_, [now](const auto& entry) { return entry.second.expires_at <= now; }) > 0;
  }
  std::vector<std::string> domains_due(const std::function<bool(const RefreshSlot&)>& due) override {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [d, p] : policies_)
      if (due(RefreshSlot{d, p.fetched_at, p.policy.max_age, p.expires_at, p.last_used})) out.push_back(d);
    return out;
  }
  int touch_alls() {
    std::lock_guard lock(mu_);
    return touch_alls_;
  }
  std::vector<StoredPolicy> list() override {
    std::lock_guard lock(mu_);
    std::vector<StoredPolicy> out;
    for (const auto& [d, p] : policies_) out.push_back(p);
    return out;
  }
  std::optional<FetchFailure> load_failure(const std::string& domain) override {
    std::lock_guard lock(mu_);
    if (failures_broken_) return std::nullopt;  // a read error, logged by a real store
    const auto it = failures_.find(domain);
    if (it == failures_.end()) return std::nullopt;
    return it->second;
  }
  Result<bool> save_failure(const FetchFailure& f) override {
    std::lock_guard lock(mu_);
    if (full_ || failures_broken_) return Error{"store-readonly", "attempt to write a readonly database"};
    failures_[f.domain] = f;
    return true;
  }
  Result<bool> clear_failure(const std::string& domain) override {
    std::lock_guard lock(mu_);
    return failures_.erase(domain) > 0;
  }
  // The fetch_failures table can be neither written nor read (a read-only,
  // full or corrupt store).
  void set_failures_broken(bool broken) {
    std::lock_guard lock(mu_);
    failures_broken_ = broken;
  }
  void set_full(bool full) {
    std::lock_guard lock(mu_);
    full_ = full;
  }
  int loads() {
    std::lock_guard lock(mu_);
    return loads_;
  }
  void set_load_delay(std::chrono::milliseconds delay) { load_delay_ = delay; }

 private:
  std::mutex mu_;
  std::atomic<std::chrono::milliseconds> load_delay_{std::chrono::milliseconds(0)};
  int touch_alls_ = 0;
  bool full_ = false;
  bool failures_broken_ = false;
  int loads_ = 0;
  std::map<std::string, StoredPolicy> policies_;
  std::map<std::string, FetchFailure> failures_;
};

class FakeClock final : public Clock {
 public:
  std::int64_t now() const override { return now_.load(); }
  void advance(std::int64_t seconds) { now_ += seconds; }

 private:
  std::atomic<std::int64_t> now_{1'800'000'000};
};

}  // namespace mtasts::testing
