// libFuzzer target: one message through milter::Session (milter/session.h)
// with the text an MTA supplies: {daemon_name}, the queue id {i}, and per
// recipient the RCPT argument, {rcpt_mailer} and {rcpt_host}. A fake checker
// answers with a verdict the input picks.
// Input: two flag bytes, then fields separated by NUL: queue id, daemon name,
// then address, mailer, host per recipient. A field that is exactly "\x01"
// (or missing) stands for a macro the MTA did not send.
// Checks: replies carry only 451 4.7.5 / 550 5.7.5 and name the recipient's
// own domain; a permanent rejection needs enforce (or strict testing), a
// fresh TXT check and a failure that is not temporary (RFC 8461 §5.1);
// recipients without a next hop are never refused at RCPT; one decision log
// line per (domain, next hop), each a logfmt line with the README's keys in
// order whatever the MTA sent.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "milter/recipient_route.h"
#include "milter/session.h"
#include "policy/logfmt.h"

namespace {

using mtasts::milter::Action;
using mtasts::milter::Config;
using mtasts::milter::RecipientRoute;
using mtasts::milter::RouteKind;
using mtasts::milter::Session;
namespace policy = mtasts::policy;

constexpr std::size_t kMaxRecipients = 16;
constexpr std::string_view kListener = "mtasts-local";
constexpr std::string_view kTrustedRelay = "relay.example";

void require(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> split_fields(std::string_view input) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto nul = input.find('\0');
    fields.push_back(input.substr(0, nul));
    if (nul == std::string_view::npos) return fields;
    input.remove_prefix(nul + 1);
  }
}

std::optional<std::string_view> macro(const std::vector<std::string_view>& fields, std::size_t i) {
  if (i >= fields.size() || fields[i] == "\x01") return std::nullopt;
  return fields[i];
}

// What the fake checker answers, and how the message is configured.
struct Script {
  std::optional<policy::Mode> mode;
  policy::Outcome outcome = policy::Outcome::Pass;
  bool temporary = false;
  bool fresh = false;
  bool throws = false;
  bool abort_message = false;
};

Script script_from(std::uint8_t flags) {
  static constexpr std::optional<policy::Mode> kModes[] = {std::nullopt, policy::Mode::None,
                                                           policy::Mode::Testing, policy::Mode::Enforce};
  static constexpr policy::Outcome kOutcomes[] = {policy::Outcome::Pass, policy::Outcome::Fail,
                                                  policy::Outcome::Unknown, policy::Outcome::Fail};
  Script s;
  s.mode = kModes[flags & 3];
  s.outcome = kOutcomes[(flags >> 2) & 3];
  s.temporary = (flags & 0x10) != 0;
  s.fresh = (flags & 0x20) != 0;
  s.throws = (flags & 0x40) != 0;
  s.abort_message = (flags & 0x80) != 0;
  return s;
}

std::shared_ptr<Config> config_from(std::uint8_t flags) {
  static constexpr Action kEnforce[] = {Action::Tempfail, Action::Reject, Action::Quarantine, Action::Tag,
                                        Action::Continue};
  static constexpr Action kNonSmtp[] = {Action::Quarantine, Action::Tag, Action::Continue};
  auto config = std::make_shared<Config>();
  config->decision.enforce_action = kEnforce[(flags & 7) % 5];
  config->decision.testing_action = (flags & 0x08) != 0 ? Action::Tag : Action::Continue;
  config->decision.non_smtp_action = kNonSmtp[((flags >> 4) & 3) % 3];
  config->decision.error_action = (flags & 0x40) != 0 ? Action::Tempfail : Action::Continue;
  config->decision.strict_testing = (flags & 0x80) != 0;
  config->decision.non_smtp_daemon_names = {std::string(kListener)};
  config->decision.trusted_relays = {std::string(kTrustedRelay)};
  return config;
}

