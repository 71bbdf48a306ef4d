// Session logic without libmilter: routing, verdict -> action, replies,
// end-of-message header/quarantine and the decision log lines.
#include "milter/session.h"

#include <gtest/gtest.h>

#include <map>

#include "policy/domain.h"

namespace mtasts::milter {
namespace {

// A config word as the config loader parses it ("off" is Continue).
Action word(std::string_view config_word) { return parse_action(config_word).value(); }

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
      {"no policy", std::nullopt, Outcome::Pass, true, "tempfail", "off", false, false, "tag",
       Action::Continue},
      {"no policy unknown", std::nullopt, Outcome::Unknown, true, "tempfail", "off", false, false, "tag",
       Action::Continue},
      {"mode none", N, Outcome::Pass, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"enforce pass", E, Outcome::Pass, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"enforce fail", E, Outcome::Fail, true, "tempfail", "off", false, false, "tag", Action::Tempfail},
      {"enforce unknown", E, Outcome::Unknown, true, "tempfail", "off", false, false, "tag",
       Action::Tempfail},
      {"enforce reject fresh", E, Outcome::Fail, true, "reject", "off", false, false, "tag", Action::Reject},
      {"enforce reject stale", E, Outcome::Fail, false, "reject", "off", false, false, "tag",
       Action::Tempfail},
      {"enforce reject unknown", E, Outcome::Unknown, true, "reject", "off", false, false, "tag",
       Action::Tempfail},
      {"enforce quarantine", E, Outcome::Fail, true, "quarantine", "off", false, false, "tag",
       Action::Quarantine},
      {"enforce tag", E, Outcome::Fail, true, "tag", "off", false, false, "tag", Action::Tag},
      {"enforce off", E, Outcome::Fail, true, "off", "off", false, false, "tag", Action::Continue},
      {"testing fail off", T, Outcome::Fail, true, "tempfail", "off", false, false, "tag", Action::Continue},
      {"testing fail tag", T, Outcome::Fail, true, "tempfail", "tag", false, false, "tag", Action::Tag},
      {"testing unknown", T, Outcome::Unknown, true, "tempfail", "tag", false, false, "tag",
       Action::Continue},
      {"strict testing", T, Outcome::Fail, true, "tempfail", "off", true, false, "tag", Action::Tempfail},
      {"non-smtp tag", E, Outcome::Fail, true, "tempfail", "off", false, true, "tag", Action::Tag},
      {"non-smtp quarantine", E, Outcome::Fail, true, "tempfail", "off", false, true, "quarantine",
       Action::Quarantine},
      {"non-smtp off", E, Outcome::Unknown, true, "tempfail", "off", false, true, "off", Action::Continue},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecisionConfig config;
    config.enforce_action = word(c.enforce_action);
    config.testing_action = word(c.testing_action);
    config.strict_testing = c.strict_testing;
    config.non_smtp_action = word(c.non_smtp_action);
    EXPECT_EQ(to_string(choose_action(result(c.mode, c.outcome, "", c.fresh), config, c.non_smtp)),
              to_string(c.want));
  }
}

// A failure the server calls temporary (STARTTLS answered 454) is never
// rejected permanently, even right after a fresh TXT check.
TEST(ChooseAction, TemporaryFailureIsNeverRejected) {
  DecisionConfig config;
  config.enforce_action = Action::Reject;
  auto r = result(Mode::Enforce, Outcome::Fail, "", true);
  EXPECT_EQ(to_string(choose_action(r, config, false)), to_string(Action::Reject));
  r.verdict.temporary = true;
  EXPECT_EQ(to_string(choose_action(r, config, false)), to_string(Action::Tempfail));
}

// RFC 7672 where no enforce policy binds: decision.dane says what a DANE
// failure does; it never rejects, and it weighs only when heavier than MTA-STS.
struct DaneActionCase {
  std::string name;
  std::optional<Mode> mode;
  Outcome sts;
  Outcome dane;
  DaneMode setting;
  std::string enforce_action;
  std::string testing_action;
  bool non_smtp;
  Action want;
  bool by_dane;
};

