// The resolver's memory cache: bounded LRU, and the dirty marks the resolver
// flushes to the store in batches (last_used).
#include <gtest/gtest.h>

#include <set>

#include "policy/engine/memory_cache.h"

namespace mtasts::policy {
namespace {

CacheEntry used_entry(const std::string& domain, std::int64_t last_used) {
  StoredPolicy p;
  p.domain = domain;
  p.last_used = last_used;
  p.last_checked = last_used - 1;
  p.last_error = "e-" + domain;
  CacheEntry entry;
  entry.policy = p;
  entry.last_used_dirty = true;
  return entry;
}

TEST(MemoryCache, TakeDirtyReturnsEachUsedPolicyOnceInBatches) {
  MemoryCache cache(10000);
  for (int i = 0; i < 2500; ++i)
    cache.put("d" + std::to_string(i) + ".example",
              used_entry("d" + std::to_string(i) + ".example", 1000 + i));
  CacheEntry no_policy;  // a remembered "no policy" has nothing to write
  no_policy.last_used_dirty = true;
  cache.put("none.example", no_policy);
  std::set<std::string> seen;
  std::vector<std::size_t> batches;
  for (auto batch = cache.take_dirty(1000); !batch.empty(); batch = cache.take_dirty(1000)) {
    batches.push_back(batch.size());
    for (const auto& use : batch) {
      EXPECT_TRUE(seen.insert(use.domain).second) << use.domain << " taken twice";
      EXPECT_EQ(use.last_checked, use.last_used - 1);
      EXPECT_EQ(use.last_error, "e-" + use.domain);
    }
  }
  EXPECT_EQ(batches, (std::vector<std::size_t>{1000, 1000, 500}));
  EXPECT_EQ(seen.size(), 2500u);
  EXPECT_FALSE(seen.contains("none.example"));
}

// A flush takes only the marks queued when it starts: a use during the flush
// queues behind them, so steady traffic cannot keep a flush going forever.
TEST(MemoryCache, MarksMadeDuringATakeQueueBehindTheOlderOnes) {
  MemoryCache cache(100);
  cache.put("a.example", used_entry("a.example", 1));
  cache.put("b.example", used_entry("b.example", 2));
  cache.mark_used("a.example");  // already dirty: not queued twice
  EXPECT_EQ(cache.dirty_queued(), 2u);
  const auto first = cache.take_dirty(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].domain, "a.example");
  cache.mark_used("a.example");  // used again while the flush writes
  EXPECT_EQ(cache.dirty_queued(), 2u);
  const auto second = cache.take_dirty(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].domain, "b.example") << "the older mark comes first";
  EXPECT_EQ(cache.take_dirty(10).size(), 1u);
  EXPECT_EQ(cache.dirty_queued(), 0u);
}

TEST(MemoryCache, EvictedAndErasedEntriesAreSkipped) {
  MemoryCache cache(2);
  cache.put("a.example", used_entry("a.example", 1));
  cache.put("b.example", used_entry("b.example", 2));
  cache.put("c.example", used_entry("c.example", 3));  // evicts a
  cache.erase("b.example");
  const auto taken = cache.take_dirty(10);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].domain, "c.example");
  EXPECT_EQ(cache.dirty_queued(), 0u);
}

TEST(MemoryCache, EvictsTheLeastRecentlyUsed) {
  MemoryCache cache(2);
  cache.put("a.example", used_entry("a.example", 1));
  cache.put("b.example", used_entry("b.example", 2));
  ASSERT_NE(cache.find("a.example"), nullptr);  // a is now the most recent
  cache.put("c.example", used_entry("c.example", 3));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.find("a.example"), nullptr);
  EXPECT_EQ(cache.find("b.example"), nullptr);
  EXPECT_NE(cache.find("c.example"), nullptr);
}

}  // namespace
}  // namespace mtasts::policy
