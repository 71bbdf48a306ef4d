// SMTP reply parsing for the STARTTLS prober: RFC 5321 §4.2 (reply lines
// "NNN-text" continue a reply, "NNN text" or "NNN" end it; every line of one
// reply carries the same code; codes are 2yz..5yz with a second digit 0..5)
// and §4.1.1.1 (EHLO keywords: the first word of every line after the first).
//
// Untrusted input from a remote server, parsed strictly and with bounds: at
// most kMaxReplyLineBytes per line (terminator included; RFC 5321 §4.5.3.1.5
// allows 512, we tolerate more) and kMaxReplyLines per reply. Lines end with
// CRLF; a bare LF is accepted as a terminator (as Postfix does) and the CR
// before it is dropped. A NUL byte anywhere is an error. Pure code, no I/O;
// an SmtpReplyReader is not shared between threads.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::policy::net {

inline constexpr std::size_t kMaxReplyLineBytes = 4096;
inline constexpr std::size_t kMaxReplyLines = 100;

struct SmtpReply {
  int code = 0;                    // 200..559
  std::vector<std::string> lines;  // the text after "NNN-" / "NNN " of each line, no terminator
};

enum class ReplyState {
  Incomplete,  // more bytes needed (no final line yet)
  Complete,    // reply() holds one whole reply
  Invalid,     // error() says why; the reader takes no more bytes
};

// Reads one reply from a byte stream fed in arbitrary pieces.
class SmtpReplyReader {
 public:
  // Consumes bytes up to the end of the reply or up to the byte that made it
  // invalid, and returns how many were consumed; the bytes after a complete
  // reply are left to the caller. Consumes nothing once Complete or Invalid.
  std::size_t feed(std::string_view input);

  ReplyState state() const { return state_; }
  // The reply so far; whole when state() is Complete.
  const SmtpReply& reply() const { return reply_; }
  // When Invalid: "line-too-long", "too-many-lines", "nul-byte", "bad-code",
  // "bad-separator" or "mixed-codes". Empty otherwise.
  const std::string& error() const { return error_; }

 private:
  void finish_line();
  void fail(std::string error);

  std::string line_;  // the current line, without its terminator
  SmtpReply reply_;
  ReplyState state_ = ReplyState::Incomplete;
  std::string error_;
};

// Parses a whole reply held in `text` (tests and one-shot callers). The state
// is Incomplete when `text` ends before the final line.
struct ParsedReply {
  ReplyState state = ReplyState::Incomplete;
  SmtpReply reply;
  std::string error;
  std::size_t consumed = 0;
};
ParsedReply parse_reply(std::string_view text);

// True when the EHLO reply lists `keyword` (compared case-insensitively,
// RFC 5321 §2.4). The first line is the server's name and greeting, never a
// keyword; a keyword ends at the first space or "=".
bool has_ehlo_keyword(const SmtpReply& ehlo_reply, std::string_view keyword);

}  // namespace mtasts::policy::net
