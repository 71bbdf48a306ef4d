// read_received_report / received_report_text / received_report_json:
// RFC 8460 §4.4 reports as a domain owner receives them. The samples in
// tests/data/tlsrpt/ are the RFC's Appendix B example and two made-up
// reports shaped like those large senders mail.
#include "policy/tlsrpt_report_reader.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "policy/gzip.h"
#include "printable.h"

namespace mtasts::policy {
namespace {

std::string show(const std::string& s) { return mtasts::testing::printable(s.substr(0, 120)); }

std::string sample(const std::string& name) {
  const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "tlsrpt" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::vector<std::string> kSamples = {"rfc8460-appendix-b.json",
                                           "mailbox-provider-several-policies.json",
                                           "cloud-provider-failure-details.json"};

ReceivedReport read_ok(const std::string& text) {
  auto result = read_received_report(text);
  if (const auto* error = std::get_if<ReportReadError>(&result)) {
    ADD_FAILURE() << "path \"" << error->path << "\": " << error->message << "\n in " << show(text);
    return {};
  }
  return std::get<ReceivedReport>(result);
}

// A minimal valid report with `policy` as its only policies entry.
std::string doc_with_policy(const std::string& policy) {
  return R"({"organization-name":"O","date-range":{"start-datetime":"2026-03-14T00:00:00Z",)"
         R"("end-datetime":"2026-03-14T23:59:59Z"},"contact-info":"c@example.net","report-id":"r",)"
         R"("policies":[)" +
         policy + "]}";
}

// A policies entry: policy-type sts for example.com, the given summary and extra members.
std::string policy_entry(const std::string& summary = R"("total-successful-session-count":1,)"
                                                      R"("total-failure-session-count":0)",
                         const std::string& extra = "") {
  return R"({"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{)" + summary + "}" +
         extra + "}";
}

std::string with_failure(const std::string& detail) {
  return doc_with_policy(policy_entry(R"("total-successful-session-count":1,"total-failure-session-count":2)",
                                      R"(,"failure-details":[)" + detail + "]"));
}

// The minimal report with one top-level member replaced (or removed, when `value` is empty).
std::string doc_with(const std::string& key, const std::string& value) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(doc_with_policy(policy_entry()));
  if (value.empty()) {
    doc.erase(key);
  } else {
    doc[key] = nlohmann::ordered_json::parse(value);
  }
  return doc.dump();
}

TEST(TlsrptReportReaderTest, ReadsTheRfcExample) {
  const ReceivedReport report = read_ok(sample("rfc8460-appendix-b.json"));
  EXPECT_EQ(report.organization_name, "Company-X");
  EXPECT_EQ(report.contact_info, "sts-reporting@company-x.example");
  EXPECT_EQ(report.report_id, "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
  EXPECT_EQ(report.start_datetime, "2016-04-01T00:00:00Z");
  EXPECT_EQ(report.end_datetime, "2016-04-01T23:59:59Z");
  ASSERT_EQ(report.policies.size(), 1u);
  const ReceivedPolicy& p = report.policies[0];
  EXPECT_EQ(p.policy_type, "sts");
  EXPECT_EQ(p.policy_domain, "company-y.example");
  EXPECT_EQ(p.policy_string, (std::vector<std::string>{"version: STSv1", "mode: testing",
                                                       "mx: *.mail.company-y.example", "max_age: 86400"}));
  EXPECT_EQ(p.mx_host, std::vector<std::string>{"*.mail.company-y.example"});  // a string before erratum 6241
  EXPECT_EQ(p.successful, 5326);
  EXPECT_EQ(p.failed, 303);
  ASSERT_EQ(p.failure_details.size(), 3u);
  EXPECT_EQ(p.failure_details[0], (ReceivedFailureDetail{"certificate-expired", "2001:db8:abcd:0012::1",
                                                         "mx1.mail.company-y.example", "", "", "", "", 100}));
  EXPECT_EQ(p.failure_details[1].additional_information,
            "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported");
  EXPECT_EQ(p.failure_details[1].failed_session_count, 200);
  EXPECT_EQ(p.failure_details[2],
            (ReceivedFailureDetail{"validation-failure", "198.51.100.62", "mx-backup.mail.company-y.example",
                                   "", "203.0.113.58", "", "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED", 3}));
}

TEST(TlsrptReportReaderTest, ReadsTheOtherSamples) {
  const ReceivedReport several = read_ok(sample("mailbox-provider-several-policies.json"));
  ASSERT_EQ(several.policies.size(), 3u);
  EXPECT_EQ(several.policies[0].mx_host,
            (std::vector<std::string>{"mx1.example.com", "*.backup.example.com"}));
  EXPECT_EQ(several.policies[1].policy_type, "tlsa");
  EXPECT_EQ(several.policies[1].failure_details.at(0).result_type, "tlsa-invalid");
  EXPECT_EQ(several.policies[2].policy_type, "no-policy-found");
  EXPECT_TRUE(several.policies[2].mx_host.empty());

  const ReceivedReport cloud = read_ok(sample("cloud-provider-failure-details.json"));
  EXPECT_EQ(cloud.start_datetime, "2026-03-14T00:00:00.000Z");
  ASSERT_EQ(cloud.policies.size(), 1u);
  ASSERT_EQ(cloud.policies[0].failure_details.size(), 3u);
  EXPECT_EQ(cloud.policies[0].failure_details[0].receiving_mx_helo, "smtp.hosting.example");
  EXPECT_EQ(cloud.policies[0].failure_details[0].failure_reason_code, "HostnameMismatch");
  EXPECT_EQ(cloud.policies[0].failure_details[2].additional_information, "");  // null: absent
}

TEST(TlsrptReportReaderTest, SummarisesTheRfcExampleAsText) {
  const std::string expected =
      "Organization: Company-X\n"
      "Report-ID:    5065427c-23d3-47ca-b6e0-946ea0e8c4be\n"
      "Date range:   2016-04-01T00:00:00Z .. 2016-04-01T23:59:59Z\n"
      "Contact:      sts-reporting@company-x.example\n"
      "Policies:     1\n"
      "Sessions:     5326 successful, 303 failed (5.38%)\n"
      "\n"
      "Policy 1: company-y.example (sts)\n"
      "  MX hosts:     *.mail.company-y.example\n"
      "  Successful:   5326\n"
      "  Failed:       303\n"
      "  Failure rate: 5.38%\n"
      "  Failure details:\n"
      "    RESULT-TYPE             RECEIVING-MX-HOSTNAME             RECEIVING-IP  SENDING-MTA-IP         "
      "COUNT  "
      "FAILURE-REASON-CODE\n"
      "    certificate-expired     mx1.mail.company-y.example        -             2001:db8:abcd:0012::1    "
      "100  -\n"
      "    starttls-not-supported  mx2.mail.company-y.example        203.0.113.56  2001:db8:abcd:0013::1    "
      "200  -\n"
      "    validation-failure      mx-backup.mail.company-y.example  203.0.113.58  198.51.100.62             "
      " 3  "
      "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED\n";
  EXPECT_EQ(received_report_text(read_ok(sample("rfc8460-appendix-b.json"))), expected);
}

TEST(TlsrptReportReaderTest, SummarisesTheRfcExampleAsJson) {
  const std::string expected =
      R"({"organization-name":"Company-X","report-id":"5065427c-23d3-47ca-b6e0-946ea0e8c4be",)"
      R"("date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},)"
      R"("policies":[{"policy-domain":"company-y.example","policy-type":"sts",)"
      R"("mx-host":["*.mail.company-y.example"],"successful":5326,"failed":303,"failure-details":[)"
      R"({"result-type":"certificate-expired","sending-mta-ip":"2001:db8:abcd:0012::1",)"
      R"("receiving-mx-hostname":"mx1.mail.company-y.example","receiving-mx-helo":"","receiving-ip":"",)"
      R"("failed-session-count":100,"additional-information":"","failure-reason-code":""},)"
      R"({"result-type":"starttls-not-supported","sending-mta-ip":"2001:db8:abcd:0013::1",)"
      R"("receiving-mx-hostname":"mx2.mail.company-y.example","receiving-mx-helo":"",)"
      R"("receiving-ip":"203.0.113.56","failed-session-count":200,"additional-information":)"
      R"("https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported",)"
      R"("failure-reason-code":""},)"
      R"({"result-type":"validation-failure","sending-mta-ip":"198.51.100.62",)"
      R"("receiving-mx-hostname":"mx-backup.mail.company-y.example","receiving-mx-helo":"",)"
      R"("receiving-ip":"203.0.113.58","failed-session-count":3,"additional-information":"",)"
      R"("failure-reason-code":"X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}]}],)"
      R"("total-successful":5326,"total-failed":303})";
  EXPECT_EQ(received_report_json(read_ok(sample("rfc8460-appendix-b.json"))), expected);
}