TEST(ChooseAction, DaneOnItsOwn) {
  const auto T = Mode::Testing, N = Mode::None;
  const auto E = DaneMode::Enforce, R = DaneMode::Record, O = DaneMode::Off;
  const std::vector<DaneActionCase> cases{
      {"no policy, dane fail, enforce", std::nullopt, Outcome::Pass, Outcome::Fail, E, "tempfail", "off",
       false, Action::Tempfail, true},
      {"no policy, dane fail, reject configured: tempfail", std::nullopt, Outcome::Pass, Outcome::Fail, E,
       "reject", "off", false, Action::Tempfail, true},
      {"no policy, dane fail, quarantine", std::nullopt, Outcome::Pass, Outcome::Fail, E, "quarantine", "off",
       false, Action::Quarantine, true},
      {"no policy, dane fail, non-smtp tag", std::nullopt, Outcome::Pass, Outcome::Fail, E, "tempfail", "off",
       true, Action::Tag, true},
      {"no policy, dane fail, record, testing tag", std::nullopt, Outcome::Pass, Outcome::Fail, R, "tempfail",
       "tag", false, Action::Tag, true},
      {"no policy, dane fail, record, testing off", std::nullopt, Outcome::Pass, Outcome::Fail, R, "tempfail",
       "off", false, Action::Continue, false},
      {"no policy, dane fail, off", std::nullopt, Outcome::Pass, Outcome::Fail, O, "tempfail", "off", false,
       Action::Continue, false},
      {"no policy, dane unknown: never held", std::nullopt, Outcome::Pass, Outcome::Unknown, E, "tempfail",
       "off", false, Action::Continue, false},
      {"mode none, dane fail", N, Outcome::Pass, Outcome::Fail, E, "tempfail", "off", false, Action::Tempfail,
       true},
      {"testing tag, dane fail: dane weighs more", T, Outcome::Fail, Outcome::Fail, E, "tempfail", "tag",
       false, Action::Tempfail, true},
      {"testing, dane pass", T, Outcome::Fail, Outcome::Pass, E, "tempfail", "tag", false, Action::Tag,
       false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecisionConfig config;
    config.enforce_action = word(c.enforce_action);
    config.testing_action = word(c.testing_action);
    config.dane = c.setting;
    auto r = result(c.mode, c.sts, "", true);
    r.verdict.dane =
        policy::DaneVerdict{c.dane, "tlsa-invalid", policy::ResultType::TlsaInvalid, "mx1.example"};
    const ChosenAction chosen = choose(r, config, c.non_smtp);
    EXPECT_EQ(to_string(chosen.action), to_string(c.want));
    EXPECT_EQ(chosen.by_dane, c.by_dane);
  }
}

// A checker scripted per policy domain, counting calls and recording deadlines.
struct ScriptedChecker {
  std::map<std::string, policy::CheckResult> results;
  std::map<std::string, int> calls;
  std::vector<policy::Deadline> deadlines;
  std::vector<policy::NextHop> hops;
  bool throw_error = false;
  // How long a domain's check takes, on the fake clock `now` (when set).
  std::map<std::string, std::chrono::milliseconds> takes;
  SteadyClock::time_point* now = nullptr;

  CheckFunction function() {
    return [this](const policy::NextHop& hop, policy::Deadline deadline) {
      if (throw_error) throw std::runtime_error("boom");
      const std::string domain =
          hop.kind == policy::NextHopKind::SmartHost ? hop.relay_host : hop.recipient_domain;
      ++calls[domain];
      if (now && takes.contains(domain)) *now += takes[domain];
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
  // Session and checker read `now`; checks advance it by checker.takes.
  Session& start_on_fake_time(SteadyClock::time_point& now) {
    Session& s = start();
    s.set_time_source([&now] { return now; });
    checker.now = &now;
    return s;
  }
};

TEST(Session, GoodAndBadRecipientsInOneMessage) {
  Fixture f;
  // The fake clock stands still, so the line below ends in elapsed_ms=0 on a
  // slow build too (on the real clock it read 1 under ASan on a busy machine).
  SteadyClock::time_point now = f.t0;
  auto& s = f.start_on_fake_time(now);
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
  EXPECT_EQ(
      eom.log_lines[0],
      "decision queue_id=4XyZ12 domain=bad.example next_hop=domain mode=enforce policy_id=id1 source=cache "
      "mx=- tls=failed dane=- dane_reason=- action=tempfail reason=mx-not-in-policy "
      "result_type=validation-failure elapsed_ms=0");
  EXPECT_NE(eom.log_lines[1].find("domain=good.example next_hop=domain mode=enforce"), std::string::npos);
  EXPECT_NE(eom.log_lines[1].find("action=continue reason=verified"), std::string::npos);
}

// A DANE failure of a domain without a policy: the reply names DANE and its
// reason, never a 5xx, and the log line carries dane= and dane_reason=.
TEST(Session, DaneFailureWithoutPolicyIsDeferredAndLogged) {
  Fixture f;
  f.config->decision.enforce_action = Action::Reject;
  auto dane_bad = result(std::nullopt, Outcome::Pass, "no-policy");
  dane_bad.verdict.dane =
      policy::DaneVerdict{Outcome::Fail, "tlsa-invalid", policy::ResultType::TlsaInvalid, "mx.dane.example"};
  f.checker.results["dane.example"] = dane_bad;
  auto& s = f.start();
  const auto reply = s.on_rcpt("<a@dane.example>", "smtp", "dane.example", f.t0);
  EXPECT_FALSE(reply.accept);
  EXPECT_EQ(reply.code, "451");
  EXPECT_EQ(reply.xcode, "4.7.5");
  EXPECT_EQ(reply.text, "DANE: dane.example: tlsa-invalid");
  const auto eom = s.end_message("Q1", f.t0);
  ASSERT_EQ(eom.log_lines.size(), 1u);
  EXPECT_NE(eom.log_lines[0].find(
                " tls=verified dane=fail dane_reason=tlsa-invalid action=tempfail reason=no-policy "),
            std::string::npos)
      << eom.log_lines[0];
}

// The MTA's queue id (and every other text we do not choose) cannot add
// keys or lines to a decision line (fuzz finding).
TEST(Session, UntrustedTextIsEscapedInTheDecisionLine) {
  Fixture f;
  auto& s = f.start();
  s.on_rcpt("<a@good.example>", "smtp", "good.example", f.t0);
  const auto eom = s.end_message("Q1 action=continue\nforged line", f.t0);
  ASSERT_EQ(eom.log_lines.size(), 1u);
  const std::string& line = eom.log_lines[0];
  EXPECT_TRUE(
      line.starts_with("decision queue_id=\"Q1 action=continue\\x0Aforged line\" domain=good.example "))
      << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const std::string after_queue_id = line.substr(line.find("\" domain="));
  EXPECT_EQ(after_queue_id.find(" action="), after_queue_id.rfind(" action=")) << "one action key: " << line;
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
    const auto reply =
        s.on_rcpt(c.address, c.mailer ? std::optional<std::string_view>(*c.mailer) : std::nullopt,
                  c.host ? std::optional<std::string_view>(*c.host) : std::nullopt, f.t0);
    EXPECT_TRUE(reply.accept || c.checks == 1);
    int total = 0;
    for (const auto& [d, n] : f.checker.calls) total += n;
    EXPECT_EQ(total, c.checks);
  }
}

TEST(Session, NonSmtpMailIsDecidedAtEndOfMessage) {
  Fixture f;
  f.config->decision.non_smtp_action = Action::Quarantine;
  auto& s = f.start();
  EXPECT_TRUE(s.on_rcpt("a@bad.example", std::nullopt, std::nullopt, f.t0).accept)
      << "never tempfail without a next hop";
  EXPECT_EQ(f.checker.calls["bad.example"], 0);
  const auto eom = s.end_message("ABC", f.t0);
  EXPECT_EQ(f.checker.calls["bad.example"], 1);
  EXPECT_EQ(eom.quarantine_reason, "MTA-STS policy not met");
  ASSERT_EQ(eom.log_lines.size(), 1u);
  EXPECT_NE(eom.log_lines[0].find("next_hop=unknown"), std::string::npos);
  EXPECT_NE(eom.log_lines[0].find("action=quarantine"), std::string::npos);
}

struct ListenerCase {
  std::string name;
  std::optional<std::string> daemon_name;
  bool decided_at_end;
};

// Postfix's non_smtpd_milters and listeners an operator names in
// decision.non_smtp_daemon_names: mail whose next hop is unknown, even when
// the RCPT macros are there.
TEST(Session, ListedDaemonNamesAreDecidedAtEndOfMessage) {
  const std::vector<ListenerCase> cases{
      {"listed listener", "mtasts-local", true},
      {"other listener", "mta.example", false},
      {"no daemon name", std::nullopt, false},
      {"case matters", "MTASTS-LOCAL", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    f.config->decision.non_smtp_daemon_names = {"mtasts-local"};
    f.session = std::make_unique<Session>(f.checker.function(), f.config);
    f.session->begin_message(f.t0, Settings{f.config, nullptr},
                             c.daemon_name ? std::optional<std::string_view>(*c.daemon_name) : std::nullopt);
    const auto reply = f.session->on_rcpt("a@bad.example", "smtp", "bad.example", f.t0);
    EXPECT_EQ(reply.accept, c.decided_at_end);
    const auto eom = f.session->end_message("Q1", f.t0);
    ASSERT_EQ(eom.log_lines.size(), 1u);
    EXPECT_NE(eom.log_lines[0].find(c.decided_at_end ? "next_hop=unknown" : "next_hop=domain"),
              std::string::npos)
        << eom.log_lines[0];
    EXPECT_EQ(eom.header_value.has_value(), c.decided_at_end) << "non_smtp_action tag at end of message";
  }
}

// On a listed listener the macros still count for scope: a local or virtual
// recipient is not checked at all.
TEST(Session, ListedListenerKeepsNonSmtpRecipientsOutOfScope) {
  Fixture f;
  f.config->decision.non_smtp_daemon_names = {"mtasts-local"};
  Session s(f.checker.function(), f.config);
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::string_view("mtasts-local"));
  EXPECT_TRUE(s.on_rcpt("a@bad.example", "local", "bad.example", f.t0).accept);
  EXPECT_TRUE(s.on_rcpt("b@bad.example", "virtual", "bad.example", f.t0).accept);
  const auto eom = s.end_message("Q1", f.t0);
  EXPECT_TRUE(eom.log_lines.empty()) << eom.log_lines[0];
  EXPECT_FALSE(eom.header_value.has_value());
  EXPECT_FALSE(eom.quarantine_reason.has_value());
}

// error_action = "tempfail" holds at end of message too: a check that
// failed internally for mail without macros refuses the message (451),
// while a recipient already answered at RCPT does not.
TEST(Session, InternalErrorAtEndOfMessageTempfailsWhenConfigured) {
  for (const std::string action : {"tempfail", "continue"}) {
    SCOPED_TRACE(action);
    Fixture f;
    f.config->decision.error_action = word(action);
    auto& s = f.start();
    f.checker.throw_error = true;
    EXPECT_TRUE(s.on_rcpt("a@good.example", std::nullopt, std::nullopt, f.t0).accept);
    const auto eom = s.end_message("Q1", f.t0);
    EXPECT_EQ(eom.tempfail, action == "tempfail");
    ASSERT_EQ(eom.log_lines.size(), 1u);
    EXPECT_NE(eom.log_lines[0].find("reason=internal-error"), std::string::npos) << eom.log_lines[0];
  }
  Fixture f;
  f.config->decision.error_action = Action::Tempfail;
  auto& s = f.start();
  f.checker.throw_error = true;
  EXPECT_FALSE(s.on_rcpt("a@good.example", "smtp", "good.example", f.t0).accept) << "answered at RCPT";
  EXPECT_FALSE(s.end_message("Q2", f.t0).tempfail) << "nothing decided at end of message";
}

TEST(Session, ListenerMarkLastsOneMessage) {
  Fixture f;
  f.config->decision.non_smtp_daemon_names = {"mtasts-local"};
  Session s(f.checker.function(), f.config);
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::string_view("mtasts-local"));
  EXPECT_TRUE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
  (void)s.end_message("Q1", f.t0);
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::nullopt);
  EXPECT_FALSE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
}

