// build_daily_reports / make_report_id: RFC 8460 §4.4 documents, §5.1 names.
// WritesExampleReports puts every report built here into $TLSRPT_REPORT_OUT
// (a temporary folder when unset) for tests/integration/tlsrpt_report_schema.sh.
#include "policy/tlsrpt_report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "printable.h"

namespace mtasts::policy {
namespace {

const std::string kDay = "2026-12-05";
const std::string kRange = "!1796428800!1796515199";  // 2026-12-05T00:00:00Z .. T23:59:59Z
const ReportSubmitter kSubmitter{"Example Sender", "tlsrpt@mx.example.net", "mx.example.net"};

const std::string kStsText =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.backup.example.com\r\nmax_age: "
    "604800\r\n";
const std::string kStsLines =
    R"(["version: STSv1","mode: enforce","mx: mx1.example.com","mx: *.backup.example.com","max_age: 604800"])";
const std::string kStsMx = "mx1.example.com *.backup.example.com";
const std::string kTlsa1 =
    "3 1 1 "
    "0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6";
const std::string kTlsa2 =
    "2 0 1 "
    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";

TlsrptAggregate policy_row(const std::string& domain, const std::string& type, const std::string& text,
                           const std::string& mx, const std::string& day = kDay) {
  TlsrptAggregate a;
  a.day = day;
  a.policy_type = type;
  a.policy_domain = domain;
  a.policy_string = text;
  a.mx_patterns = mx;
  return a;
}

TlsrptAggregate ok(TlsrptAggregate a, std::int64_t sessions) {
  a.success = true;
  a.sessions = sessions;
  return a;
}

TlsrptAggregate failed(TlsrptAggregate a, std::optional<ResultType> type, const std::string& reason,
                       const std::string& sending_ip, const std::string& mx_host,
                       const std::string& receiving_ip, std::int64_t sessions,
                       const std::string& additional = "") {
  a.success = false;
  a.result_type = type;
  a.failure_reason_code = reason;
  a.sending_mta_ip = sending_ip;
  a.receiving_mx_hostname = mx_host;
  a.receiving_ip = receiving_ip;
  a.additional_information = additional;
  a.sessions = sessions;
  return a;
}

// The whole expected document around `policies` (the JSON array's contents).
std::string doc(const std::string& domain, const std::string& policies, const std::string& day = kDay) {
  return R"({"organization-name":"Example Sender","date-range":{"start-datetime":")" + day +
         R"(T00:00:00Z","end-datetime":")" + day + R"(T23:59:59Z"},"contact-info":"tlsrpt@mx.example.net",)" +
         R"("report-id":")" + day + "." + domain + R"(@mx.example.net","policies":[)" + policies + "]}";
}

std::string summary(std::int64_t successes, std::int64_t failures) {
  return R"("summary":{"total-successful-session-count":)" + std::to_string(successes) +
         R"(,"total-failure-session-count":)" + std::to_string(failures) + "}";
}

// Two domains, the three policy types, duplicate failure rows, rows of
// other days; what the store could return for 2026-12-04..06.
const TlsrptAggregate kSts = policy_row("example.com", "sts", kStsText, kStsMx);
const TlsrptAggregate kStsUnfetched = policy_row("example.com", "sts", "", "");
const TlsrptAggregate kTlsa = policy_row("dane.example", "tlsa", kTlsa1 + "\n" + kTlsa2, "mx.dane.example");
const TlsrptAggregate kNone = policy_row("dane.example", "no-policy-found", "", "");

std::vector<TlsrptAggregate> fixture() {
  return {
      ok(policy_row("example.com", "sts", kStsText, kStsMx, "2026-12-04"), 1000),
      ok(kSts, 120),
      failed(kSts, ResultType::CertificateExpired, "certificate-expired", "192.0.2.1", "mx1.example.com",
             "198.51.100.10", 2),
      failed(kTlsa, ResultType::TlsaInvalid, "tlsa-mismatch", "2001:db8::1", "mx.dane.example",
             "2001:db8::25", 4),
      failed(kSts, ResultType::StartTlsNotSupported, "starttls-not-offered", "192.0.2.1",
             "mx2.backup.example.com", "198.51.100.20", 1, "https://tlsrpt.mx.example.net/info?id=42"),
      failed(kStsUnfetched, ResultType::StsPolicyFetchError, "http-404", "", "", "", 3),
      ok(kTlsa, 40),
      failed(kSts, ResultType::CertificateExpired, "certificate-expired", "192.0.2.1", "mx1.example.com",
             "198.51.100.10", 5),
      ok(kNone, 9),
      failed(policy_row("dane.example", "tlsa", kTlsa1, "mx.dane.example", "2026-12-06"),
             ResultType::TlsaInvalid, "tlsa-mismatch", "2001:db8::1", "mx.dane.example", "2001:db8::25", 11),
  };
}

