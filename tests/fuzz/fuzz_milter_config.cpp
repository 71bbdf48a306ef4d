// libFuzzer target: parse_config (milter/config.h, load_config's parser for
// text in memory) on arbitrary TOML. A file per input was ten times slower:
// ext4 flushes a file truncated and rewritten on every close.
// Checks: errors are values with the documented codes ("config-read" cannot
// happen: there is no file), never exceptions; a loaded configuration
// keeps the rules config.cpp states (choices, normalised lists, octal mode);
// and render_config's output loads back to the same configuration (it is a
// fixed point: rendering it again gives the same text).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>
#include <string>
#include <string_view>

#include "milter/config.h"
#include "policy/domain.h"

namespace {

using mtasts::milter::Config;

void require(bool condition) {
  if (!condition) std::abort();
}

// This process's scratch file, removed when the fuzzer exits.
auto load(std::string_view text) {
  try {
    return mtasts::milter::parse_config(text, "fuzz.toml");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parse_config threw: %s\n", e.what());
    std::abort();
  }
}

bool normalised(const std::string& name) {
  const auto again = mtasts::policy::normalize_domain(name);
  return again && *again == name;
}

void check_rules(const Config& c) {
  // Choices (actions, modes) are checked by the round trip: a value that
  // render_config cannot name does not load again.
  static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error"};
  require(kLevels.contains(c.log_level));
  for (const auto& d : c.decision.excluded_domains) require(normalised(d));
  for (const auto& d : c.decision.trusted_relays) require(normalised(d));
  for (const auto& t : c.decision.smtp_transports) {
    require(!t.empty());
    for (const char ch : t) require(!(ch >= 'A' && ch <= 'Z'));
  }
  const std::string& mode = c.socket_mode;
  require(!mode.empty() && mode.size() <= 4 && mode.find_first_not_of("01234567") == std::string::npos);
  require(std::stoul(mode, nullptr, 8) <= 0777);
  require(c.decision.rcpt_deadline_ms >= 100 && c.decision.message_budget_ms >= 100);
  require(c.probe.max_parallel >= 1 && c.policy.max_jobs >= 1 && c.policy.memory_cache_entries >= 1);
  require(c.policy.dns_timeout == std::chrono::seconds(c.dns_timeout_seconds));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using mtasts::milter::render_config;
  const auto loaded = load(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!loaded) {
    static const std::set<std::string> kCodes{"config-syntax", "config-key", "config-value", "config-empty"};
    if (!kCodes.contains(loaded.error().code)) {
      std::fprintf(stderr, "unexpected error %s: %s\n", loaded.error().code.c_str(),
                   loaded.error().detail.c_str());
      std::abort();
    }
    require(!loaded.error().detail.empty());
    return 0;
  }
  check_rules(*loaded);
  const std::string rendered = render_config(*loaded);
  const auto again = load(rendered);
  if (!again) {
    std::fprintf(stderr, "rendered configuration does not load: %s: %s\n", again.error().code.c_str(),
                 again.error().detail.c_str());
    std::abort();
  }
  require(render_config(*again) == rendered);
  return 0;
}