TEST(TlsrptReportReaderTest, EverySummaryIsAlignedAndTrimmed) {
  for (const auto& name : kSamples) {
    const ReceivedReport report = read_ok(sample(name));
    const std::string text = received_report_text(report);
    ASSERT_FALSE(text.empty()) << name;
    EXPECT_EQ(text.back(), '\n') << name;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      EXPECT_TRUE(line.empty() || line.back() != ' ') << name << ": \"" << line << "\"";
    }
    const auto json = nlohmann::json::parse(received_report_json(report));
    std::int64_t successful = 0, failed = 0;
    for (const auto& p : report.policies) successful += p.successful, failed += p.failed;
    EXPECT_EQ(json["total-successful"], successful) << name;
    EXPECT_EQ(json["total-failed"], failed) << name;
    EXPECT_EQ(json["policies"].size(), report.policies.size()) << name;
  }
}

TEST(TlsrptReportReaderTest, ReadsAGzippedSample) {
  const std::string text = sample("cloud-provider-failure-details.json");
  const auto plain = gzip_decompress(gzip_compress(text), kMaxReceivedReportBytes);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(read_ok(*plain), read_ok(text));
}

struct GoodCase {
  std::string name;
  std::string doc;
};

TEST(TlsrptReportReaderTest, AcceptsWhatTheReadingsAllow) {
  const std::string ok = R"("total-successful-session-count":1,"total-failure-session-count":0)";
  const std::vector<GoodCase> cases = {
      {"empty policies", doc_with("policies", "[]")},
      {"unknown keys everywhere", doc_with_policy(policy_entry(ok + R"(,"x":{"y":[1]})", R"(,"z":null)"))},
      {"mx-host array",
       doc_with_policy(R"({"policy":{"policy-type":"tlsa","policy-domain":"d","mx-host":["a","b"]},)"
                       R"("summary":{)" +
                       ok + "}}")},
      {"null optionals",
       doc_with_policy(
           R"({"policy":{"policy-type":"sts","policy-domain":"d","mx-host":null,"policy-string":null},)"
           R"("summary":{)" +
           ok + R"(},"failure-details":null})")},
      {"unknown result-type",
       with_failure(R"({"result-type":"quantum-tunnel-collapse","failed-session-count":2})")},
      {"minus zero count", doc_with_policy(policy_entry(
                               R"("total-successful-session-count":-0,"total-failure-session-count":0)"))},
      {"large count", doc_with_policy(policy_entry(R"("total-successful-session-count":9223372036854775807,)"
                                                   R"("total-failure-session-count":0)"))},
      {"lowercase t and z", doc_with("date-range", R"({"start-datetime":"2026-03-14t00:00:00z",)"
                                                   R"("end-datetime":"2026-03-14t23:59:59z"})")},
      {"offsets and fraction", doc_with("date-range", R"({"start-datetime":"2026-03-14T02:00:00.5+02:00",)"
                                                      R"("end-datetime":"2026-03-13T19:00:00-05:00"})")},
      {"leap second", doc_with("date-range", R"({"start-datetime":"2016-12-31T00:00:00Z",)"
                                             R"("end-datetime":"2016-12-31T23:59:60Z"})")},
      {"leap day", doc_with("date-range", R"({"start-datetime":"2024-02-29T00:00:00Z",)"
                                          R"("end-datetime":"2024-02-29T00:00:00Z"})")},
      {"empty organization", doc_with("organization-name", R"("")")},
      {"utf-8 text", doc_with("organization-name", R"("Soci\u00e9t\u00e9 \u00c9xemple")")},
      {"byte order mark", "\xef\xbb\xbf" + doc_with_policy(policy_entry())},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    read_ok(c.doc);
  }
}

