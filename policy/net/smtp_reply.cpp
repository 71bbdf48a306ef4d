// SMTP reply parsing, RFC 5321 §4.2. The reader works line by line so a
// hostile peer can make it hold at most one bounded line and a bounded number
// of lines, whatever it sends.
#include "policy/net/smtp_reply.h"
#include "policy/ascii.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace mtasts::policy::net {
namespace {

// RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39.
int parse_code(std::string_view line) {
  if (line.size() < 3 || !is_ascii_digit(line[0]) || !is_ascii_digit(line[1]) || !is_ascii_digit(line[2]))
    return 0;
  if (line[0] < '2' || line[0] > '5' || line[1] > '5') return 0;
  return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

bool iequals(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

}  // namespace

void SmtpReplyReader::fail(std::string error) {
  state_ = ReplyState::Invalid;
  error_ = std::move(error);
}

void SmtpReplyReader::finish_line() {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  const int code = parse_code(line_);
  if (code == 0) return fail("bad-code");
  if (!reply_.lines.empty() && code != reply_.code) return fail("mixed-codes");
  if (reply_.lines.size() >= kMaxReplyLines) return fail("too-many-lines");
  bool last = true;
  if (line_.size() > 3) {
    if (line_[3] == '-') {
      last = false;
    } else if (line_[3] != ' ') {
      return fail("bad-separator");
    }
  }
  reply_.code = code;
  reply_.lines.push_back(line_.size() > 4 ? line_.substr(4) : std::string{});
  line_.clear();
  if (last) state_ = ReplyState::Complete;
}

std::size_t SmtpReplyReader::feed(std::string_view input) {
  std::size_t used = 0;
  while (state_ == ReplyState::Incomplete && used < input.size()) {
    const char c = input[used++];
    if (c == '\0') {
      fail("nul-byte");
    } else if (c == '\n') {
      finish_line();
    } else if (line_.size() + 2 > kMaxReplyLineBytes) {  // room for this byte and the LF
      fail("line-too-long");
    } else {
      line_.push_back(c);
    }
  }
  return used;
}

ParsedReply parse_reply(std::string_view text) {
  SmtpReplyReader reader;
  ParsedReply parsed;
  parsed.consumed = reader.feed(text);
  parsed.state = reader.state();
  parsed.reply = reader.reply();
  parsed.error = reader.error();
  return parsed;
}

bool has_ehlo_keyword(const SmtpReply& ehlo_reply, std::string_view keyword) {
  for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
    const std::string_view line = ehlo_reply.lines[i];
    const std::string_view word = line.substr(0, line.find_first_of(" ="));
    if (iequals(word, keyword)) return true;
  }
  return false;
}

}  // namespace mtasts::policy::net
