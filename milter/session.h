// One SMTP connection's view of the messages it carries: routes each
// recipient, asks the checker for a verdict (policy/decide.h), maps the
// verdict to an action, and at the end of the message returns the header to
// add, the quarantine reason and one log line per (message, recipient
// domain). No libmilter here: milter_callbacks.cpp translates.
// RFC 8461 §5 (enforce: do not deliver to failing hosts; testing: deliver and
// report), §5.1 (a permanent failure only after a fresh policy check),
// §3.4 (smart hosts). Per-domain overrides (store/override_store.h) replace
// the configured actions for one POLICY domain (CheckResult::policy_domain).
// At most decision.max_recipients in-scope recipients are decided per
// message; the rest get 452 4.5.3 (RFC 5321 §4.5.3.1.10), so per-message
// state and end-of-message work stay bounded.
// Not thread-safe: libmilter calls one connection's callbacks in order.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milter/config.h"
#include "milter/recipient_route.h"
#include "policy/engine/next_hop_checker.h"
#include "store/override_store.h"

namespace mtasts::milter {

using CheckFunction = std::function<policy::CheckResult(const policy::NextHop&, policy::Deadline)>;
using SteadyClock = std::chrono::steady_clock;

struct RcptReply {
  bool accept = true;
  std::string code;   // "451" / "550" / "452" (too many recipients)
  std::string xcode;  // "4.7.5" / "5.7.5" / "4.5.3"
  std::string text;   // "MTA-STS: example.com: mx-not-in-policy" (names only this recipient's domain)
};

struct EndOfMessage {
  std::optional<std::string> header_value;  // for "MTA-STS:"; never names a domain
  std::optional<std::string> quarantine_reason;
  // An end-of-message decision failed internally and decision.error_action
  // is "tempfail": the whole message is refused with 451 (it was not yet
  // accepted; the client retries).
  bool tempfail = false;
  std::vector<std::string> log_lines;
};

using store::DomainOverride;
using store::DomainOverrides;

// A per-domain override with its action words parsed once, when the table
// is loaded, so a decision compares enums, never the operator's strings.
struct ActionOverride {
  std::optional<Action> enforce_action;
  std::optional<Action> testing_action;
  std::optional<bool> strict_testing;
  bool operator==(const ActionOverride&) const = default;
};
using ActionOverrides = std::map<std::string, ActionOverride>;  // key: policy domain

// The rows as the store read them (it accepts only the config's action
// words, so every word parses; one that did not would keep the config's).
ActionOverride parse_override(const DomainOverride& row);
ActionOverrides parse_overrides(const DomainOverrides& rows);

// What messages are decided with: the configuration and the per-domain
// overrides, replaced together on reload (SIGUSR1).
struct Settings {
  std::shared_ptr<const Config> config;              // never null
  std::shared_ptr<const ActionOverrides> overrides;  // null: none
};

// The action for a verdict (pure; exposed for tests). `non_smtp`: the MTA
// sent no next-hop macros, so only non_smtp_action applies.
struct ChosenAction {
  Action action = Action::Continue;
  bool by_dane = false;  // DANE on its own (verdict.dane) weighs more than MTA-STS
};
ChosenAction choose(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp);
Action choose_action(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp);

// `config` with the fields `domain_override` sets replaced (pure): the DecisionConfig
// that choose_action gets for a domain with an override.
DecisionConfig with_override(const DecisionConfig& config, const ActionOverride& domain_override);
// The decision settings for one policy domain: the config, with that
// domain's override row applied when there is one.
DecisionConfig decision_config_for(const Settings& settings, const std::string& policy_domain);
// The routing rules (transports, exclusions) of a decision config.
RouteRules rules_from(const DecisionConfig& config);

class Session {
 public:
  Session(CheckFunction check, std::shared_ptr<const Config> config,
          std::shared_ptr<const ActionOverrides> overrides = nullptr);