const std::string kDaneJson = doc(
    "dane.example",
    R"({"policy":{"policy-type":"no-policy-found","policy-domain":"dane.example"},)" + summary(9, 0) + "}," +
        R"({"policy":{"policy-type":"tlsa","policy-string":[")" + kTlsa1 + R"(",")" + kTlsa2 +
        R"("],"policy-domain":"dane.example","mx-host":["mx.dane.example"]},)" + summary(40, 4) +
        R"(,"failure-details":[{"result-type":"tlsa-invalid","sending-mta-ip":"2001:db8::1",)" +
        R"("receiving-mx-hostname":"mx.dane.example","receiving-ip":"2001:db8::25","failed-session-count":4,)" +
        R"("failure-reason-code":"tlsa-mismatch"}]})");

const std::string kExampleJson = doc(
    "example.com",
    R"({"policy":{"policy-type":"sts","policy-domain":"example.com"},)" + summary(0, 3) +
        R"(,"failure-details":[{"result-type":"sts-policy-fetch-error","failed-session-count":3,)" +
        R"("failure-reason-code":"http-404"}]},)" + R"({"policy":{"policy-type":"sts","policy-string":)" +
        kStsLines +
        R"(,"policy-domain":"example.com","mx-host":["mx1.example.com","*.backup.example.com"]},)" +
        summary(120, 8) +
        R"(,"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",)" +
        R"("receiving-mx-hostname":"mx1.example.com","receiving-ip":"198.51.100.10","failed-session-count":7,)" +
        R"("failure-reason-code":"certificate-expired"},)" +
        R"({"result-type":"starttls-not-supported","sending-mta-ip":"192.0.2.1",)" +
        R"("receiving-mx-hostname":"mx2.backup.example.com","receiving-ip":"198.51.100.20",)" +
        R"("failed-session-count":1,"additional-information":"https://tlsrpt.mx.example.net/info?id=42",)" +
        R"("failure-reason-code":"starttls-not-offered"}]})");

TEST(PolicyTlsrptReport, FixtureGivesOneExactReportPerDomain) {
  const auto rows = fixture();
  const auto reports = build_daily_reports(rows, kDay, kSubmitter);
  ASSERT_EQ(reports.size(), 2u);

  EXPECT_EQ(reports[0].policy_domain, "dane.example");
  EXPECT_EQ(reports[0].day, kDay);
  EXPECT_EQ(reports[0].report_id, "2026-12-05.dane.example@mx.example.net");
  EXPECT_EQ(reports[0].file_name, "mx.example.net!dane.example" + kRange + ".json.gz");
  EXPECT_EQ(reports[0].json, kDaneJson);

  EXPECT_EQ(reports[1].policy_domain, "example.com");
  EXPECT_EQ(reports[1].report_id, "2026-12-05.example.com@mx.example.net");
  EXPECT_EQ(reports[1].file_name, "mx.example.net!example.com" + kRange + ".json.gz");
  EXPECT_EQ(reports[1].json, kExampleJson);
}

TEST(PolicyTlsrptReport, RowOrderDoesNotChangeTheBytes) {
  auto rows = fixture();
  const auto expected = build_daily_reports(rows, kDay, kSubmitter);
  for (std::size_t shift = 1; shift < rows.size(); ++shift) {
    auto moved = rows;
    std::rotate(moved.begin(), moved.begin() + static_cast<std::ptrdiff_t>(shift), moved.end());
    EXPECT_EQ(build_daily_reports(moved, kDay, kSubmitter), expected) << "rotated by " << shift;
    std::reverse(moved.begin(), moved.end());
    EXPECT_EQ(build_daily_reports(moved, kDay, kSubmitter), expected)
        << "rotated by " << shift << ", reversed";
  }
}

