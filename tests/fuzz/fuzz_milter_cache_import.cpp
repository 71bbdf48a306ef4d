// libFuzzer target: `cache import` lines. The line loop of import_policies
// (milter/cli_cache.cpp) is internal, so this target repeats it: split on
// '\n', skip blank lines, nlohmann::json::parse without exceptions, then the
// public stored_from_json (milter/json_views.h), which does the checking.
// Checks: errors are values with the documented codes, never exceptions; an
// imported policy has a normalised domain and a `policy` that is what its
// `raw` parses to; and `cache export` of it (stored_json) imports back to the
// same policy whatever `now` is then.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "milter/json_views.h"
#include "policy/domain.h"
#include "policy/policy.h"

namespace {

using mtasts::policy::StoredPolicy;

constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::int64_t kLater = kNow + 86'400;

void require(bool condition) {
  if (!condition) std::abort();
}

bool same(const StoredPolicy& a, const StoredPolicy& b) {
  return a.domain == b.domain && a.txt_id == b.txt_id && a.raw == b.raw && a.policy == b.policy &&
         a.fetched_at == b.fetched_at && a.expires_at == b.expires_at && a.last_checked == b.last_checked &&
         a.last_used == b.last_used && a.dnssec == b.dnssec && a.last_error == b.last_error;
}

void check_line(const std::string& line) {
  using mtasts::milter::stored_from_json;
  const auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return;
  const auto p = stored_from_json(j, kNow);
  if (!p) {
    static const std::set<std::string> kCodes{"import-json", "import-domain", "import-policy",
                                              "import-txt-id", "import-time"};
    require(kCodes.contains(p.error().code) && !p.error().detail.empty());
    return;
  }
  const auto domain = mtasts::policy::normalize_domain(p->domain);
  require(domain && *domain == p->domain);
  // Times are never negative, never far ahead, and an import never makes a
  // policy outlive its max_age.
  require(p->fetched_at >= 0 && p->fetched_at <= kNow + 86400);
  require(p->expires_at >= 0 && p->expires_at <= p->fetched_at + p->policy.max_age);
  require(p->last_checked >= 0 && p->last_used >= 0);
  const auto parsed = mtasts::policy::parse_policy(p->raw);
  require(parsed.policy && *parsed.policy == p->policy);
  // Every time is in the export, so `now` no longer matters.
  const std::string exported = mtasts::milter::stored_json(*p).dump();
  const auto again = stored_from_json(nlohmann::json::parse(exported), kLater);
  require(again && same(*again, *p));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    for (;;) {
      const auto nl = input.find('\n');
      const std::string line(input.substr(0, nl));
      if (line.find_first_not_of(" \t\r") != std::string::npos) check_line(line);
      if (nl == std::string_view::npos) break;
      input.remove_prefix(nl + 1);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