  // Starts a message with the settings the session has.
  void begin_message(SteadyClock::time_point now);
  // Starts a message with `settings` (the current ones after a reload), so a
  // long-lived connection follows reloads from its next message on; a
  // message never changes settings half-way.
  void begin_message(SteadyClock::time_point now, Settings settings);
  // As above, for mail from the MTA's listener `daemon_name` ({daemon_name},
  // nullopt when not sent): one listed in decision.non_smtp_daemon_names
  // brings mail whose next hop is unknown (Postfix's non_smtpd_milters),
  // decided at end of message whatever the RCPT macros say.
  void begin_message(SteadyClock::time_point now, Settings settings,
                     std::optional<std::string_view> daemon_name);
  // As above, with the envelope sender (MAIL FROM, with or without angle
  // brackets): mail from our own TLSRPT report sender (report_mail_from())
  // is let through unchecked, each recipient logged reason=tlsrpt-report:
  // RFC 8460 §5.3 wants reports delivered even when the receiving domain's
  // TLS is what fails, and a report is what tells it so.
  void begin_message(SteadyClock::time_point now, Settings settings,
                     std::optional<std::string_view> daemon_name, std::optional<std::string_view> sender);
  // An in-scope recipient beyond decision.max_recipients in this message is
  // deferred with 452 4.5.3 at once: no decision, no per-message state.
  RcptReply on_rcpt(std::string_view address, std::optional<std::string_view> mailer,
                    std::optional<std::string_view> host, SteadyClock::time_point now);
  // The log lines: one per (domain, next hop), then one
  // "milter event=too-many-recipients" when recipients were deferred.
  EndOfMessage end_message(std::string_view queue_id, SteadyClock::time_point now);
  // Recipients left for end of message (no next-hop macros) in this message.
  bool has_undecided_recipients() const { return !pending_non_smtp_.empty(); }
  // Abort or close before end of message: the log lines, with NOQUEUE.
  std::vector<std::string> abort_message();
  // Where the session reads the time after a decision (tests: a fake).
  using TimeSource = std::function<SteadyClock::time_point()>;
  void set_time_source(TimeSource time_source) { time_ = std::move(time_source); }

 private:
  struct Decision {
    std::string domain;
    std::string next_hop;                       // "domain" | "relay" | "unknown"
    std::optional<policy::CheckResult> result;  // nullopt: not checked (trusted relay)
    std::string reason_override;  // "trusted-relay", "tlsrpt-report", "budget", "internal-error"
    Action action = Action::Continue;
    bool by_dane = false;  // the action is DANE's (RFC 7672), not MTA-STS's
    std::int64_t elapsed_ms = 0;
  };

  policy::Deadline deadline_for(SteadyClock::time_point now) const;
  static Decision counted(Decision d);
  Decision decide_route(const RecipientRoute& route, SteadyClock::time_point now, bool non_smtp);
  DecisionConfig decision_config_for(const std::string& policy_domain) const;
  RcptReply reply_for(const Decision& d) const;
  bool admit_recipient();
  std::vector<std::string> log_lines(std::string_view queue_id) const;
  void reset();

  CheckFunction check_;
  std::shared_ptr<const Config> config_;
  std::shared_ptr<const ActionOverrides> overrides_;  // null: none
  RouteRules rules_;
  TimeSource time_ = [] { return SteadyClock::now(); };
  // Time this message's decisions have taken: the budget is the milter's own
  // waiting, not the client's (a long DATA upload must not use it up).
  SteadyClock::duration spent_{};
  std::map<std::string, Decision> decisions_;     // key: domain + next hop
  std::vector<RecipientRoute> pending_non_smtp_;  // no macros: decided at end of message
  bool from_non_smtp_listener_ = false;           // this message: every recipient as if without macros
  bool report_mail_ = false;                      // this message is our own TLSRPT report
  std::size_t admitted_ = 0;  // in-scope recipients of this message, at most decision.max_recipients
  std::size_t refused_ = 0;   // in-scope recipients deferred beyond the limit (452 4.5.3)
};

// The logfmt decision line (README documents every key; never rename one).
std::string decision_log_line(std::string_view queue_id, std::string_view domain, std::string_view next_hop,
                              const std::optional<policy::CheckResult>& result,
                              std::string_view reason_override, Action action, std::int64_t elapsed_ms);

}  // namespace mtasts::milter