// RFC 8460 §5.3: our own report mail reaches a domain whose TLS fails.
TEST(Session, OwnReportMailPassesUncheckedForOneMessage) {
  Fixture f;
  f.config->report.contact_info = "tlsrpt@mx.example.net";
  Session s(f.checker.function(), f.config);
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::nullopt,
                  std::string_view("<noreply-tlsrpt@MX.Example.NET>"));
  EXPECT_TRUE(s.on_rcpt("tlsrpt@bad.example", "smtp", "bad.example", f.t0).accept);
  EXPECT_EQ(f.checker.calls["bad.example"], 0) << "not checked at all";
  const auto eom = s.end_message("Q1", f.t0);
  ASSERT_EQ(eom.log_lines.size(), 1u);
  EXPECT_NE(eom.log_lines[0].find("domain=bad.example "), std::string::npos) << eom.log_lines[0];
  EXPECT_NE(eom.log_lines[0].find("action=continue reason=tlsrpt-report "), std::string::npos)
      << eom.log_lines[0];

  for (const std::string_view other : {"<someone@mx.example.net>", "<Noreply-tlsrpt@mx.example.net>", "<>"}) {
    s.begin_message(f.t0, Settings{f.config, nullptr}, std::nullopt, other);
    EXPECT_FALSE(s.on_rcpt("tlsrpt@bad.example", "smtp", "bad.example", f.t0).accept) << other;
    (void)s.end_message("Q2", f.t0);
  }
  f.config->report.mail_from = "reports@example.org";
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::nullopt, std::string_view("reports@example.org"));
  EXPECT_TRUE(s.on_rcpt("tlsrpt@bad.example", "smtp", "bad.example", f.t0).accept) << "report.mail_from";
}

