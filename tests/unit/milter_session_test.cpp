// Session logic without libmilter: routing, verdict -> action, replies,
// end-of-message header/quarantine and the decision log lines.
#include "milter/session.h"

#include <gtest/gtest.h>

#include <map>

namespace mtasts::milter {
namespace {

using policy::Mode;
using policy::Outcome;

policy::CheckResult result(std::optional<Mode> mode, Outcome outcome, std::string reason = "",
                           bool fresh = true) {
  policy::CheckResult r;
  r.verdict.mode = mode;
  r.verdict.outcome = outcome;
  r.verdict.reason = std::move(reason);
  if (outcome == Outcome::Fail) r.verdict.result_type = policy::ResultType::ValidationFailure;
  r.verdict.tls = outcome == Outcome::Pass ? policy::TlsStatus::Verified : policy::TlsStatus::Failed;
  r.facts.resolution.fresh_txt_check = fresh;
  r.facts.resolution.source = mode ? policy::PolicySource::Cache : policy::PolicySource::None;
  if (mode) r.facts.resolution.txt_id = "id1";
  return r;
}

struct ActionCase {
  std::string name;
  std::optional<Mode> mode;
  Outcome outcome;
  bool fresh;
  std::string enforce_action;
  std::string testing_action;
  bool strict_testing;
  bool non_smtp;
  std::string non_smtp_action;
  Action want;
};

TEST(ChooseAction, Table) {
  const auto E = Mode::Enforce, T = Mode::Testing, N = Mode::None;
  const std::vector<ActionCase> cases{
      {"no policy", std::nullopt, Outcome::Pass, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"no policy unknown", std::nullopt, Outcome::Unknown, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"mode none", N, Outcome::Pass, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"enforce pass", E, Outcome::Pass, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"enforce fail", E, Outcome::Fail, true, "tempfail", "off", false, false, "tag", Action::Tempfail},
      {"enforce unknown", E, Outcome::Unknown, true, "tempfail", "off", false, false, "tag", Action::Tempfail},
      {"enforce reject fresh", E, Outcome::Fail, true, "reject", "off", false, false, "tag", Action::Reject},
      {"enforce reject stale", E, Outcome::Fail, false, "reject", "off", false, false, "tag", Action::Tempfail},
      {"enforce reject unknown", E, Outcome::Unknown, true, "reject", "off", false, false, "tag", Action::Tempfail},
      {"enforce quarantine", E, Outcome::Fail, true, "quarantine", "off", false, false, "tag", Action::Quarantine},
      {"enforce tag", E, Outcome::Fail, true, "tag", "off", false, false, "tag", Action::Tag},
      {"enforce off", E, Outcome::Fail, true, "off", "off", false, false, "tag", Action::Continue},
      {"testing fail off", T, Outcome::Fail, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"testing fail tag", T, Outcome::Fail, true, "tempfail", "tag", false, false, "tag", Action::Tag},
      {"testing unknown", T, Outcome::Unknown, true, "tempfail", "tag", false, false, "tag", Action::Continue},
      {"strict testing", T, Outcome::Fail, true, "tempfail", "off", true, false, "tag", Action::Tempfail},
      {"non-smtp tag", E, Outcome::Fail, true, "tempfail", "off", false, true, "tag", Action::Tag},
      {"non-smtp quarantine", E, Outcome::Fail, true, "tempfail", "off", false, true, "quarantine", Action::Quarantine},
      {"non-smtp off", E, Outcome::Unknown, true, "tempfail", "off", false, true, "off", Action::Continue},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecisionConfig config;
    config.enforce_action = c.enforce_action;
    config.testing_action = c.testing_action;
    config.strict_testing = c.strict_testing;
    config.non_smtp_action = c.non_smtp_action;
    EXPECT_EQ(to_string(choose_action(result(c.mode, c.outcome, "", c.fresh), config, c.non_smtp)),
              to_string(c.want));
  }
}

// A checker scripted per policy domain, counting calls and recording deadlines.
struct ScriptedChecker {
  std::map<std::string, policy::CheckResult> results;
  std::map<std::string, int> calls;
  std::vector<policy::Deadline> deadlines;
  std::vector<policy::NextHop> hops;
  bool throw_error = false;

