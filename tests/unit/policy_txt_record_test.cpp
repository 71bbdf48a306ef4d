// parse_txt_record / parse_txt_rrset: RFC 8461 §3.1.
#include "policy/txt_record.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

std::string show(const std::string& s) { return mtasts::testing::printable(s); }

struct RecordCase {
  std::string record;
  std::string id;      // expected id when `code` is empty
  std::string code;    // "", "no-record" or "syntax"
  std::string detail;  // a substring the error detail must contain
};

const std::string k32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const std::string k33 = k32 + "6";
const std::string kExtName32 = "a" + std::string(31, '-');
const std::string kExtName33 = kExtName32 + "x";
// Every character sts-ext-value allows: %x21-3A / %x3C / %x3E-7E.
std::string all_ext_value_chars() {
  std::string out;
  for (int c = 0x21; c <= 0x7e; ++c) {
    if (c != ';' && c != '=') out += static_cast<char>(c);
  }
  return out;
}

std::vector<RecordCase> record_cases() {
  return {
      // The RFC 8461 §3.1 example and its harmless variations.
      {"v=STSv1; id=20160831085700Z;", "20160831085700Z", "", ""},
      {"v=STSv1; id=20160831085700Z", "20160831085700Z", "", ""},
      {"v=STSv1;id=abc", "abc", "", ""},
      {"v=STSv1 ; id=abc", "abc", "", ""},
      {"v=STSv1 ;id=abc", "abc", "", ""},
      {"v=STSv1\t;\tid=abc\t;\t", "abc", "", ""},
      {"v=STSv1;id=abc;", "abc", "", ""},
      {"v=STSv1;   id=abc  ;   ", "abc", "", ""},
      {"v=STSv1;id=ABCxyz019", "ABCxyz019", "", ""},
      {"v=STSv1;id=" + k32, k32, "", ""},
      {"v=STSv1;id=1", "1", "", ""},
      // Extensions, order, duplicates (first id wins).
      {"v=STSv1;id=abc;foo=bar", "abc", "", ""},
      {"v=STSv1;foo=bar;id=abc", "abc", "", ""},
      {"v=STSv1;id=abc;foo=bar;", "abc", "", ""},
      {"v=STSv1;id=abc ;foo=bar", "abc", "", ""},
      {"v=STSv1;id=abc;f.o-o_=bar", "abc", "", ""},
      {"v=STSv1;id=abc;" + kExtName32 + "=x", "abc", "", ""},
      {"v=STSv1;id=abc;x=" + all_ext_value_chars(), "abc", "", ""},
      {"v=STSv1;id=abc;x=" + std::string(10000, 'v'), "abc", "", ""},
      {"v=STSv1;id=abc;v=STSv1", "abc", "", ""},
      {"v=STSv1;v=STSv1;id=abc", "abc", "", ""},
      {"v=STSv1;id=abc;id=def", "abc", "", ""},
      {"v=STSv1;id=abc;ID=def", "abc", "", ""},
      {"v=STSv1;ID=def;id=abc", "abc", "", ""},
      {"v=STSv1;9=x;id=abc", "abc", "", ""},
      // Not candidates: the record does not begin with "v=STSv1" *WSP ";".
      {"", "", "no-record", "does not begin"},
      {"v=STSv1", "", "no-record", "does not begin"},
      {"v=STSv10;id=1", "", "no-record", "does not begin"},
      {"V=STSV1;id=1", "", "no-record", "does not begin"},
      {"v=stsv1;id=1", "", "no-record", "does not begin"},
      {"V=STSv1;id=1", "", "no-record", "does not begin"},
      {" v=STSv1;id=1", "", "no-record", "does not begin"},
      {"\tv=STSv1;id=1", "", "no-record", "does not begin"},
      {"v=STSv1 id=abc", "", "no-record", "does not begin"},
      {"v=STSv2;id=1", "", "no-record", "does not begin"},
      {"v = STSv1;id=1", "", "no-record", "does not begin"},
      {"\"v=STSv1;id=1\"", "", "no-record", "does not begin"},
      {"v=STSv1\0;id=abc"s, "", "no-record", "\\x00"},
      {"v=STSv1\n;id=abc", "", "no-record", "does not begin"},
      {"v=spf1 -all", "", "no-record", "v=spf1"},
      // Candidates that break the ABNF.
      {"v=STSv1;", "", "syntax", "no id"},
      {"v=STSv1; ", "", "syntax", "no id"},
      {"v=STSv1;\t;", "", "syntax", "empty field"},
      {"v=STSv1;id=", "", "syntax", "id is empty"},
      {"v=STSv1;id=;", "", "syntax", "id is empty"},
      {"v=STSv1;id= abc", "", "syntax", "id is empty"},
      {"v=STSv1;id=" + k33, "", "syntax", "longer than 32"},
      {"v=STSv1;id=abc-def", "", "syntax", "\"abc-def\""},
      {"v=STSv1;id=abc_def", "", "syntax", "character other than"},
      {"v=STSv1;id=abc.def", "", "syntax", "character other than"},
      {"v=STSv1;id=äbc", "", "syntax", "\\xc3\\xa4bc"},
      {"v=STSv1;id=abc\0"s, "", "syntax", "\\x00"},
      {"v=STSv1;id=abc\0;"s, "", "syntax", "\\x00"},
      {"v=STSv1;id=ab c", "", "syntax", "expected ';'"},
      {"v=STSv1; id=abc ", "", "syntax", "trailing whitespace"},
      {"v=STSv1;id=abc\r\n", "", "syntax", "\\x0d\\x0a"},
      {"v=STSv1;id=abc\n", "", "syntax", "\\x0a"},
      {"v=STSv1;\x0bid=abc", "", "syntax", "\\x0b"},
      {"v=STSv1;\xc2\xa0id=abc", "", "syntax", "\\xc2\\xa0"},
      {"v=STSv1;;id=abc", "", "syntax", "empty field"},
      {"v=STSv1;id=abc;;", "", "syntax", "empty field"},
      {"v=STSv1;ID=abc", "", "syntax", "no id"},
      {"v=STSv1;Id=abc", "", "syntax", "no id"},
      {"v=STSv1;foo=bar", "", "syntax", "no id"},
      {"v=STSv1;id =abc", "", "syntax", "has no '='"},
      {"v=STSv1;id", "", "syntax", "has no '='"},
      {"v=STSv1;id:abc", "", "syntax", "has no '='"},
      {"v=STSv1;id=abc;id=d-f", "", "syntax", "\"d-f\""},
      {"v=STSv1;id=abc;id=", "", "syntax", "id is empty"},
      {"v=STSv1;id=abc;foo=", "", "syntax", "extension value"},
      {"v=STSv1;id=abc;=bar", "", "syntax", "extension name"},
      {"v=STSv1;id=abc;_foo=bar", "", "syntax", "extension name"},
      {"v=STSv1;id=abc;-foo=bar", "", "syntax", "extension name"},
      {"v=STSv1;id=abc;fo@o=bar", "", "syntax", "extension name"},
      {"v=STSv1;id=abc;" + kExtName33 + "=x", "", "syntax", "extension name"},
      {"v=STSv1;id=abc;foo=a=b", "", "syntax", "extension value"},
      {"v=STSv1;id=abc;foo=bar\x7f", "", "syntax", "\\x7f"},
      {"v=STSv1;id=abc;foo=\xc3\xa4", "", "syntax", "extension value"},
      {"v=STSv1;id=abc;foo", "", "syntax", "has no '='"},
      {"v=STSv1;id=abc;foo=bar baz", "", "syntax", "expected ';' before \"baz\""},
      {"v=STSv1;id=abc;v=STSv1 id=def", "", "syntax", "expected ';'"},
      {"v=STSv1;id=" + std::string(500, 'x'), "", "syntax", "..."},  // excerpt is cut
  };
}

