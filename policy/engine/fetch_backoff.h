// The fetch back-off of RFC 8461 §3.3 ("senders may rate-limit fetches")
// kept in memory: the failures remembered per domain until their retry_at.
// The store keeps a copy that survives a restart; this one holds when the
// store cannot be written or read (read-only, full, corrupt), so a broken
// policy host is fetched once per back-off, not once per message.
// Bounded: at most `capacity` domains; when full, expired entries go first,
// then the one that expires soonest.
// Not thread-safe: the Resolver guards it with its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "policy/sources.h"

namespace mtasts::policy {

class FetchBackoff {
 public:
  explicit FetchBackoff(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The failure remembered for `domain` under `txt_id` whose retry_at is
  // still ahead of `now`; nullopt otherwise.
  std::optional<FetchFailure> active(const std::string& domain, const std::string& txt_id,
                                     std::int64_t now) const;
  // Remembers (or replaces) the failure of failure.domain.
  void remember(const FetchFailure& failure, std::int64_t now);
  // Forgets the domain (after a successful fetch).
  void forget(const std::string& domain) { failures_.erase(domain); }
  std::size_t size() const { return failures_.size(); }

 private:
  void make_room(std::int64_t now);

  std::size_t capacity_;
  std::unordered_map<std::string, FetchFailure> failures_;
};

}  // namespace mtasts::policy
