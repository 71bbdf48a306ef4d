#include "milter/config.h"

#include "milter/listen_socket.h"
#include "policy/socketmap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <vector>

#include "policy/ascii.h"
#include "policy/domain.h"

namespace mtasts::milter {
namespace {

using Apply = std::function<std::string(Config&, const toml::node&)>;  // "" or the error
using Show = std::function<std::string(const Config&)>;

struct Setting {
  std::string_view name;  // "section.key"
  std::string_view help;
  Apply apply;
  Show show;
};

std::string toml_quoted(const std::string& text);

std::string toml_list(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const auto& v : values) out += (out.size() > 1 ? ", " : "") + toml_quoted(v);
  return out + "]";
}

std::string toml_quoted(const std::string& text) {
  std::ostringstream out;
  out << toml::value<std::string>(text);
  return out.str();
}

template <class Field>
Setting integer(std::string_view name, std::string_view help, long min, long max, Field field) {
  return {name, help,
          [=](Config& c, const toml::node& n) -> std::string {
            // is_integer() first: value<int64_t>() converts a float, which is
            // undefined beyond int64's range (found by fuzz_milter_config: 8.01e+32).
            if (!n.is_integer()) return "must be an integer";
            const auto v = n.value<std::int64_t>();
            if (!v) return "must be an integer";
            if (*v < min || *v > max) return fmt::format("must be between {} and {}", min, max);
            field(c) = static_cast<std::remove_reference_t<decltype(field(c))>>(*v);
            return "";
          },
          [=](const Config& c) { return std::to_string(field(const_cast<Config&>(c))); }};
}

template <class Field>
Setting text(std::string_view name, std::string_view help, Field field) {
  return {name, help,
          [=](Config& c, const toml::node& n) -> std::string {
            if (!n.is_string()) return "must be a string";
            field(c) = *n.value<std::string>();
            return "";
          },
          [=](const Config& c) { return toml_quoted(field(const_cast<Config&>(c))); }};
}

template <class Field>
Setting boolean(std::string_view name, std::string_view help, Field field) {
  return {name, help,
          [=](Config& c, const toml::node& n) -> std::string {
            if (!n.is_boolean()) return "must be true or false";
            field(c) = *n.value<bool>();
            return "";
          },
          [=](const Config& c) { return field(const_cast<Config&>(c)) ? std::string("true") : "false"; }};
}

// List entries compared with what routing normalises ("Example.COM." and
// "bücher.example" as A-labels; mailer names in lower case), so an entry can
// never silently fail to match.
policy::Result<std::string> domain_name(const std::string& value) { return policy::normalize_domain(value); }

policy::Result<std::string> transport_name(const std::string& value) {
  if (value.empty()) return policy::Error{"empty", ""};
  std::string lower = policy::ascii_lowercase(value);
  return lower;
}

// A socketmap map name as a request carries it (policy/socketmap.h):
// 1-64 printable ASCII bytes without a space; compared exactly.
policy::Result<std::string> map_name(const std::string& value) {
  const auto request = policy::parse_request(value + " key");
  if (!request || request->map_name != value) return policy::Error{"bad-map-name", ""};
  return value;
}

template <class Field>
Setting text_list(std::string_view name, std::string_view help, Field field,
                  std::function<policy::Result<std::string>(const std::string&)> canonical = {}) {
  return {name, help,
          [=](Config& c, const toml::node& n) -> std::string {
            const auto* array = n.as_array();
            if (!array) return "must be an array of strings";
            std::vector<std::string> values;
            for (const auto& item : *array) {
              if (!item.is_string()) return "must be an array of strings";
              std::string value = *item.value<std::string>();
              if (canonical) {
                auto made = canonical(value);
                if (!made) return fmt::format("has an invalid entry '{}' ({})", value, made.error().code);
                value = std::move(*made);
              }
              values.push_back(std::move(value));
            }
            field(c) = std::move(values);
            return "";
          },
          [=](const Config& c) { return toml_list(field(const_cast<Config&>(c))); }};
}

// One of `allowed` (config words), stored parsed: a misspelt word is an
// error at load, never a string compared at decision time.
template <class Enum, class Field>
Setting enum_choice(std::string_view name, std::string_view help,
                    std::vector<std::pair<std::string_view, Enum>> allowed, Field field) {
  return {name, help,
          [=](Config& c, const toml::node& n) -> std::string {
            const auto word = n.value<std::string>();
            for (const auto& [w, value] : allowed) {
              if (n.is_string() && word && *word == w) {
                field(c) = value;
                return "";
              }
            }
            std::string list;
            for (const auto& [w, value] : allowed) list += fmt::format("{}{}", list.empty() ? "" : "|", w);
            return "must be one of " + list;
          },
          [=](const Config& c) {
            for (const auto& [w, value] : allowed)
              if (field(const_cast<Config&>(c)) == value) return toml_quoted(std::string(w));
            return std::string("\"?\"");
          }};
}

std::string check_log_level(Config& c, const toml::node& n) {
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
  if (!n.is_string() || !levels.contains(*n.value<std::string>()))
    return "must be trace|debug|info|warn|error";
  c.log_level = *n.value<std::string>();
  return "";
}

// An octal permission mode; set-id and sticky bits make no sense on a socket.
std::string check_socket_mode(Config& c, const toml::node& n) {
  const auto value = n.value<std::string>();
  if (!n.is_string() || value->empty() || value->size() > 4 ||
      value->find_first_not_of("01234567") != std::string::npos || std::stoul(*value, nullptr, 8) > 0777)
    return "must be an octal mode between '0000' and '0777', e.g. '0660'";
  c.socket_mode = *value;
  return "";
}

// RFC 8460 §4.4 "sending-mta-ip": an IPv4 or IPv6 address, or empty.
std::string check_sending_mta_ip(Config& c, const toml::node& n) {
  if (!n.is_string()) return "must be a string";
  const std::string value = *n.value<std::string>();
  in6_addr parsed{};
  if (!value.empty() && inet_pton(AF_INET, value.c_str(), &parsed) != 1 &&
      inet_pton(AF_INET6, value.c_str(), &parsed) != 1)
    return "must be an IPv4 or IPv6 address, or empty";
  c.tlsrpt.sending_mta_ip = value;
  return "";
}

// A unix socket path (absolute, within sockaddr_un's 107 bytes), or empty.
std::string check_unix_path(const toml::node& n, std::string& field) {
  if (!n.is_string()) return "must be a string";
  const std::string value = *n.value<std::string>();
  if (!value.empty() && (value.front() != '/' || value.size() > 107))
    return "must be an absolute path of at most 107 bytes, or empty";
  field = value;
  return "";
}

// An RFC 5322 addr-spec as report mail and §4.4 contact-info need it: a
// local part of printable ASCII without specials or spaces, "@", a domain
// normalize_domain() accepts (stored as its A-label form). Empty is allowed.
std::string check_address(const toml::node& n, std::string& field) {
  if (!n.is_string()) return "must be a string";
  const std::string value = *n.value<std::string>();
  if (value.empty()) {
    field.clear();
    return "";
  }
  const std::size_t at = value.rfind('@');
  const std::string local = at == std::string::npos ? "" : value.substr(0, at);
  const bool local_ok =
      !local.empty() && local.size() <= 64 && std::all_of(local.begin(), local.end(), [](char ch) {
        return policy::is_ascii_printable(ch) &&
               std::string_view("()<>[]:;@\\,\" ").find(ch) == std::string_view::npos;
      });
  const auto domain = at == std::string::npos ? policy::Result<std::string>(policy::Error{"no-at", ""})
                                              : policy::normalize_domain(value.substr(at + 1));
  if (!local_ok || !domain) return "must be an address like tlsrpt@example.net";
  field = local + "@" + *domain;
  return "";
}

std::string check_domain(const toml::node& n, std::string& field) {
  if (!n.is_string()) return "must be a string";
  const std::string value = *n.value<std::string>();
  if (value.empty()) {
    field.clear();
    return "";
  }
  const auto domain = policy::normalize_domain(value);
  if (!domain) return "must be a domain name like example.net";
  field = *domain;
  return "";
}

// The command report mail is handed to: an absolute program path first (no
// PATH search, no shell), then its arguments.
std::string check_sendmail_command(Config& c, const toml::node& n) {
  const auto* array = n.as_array();
  if (!array || array->empty()) return "must be a non-empty array of strings";
  std::vector<std::string> values;
  for (const auto& item : *array) {
    if (!item.is_string()) return "must be an array of strings";
    values.push_back(*item.value<std::string>());
  }
  if (!values.front().starts_with('/')) return "must start with the program's absolute path";
  c.report.sendmail_command = std::move(values);
  return "";
}

// A listening socket in the milter's grammar (inet:PORT@HOST, unix:/path;
// parse_listen_address), or "" for off.
std::string check_listen_spec(const toml::node& n, std::string& out) {
  if (!n.is_string()) return "must be a string";
  const std::string value = *n.value<std::string>();
  if (!value.empty()) {
    if (const auto address = parse_listen_address(value); !address) return address.error().detail;
  }
  out = value;
  return "";
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table{
      text("milter.socket", "libmilter socket: inet:PORT@ADDR or unix:/path (Postfix writes inet:ADDR:PORT)",
           [](Config& c) -> std::string& { return c.milter_socket; }),
      Setting{"milter.socket_mode", "octal mode of a unix socket", check_socket_mode,
              [](const Config& c) { return toml_quoted(c.socket_mode); }},
      text("milter.socket_owner", "owner of a unix socket (empty: milter.user, or the starting user)",
           [](Config& c) -> std::string& { return c.socket_owner; }),
      text("milter.socket_group", "group of a unix socket, e.g. 'postfix' (empty: the owner's group)",
           [](Config& c) -> std::string& { return c.socket_group; }),
      text("milter.user", "user to run as after opening the socket (empty: stay)",
           [](Config& c) -> std::string& { return c.user; }),
      integer("milter.max_connections",
              "milter connections served at once; more are refused at negotiation (the MTA applies its "
              "milter_default_action)",
              1, 1000000, [](Config& c) -> std::size_t& { return c.max_connections; }),
      integer("decision.rcpt_deadline_ms", "longest wait per recipient domain (under milter_command_timeout)",
              100, 60000, [](Config& c) -> long& { return c.decision.rcpt_deadline_ms; }),
      integer("decision.message_budget_ms", "longest total wait per message", 100, 120000,
              [](Config& c) -> long& { return c.decision.message_budget_ms; }),
      enum_choice<Action>("decision.enforce_action", "on a failed enforce policy",
                          {{"tempfail", Action::Tempfail},
                           {"reject", Action::Reject},
                           {"quarantine", Action::Quarantine},
                           {"tag", Action::Tag},
                           {"off", Action::Continue}},
                          [](Config& c) -> Action& { return c.decision.enforce_action; }),
      enum_choice<Action>("decision.testing_action", "on a failed testing policy",
                          {{"tag", Action::Tag}, {"off", Action::Continue}},
                          [](Config& c) -> Action& { return c.decision.testing_action; }),
      boolean("decision.strict_testing", "treat testing policies as enforce",
              [](Config& c) -> bool& { return c.decision.strict_testing; }),
      enum_choice<Action>(
          "decision.non_smtp_action", "on a failure for mail without next-hop macros",
          {{"quarantine", Action::Quarantine}, {"tag", Action::Tag}, {"off", Action::Continue}},
          [](Config& c) -> Action& { return c.decision.non_smtp_action; }),
      enum_choice<DaneMode>(
          "decision.dane",
          "DANE (RFC 7672) where no enforce policy binds: enforce (enforce_action, never reject), "
          "record (log, report, testing_action) or off",
          {{"enforce", DaneMode::Enforce}, {"record", DaneMode::Record}, {"off", DaneMode::Off}},
          [](Config& c) -> DaneMode& { return c.decision.dane; }),
      text_list(
          "decision.excluded_domains", "recipient domains never checked",
          [](Config& c) -> std::vector<std::string>& { return c.decision.excluded_domains; }, domain_name),
      text_list(
          "decision.smtp_transports", "MTA transports ({rcpt_mailer}) in scope",
          [](Config& c) -> std::vector<std::string>& { return c.decision.smtp_transports; }, transport_name),
      text_list("decision.non_smtp_daemon_names",
                "{daemon_name} values (Postfix milter_macro_daemon_name) decided as mail without a next hop",
                [](Config& c) -> std::vector<std::string>& { return c.decision.non_smtp_daemon_names; }),
      text_list(
          "decision.trusted_relays", "relay hosts accepted without checks (outside RFC 8461)",
          [](Config& c) -> std::vector<std::string>& { return c.decision.trusted_relays; }, domain_name),
      enum_choice<Action>("decision.error_action", "on an internal error",
                          {{"continue", Action::Continue}, {"tempfail", Action::Tempfail}},
                          [](Config& c) -> Action& { return c.decision.error_action; }),
      integer("decision.max_recipients", "recipients decided per message; more are deferred (452 4.5.3)", 1,
              100000, [](Config& c) -> std::size_t& { return c.decision.max_recipients; }),
      boolean("probe.enabled", "probe MX hosts for STARTTLS and certificates",
              [](Config& c) -> bool& { return c.probe.enabled; }),
      text("probe.ehlo_name", "EHLO name of probes",
           [](Config& c) -> std::string& { return c.probe.ehlo_name; }),
      text("probe.ca_file", "CA bundle for MX certificates (empty: the system trust store)",
           [](Config& c) -> std::string& { return c.probe.ca_file; }),
      integer("probe.step_timeout_ms", "timeout per probe step (connect, reply, handshake)", 100, 60000,
              [](Config& c) -> long& { return c.probe.step_timeout_ms; }),
      integer("probe.success_ttl", "seconds a verified probe is reused", 1, 86400,
              [](Config& c) -> std::int64_t& { return c.probe.success_ttl; }),
      integer("probe.failure_ttl", "seconds a failed probe is reused", 1, 86400,
              [](Config& c) -> std::int64_t& { return c.probe.failure_ttl; }),
      integer("probe.max_parallel",
              "probes running at once; more hosts wait unverified (tempfail under enforce)", 1, 100000,
              [](Config& c) -> std::size_t& { return c.probe.max_parallel; }),
      text("store.path", "SQLite policy cache; its folder is created if missing",
           [](Config& c) -> std::string& { return c.store_path; }),
      boolean("dns.use_resolv_conf", "forward DNS to the servers in /etc/resolv.conf",
              [](Config& c) -> bool& { return c.dns.use_resolv_conf; }),
      text_list("dns.forwarders", "forwarders (ADDR or ADDR@PORT); empty with use_resolv_conf=false: recurse",
                [](Config& c) -> std::vector<std::string>& { return c.dns.forwarders; }),
      text_list("dns.trust_anchor_files", "DNSSEC trust anchors; non-empty REPLACES the root anchor",
                [](Config& c) -> std::vector<std::string>& { return c.dns.trust_anchor_files; }),
      text_list("dns.stub_zones", "stub zones, ZONE=ADDR[@PORT]",
                [](Config& c) -> std::vector<std::string>& { return c.dns.stub_zones; }),
      integer("dns.max_server_rtt_ms",
              "longest round-trip time remembered for a DNS server; larger lets a burst of slow names make "
              "the forwarder look down",
              100, 120000, [](Config& c) -> long& { return c.dns.max_server_rtt_ms; }),
      text("dns.dnssec_self_test",
           "a name that must validate as secure at start-up (default: the root zone with the root anchor)",
           [](Config& c) -> std::string& { return c.dns.self_test_name; }),
      integer("dns.timeout", "seconds per DNS lookup", 1, 60,
              [](Config& c) -> long& { return c.dns_timeout_seconds; }),
      text("https.ca_file", "CA bundle for policy hosts (empty: the system trust store)",
           [](Config& c) -> std::string& { return c.https.ca_file; }),
      integer("https.timeout", "seconds per policy fetch (RFC 8461 3.3 suggests 60)", 1, 300,
              [](Config& c) -> long& { return c.https.timeout_seconds; }),
      integer("https.connect_timeout", "seconds to connect to a policy host", 1, 60,
              [](Config& c) -> long& { return c.https.connect_timeout_seconds; }),
      integer("https.port", "policy host port (443; tests only)", 1, 65535,
              [](Config& c) -> int& { return c.https.port; }),
      text("https.proxy", "HTTPS proxy URL (empty: never use a proxy, environment ignored)",
           [](Config& c) -> std::string& { return c.https.proxy; }),
      integer("policy.txt_recheck_interval", "seconds before the TXT id is re-checked on use", 0, 86400,
              [](Config& c) -> std::int64_t& { return c.policy.txt_recheck_interval; }),
      integer("policy.fetch_backoff", "seconds between fetch attempts per (domain, id) after a failure", 300,
              86400, [](Config& c) -> std::int64_t& { return c.policy.fetch_backoff; }),
      integer("policy.refresh_interval", "seconds between background refreshes of a cached policy", 3600,
              31557600, [](Config& c) -> std::int64_t& { return c.policy.refresh_interval; }),
      integer("policy.refresh_unused_for",
              "seconds a policy is still refreshed after its last use; then it lapses at its expiry", 86400,
              31557600, [](Config& c) -> std::int64_t& { return c.policy.refresh_unused_for; }),
      integer("policy.memory_cache_entries", "policies kept in memory in front of the store", 1, 10000000,
              [](Config& c) -> std::size_t& { return c.policy.memory_cache_entries; }),
      integer("policy.max_discoveries",
              "policy discoveries running at once; more answer as a temporary error", 1, 100000,
              [](Config& c) -> std::size_t& { return c.policy.max_jobs; }),
      integer("policy.decision_deadline_ms", "longest wait for a policy per decision (0: wait)", 0, 60000,
              [](Config& c) -> long& { return c.decision_deadline_ms; }),
      integer("engine.threads",
              "worker threads shared by policy discoveries, probes and refresh (more jobs queue, up to "
              "max_discoveries + probe.max_parallel)",
              1, 4096, [](Config& c) -> std::size_t& { return c.engine.threads; }),
      integer("engine.max_waiting_rcpts",
              "recipients waiting for a discovery or probe at once; more are answered from the caches or "
              "deferred as overloaded",
              1, 100000, [](Config& c) -> std::size_t& { return c.engine.max_waiting_rcpts; }),
      Setting{"tlsrpt.sending_mta_ip", "our address in TLSRPT records (empty: each probe's source address)",
              check_sending_mta_ip, [](const Config& c) { return toml_quoted(c.tlsrpt.sending_mta_ip); }},
      integer("tlsrpt.flush_interval", "seconds between writes of TLSRPT counts to the store", 1, 3600,
              [](Config& c) -> long& { return c.tlsrpt.flush_interval; }),
      integer("tlsrpt.flush_at_aggregates",
              "distinct TLSRPT counts in memory that are written at once, not at the next interval", 100,
              10000000, [](Config& c) -> std::size_t& { return c.tlsrpt.flush_at_aggregates; }),
      integer("tlsrpt.max_pending",
              "distinct TLSRPT counts held in memory at most (more are dropped and logged)", 1000, 100000000,
              [](Config& c) -> std::size_t& { return c.tlsrpt.max_pending; }),
      Setting{"tlsrpt.datagram_socket",
              "unix datagram socket taking libtlsrpt results (Postfix smtp_tlsrpt_socket_name) into our "
              "reports; mode and owner as milter sockets (empty: off)",
              [](Config& c, const toml::node& n) { return check_unix_path(n, c.tlsrpt.datagram_socket); },
              [](const Config& c) { return toml_quoted(c.tlsrpt.datagram_socket); }},
      Setting{"tlsrpt.datagram_forward",
              "a libtlsrpt collector's socket (tlsrpt-collectd) that also gets each of our TLSRPT results "
              "(empty: off)",
              [](Config& c, const toml::node& n) { return check_unix_path(n, c.tlsrpt.datagram_forward); },
              [](const Config& c) { return toml_quoted(c.tlsrpt.datagram_forward); }},
      Setting{"metrics.listen",
              "Prometheus text endpoint GET /metrics, as milter.socket: e.g. 'inet:9489@127.0.0.1' or "
              "'unix:/run/mta-sts-milter/metrics.sock' (empty: off; no authentication: keep it on loopback, "
              "a private address or a unix socket)",
              [](Config& c, const toml::node& n) { return check_listen_spec(n, c.metrics.listen); },
              [](const Config& c) { return toml_quoted(c.metrics.listen); }},
      Setting{"report.contact_info",
              "RFC 8460 contact-info of our reports, e.g. tlsrpt@example.net (required)",
              [](Config& c, const toml::node& n) { return check_address(n, c.report.contact_info); },
              [](const Config& c) { return toml_quoted(c.report.contact_info); }},
      text("report.organization_name", "RFC 8460 organization-name (empty: the submitter)",
           [](Config& c) -> std::string& { return c.report.organization_name; }),
      Setting{"report.submitter", "submitter domain of our reports (empty: the domain of contact_info)",
              [](Config& c, const toml::node& n) { return check_domain(n, c.report.submitter); },
              [](const Config& c) { return toml_quoted(c.report.submitter); }},
      Setting{"report.mail_from",
              "From of report mail; the milter passes mail from it (empty: noreply-tlsrpt@SUBMITTER)",
              [](Config& c, const toml::node& n) { return check_address(n, c.report.mail_from); },
              [](const Config& c) { return toml_quoted(c.report.mail_from); }},
      Setting{"report.dkim_domain", "d= of the DKIM signature of report mail (empty: the submitter)",
              [](Config& c, const toml::node& n) { return check_domain(n, c.report.dkim_domain); },
              [](const Config& c) { return toml_quoted(c.report.dkim_domain); }},
      text("report.dkim_selector", "s= of the DKIM signature of report mail",
           [](Config& c) -> std::string& { return c.report.dkim_selector; }),
      text("report.dkim_key_file",
           "PEM private key signing report mail; a bare name is read from systemd's $CREDENTIALS_DIRECTORY "
           "(LoadCredential=); empty: mailto: destinations are retried, then expire",
           [](Config& c) -> std::string& { return c.report.dkim_key_file; }),
      Setting{"report.sendmail_command", "the local MTA's sendmail; -f FROM -- RCPT is appended",
              check_sendmail_command, [](const Config& c) { return toml_list(c.report.sendmail_command); }},
      integer("report.send_window", "seconds after midnight UTC over which report sends are spread", 0, 43200,
              [](Config& c) -> long& { return c.report.send_window; }),
      integer("report.https_timeout", "seconds per https: report POST", 5, 600,
              [](Config& c) -> long& { return c.report.https_timeout; }),
      text("report.ca_file", "trust anchors for https: report destinations (empty: the system store)",
           [](Config& c) -> std::string& { return c.report.ca_file; }),
      boolean("report.allow_private_destinations",
              "post reports to https: hosts that resolve to loopback, private or link-local addresses",
              [](Config& c) -> bool& { return c.report.allow_private_destinations; }),
      Setting{"socketmap.socket",
              "socketmap server for smtp_tls_policy_maps and Sendmail's sts map: inet:PORT@ADDR or "
              "unix:/path (empty: off)",
              [](Config& c, const toml::node& n) { return check_listen_spec(n, c.socketmap.socket); },
              [](const Config& c) { return toml_quoted(c.socketmap.socket); }},
      text_list(
          "socketmap.map_names", "map names answered (socketmap:...:NAME); others get PERM",
          [](Config& c) -> std::vector<std::string>& { return c.socketmap.map_names; }, map_name),
      text_list(
          "socketmap.sendmail_map_names",
          "map names Sendmail's FEATURE(`sts') asks: never answered with TLSRPT attributes",
          [](Config& c) -> std::vector<std::string>& { return c.socketmap.sendmail_map_names; }, map_name),
      integer("socketmap.deadline_ms",
              "longest wait for a first discovery before TEMP (under Sendmail's 5 s map timeout, -d5)", 100,
              9000, [](Config& c) -> long& { return c.socketmap.deadline_ms; }),
      boolean("socketmap.tlsrpt_attributes",
              "append Postfix 3.10 TLSRPT attributes to answers (Postfix 3.9 and older defer on them)",
              [](Config& c) -> bool& { return c.socketmap.tlsrpt_attributes; }),
      integer("socketmap.max_connections",
              "socketmap connections at once; beyond it the longest idle one is closed", 1, 1000000,
              [](Config& c) -> std::size_t& { return c.socketmap.max_connections; }),
      integer("socketmap.idle_timeout",
              "seconds a socketmap connection may stay idle (or not read replies); Sendmail keeps one per "
              "delivery process and defers a lookup on a connection we closed",
              1, 86400, [](Config& c) -> long& { return c.socketmap.idle_timeout; }),
      integer("socketmap.lookup_threads", "socketmap lookups waiting for a discovery at once", 1, 4096,
              [](Config& c) -> std::size_t& { return c.socketmap.lookup_threads; }),
      boolean("log.syslog", "log to syslog (facility mail) instead of stderr",
              [](Config& c) -> bool& { return c.log_syslog; }),
      Setting{"log.level", "trace|debug|info|warn|error", check_log_level,
              [](const Config& c) { return toml_quoted(c.log_level); }},
  };
  return table;
}

const Setting* find_setting(std::string_view name) {
  for (const auto& s : settings())
    if (s.name == name) return &s;
  return nullptr;
}

// Derived values: the engine's DNS timeout, and the DNSSEC self-test name,
// which defaults to the root zone when the root trust anchor is in use (its
// DNSKEY must validate); with replaced anchors only an explicit name is tested.
void finish(Config& config) {
  config.policy.dns_timeout = std::chrono::seconds(config.dns_timeout_seconds);
  if (config.dns.self_test_name.empty() && config.dns.trust_anchor_files.empty())
    config.dns.self_test_name = ".";
}

// Applies every leaf of the parsed file; the first problem wins.
// A file that sets nothing is refused: an empty or cut-short file (a full
// disk, a bad deploy) would otherwise run on the embedded defaults and
// silently drop enforce_action, exclusions and trusted relays.
policy::Result<Config> apply_table(const toml::table& root, std::string_view source) {
  Config config;
  std::size_t applied = 0;
  for (const auto& [section, node] : root) {
    const auto* table = node.as_table();
    if (!table) return policy::Error{"config-key", fmt::format("'{}' must be a [section]", section.str())};
    for (const auto& [key, value] : *table) {
      const std::string name = fmt::format("{}.{}", section.str(), key.str());
      const Setting* setting = find_setting(name);
      if (!setting) return policy::Error{"config-key", fmt::format("unknown setting '{}'", name)};
      if (auto problem = setting->apply(config, value); !problem.empty())
        return policy::Error{"config-value", fmt::format("{} {}", name, problem)};
      ++applied;
    }
  }
  if (applied == 0)
    return policy::Error{"config-empty",
                         fmt::format("{} sets nothing (empty or cut short?); leave out -c to run "
                                     "on the embedded defaults",
                                     source)};
  finish(config);
  return config;
}

}  // namespace

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Continue:
      return "continue";
    case Action::Tempfail:
      return "tempfail";
    case Action::Reject:
      return "reject";
    case Action::Quarantine:
      return "quarantine";
    case Action::Tag:
      return "tag";
  }
  return "continue";
}

