// libFuzzer target: load_config (milter/config.h) on an arbitrary TOML file.
// There is no in-memory entry point, so each input is written to a file of
// this process's own in the temporary folder and loaded from there.
// Checks: errors are values with the documented codes ("config-read" cannot
// happen: the file is readable), never exceptions; a loaded configuration
// keeps the rules config.cpp states (choices, normalised lists, octal mode);
// and render_config's output loads back to the same configuration (it is a
// fixed point: rendering it again gives the same text).
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

#include "milter/config.h"
#include "policy/domain.h"

namespace {

using mtasts::milter::Config;

void require(bool condition) {
  if (!condition) std::abort();
}

// This process's scratch file, removed when the fuzzer exits.
class ScratchFile {
 public:
  ScratchFile()
      : path_((std::filesystem::temp_directory_path() /
               ("mtasts-fuzz-config-" + std::to_string(::getpid()) + ".toml"))
                  .string()) {}
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string& scratch_path() {
  static const ScratchFile file;
  return file.path();
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  require(static_cast<bool>(out.flush()));
}

auto load(std::string_view text) {
  write_file(scratch_path(), text);
  try {
    return mtasts::milter::load_config(scratch_path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load_config threw: %s\n", e.what());
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
    static const std::set<std::string> kCodes{"config-syntax", "config-key", "config-value"};
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
