// The daemon's configuration: one table of {name, default, check} settings
// (config.cpp), read from a TOML file or taken as embedded defaults when no
// file is given. Unknown keys and out-of-range values are errors: a
// misspelt setting must never be silently ignored.
#pragma once

#include <string>

#include "policy/net/curl_fetcher.h"
#include "policy/net/unbound_dns.h"
#include "policy/resolver.h"
#include "policy/result.h"

namespace mtasts::milter {

struct Config {
  std::string milter_socket = "inet:8891@127.0.0.1";
  std::string store_path = "/var/lib/mta-sts-milter/cache.db";
  policy::net::UnboundConfig dns;
  long dns_timeout_seconds = 5;
  policy::net::CurlFetcherConfig https;
  policy::ResolverConfig policy;
  long decision_deadline_ms = 0;  // 0: `check` waits for discovery to finish
  std::string log_level = "info";
};

// Reads `path` (TOML); an empty path means the embedded defaults.
// Errors: code "config-read" (file unreadable), "config-syntax" (TOML error,
// detail has line:column), "config-key" (unknown key), "config-value"
// (wrong type or out of range; detail names the key and the rule).
policy::Result<Config> load_config(const std::string& path);

// The effective configuration as TOML text, every key with its value and a
// one-line comment (for --print-config).
std::string render_config(const Config& config);

}  // namespace mtasts::milter
