// parse_tlsrpt_record / select_tlsrpt_record: RFC 8460 §3.
#include "policy/tlsrpt_record.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

std::string show(const std::string& s) { return mtasts::testing::printable(s); }

ReportUri mail(const std::string& uri) { return ReportUri{ReportScheme::Mailto, uri}; }
ReportUri web(const std::string& uri) { return ReportUri{ReportScheme::Https, uri}; }

struct RecordCase {
  std::string record;
  std::vector<ReportUri> rua;        // expected when `code` is empty
  std::vector<std::string> ignored;  // expected when `code` is empty
  std::string code;                  // "", "tlsrpt-syntax" or "tlsrpt-no-usable-uri"
  std::string detail;                // a substring the error detail must contain
};

const std::string kA = "mailto:tlsrpt@example.com";
const std::string kB = "mailto:reports@example.net";
const std::string kH = "https://reporting.example.com/v1/tlsrpt";
const std::string kSyntax = "tlsrpt-syntax";
const std::string kNoUsable = "tlsrpt-no-usable-uri";

std::vector<RecordCase> record_cases() {
  return {
      // RFC 8460 §3.1 examples and harmless variations.
      {"v=TLSRPTv1;rua=mailto:reports@example.com", {mail("mailto:reports@example.com")}, {}, "", ""},
      {"v=TLSRPTv1; rua=" + kH, {web(kH)}, {}, "", ""},
      {"v=TLSRPTv1; rua=" + kA + ";", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1 ; rua=" + kA + " ; ", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1\t;\trua=" + kA + "\t;\t", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";   ", {mail(kA)}, {}, "", ""},
      // Lists: *WSP "," *WSP, order kept, duplicates once.
      {"v=TLSRPTv1;rua=" + kA + "," + kH, {mail(kA), web(kH)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kH + " ,\t " + kA, {web(kH), mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + "," + kB + "," + kA, {mail(kA), mail(kB)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ",MAILTO:tlsrpt@example.com", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=mailto:X@example.com,mailto:x@example.com",
       {mail("mailto:X@example.com"), mail("mailto:x@example.com")},
       {},
       "",
       ""},
      // Several rua fields are merged in record order.
      {"v=TLSRPTv1;rua=" + kA + ";rua=" + kH, {mail(kA), web(kH)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";x=1;rua=" + kB + "," + kA, {mail(kA), mail(kB)}, {}, "", ""},
      // Schemes are case-insensitive; the URI is kept as published.
      {"v=TLSRPTv1;rua=MAILTO:a@Example.COM", {mail("MAILTO:a@Example.COM")}, {}, "", ""},
      {"v=TLSRPTv1;rua=HTTPS://R.Example.com/", {web("HTTPS://R.Example.com/")}, {}, "", ""},
      // mailto details.
      {"v=TLSRPTv1;rua=mailto:a+tag@example.com", {mail("mailto:a+tag@example.com")}, {}, "", ""},
      {"v=TLSRPTv1;rua=mailto:a%21b@example.com", {mail("mailto:a%21b@example.com")}, {}, "", ""},
      {"v=TLSRPTv1;rua=mailto:a@example.com?subject=tls",
       {mail("mailto:a@example.com?subject=tls")},
       {},
       "",
       ""},
      {"v=TLSRPTv1;rua=mailto:a@xn--bcher-kva.example", {mail("mailto:a@xn--bcher-kva.example")}, {}, "", ""},
      {"v=TLSRPTv1;rua=mailto:a@example.com.", {mail("mailto:a@example.com.")}, {}, "", ""},
      // https details.
      {"v=TLSRPTv1;rua=https://r.example.com", {web("https://r.example.com")}, {}, "", ""},
      {"v=TLSRPTv1;rua=https://r.example.com:8443/a?b=c%2Cd#f",
       {web("https://r.example.com:8443/a?b=c%2Cd#f")},
       {},
       "",
       ""},
      {"v=TLSRPTv1;rua=https://192.0.2.1/r", {web("https://192.0.2.1/r")}, {}, "", ""},
      {"v=TLSRPTv1;rua=https://[2001:db8::1]:443/r", {web("https://[2001:db8::1]:443/r")}, {}, "", ""},
      // Other schemes are ignored, not errors.
      {"v=TLSRPTv1;rua=http://r.example.com/," + kA, {mail(kA)}, {"http://r.example.com/"}, "", ""},
      {"v=TLSRPTv1;rua=ftp://x.example/,urn:isbn:1,ftp://x.example/," + kH,
       {web(kH)},
       {"ftp://x.example/", "urn:isbn:1"},
       "",
       ""},
      // Extensions and unknown fields are accepted and ignored.
      {"v=TLSRPTv1;rua=" + kA + ";ext=1", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;ext=1;rua=" + kA, {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";RUA=junk", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";v=TLSRPTv1", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";9.a_b-c=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~", {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";a" + std::string(31, 'b') + "=1", {mail(kA)}, {}, "", ""},

      // Bad version.
      {"", {}, {}, kSyntax, "bad version"},
      {"v=TLSRPTv10;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {"v=TLSRPTv2;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {"V=TLSRPTv1;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {"v=tlsrptv1;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {" v=TLSRPTv1;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {"v = TLSRPTv1;rua=" + kA, {}, {}, kSyntax, "bad version"},
      {"rua=" + kA + ";v=TLSRPTv1", {}, {}, kSyntax, "bad version"},
      {"v=spf1 -all", {}, {}, kSyntax, "bad version"},
      // Missing or empty rua.
      {"v=TLSRPTv1", {}, {}, kSyntax, "no rua field"},
      {"v=TLSRPTv1;", {}, {}, kSyntax, "no rua field"},
      {"v=TLSRPTv1;ext=1", {}, {}, kSyntax, "no rua field"},
      {"v=TLSRPTv1;RUA=" + kA, {}, {}, kSyntax, "no rua field"},
      {"v=TLSRPTv1;rua=", {}, {}, kSyntax, "rua has no URI"},
      {"v=TLSRPTv1;rua= ;", {}, {}, kSyntax, "rua has no URI"},
      {"v=TLSRPTv1;rua= " + kA, {}, {}, kSyntax, "whitespace right after"},
      {"v=TLSRPTv1;rua=" + kA + ",", {}, {}, kSyntax, "empty URI"},
      {"v=TLSRPTv1;rua=" + kA + ",,", {}, {}, kSyntax, "empty URI"},
      {"v=TLSRPTv1;rua=," + kA, {}, {}, kSyntax, "empty URI"},
      {"v=TLSRPTv1;rua=" + kA + ", ;", {}, {}, kSyntax, "empty URI"},
      // Delimiters.
      {"v=TLSRPTv1 rua=" + kA, {}, {}, kSyntax, "expected ';'"},
      {"v=TLSRPTv1;;rua=" + kA, {}, {}, kSyntax, "empty field"},
      {"v=TLSRPTv1;rua=" + kA + ";;", {}, {}, kSyntax, "empty field"},
      {"v=TLSRPTv1;rua=" + kA + " ", {}, {}, kSyntax, "whitespace at the end"},
      {"v=TLSRPTv1;rua=" + kA + "\r\n", {}, {}, kSyntax, "\\x0D\\x0A"},
      {"v=TLSRPTv1;rua =" + kA, {}, {}, kSyntax, "extension name"},
      {"v=TLSRPTv1;rua:" + kA, {}, {}, kSyntax, "has no '='"},
      {"v=TLSRPTv1;rua=" + kA + " " + kB, {}, {}, kSyntax, "not allowed in a URI"},
      // URIs.
      {"v=TLSRPTv1;rua=tlsrpt@example.com", {}, {}, kSyntax, "has no scheme"},
      {"v=TLSRPTv1;rua=1mailto:a@example.com", {}, {}, kSyntax, "has no scheme"},
      {"v=TLSRPTv1;rua=:a@example.com", {}, {}, kSyntax, "has no scheme"},
      {"v=TLSRPTv1;rua=mailto:a!b@example.com", {}, {}, kSyntax, "raw '!'"},
      {"v=TLSRPTv1;rua=mailto:a@example.com!10m", {}, {}, kSyntax, "raw '!'"},
      {"v=TLSRPTv1;rua=mailto:a%2@example.com", {}, {}, kSyntax, "two hex digits"},
      {"v=TLSRPTv1;rua=https://r.example.com/%zz", {}, {}, kSyntax, "two hex digits"},
      {"v=TLSRPTv1;rua=mailto:a\"b@example.com", {}, {}, kSyntax, "not allowed in a URI"},
      {"v=TLSRPTv1;rua=mailto:\xc3\xa4@example.com", {}, {}, kSyntax, "\\xC3\\xA4"},
      {"v=TLSRPTv1;rua=mailto:a@example.com\0"s, {}, {}, kSyntax, "\\x00"},
      {"v=TLSRPTv1;rua=https://r.example.com/#a#b", {}, {}, kSyntax, "two '#'"},
      // mailto: one addr-spec.
      {"v=TLSRPTv1;rua=mailto:", {}, {}, kSyntax, "has no address"},
      {"v=TLSRPTv1;rua=mailto:?subject=x", {}, {}, kSyntax, "has no address"},
      {"v=TLSRPTv1;rua=mailto:example.com", {}, {}, kSyntax, "exactly one '@'"},
      {"v=TLSRPTv1;rua=mailto:a@b@example.com", {}, {}, kSyntax, "exactly one '@'"},
      {"v=TLSRPTv1;rua=mailto:@example.com", {}, {}, kSyntax, "invalid local part"},
      {"v=TLSRPTv1;rua=mailto:a@", {}, {}, kSyntax, "invalid domain"},
      {"v=TLSRPTv1;rua=mailto:a@ex_ample.com", {}, {}, kSyntax, "invalid domain"},
      {"v=TLSRPTv1;rua=mailto:a@[192.0.2.1]", {}, {}, kSyntax, "invalid domain"},
      {"v=TLSRPTv1;rua=mailto:a@example.com%2Cb@example.com", {}, {}, kSyntax, "more than one address"},
      {"v=TLSRPTv1;rua=mailto:a@example.com#frag", {}, {}, kSyntax, "fragment"},
      // https: a host, no userinfo, a sane port.
      {"v=TLSRPTv1;rua=https://", {}, {}, kSyntax, "has no host"},
      {"v=TLSRPTv1;rua=https:///v1", {}, {}, kSyntax, "has no host"},
      {"v=TLSRPTv1;rua=https://:443/", {}, {}, kSyntax, "has no host"},
      {"v=TLSRPTv1;rua=https:r.example.com/", {}, {}, kSyntax, "no \"//\""},
      {"v=TLSRPTv1;rua=https://user@r.example.com/", {}, {}, kSyntax, "userinfo"},
      {"v=TLSRPTv1;rua=https://user:pw@r.example.com/", {}, {}, kSyntax, "userinfo"},
      {"v=TLSRPTv1;rua=https://r.example.com:/", {}, {}, kSyntax, "invalid port"},
      {"v=TLSRPTv1;rua=https://r.example.com:0/", {}, {}, kSyntax, "invalid port"},
      {"v=TLSRPTv1;rua=https://r.example.com:65536/", {}, {}, kSyntax, "invalid port"},
      {"v=TLSRPTv1;rua=https://r.example.com:44a/", {}, {}, kSyntax, "invalid port"},
      {"v=TLSRPTv1;rua=https://r..example.com/", {}, {}, kSyntax, "invalid host"},
      {"v=TLSRPTv1;rua=https://r%2Eexample.com/", {}, {}, kSyntax, "invalid host"},
      {"v=TLSRPTv1;rua=https://[2001:db8::zz]/", {}, {}, kSyntax, "invalid IPv6"},
      {"v=TLSRPTv1;rua=https://[2001:db8::1]x/", {}, {}, kSyntax, "junk after the host"},
      {"v=TLSRPTv1;rua=https://r.example.com/[x]", {}, {}, kSyntax, "outside the host"},
      // An error in any URI rejects the record, even with a usable one beside it.
      {"v=TLSRPTv1;rua=" + kA + ",mailto:", {}, {}, kSyntax, "has no address"},
      {"v=TLSRPTv1;rua=" + kA + ";rua=https://", {}, {}, kSyntax, "has no host"},
      // Extensions.
      {"v=TLSRPTv1;rua=" + kA + ";_x=1", {}, {}, kSyntax, "extension name"},
      {"v=TLSRPTv1;rua=" + kA + ";=1", {}, {}, kSyntax, "extension name"},
      {"v=TLSRPTv1;rua=" + kA + ";a" + std::string(32, 'b') + "=1", {}, {}, kSyntax, "extension name"},
      {"v=TLSRPTv1;rua=" + kA + ";x=", {}, {}, kSyntax, "extension value"},
      {"v=TLSRPTv1;rua=" + kA + ";x=a=b", {}, {}, kSyntax, "extension value"},
      {"v=TLSRPTv1;rua=" + kA + ";x=a b", {}, {}, kSyntax, "extension value"},
      {"v=TLSRPTv1;rua=" + kA + ";x=\x7f", {}, {}, kSyntax, "extension value"},
      {"v=TLSRPTv1;rua=" + kA + ";x", {}, {}, kSyntax, "has no '='"},
      // Length.
      {"v=TLSRPTv1;rua=" + kA + ";x=" + std::string(4096 - 18 - kA.size(), 'y'), {mail(kA)}, {}, "", ""},
      {"v=TLSRPTv1;rua=" + kA + ";x=" + std::string(4097 - 18 - kA.size(), 'y'),
       {},
       {},
       kSyntax,
       "longer than 4096"},
      // Valid, but nothing we can deliver to.
      {"v=TLSRPTv1;rua=http://r.example.com/", {}, {}, kNoUsable, "1 of other schemes"},
      {"v=TLSRPTv1;rua=ftp://a.example/,urn:x:y", {}, {}, kNoUsable, "2 of other schemes"},
  };
}

TEST(PolicyTlsrptRecord, RecordTable) {
  for (const RecordCase& c : record_cases()) {
    SCOPED_TRACE("record: " + show(c.record));
    const Result<TlsrptRecord> got = parse_tlsrpt_record(c.record);
    if (c.code.empty()) {
      ASSERT_TRUE(got.has_value()) << got.error().code << ": " << got.error().detail;
      EXPECT_EQ(got->rua, c.rua);
      EXPECT_EQ(got->ignored_uris, c.ignored);
      EXPECT_FALSE(got->rua.empty());
    } else {
      ASSERT_FALSE(got.has_value()) << "accepted with " << got->rua.size() << " URI(s)";
      EXPECT_EQ(got.error().code, c.code) << got.error().detail;
      EXPECT_NE(got.error().detail.find(c.detail), std::string::npos) << "detail: " << got.error().detail;
    }
  }
}

// Details carry untrusted bytes only escaped, and stay short.
TEST(PolicyTlsrptRecord, DetailIsPrintableAndBounded) {
  for (const RecordCase& c : record_cases()) {
    const Result<TlsrptRecord> got = parse_tlsrpt_record(c.record);
    if (got.has_value()) continue;
    SCOPED_TRACE("record: " + show(c.record));
    for (const char ch : got.error().detail) {
      const auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(u >= 0x20 && u < 0x7f) << "byte " << static_cast<int>(u);
    }
    EXPECT_LT(got.error().detail.size(), 200u);
  }
}

// The table is not one-sided: it has rows of every outcome.
TEST(PolicyTlsrptRecord, TableCoversEveryOutcome) {
  std::size_t valid = 0, syntax = 0, unusable = 0;
  for (const RecordCase& c : record_cases()) {
    valid += c.code.empty();
    syntax += c.code == kSyntax;
    unusable += c.code == kNoUsable;
  }
  EXPECT_GE(valid, 25u);
  EXPECT_GE(syntax, 60u);
  EXPECT_GE(unusable, 2u);
}

// A candidate alone in its RRset gets the same answer as on its own.
TEST(PolicyTlsrptRecord, SingleCandidateAgreesWithRecord) {
  for (const RecordCase& c : record_cases()) {
    if (c.record.rfind("v=TLSRPTv1;", 0) != 0) continue;
    SCOPED_TRACE("record: " + show(c.record));
    const std::vector<std::string> rrset{"v=spf1 -all", c.record};
    const Result<TlsrptRecord> one = parse_tlsrpt_record(c.record);
    const Result<TlsrptRecord> set = select_tlsrpt_record(rrset);
    ASSERT_EQ(one.has_value(), set.has_value());
    if (one.has_value()) {
      EXPECT_EQ(one->rua, set->rua);
    } else {
      EXPECT_EQ(one.error().code, set.error().code);
    }
  }
}

struct SelectCase {
  std::vector<std::string> records;
  std::vector<ReportUri> rua;
  std::string code;
};

TEST(PolicyTlsrptRecord, SelectTable) {
  const std::string ok = "v=TLSRPTv1; rua=" + kA;
  const std::vector<SelectCase> cases = {
      {{}, {}, "tlsrpt-none"},
      {{""}, {}, "tlsrpt-none"},
      {{"v=spf1 include:_spf.example.com -all"}, {}, "tlsrpt-none"},
      {{"v=TLSRPTv10; rua=" + kA}, {}, "tlsrpt-none"},
      {{"v=TLSRPTv1"}, {}, "tlsrpt-none"},
      {{"v=TLSRPTv1 rua=" + kA}, {}, "tlsrpt-none"},
      {{"V=TLSRPTV1; rua=" + kA, "v=tlsrptv1; rua=" + kA, " v=TLSRPTv1; rua=" + kA}, {}, "tlsrpt-none"},
      {{"v=STSv1; id=20160831085700Z;"}, {}, "tlsrpt-none"},
      {{ok}, {mail(kA)}, ""},
      {{"v=spf1 -all", ok}, {mail(kA)}, ""},
      {{ok, "v=spf1 -all", "google-site-verification=abc"}, {mail(kA)}, ""},
      {{"v=TLSRPTv10; rua=" + kH, ok}, {mail(kA)}, ""},
      {{"v=TLSRPTv1 rua=" + kH, "v=TLSRPTv1 ;rua=" + kH}, {web(kH)}, ""},
      {{"v=TLSRPTv1\t;rua=" + kH}, {web(kH)}, ""},
      {{ok, "v=TLSRPTv1; rua=" + kH}, {}, "tlsrpt-multiple"},
      {{ok, ok}, {}, "tlsrpt-multiple"},
      {{ok, "v=TLSRPTv1;"}, {}, "tlsrpt-multiple"},
      {{"v=spf1 -all", ok, "v=TLSRPTv1 ; rua=" + kB, "x"}, {}, "tlsrpt-multiple"},
      {{"v=spf1 -all", "v=TLSRPTv1;"}, {}, "tlsrpt-syntax"},
      {{"v=TLSRPTv1; rua=mailto:"}, {}, "tlsrpt-syntax"},
      {{"v=TLSRPTv1; rua=" + kA + " "}, {}, "tlsrpt-syntax"},
      {{"v=TLSRPTv1; rua=http://r.example.com/"}, {}, "tlsrpt-no-usable-uri"},
  };
  for (const SelectCase& c : cases) {
    std::string trace;
    for (const std::string& r : c.records) trace += "[" + show(r) + "]";
    SCOPED_TRACE("rrset: " + trace);
    const Result<TlsrptRecord> got = select_tlsrpt_record(c.records);
    if (c.code.empty()) {
      ASSERT_TRUE(got.has_value()) << got.error().code << ": " << got.error().detail;
      EXPECT_EQ(got->rua, c.rua);
    } else {
      ASSERT_FALSE(got.has_value()) << "accepted with " << got->rua.size() << " URI(s)";
      EXPECT_EQ(got.error().code, c.code) << got.error().detail;
      EXPECT_FALSE(got.error().detail.empty());
    }
  }
}

TEST(TlsrptRecord, MailtoAddressDecodesPercentEscapes) {
  EXPECT_EQ(mailto_address("mailto:tlsrpt@example.com"), "tlsrpt@example.com");
  EXPECT_EQ(mailto_address("mailto:a%2Bb@example.com"), "a+b@example.com");
  EXPECT_EQ(mailto_address("MAILTO:reports%2etls@example.com?subject=x"), "reports.tls@example.com");
  EXPECT_EQ(mailto_address("mailto:r@example.com%41"), "r@example.comA");
}

}  // namespace
}  // namespace mtasts::policy