std::string_view config_word(Action action) {
  return action == Action::Continue ? std::string_view("off") : to_string(action);
}

std::optional<Action> parse_action(std::string_view word) {
  if (word == "off" || word == "continue") return Action::Continue;
  for (const Action a : {Action::Tempfail, Action::Reject, Action::Quarantine, Action::Tag})
    if (word == to_string(a)) return a;
  return std::nullopt;
}

std::string_view to_string(DaneMode mode) {
  switch (mode) {
    case DaneMode::Enforce:
      return "enforce";
    case DaneMode::Record:
      return "record";
    case DaneMode::Off:
      return "off";
  }
  return "enforce";
}

namespace {

policy::Error parse_error(std::string_view source, const toml::parse_error& e) {
  const auto& where = e.source().begin;
  const bool unreadable = where.line == 0;
  return policy::Error{unreadable ? "config-read" : "config-syntax",
                       fmt::format("{}:{}:{}: {}", source, where.line, where.column, e.description())};
}

}  // namespace

std::string report_submitter(const ReportConfig& report) {
  if (!report.submitter.empty()) return report.submitter;
  const std::size_t at = report.contact_info.rfind('@');
  return at == std::string::npos ? "" : report.contact_info.substr(at + 1);
}

std::string report_mail_from(const ReportConfig& report) {
  if (report.contact_info.empty()) return "";
  return report.mail_from.empty() ? "noreply-tlsrpt@" + report_submitter(report) : report.mail_from;
}

policy::Result<Config> load_config(const std::string& path) {
  if (path.empty()) {
    Config config;
    finish(config);
    return config;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return policy::Error{"config-read", fmt::format("{} is a directory, not a configuration file", path)};
  try {
    return apply_table(toml::parse_file(path), path);
  } catch (const toml::parse_error& e) {
    return parse_error(path, e);
  }
}

policy::Result<Config> parse_config(std::string_view text, std::string_view source) {
  try {
    return apply_table(toml::parse(text, source), source);
  } catch (const toml::parse_error& e) {
    return parse_error(source, e);
  }
}

std::string render_config(const Config& config) {
  std::string out;
  std::string section;
  for (const auto& s : settings()) {
    const auto dot = s.name.find('.');
    const std::string this_section(s.name.substr(0, dot));
    if (this_section != section) {
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", this_section);
      section = this_section;
    }
    out += fmt::format("{} = {}  # {}\n", s.name.substr(dot + 1), s.show(config), s.help);
  }
  return out;
}

}  // namespace mtasts::milter