struct BadCase {
  std::string name;
  std::string doc;
  std::string path;
  std::string message;  // a substring of the message
};

std::vector<BadCase> bad_cases() {
  const std::string no_failures = R"("total-successful-session-count":1,"total-failure-session-count":0)";
  const auto summary_with = [](const std::string& ok_count, const std::string& failures) {
    return doc_with_policy(policy_entry(R"("total-successful-session-count":)" + ok_count +
                                        R"(,"total-failure-session-count":)" + failures));
  };
  const auto policy_with = [&](const std::string& policy) {
    return doc_with_policy(R"({"policy":)" + policy + R"(,"summary":{)" + no_failures + "}}");
  };
  const std::string sf = "policies[0].summary.total-successful-session-count";
  const std::string ff = "policies[0].summary.total-failure-session-count";
  const std::string fd = "policies[0].failure-details[0]";
  return {
      // The document as a whole.
      {"empty input", "", "", "invalid JSON"},
      {"not JSON", "hello", "", "invalid JSON: parse error at line 1, column 1"},
      {"truncated", R"({"organization-name":)", "", "invalid JSON"},
      {"trailing comma", R"({"a":1,})", "", "invalid JSON"},
      {"invalid UTF-8", "{\"organization-name\":\"\xff\"}", "", "invalid JSON"},
      {"array at the top", "[]", "", "expected an object, got an array"},
      {"string at the top", R"("report")", "", "expected an object, got a string"},
      {"too deep", std::string(65, '[') + std::string(65, ']'), "", "nested deeper than 64"},
      {"far too deep", std::string(1000000, '['), "", "nested deeper than 64"},
      // Report metadata.
      {"no organization", doc_with("organization-name", ""), "organization-name", "missing"},
      {"organization null", doc_with("organization-name", "null"), "organization-name",
       "expected a string, got null"},
      {"organization number", doc_with("organization-name", "7"), "organization-name", "got 7"},
      {"no date-range", doc_with("date-range", ""), "date-range", "missing"},
      {"date-range string", doc_with("date-range", R"("2016-04-01")"), "date-range",
       "expected an object, got a string"},
      {"no start", doc_with("date-range", R"({"end-datetime":"2016-04-01T23:59:59Z"})"),
       "date-range.start-datetime", "missing"},
      {"no end", doc_with("date-range", R"({"start-datetime":"2016-04-01T00:00:00Z"})"),
       "date-range.end-datetime", "missing"},
      {"date only", doc_with("date-range", R"({"start-datetime":"2016-04-01","end-datetime":"2016-04-02"})"),
       "date-range.start-datetime", "not an RFC 3339 date-time: \"2016-04-01\""},
      {"space for T",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-01 00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"})"),
       "date-range.start-datetime", "not an RFC 3339"},
      {"no offset",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59"})"),
       "date-range.end-datetime", "not an RFC 3339"},
      {"no such day",
       doc_with("date-range",
                R"({"start-datetime":"2023-02-29T00:00:00Z","end-datetime":"2023-03-01T00:00:00Z"})"),
       "date-range.start-datetime", "not an RFC 3339"},
      {"hour 24",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T24:00:00Z"})"),
       "date-range.end-datetime", "not an RFC 3339"},
      {"empty fraction",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-01T00:00:00.Z","end-datetime":"2016-04-01T01:00:00Z"})"),
       "date-range.start-datetime", "not an RFC 3339"},
      {"bad offset",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-01T00:00:00+2:00","end-datetime":"2016-04-01T23:59:59Z"})"),
       "date-range.start-datetime", "not an RFC 3339"},
      {"end before start",
       doc_with("date-range",
                R"({"start-datetime":"2016-04-02T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"})"),
       "date-range.end-datetime", "before start-datetime"},
      {"no contact-info", doc_with("contact-info", ""), "contact-info", "missing"},
      {"contact-info array", doc_with("contact-info", R"(["a@b"])"), "contact-info",
       "expected a string, got an array"},
      {"no report-id", doc_with("report-id", ""), "report-id", "missing"},
      {"empty report-id", doc_with("report-id", R"("")"), "report-id", "empty"},
      {"no policies", doc_with("policies", ""), "policies", "missing"},
      {"policies object", doc_with("policies", "{}"), "policies", "expected an array, got an object"},
      {"policies null", doc_with("policies", "null"), "policies", "expected an array, got null"},
      // Policies.
      {"policy entry a string", doc_with_policy(R"("sts")"), "policies[0]",
       "expected an object, got a string"},
      {"second entry bad", doc_with_policy(policy_entry() + ",7"), "policies[1]",
       "expected an object, got 7"},
      {"no policy", doc_with_policy(R"({"summary":{)" + no_failures + "}}"), "policies[0].policy", "missing"},
      {"no policy-type", policy_with(R"({"policy-domain":"d"})"), "policies[0].policy.policy-type",
       "missing"},
      {"unknown policy-type", policy_with(R"({"policy-type":"STS","policy-domain":"d"})"),
       "policies[0].policy.policy-type", "not sts, tlsa or no-policy-found: \"STS\""},
      {"policy-type quoted safely", policy_with(R"({"policy-type":"\u001b[31m","policy-domain":"d"})"),
       "policies[0].policy.policy-type", "\"?[31m\""},
      {"policy-string a string",
       policy_with(R"({"policy-type":"sts","policy-domain":"d","policy-string":"v"})"),
       "policies[0].policy.policy-string", "expected an array of strings, got a string"},
      {"policy-string item",
       policy_with(R"({"policy-type":"sts","policy-domain":"d","policy-string":["a",1]})"),
       "policies[0].policy.policy-string[1]", "expected a string, got 1"},
      {"no policy-domain", policy_with(R"({"policy-type":"sts"})"), "policies[0].policy.policy-domain",
       "missing"},
      {"empty policy-domain", policy_with(R"({"policy-type":"sts","policy-domain":""})"),
       "policies[0].policy.policy-domain", "empty"},
      {"mx-host number", policy_with(R"({"policy-type":"sts","policy-domain":"d","mx-host":5})"),
       "policies[0].policy.mx-host", "expected an array of strings or a string, got 5"},
      {"mx-host item", policy_with(R"({"policy-type":"sts","policy-domain":"d","mx-host":["a",["b"]]})"),
       "policies[0].policy.mx-host[1]", "expected a string, got an array"},
      // Summary.
      {"no summary", doc_with_policy(R"({"policy":{"policy-type":"sts","policy-domain":"d"}})"),
       "policies[0].summary", "missing"},
      {"summary array",
       doc_with_policy(R"({"policy":{"policy-type":"sts","policy-domain":"d"},"summary":[]})"),
       "policies[0].summary", "expected an object, got an array"},
      {"no successful count", doc_with_policy(policy_entry(R"("total-failure-session-count":0)")), sf,
       "missing"},
      {"no failure count", doc_with_policy(policy_entry(R"("total-successful-session-count":0)")), ff,
       "missing"},
      {"float count", summary_with("1.0", "0"), sf, "expected a non-negative integer, got 1.0"},
      {"exponent count", summary_with("1e3", "0"), sf, "expected a non-negative integer, got 1000.0"},
      {"string count", summary_with(R"("5")", "0"), sf, "expected a non-negative integer, got a string"},
      {"negative count", summary_with("1", "-3"), ff, "expected a non-negative integer, got -3"},
      {"boolean count", summary_with("true", "0"), sf, "got true"},
      {"null count", summary_with("1", "null"), ff, "got null"},
      {"count past int64", summary_with("9223372036854775808", "0"), sf, "got 9223372036854775808"},
      {"count past uint64", summary_with("18446744073709551616", "0"), sf, "got 1.8446744073709552e+19"},
      // Failure details.
      {"failure-details object", doc_with_policy(policy_entry(no_failures, R"(,"failure-details":{})")),
       "policies[0].failure-details", "expected an array, got an object"},
      {"failure detail a string", with_failure(R"("certificate-expired")"), fd,
       "expected an object, got a string"},
      {"no result-type", with_failure(R"({"failed-session-count":2})"), fd + ".result-type", "missing"},
      {"result-type number", with_failure(R"({"result-type":3,"failed-session-count":2})"),
       fd + ".result-type", "expected a string, got 3"},
      {"no failed-session-count", with_failure(R"({"result-type":"certificate-expired"})"),
       fd + ".failed-session-count", "missing"},
      {"negative failed-session-count",
       with_failure(R"({"result-type":"certificate-expired","failed-session-count":-2})"),
       fd + ".failed-session-count", "got -2"},
      {"receiving-ip number",
       with_failure(
           R"({"result-type":"certificate-expired","receiving-ip":3232235777,"failed-session-count":2})"),
       fd + ".receiving-ip", "expected a string, got 3232235777"},
      {"helo object",
       with_failure(
           R"({"result-type":"certificate-expired","receiving-mx-helo":{},"failed-session-count":2})"),
       fd + ".receiving-mx-helo", "expected a string, got an object"},
      {"second detail bad",
       with_failure(R"({"result-type":"certificate-expired","failed-session-count":1},{"result-type":"x"})"),
       "policies[0].failure-details[1].failed-session-count", "missing"},
  };
}

