// The socketmap protocol layer: netstring framing, requests, replies and the
// MTA-STS answer data (Postfix socketmap_table(5), REFERENCE.md).
#include "policy/socketmap.h"

#include <gtest/gtest.h>

#include "printable.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

using namespace std::string_literals;

std::string show(const std::string& s) { return mtasts::testing::printable(s); }

// ---- Replies -----------------------------------------------------------

struct ReplyCase {
  SocketmapStatus status;
  std::string text;
  std::string frame;  // the exact bytes on the wire
};

TEST(PolicySocketmap, ReplyFrames) {
  const std::string data = "secure match=mx1.example.com:.example.net servername=hostname";
  const std::vector<ReplyCase> cases = {
      {SocketmapStatus::Ok, data, "64:OK " + data + ","},
      {SocketmapStatus::Ok, "", "3:OK ,"},
      {SocketmapStatus::Ok, "caf\xc3\xa9", "8:OK caf\xc3\xa9,"},  // our data is not rewritten
      {SocketmapStatus::NotFound, "", "9:NOTFOUND ,"},
      {SocketmapStatus::NotFound, "no policy", "9:NOTFOUND ,"},  // NOTFOUND carries no text
      {SocketmapStatus::Temp, "dns-timeout", "16:TEMP dns-timeout,"},
      {SocketmapStatus::Temp, "", "5:TEMP ,"},
      {SocketmapStatus::Timeout, "deadline", "16:TIMEOUT deadline,"},
      {SocketmapStatus::Perm, "bad request", "16:PERM bad request,"},
      // Reasons: one line of printable ASCII.
      {SocketmapStatus::Temp, "a\r\nb\0c\x7f\xc3\xa4"s, "14:TEMP a??b?c???,"},
      {SocketmapStatus::Perm, "tab\there", "13:PERM tab?here,"},
      {SocketmapStatus::Timeout, std::string(300, 'x'), "264:TIMEOUT " + std::string(256, 'x') + ","},
      // OK data that would break the MTA's parser turns into TEMP.
      {SocketmapStatus::Ok, "secure\nmatch=x", "35:TEMP unsafe or oversized reply data,"},
      {SocketmapStatus::Ok, "a\0b"s, "35:TEMP unsafe or oversized reply data,"},
      {SocketmapStatus::Ok, std::string(kMaxOkDataBytes + 1, 'd'), "35:TEMP unsafe or oversized reply data,"},
  };
  for (const ReplyCase& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.status)) + " " + show(c.text.substr(0, 60)));
    EXPECT_EQ(show(format_reply(c.status, c.text)), show(c.frame));
  }
}

// The status travels with the bytes: the one asked for, except OK data that
// cannot be sent, which goes (and is counted) as TEMP.
TEST(PolicySocketmap, MakeReplyCarriesTheStatusSent) {
  for (const auto status : {SocketmapStatus::Ok, SocketmapStatus::NotFound, SocketmapStatus::Temp,
                            SocketmapStatus::Timeout, SocketmapStatus::Perm}) {
    SCOPED_TRACE(to_string(status));
    EXPECT_EQ(make_reply(status, "text"), (SocketmapReply{status, format_reply(status, "text")}));
  }
  EXPECT_EQ(make_reply(SocketmapStatus::Ok, "secure\nmatch=x"),
            (SocketmapReply{SocketmapStatus::Temp, "35:TEMP unsafe or oversized reply data,"}));
}

TEST(PolicySocketmap, OkDataAtPostfixLimit) {
  const std::string data(kMaxOkDataBytes, 'd');
  EXPECT_EQ(format_reply(SocketmapStatus::Ok, data), "100000:OK " + data + ",");
}

TEST(PolicySocketmap, StatusWords) {
  EXPECT_EQ(to_string(SocketmapStatus::Ok), "OK");
  EXPECT_EQ(to_string(SocketmapStatus::NotFound), "NOTFOUND");
  EXPECT_EQ(to_string(SocketmapStatus::Temp), "TEMP");
  EXPECT_EQ(to_string(SocketmapStatus::Timeout), "TIMEOUT");
  EXPECT_EQ(to_string(SocketmapStatus::Perm), "PERM");
}

// ---- Netstring reader --------------------------------------------------

// What a reader produced from a stream: its payloads, then how it stopped.
struct Drained {
  std::vector<std::string> payloads;
  std::optional<NetstringError> error;  // nullopt: waiting for more bytes
  bool operator==(const Drained&) const = default;
};

void drain(NetstringReader& reader, Drained& out) {
  for (;;) {
    const auto next = reader.next();
    if (!next) {
      out.error = next.error();
      return;
    }
    if (!next.value()) return;
    out.payloads.push_back(*next.value());
  }
}

// Feeds `stream` in pieces of `chunk` bytes, draining after each feed.
Drained read_in_chunks(std::string_view stream, std::size_t chunk,
                       std::size_t max = kPostfixMaxRequestBytes) {
  NetstringReader reader(max);
  Drained out;
  for (std::size_t at = 0; at < stream.size() && !out.error; at += chunk) {
    reader.feed(stream.substr(at, chunk));
    drain(reader, out);
  }
  return out;
}

struct StreamCase {
  std::string stream;
  std::vector<std::string> payloads;
  std::optional<NetstringError> error;
};

