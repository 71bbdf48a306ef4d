// ReportSender with a real store (a temporary SQLite file) and fake DNS,
// transport and clock: every destination gets a report once, retries back
// off and end after a day, a crash between sending and marking loses
// nothing, and two senders never both send one delivery.
#include "milter/report_sender.h"

#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fakes/fake_sources.h"
#include "policy/tlsrpt.h"
#include "store_test_support.h"

namespace mtasts::milter {
namespace {

using policy::AttemptOutcome;
using policy::DeliveryState;
using policy::ReportScheme;
using policy::ReportUri;

struct FakeLookup final : DestinationLookup {
  std::vector<DestinationAnswer> answers;  // in turn; the last one repeats
  int calls = 0;
  DestinationAnswer lookup(const std::string&) override {
    const std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(calls), answers.size() - 1);
    ++calls;
    return answers.at(i);
  }
};

struct Call {
  std::string report_id;
  std::string destination;
  std::string bytes;
};

struct FakeTransport final : ReportTransport {
  std::vector<AttemptOutcome> outcomes{AttemptOutcome::Delivered};  // in turn; the last one repeats
  std::vector<Call> calls;
  std::function<void()> during;  // runs inside deliver(), before it returns
  TransportResult deliver(const store::StoredReport& report, const ReportUri& destination) override {
    calls.push_back({report.report_id, destination.uri, report.report_gz});
    if (during) during();
    const std::size_t i = std::min(calls.size() - 1, outcomes.size() - 1);
    return {outcomes.at(i), "fake " + std::to_string(calls.size())};
  }
};

// The process dying mid-send: not a std::exception, so nothing in the
// sender catches it (it catches what transports throw).
struct Crash {};

DestinationAnswer found(std::vector<ReportUri> rua) {
  DestinationAnswer answer;
  answer.kind = DestinationAnswer::Kind::Found;
  answer.record.rua = std::move(rua);
  return answer;
}

const ReportUri kMail{ReportScheme::Mailto, "mailto:tlsrpt@example.com"};
const ReportUri kHttps{ReportScheme::Https, "https://reports.example.com/v1"};

class ReportSenderTest : public ::testing::Test {
 protected:
  ReportSenderTest() : database_(store::Database::open(dir_.file("cache.db"))), store_(database_) {
    lookup_.answers = {found({kMail, kHttps})};
    day_ = policy::utc_day(clock_.now());  // the day is not over yet
    day_end_ = policy::utc_day_start(day_).value() + 86'400;
    const store::StoredReport report{
        "id-1",      day_, "example.com", "s!example.com!1!2.json.gz", std::string("\x1f\x8b\0gz", 5),
        clock_.now()};
    EXPECT_EQ(store_.save_reports({report}).value(), 1);
  }

  ReportSender sender(bool ignore_window = true) {
    ReportSenderSettings settings;
    settings.ignore_window = ignore_window;
    return ReportSender(store_, lookup_, transport_, clock_, settings);
  }

  policy::Delivery delivery_to(const std::string& destination) {
    const auto rows = store_.deliveries("");
    for (const policy::Delivery& d : rows.value())
      if (d.destination == destination) return d;
    ADD_FAILURE() << "no delivery to " << destination;
    return {};
  }

  mtasts::testing::TempDir dir_;
  std::shared_ptr<store::Database> database_;
  store::ReportStore store_;
  mtasts::testing::FakeClock clock_;
  FakeLookup lookup_;
  FakeTransport transport_;
  std::string day_;
  std::int64_t day_end_ = 0;
};

TEST_F(ReportSenderTest, DeliversToEveryDestinationOnceAndNeverAgain) {
  const SendSummary first = sender().send("");
  EXPECT_EQ(first.delivered, 2);
  ASSERT_EQ(transport_.calls.size(), 2u);
  EXPECT_EQ(transport_.calls[0].bytes, std::string("\x1f\x8b\0gz", 5)) << "the stored bytes, as built";
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Delivered);
  EXPECT_EQ(delivery_to(kHttps.uri).state, DeliveryState::Delivered);
  EXPECT_EQ(delivery_to(lookup_destination("example.com")).state, DeliveryState::Delivered);