TEST(TlsrptReportReaderTest, RefusesBadDocumentsWithThePath) {
  for (const auto& c : bad_cases()) {
    const auto result = read_received_report(c.doc);
    const auto* error = std::get_if<ReportReadError>(&result);
    ASSERT_NE(error, nullptr) << c.name << ": accepted " << show(c.doc);
    EXPECT_EQ(error->path, c.path) << c.name << ": " << error->message;
    EXPECT_NE(error->message.find(c.message), std::string::npos) << c.name << ": " << error->message;
    for (const char ch : error->message) {
      EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << c.name << ": " << show(error->message);
    }
  }
}

TEST(TlsrptReportReaderTest, ReportsTheFirstErrorInSchemaOrder) {
  // Both organization-name and report-id are wrong: the first in the schema wins.
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(doc_with_policy(policy_entry()));
  doc["report-id"] = 1;
  doc["organization-name"] = 2;
  const auto result = read_received_report(doc.dump());
  ASSERT_TRUE(std::holds_alternative<ReportReadError>(result));
  EXPECT_EQ(std::get<ReportReadError>(result).path, "organization-name");
}

TEST(TlsrptReportReaderTest, NestingUpTo64LevelsIsParsed) {
  // 64 levels parse (the array is then the wrong type); 65 do not.
  const auto at64 = read_received_report(std::string(64, '[') + std::string(64, ']'));
  ASSERT_TRUE(std::holds_alternative<ReportReadError>(at64));
  EXPECT_EQ(std::get<ReportReadError>(at64).message, "expected an object, got an array");
  std::string deep_ok = doc_with_policy(
      policy_entry(R"("total-successful-session-count":1,"total-failure-session-count":0,"x":)" +
                   std::string(60, '[') + std::string(60, ']')));
  read_ok(deep_ok);
}