TEST(Session, NoReportSenderWithoutContactInfo) {
  Fixture f;
  Session s(f.checker.function(), f.config);
  s.begin_message(f.t0, Settings{f.config, nullptr}, std::nullopt, std::string_view("<noreply-tlsrpt@>"));
  EXPECT_FALSE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
}

TEST(Session, TagHeaderNeverNamesADomain) {
  Fixture f;
  f.config->decision.enforce_action = Action::Tag;
  f.config->decision.testing_action = Action::Tag;
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

// The budget is the time the milter's own decisions took: one.example
// takes 5 s, the client idles 1 s, two.example gets the 3 s left of 8 and
// takes them, three.example gets no time at all.
TEST(Session, DeadlinesRespectTheMessageBudget) {
  using std::chrono::seconds;
  Fixture f;
  f.config->decision.rcpt_deadline_ms = 5000;
  f.config->decision.message_budget_ms = 8000;
  SteadyClock::time_point now = f.t0;
  auto& s = f.start_on_fake_time(now);
  f.checker.takes = {{"one.example", seconds(5)}, {"two.example", seconds(3)}};
  s.on_rcpt("a@one.example", "smtp", "one.example", now);
  now += seconds(1);
  s.on_rcpt("a@two.example", "smtp", "two.example", now);
  s.on_rcpt("a@three.example", "smtp", "three.example", now);
  ASSERT_EQ(f.checker.deadlines.size(), 3u);
  EXPECT_EQ(f.checker.deadlines[0], f.t0 + seconds(5));
  EXPECT_EQ(f.checker.deadlines[1], f.t0 + seconds(6 + 3)) << "capped by what is left of the budget";
  EXPECT_EQ(f.checker.deadlines[2], f.t0 + seconds(9)) << "spent budget: no waiting at all";
  const auto lines = s.end_message("Q1", now).log_lines;
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].ends_with("elapsed_ms=5000")) << lines[0];
  EXPECT_TRUE(lines[2].ends_with("elapsed_ms=3000")) << lines[2];
}

