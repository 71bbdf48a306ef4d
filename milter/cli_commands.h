// The operator subcommands, one function each; cli.cpp parses the command
// line and calls them. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "milter/config.h"

namespace mtasts::milter {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;    // invalid input / bad usage
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
inline constexpr int kExitConfig = 78;    // EX_CONFIG

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

}  // namespace mtasts::milter