TEST(PolicyTxtRecord, RecordTable) {
  for (const RecordCase& c : record_cases()) {
    SCOPED_TRACE("record: " + show(c.record));
    const Result<TxtRecord> got = parse_txt_record(c.record);
    if (c.code.empty()) {
      ASSERT_TRUE(got.has_value()) << got.error().code << ": " << got.error().detail;
      EXPECT_EQ(got.value().id, c.id);
    } else {
      ASSERT_FALSE(got.has_value()) << "got id " << got.value().id;
      EXPECT_EQ(got.error().code, c.code) << got.error().detail;
      EXPECT_NE(got.error().detail.find(c.detail), std::string::npos) << "detail: " << got.error().detail;
    }
  }
}

// The detail carries untrusted bytes only in escaped, printable form.
TEST(PolicyTxtRecord, DetailIsPrintable) {
  for (const RecordCase& c : record_cases()) {
    const Result<TxtRecord> got = parse_txt_record(c.record);
    if (got.has_value()) continue;
    SCOPED_TRACE("record: " + show(c.record));
    for (const char ch : got.error().detail) {
      const auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(u >= 0x20 && u < 0x7f) << "byte " << static_cast<int>(u);
    }
    EXPECT_LT(got.error().detail.size(), 200u);
  }
}

// A record alone in its RRset gets the same answer as on its own.
TEST(PolicyTxtRecord, SingleRecordRrsetAgreesWithRecord) {
  for (const RecordCase& c : record_cases()) {
    SCOPED_TRACE("record: " + show(c.record));
    const std::vector<std::string> rrset{c.record};
    const Result<TxtRecord> one = parse_txt_record(c.record);
    const Result<TxtRecord> set = parse_txt_rrset(rrset);
    ASSERT_EQ(one.has_value(), set.has_value());
    if (one.has_value()) {
      EXPECT_EQ(one.value().id, set.value().id);
    } else {
      EXPECT_EQ(one.error().code, set.error().code);
    }
  }
}