TEST(PolicyTlsrptReport, DocumentsAreCompactValidJson) {
  const auto rows = fixture();
  for (const auto& report : build_daily_reports(rows, kDay, kSubmitter)) {
    SCOPED_TRACE(report.policy_domain);
    ASSERT_TRUE(nlohmann::ordered_json::accept(report.json));
    EXPECT_EQ(nlohmann::ordered_json::parse(report.json).dump(), report.json);
    const auto parsed = nlohmann::json::parse(report.json);
    EXPECT_TRUE(parsed.at("policies").is_array());
    for (const auto& policy : parsed.at("policies")) {
      EXPECT_TRUE(policy.at("summary").at("total-successful-session-count").is_number_integer());
      EXPECT_TRUE(policy.at("summary").at("total-failure-session-count").is_number_integer());
    }
  }
}

struct EdgeCase {
  std::string name;
  std::vector<TlsrptAggregate> rows;
  std::string day;
  std::vector<std::pair<std::string, std::string>> expected;  // domain, json
};

std::vector<EdgeCase> edge_cases() {
  const TlsrptAggregate a_sts =
      policy_row("a.example", "sts", "version: STSv1\nmode: testing\n", "mx.a.example");
  const std::string a_policy =
      R"({"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing"],)"
      R"("policy-domain":"a.example","mx-host":["mx.a.example"]},)";
  const std::string expired =
      R"({"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mx.a.example",)"
      R"("receiving-ip":"198.51.100.1","failed-session-count":)";
  TlsrptAggregate leap =
      ok(policy_row("a.example", "sts", "version: STSv1\nmode: testing\n", "mx.a.example", "2024-02-29"), 1);
  TlsrptAggregate no_type = failed(a_sts, std::nullopt, "tls-alert-40", "", "mx.a.example", "", 2);
  return {
      {"empty input", {}, kDay, {}},
      {"rows of other days only",
       {ok(policy_row("a.example", "sts", "version: STSv1\n", "", "2026-12-04"), 5),
        failed(policy_row("a.example", "sts", "", "", "2026-12-06"), ResultType::StsPolicyInvalid, "syntax",
               "", "", "", 1)},
       kDay,
       {}},
      {"invalid day: February 30",
       {ok(policy_row("a.example", "sts", "version: STSv1\n", "", "2026-02-30"), 1)},
       "2026-02-30",
       {}},
      {"invalid day: not zero-padded",
       {ok(policy_row("a.example", "sts", "", "", "2026-12-5"), 1)},
       "2026-12-5",
       {}},
      {"invalid day: a date-time",
       {ok(policy_row("a.example", "sts", "", "", "2026-12-05T00:00:00Z"), 1)},
       "2026-12-05T00:00:00Z",
       {}},
      {"leap day",
       {leap},
       "2024-02-29",
       {{"a.example", doc("a.example", a_policy + summary(1, 0) + "}", "2024-02-29")}}},
      {"a domain with only failures, duplicates merged",
       {failed(a_sts, ResultType::CertificateExpired, "certificate-expired", "192.0.2.1", "mx.a.example",
               "198.51.100.1", 3),
        failed(a_sts, ResultType::CertificateExpired, "certificate-expired", "192.0.2.1", "mx.a.example",
               "198.51.100.1", 4)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(0, 7) + R"(,"failure-details":[)" + expired + "7" +
                                           R"(,"failure-reason-code":"certificate-expired"}]})")}}},
      {"failures differing in one field stay apart",
       {failed(a_sts, ResultType::CertificateExpired, "certificate-expired", "192.0.2.1", "mx.a.example",
               "198.51.100.1", 1),
        failed(a_sts, ResultType::CertificateExpired, "cert-expired-leaf", "192.0.2.1", "mx.a.example",
               "198.51.100.1", 2)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(0, 3) + R"(,"failure-details":[)" + expired + "2" +
                                           R"(,"failure-reason-code":"cert-expired-leaf"},)" + expired + "1" +
                                           R"(,"failure-reason-code":"certificate-expired"}]})")}}},
      {"only successes: no failure-details",
       {ok(a_sts, 3), ok(a_sts, 4)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(7, 0) + "}")}}},
      {"a failure without a result type is a validation-failure",
       {no_type},
       kDay,
       {{"a.example",
         doc("a.example", a_policy + summary(0, 2) +
                              R"(,"failure-details":[{"result-type":"validation-failure",)"
                              R"("receiving-mx-hostname":"mx.a.example","failed-session-count":2,)"
                              R"("failure-reason-code":"tls-alert-40"}]})")}}},
      {"no-policy-found carries no policy-string or mx-host",
       {ok(policy_row("n.example", "no-policy-found", "version: STSv1\n", "mx.n.example"), 6)},
       kDay,
       {{"n.example",
         doc("n.example", R"({"policy":{"policy-type":"no-policy-found","policy-domain":"n.example"},)" +
                              summary(6, 0) + "}")}}},
      {"unusable rows are skipped",
       {ok(a_sts, 1), ok(a_sts, 0), ok(a_sts, -3), ok(policy_row("a.example", "dane", "", ""), 5),
        ok(policy_row("a.example", "STS", "", ""), 5), ok(policy_row("", "sts", "", ""), 5)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(1, 0) + "}")}}},
      {"a policy change mid-day gives two policies",
       {ok(a_sts, 1),
        ok(policy_row("a.example", "sts", "version: STSv1\nmode: enforce\n", "mx.a.example"), 2)},
       kDay,
       {{"a.example",
         doc("a.example",
             R"({"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce"],)"
             R"("policy-domain":"a.example","mx-host":["mx.a.example"]},)" +
                 summary(2, 0) + "}," + a_policy + summary(1, 0) + "}")}}},
      {"other mx patterns give another policy",
       {ok(a_sts, 1),
        ok(policy_row("a.example", "sts", "version: STSv1\nmode: testing\n", "mx2.a.example"), 2)},
       kDay,
       {{"a.example",
         doc("a.example",
             a_policy + summary(1, 0) + "}," +
                 R"({"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing"],)"
                 R"("policy-domain":"a.example","mx-host":["mx2.a.example"]},)" +
                 summary(2, 0) + "}")}}},
      {"domains sorted, counts kept apart",
       {ok(policy_row("b.example", "sts", "", "mx.b.example"), 2), ok(a_sts, 1)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(1, 0) + "}")},
        {"b.example",
         doc("b.example",
             R"({"policy":{"policy-type":"sts","policy-domain":"b.example","mx-host":["mx.b.example"]},)" +
                 summary(2, 0) + "}")}}},
      {"policy text: CRLF, blank lines, trailing WSP; mx: extra spaces",
       {ok(policy_row("a.example", "sts",
                      "version: STSv1\n\r\nmode: testing  \r\n\tmx: a.example\r\nmax_age: 1",
                      " mx.a.example  *.a.example "),
           1)},
       kDay,
       {{"a.example",
         doc("a.example",
             R"({"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","\tmx: a.example",)"
             R"("max_age: 1"],"policy-domain":"a.example","mx-host":["mx.a.example","*.a.example"]},)" +
                 summary(1, 0) + "}")}}},
      {"invalid UTF-8 replaced, quotes escaped",
       {failed(policy_row("a.example", "sts", "mode: \xff", ""), ResultType::ValidationFailure, "x", "", "",
               "", 1, "https://i.example/?q=\"a\\b\"")},
       kDay,
       {{"a.example",
         doc("a.example",
             "{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"mode: \xEF\xBF\xBD\"],"
             "\"policy-domain\":\"a.example\"}," +
                 summary(0, 1) +
                 R"(,"failure-details":[{"result-type":"validation-failure","failed-session-count":1,)"
                 R"("additional-information":"https://i.example/?q=\"a\\b\"","failure-reason-code":"x"}]})")}}},
      {"counts capped at 2^53 - 1 (I-JSON)",
       {ok(a_sts, std::int64_t{1} << 53), ok(a_sts, 5)},
       kDay,
       {{"a.example", doc("a.example", a_policy + summary(9007199254740991, 0) + "}")}}},
  };
}

TEST(PolicyTlsrptReport, EdgeCaseTable) {
  for (const EdgeCase& c : edge_cases()) {
    SCOPED_TRACE(c.name);
    const auto reports = build_daily_reports(c.rows, c.day, kSubmitter);
    ASSERT_EQ(reports.size(), c.expected.size());
    for (std::size_t i = 0; i < reports.size(); ++i) {
      EXPECT_EQ(reports[i].policy_domain, c.expected[i].first);
      EXPECT_EQ(reports[i].day, c.day);
      EXPECT_EQ(reports[i].report_id, make_report_id(c.day, c.expected[i].first, kSubmitter));
      EXPECT_EQ(mtasts::testing::printable(reports[i].json),
                mtasts::testing::printable(c.expected[i].second));
    }
  }
}

TEST(PolicyTlsrptReport, FileNameTable) {
  struct Case {
    std::string day;
    std::string domain;
    std::string file_name;
  };
  const std::vector<Case> cases{
      {"2026-12-05", "example.com", "mx.example.net!example.com!1796428800!1796515199.json.gz"},
      {"2024-02-29", "example.com", "mx.example.net!example.com!1709164800!1709251199.json.gz"},
      {"1970-01-01", "xn--bcher-kva.example", "mx.example.net!xn--bcher-kva.example!0!86399.json.gz"},
      {"2038-01-19", "a.example", "mx.example.net!a.example!2147472000!2147558399.json.gz"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.day);
    const std::vector<TlsrptAggregate> rows{ok(policy_row(c.domain, "sts", "", "", c.day), 1)};
    const auto reports = build_daily_reports(rows, c.day, kSubmitter);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].file_name, c.file_name);
  }
}