// Mail decided at end of message: the client's DATA upload (here 25 s) does
// not use the budget up, and each domain's deadline and elapsed_ms start when
// its own decision does.
TEST(Session, EndOfMessageDecisionsGetTheirOwnTime) {
  using std::chrono::seconds;
  Fixture f;
  f.config->decision.rcpt_deadline_ms = 5000;
  f.config->decision.message_budget_ms = 20000;
  SteadyClock::time_point now = f.t0;
  auto& s = f.start_on_fake_time(now);
  f.checker.takes = {{"one.example", seconds(4)}, {"two.example", seconds(1)}};
  s.on_rcpt("a@one.example", std::nullopt, std::nullopt, now);
  s.on_rcpt("a@two.example", std::nullopt, std::nullopt, now);
  now += seconds(25);
  const auto eom = s.end_message("Q1", now);
  ASSERT_EQ(f.checker.deadlines.size(), 2u);
  EXPECT_EQ(f.checker.deadlines[0], f.t0 + seconds(25 + 5));
  EXPECT_EQ(f.checker.deadlines[1], f.t0 + seconds(25 + 4 + 5)) << "starts after the first decision";
  ASSERT_EQ(eom.log_lines.size(), 2u);
  EXPECT_TRUE(eom.log_lines[0].ends_with("elapsed_ms=4000")) << eom.log_lines[0];
  EXPECT_TRUE(eom.log_lines[1].ends_with("elapsed_ms=1000")) << eom.log_lines[1];
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

// Issue #10 item 8: a direct milter client sent 100,000 RCPTs in one
// message. Past decision.max_recipients an in-scope recipient gets 452 4.5.3
// at once (RFC 5321 §4.5.3.1.10): the checker never sees it, it is not kept
// for end of message, and one line per message counts the refusals.
struct LimitStep {
  std::string address;
  std::optional<std::string> mailer;  // nullopt: no next-hop macros (decided at end of message)
  std::string want_code;              // "" accepted, else the reply code
};

RcptReply rcpt(Session& s, const LimitStep& step, SteadyClock::time_point now) {
  const std::string domain(policy::address_domain(step.address));
  if (!step.mailer) return s.on_rcpt(step.address, std::nullopt, std::nullopt, now);
  return s.on_rcpt(step.address, *step.mailer, domain, now);
}

int total_checks(const ScriptedChecker& checker) {
  int total = 0;
  for (const auto& [domain, n] : checker.calls) total += n;
  return total;
}

TEST(Session, RecipientsBeyondTheLimitAreDeferredWithoutADecision) {
  Fixture f;
  f.config->decision.max_recipients = 3;
  auto& s = f.start();
  const std::vector<LimitStep> steps{
      {"a@good.example", "smtp", ""},
      {"b@bad.example", "smtp", "451"},
      {"c@local.example", "local", ""},  // out of scope: not counted
      {"d@nonsmtp.example", std::nullopt, ""},
      {"e@over.example", "smtp", "452"},
      {"f@good.example", "smtp", "452"},  // a domain already decided still counts
      {"g@late-nonsmtp.example", std::nullopt, "452"},
      {"h@local.example", "local", ""},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.address);
    const auto reply = rcpt(s, step, f.t0);
    EXPECT_EQ(reply.accept, step.want_code.empty());
    EXPECT_EQ(reply.code, step.want_code);
    if (step.want_code == "452") {
      EXPECT_EQ(reply.xcode, "4.5.3");
      EXPECT_EQ(reply.text, "MTA-STS: too many recipients in one message");
    }
  }
  EXPECT_EQ(total_checks(f.checker), 2) << "good and bad at RCPT, nothing for the refused";
  const auto eom = s.end_message("Q1", f.t0);
  EXPECT_EQ(f.checker.calls["nonsmtp.example"], 1);
  EXPECT_EQ(f.checker.calls["late-nonsmtp.example"], 0)
      << "a refused recipient is not kept for end of message";
  EXPECT_EQ(f.checker.calls["over.example"], 0);
  EXPECT_EQ(total_checks(f.checker), 3);
  ASSERT_EQ(eom.log_lines.size(), 4u) << "three decision lines and one count";
  EXPECT_EQ(eom.log_lines[3], "milter event=too-many-recipients queue_id=Q1 limit=3 refused=3");

  // The next message on the same connection counts from zero; an aborted
  // one logs its count with NOQUEUE, and one within the limit logs none.
  s.begin_message(f.t0);
  for (const char* address : {"a@one.example", "b@two.example", "c@three.example"})
    EXPECT_TRUE(s.on_rcpt(address, "smtp", policy::address_domain(address), f.t0).accept) << address;
  EXPECT_EQ(s.on_rcpt("d@four.example", "smtp", "four.example", f.t0).code, "452");
  const auto aborted = s.abort_message();
  ASSERT_EQ(aborted.size(), 4u);
  EXPECT_EQ(aborted[3], "milter event=too-many-recipients queue_id=NOQUEUE limit=3 refused=1");
  s.begin_message(f.t0);
  EXPECT_TRUE(s.on_rcpt("a@five.example", "smtp", "five.example", f.t0).accept);
  const auto within = s.end_message("Q3", f.t0).log_lines;
  ASSERT_EQ(within.size(), 1u);
  EXPECT_TRUE(within[0].starts_with("decision queue_id=Q3 domain=five.example")) << within[0];
}

