// A bounded least-recently-used map from domain to what the engine last
// learnt about it, in front of the store so warm lookups never touch the disk.
// Not thread-safe: the Resolver guards it with its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
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
  bool last_used_dirty = false;        // last_used changed since the last flush (see mark_used)
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
  // An entry put with last_used_dirty set is queued as if marked used.
  void put(const std::string& domain, CacheEntry entry);
  void erase(const std::string& domain);
  // Records that the entry's last_used changed and must reach the store.
  void mark_used(const std::string& domain);
  // Looks at the next `max` queued marks (oldest first) and returns the usage
  // columns of those still present with a policy; clears their marks. A mark
  // made after this call queues behind every older one, so a caller that
  // takes only dirty_queued() marks finishes even under steady traffic.
  std::vector<PolicyUse> take_dirty(std::size_t max);
  // Queued marks, an upper bound on the dirty entries (evicted ones linger).
  std::size_t dirty_queued() const { return dirty_queue_.size(); }
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
  // Names in the order they became dirty; a name is queued once per clean-to-
  // dirty transition, so taking a batch never scans the whole cache.
  std::deque<std::string> dirty_queue_;
};

}  // namespace mtasts::policy
