// The resolver's memory cache: bounded LRU, and the dirty marks the resolver
// flushes to the store in batches (last_used).
#include <gtest/gtest.h>

#include <set>

#include "policy/memory_cache.h"

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
