#include "policy/resolution.h"

namespace mtasts::policy {

std::string_view to_string(PolicySource source) {
  switch (source) {
    case PolicySource::Cache:
      return "cache";
    case PolicySource::Fetched:
      return "fetched";
    case PolicySource::Stale:
      return "stale";
    case PolicySource::None:
      return "none";
  }
  return "none";
}

}  // namespace mtasts::policy