mtasts::milter::CheckFunction fake_checker(const Script& script) {
  return [script](const policy::NextHop& hop, policy::Deadline) {
    if (script.throws) throw std::runtime_error("fake checker failure");
    const bool relay = hop.kind == policy::NextHopKind::SmartHost && !hop.relay_host.empty();
    policy::CheckResult r;
    r.policy_domain = relay ? hop.relay_host : hop.recipient_domain;
    r.verdict.mode = script.mode;
    r.verdict.outcome = script.outcome;
    r.verdict.temporary = script.temporary;
    r.verdict.reason = script.outcome == policy::Outcome::Pass ? "verified" : "mx-not-in-policy";
    r.verdict.mx = "mx." + r.policy_domain;
    if (script.outcome == policy::Outcome::Fail)
      r.verdict.result_type = policy::ResultType::ValidationFailure;
    r.facts.resolution.fresh_txt_check = script.fresh;
    if (script.mode) r.facts.resolution.txt_id = "id1";
    return r;
  };
}

// The next logfmt value at the start of `rest`: a bare token (no space, '=',
// '"' or backslash), or a quoted string whose only escapes are \", \\ and
// \xHH. Empty when malformed. Consumes the value and one following space.
std::string_view take_value(std::string_view& rest) {
  if (rest.empty()) return {};
  std::size_t end = 0;
  if (rest.front() != '"') {
    end = rest.find(' ');
    if (end == std::string_view::npos) end = rest.size();
    if (rest.substr(0, end).find_first_of("=\"\\") != std::string_view::npos) return {};
  } else {
    for (end = 1;; ++end) {
      if (end >= rest.size()) return {};
      const char c = rest[end];
      if (c == '"') break;
      if (c < 0x20 || c >= 0x7f) return {};
      if (c != '\\') continue;
      const char e = end + 1 < rest.size() ? rest[end + 1] : '\0';
      if (e == '"' || e == '\\') {
        ++end;
      } else if (e == 'x' && end + 3 < rest.size() &&
                 std::isxdigit(static_cast<unsigned char>(rest[end + 2])) &&
                 std::isxdigit(static_cast<unsigned char>(rest[end + 3]))) {
        end += 3;
      } else {
        return {};
      }
    }
    ++end;  // the closing quote
    if (end < rest.size() && rest[end] != ' ') return {};
  }
  const std::string_view value = rest.substr(0, end);
  rest.remove_prefix(std::min(rest.size(), end + 1));
  return value;
}