  clock_.advance(7 * 86'400);
  const SendSummary again = sender().send("");
  EXPECT_EQ(again.attempted, 0);
  EXPECT_EQ(transport_.calls.size(), 2u) << "a re-run sends nothing twice";
  EXPECT_EQ(lookup_.calls, 1);
}

TEST_F(ReportSenderTest, FirstAttemptWaitsForItsPlaceInTheWindowAfterTheDay) {
  const SendSummary early = sender(false).send("");
  EXPECT_EQ(early.attempted, 0) << "the day is not over";
  EXPECT_EQ(early.waiting, 1);
  const policy::Delivery lookup = delivery_to(lookup_destination("example.com"));
  EXPECT_GE(lookup.not_before, day_end_);
  EXPECT_LT(lookup.not_before, day_end_ + 3600);

  clock_.advance(lookup.not_before - clock_.now());
  EXPECT_EQ(sender(false).send("").delivered, 2);
}

TEST_F(ReportSenderTest, TemporaryFailuresBackOffThenDeliverOnce) {
  lookup_.answers = {found({kMail})};
  transport_.outcomes = {AttemptOutcome::Temporary, AttemptOutcome::Temporary, AttemptOutcome::Delivered};
  sender().send("");
  ASSERT_EQ(transport_.calls.size(), 1u);
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Pending);
  EXPECT_EQ(delivery_to(kMail.uri).last_error, "fake 1");

  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 1u) << "not due before the first back-off (5 min)";
  clock_.advance(300);
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 2u);
  clock_.advance(300);
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 2u) << "the second back-off is 10 min";
  clock_.advance(300);
  EXPECT_EQ(sender().send("").delivered, 1);
  EXPECT_EQ(delivery_to(kMail.uri).attempts, 3);

  clock_.advance(86'400);
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 3u);
}

TEST_F(ReportSenderTest, PermanentFailureIsNotRetried) {
  lookup_.answers = {found({kMail})};
  transport_.outcomes = {AttemptOutcome::Permanent};
  EXPECT_EQ(sender().send("").failed, 1);
  clock_.advance(86'400);
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 1u);
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Failed);
}

TEST_F(ReportSenderTest, GivesUpADayAfterTheFirstAttempt) {
  lookup_.answers = {found({kMail})};
  transport_.outcomes = {AttemptOutcome::Temporary};
  sender().send("");
  const std::int64_t first = delivery_to(kMail.uri).first_attempt_at;
  for (int hour = 0; hour < 30; ++hour) {
    clock_.advance(3600);
    sender().send("");
  }
  const policy::Delivery ended = delivery_to(kMail.uri);
  EXPECT_EQ(ended.state, DeliveryState::Expired);
  EXPECT_LE(ended.finished_at, first + 86'400);
  // Run hourly, as a timer would: back-offs of 5, 10, 20, 40, 80, 160 min,
  // then 4 h put the attempts at 0, 1, 2, 3, 4, 6, 9, 13, 17 and 21 h; the
  // next would start more than 24 h after the first, so the 10th ends it.
  EXPECT_EQ(transport_.calls.size(), 10u);
}

TEST_F(ReportSenderTest, CrashBetweenSendAndMarkSendsAgainAfterTheClaimGoesStaleNeverLoses) {
  lookup_.answers = {found({kMail})};
  transport_.during = [] { throw Crash(); };
  EXPECT_THROW(sender().send(""), Crash);
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Sending);

  transport_.during = nullptr;
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 1u) << "a fresh claim may still be running elsewhere";
  clock_.advance(900);
  EXPECT_EQ(sender().send("").delivered, 1);
  ASSERT_EQ(transport_.calls.size(), 2u);
  EXPECT_EQ(transport_.calls[1].report_id, transport_.calls[0].report_id)
      << "the same report-id, so the copy shows";
  clock_.advance(86'400);
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 2u);
}

