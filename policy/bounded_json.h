// JSON from strangers (received TLSRPT reports, libtlsrpt datagrams), parsed
// with bounds: at most `max_bytes` long and `max_depth` arrays/objects deep
// (parsing stops at the first deeper one, before it is built), invalid UTF-8
// an error. Pure.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace mtasts::policy {

// One printable sentence: "larger than N bytes", "nested deeper than N
// levels" or "invalid JSON: <the parser's words, with line and column>".
struct JsonError {
  std::string message;
};

Result<nlohmann::json, JsonError> parse_bounded_json(std::string_view text, std::size_t max_bytes,
                                                     int max_depth);

}  // namespace mtasts::policy
