// Why a plain map and a scan when full: entries live fetch_backoff seconds
// (5 minutes), so the map only fills when that many distinct policy hosts
// fail within one back-off; the scan is then rare and bounded by capacity.
#include "policy/engine/fetch_backoff.h"

#include <algorithm>

namespace mtasts::policy {

std::optional<FetchFailure> FetchBackoff::active(const std::string& domain, const std::string& txt_id,
                                                 std::int64_t now) const {
  const auto it = failures_.find(domain);
  if (it == failures_.end() || it->second.txt_id != txt_id || it->second.retry_at <= now) return std::nullopt;
  return it->second;
}

void FetchBackoff::remember(const FetchFailure& failure, std::int64_t now) {
  if (!failures_.contains(failure.domain) && failures_.size() >= capacity_) make_room(now);
  failures_.insert_or_assign(failure.domain, failure);
}

void FetchBackoff::make_room(std::int64_t now) {
  std::erase_if(failures_, [now](const auto& entry) { return entry.second.retry_at <= now; });
  if (failures_.size() < capacity_) return;
  const auto soonest = std::min_element(failures_.begin(), failures_.end(), [](const auto& a, const auto& b) {
    return a.second.retry_at < b.second.retry_at;
  });
  failures_.erase(soonest);
}

}  // namespace mtasts::policy
