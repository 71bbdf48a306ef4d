// The operator subcommands, one function each; cli.cpp parses the command
// line and calls them. Each returns the process exit code.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "milter/config.h"
#include "policy/logfmt.h"

namespace mtasts::milter {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;    // invalid input / bad usage
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
inline constexpr int kExitConfig = 78;    // EX_CONFIG

// Operator input a message echoes (a domain, a file name, an --mx host):
// printable ASCII only (policy/logfmt.h: other bytes become '?') and cut at
// this many bytes, marked "...", so a pasted escape sequence cannot drive the
// terminal and a 100 kB argument cannot flood it. A domain name has at most 253.
inline constexpr std::size_t kShownInputBytes = 256;
// A whole message that may quote input (CLI11's, the config loader's).
inline constexpr std::size_t kShownMessageBytes = 512;

inline std::string shown_input(std::string_view input) {
  return policy::printable_ascii(input, kShownInputBytes);
}
inline std::string shown_message(std::string_view message) {
  return policy::printable_ascii(message, kShownMessageBytes);
}

// JSON output: text that is not UTF-8 (an --mx argument, a server's reason)
// is printed with U+FFFD instead of making nlohmann::json throw.
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// RFC 8461 §3-§5 resolution of one domain, using and updating the cache.
int check_command(const Config& config, const std::string& domain, bool json);

// Validates an operator's own policy file ("-" for stdin); `mx_hosts` are
// checked against it (§4.1).
int lint_policy_command(const std::string& file, const std::vector<std::string>& mx_hosts, bool json);

// Validates a `_mta-sts` TXT RRset, one argument per record (§3.1).
int lint_txt_command(const std::vector<std::string>& records, bool json);

struct CacheArgs {
  std::string action;   // list | show | forget | import | export | refresh
  std::string operand;  // DOMAIN or FILE
  bool force = false;
};
int cache_command(const Config& config, const CacheArgs& args);

// RFC 8460 reports: build | send | status | show (README "TLSRPT reports").
struct ReportArgs {
  std::string action;
  std::string day;      // --day YYYY-MM-DD ("" : yesterday, UTC; status: every day)
  std::string out_dir;  // build --out DIR: also write the .json.gz files there
  bool json = false;    // status, show: JSON
  bool now = false;     // send --now: ignore the send window
};
int report_command(const Config& config, const ReportArgs& args);

// `report read FILE|-`: a report someone sent us (.json or .json.gz),
// validated and summarised; no configuration needed.
int report_read_command(const std::string& file, bool json);

}  // namespace mtasts::milter
