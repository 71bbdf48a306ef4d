// The RFC 8460 §5.3 report e-mail.
//
// Base64 is written here rather than taken from OpenSSL: the pure core links
// no crypto library, and RFC 2045 §6.8 encoding is a dozen lines.
#include "policy/tlsrpt_mail.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ascii.h"

namespace mtasts::policy {
namespace {

constexpr std::size_t kFoldWidth = 78;    // RFC 5322 §2.1.1: lines SHOULD stay within 78 characters
constexpr std::size_t kBase64Line = 76;   // RFC 2045 §6.8: encoded lines at most 76 characters
constexpr std::size_t kMaxBoundary = 70;  // RFC 2046 §5.1.1
constexpr std::string_view kCrlf = "\r\n";

std::optional<Error> invalid(std::string_view field, std::string_view why) {
  return Error{"mail-invalid-field", std::string(field) + ": " + std::string(why)};
}

// Anything outside printable US-ASCII could end a header line (CR, LF), cut
// a C string (NUL) or need an encoding (8-bit): refused rather than cleaned.
std::optional<Error> check_text(std::string_view field, std::string_view value) {
  if (value.empty()) return invalid(field, "empty");
  if (value.size() > kReportMailMaxField) {
    return invalid(field, "longer than " + std::to_string(kReportMailMaxField) + " octets");
  }
  for (const char c : value) {
    if (!is_ascii_printable(c)) return invalid(field, "control or non-ASCII character");
  }
  return std::nullopt;
}

// An addr-spec (or the inside of a msg-id) written bare: "local@domain" as
// one token, with nothing that would start a display name, a second address,
// group syntax or a quoted local part.
std::optional<Error> check_address(std::string_view field, std::string_view value) {
  const auto at = value.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == value.size()) {
    return invalid(field, "not of the form local@domain");
  }
  if (value.find_first_of(" <>,;\"") != std::string_view::npos) {
    return invalid(field, "holds white space or one of < > , ; \"");
  }
  return std::nullopt;
}

// RFC 2046 §5.1.1 bchars.
bool is_bchar(char c) {
  return is_ascii_alnum(c) || std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

std::optional<Error> check_boundary(std::string_view boundary) {
  if (boundary.size() > kMaxBoundary || boundary.back() == ' ') {
    return invalid("boundary", "not 1-70 characters ending in a non-space");
  }
  for (const char c : boundary) {
    if (!is_bchar(c)) return invalid("boundary", "character outside RFC 2046 bchars");
  }
  return std::nullopt;
}

struct TextField {
  std::string_view name;
  const std::string ReportMail::*member;
};

constexpr std::array<TextField, 9> kTextFields{{
    {"from", &ReportMail::from},
    {"to", &ReportMail::to},
    {"policy_domain", &ReportMail::policy_domain},
    {"submitter", &ReportMail::submitter},
    {"report_id", &ReportMail::report_id},
    {"file_name", &ReportMail::file_name},
    {"date", &ReportMail::date},
    {"message_id", &ReportMail::message_id},
    {"boundary", &ReportMail::boundary},
}};

constexpr std::array<TextField, 3> kAddressFields{{
    {"from", &ReportMail::from},
    {"to", &ReportMail::to},
    {"message_id", &ReportMail::message_id},
}};

std::optional<Error> check_fields(const ReportMail& mail) {
  for (const auto& field : kTextFields) {
    if (auto error = check_text(field.name, mail.*field.member)) return error;
  }
  for (const auto& field : kAddressFields) {
    if (auto error = check_address(field.name, mail.*field.member)) return error;
  }
  if (mail.file_name.find_first_of("\"\\") != std::string::npos) {
    return invalid("file_name", "holds '\"' or '\\'");
  }
  if (mail.gz_report.empty()) return invalid("gz_report", "empty");
  return check_boundary(mail.boundary);
}

// The value cut where a CRLF may go: before the last space of each run of
// spaces (so that no folded line is white space only, RFC 5322 §3.2.2),
// outside quoted-strings in a structured value (folding inside one is legal
// but trips simple MIME parsers).
std::vector<std::string_view> fold_words(std::string_view value, bool structured) {
  std::vector<std::string_view> words;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (structured && value[i] == '"') quoted = !quoted;
    const bool run_ends = i + 1 < value.size() && value[i + 1] != ' ';
    if (value[i] == ' ' && run_ends && !quoted && i > start) {
      words.push_back(value.substr(start, i - start));
      start = i;
    }
  }
  words.push_back(value.substr(start));
  return words;
}

// "Name: value" CRLF, folded (RFC 5322 §2.2.3: CRLF inserted before a space)
// where a line would pass kFoldWidth; a longer word keeps a line of its own.
void put_header(std::string& out, std::string_view name, std::string_view value, bool structured = true) {
  std::size_t line = name.size() + 2;
  out.append(name).append(": ");
  bool first = true;
  for (const auto word : fold_words(value, structured)) {
    if (!first && line + word.size() > kFoldWidth) {
      out.append(kCrlf);
      line = 0;
    }
    out.append(word);
    line += word.size();
    first = false;
  }
  out.append(kCrlf);
}

std::string base64_lines(std::string_view data) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string encoded;
  encoded.reserve((data.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, data.size() - i);
    std::uint32_t bits = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      bits = (bits << 8) | (k < n ? static_cast<unsigned char>(data[i + k]) : 0U);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      encoded.push_back(k <= n ? kAlphabet[(bits >> (18 - 6 * k)) & 0x3f] : '=');
    }
  }
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); i += kBase64Line) {
    out.append(encoded, i, kBase64Line).append(kCrlf);
  }
  return out;
}

