// The delivery state machine of policy/report_delivery.h: back-off, the
// 24-hour limit, stale claims, and the spread of first sends.
#include "policy/report_delivery.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace mtasts::policy {
namespace {

Delivery to(std::string destination) {
  Delivery d;
  d.report_id = "2026-12-05.example.com@mx.example.net";
  d.destination = std::move(destination);
  return d;
}

TEST(ReportDelivery, StateNamesRoundTrip) {
  for (const DeliveryState state : {DeliveryState::Pending, DeliveryState::Sending, DeliveryState::Delivered,
                                    DeliveryState::Failed, DeliveryState::Expired})
    EXPECT_EQ(delivery_state_from_string(to_string(state)), state);
  EXPECT_EQ(delivery_state_from_string("Pending"), std::nullopt);
  EXPECT_EQ(delivery_state_from_string(""), std::nullopt);
}

TEST(ReportDelivery, RetryDelayDoublesFromFiveMinutesUpToFourHours) {
  const RetryPolicy retry;
  const struct {
    int attempts;
    std::int64_t delay;
  } rows[] = {{1, 300},  {2, 600},   {3, 1200},  {4, 2400},    {5, 4800},
              {6, 9600}, {7, 14400}, {8, 14400}, {1000, 14400}};
  for (const auto& row : rows) EXPECT_EQ(retry_delay(row.attempts, retry), row.delay) << row.attempts;
}

TEST(ReportDelivery, ClaimCountsTheAttemptAndKeepsTheFirstTime) {
  Delivery d = to("mailto:a@b.example");
  d = claimed(d, 100);
  EXPECT_EQ(d.state, DeliveryState::Sending);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.first_attempt_at, 100);
  d = after_attempt(d, AttemptOutcome::Temporary, "https 503", 101, RetryPolicy{});
  EXPECT_EQ(d.state, DeliveryState::Pending);
  EXPECT_EQ(d.not_before, 401);
  EXPECT_EQ(d.last_error, "https 503");
  EXPECT_EQ(d.claimed_at, 0);
  d = claimed(d, 500);
  EXPECT_EQ(d.attempts, 2);
  EXPECT_EQ(d.first_attempt_at, 100) << "the first attempt's time stays";
}

TEST(ReportDelivery, OutcomesEndOrRetry) {
  const RetryPolicy retry;
  const Delivery sending = claimed(to("https://r.example/"), 0);
  const Delivery delivered = after_attempt(sending, AttemptOutcome::Delivered, "https 200", 5, retry);
  EXPECT_EQ(delivered.state, DeliveryState::Delivered);
  EXPECT_EQ(delivered.finished_at, 5);
  const Delivery failed = after_attempt(sending, AttemptOutcome::Permanent, "https 404", 5, retry);
  EXPECT_EQ(failed.state, DeliveryState::Failed);
  EXPECT_EQ(failed.last_error, "https 404");
  // A retry that would start a day or more after the first attempt is not made.
  Delivery late = sending;
  late.attempts = 9;
  EXPECT_EQ(after_attempt(late, AttemptOutcome::Temporary, "x", 86'400 - 14'400, retry).state,
            DeliveryState::Expired);
  EXPECT_EQ(after_attempt(late, AttemptOutcome::Temporary, "x", 86'400 - 14'401, retry).state,
            DeliveryState::Pending);
}

TEST(ReportDelivery, DueWhenPendingTimeHasComeOrAClaimWentStale) {
  const RetryPolicy retry;
  Delivery d = to("mailto:a@b.example");
  d.not_before = 100;
  EXPECT_FALSE(is_due(d, 99, retry));
  EXPECT_TRUE(is_due(d, 100, retry));
  d = claimed(d, 100);
  EXPECT_FALSE(is_due(d, 100 + 899, retry)) << "another run may still be sending";
  EXPECT_TRUE(is_due(d, 100 + 900, retry)) << "that run died";
  for (const DeliveryState ended :
       {DeliveryState::Delivered, DeliveryState::Failed, DeliveryState::Expired}) {
    d.state = ended;
    EXPECT_FALSE(is_due(d, 1'000'000, retry));
  }
}

TEST(ReportDelivery, SpreadIsStableAndWithinTheWindow) {
  std::set<std::int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "2026-12-05.d" + std::to_string(i) + ".example@mx.example.net";
    const std::int64_t t = spread_send_time(id, "mailto:r@x.example", 1000, 3600);
    EXPECT_GE(t, 1000);
    EXPECT_LT(t, 1000 + 3600);
    EXPECT_EQ(t, spread_send_time(id, "mailto:r@x.example", 1000, 3600)) << "the same on every run";
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 150u) << "spread, not bunched";
  EXPECT_EQ(spread_send_time("id", "d", 1000, 0), 1000);
  // The two parts are kept apart: ("ab", "c") is not ("a", "bc").
  EXPECT_NE(spread_send_time("ab", "c", 0, 1'000'000'007), spread_send_time("a", "bc", 0, 1'000'000'007));
}

}  // namespace
}  // namespace mtasts::policy