std::vector<StreamCase> stream_cases() {
  using E = NetstringError;
  const std::string big(kPostfixMaxRequestBytes, 'k');
  return {
      {"12:postfix a.ex,", {"postfix a.ex"}, std::nullopt},
      {"0:,", {""}, std::nullopt},
      {"1:,,", {","}, std::nullopt},
      {"3:a:b,", {"a:b"}, std::nullopt},
      {"3:\0\n\xff,"s, {"\0\n\xff"s}, std::nullopt},
      {"3:abc,4:defg,0:,", {"abc", "defg", ""}, std::nullopt},
      {"10000:" + big + ",", {big}, std::nullopt},  // exactly the maximum
      // Unfinished frames wait for more.
      {"", {}, std::nullopt},
      {"1", {}, std::nullopt},
      {"12", {}, std::nullopt},
      {"12:", {}, std::nullopt},
      {"12:postfix a.e", {}, std::nullopt},
      {"12:postfix a.ex", {}, std::nullopt},
      {"3:abc,4:de", {"abc"}, std::nullopt},
      {"10000:" + big, {}, std::nullopt},
      // Each error, also after good frames.
      {":", {}, E::EmptyLength},
      {":abc,", {}, E::EmptyLength},
      {"3:abc,:", {"abc"}, E::EmptyLength},
      {"x", {}, E::BadLengthDigit},
      {" 3:abc,", {}, E::BadLengthDigit},
      {"-1:a,", {}, E::BadLengthDigit},
      {"+1:a,", {}, E::BadLengthDigit},
      {"3:abc,\n", {"abc"}, E::BadLengthDigit},
      {"3:abc,\r\n3:def,", {"abc"}, E::BadLengthDigit},
      {"00:,", {}, E::LeadingZero},
      {"00", {}, E::LeadingZero},
      {"012:postfix a.ex,", {}, E::LeadingZero},
      {"1x", {}, E::MissingColon},
      {"3 :abc,", {}, E::MissingColon},
      {"0x3:abc,", {}, E::MissingColon},
      {"3:abc;", {}, E::MissingComma},
      {"3:abcd,", {}, E::MissingComma},
      {"3:ab,", {}, std::nullopt},  // "ab," is only 3 payload bytes: wait for the ','
      {"3:ab,x", {}, E::MissingComma},
      {"0:x", {}, E::MissingComma},
      {"3:abc,3:def", {"abc"}, std::nullopt},
      {"3:abc,3:defg", {"abc"}, E::MissingComma},
      // Over the maximum: known from the digits alone.
      {"10001:", {}, E::TooLong},
      {"10001", {}, E::TooLong},
      {"100000", {}, E::TooLong},
      {"99999", {}, E::TooLong},
      {"123456789012345678901234567890:x,", {}, E::TooLong},
      {"999999999999999999999999999999999999999", {}, E::TooLong},
      {"18446744073709551616:", {}, E::TooLong},  // 2^64
      {"3:abc,10001:", {"abc"}, E::TooLong},
  };
}

TEST(PolicySocketmap, ReaderTableWholeByteByByteAndInChunks) {
  for (const StreamCase& c : stream_cases()) {
    SCOPED_TRACE("stream: " + show(c.stream.substr(0, 80)));
    const Drained expected{c.payloads, c.error};
    EXPECT_EQ(read_in_chunks(c.stream, c.stream.size() + 1), expected) << "whole";
    for (const std::size_t chunk : {1, 2, 3, 7}) {
      EXPECT_EQ(read_in_chunks(c.stream, chunk), expected) << "chunk " << chunk;
    }
  }
}

TEST(PolicySocketmap, ReaderMaximumBoundary) {
  struct Case {
    std::size_t max;
    std::string stream;
    std::optional<NetstringError> error;
  };
  const std::vector<Case> cases = {
      {0, "0:,", std::nullopt},
      {0, "1", NetstringError::TooLong},
      {5, "5:hello,", std::nullopt},
      {5, "6", NetstringError::TooLong},
      {9, "9:123456789,", std::nullopt},
      {9, "10", NetstringError::TooLong},
      {10, "10:0123456789,", std::nullopt},
      {10, "11", NetstringError::TooLong},
      {kPostfixMaxRequestBytes, "10000:", std::nullopt},
      {kPostfixMaxRequestBytes, "10001:", NetstringError::TooLong},
      {kPostfixMaxReplyBytes, "100000:", std::nullopt},
      {kPostfixMaxReplyBytes, "100001:", NetstringError::TooLong},
      {SIZE_MAX, "18446744073709551615", std::nullopt},  // SIZE_MAX itself: only waits
      {SIZE_MAX, "18446744073709551616", NetstringError::TooLong},
      {SIZE_MAX, "99999999999999999999", NetstringError::TooLong},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("max " + std::to_string(c.max) + " stream " + c.stream);
    EXPECT_EQ(read_in_chunks(c.stream, 1, c.max).error, c.error);
  }
}

// A 30-digit length fails at the first digit that exceeds the maximum.
TEST(PolicySocketmap, ReaderRefusesLengthBeforeTheData) {
  NetstringReader reader(kPostfixMaxRequestBytes);
  const std::string digits = "100000000000000000000000000000";
  for (std::size_t i = 0; i < 5; ++i) {
    reader.feed(digits.substr(i, 1));
    const auto next = reader.next();
    ASSERT_TRUE(next.has_value()) << "digit " << i;
    EXPECT_FALSE(next.value().has_value());
  }
  reader.feed(digits.substr(5, 1));
  const auto next = reader.next();
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error(), NetstringError::TooLong);
}

