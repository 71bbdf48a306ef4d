// SMTP reply parser (RFC 5321 §4.2) against well-formed and hostile input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/net/smtp_reply.h"

namespace mtasts::policy::net {
namespace {

using namespace std::string_literals;

struct ReplyCase {
  std::string name;
  std::string input;
  ReplyState state;
  int code;                        // when Complete
  std::vector<std::string> lines;  // when Complete
  std::string error;               // when Invalid
  std::size_t consumed;            // bytes taken from input
};

const std::string kLongLine = "250 " + std::string(kMaxReplyLineBytes - 6, 'x') + "\r\n";
const std::string kTooLong = "250 " + std::string(kMaxReplyLineBytes - 5, 'x') + "\r\n";

std::string many_lines(std::size_t count) {
  std::string text;
  for (std::size_t i = 1; i < count; ++i) text += "250-X" + std::to_string(i) + "\r\n";
  return text + "250 END\r\n";
}

const std::vector<ReplyCase> kCases = {
    {"single", "220 mx.example ESMTP\r\n", ReplyState::Complete, 220, {"mx.example ESMTP"}, "", 22},
    {"code only", "250\r\n", ReplyState::Complete, 250, {""}, "", 5},
    {"empty text", "250 \r\n", ReplyState::Complete, 250, {""}, "", 6},
    {"multi-line",
     "250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
     ReplyState::Complete,
     250,
     {"mx.example", "PIPELINING", "STARTTLS"},
     "",
     46},
    {"continuation code only", "220-\r\n220 ok\r\n", ReplyState::Complete, 220, {"", "ok"}, "", 14},
    {"bare LF", "250-a\n250 b\n", ReplyState::Complete, 250, {"a", "b"}, "", 12},
    {"bytes after the reply stay", "220 hi\r\n250 injected\r\n", ReplyState::Complete, 220, {"hi"}, "", 8},
    {"4xx",
     "454 4.7.0 TLS not available\r\n",
     ReplyState::Complete,
     454,
     {"4.7.0 TLS not available"},
     "",
     29},
    {"longest line allowed",
     kLongLine,
     ReplyState::Complete,
     250,
     {std::string(kMaxReplyLineBytes - 6, 'x')},
     "",
     kMaxReplyLineBytes},
    {"max lines",
     many_lines(kMaxReplyLines),
     ReplyState::Complete,
     250,
     {},
     "",
     many_lines(kMaxReplyLines).size()},
    // Incomplete: no final line (yet).
    {"missing final line", "250-a\r\n250-b\r\n", ReplyState::Incomplete, 0, {}, "", 14},
    {"no terminator", "220 hello", ReplyState::Incomplete, 0, {}, "", 9},
    {"empty input", "", ReplyState::Incomplete, 0, {}, "", 0},
    // Hostile or malformed.
    {"line too long", kTooLong, ReplyState::Invalid, 0, {}, "line-too-long", kMaxReplyLineBytes},
    {"endless line",
     std::string(100000, '2'),
     ReplyState::Invalid,
     0,
     {},
     "line-too-long",
     kMaxReplyLineBytes},
    {"too many lines",
     many_lines(kMaxReplyLines + 1),
     ReplyState::Invalid,
     0,
     {},
     "too-many-lines",
     many_lines(kMaxReplyLines + 1).size()},
    {"mixed codes", "250-a\r\n251 b\r\n", ReplyState::Invalid, 0, {}, "mixed-codes", 14},
    {"NUL in text", "220 a\0b\r\n"s, ReplyState::Invalid, 0, {}, "nul-byte", 6},
    {"NUL first", "\0"s, ReplyState::Invalid, 0, {}, "nul-byte", 1},
    {"not a code", "HTTP/1.1 400 Bad\r\n", ReplyState::Invalid, 0, {}, "bad-code", 18},
    {"short code", "25\r\n", ReplyState::Invalid, 0, {}, "bad-code", 4},
    {"code 600", "600 x\r\n", ReplyState::Invalid, 0, {}, "bad-code", 7},
    {"code 170", "170 x\r\n", ReplyState::Invalid, 0, {}, "bad-code", 7},
    {"second digit 6", "260 x\r\n", ReplyState::Invalid, 0, {}, "bad-code", 7},
    {"bad separator", "250+x\r\n", ReplyState::Invalid, 0, {}, "bad-separator", 7},
    {"empty line", "\r\n", ReplyState::Invalid, 0, {}, "bad-code", 2},
};

TEST(SmtpReplyTest, TableOfReplies) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const ParsedReply parsed = parse_reply(c.input);
    EXPECT_EQ(parsed.state, c.state) << parsed.error;
    EXPECT_EQ(parsed.consumed, c.consumed);
    EXPECT_EQ(parsed.error, c.error);
    if (c.state == ReplyState::Complete) {
      EXPECT_EQ(parsed.reply.code, c.code);
      if (!c.lines.empty()) {
        EXPECT_EQ(parsed.reply.lines, c.lines);
      }
    }
  }
}

// Any split of the input into pieces gives the same reply as one piece.
TEST(SmtpReplyTest, FeedingByteByByteMatchesOneShot) {
  const std::string input = "250-mx.example\r\n250-SIZE 100\n250 STARTTLS\r\n250 next\r\n";
  SmtpReplyReader reader;
  std::size_t used = 0;
  for (std::size_t i = 0; i < input.size() && reader.state() == ReplyState::Incomplete; ++i) {
    used += reader.feed(std::string_view(input).substr(i, 1));
  }
  ASSERT_EQ(reader.state(), ReplyState::Complete);
  EXPECT_EQ(used, input.size() - 10);
  EXPECT_EQ(reader.reply().lines, (std::vector<std::string>{"mx.example", "SIZE 100", "STARTTLS"}));
  EXPECT_EQ(reader.feed("250 more\r\n"), 0u);  // a finished reader takes nothing
}

TEST(SmtpReplyTest, InvalidReaderTakesNothingMore) {
  SmtpReplyReader reader;
  EXPECT_EQ(reader.feed("xyz\r\n"), 5u);
  EXPECT_EQ(reader.state(), ReplyState::Invalid);
  EXPECT_EQ(reader.feed("250 ok\r\n"), 0u);
  EXPECT_EQ(reader.error(), "bad-code");
}

struct KeywordCase {
  std::vector<std::string> lines;
  bool has_starttls;
};

TEST(SmtpReplyTest, EhloKeywords) {
  const std::vector<KeywordCase> cases = {
      {{"mx.example", "STARTTLS"}, true},
      {{"mx.example", "starttls"}, true},
      {{"mx.example", "StartTls"}, true},
      {{"mx.example", "SIZE 1000", "STARTTLS", "8BITMIME"}, true},
      {{"mx.example", "STARTTLS extra"}, true},
      {{"STARTTLS"}, false},  // the first line is the server's name
      {{"mx.example STARTTLS"}, false},
      {{"mx.example", "STARTTLSX"}, false},
      {{"mx.example", "XSTARTTLS"}, false},
      {{"mx.example", "AUTH=STARTTLS"}, false},
      {{"mx.example", " STARTTLS"}, false},
      {{"mx.example", "SIZE STARTTLS"}, false},
      {{}, false},
  };
  for (const auto& c : cases) {
    SmtpReply reply;
    reply.code = 250;
    reply.lines = c.lines;
    std::string joined;
    for (const auto& line : c.lines) joined += "[" + line + "]";
    EXPECT_EQ(has_ehlo_keyword(reply, "STARTTLS"), c.has_starttls) << joined;
  }
}

}  // namespace
}  // namespace mtasts::policy::net