// README "The decision log": "decision" and then key=value pairs, each value
// one logfmt value (policy/logfmt.h), with (at least) the README's keys in
// this order, queue_id first and escaped as logfmt_value escapes it: text
// from the MTA can neither add keys nor lines. Prints the line it rejects.
void check_log_line(const std::string& line, std::string_view queue_id) {
  static constexpr std::string_view kOrder[] = {"queue_id",  "domain", "next_hop",    "mode",
                                                "policy_id", "source", "mx",          "tls",
                                                "action",    "reason", "result_type", "elapsed_ms"};
  const auto expect = [&line](bool condition) {
    if (condition) return;
    std::fprintf(stderr, "malformed decision line: %s\n", line.c_str());
    std::abort();
  };
  expect(line.find_first_of("\r\n") == std::string::npos);
  std::string_view rest = line;
  expect(rest.starts_with("decision "));
  rest.remove_prefix(9);
  std::set<std::string_view> keys;
  std::size_t next = 0;  // the next README key to find
  while (!rest.empty()) {
    const auto eq = rest.find('=');
    expect(eq != std::string_view::npos && eq > 0);
    const std::string_view key = rest.substr(0, eq);
    rest.remove_prefix(eq + 1);
    expect(key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
    expect(keys.insert(key).second);
    const std::string_view value = take_value(rest);
    expect(!value.empty());
    if (keys.size() == 1) expect(key == "queue_id" && value == mtasts::policy::logfmt_value(queue_id));
    if (next < std::size(kOrder) && key == kOrder[next]) ++next;
  }
  expect(next == std::size(kOrder));
}

bool may_reject(const Script& s, const Config& config) {
  const bool enforce =
      s.mode == policy::Mode::Enforce || (s.mode == policy::Mode::Testing && config.decision.strict_testing);
  return enforce && s.outcome == policy::Outcome::Fail && !s.temporary && s.fresh && !s.throws &&
         config.decision.enforce_action == Action::Reject;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using mtasts::milter::route_recipient;
  const Script script = script_from(size > 0 ? data[0] : 0);
  const std::shared_ptr<Config> config = config_from(size > 1 ? data[1] : 0);
  const std::size_t skip = size < 2 ? size : 2;
  const std::vector<std::string_view> fields =
      split_fields(std::string_view(reinterpret_cast<const char*>(data) + skip, size - skip));

  const auto now = std::chrono::steady_clock::now();
  Session session(fake_checker(script), config);
  const std::string queue_id(fields[0]);
  const auto daemon_name = macro(fields, 1);
  session.begin_message(now, mtasts::milter::Settings{config, nullptr}, daemon_name);
  const bool listener = daemon_name == kListener;

  mtasts::milter::RouteRules rules;
  rules.smtp_transports = {config->decision.smtp_transports.begin(), config->decision.smtp_transports.end()};
  // The session's keys, one log line each: recipients with a next hop are
  // decided at RCPT, the others at end of message (so never on abort).
  std::set<std::string> at_rcpt, at_end;
  for (std::size_t i = 2, n = 0; i < fields.size() && n < kMaxRecipients; i += 3, ++n) {
    const std::string_view address = fields[i];
    const auto mailer = macro(fields, i + 1);
    const auto host = macro(fields, i + 2);
    const auto reply = session.on_rcpt(address, mailer, host, now);
    RecipientRoute route = route_recipient(address, mailer, host, rules);
    if (route.kind != RouteKind::OutOfScope && listener) route = route_recipient(address, {}, {}, rules);
    const bool no_next_hop = route.kind == RouteKind::OutOfScope || route.kind == RouteKind::Unknown;
    if (route.kind == RouteKind::Unknown) at_end.insert(route.domain + "|?");
    if (!no_next_hop) at_rcpt.insert(route.domain + "|" + route.relay_host + route.relay_address);
    if (reply.accept) {
      require(reply.code.empty() && reply.xcode.empty() && reply.text.empty());
      continue;
    }
    require(!no_next_hop && route.relay_host != kTrustedRelay);
    require((reply.code == "451" && reply.xcode == "4.7.5") ||
            (reply.code == "550" && reply.xcode == "5.7.5"));
    if (reply.code == "550") require(may_reject(script, *config));
    // DANE's own refusals (RFC 7672) say so and are never permanent.
    require(reply.text.starts_with("MTA-STS: " + route.domain + ": ") ||
            (reply.code == "451" && reply.text.starts_with("DANE: " + route.domain + ": ")));
    require(reply.text.find_first_of("\r\n%") == std::string::npos);
  }

  const std::vector<std::string> lines = [&] {
    if (script.abort_message) return session.abort_message();
    const auto eom = session.end_message(queue_id, now);
    require(!eom.header_value || *eom.header_value == "fail" || *eom.header_value == "unknown");
    require(!eom.quarantine_reason || *eom.quarantine_reason == "MTA-STS policy not met");
    // Mail without a next hop is tagged or quarantined, never refused,
    // unless deciding failed and decision.error_action says so.
    if (eom.tempfail) require(script.throws && config->decision.error_action == Action::Tempfail);
    return eom.log_lines;
  }();
  require(lines.size() == at_rcpt.size() + (script.abort_message ? 0 : at_end.size()));
  for (const auto& line : lines) check_log_line(line, script.abort_message ? "NOQUEUE" : queue_id);
  require(session.abort_message().empty());  // the message is over: nothing left to log
  return 0;
}
