// policy::metrics: exact counts under concurrent updates without a lock,
// the label table's bound, the text format, and the off switch.
#include "policy/engine/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace mtasts::policy::metrics {
namespace {

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { set_enabled(true); }
  void TearDown() override { set_enabled(false); }
};

TEST_F(MetricsTest, ConcurrentAddsToLabelSetsAreExact) {
  LabeledCounter counter("t_total", "test", {"action", "reason"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&counter, t] {
      for (int i = 0; i < 20000; ++i)
        counter.add(i % 2 ? "continue" : "tempfail", "r" + std::to_string((i + t) % 5));
    });
  }
  for (auto& t : threads) t.join();
  std::uint64_t total = 0;
  for (const char* action : {"continue", "tempfail"})
    for (int r = 0; r < 5; ++r) total += counter.value(action, "r" + std::to_string(r));
  EXPECT_EQ(total, 8U * 20000U);
  std::string out;
  counter.write(out);
  EXPECT_EQ(out.find("other"), std::string::npos) << "a slot being claimed must not lose counts for long";
}

TEST_F(MetricsTest, BeyondTheSlotsNewLabelSetsCountAsOther) {
  LabeledCounter counter("t_total", "test", {"reason"});
  for (std::size_t i = 0; i < LabeledCounter::kSlots + 10; ++i) counter.add("reason-" + std::to_string(i));
  std::string out;
  counter.write(out);
  EXPECT_NE(out.find("t_total{reason=\"other\"} 10\n"), std::string::npos) << out.substr(out.size() - 200);
  EXPECT_EQ(counter.value("reason-0"), 1U);
}

TEST_F(MetricsTest, TextFormatEscapesAndCutsLabels) {
  LabeledCounter counter("t_total", "test", {"reason"});
  counter.add("a\"b\\c\nd");
  counter.add(std::string(200, 'x'));
  std::string out;
  counter.write(out);
  EXPECT_NE(out.find("# HELP t_total test\n# TYPE t_total counter\n"), std::string::npos);
  EXPECT_NE(out.find("t_total{reason=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_total{reason=\"" + std::string(LabeledCounter::kMaxLabelBytes, 'x') + "\"} 1\n"),
            std::string::npos);
}

TEST_F(MetricsTest, HistogramBucketsAreCumulative) {
  Histogram h("t_seconds", "test");
  h.observe(std::chrono::microseconds(500));  // <= 0.001
  h.observe(std::chrono::milliseconds(30));   // <= 0.05
  h.observe(std::chrono::seconds(120));       // beyond 60: +Inf only
  std::string out;
  h.write(out);
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.025\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.05\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"60\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_count 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_sum 120.030500\n"), std::string::npos) << out;
}

TEST_F(MetricsTest, OffCountsNothing) {
  set_enabled(false);
  LabeledCounter labelled("t_total", "test", {"reason"});
  Counter plain("t2_total", "test");
  Gauge gauge("t_running", "test");
  labelled.add("x");
  plain.add();
  { const Running running(gauge); }
  EXPECT_EQ(labelled.value("x"), 0U);
  EXPECT_EQ(plain.value(), 0U);
  EXPECT_EQ(gauge.value(), 0);
}

}  // namespace
}  // namespace mtasts::policy::metrics
