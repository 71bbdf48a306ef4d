#include "milter/session.h"

#include <fmt/format.h>

#include <algorithm>

#include "policy/ascii.h"
#include "policy/engine/metrics.h"
#include "policy/logfmt.h"

namespace mtasts::milter {

namespace {

// MAIL FROM as the MTA sends it ("<a@b>" or "a@b") against our report
// sender: the local part exactly, the domain without regard to case.
bool is_report_sender(std::string_view sender, std::string_view report_from) {
  if (report_from.empty()) return false;
  if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>')
    sender = sender.substr(1, sender.size() - 2);
  const std::size_t at = sender.rfind('@');
  const std::size_t our_at = report_from.rfind('@');
  return at != std::string_view::npos && our_at != std::string_view::npos &&
         sender.substr(0, at) == report_from.substr(0, our_at) &&
         policy::ascii_iequals(sender.substr(at + 1), report_from.substr(our_at + 1));
}

Action configured(Action action, bool may_reject) {
  return action == Action::Reject && !may_reject ? Action::Tempfail : action;
}

// Which of two actions weighs more on the message.
int weight(Action action) {
  switch (action) {
    case Action::Continue:
      return 0;
    case Action::Tag:
      return 1;
    case Action::Quarantine:
      return 2;
    case Action::Tempfail:
      return 3;
    case Action::Reject:
      return 4;
  }
  return 0;
}

policy::NextHop next_hop_from(const RecipientRoute& route) {
  policy::NextHop hop;
  hop.recipient_domain = route.domain;
  hop.kind = route.kind == RouteKind::SmartHost ? policy::NextHopKind::SmartHost
                                                : policy::NextHopKind::RecipientDomain;
  hop.relay_host = route.relay_host;
  hop.relay_address = route.relay_address;
  hop.relay_mx_lookup = route.relay_mx_lookup;
  hop.port = route.port;
  return hop;
}

// §5: only an enforce policy (or testing under strict_testing) changes
// delivery; a testing failure is at most tagged. Unknown never becomes a
// permanent failure, and a permanent failure needs a fresh TXT check (§5.1)
// and a failure the server does not itself call temporary (454).
Action sts_action(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp) {
  const auto& v = result.verdict;
  if (!v.mode || *v.mode == policy::Mode::None || v.outcome == policy::Outcome::Pass) return Action::Continue;
  const bool enforce = *v.mode == policy::Mode::Enforce || config.strict_testing;
  if (!enforce)
    return v.outcome == policy::Outcome::Fail ? configured(config.testing_action, false) : Action::Continue;
  const bool may_reject =
      v.outcome == policy::Outcome::Fail && !v.temporary && result.facts.resolution.fresh_txt_check;
  return configured(non_smtp ? config.non_smtp_action : config.enforce_action, may_reject);
}

// RFC 7672 where no enforce policy binds: a host that fails DANE is not
// delivered to, so a next hop with no deliverable host is held back like
// an enforce failure (decision.dane = enforce) or only tagged (record). A
// DANE failure is never a rejection: DANE MTAs defer it, and the next try
// may find the TLSA records or the certificate fixed.
Action dane_action(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp) {
  const auto& dane = result.verdict.dane;
  if (!dane || dane->outcome != policy::Outcome::Fail) return Action::Continue;
  switch (config.dane) {
    case DaneMode::Enforce:
      return configured(non_smtp ? config.non_smtp_action : config.enforce_action, false);
    case DaneMode::Record:
      return configured(config.testing_action, false);
    case DaneMode::Off:
      break;
  }
  return Action::Continue;
}

}  // namespace

ChosenAction choose(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp) {
  const Action sts = sts_action(result, config, non_smtp);
  const Action dane = dane_action(result, config, non_smtp);
  if (weight(dane) > weight(sts)) return {dane, true};
  return {sts, false};
}

Action choose_action(const policy::CheckResult& result, const DecisionConfig& config, bool non_smtp) {
  return choose(result, config, non_smtp).action;
}

// Only the fields an operator can set per domain; the rest (deadlines,
// transports, non_smtp_action, ...) stays global.
DecisionConfig with_override(const DecisionConfig& config, const ActionOverride& domain_override) {
  DecisionConfig out = config;
  if (domain_override.enforce_action) out.enforce_action = *domain_override.enforce_action;
  if (domain_override.testing_action) out.testing_action = *domain_override.testing_action;
  if (domain_override.strict_testing) out.strict_testing = *domain_override.strict_testing;
  return out;
}

RouteRules rules_from(const DecisionConfig& config) {
  RouteRules rules;
  rules.smtp_transports = {config.smtp_transports.begin(), config.smtp_transports.end()};
  rules.excluded_domains = {config.excluded_domains.begin(), config.excluded_domains.end()};
  return rules;
}

DecisionConfig decision_config_for(const Settings& settings, const std::string& policy_domain) {
  const DecisionConfig& config = settings.config->decision;
  if (!settings.overrides) return config;
  const auto it = settings.overrides->find(policy_domain);
  return it == settings.overrides->end() ? config : with_override(config, it->second);
}

ActionOverride parse_override(const DomainOverride& row) {
  const auto action = [](const std::optional<std::string>& word) {
    return word ? parse_action(*word) : std::nullopt;
  };
  auto testing = action(row.testing_action);
  if (testing && *testing != Action::Tag && *testing != Action::Continue) testing.reset();  // as the config
  return ActionOverride{action(row.enforce_action), testing, row.strict_testing};
}

ActionOverrides parse_overrides(const DomainOverrides& rows) {
  ActionOverrides out;
  for (const auto& [domain, row] : rows) out.emplace(domain, parse_override(row));
  return out;
}

Session::Session(CheckFunction check, std::shared_ptr<const Config> config,
                 std::shared_ptr<const ActionOverrides> overrides)
    : check_(std::move(check)),
      config_(std::move(config)),
      overrides_(std::move(overrides)),
      rules_(rules_from(config_->decision)) {}

void Session::reset() {
  decisions_.clear();
  pending_non_smtp_.clear();
  from_non_smtp_listener_ = false;
  report_mail_ = false;
  spent_ = {};
  admitted_ = 0;
  refused_ = 0;
}

void Session::begin_message(SteadyClock::time_point) { reset(); }

void Session::begin_message(SteadyClock::time_point now, Settings settings) {
  if (settings.config && settings.config != config_) {
    rules_ = rules_from(settings.config->decision);
    config_ = std::move(settings.config);
  }
  overrides_ = std::move(settings.overrides);
  begin_message(now);
}

void Session::begin_message(SteadyClock::time_point now, Settings settings,
                            std::optional<std::string_view> daemon_name) {
  begin_message(now, std::move(settings));
  const auto& names = config_->decision.non_smtp_daemon_names;
  from_non_smtp_listener_ = daemon_name && std::find(names.begin(), names.end(), *daemon_name) != names.end();
}

void Session::begin_message(SteadyClock::time_point now, Settings settings,
                            std::optional<std::string_view> daemon_name,
                            std::optional<std::string_view> sender) {
  begin_message(now, std::move(settings), daemon_name);
  report_mail_ = sender && is_report_sender(*sender, report_mail_from(config_->report));
}

// The override is keyed by the domain whose policy applied (§3.4: the relay's
// domain for a smart host), the domain the operator sees in `check` output.
DecisionConfig Session::decision_config_for(const std::string& policy_domain) const {
  return milter::decision_config_for(Settings{config_, overrides_}, policy_domain);
}

policy::Deadline Session::deadline_for(SteadyClock::time_point now) const {
  const auto rcpt = now + std::chrono::milliseconds(config_->decision.rcpt_deadline_ms);
  const auto budget = now + std::chrono::milliseconds(config_->decision.message_budget_ms) - spent_;
  // A spent budget still asks the checker, with no time: it answers from the
  // cached policy (a known enforce policy still tempfails) and never waits.
  return std::max(now, std::min(rcpt, budget));
}

// metrics: decisions by action and reason, verdicts by result type
// (README "Metrics"; the same fields as the decision line).
Session::Decision Session::counted(Decision d) {
  if (!policy::metrics::enabled()) return d;
  const auto& v = d.result ? &d.result->verdict : nullptr;
  const std::string_view reason = !d.reason_override.empty() ? std::string_view(d.reason_override)
                                  : v && !v->reason.empty()  ? std::string_view(v->reason)
                                                             : std::string_view("none");
  auto& m = policy::metrics::registry();
  m.decisions.add(to_string(d.action), reason);
  m.verdicts.add(v && v->result_type ? policy::to_string(*v->result_type) : std::string_view("none"));
  return d;
}

Session::Decision Session::decide_route(const RecipientRoute& route, SteadyClock::time_point now,
                                        bool non_smtp) {
  Decision d;
  d.domain = route.domain;
  d.next_hop = non_smtp ? "unknown" : route.kind == RouteKind::SmartHost ? "relay" : "domain";
  if (report_mail_) {
    d.reason_override = "tlsrpt-report";
    return d;
  }
  const auto& trusted = config_->decision.trusted_relays;
  if (route.kind == RouteKind::SmartHost && !route.relay_host.empty() &&
      std::find(trusted.begin(), trusted.end(), route.relay_host) != trusted.end()) {
    d.reason_override = "trusted-relay";
    return d;
  }
  try {
    d.result = check_(next_hop_from(route), deadline_for(now));
    const ChosenAction chosen = choose(*d.result, decision_config_for(d.result->policy_domain), non_smtp);
    d.action = chosen.action;
    d.by_dane = chosen.by_dane;
  } catch (const std::exception&) {
    d.reason_override = "internal-error";
    d.action = config_->decision.error_action;
  }
  const auto took = std::max(time_() - now, SteadyClock::duration::zero());
  spent_ += took;
  d.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  return d;
}

RcptReply Session::reply_for(const Decision& d) const {
  if (d.action != Action::Tempfail && d.action != Action::Reject) return {};
  if (d.by_dane)
    return {false, "451", "4.7.5", fmt::format("DANE: {}: {}", d.domain, d.result->verdict.dane->reason)};
  const std::string reason = !d.reason_override.empty()                      ? d.reason_override
                             : d.result && !d.result->verdict.reason.empty() ? d.result->verdict.reason
                                                                             : "unverified";
  const bool reject = d.action == Action::Reject;
  return {false, reject ? "550" : "451", reject ? "5.7.5" : "4.7.5",
          fmt::format("MTA-STS: {}: {}", d.domain, reason)};
}

// Counted before any decision, so a client sending 100,000 RCPTs (Postfix
// stops at smtpd_recipient_limit, a direct milter client need not) costs one
// comparison per extra recipient: per-message state and the end-of-message
// decisions, which must fit decision.message_budget_ms, grow with the
// admitted count only. Out-of-scope recipients cost nothing and never count.
bool Session::admit_recipient() {
  if (admitted_ >= config_->decision.max_recipients) {
    ++refused_;
    return false;
  }
  ++admitted_;
  return true;
}

RcptReply Session::on_rcpt(std::string_view address, std::optional<std::string_view> mailer,
                           std::optional<std::string_view> host, SteadyClock::time_point now) {
  RecipientRoute route = route_recipient(address, mailer, host, rules_);
  if (route.kind == RouteKind::OutOfScope) return {};
  // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another
  // transaction; the MTA passes our tempfail on with this code.
  if (!admit_recipient()) return {false, "452", "4.5.3", "MTA-STS: too many recipients in one message"};
  // A listed listener: the macros still tell local and non-SMTP recipients
  // apart (above), but the rest is decided at end of message, never at RCPT.
  if (from_non_smtp_listener_) route = route_recipient(address, std::nullopt, std::nullopt, rules_);
  if (route.kind == RouteKind::Unknown) {
    pending_non_smtp_.push_back(route);  // never tempfail at RCPT without a next hop
    return {};
  }
  const std::string key = route.domain + "|" + route.relay_host + route.relay_address;
  auto it = decisions_.find(key);
  if (it == decisions_.end()) it = decisions_.emplace(key, counted(decide_route(route, now, false))).first;
  return reply_for(it->second);
}

EndOfMessage Session::end_message(std::string_view queue_id, SteadyClock::time_point now) {
  EndOfMessage eom;
  for (const auto& route : pending_non_smtp_) {
    auto it = decisions_.find(route.domain + "|?");
    // Each domain's deadline and elapsed_ms start when its own decision does.
    if (it == decisions_.end())
      it = decisions_.emplace(route.domain + "|?", counted(decide_route(route, std::max(now, time_()), true)))
               .first;
    eom.tempfail = eom.tempfail || it->second.action == Action::Tempfail;
  }
  for (const auto& [key, d] : decisions_) {
    if (d.action == Action::Tag) {
      const bool unknown = d.result && d.result->verdict.outcome == policy::Outcome::Unknown;
      if (!eom.header_value || *eom.header_value == "unknown")
        eom.header_value = unknown ? "unknown" : "fail";
    }
    if (d.action == Action::Quarantine) eom.quarantine_reason = "MTA-STS policy not met";
  }
  eom.log_lines = log_lines(queue_id);
  reset();
  return eom;
}

std::vector<std::string> Session::abort_message() {
  auto lines = log_lines("NOQUEUE");
  reset();
  return lines;
}

std::vector<std::string> Session::log_lines(std::string_view queue_id) const {
  std::vector<std::string> lines;
  for (const auto& [key, d] : decisions_)
    lines.push_back(decision_log_line(queue_id, d.domain, d.next_hop, d.result, d.reason_override, d.action,
                                      d.elapsed_ms));
  // One line per message, not per deferred recipient: a flood of RCPTs must
  // not become a flood of log lines.
  if (refused_ > 0)
    lines.push_back(fmt::format("milter event=too-many-recipients queue_id={} limit={} refused={}",
                                policy::logfmt_value(queue_id), config_->decision.max_recipients, refused_));
  return lines;
}

std::string decision_log_line(std::string_view queue_id, std::string_view domain, std::string_view next_hop,
                              const std::optional<policy::CheckResult>& result,
                              std::string_view reason_override, Action action, std::int64_t elapsed_ms) {
  std::string mode = "-", policy_id, source = "none", mx, tls = "none", reason, result_type = "-";
  std::string dane = "-", dane_reason;
  if (result && result->verdict.dane) {
    dane = policy::to_string(result->verdict.dane->outcome);
    dane_reason = result->verdict.dane->reason;
  }
  if (result) {
    const auto& v = result->verdict;
    const auto& r = result->facts.resolution;
    if (v.mode) mode = policy::to_string(*v.mode);
    if (r.txt_id) policy_id = *r.txt_id;
    source = policy::to_string(r.source);
    if (!v.mx.empty()) mx = v.mx;
    tls = policy::to_string(v.tls);
    reason = v.reason;
    if (v.result_type) result_type = policy::to_string(*v.result_type);
  }
  if (!reason_override.empty()) reason = reason_override;
  return fmt::format(
      "decision queue_id={} domain={} next_hop={} mode={} policy_id={} source={} mx={} tls={} dane={} "
      "dane_reason={} action={} reason={} result_type={} elapsed_ms={}",
      // What the MTA, a policy host, an MX or an operator's import chose is
      // escaped: a queue id with a space must not add keys to the line.
      policy::logfmt_value(queue_id), policy::logfmt_value(domain), next_hop, mode,
      policy::logfmt_value(policy_id), source, policy::logfmt_value(mx), tls, dane,
      policy::logfmt_value(dane_reason), to_string(action), policy::logfmt_value(reason), result_type,
      elapsed_ms);
}

}  // namespace mtasts::milter
