// Bounded JSON parsing; see the header. Why throwing from the parser
// callback: it is the one way to stop nlohmann's parser at the first
// container that is too deep; the exception never leaves this file.
#include "policy/bounded_json.h"

#include "policy/logfmt.h"

namespace mtasts::policy {
namespace {

struct TooDeep {};

}  // namespace

Result<nlohmann::json, JsonError> parse_bounded_json(std::string_view text, std::size_t max_bytes,
                                                     int max_depth) {
  using Json = nlohmann::json;
  if (text.size() > max_bytes) return JsonError{"larger than " + std::to_string(max_bytes) + " bytes"};
  const auto limit_depth = [max_depth](int depth, Json::parse_event_t event, Json&) {
    const bool opens =
        event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start;
    if (opens && depth >= max_depth) throw TooDeep{};
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), limit_depth);
  } catch (const TooDeep&) {
    return JsonError{"nested deeper than " + std::to_string(max_depth) + " levels"};
  } catch (const Json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 7: ..."
    std::string_view what = e.what();
    if (const std::size_t tag_end = what.find("] "); tag_end != std::string_view::npos)
      what.remove_prefix(tag_end + 2);
    return JsonError{"invalid JSON: " + printable_ascii(what)};
  }
}

}  // namespace mtasts::policy