TEST(TlsrptReportReaderTest, RefusesMoreThan64MiB) {
  std::string huge = doc_with_policy(policy_entry());
  huge.append(kMaxReceivedReportBytes - huge.size(), ' ');
  read_ok(huge);
  huge += ' ';
  const auto result = read_received_report(huge);
  ASSERT_TRUE(std::holds_alternative<ReportReadError>(result));
  EXPECT_EQ(std::get<ReportReadError>(result), (ReportReadError{"", "larger than 67108864 bytes"}));
}

TEST(TlsrptReportReaderTest, EveryTruncationIsAnErrorNotACrash) {
  for (const auto& name : kSamples) {
    const std::string text = sample(name);
    std::size_t end = text.size();
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' ')) --end;
    for (std::size_t n = 0; n < end; ++n) {
      std::variant<ReceivedReport, ReportReadError> result;
      EXPECT_NO_THROW(result = read_received_report(text.substr(0, n))) << name << " at " << n;
      EXPECT_TRUE(std::holds_alternative<ReportReadError>(result)) << name << " at " << n;
    }
  }
}

TEST(TlsrptReportReaderTest, EveryByteFlipIsHandled) {
  const std::string text = sample("rfc8460-appendix-b.json");
  for (std::size_t i = 0; i < text.size(); ++i) {
    for (const char replacement : {'\0', '"', '{', ']', '-', '9', '\xc3'}) {
      std::string mutated = text;
      mutated[i] = replacement;
      std::variant<ReceivedReport, ReportReadError> result;
      EXPECT_NO_THROW(result = read_received_report(mutated)) << i;
      if (const auto* report = std::get_if<ReceivedReport>(&result)) {
        EXPECT_NO_THROW(received_report_text(*report));
      }
    }
  }
}

