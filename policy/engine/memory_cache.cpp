#include "policy/engine/memory_cache.h"

namespace mtasts::policy {

CacheEntry* MemoryCache::find(const std::string& domain) {
  const auto it = index_.find(domain);
  if (it == index_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second.position);
  return &it->second.entry;
}

void MemoryCache::put(const std::string& domain, CacheEntry entry) {
  const bool used = entry.last_used_dirty;
  entry.last_used_dirty = false;  // mark_used sets it again and queues the name
  if (CacheEntry* existing = find(domain)) {
    const bool was_dirty = existing->last_used_dirty;
    *existing = std::move(entry);
    existing->last_used_dirty = was_dirty;  // still queued
    if (used) mark_used(domain);
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
  if (used) mark_used(domain);
}

void MemoryCache::erase(const std::string& domain) {
  const auto it = index_.find(domain);
  if (it == index_.end()) return;
  order_.erase(it->second.position);
  index_.erase(it);
}

void MemoryCache::mark_used(const std::string& domain) {
  const auto it = index_.find(domain);
  if (it == index_.end() || it->second.entry.last_used_dirty) return;
  it->second.entry.last_used_dirty = true;
  dirty_queue_.push_back(domain);
}

std::vector<PolicyUse> MemoryCache::take_dirty(std::size_t max) {
  std::vector<PolicyUse> dirty;
  for (std::size_t n = 0; n < max && !dirty_queue_.empty(); ++n) {
    const auto it = index_.find(dirty_queue_.front());
    dirty_queue_.pop_front();
    // Gone (evicted, erased) or already taken through an older mark.
    if (it == index_.end() || !it->second.entry.last_used_dirty) continue;
    it->second.entry.last_used_dirty = false;
    if (!it->second.entry.policy) continue;  // a remembered "no policy" has nothing to write
    const StoredPolicy& p = *it->second.entry.policy;
    dirty.push_back({p.domain, p.last_checked, p.last_used, p.last_error});
  }
  return dirty;
}

}  // namespace mtasts::policy