TEST(PolicySocketmap, ReaderStaysFailed) {
  NetstringReader reader(kPostfixMaxRequestBytes);
  reader.feed("3:abc;3:def,");
  ASSERT_FALSE(reader.next().has_value());
  EXPECT_TRUE(reader.failed());
  EXPECT_EQ(reader.buffered_bytes(), 0u);
  reader.feed("12:postfix a.ex,");
  EXPECT_EQ(reader.buffered_bytes(), 0u);
  for (int i = 0; i < 3; ++i) {
    const auto next = reader.next();
    ASSERT_FALSE(next.has_value());
    EXPECT_EQ(next.error(), NetstringError::MissingComma);
  }
}

// Drained after each feed, the reader holds at most one unfinished frame.
TEST(PolicySocketmap, ReaderMemoryIsBoundByOneFrame) {
  const std::string frame = encode_netstring(std::string(kPostfixMaxRequestBytes, 'k'));
  const std::string stream = frame + frame + frame;
  NetstringReader reader(kPostfixMaxRequestBytes);
  Drained out;
  std::size_t most = 0;
  for (const char c : stream) {
    reader.feed(std::string_view(&c, 1));
    drain(reader, out);
    most = std::max(most, reader.buffered_bytes());
  }
  EXPECT_EQ(out.payloads.size(), 3u);
  EXPECT_FALSE(out.error);
  EXPECT_EQ(most, kPostfixMaxRequestBytes + 6);  // "10000:" and the payload, before the ','
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(PolicySocketmap, ReaderPipelinedRequestsInOneFeed) {
  std::string stream;
  std::vector<std::string> sent;
  for (int i = 0; i < 500; ++i) {
    sent.push_back("postfix d" + std::to_string(i) + ".example");
    stream += encode_netstring(sent.back());
  }
  stream += "30:postfix unfinished";
  NetstringReader reader(kPostfixMaxRequestBytes);
  reader.feed(stream);
  Drained out;
  drain(reader, out);
  EXPECT_EQ(out.payloads, sent);
  EXPECT_FALSE(out.error);
  EXPECT_EQ(reader.buffered_bytes(), std::string("30:postfix unfinished").size());
}

TEST(PolicySocketmap, EncodeNetstringRoundTrips) {
  const std::vector<std::string> payloads = {"",
                                             "a",
                                             ",",
                                             ":",
                                             "0:,",
                                             "OK secure match=a.example servername=hostname",
                                             "\0\r\n\xff"s,
                                             std::string(kPostfixMaxRequestBytes, 'x')};
  EXPECT_EQ(encode_netstring(""), "0:,");
  EXPECT_EQ(encode_netstring("hello world!"), "12:hello world!,");
  for (const std::string& payload : payloads) {
    SCOPED_TRACE(show(payload.substr(0, 40)));
    const Drained got = read_in_chunks(encode_netstring(payload), 1);
    EXPECT_EQ(got, (Drained{{payload}, std::nullopt}));
  }
}

TEST(PolicySocketmap, NetstringErrorCodes) {
  EXPECT_EQ(to_string(NetstringError::EmptyLength), "empty-length");
  EXPECT_EQ(to_string(NetstringError::BadLengthDigit), "bad-length-digit");
  EXPECT_EQ(to_string(NetstringError::LeadingZero), "leading-zero");
  EXPECT_EQ(to_string(NetstringError::TooLong), "too-long");
  EXPECT_EQ(to_string(NetstringError::MissingColon), "missing-colon");
  EXPECT_EQ(to_string(NetstringError::MissingComma), "missing-comma");
}

// ---- Requests ----------------------------------------------------------

struct RequestCase {
  std::string payload;
  std::string map_name;  // expected when `error` is empty
  std::string key;
  std::optional<RequestError> error;
};

TEST(PolicySocketmap, RequestTable) {
  using E = RequestError;
  const std::string name64(kMaxMapNameBytes, 'n');
  const std::string key512(kMaxKeyBytes, 'k');
  const std::vector<RequestCase> cases = {
      {"postfix example.com", "postfix", "example.com", std::nullopt},
      {"sts Example.COM", "sts", "Example.COM", std::nullopt},  // kept as given
      {"postfix [relay.example]:587", "postfix", "[relay.example]:587", std::nullopt},
      {"postfix example.com.", "postfix", "example.com.", std::nullopt},
      {"postfix b\xc3\xbc"
       "cher.example",
       "postfix",
       "b\xc3\xbc"
       "cher.example",
       std::nullopt},
      {"a b", "a", "b", std::nullopt},
      {"my-map_1.x b", "my-map_1.x", "b", std::nullopt},
      {name64 + " " + key512, name64, key512, std::nullopt},
      {"", "", "", E::NoSpace},
      {"postfix", "", "", E::NoSpace},
      {"postfix\texample.com", "", "", E::NoSpace},
      {" example.com", "", "", E::EmptyName},
      {"  example.com", "", "", E::EmptyName},
      {name64 + "n example.com", "", "", E::NameTooLong},
      {"post\x01"
       "fix example.com",
       "", "", E::BadNameByte},
      {"post\0fix example.com"s, "", "", E::BadNameByte},
      {"p\xc3\xa4 example.com", "", "", E::BadNameByte},
      {"\x7f example.com", "", "", E::BadNameByte},
      {"postfix ", "", "", E::EmptyKey},
      {"postfix " + key512 + "k", "", "", E::KeyTooLong},
      {"postfix  example.com", "", "", E::BadKeyByte},
      {"postfix example.com ", "", "", E::BadKeyByte},
      {"postfix example .com", "", "", E::BadKeyByte},
      {"postfix example.com\n", "", "", E::BadKeyByte},
      {"postfix example.com\r", "", "", E::BadKeyByte},
      {"postfix exa\0mple.com"s, "", "", E::BadKeyByte},
      {"postfix example.com\x7f", "", "", E::BadKeyByte},
      {"postfix \texample.com", "", "", E::BadKeyByte},
  };
  for (const RequestCase& c : cases) {
    SCOPED_TRACE("payload: " + show(c.payload.substr(0, 80)));
    const auto got = parse_request(c.payload);
    if (!c.error) {
      ASSERT_TRUE(got.has_value()) << to_string(got.error());
      EXPECT_EQ(got.value(), (SocketmapRequest{c.map_name, c.key}));
    } else {
      ASSERT_FALSE(got.has_value()) << "got " << got.value().map_name << " / " << got.value().key;
      EXPECT_EQ(to_string(got.error()), to_string(*c.error));
    }
  }
}

// ---- MTA-STS answer data -----------------------------------------------

const std::string kPolicyBody =
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mx1.example.com\r\n"
    "mx: *.example.net\r\n"
    "max_age: 86400\r\n";

StsPolicyFacts example_facts() {
  return {"example.com", split_policy_lines(kPolicyBody), {"mx1.example.com", "*.example.net"}};
}

const std::string kSecure = "secure match=mx1.example.com:.example.net servername=hostname";
const std::string kAttributes =
    "policy_type=sts policy_domain=example.com"
    " { policy_string = version: STSv1 }"
    " { policy_string = mode: enforce }"
    " { policy_string = mx: mx1.example.com }"
    " { policy_string = mx: *.example.net }"
    " { policy_string = max_age: 86400 }"
    " mx_host_pattern=mx1.example.com mx_host_pattern=*.example.net";

TEST(PolicySocketmap, SecureData) {
  const auto got = sts_secure_data(example_facts().mx_patterns);
  ASSERT_TRUE(got.has_value()) << to_string(got.error());
  EXPECT_EQ(got.value(), kSecure);
  const std::vector<std::string> one = {"mail.example.org"};
  EXPECT_EQ(sts_secure_data(one).value(), "secure match=mail.example.org servername=hostname");
}

TEST(PolicySocketmap, TlsrptAttributesForAMultiLinePolicy) {
  const auto got = tlsrpt_sts_attributes(example_facts(), std::nullopt);
  ASSERT_TRUE(got.has_value()) << to_string(got.error());
  EXPECT_EQ(got.value(), kAttributes);
}

TEST(PolicySocketmap, AnswerData) {
  const StsPolicyFacts facts = example_facts();
  EXPECT_EQ(sts_answer_data(facts, TlsrptAttributes::Omit).value(), kSecure);
  EXPECT_EQ(sts_answer_data(facts, TlsrptAttributes::Append).value(), kSecure + " " + kAttributes);
  EXPECT_EQ(sts_answer_data(facts, TlsrptAttributes::Append, ResultType::StsWebpkiInvalid).value(),
            kSecure + " " + kAttributes + " policy_failure=sts-webpki-invalid");
  const auto omitted = sts_answer_data(facts, TlsrptAttributes::Omit, ResultType::StsPolicyInvalid);
  ASSERT_FALSE(omitted.has_value());
  EXPECT_EQ(omitted.error(), AnswerError::FailureNeedsAttributes);
  // The whole reply, byte for byte.
  EXPECT_EQ(format_reply(SocketmapStatus::Ok, sts_answer_data(facts, TlsrptAttributes::Omit).value()),
            "64:OK " + kSecure + ",");
}

TEST(PolicySocketmap, NoPolicyAttributes) {
  EXPECT_EQ(tlsrpt_no_policy_attributes("example.com", std::nullopt).value(),
            "policy_type=no-policy-found policy_domain=example.com");
  EXPECT_EQ(tlsrpt_no_policy_attributes("example.com", ResultType::StsPolicyFetchError).value(),
            "policy_type=no-policy-found policy_domain=example.com policy_failure=sts-policy-fetch-error");
  EXPECT_EQ(tlsrpt_no_policy_attributes("x..example", std::nullopt).error(), AnswerError::BadPolicyDomain);
  EXPECT_EQ(tlsrpt_no_policy_attributes("example.com", ResultType::DaneRequired).error(),
            AnswerError::UnsupportedPolicyFailure);
}

TEST(PolicySocketmap, PolicyFailureTypes) {
  const std::vector<std::pair<ResultType, bool>> cases = {
      {ResultType::StsPolicyFetchError, true},   {ResultType::StsPolicyInvalid, true},
      {ResultType::StsWebpkiInvalid, true},      {ResultType::ValidationFailure, true},
      {ResultType::StartTlsNotSupported, false}, {ResultType::CertificateHostMismatch, false},
      {ResultType::CertificateExpired, false},   {ResultType::CertificateNotTrusted, false},
      {ResultType::TlsaInvalid, false},          {ResultType::DnssecInvalid, false},
      {ResultType::DaneRequired, false},
  };
  for (const auto& [type, accepted] : cases) {
    SCOPED_TRACE(std::string(to_string(type)));
    const auto got = tlsrpt_sts_attributes(example_facts(), type);
    ASSERT_EQ(got.has_value(), accepted);
    if (accepted) {
      EXPECT_EQ(got.value(), kAttributes + " policy_failure=" + std::string(to_string(type)));
    } else {
      EXPECT_EQ(got.error(), AnswerError::UnsupportedPolicyFailure);
    }
  }
}

// How one policy line is carried inside `{ policy_string = ... }`.
TEST(PolicySocketmap, PolicyLineTable) {
  struct Case {
    std::string line;
    std::string carried;  // "" when refused
  };
  const std::vector<Case> cases = {
      {"mode: enforce", "mode: enforce"},
      {"mode:\tenforce", "mode: enforce"},      // HTAB (WSP) as a space
      {"  mx: a.example \t", "mx: a.example"},  // Postfix trims inside braces
      {"ext: a=b,c", "ext: a=b,c"},
      {"ext: gr\xc3\xbc\xc3\x9f", "ext: gr\xc3\xbc\xc3\x9f"},  // UTF-8 extension value
      {"", ""},
      {" \t ", ""},
      {"ext: {x}", ""},
      {"ext: x}", ""},
      {"ext: {", ""},
      {"mode: enforce\n", ""},
      {"mode: enforce\r", ""},
      {"mode:\x01 enforce", ""},
      {"mode: enforce\x7f", ""},
      {"mode: \0enforce"s, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("line: " + show(c.line));
    StsPolicyFacts facts{"example.com", {c.line}, {}};
    const auto got = tlsrpt_sts_attributes(facts, std::nullopt);
    if (c.carried.empty()) {
      ASSERT_FALSE(got.has_value()) << got.value();
      EXPECT_EQ(got.error(), AnswerError::UnsafePolicyLine);
    } else {
      ASSERT_TRUE(got.has_value()) << to_string(got.error());
      EXPECT_EQ(got.value(),
                "policy_type=sts policy_domain=example.com { policy_string = " + c.carried + " }");
    }
  }
}

TEST(PolicySocketmap, SplitPolicyLines) {
  struct Case {
    std::string body;
    std::vector<std::string> lines;
  };
  const std::vector<Case> cases = {
      {"", {}},
      {"version: STSv1", {"version: STSv1"}},
      {"a: 1\nb: 2\n", {"a: 1", "b: 2"}},
      {"a: 1\r\nb: 2\r\n", {"a: 1", "b: 2"}},
      {"a: 1\r\nb: 2\nc: 3", {"a: 1", "b: 2", "c: 3"}},
      {"a: 1\n\n\r\n \t\n", {"a: 1"}},  // blank lines dropped
      {"a: 1\n\nb: 2", {"a: 1", "b: 2"}},
      {"a: 1\rb: 2\n", {"a: 1\rb: 2"}},  // a lone CR stays (and is refused later)
      {"a: 1\r", {"a: 1\r"}},            // no LF after it: not a line end
      {" a: 1 \n", {" a: 1 "}},          // kept as published
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("body: " + show(c.body));
    EXPECT_EQ(split_policy_lines(c.body), c.lines);
  }
}

TEST(PolicySocketmap, AnswerErrorTable) {
  using E = AnswerError;
  struct Case {
    std::string label;
    StsPolicyFacts facts;
    E error;
  };
  const std::vector<std::string> lines = {"version: STSv1"};
  const std::vector<std::string> mx = {"mx.example.com"};
  const std::string label63(63, 'a');
  const std::vector<Case> cases = {
      {"no mx", {"example.com", lines, {}}, E::NoMxPatterns},
      {"empty domain", {"", lines, mx}, E::BadPolicyDomain},
      {"trailing dot", {"example.com.", lines, mx}, E::BadPolicyDomain},
      {"empty label", {"example..com", lines, mx}, E::BadPolicyDomain},
      {"space", {"example.com x", lines, mx}, E::BadPolicyDomain},
      {"brace", {"example.com}", lines, mx}, E::BadPolicyDomain},
      {"underscore", {"ex_ample.com", lines, mx}, E::BadPolicyDomain},
      {"hyphen first", {"-example.com", lines, mx}, E::BadPolicyDomain},
      {"hyphen last", {"example-.com", lines, mx}, E::BadPolicyDomain},
      {"numeric", {"192.0.2.1", lines, mx}, E::BadPolicyDomain},
      {"literal", {"[192.0.2.1]", lines, mx}, E::BadPolicyDomain},
      {"label 64", {label63 + "a.example", lines, mx}, E::BadPolicyDomain},
      {"name 254",
       {label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b'), lines, mx},
       E::BadPolicyDomain},
      {"u-label",
       {"b\xc3\xbc"
        "cher.example",
        lines, mx},
       E::BadPolicyDomain},
      {"bare *", {"example.com", lines, {"*"}}, E::BadMxPattern},
      {"*.", {"example.com", lines, {"*."}}, E::BadMxPattern},
      {"inner *", {"example.com", lines, {"mx.*.example.com"}}, E::BadMxPattern},
      {"partial *", {"example.com", lines, {"mx*.example.com"}}, E::BadMxPattern},
      {"**", {"example.com", lines, {"*.*.example.com"}}, E::BadMxPattern},
      {"leading .", {"example.com", lines, {".example.com"}}, E::BadMxPattern},
      {"colon", {"example.com", lines, {"a.example:b.example"}}, E::BadMxPattern},
      {"empty", {"example.com", lines, {"mx.example.com", ""}}, E::BadMxPattern},
      {"space", {"example.com", lines, {"mx.example.com servername=x"}}, E::BadMxPattern},
      {"unsafe line", {"example.com", {"version: STSv1", "ext: }"}, mx}, E::UnsafePolicyLine},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    const auto got = sts_answer_data(c.facts, TlsrptAttributes::Append);
    ASSERT_FALSE(got.has_value()) << got.value();
    EXPECT_EQ(to_string(got.error()), to_string(c.error));
  }
}

TEST(PolicySocketmap, LongestValidNamesAreAccepted) {
  const std::string label63(63, 'a');
  const std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name253.size(), 253u);
  const StsPolicyFacts facts{
      name253, {"version: STSv1"}, {name253, "*." + std::string(61, 'c') + ".example"}};
  EXPECT_TRUE(sts_answer_data(facts, TlsrptAttributes::Append).has_value());
}

// The data never outgrows what Postfix reads.
TEST(PolicySocketmap, AnswerDataTooLong) {
  StsPolicyFacts facts{"example.com", {}, {}};
  const std::string pattern = "*." + std::string(60, 'm') + ".example.com";  // 74 bytes
  facts.mx_patterns.assign(kMaxOkDataBytes / 70, pattern);
  const auto secure = sts_secure_data(facts.mx_patterns);
  ASSERT_FALSE(secure.has_value());
  EXPECT_EQ(secure.error(), AnswerError::TooLong);
  // Fits without the attributes, not with them.
  facts.mx_patterns.resize(1000);
  for (const std::string& p : facts.mx_patterns) facts.policy_lines.push_back("mx: " + p);
  ASSERT_TRUE(sts_answer_data(facts, TlsrptAttributes::Omit).has_value());
  const auto appended = sts_answer_data(facts, TlsrptAttributes::Append);
  ASSERT_FALSE(appended.has_value());
  EXPECT_EQ(appended.error(), AnswerError::TooLong);
}

TEST(PolicySocketmap, AnswerErrorCodes) {
  EXPECT_EQ(to_string(AnswerError::BadPolicyDomain), "bad-policy-domain");
  EXPECT_EQ(to_string(AnswerError::NoMxPatterns), "no-mx-patterns");
  EXPECT_EQ(to_string(AnswerError::BadMxPattern), "bad-mx-pattern");
  EXPECT_EQ(to_string(AnswerError::UnsafePolicyLine), "unsafe-policy-line");
  EXPECT_EQ(to_string(AnswerError::UnsupportedPolicyFailure), "unsupported-policy-failure");
  EXPECT_EQ(to_string(AnswerError::FailureNeedsAttributes), "failure-needs-attributes");
  EXPECT_EQ(to_string(AnswerError::TooLong), "too-long");
  EXPECT_EQ(to_string(RequestError::NoSpace), "no-space");
  EXPECT_EQ(to_string(RequestError::BadKeyByte), "bad-key-byte");
}

// ---- Which answer ------------------------------------------------------

StoredPolicy stored_policy(Mode mode, std::vector<std::string> mx) {
  StoredPolicy p;
  p.domain = "example.com";
  p.txt_id = "1";
  p.policy.mode = mode;
  p.policy.mx = mx;
  p.policy.max_age = 86400;
  std::string raw = "version: STSv1\r\nmode: " + std::string(to_string(mode)) + "\r\n";
  for (const auto& m : mx) raw += "mx: " + m + "\r\n";
  p.raw = raw + "max_age: 86400\r\n";
  return p;
}

Resolution with_policy(Mode mode, PolicySource source = PolicySource::Cache) {
  Resolution r;
  r.domain = "example.com";
  r.source = source;
  r.policy = stored_policy(mode, {"mx1.example.com", "*.example.net"});
  return r;
}

Resolution without_policy(bool temporary, std::string_view reason) {
  Resolution r;
  r.domain = "example.com";
  r.temporary = temporary;
  r.reason = reason;
  return r;
}

struct AnswerCase {
  std::string name;
  Resolution resolution;
  NextHopView hop;
  SocketmapSettings settings;
  SocketmapAnswer expected;
};

TEST(PolicySocketmap, AnswerTable) {
  const NextHopView hosts{DaneCoverage::None, {"mx1.example.com", "a.example.net", "b.c.example.net"}};
  const NextHopView all_dane{DaneCoverage::All, {"mx1.example.com"}};
  const NextHopView some_dane{DaneCoverage::Some, {"mx1.example.com", "a.example.net"}};
  const NextHopView unknown{};
  const SocketmapSettings plain{};
  const SocketmapSettings strict{true, TlsrptAttributes::Omit};
  const SocketmapSettings off{false, TlsrptAttributes::Omit, Enforcement::Off};
  const SocketmapSettings strict_off{true, TlsrptAttributes::Omit, Enforcement::Off};
  Resolution unusable = with_policy(Mode::Enforce);  // a pattern `match=` cannot carry
  unusable.policy->policy.mx = {"mx1.example.com", "bad pattern"};
  const std::string secure_hosts = "secure match=mx1.example.com:a.example.net servername=hostname";
  const std::string secure_patterns = "secure match=mx1.example.com:.example.net servername=hostname";
  const std::vector<AnswerCase> cases = {
      // enforce: the wildcard becomes the one-label MX host it matches; the
      // two-label host is left out (Postfix < 3.10.5 would accept it).
      {"enforce", with_policy(Mode::Enforce), hosts, plain, {SocketmapStatus::Ok, secure_hosts, "enforce"}},
      {"enforce, MX unknown",
       with_policy(Mode::Enforce),
       unknown,
       plain,
       {SocketmapStatus::Ok, secure_patterns, "enforce"}},
      {"enforce, stale",
       with_policy(Mode::Enforce, PolicySource::Stale),
       hosts,
       plain,
       {SocketmapStatus::Ok, secure_hosts, "enforce"}},
      {"enforce, fetched",
       with_policy(Mode::Enforce, PolicySource::Fetched),
       hosts,
       plain,
       {SocketmapStatus::Ok, secure_hosts, "enforce"}},
      {"enforce, every MX has DANE",
       with_policy(Mode::Enforce),
       all_dane,
       plain,
       {SocketmapStatus::Ok, "dane-only", "dane-only"}},
      {"enforce, some MX have DANE",
       with_policy(Mode::Enforce),
       some_dane,
       plain,
       {SocketmapStatus::Ok, secure_hosts, "enforce"}},
      {"testing", with_policy(Mode::Testing), hosts, plain, {SocketmapStatus::NotFound, "", "testing"}},
      {"testing, DANE",
       with_policy(Mode::Testing),
       all_dane,
       plain,
       {SocketmapStatus::NotFound, "", "testing"}},
      {"testing, strict",
       with_policy(Mode::Testing),
       hosts,
       strict,
       {SocketmapStatus::Ok, secure_hosts, "enforce"}},
      {"none", with_policy(Mode::None), hosts, strict, {SocketmapStatus::NotFound, "", "mode-none"}},
      {"enforce, unusable",
       unusable,
       unknown,
       plain,
       {SocketmapStatus::Temp, "MTA-STS policy of example.com cannot be expressed: bad-mx-pattern",
        "unusable-policy"}},
      // The operator switched enforcement off for the domain: Postfix's own
      // default level, whatever the next hop, even for a policy that could
      // not be expressed (it blocks no mail the operator lets through).
      {"enforce, switched off",
       with_policy(Mode::Enforce),
       hosts,
       off,
       {SocketmapStatus::NotFound, "", "enforce-off"}},
      {"enforce, every MX has DANE, switched off",
       with_policy(Mode::Enforce),
       all_dane,
       off,
       {SocketmapStatus::NotFound, "", "enforce-off"}},
      {"enforce, unusable, switched off",
       unusable,
       unknown,
       off,
       {SocketmapStatus::NotFound, "", "enforce-off"}},
      {"testing, strict, switched off",
       with_policy(Mode::Testing),
       hosts,
       strict_off,
       {SocketmapStatus::NotFound, "", "enforce-off"}},
      {"testing, switched off",
       with_policy(Mode::Testing),
       hosts,
       off,
       {SocketmapStatus::NotFound, "", "testing"}},
      {"none, switched off",
       with_policy(Mode::None),
       hosts,
       off,
       {SocketmapStatus::NotFound, "", "mode-none"}},
      {"no policy, switched off",
       without_policy(false, "txt-missing"),
       hosts,
       off,
       {SocketmapStatus::NotFound, "", "no-policy"}},
      {"first discovery still running, switched off",
       without_policy(true, "deadline"),
       hosts,
       off,
       {SocketmapStatus::Temp, "MTA-STS policy discovery for example.com still running", "pending"}},
      {"no policy",
       without_policy(false, "txt-missing"),
       hosts,
       plain,
       {SocketmapStatus::NotFound, "", "no-policy"}},
      {"servfail, nothing cached",
       without_policy(true, "dns-servfail"),
       hosts,
       plain,
       {SocketmapStatus::NotFound, "", "no-policy"}},
      {"bogus, nothing cached",
       without_policy(true, "dnssec-bogus"),
       hosts,
       plain,
       {SocketmapStatus::NotFound, "", "no-policy"}},
      {"fetch timed out, nothing cached",
       without_policy(true, "timeout"),
       hosts,
       plain,
       {SocketmapStatus::NotFound, "", "no-policy"}},
      {"first discovery still running",
       without_policy(true, "deadline"),
       hosts,
       plain,
       {SocketmapStatus::Temp, "MTA-STS policy discovery for example.com still running", "pending"}},
      {"overloaded",
       without_policy(true, "overloaded"),
       hosts,
       plain,
       {SocketmapStatus::Temp, "MTA-STS policy discovery overloaded", "overloaded"}},
      {"stopping",
       without_policy(true, "stopping"),
       hosts,
       plain,
       {SocketmapStatus::Temp, "MTA-STS server stopping", "stopping"}},
  };
  for (const auto& c : cases)
    EXPECT_EQ(choose_socketmap_answer(c.resolution, c.hop, c.settings), c.expected) << c.name;
}

// Only an answer that enforces needs the next hop looked up.
TEST(PolicySocketmap, EnforcesTable) {
  struct Case {
    std::string name;
    Resolution resolution;
    SocketmapSettings settings;
    bool enforces;
  };
  const SocketmapSettings off{false, TlsrptAttributes::Omit, Enforcement::Off};
  const std::vector<Case> cases = {
      {"enforce", with_policy(Mode::Enforce), {}, true},
      {"enforce, switched off", with_policy(Mode::Enforce), off, false},
      {"testing", with_policy(Mode::Testing), {}, false},
      {"testing, strict", with_policy(Mode::Testing), {true, TlsrptAttributes::Omit}, true},
      {"testing, strict, switched off",
       with_policy(Mode::Testing),
       {true, TlsrptAttributes::Omit, Enforcement::Off},
       false},
      {"none", with_policy(Mode::None), {}, false},
      {"no policy", without_policy(false, "txt-missing"), {}, false},
  };
  for (const auto& c : cases) EXPECT_EQ(socketmap_enforces(c.resolution, c.settings), c.enforces) << c.name;
}

TEST(PolicySocketmap, AnswerWithAttributesKeepsThePolicysOwnPatterns) {
  const NextHopView hosts{DaneCoverage::None, {"mx1.example.com", "a.example.net"}};
  const auto answer =
      choose_socketmap_answer(with_policy(Mode::Enforce), hosts, {false, TlsrptAttributes::Append});
  EXPECT_EQ(answer.status, SocketmapStatus::Ok);
  EXPECT_EQ(
      answer.text,
      "secure match=mx1.example.com:a.example.net servername=hostname policy_type=sts "
      "policy_domain=example.com { policy_string = version: STSv1 } { policy_string = mode: enforce } "
      "{ policy_string = mx: mx1.example.com } { policy_string = mx: *.example.net } "
      "{ policy_string = max_age: 86400 } mx_host_pattern=mx1.example.com mx_host_pattern=*.example.net");
}

// A policy line the attributes cannot carry costs the report, not the mail.
TEST(PolicySocketmap, AnUncarriableLineDropsTheAttributesNotTheAnswer) {
  Resolution r = with_policy(Mode::Enforce);
  r.policy->raw += "x-note: {braces}\r\n";
  const auto answer = choose_socketmap_answer(r, {}, {false, TlsrptAttributes::Append});
  EXPECT_EQ(answer, (SocketmapAnswer{SocketmapStatus::Ok,
                                     "secure match=mx1.example.com:.example.net servername=hostname",
                                     "enforce-no-attributes"}));
}

TEST(PolicySocketmap, MatchListForWildcards) {
  const std::vector<std::string> patterns{"*.example.net", "mx.example.org", "*.unused.example"};
  EXPECT_EQ(
      match_list_for(patterns, std::vector<std::string>{"b.example.net", "a.example.net", "x.y.example.net",
                                                        "b.example.net", "mx.example.org"}),
      (std::vector<std::string>{"b.example.net", "a.example.net", "mx.example.org"}));
  // MX unknown: the patterns as they are.
  EXPECT_EQ(match_list_for(patterns, {}), patterns);
  // No host is allowed: a name no certificate carries (the bare pattern would
  // let Postfix before 3.10.5 accept a deeper host).
  EXPECT_EQ(match_list_for(std::vector<std::string>{"*.example.net"},
                           std::vector<std::string>{"mx.other.example", "a.b.example.net"}),
            (std::vector<std::string>{"mx-not-in-policy.invalid"}));
  // Exact patterns stay even when no host matches them (Postfix fails those hosts).
  EXPECT_EQ(match_list_for(std::vector<std::string>{"*.example.net", "mx.example.org"},
                           std::vector<std::string>{"mx.other.example"}),
            (std::vector<std::string>{"mx.example.org"}));
  // Upper-case MX names are listed in lower case.
  EXPECT_EQ(
      match_list_for(std::vector<std::string>{"*.example.net"}, std::vector<std::string>{"MX.Example.NET"}),
      (std::vector<std::string>{"mx.example.net"}));
}

TlsaAnswer tlsa(DnsStatus status, DnsSecurity security, std::uint8_t usage = 3) {
  TlsaAnswer a;
  a.status = status;
  a.security = security;
  if (status == DnsStatus::Ok)
    a.records.push_back(TlsaRecord{usage, 1, 1, std::vector<unsigned char>(32, 0x5a)});
  return a;
}

TEST(PolicySocketmap, DaneCoverageTable) {
  const auto secure = tlsa(DnsStatus::Ok, DnsSecurity::Secure);
  const auto insecure = tlsa(DnsStatus::Ok, DnsSecurity::Insecure);
  const auto pkix = tlsa(DnsStatus::Ok, DnsSecurity::Secure, 1);  // not usable for SMTP (RFC 7672 §3.1.3)
  const auto none = tlsa(DnsStatus::NxDomain, DnsSecurity::Secure);
  const auto failed = tlsa(DnsStatus::ServFail, DnsSecurity::Insecure);
  const auto bogus = tlsa(DnsStatus::Ok, DnsSecurity::Bogus);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{secure, secure}), DaneCoverage::All);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{secure, none}), DaneCoverage::Some);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{secure, failed}), DaneCoverage::Some);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{secure, bogus}), DaneCoverage::Some);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{insecure, none}), DaneCoverage::None);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{pkix}), DaneCoverage::None);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{none, failed}), DaneCoverage::Unknown);
  EXPECT_EQ(dane_coverage(std::vector<TlsaAnswer>{}), DaneCoverage::None);
}

}  // namespace
}  // namespace mtasts::policy