ReceivedReport report_with_counts(std::int64_t successful, std::int64_t failed) {
  ReceivedReport report;
  ReceivedPolicy policy;
  policy.policy_type = "sts";
  policy.policy_domain = "example.com";
  policy.successful = successful;
  policy.failed = failed;
  report.policies = {policy, policy};
  return report;
}

TEST(TlsrptReportReaderTest, FailureRatesAndTotals) {
  struct RateCase {
    std::int64_t successful, failed;
    std::string rate;
  };
  const std::vector<RateCase> cases = {
      {0, 0, "-"},      {1, 0, "0.00%"},      {0, 1, "100.00%"},    {1, 1, "50.00%"},      {2, 1, "33.33%"},
      {1, 2, "66.67%"}, {5326, 303, "5.38%"}, {99999, 1, "<0.01%"}, {1, 99999, ">99.99%"}, {199, 1, "0.50%"},
  };
  for (const auto& c : cases) {
    const std::string text = received_report_text(report_with_counts(c.successful, c.failed));
    EXPECT_NE(text.find("  Failure rate: " + c.rate + "\n"), std::string::npos)
        << c.successful << "/" << c.failed << "\n"
        << text;
  }
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const auto json = nlohmann::json::parse(received_report_json(report_with_counts(max, 7)));
  EXPECT_EQ(json["total-successful"].get<std::int64_t>(), max);  // saturated, not wrapped
  EXPECT_EQ(json["total-failed"].get<std::int64_t>(), 14);
}