TEST(Session, InternalErrorTakesTheConfiguredFailSafe) {
  for (const std::string action : {"continue", "tempfail"}) {
    SCOPED_TRACE(action);
    Fixture f;
    f.checker.throw_error = true;
    f.config->decision.error_action = word(action);
    auto& s = f.start();
    EXPECT_EQ(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept, action == "continue");
    EXPECT_NE(s.end_message("Q", f.t0).log_lines.at(0).find("reason=internal-error"), std::string::npos);
  }
}

// ---------------------------------------------------------------- overrides

TEST(WithOverride, ReplacesOnlyTheFieldsItSets) {
  struct Case {
    std::string name;
    DomainOverride o;
    std::string enforce, testing;
    bool strict;
  };
  const std::vector<Case> cases{
      {"empty", {}, "reject", "tag", true},
      {"enforce only", {"off", std::nullopt, std::nullopt}, "off", "tag", true},
      {"testing only", {std::nullopt, "off", std::nullopt}, "reject", "off", true},
      {"strict off", {std::nullopt, std::nullopt, false}, "reject", "tag", false},
      {"all", {"quarantine", "off", false}, "quarantine", "off", false},
      {"a word the store would refuse keeps the config",
       {"bounce", "reject", std::nullopt},
       "reject",
       "tag",
       true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecisionConfig config;
    config.enforce_action = Action::Reject;
    config.testing_action = Action::Tag;
    config.strict_testing = true;
    config.non_smtp_action = Action::Quarantine;
    config.rcpt_deadline_ms = 1234;
    const DecisionConfig out = with_override(config, parse_override(c.o));
    EXPECT_EQ(out.enforce_action, word(c.enforce));
    EXPECT_EQ(out.testing_action, word(c.testing));
    EXPECT_EQ(out.strict_testing, c.strict);
    EXPECT_EQ(out.non_smtp_action, Action::Quarantine) << "not overridable";
    EXPECT_EQ(out.rcpt_deadline_ms, 1234);
  }
}

// A result as the real checker returns it: policy_domain filled in.
policy::CheckResult for_domain(std::string policy_domain, policy::CheckResult r) {
  r.policy_domain = std::move(policy_domain);
  return r;
}

struct OverrideCase {
  std::string name;
  std::string config_enforce;  // decision.enforce_action
  bool config_strict;
  DomainOverrides overrides;
  std::string address;
  std::optional<std::string> host;  // nullopt: no macros (non-SMTP)
  bool accept;
  std::string action;  // in the decision log line
  std::optional<std::string> header;
};

TEST(Session, OverridesApplyToTheirPolicyDomainOnly) {
  const DomainOverride tag{"tag", std::nullopt, std::nullopt};
  const DomainOverride strict{std::nullopt, "tag", true};
  const std::vector<OverrideCase> cases{
      {"no override", "tempfail", false, {}, "a@bad.example", "bad.example", false, "tempfail", std::nullopt},
      {"enforce tag",
       "tempfail",
       false,
       {{"bad.example", tag}},
       "a@bad.example",
       "bad.example",
       true,
       "tag",
       "fail"},
      {"enforce off",
       "tempfail",
       false,
       {{"bad.example", {"off", {}, {}}}},
       "a@bad.example",
       "bad.example",
       true,
       "continue",
       std::nullopt},
      {"enforce quarantine",
       "tempfail",
       false,
       {{"bad.example", {"quarantine", {}, {}}}},
       "a@bad.example",
       "bad.example",
       true,
       "quarantine",
       std::nullopt},
      {"tempfail despite a tagging config",
       "tag",
       false,
       {{"bad.example", {"tempfail", {}, {}}}},
       "a@bad.example",
       "bad.example",
       false,
       "tempfail",
       std::nullopt},
      {"override of another domain",
       "tempfail",
       false,
       {{"good.example", tag}},
       "a@bad.example",
       "bad.example",
       false,
       "tempfail",
       std::nullopt},
      {"NULL columns keep the config",
       "tempfail",
       false,
       {{"bad.example", {}}},
       "a@bad.example",
       "bad.example",
       false,
       "tempfail",
       std::nullopt},
      {"strict testing for one domain",
       "tempfail",
       false,
       {{"test.example", {std::nullopt, std::nullopt, true}}},
       "a@test.example",
       "test.example",
       false,
       "tempfail",
       std::nullopt},
      {"strict testing off for one domain",
       "tempfail",
       true,
       {{"test.example", {std::nullopt, "tag", false}}},
       "a@test.example",
       "test.example",
       true,
       "tag",
       "fail"},
      {"strict wins over testing_action",
       "tempfail",
       false,
       {{"test.example", strict}},
       "a@test.example",
       "test.example",
       false,
       "tempfail",
       std::nullopt},
      {"a pass stays a pass",
       "tempfail",
       false,
       {{"good.example", {"tempfail", {}, true}}},
       "a@good.example",
       "good.example",
       true,
       "continue",
       std::nullopt},
      {"smart host: keyed by the relay's domain",
       "tempfail",
       false,
       {{"relay.example", tag}},
       "a@good.example",
       "[relay.example]:587",
       true,
       "tag",
       "fail"},
      {"smart host: the recipient domain's row does not apply",
       "tempfail",
       false,
       {{"good.example", tag}},
       "a@good.example",
       "[relay.example]:587",
       false,
       "tempfail",
       std::nullopt},
      {"non-SMTP keeps non_smtp_action",
       "tempfail",
       false,
       {{"bad.example", {"off", {}, {}}}},
       "a@bad.example",
       std::nullopt,
       true,
       "tag",
       "fail"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    for (auto& [domain, r] : f.checker.results) r = for_domain(domain, r);
    f.checker.results["relay.example"] =
        for_domain("relay.example", result(Mode::Enforce, Outcome::Fail, "cert-expired"));
    f.config->decision.enforce_action = word(c.config_enforce);
    f.config->decision.strict_testing = c.config_strict;
    f.session =
        std::make_unique<Session>(f.checker.function(), f.config,
                                  std::make_shared<const ActionOverrides>(parse_overrides(c.overrides)));
    f.session->begin_message(f.t0);
    const auto reply =
        f.session->on_rcpt(c.address, c.host ? std::optional<std::string_view>("smtp") : std::nullopt,
                           c.host ? std::optional<std::string_view>(*c.host) : std::nullopt, f.t0);
    EXPECT_EQ(reply.accept, c.accept) << reply.text;
    const auto eom = f.session->end_message("Q9", f.t0);
    EXPECT_EQ(eom.header_value, c.header);
    ASSERT_EQ(eom.log_lines.size(), 1u);
    EXPECT_NE(eom.log_lines[0].find(" action=" + c.action + " "), std::string::npos) << eom.log_lines[0];
  }
}

TEST(Session, NewSettingsApplyFromTheNextMessageOnTheSameConnection) {
  Fixture f;
  for (auto& [domain, r] : f.checker.results) r = for_domain(domain, r);
  auto& s = f.start();
  EXPECT_FALSE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept) << "before the reload";
  s.abort_message();

  struct Step {
    std::string name;
    DomainOverrides overrides;
    std::string enforce_action;
    bool accept;
    std::optional<std::string> header;
  };
  const std::vector<Step> steps{
      {"override added", {{"bad.example", {"tag", {}, {}}}}, "tempfail", true, "fail"},
      {"override changed", {{"bad.example", {"off", {}, {}}}}, "tempfail", true, std::nullopt},
      {"override removed", {}, "tempfail", false, std::nullopt},
      {"config changed, no override", {}, "quarantine", true, std::nullopt},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.name);
    auto config = std::make_shared<Config>(*f.config);
    config->decision.enforce_action = word(step.enforce_action);
    s.begin_message(
        f.t0, Settings{config, std::make_shared<const ActionOverrides>(parse_overrides(step.overrides))});
    EXPECT_EQ(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept, step.accept);
    EXPECT_EQ(s.end_message("Q", f.t0).header_value, step.header);
  }
  // A plain begin_message keeps the settings of the last one.
  s.begin_message(f.t0);
  EXPECT_TRUE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
  EXPECT_EQ(s.end_message("Q", f.t0).quarantine_reason, "MTA-STS policy not met");
}

TEST(Session, NewTransportRulesApplyFromTheNextMessage) {
  Fixture f;
  auto& s = f.start();
  auto config = std::make_shared<Config>(*f.config);
  config->decision.excluded_domains = {"bad.example"};
  s.begin_message(f.t0, Settings{config, nullptr});
  EXPECT_TRUE(s.on_rcpt("a@bad.example", "smtp", "bad.example", f.t0).accept);
  EXPECT_EQ(f.checker.calls["bad.example"], 0) << "excluded by the new config";
}

}  // namespace
}  // namespace mtasts::milter
