#include "policy/memory_cache.h"

namespace mtasts::policy {

CacheEntry* MemoryCache::find(const std::string& domain) {
  const auto it = index_.find(domain);
  if (it == index_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second.position);
  return &it->second.entry;
}

void MemoryCache::put(const std::string& domain, CacheEntry entry) {
  if (CacheEntry* existing = find(domain)) {
    *existing = std::move(entry);
    return;
  }
  if (index_.size() >= capacity_) {
    // Dirty last_used marks of an evicted entry are lost on purpose: last_used
    // is advisory (operators' "is this domain still mailed?"), not a decision input.
    index_.erase(order_.back());
    order_.pop_back();
  }
  order_.push_front(domain);
  index_.emplace(domain, Slot{std::move(entry), order_.begin()});
}

void MemoryCache::erase(const std::string& domain) {
  const auto it = index_.find(domain);
  if (it == index_.end()) return;
  order_.erase(it->second.position);
  index_.erase(it);
}

std::vector<PolicyUse> MemoryCache::take_dirty(std::size_t max) {
  std::vector<PolicyUse> dirty;
  for (auto& [domain, slot] : index_) {
    if (dirty.size() >= max) break;
    if (!slot.entry.last_used_dirty || !slot.entry.policy) continue;
    slot.entry.last_used_dirty = false;
    const StoredPolicy& p = *slot.entry.policy;
    dirty.push_back({p.domain, p.last_checked, p.last_used, p.last_error});
  }
  return dirty;
}

}  // namespace mtasts::policy
