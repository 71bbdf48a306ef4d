// The daemon's configuration: one table of {name, default, check} settings
// (config.cpp), read from a TOML file or taken as embedded defaults when no
// file is given. Unknown keys and out-of-range values are errors: a
// misspelt setting must never be silently ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/net/curl_fetcher.h"
#include "policy/net/unbound_dns.h"
#include "policy/resolver.h"
#include "policy/result.h"

namespace mtasts::milter {

// What the milter does with a recipient whose verdict calls for action.
struct DecisionConfig {
  long rcpt_deadline_ms = 8000;     // per recipient domain; well under Postfix's 30 s milter_command_timeout
  long message_budget_ms = 20000;   // per message, all recipients together
  std::string enforce_action = "tempfail";  // tempfail | reject | quarantine | tag | off
  std::string testing_action = "off";       // tag | off
  bool strict_testing = false;              // testing treated as enforce
  std::string non_smtp_action = "tag";      // quarantine | tag | off
  std::vector<std::string> excluded_domains;
  std::vector<std::string> smtp_transports{"smtp", "relay", "esmtp", "smtp8", "dsmtp"};
  std::vector<std::string> trusted_relays;  // outside the RFC: relays accepted unchecked
  // {daemon_name} values (Postfix: milter_macro_daemon_name) whose mail is
  // decided as mail without next-hop macros, at end of message.
  std::vector<std::string> non_smtp_daemon_names;
  std::string error_action = "continue";    // continue | tempfail, on an internal error
};

struct ProbeConfig {
  bool enabled = true;
  std::string ehlo_name = "mta-sts-milter.invalid";
  std::string ca_file;              // empty: the system trust store
  long step_timeout_ms = 5000;
  std::int64_t success_ttl = 3600;
  std::int64_t failure_ttl = 300;
  std::size_t max_parallel = 512;   // probes running at once
};

// TLSRPT records (RFC 8460): daily counts in the store, written in batches.
struct TlsrptConfig {
  std::string sending_mta_ip;  // empty: each probe's own source address
  long flush_interval = 30;    // seconds between writes of the counts
};

struct Config {
  std::string milter_socket = "inet:8891@127.0.0.1";
  std::string socket_mode = "0660";  // unix sockets
  std::string socket_owner;          // unix sockets; empty: the user the daemon runs as
  std::string socket_group;          // unix sockets; empty: that user's group
  std::string user;                  // drop privileges to this user after opening the socket
  DecisionConfig decision;
  ProbeConfig probe;
  std::string store_path = "/var/lib/mta-sts-milter/cache.db";
  policy::net::UnboundConfig dns;
  long dns_timeout_seconds = 5;
  policy::net::CurlFetcherConfig https;
  policy::ResolverConfig policy;
  TlsrptConfig tlsrpt;
  long decision_deadline_ms = 0;  // 0: `check` waits for discovery to finish
  std::string log_level = "info";
  bool log_syslog = false;  // syslog facility mail instead of stderr
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