TEST_F(ReportSenderTest, ADeliveryWhoseAttemptsKeepDyingExpiresAfterADay) {
  lookup_.answers = {found({kMail})};
  transport_.during = [] { throw Crash(); };
  for (int i = 0; i < 200; ++i) {
    try {
      sender().send("");
    } catch (const Crash&) {
    }
    clock_.advance(900);
  }
  const policy::Delivery ended = delivery_to(kMail.uri);
  EXPECT_EQ(ended.state, DeliveryState::Expired);
  EXPECT_LE(ended.finished_at, ended.first_attempt_at + 86'400 + 900);
  EXPECT_LE(transport_.calls.size(), 97u) << "one attempt per 15 min for a day, then none";
}

TEST_F(ReportSenderTest, AThrowingTransportCostsOneAttemptNotTheRun) {
  transport_.during = [this] {
    if (transport_.calls.size() == 1) throw std::runtime_error("library fault");
  };
  const SendSummary summary = sender().send("");
  EXPECT_EQ(transport_.calls.size(), 2u) << "the second destination still tried";
  EXPECT_EQ(summary.delivered, 1);
  const std::string first = transport_.calls[0].destination;
  EXPECT_EQ(delivery_to(first).state, DeliveryState::Pending);
  EXPECT_EQ(delivery_to(first).last_error, "internal error: library fault");
}

TEST_F(ReportSenderTest, TwoSendersAtOnceNeverBothSendOneDelivery) {
  lookup_.answers = {found({kMail})};
  // A second process's database connection and sender, run while the first
  // one's transport is sending.
  store::ReportStore other_store(store::Database::open(dir_.file("cache.db")));
  FakeTransport other_transport;
  ReportSender other(other_store, lookup_, other_transport, clock_, ReportSenderSettings{{}, 3600, true});
  transport_.during = [&other] { other.send(""); };
  sender().send("");
  EXPECT_EQ(transport_.calls.size(), 1u);
  EXPECT_TRUE(other_transport.calls.empty());
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Delivered);
}

TEST_F(ReportSenderTest, NoUsableRecordEndsTheReportWithoutSending) {
  lookup_.answers = {DestinationAnswer{DestinationAnswer::Kind::None, {}, "tlsrpt-none"}};
  const SendSummary summary = sender().send("");
  EXPECT_EQ(summary.no_destination, 1);
  EXPECT_EQ(summary.failed, 0) << "most domains publish no record: not a failure of ours";
  clock_.advance(86'400);
  sender().send("");
  EXPECT_TRUE(transport_.calls.empty());
  EXPECT_EQ(lookup_.calls, 1);
  EXPECT_EQ(delivery_to(lookup_destination("example.com")).last_error,
            "no usable _smtp._tls record: tlsrpt-none");
}

TEST_F(ReportSenderTest, TemporaryDnsFailureIsRetriedThenDelivers) {
  lookup_.answers = {DestinationAnswer{DestinationAnswer::Kind::Temporary, {}, "servfail"}, found({kHttps})};
  sender().send("");
  EXPECT_TRUE(transport_.calls.empty());
  clock_.advance(300);
  EXPECT_EQ(sender().send("").delivered, 1);
  EXPECT_EQ(lookup_.calls, 2);
}

TEST_F(ReportSenderTest, NowBringsForwardFirstAttemptsAnEarlierRunScheduled) {
  EXPECT_EQ(sender(false).send("").attempted, 0) << "scheduled in the window";
  EXPECT_EQ(sender(true).send("").delivered, 2);
}

TEST_F(ReportSenderTest, AtMostTenDestinationsPerReport) {
  std::vector<ReportUri> many;
  for (int i = 0; i < 40; ++i)
    many.push_back({ReportScheme::Https, "https://r" + std::to_string(i) + ".example/"});
  lookup_.answers = {found(many)};
  EXPECT_EQ(sender().send("").delivered, 10);
}

TEST_F(ReportSenderTest, PruneDropsOldReportsOnlyOnceEveryDeliveryEnded) {
  lookup_.answers = {found({kMail})};
  transport_.outcomes = {AttemptOutcome::Temporary};
  sender().send("");  // this day's report: its mail delivery stays pending
  const store::StoredReport old{"id-old", "2001-01-01", "old.example", "s!old.example!1!2.json.gz", "gz", 0};
  ASSERT_EQ(store_.save_reports({old}).value(), 1);
  transport_.outcomes = {AttemptOutcome::Delivered};
  sender().send("2001-01-01");
  EXPECT_EQ(store_.prune_before("2001-01-01").value(), 0) << "nothing before the day kept first";
  EXPECT_EQ(store_.prune_before(day_).value(), 1) << "the old one, all delivered";
  EXPECT_FALSE(store_.load_report("id-old"));
  EXPECT_EQ(store_.prune_before("2999-01-01").value(), 0) << "a pending delivery keeps its report";
  EXPECT_TRUE(store_.load_report("id-1"));
  EXPECT_EQ(delivery_to(kMail.uri).state, DeliveryState::Pending);
}

TEST_F(ReportSenderTest, ADayArgumentLeavesOtherDaysAlone) {
  EXPECT_EQ(sender().send("2001-01-01").attempted, 0);
  EXPECT_TRUE(transport_.calls.empty());
  EXPECT_EQ(sender().send(day_).delivered, 2);
}

}  // namespace
}  // namespace mtasts::milter