  CheckFunction function() {
    return [this](const policy::NextHop& hop, policy::Deadline deadline) {
      if (throw_error) throw std::runtime_error("boom");
      const std::string domain = hop.kind == policy::NextHopKind::SmartHost ? hop.relay_host : hop.recipient_domain;
      ++calls[domain];
      deadlines.push_back(deadline);
      hops.push_back(hop);
      auto it = results.find(domain);
      return it == results.end() ? result(std::nullopt, Outcome::Pass, "no-policy") : it->second;
    };
  }
};

struct Fixture {
  ScriptedChecker checker;
  std::shared_ptr<Config> config = std::make_shared<Config>();
  std::unique_ptr<Session> session;
  SteadyClock::time_point t0 = SteadyClock::now();

  Fixture() {
    checker.results["good.example"] = result(Mode::Enforce, Outcome::Pass, "verified");
    checker.results["bad.example"] = result(Mode::Enforce, Outcome::Fail, "mx-not-in-policy");
    checker.results["test.example"] = result(Mode::Testing, Outcome::Fail, "cert-expired");
    checker.results["slow.example"] = result(Mode::Enforce, Outcome::Unknown, "deadline");
  }
  Session& start() {
    session = std::make_unique<Session>(checker.function(), config);
    session->begin_message(t0);
    return *session;
  }
};

TEST(Session, GoodAndBadRecipientsInOneMessage) {
  Fixture f;
  auto& s = f.start();
  EXPECT_TRUE(s.on_rcpt("<a@good.example>", "smtp", "good.example", f.t0).accept);
  const auto bad = s.on_rcpt("<b@bad.example>", "smtp", "bad.example", f.t0);
  EXPECT_FALSE(bad.accept);
  EXPECT_EQ(bad.code, "451");
  EXPECT_EQ(bad.xcode, "4.7.5");
  EXPECT_EQ(bad.text, "MTA-STS: bad.example: mx-not-in-policy");
  EXPECT_FALSE(s.on_rcpt("<c@BAD.example>", "smtp", "bad.example", f.t0).accept);
  EXPECT_EQ(f.checker.calls["bad.example"], 1) << "one decision per recipient domain";
  const auto eom = s.end_message("4XyZ12", f.t0);
  EXPECT_FALSE(eom.header_value);
  EXPECT_FALSE(eom.quarantine_reason);
  ASSERT_EQ(eom.log_lines.size(), 2u);
  EXPECT_EQ(eom.log_lines[0],
            "decision queue_id=4XyZ12 domain=bad.example next_hop=domain mode=enforce policy_id=id1 source=cache "
            "mx=- tls=failed action=tempfail reason=mx-not-in-policy result_type=validation-failure elapsed_ms=0");
  EXPECT_NE(eom.log_lines[1].find("domain=good.example next_hop=domain mode=enforce"), std::string::npos);
  EXPECT_NE(eom.log_lines[1].find("action=continue reason=verified"), std::string::npos);
}

struct ScopeCase {
  std::string name;
  std::string address;
  std::optional<std::string> mailer;
  std::optional<std::string> host;
  int checks;
};

TEST(Session, OnlyInScopeRecipientsAreCheckedAtRcpt) {
  const std::vector<ScopeCase> cases{
      {"smtp", "a@bad.example", "smtp", "bad.example", 1},
      {"sendmail esmtp", "a@bad.example", "esmtp", "bad.example.", 1},
      {"local transport", "a@bad.example", "local", "bad.example", 0},
      {"address literal", "a@[192.0.2.1]", "smtp", "[192.0.2.1]", 0},
      {"excluded", "a@excluded.example", "smtp", "excluded.example", 0},
      {"no macros", "a@bad.example", std::nullopt, std::nullopt, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    f.config->decision.excluded_domains = {"excluded.example"};
    auto& s = f.start();
    const auto reply = s.on_rcpt(c.address, c.mailer ? std::optional<std::string_view>(*c.mailer) : std::nullopt,
                                 c.host ? std::optional<std::string_view>(*c.host) : std::nullopt, f.t0);
    EXPECT_TRUE(reply.accept || c.checks == 1);
    int total = 0;
    for (const auto& [d, n] : f.checker.calls) total += n;
    EXPECT_EQ(total, c.checks);
  }
}

TEST(Session, NonSmtpMailIsDecidedAtEndOfMessage) {
  Fixture f;
  f.config->decision.non_smtp_action = "quarantine";
  auto& s = f.start();
  EXPECT_TRUE(s.on_rcpt("a@bad.example", std::nullopt, std::nullopt, f.t0).accept) << "never tempfail without a next hop";
  EXPECT_EQ(f.checker.calls["bad.example"], 0);
  const auto eom = s.end_message("ABC", f.t0);
  EXPECT_EQ(f.checker.calls["bad.example"], 1);
  EXPECT_EQ(eom.quarantine_reason, "MTA-STS policy not met");
  ASSERT_EQ(eom.log_lines.size(), 1u);
  EXPECT_NE(eom.log_lines[0].find("next_hop=unknown"), std::string::npos);
  EXPECT_NE(eom.log_lines[0].find("action=quarantine"), std::string::npos);
}

TEST(Session, TagHeaderNeverNamesADomain) {
  Fixture f;
  f.config->decision.enforce_action = "tag";
  f.config->decision.testing_action = "tag";
  auto& s = f.start();
  EXPECT_TRUE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
  EXPECT_TRUE(s.on_rcpt("b@test.example", "smtp", "test.example", f.t0).accept);
  EXPECT_TRUE(s.on_rcpt("c@good.example", "smtp", "good.example", f.t0).accept);
  const auto eom = s.end_message("Q1", f.t0);
  ASSERT_TRUE(eom.header_value);
  EXPECT_EQ(*eom.header_value, "fail");
}

TEST(Session, SmartHostUsesTheRelaysPolicyUnlessTrusted) {
  Fixture f;
  f.checker.results["relay.example"] = result(Mode::Enforce, Outcome::Fail, "cert-expired");
  auto& s = f.start();
  const auto reply = s.on_rcpt("a@good.example", "smtp", "[relay.example]:587", f.t0);
  EXPECT_FALSE(reply.accept);
  EXPECT_EQ(f.checker.calls["relay.example"], 1);
  ASSERT_EQ(f.checker.hops.size(), 1u);
  EXPECT_EQ(f.checker.hops[0].port, 587);
  EXPECT_NE(s.end_message("Q2", f.t0).log_lines[0].find("next_hop=relay"), std::string::npos);

  Fixture trusted;
  trusted.checker.results["relay.example"] = result(Mode::Enforce, Outcome::Fail, "cert-expired");
  trusted.config->decision.trusted_relays = {"relay.example"};
  auto& t = trusted.start();
  EXPECT_TRUE(t.on_rcpt("a@good.example", "smtp", "[relay.example]:587", trusted.t0).accept);
  EXPECT_EQ(trusted.checker.calls["relay.example"], 0);
  EXPECT_NE(t.end_message("Q3", trusted.t0).log_lines[0].find("reason=trusted-relay"), std::string::npos);
}

TEST(Session, DeadlinesRespectTheMessageBudget) {
  Fixture f;
  f.config->decision.rcpt_deadline_ms = 5000;
  f.config->decision.message_budget_ms = 8000;
  auto& s = f.start();
  s.on_rcpt("a@one.example", "smtp", "one.example", f.t0);
  s.on_rcpt("a@two.example", "smtp", "two.example", f.t0 + std::chrono::seconds(6));
  s.on_rcpt("a@three.example", "smtp", "three.example", f.t0 + std::chrono::seconds(9));
  ASSERT_EQ(f.checker.deadlines.size(), 3u);
  EXPECT_EQ(f.checker.deadlines[0], f.t0 + std::chrono::seconds(5));
  EXPECT_EQ(f.checker.deadlines[1], f.t0 + std::chrono::seconds(8)) << "capped by the budget";
  EXPECT_EQ(f.checker.deadlines[2], f.t0 + std::chrono::seconds(9)) << "spent budget: no waiting at all";
}

TEST(Session, AbortLogsWithNoQueueAndResets) {
  Fixture f;
  auto& s = f.start();
  s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0);
  const auto lines = s.abort_message();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with("decision queue_id=NOQUEUE domain=bad.example"));
  EXPECT_TRUE(s.abort_message().empty());
}

TEST(Session, InternalErrorTakesTheConfiguredFailSafe) {
  for (const std::string action : {"continue", "tempfail"}) {
    SCOPED_TRACE(action);
    Fixture f;
    f.checker.throw_error = true;
    f.config->decision.error_action = action;
    auto& s = f.start();
    EXPECT_EQ(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept, action == "continue");
    EXPECT_NE(s.end_message("Q", f.t0).log_lines.at(0).find("reason=internal-error"), std::string::npos);
  }
}

}  // namespace
}  // namespace mtasts::milter