std::string top_headers(const ReportMail& mail) {
  std::string out;
  put_header(out, "From", mail.from);
  put_header(out, "To", mail.to);
  put_header(out, "Subject",
             "Report Domain: " + mail.policy_domain + " Submitter: " + mail.submitter + " Report-ID: <" +
                 mail.report_id + ">",
             /*structured=*/false);
  put_header(out, "Date", mail.date, /*structured=*/false);
  put_header(out, "Message-ID", "<" + mail.message_id + ">");
  put_header(out, "MIME-Version", "1.0");
  put_header(out, "TLS-Report-Domain", mail.policy_domain);
  put_header(out, "TLS-Report-Submitter", mail.submitter);
  put_header(out, "TLS-Required", "No");
  put_header(out, "Auto-Submitted", "auto-generated");
  put_header(out, "Content-Type",
             "multipart/report; report-type=\"tlsrpt\"; boundary=\"" + mail.boundary + "\"");
  return out;
}

std::string text_part(const ReportMail& mail) {
  std::string out;
  put_header(out, "Content-Type", "text/plain; charset=us-ascii");
  put_header(out, "Content-Transfer-Encoding", "7bit");
  out.append(kCrlf);
  out.append("This is an aggregate TLS report (RFC 8460, SMTP TLS Reporting).\r\n\r\n");
  out.append("Policy domain: ").append(mail.policy_domain).append(kCrlf);
  out.append("Submitter: ").append(mail.submitter).append(kCrlf);
  out.append("Report-ID: <").append(mail.report_id).append(">\r\n\r\n");
  out.append("The report is attached as gzip-compressed JSON (application/tlsrpt+gzip).\r\n");
  return out;
}

std::string report_part(const ReportMail& mail) {
  std::string out;
  put_header(out, "Content-Type", "application/tlsrpt+gzip; name=\"" + mail.file_name + "\"");
  put_header(out, "Content-Transfer-Encoding", "base64");
  put_header(out, "Content-Disposition", "attachment; filename=\"" + mail.file_name + "\"");
  out.append(kCrlf);
  out.append(base64_lines(mail.gz_report));
  return out;
}

}  // namespace

Result<std::string> compose_report_mail(const ReportMail& mail) {
  if (auto error = check_fields(mail)) return *error;
  const std::string parts[] = {text_part(mail), report_part(mail)};
  for (const auto& part : parts) {
    if (part.find(mail.boundary) != std::string::npos) return *invalid("boundary", "occurs in a part");
  }
  const std::string delimiter = "--" + mail.boundary;
  std::string out = top_headers(mail);
  out.append(kCrlf);
  out.append("This is a multi-part message in MIME format.\r\n");
  for (const auto& part : parts) out.append(delimiter).append(kCrlf).append(part);
  out.append(delimiter).append("--\r\n");
  return out;
}

}  // namespace mtasts::policy