struct RrsetCase {
  std::vector<std::string> records;
  std::string id;
  std::string code;
};

TEST(PolicyTxtRecord, RrsetTable) {
  const std::vector<RrsetCase> cases = {
      {{}, "", "no-record"},
      {{""}, "", "no-record"},
      {{"", "", ""}, "", "no-record"},
      {{"v=spf1 -all"}, "", "no-record"},
      {{"v=STSv1"}, "", "no-record"},
      {{"v=STSv1 id=a"}, "", "no-record"},
      {{"V=STSV1; id=a;", "v=STSv10; id=b;", "v=spf1 include:x -all"}, "", "no-record"},
      {{"v=spf1 -all", "v=STSv1; id=abc;"}, "abc", ""},
      {{"v=STSv1; id=abc;", "v=spf1 -all"}, "abc", ""},
      {{"google-site-verification=xyz", "v=STSv1;id=x", "v=DMARC1; p=none"}, "x", ""},
      {{"v=STSv1; id=a;", "v=STSv10; id=b;"}, "a", ""},
      {{"V=STSV1; id=a;", "v=STSv1; id=b;"}, "b", ""},
      {{"v=STSv1 id=a", "v=STSv1 ; id=b"}, "b", ""},
      // Character-strings already joined by the resolver ("v=STSv1; " "id=abc;").
      {{"v=STSv1; id=abc;"}, "abc", ""},
      {{"v=STSv1; id=a;", "v=STSv1; id=b;"}, "", "multiple-records"},
      {{"v=STSv1; id=a;", "v=STSv1; id=a;"}, "", "multiple-records"},
      {{"v=STSv1; id=a;", "v=STSv1;"}, "", "multiple-records"},
      {{"v=STSv1;", "v=STSv1;"}, "", "multiple-records"},
      {{"v=spf1 -all", "v=STSv1; id=a;", "x", "v=STSv1 ;id=b", "v=STSv1\t;id=c"}, "", "multiple-records"},
      {{"v=STSv1;", "v=spf1"}, "", "syntax"},
      {{"v=spf1", "v=STSv1; id=" + k33}, "", "syntax"},
      {{"v=STSv1;id=a\0"s, "v=STSv10;id=b"}, "", "syntax"},
      {{"v=STSv1;id=a b"}, "", "syntax"},
  };
  for (const RrsetCase& c : cases) {
    std::string trace;
    for (const std::string& r : c.records) trace += "[" + show(r) + "]";
    SCOPED_TRACE("rrset: " + trace);
    const Result<TxtRecord> got = parse_txt_rrset(c.records);
    if (c.code.empty()) {
      ASSERT_TRUE(got.has_value()) << got.error().code << ": " << got.error().detail;
      EXPECT_EQ(got.value().id, c.id);
    } else {
      ASSERT_FALSE(got.has_value()) << "got id " << got.value().id;
      EXPECT_EQ(got.error().code, c.code) << got.error().detail;
      EXPECT_FALSE(got.error().detail.empty());
    }
  }
}

}  // namespace
}  // namespace mtasts::policy