TEST(PolicyTlsrptReport, ReportIdTable) {
  struct Case {
    std::string day;
    std::string domain;
    std::string submitter;
    std::string id;
  };
  const std::vector<Case> cases{
      {"2026-12-05", "example.com", "mx.example.net", "2026-12-05.example.com@mx.example.net"},
      {"2024-02-29", "xn--bcher-kva.example", "s.example", "2024-02-29.xn--bcher-kva.example@s.example"},
  };
  for (const Case& c : cases) {
    const ReportSubmitter s{"Org", "a@b.example", c.submitter};
    EXPECT_EQ(make_report_id(c.day, c.domain, s), c.id);
  }
}

TEST(PolicyTlsrptReport, ReportIdsAreUniquePerDayDomainAndSubmitter) {
  std::set<std::string> ids;
  std::size_t made = 0;
  for (const std::string day : {"2026-12-05", "2026-12-06"}) {
    for (const std::string domain : {"example.com", "mx.example.com", "example.com.example"}) {
      for (const std::string submitter : {"example.com", "mx.example.com", "com"}) {
        ids.insert(make_report_id(day, domain, ReportSubmitter{"Org", "a@b.example", submitter}));
        ++made;
      }
    }
  }
  EXPECT_EQ(ids.size(), made);
}

// Every report of this file, one folder per case, as plain JSON ("json" of
// §5.1, since the bytes are not compressed here).
TEST(PolicyTlsrptReport, WritesExampleReports) {
  namespace fs = std::filesystem;
  const char* out = std::getenv("TLSRPT_REPORT_OUT");
  const fs::path root =
      out != nullptr && *out != '\0' ? fs::path(out) : fs::path(::testing::TempDir()) / "tlsrpt-reports";
  std::vector<std::pair<std::string, std::vector<DailyReport>>> sets{
      {"fixture", build_daily_reports(fixture(), kDay, kSubmitter)}};
  int index = 0;
  for (const EdgeCase& c : edge_cases()) {
    sets.emplace_back("edge-" + std::to_string(index++), build_daily_reports(c.rows, c.day, kSubmitter));
  }
  std::size_t written = 0;
  for (const auto& [folder, reports] : sets) {
    fs::create_directories(root / folder);
    for (const DailyReport& r : reports) {
      const std::string name = r.file_name.substr(0, r.file_name.size() - std::string_view(".gz").size());
      const fs::path path = root / folder / name;
      std::ofstream(path, std::ios::binary | std::ios::trunc) << r.json;
      std::ifstream back(path, std::ios::binary);
      std::stringstream text;
      text << back.rdbuf();
      EXPECT_EQ(text.str(), r.json) << path;
      ++written;
    }
  }
  EXPECT_GE(written, 15u);
}

}  // namespace
}  // namespace mtasts::policy