TEST(TlsrptReportReaderTest, TextFromTheReportCannotReachTheTerminal) {
  ReceivedReport report = report_with_counts(1, 1);
  report.organization_name = "Evil\x1b]0;owned\x07 Corp\n";
  report.policies[0].failure_details = {{"certificate-expired\r", "", "mx\x1b[2J", "", "", "", "code  ", 1}};
  const std::string text = received_report_text(report);
  for (const char c : text) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << show(text);
  EXPECT_NE(text.find("Organization: Evil?]0;owned? Corp?\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    certificate-expired?  mx?[2J"), std::string::npos) << text;
  EXPECT_NE(text.find("  code\n"), std::string::npos) << text;  // trailing spaces trimmed
}

TEST(TlsrptReportReaderTest, JsonOfAnEmptyReportHasEveryKey) {
  EXPECT_EQ(received_report_json(ReceivedReport{}),
            R"({"organization-name":"","report-id":"","date-range":{"start-datetime":"","end-datetime":""},)"
            R"("policies":[],"total-successful":0,"total-failed":0})");
  const std::string text = received_report_text(ReceivedReport{});
  EXPECT_EQ(text,
            "Organization: -\nReport-ID:    -\nDate range:   - .. -\nContact:      -\nPolicies:     0\n"
            "Sessions:     0 successful, 0 failed (-)\n");
}

}  // namespace
}  // namespace mtasts::policy
