// The daemon's configuration: one table of {name, default, check} settings
// (config.cpp), read from a TOML file or taken as embedded defaults when no
// file is given. Unknown keys and out-of-range values are errors: a
// misspelt setting must never be silently ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/engine/resolver.h"
#include "policy/net/curl_fetcher.h"
#include "policy/net/unbound_dns.h"
#include "policy/result.h"

namespace mtasts::milter {

// What the milter does with one recipient. Config words are parsed into it
// when the config (or an override row) loads; "off" and "continue" are
// Continue.
enum class Action { Continue, Tempfail, Reject, Quarantine, Tag };
std::string_view to_string(Action action);  // "continue" | "tempfail" | "reject" | "quarantine" | "tag"
// The config word for an action ("off" for Continue): what --print-config shows.
std::string_view config_word(Action action);
// "tempfail" | "reject" | "quarantine" | "tag" | "off" | "continue"; nullopt otherwise.
std::optional<Action> parse_action(std::string_view word);

// RFC 7672 where no enforce policy binds (no policy, mode none or testing):
enum class DaneMode {
  Enforce,  // a DANE failure gets enforce_action (reject becomes tempfail)
  Record,   // looked up, logged and reported (TLSRPT); testing_action applies
  Off,      // DANE only for the hosts of a policy, as RFC 8461 alone asks
};
std::string_view to_string(DaneMode mode);  // "enforce" | "record" | "off"

// What the milter does with a recipient whose verdict calls for action.
struct DecisionConfig {
  long rcpt_deadline_ms = 8000;    // per recipient domain; well under Postfix's 30 s milter_command_timeout
  long message_budget_ms = 20000;  // per message, all recipients together
  Action enforce_action = Action::Tempfail;  // tempfail | reject | quarantine | tag | off
  Action testing_action = Action::Continue;  // tag | off
  bool strict_testing = false;               // testing treated as enforce
  Action non_smtp_action = Action::Tag;      // quarantine | tag | off
  DaneMode dane = DaneMode::Enforce;
  std::vector<std::string> excluded_domains;
  std::vector<std::string> smtp_transports{"smtp", "relay", "esmtp", "smtp8", "dsmtp"};
  std::vector<std::string> trusted_relays;  // outside the RFC: relays accepted unchecked
  // {daemon_name} values (Postfix: milter_macro_daemon_name) whose mail is
  // decided as mail without next-hop macros, at end of message.
  std::vector<std::string> non_smtp_daemon_names;
  Action error_action = Action::Continue;  // continue | tempfail, on an internal error
  // Recipients decided per message (Postfix's smtpd_recipient_limit is 1000);
  // more are deferred with 452 4.5.3, so per-message state stays bounded.
  std::size_t max_recipients = 1000;
};

struct ProbeConfig {
  bool enabled = true;
  std::string ehlo_name = "mta-sts-milter.invalid";
  std::string ca_file;  // empty: the system trust store
  long step_timeout_ms = 5000;
  std::int64_t success_ttl = 3600;
  std::int64_t failure_ttl = 300;
  std::size_t max_parallel = 512;  // probes running at once
};

// TLSRPT records (RFC 8460): daily counts in the store, written in batches.
struct TlsrptConfig {
  std::string sending_mta_ip;  // empty: each probe's own source address
  long flush_interval = 30;    // seconds between writes of the counts
  // More distinct counts than this are written at once, not at the next
  // interval; at most max_pending are held (beyond, new ones are dropped
  // and logged) while a write runs or the store refuses.
  std::size_t flush_at_aggregates = 10000;
  std::size_t max_pending = 20000;
  // libtlsrpt datagrams (README "TLSRPT datagrams"): taken on this unix
  // datagram socket into our counts, and sent to a collector's socket.
  std::string datagram_socket;   // "": none taken
  std::string datagram_forward;  // "": none sent
};

// TLSRPT reports (RFC 8460 §4-§5): `report build|send|status|show`.
struct ReportConfig {
  std::string contact_info;       // §4.4 "contact-info" (an addr-spec); required to build reports
  std::string organization_name;  // §4.4 "organization-name"; empty: the submitter
  std::string submitter;          // §5.1/§5.3 submitter domain; empty: the domain of contact_info
  // From of report mail, header and envelope; the milter lets mail from it
  // through whatever the recipient's policy (§5.3). Empty: noreply-tlsrpt@SUBMITTER.
  std::string mail_from;
  std::string dkim_domain;    // d= of the DKIM signature; empty: the submitter
  std::string dkim_selector;  // s=
  std::string dkim_key_file;  // PEM private key; empty: mailto: destinations fail (§3: DKIM required)
  // The local MTA's sendmail; "-f FROM -- RCPT" is appended (never -t: no
  // header can add a recipient).
  std::vector<std::string> sendmail_command{"/usr/sbin/sendmail", "-oi"};
  long send_window = 3600;  // s after midnight UTC over which first attempts are spread
  long https_timeout = 60;  // s per https: POST
  std::string ca_file;      // trust anchors for https: destinations; empty: the system store
  // https: hosts at loopback, private, link-local ... addresses refused
  // unless set (a receiver's URI must not reach into our network).
  bool allow_private_destinations = false;
};

// The engine's worker pool (policy/engine/worker_pool.h).
struct EngineConfig {
  std::size_t threads = 128;  // discoveries, probes and refreshes running at once
  // RCPT callbacks that may wait for a discovery or probe at once; beyond it
  // a recipient is answered at once from the caches, or deferred (overloaded).
  std::size_t max_waiting_rcpts = 256;
};

// The socketmap server for smtp_tls_policy_maps and Sendmail's sts map
// (milter/socketmap_server.h). Unix sockets follow milter.socket_mode,
// socket_owner and socket_group.
struct SocketmapConfig {
  std::string socket = "inet:8461@127.0.0.1";  // "" : no socketmap server
  std::vector<std::string> map_names{"postfix", "sts"};
  // Those Sendmail asks (FEATURE(`sts')): never answered with TLSRPT attributes.
  std::vector<std::string> sendmail_map_names{"sts"};
  // Longest wait for a first discovery before TEMP: under Sendmail's map
  // timeout (-d5: 5 s); Postfix's socketmap client waits up to 100 s.
  long deadline_ms = 4000;
  bool tlsrpt_attributes = false;  // Postfix 3.10+ only: 3.9 and older defer on them
  std::size_t max_connections = 2000;
  // s without a request (or without reading our replies). Long: Sendmail
  // keeps a connection per delivery process, and a lookup on one we closed
  // costs it a deferral.
  long idle_timeout = 300;
  std::size_t lookup_threads = 64;  // lookups waiting for a discovery at once
};

// The Prometheus endpoint (milter/metrics_server.h): "" = off.
struct MetricsConfig {
  std::string listen;  // as milter.socket: "inet:9489@127.0.0.1"; "" off
};

struct Config {
  std::string milter_socket = "inet:8891@127.0.0.1";
  std::string socket_mode = "0660";  // unix sockets
  std::string socket_owner;          // unix sockets; empty: the user the daemon runs as
  std::string socket_group;          // unix sockets; empty: that user's group
  std::string user;                  // drop privileges to this user after opening the socket
  // Milter connections served at once (each is a libmilter thread and a file
  // descriptor); more are refused at negotiation. Lowered at start-up to fit
  // the descriptor limit.
  std::size_t max_connections = 1000;
  DecisionConfig decision;
  ProbeConfig probe;
  std::string store_path = "/var/lib/mta-sts-milter/cache.db";
  policy::net::UnboundConfig dns;
  long dns_timeout_seconds = 5;
  policy::net::CurlFetcherConfig https;
  policy::ResolverConfig policy;
  TlsrptConfig tlsrpt;
  ReportConfig report;
  EngineConfig engine;
  SocketmapConfig socketmap;
  MetricsConfig metrics;
  long decision_deadline_ms = 0;  // 0: `check` waits for discovery to finish
  std::string log_level = "info";
  bool log_syslog = false;  // syslog facility mail instead of stderr
};

// Reads `path` (TOML); an empty path means the embedded defaults.
// Errors: code "config-read" (file unreadable, or a directory),
// "config-syntax" (TOML error, detail has line:column), "config-key" (unknown
// key), "config-value" (wrong type or out of range; detail names the key and
// the rule), "config-empty" (the file sets no key: empty or cut short).
// Files named in the config are checked by check_settings (services.h).
policy::Result<Config> load_config(const std::string& path);

// The sender of our report mail, header and envelope (README "TLSRPT
// reports"): report.mail_from, else noreply-tlsrpt@ the submitter (report.
// submitter, else the domain of report.contact_info); "" when contact_info
// is not set (no reports are sent then).
std::string report_mail_from(const ReportConfig& report);
// The submitter domain: report.submitter, else the domain of contact_info.
std::string report_submitter(const ReportConfig& report);
// The same for TOML text already in memory; `source` stands for the path in
// error details. (The config fuzzer uses it: no file per input.)
policy::Result<Config> parse_config(std::string_view text, std::string_view source);

// The effective configuration as TOML text, every key with its value and a
// one-line comment (for --print-config).
std::string render_config(const Config& config);

}  // namespace mtasts::milter
