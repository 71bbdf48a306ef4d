// A bounded least-recently-used map from domain to what the engine last
// learnt about it, in front of the store so warm lookups never touch the disk.
// Not thread-safe: the Resolver guards it with its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/sources.h"

namespace mtasts::policy {

struct CacheEntry {
  std::optional<StoredPolicy> policy;  // nullopt: a definite "no policy"
  std::int64_t checked_at = 0;         // when the TXT record was last looked at
  bool last_used_dirty = false;        // last_used changed since the last flush
  // Set when the cached policy is kept although discovery failed: answers
  // from memory then say "stale" with the same reason until the next check.
  bool stale = false;
  std::optional<ResultType> error_type;
  std::string error_reason;
};

class MemoryCache {
 public:
  explicit MemoryCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Returns the entry and marks it most recently used; nullptr when absent.
  CacheEntry* find(const std::string& domain);
  // Inserts or replaces; evicts the least recently used entry when full.
  void put(const std::string& domain, CacheEntry entry);
  void erase(const std::string& domain);
  // Up to `max` domains whose last_used changed since they were last taken,
  // with their usage columns; clears their dirty marks.
  std::vector<PolicyUse> take_dirty(std::size_t max);
  std::size_t size() const { return index_.size(); }

 private:
  using Order = std::list<std::string>;
  struct Slot {
    CacheEntry entry;
    Order::iterator position;
  };
  std::size_t capacity_;
  Order order_;  // front = most recently used
  std::unordered_map<std::string, Slot> index_;
};

}  // namespace mtasts::policy
