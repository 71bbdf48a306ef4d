// libFuzzer target: the SMTP reply reader of the TLS prober (RFC 5321 §4.2)
// and the EHLO keyword test (§4.1.1.1) on the bytes a server sends.
// Checks the header contract of each result; that feeding the same bytes in
// pieces gives what one piece gives; that a complete reply, rendered again as
// reply lines, parses back to itself; and has_ehlo_keyword against the rule.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "policy/net/smtp_reply.h"

namespace {

using mtasts::policy::net::kMaxReplyLineBytes;
using mtasts::policy::net::kMaxReplyLines;
using mtasts::policy::net::ParsedReply;
using mtasts::policy::net::ReplyState;
using mtasts::policy::net::SmtpReply;
using mtasts::policy::net::SmtpReplyReader;

void require(bool condition) {
  if (!condition) std::abort();
}

bool valid_code(int code) {
  const int first = code / 100, second = code / 10 % 10;
  return first >= 2 && first <= 5 && second <= 5;
}

void check_parsed(std::string_view input, const ParsedReply& parsed) {
  require(parsed.consumed <= input.size());
  static const std::set<std::string> kErrors{"line-too-long", "too-many-lines", "nul-byte",
                                             "bad-code",      "bad-separator",  "mixed-codes"};
  switch (parsed.state) {
    case ReplyState::Incomplete:
      require(parsed.consumed == input.size() && parsed.error.empty());
      require(input.find('\0') == std::string_view::npos);
      return;
    case ReplyState::Invalid:
      require(kErrors.contains(parsed.error) && parsed.consumed > 0);
      require((parsed.error == "nul-byte") == (input[parsed.consumed - 1] == '\0'));
      return;
    case ReplyState::Complete:
      break;
  }
  require(parsed.error.empty() && parsed.consumed > 0 && input[parsed.consumed - 1] == '\n');
  require(valid_code(parsed.reply.code));
  require(!parsed.reply.lines.empty() && parsed.reply.lines.size() <= kMaxReplyLines);
  for (const std::string& line : parsed.reply.lines) {
    require(line.size() + 4 < kMaxReplyLineBytes);
    require(line.find('\n') == std::string::npos && line.find('\0') == std::string::npos);
  }
}

// The same bytes in pieces whose sizes the bytes themselves pick, as recv()
// might deliver them; the reader must not care where the pieces end.
ParsedReply parse_in_pieces(std::string_view input) {
  SmtpReplyReader reader;
  ParsedReply parsed;
  std::size_t pos = 0;
  while (pos < input.size() && reader.state() == ReplyState::Incomplete) {
    const std::size_t piece = static_cast<unsigned char>(input[pos]) % 7 + 1;
    const std::string_view chunk = input.substr(pos, piece);
    const std::size_t used = reader.feed(chunk);
    require(used <= chunk.size());
    require(used == chunk.size() || reader.state() != ReplyState::Incomplete);
    parsed.consumed += used;
    pos += chunk.size();
  }
  // A finished reader takes nothing more.
  if (reader.state() != ReplyState::Incomplete) require(reader.feed("250 more\r\n") == 0);
  parsed.state = reader.state();
  parsed.reply = reader.reply();
  parsed.error = reader.error();
  return parsed;
}

void require_same(const ParsedReply& a, const ParsedReply& b) {
  require(a.state == b.state && a.error == b.error && a.consumed == b.consumed);
  if (a.state == ReplyState::Complete) {
    require(a.reply.code == b.reply.code && a.reply.lines == b.reply.lines);
  }
}

// Bare LF unless the text itself ends in CR (the reader drops one CR before
// the LF): never longer than the line it came from, so the line limit holds.
std::string render(const SmtpReply& reply) {
  std::string text;
  for (std::size_t i = 0; i < reply.lines.size(); ++i) {
    const std::string& line = reply.lines[i];
    const bool last = i + 1 == reply.lines.size();
    const bool ends_in_cr = !line.empty() && line.back() == '\r';
    text += std::to_string(reply.code) + (last ? " " : "-") + line + (ends_in_cr ? "\r\n" : "\n");
  }
  return text;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string flip_case(std::string_view word) {
  std::string out(word);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// RFC 5321 §4.1.1.1: the keyword is the first word of each line after the
// first, compared without regard to ASCII case.
bool reference_has_keyword(const SmtpReply& reply, std::string_view keyword) {
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    const std::string_view line = reply.lines[i];
    const std::string_view word = line.substr(0, line.find_first_of(" ="));
    if (word.size() != keyword.size()) continue;
    bool equal = true;
    for (std::size_t k = 0; k < word.size() && equal; ++k) {
      equal = ascii_lower(word[k]) == ascii_lower(keyword[k]);
    }
    if (equal) return true;
  }
  return false;
}

void check_keywords(const SmtpReply& reply) {
  using mtasts::policy::net::has_ehlo_keyword;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    const std::string_view line = reply.lines[i];
    const std::string_view word = line.substr(0, line.find_first_of(" ="));
    require(has_ehlo_keyword(reply, word));
    require(has_ehlo_keyword(reply, flip_case(word)));
  }
  for (const std::string_view keyword : {"STARTTLS", "starttls", "SIZE", "PIPELINING", "STARTTLS "}) {
    require(has_ehlo_keyword(reply, keyword) == reference_has_keyword(reply, keyword));
  }
  if (!reply.lines.empty()) {
    const std::string_view first = reply.lines.front();
    const std::string_view greeting_word = first.substr(0, first.find_first_of(" ="));
    require(has_ehlo_keyword(reply, greeting_word) == reference_has_keyword(reply, greeting_word));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using mtasts::policy::net::parse_reply;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ParsedReply whole = parse_reply(input);
  check_parsed(input, whole);
  require_same(whole, parse_in_pieces(input));

  // Replies one after another on the same connection, as the prober reads
  // them (the bytes after a complete reply start the next one).
  std::string_view rest = input;
  for (int reply_count = 0; reply_count < 8; ++reply_count) {
    const ParsedReply parsed = parse_reply(rest);
    check_parsed(rest, parsed);
    if (parsed.state != ReplyState::Complete) break;
    const std::string rendered = render(parsed.reply);
    const ParsedReply again = parse_reply(rendered);
    require(again.state == ReplyState::Complete && again.consumed == rendered.size());
    require(again.reply.code == parsed.reply.code && again.reply.lines == parsed.reply.lines);
    check_keywords(parsed.reply);
    rest.remove_prefix(parsed.consumed);
  }
  return 0;
}
