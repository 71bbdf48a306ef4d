// One way to put text we do not control (MTA macros, server replies, DNS
// data, operator rows, imported JSON) into a logfmt line: a value is a bare
// token when it is plain, otherwise one quoted string with `"` and `\`
// escaped and every control or non-ASCII byte written as \xHH, so it can
// never end the line, start another key or hide in a terminal. Bounded:
// longer text is cut and marked with "...". Pure: no logging here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mtasts::policy {

inline constexpr std::size_t kLogValueMaxBytes = 256;

// "-" for empty text (a key is never left without a value).
std::string logfmt_value(std::string_view text, std::size_t max_bytes = kLogValueMaxBytes);

// Text for a human-readable detail (an error message, a reply line) that
// ends up inside a quoted logfmt value or a reply: printable ASCII only
// (others become '?'), bounded, no escaping needed afterwards by
// logfmt_value beyond quotes.
std::string printable_ascii(std::string_view text, std::size_t max_bytes = kLogValueMaxBytes);

}  // namespace mtasts::policy
