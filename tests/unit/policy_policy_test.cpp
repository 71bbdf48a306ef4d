// Tests for the MTA-STS policy body parser (RFC 8461 §3.2, size limit §3.3).
#include "policy/policy.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mtasts::policy {

// Readable failure output for gtest.
void PrintTo(const Policy& p, std::ostream* os) {
  *os << "{mode=" << to_string(p.mode) << " max_age=" << p.max_age << " mx=[";
  for (const auto& m : p.mx) *os << m << ' ';
  *os << "]}";
}

namespace {

using namespace std::string_literals;

using Issues = std::vector<std::pair<std::size_t, std::string>>;

struct Case {
  std::string name;
  std::string body;
  std::optional<Policy> policy;  // expected when valid
  Issues issues;                 // expected {line, rule} when invalid, in order
};

// Version, mode and max_age of a valid enforce policy; tests add the mx lines.
const std::string kHead = "version: STSv1\nmode: enforce\nmax_age: 86400\n";
const std::string kValid = kHead + "mx: mail.example.com\n";

Policy enforce(std::vector<std::string> mx, std::uint32_t max_age = 86400) {
  return Policy{Mode::Enforce, max_age, std::move(mx)};
}

Case valid(std::string name, std::string body, Policy policy) {
  return Case{std::move(name), std::move(body), std::move(policy), {}};
}

Case invalid(std::string name, std::string body, Issues issues) {
  return Case{std::move(name), std::move(body), std::nullopt, std::move(issues)};
}

// A valid body padded with an extension field to exactly `size` bytes.
std::string padded_to(std::size_t size) {
  std::string body = kValid + "pad: ";
  body.append(size - body.size(), 'x');
  return body;
}

const std::string kRfcExample =
    "version: STSv1\n"
    "mode: enforce\n"
    "mx: mail.example.com\n"
    "mx: *.example.net\n"
    "mx: backupmx.example.com\n"
    "max_age: 604800\n";
const Policy kRfcPolicy = enforce({"mail.example.com", "*.example.net", "backupmx.example.com"}, 604800);

std::vector<Case> valid_cases() {
  return {
      valid("rfc 8461 3.2 example", kRfcExample, kRfcPolicy),
      valid("rfc example with CRLF",
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
            "mx: backupmx.example.com\r\nmax_age: 604800\r\n",
            kRfcPolicy),
      valid("rfc example without final terminator", kRfcExample.substr(0, kRfcExample.size() - 1),
            kRfcPolicy),
      valid("mixed LF and CRLF",
            "version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmx: *.example.net\n"
            "mx: backupmx.example.com\r\nmax_age: 604800",
            kRfcPolicy),
      valid("any field order",
            "max_age: 604800\nmx: mail.example.com\nmode: enforce\nmx: *.example.net\n"
            "version: STSv1\nmx: backupmx.example.com\n",
            kRfcPolicy),
      valid("no space after colon", "version:STSv1\nmode:enforce\nmax_age:86400\nmx:mail.example.com",
            enforce({"mail.example.com"})),
      valid("tabs and spaces around values",
            "version:\t STSv1 \nmode: \tenforce\t\nmax_age:  86400 \t\nmx:\tmail.example.com  \n",
            enforce({"mail.example.com"})),
      valid("mode testing", "version: STSv1\nmode: testing\nmax_age: 60\nmx: mx.example.org\n",
            Policy{Mode::Testing, 60, {"mx.example.org"}}),
      valid("mode none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n",
            Policy{Mode::None, 86400, {}}),
      valid("mode none keeps its mx", "version: STSv1\nmode: none\nmax_age: 1\nmx: a.example\n",
            Policy{Mode::None, 1, {"a.example"}}),
      valid("max_age 0 is accepted", "version: STSv1\nmode: enforce\nmax_age: 0\nmx: a.example\n",
            enforce({"a.example"}, 0)),
      valid("max_age 10 digits with leading zeros",
            "version: STSv1\nmode: enforce\nmax_age: 0000086400\nmx: a.example\n", enforce({"a.example"})),
      valid("max_age at the cap", "version: STSv1\nmode: enforce\nmax_age: 31557600\nmx: a.example\n",
            enforce({"a.example"}, kMaxAgeCap)),
      valid("max_age one above the cap is capped",
            "version: STSv1\nmode: enforce\nmax_age: 31557601\nmx: a.example\n",
            enforce({"a.example"}, kMaxAgeCap)),
      valid("max_age 9999999999 is capped",
            "version: STSv1\nmode: enforce\nmax_age: 9999999999\nmx: a.example\n",
            enforce({"a.example"}, kMaxAgeCap)),
      valid("first mode wins over a later one",
            "version: STSv1\nmode: enforce\nmode: testing\nmode: bogus\nmax_age: 5\nmx: a.example\n",
            enforce({"a.example"}, 5)),
      valid("later duplicate version and max_age ignored",
            "version: STSv1\nversion: STSv2\nmode: enforce\nmax_age: 5\nmax_age: -1\nmx: a.example\n",
            enforce({"a.example"}, 5)),
      valid("mx lower-cased and de-duplicated in first-seen order",
            kHead + "mx: MAIL.Example.com\nmx: *.Example.NET\nmx: mail.example.COM\nmx: b.example\n"
                    "mx: *.EXAMPLE.net\nmx: mail.example.com\n",
            enforce({"mail.example.com", "*.example.net", "b.example"})),
      valid("unknown fields ignored, including case variants of known keys",
            kValid + "x-ext: hello world\nMode: testing\nMX: bad..pattern.\nVersion: nope\na.b_c-d9: v\n",
            enforce({"mail.example.com"})),
      valid("extension value may hold ':', '=', ';'", kValid + "foo: a=b;c:d\n",
            enforce({"mail.example.com"})),
      valid("utf-8 allowed in extension values",
            kValid + "comment: gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93 \xf0\x9f\x93\xa7\n",
            enforce({"mail.example.com"})),
      valid("extension key of exactly 32 characters", kValid + std::string(32, 'k') + ": v\n",
            enforce({"mail.example.com"})),
      valid("one trailing empty line", kValid + "\n", enforce({"mail.example.com"})),
      valid("two trailing CRLF empty lines", kValid + "\r\n\r\n", enforce({"mail.example.com"})),
      valid("trailing whitespace-only line", kValid + " \t\n", enforce({"mail.example.com"})),
      valid("mx wildcard, hyphen, digits, A-label and 63-char label",
            kHead + "mx: *.example.com\nmx: mx-1.example.com\nmx: xn--bcher-kva.example\nmx: " +
                std::string(63, 'a') + ".example\nmx: localhost\n",
            enforce({"*.example.com", "mx-1.example.com", "xn--bcher-kva.example",
                     std::string(63, 'a') + ".example", "localhost"})),
      valid("exactly 64 KiB with one very long line", padded_to(kMaxPolicyBytes),
            enforce({"mail.example.com"})),
  };
}

std::vector<Case> structure_cases() {
  return {
      invalid("empty body", "", {{0, "missing-version"}, {0, "missing-mode"}, {0, "missing-max-age"}}),
      invalid("only newlines", "\n\n\r\n",
              {{0, "missing-version"}, {0, "missing-mode"}, {0, "missing-max-age"}}),
      invalid("64 KiB + 1 is too large", padded_to(kMaxPolicyBytes + 1), {{0, "too-large"}}),
      invalid("NUL byte in a value", "version: STSv1\nmode: enforce\0\nmax_age: 1\nmx: a.example\n"s,
              {{2, "control-character"}}),
      invalid("NUL byte in an extension value", kValid + "x: a\0b\n"s, {{5, "control-character"}}),
      invalid("\\x01 in a key", kValid + "x\x01y: a\n", {{5, "control-character"}}),
      invalid("DEL character", kValid + "x: a\x7f\n", {{5, "control-character"}}),
      invalid("lone CR joins two fields", "version: STSv1\rmode: enforce\nmax_age: 1\nmx: a.example\n",
              {{0, "missing-mode"}, {1, "control-character"}}),
      invalid("CR CR LF", "version: STSv1\r\r\nmode: enforce\nmax_age: 1\nmx: a.example\n",
              {{1, "control-character"}}),
      invalid("form feed", kValid + "\f\n", {{5, "control-character"}}),
      invalid("key without colon", "version: STSv1\nmode enforce\nmax_age: 1\nmx: a.example\n",
              {{0, "missing-mode"}, {2, "not-a-field"}}),
      invalid("leading colon", kValid + ": enforce\n", {{5, "bad-key"}}),
      invalid("whitespace before key", "version: STSv1\n mode: enforce\nmax_age: 1\nmx: a.example\n",
              {{0, "missing-mode"}, {2, "bad-key"}}),
      invalid("space before colon", "version: STSv1\nmode : enforce\nmax_age: 1\nmx: a.example\n",
              {{0, "missing-mode"}, {2, "bad-key"}}),
      invalid("key of 33 characters", kValid + std::string(33, 'k') + ": v\n", {{5, "bad-key"}}),
      invalid("key starting with underscore", kValid + "_x: v\n", {{5, "bad-key"}}),
      invalid("key with a slash", kValid + "a/b: v\n", {{5, "bad-key"}}),
      invalid("blank line between fields", "version: STSv1\n\nmode: enforce\nmax_age: 1\nmx: a.example\n",
              {{2, "blank-line"}}),
      invalid("whitespace-only line between fields",
              "version: STSv1\r\n \t\r\nmode: enforce\nmax_age: 1\nmx: a.example", {{2, "blank-line"}}),
      invalid("blank first line", "\nversion: STSv1\nmode: enforce\nmax_age: 1\nmx: a.example\n",
              {{1, "blank-line"}}),
      invalid("UTF-8 BOM before the first key",
              "\xef\xbb\xbfversion: STSv1\nmode: enforce\nmax_age: 1\nmx: a.example\n",
              {{0, "missing-version"}, {1, "non-ascii"}}),
      invalid("non-ASCII key", kValid + "cl\xc3\xa9: v\n", {{5, "non-ascii"}}),
      invalid("empty extension value", kValid + "foo:\n", {{5, "empty-value"}}),
      invalid("whitespace-only extension value", kValid + "foo: \t \n", {{5, "empty-value"}}),
      invalid("invalid UTF-8 byte in extension value", kValid + "x: \xff\n", {{5, "bad-utf8"}}),
      invalid("overlong UTF-8 in extension value", kValid + "x: \xc0\xaf\n", {{5, "bad-utf8"}}),
      invalid("UTF-16 surrogate in extension value", kValid + "x: \xed\xa0\x80\n", {{5, "bad-utf8"}}),
      invalid("truncated UTF-8 in extension value", kValid + "x: ab\xe2\x9c\n", {{5, "bad-utf8"}}),
      invalid("code point above U+10FFFF", kValid + "x: \xf4\x90\x80\x80\n", {{5, "bad-utf8"}}),
      invalid("every problem is collected",
              "version: STSv2\nmode: Enforce\nmax_age: 1e5\nmx: a.example.\nnonsense\nx: \x01\n",
              {{1, "bad-version"},
               {2, "bad-mode"},
               {3, "bad-max-age"},
               {4, "bad-mx-pattern"},
               {5, "not-a-field"},
               {6, "control-character"}}),
  };
}

std::vector<Case> field_cases() {
  const std::string mx = "mx: a.example\n";
  const std::string ver = "version: STSv1\n";
  return {
      invalid("missing version", "mode: enforce\nmax_age: 1\n" + mx, {{0, "missing-version"}}),
      invalid("version lower case", "version: stsv1\nmode: enforce\nmax_age: 1\n" + mx, {{1, "bad-version"}}),
      invalid("version STSv2", "version: STSv2\nmode: enforce\nmax_age: 1\n" + mx, {{1, "bad-version"}}),
      invalid("version with trailing word", "version: STSv1 x\nmode: enforce\nmax_age: 1\n" + mx,
              {{1, "bad-version"}}),
      invalid("empty version", "version:\nmode: enforce\nmax_age: 1\n" + mx, {{1, "bad-version"}}),
      invalid("first version bad, second ignored", "version: 1\nversion: STSv1\nmode: none\nmax_age: 1\n",
              {{1, "bad-version"}}),
      invalid("missing mode", ver + "max_age: 1\n" + mx, {{0, "missing-mode"}}),
      invalid("uppercase key Mode is only an extension", ver + "Mode: enforce\nmax_age: 1\n" + mx,
              {{0, "missing-mode"}}),
      invalid("mode value Enforce", ver + "mode: Enforce\nmax_age: 1\n" + mx, {{2, "bad-mode"}}),
      invalid("mode value report (draft)", ver + "mode: report\nmax_age: 1\n" + mx, {{2, "bad-mode"}}),
      invalid("mode value non-ASCII", ver + "mode: enf\xc3\xb6rce\nmax_age: 1\n" + mx, {{2, "non-ascii"}}),
      invalid("missing max_age", ver + "mode: enforce\n" + mx, {{0, "missing-max-age"}}),
      invalid("max_age 11 digits", ver + "mode: enforce\nmax_age: 12345678901\n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age -1", ver + "mode: enforce\nmax_age: -1\n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age 1e5", ver + "mode: enforce\nmax_age: 1e5\n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age +5", ver + "mode: enforce\nmax_age: +5\n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age empty", ver + "mode: enforce\nmax_age: \n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age with unit", ver + "mode: enforce\nmax_age: 86400s\n" + mx, {{3, "bad-max-age"}}),
      invalid("max_age with inner space", ver + "mode: enforce\nmax_age: 86 400\n" + mx,
              {{3, "bad-max-age"}}),
      invalid("max_age full-width digits", ver + "mode: enforce\nmax_age: \xef\xbc\x91\n" + mx,
              {{3, "non-ascii"}}),
      invalid("enforce without mx", ver + "mode: enforce\nmax_age: 1\n", {{0, "missing-mx"}}),
      invalid("testing without mx", ver + "mode: testing\nmax_age: 1\n", {{0, "missing-mx"}}),
      invalid("broken line keeps its key seen", ver + "mode: enforce\x01\nmax_age: 1\n",
              {{2, "control-character"}}),
  };
}

std::vector<Case> mx_cases() {
  const auto bad_mx = [](std::string name, const std::string& pattern) {
    return invalid(std::move(name), kHead + "mx: good.example\nmx: " + pattern + "\n",
                   {{5, "bad-mx-pattern"}});
  };
  return {
      bad_mx("trailing dot", "mail.example.com."),
      bad_mx("partial wildcard", "mx*.example.com"),
      bad_mx("inner wildcard", "a.*.example.com"),
      bad_mx("double wildcard", "*.*.example.com"),
      bad_mx("wildcard suffix", "mail.*"),
      bad_mx("bare wildcard", "*"),
      bad_mx("wildcard dot", "*."),
      bad_mx("empty value", ""),
      bad_mx("empty inner label", "a..example"),
      bad_mx("leading dot", ".example.com"),
      bad_mx("label of 64 characters", std::string(64, 'a') + ".example"),
      bad_mx("longer than 253 characters", std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                               std::string(63, 'c') + "." + std::string(63, 'd')),
      bad_mx("port suffix", "mail.example.com:25"),
      bad_mx("underscore", "mail_1.example.com"),
      bad_mx("leading hyphen", "-mail.example.com"),
      bad_mx("trailing hyphen", "mail-.example.com"),
      bad_mx("two names on one line", "a.example b.example"),
      bad_mx("IP literal", "[192.0.2.1]"),
      invalid("U-label in mx", kHead + "mx: b\xc3\xbc\x63her.example\n", {{4, "non-ascii"}}),
      invalid("bad mx makes even mode none invalid",
              "version: STSv1\nmode: none\nmax_age: 1\nmx: a.example.\n", {{4, "bad-mx-pattern"}}),
      invalid("every bad mx is reported", kHead + "mx: *\nmx: ok.example\nmx: x..y\n",
              {{4, "bad-mx-pattern"}, {6, "bad-mx-pattern"}}),
      invalid("very long mx line", kHead + "mx: " + std::string(60000, 'a') + "\n", {{4, "bad-mx-pattern"}}),
  };
}

Issues rules_of(const PolicyParse& parse) {
  Issues out;
  for (const auto& issue : parse.issues) out.emplace_back(issue.line, issue.rule);
  return out;
}

void check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const PolicyParse parse = parse_policy(c.body);
    EXPECT_EQ(parse.policy, c.policy);
    EXPECT_EQ(rules_of(parse), c.issues);
    for (const auto& issue : parse.issues) EXPECT_FALSE(issue.message.empty());
  }
}

TEST(PolicyParse, ValidPolicies) { check(valid_cases()); }
TEST(PolicyParse, StructureErrors) { check(structure_cases()); }
TEST(PolicyParse, FieldErrors) { check(field_cases()); }
TEST(PolicyParse, MxPatternErrors) { check(mx_cases()); }

TEST(PolicyParse, CaseTableIsLargeEnough) {
  const std::size_t hostile = structure_cases().size() + field_cases().size() + mx_cases().size();
  EXPECT_GE(hostile, 40U);
}

TEST(PolicyMode, ToString) {
  const std::vector<std::pair<Mode, std::string_view>> cases = {
      {Mode::Enforce, "enforce"}, {Mode::Testing, "testing"}, {Mode::None, "none"}};
  for (const auto& [mode, text] : cases) EXPECT_EQ(to_string(mode), text);
}

}  // namespace
}  // namespace mtasts::policy
