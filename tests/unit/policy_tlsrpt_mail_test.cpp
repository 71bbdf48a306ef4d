// compose_report_mail: the RFC 8460 §5.3 report e-mail, byte for byte.
#include "policy/tlsrpt_mail.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "printable.h"

namespace mtasts::policy {
namespace {

using mtasts::testing::printable;

// `gzip -n </dev/null`: a 20-byte gzip member, binary on purpose.
const std::string kGz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);

ReportMail example_mail() {
  ReportMail m;
  m.from = "tlsrpt-noreply@mx.example.net";
  m.to = "tlsrpt@example.com";
  m.policy_domain = "example.com";
  m.submitter = "mx.example.net";
  m.report_id = "2026-12-05.example.com@mx.example.net";
  m.file_name = "mx.example.net!example.com!1796428800!1796515199.json.gz";
  m.gz_report = kGz;
  m.date = "Sun, 06 Dec 2026 00:10:00 +0000";
  m.message_id = "2026-12-05.example.com.1@mx.example.net";
  m.boundary = "tlsrpt-boundary-0123456789";
  return m;
}

std::vector<std::string> split_crlf(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (auto end = text.find("\r\n"); end != std::string_view::npos; end = text.find("\r\n", start)) {
    lines.emplace_back(text.substr(start, end - start));
    start = end + 2;
  }
  if (start < text.size()) lines.emplace_back(text.substr(start));  // unterminated rest
  return lines;
}

std::string header_block(const std::string& message) {
  return message.substr(0, message.find("\r\n\r\n") + 2);
}

// The value of the first header field NAME in BLOCK, unfolded (CRLF before
// WSP removed, RFC 5322 §2.2.3).
std::string unfolded(const std::string& block, const std::string& name) {
  const auto start = block.find(name + ": ");
  if (start == std::string::npos) return "<absent>";
  std::string value;
  for (auto i = start + name.size() + 2; i < block.size(); ++i) {
    if (block.compare(i, 2, "\r\n") == 0) {
      if (i + 2 < block.size() && block[i + 2] == ' ') {
        ++i;
        continue;
      }
      break;
    }
    value += block[i];
  }
  return value;
}

// The base64 body of the report part, decoded with OpenSSL (an
// implementation independent of the one under test).
std::string decoded_report(const std::string& message, const std::string& boundary) {
  const std::string marker = "Content-Disposition: ";
  const auto body_start = message.find("\r\n\r\n", message.find(marker)) + 4;
  const auto body_end = message.find("--" + boundary + "--", body_start);
  std::string b64;
  for (const auto& line : split_crlf(message.substr(body_start, body_end - body_start))) {
    EXPECT_LE(line.size(), 76U);
    b64 += line;
  }
  std::string out(b64.size() / 4 * 3 + 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  if (n < 0) return "<not base64>";
  std::size_t padding = 0;
  while (padding < b64.size() && b64[b64.size() - 1 - padding] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

TEST(ComposeReportMail, GoldenMessage) {
  const std::string expected =
      "From: tlsrpt-noreply@mx.example.net\r\n"
      "To: tlsrpt@example.com\r\n"
      "Subject: Report Domain: example.com Submitter: mx.example.net Report-ID:\r\n"
      " <2026-12-05.example.com@mx.example.net>\r\n"
      "Date: Sun, 06 Dec 2026 00:10:00 +0000\r\n"
      "Message-ID: <2026-12-05.example.com.1@mx.example.net>\r\n"
      "MIME-Version: 1.0\r\n"
      "TLS-Report-Domain: example.com\r\n"
      "TLS-Report-Submitter: mx.example.net\r\n"
      "TLS-Required: No\r\n"
      "Auto-Submitted: auto-generated\r\n"
      "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
      " boundary=\"tlsrpt-boundary-0123456789\"\r\n"
      "\r\n"
      "This is a multi-part message in MIME format.\r\n"
      "--tlsrpt-boundary-0123456789\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "\r\n"
      "This is an aggregate TLS report (RFC 8460, SMTP TLS Reporting).\r\n"
      "\r\n"
      "Policy domain: example.com\r\n"
      "Submitter: mx.example.net\r\n"
      "Report-ID: <2026-12-05.example.com@mx.example.net>\r\n"
      "\r\n"
      "The report is attached as gzip-compressed JSON (application/tlsrpt+gzip).\r\n"
      "--tlsrpt-boundary-0123456789\r\n"
      "Content-Type: application/tlsrpt+gzip;\r\n"
      " name=\"mx.example.net!example.com!1796428800!1796515199.json.gz\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment;\r\n"
      " filename=\"mx.example.net!example.com!1796428800!1796515199.json.gz\"\r\n"
      "\r\n"
      "H4sIAAAAAAAAAwMAAAAAAAAAAAA=\r\n"
      "--tlsrpt-boundary-0123456789--\r\n";
  const auto mail = compose_report_mail(example_mail());
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  EXPECT_EQ(*mail, expected);
}

TEST(ComposeReportMail, HeaderFieldsInOrder) {
  const auto mail = compose_report_mail(example_mail());
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  std::vector<std::string> names;
  for (const auto& line : split_crlf(header_block(*mail))) {
    if (!line.empty() && line[0] != ' ') names.push_back(line.substr(0, line.find(':')));
  }
  const std::vector<std::string> expected = {"From",
                                             "To",
                                             "Subject",
                                             "Date",
                                             "Message-ID",
                                             "MIME-Version",
                                             "TLS-Report-Domain",
                                             "TLS-Report-Submitter",
                                             "TLS-Required",
                                             "Auto-Submitted",
                                             "Content-Type"};
  EXPECT_EQ(names, expected);
}

// Sizes around the 3-byte groups and the 57-byte (76-character) lines; the
// payload holds every byte value, CR, LF and NUL included.
TEST(ComposeReportMail, Base64DecodesToTheReport) {
  for (const std::size_t size : {1U, 2U, 3U, 4U, 56U, 57U, 58U, 114U, 1000U, 4099U}) {
    SCOPED_TRACE(size);
    auto input = example_mail();
    input.gz_report.clear();
    for (std::size_t i = 0; i < size; ++i) input.gz_report.push_back(static_cast<char>((i * 37 + 11) % 256));
    const auto mail = compose_report_mail(input);
    ASSERT_TRUE(mail.has_value()) << mail.error().detail;
    EXPECT_EQ(decoded_report(*mail, input.boundary), input.gz_report);
  }
}

TEST(ComposeReportMail, Base64LinesAreFull76Characters) {
  auto input = example_mail();
  input.gz_report = std::string(1000, '\xff');
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  const auto body_start = mail->find("\r\n\r\n", mail->find("Content-Disposition: ")) + 4;
  const auto lines = split_crlf(mail->substr(body_start));
  // 1000 bytes -> 1336 characters: 17 lines of 76, one of 44, then the close delimiter.
  ASSERT_EQ(lines.size(), 19U);
  for (std::size_t i = 0; i < 17; ++i) EXPECT_EQ(lines[i].size(), 76U) << i;
  EXPECT_EQ(lines[17].size(), 44U);
  EXPECT_EQ(lines[18], "--" + input.boundary + "--");
}

// Binary report bytes never reach the message unencoded.
TEST(ComposeReportMail, BinaryReportCannotInjectHeaders) {
  auto input = example_mail();
  input.gz_report = "\r\nBcc: attacker@evil.example\r\n\r\n";
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  EXPECT_EQ(mail->find("attacker"), std::string::npos);
  EXPECT_EQ(decoded_report(*mail, input.boundary), input.gz_report);
}

struct FieldCase {
  std::string field;
  std::string ReportMail::*member;
};

const FieldCase kTextFields[] = {
    {"from", &ReportMail::from},
    {"to", &ReportMail::to},
    {"policy_domain", &ReportMail::policy_domain},
    {"submitter", &ReportMail::submitter},
    {"report_id", &ReportMail::report_id},
    {"file_name", &ReportMail::file_name},
    {"date", &ReportMail::date},
    {"message_id", &ReportMail::message_id},
    {"boundary", &ReportMail::boundary},
};

// Every text field, every way to end a header line or smuggle bytes: placed
// at the end, in the middle and at the start of a valid value.
TEST(ComposeReportMail, HeaderInjectionRejectedInEveryField) {
  const std::string kBad[] = {"\r",
                              "\n",
                              std::string(1, '\0'),
                              "\r\nBcc: attacker@evil.example",
                              "\t",
                              "\x7f",
                              "\x1b",
                              "\xc3\xa9",
                              "\r\n",
                              "\n\n\r"};
  for (const auto& field : kTextFields) {
    for (const auto& bad : kBad) {
      const std::string valid = example_mail().*field.member;
      for (const auto& value : {valid + bad, valid.substr(0, 3) + bad + valid.substr(3), bad + valid}) {
        SCOPED_TRACE(field.field + " = " + printable(value));
        auto input = example_mail();
        input.*field.member = value;
        const auto mail = compose_report_mail(input);
        ASSERT_FALSE(mail.has_value());
        EXPECT_EQ(mail.error().code, "mail-invalid-field");
        EXPECT_EQ(mail.error().detail.rfind(field.field + ": ", 0), 0U) << mail.error().detail;
      }
    }
  }
}

TEST(ComposeReportMail, EmptyOrOverlongFieldRejected) {
  for (const auto& field : kTextFields) {
    for (const auto& value : {std::string(), std::string(kReportMailMaxField + 1, 'a')}) {
      SCOPED_TRACE(field.field + " of " + std::to_string(value.size()) + " octets");
      auto input = example_mail();
      input.*field.member = value;
      const auto mail = compose_report_mail(input);
      ASSERT_FALSE(mail.has_value());
      EXPECT_EQ(mail.error().code, "mail-invalid-field");
      EXPECT_EQ(mail.error().detail.rfind(field.field + ": ", 0), 0U) << mail.error().detail;
    }
  }
}

struct InvalidCase {
  std::string name;
  std::string ReportMail::*member;
  std::string value;
};

TEST(ComposeReportMail, MalformedFieldRejected) {
  const std::string k71(71, 'b');
  const InvalidCase cases[] = {
      {"from without @", &ReportMail::from, "tlsrpt-noreply"},
      {"from with display name", &ReportMail::from, "Reports <tlsrpt@mx.example.net>"},
      {"from empty domain", &ReportMail::from, "tlsrpt@"},
      {"to empty local part", &ReportMail::to, "@example.com"},
      {"to two addresses", &ReportMail::to, "tlsrpt@example.com,other@example.org"},
      {"to with space", &ReportMail::to, "tlsrpt@example.com other@example.org"},
      {"to with group syntax", &ReportMail::to, "g:tlsrpt@example.com;"},
      {"message_id in brackets", &ReportMail::message_id, "<id@mx.example.net>"},
      {"message_id without @", &ReportMail::message_id, "id.mx.example.net"},
      {"message_id with quote", &ReportMail::message_id, "\"id\"@mx.example.net"},
      {"file_name with quote", &ReportMail::file_name, "a\".json.gz"},
      {"file_name with backslash", &ReportMail::file_name, "a\\.json.gz"},
      {"boundary of 71 characters", &ReportMail::boundary, k71},
      {"boundary ending in space", &ReportMail::boundary, "tlsrpt "},
      {"boundary with quote", &ReportMail::boundary, "tlsrpt\"x"},
      {"boundary with @", &ReportMail::boundary, "tlsrpt@x"},
      {"boundary with ;", &ReportMail::boundary, "tlsrpt;x"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto input = example_mail();
    input.*c.member = c.value;
    const auto mail = compose_report_mail(input);
    ASSERT_FALSE(mail.has_value());
    EXPECT_EQ(mail.error().code, "mail-invalid-field");
  }
  auto input = example_mail();
  input.gz_report.clear();
  const auto mail = compose_report_mail(input);
  ASSERT_FALSE(mail.has_value());
  EXPECT_EQ(mail.error().detail, "gz_report: empty");
}

TEST(ComposeReportMail, LongSubjectFoldedAtSpaces) {
  auto input = example_mail();
  const std::string label(63, 'd');
  input.policy_domain = label + "." + label + ".example.com";
  input.submitter = "outbound-mx-" + label + ".example.net";
  input.report_id = "2026-12-05." + input.policy_domain + "@" + input.submitter;
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  const auto block = header_block(*mail);
  EXPECT_EQ(unfolded(block, "Subject"), "Report Domain: " + input.policy_domain + " Submitter: " +
                                            input.submitter + " Report-ID: <" + input.report_id + ">");
  // Each word on the line it fits: a line passes 78 only when it is one word
  // (after its leading space), and no line is empty or only white space.
  const auto subject_start = block.find("Subject: ");
  const auto subject_end = block.find("\r\nDate: ");
  const auto lines = split_crlf(block.substr(subject_start, subject_end + 2 - subject_start));
  EXPECT_EQ(lines.size(), 6U);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    if (i > 0) {
      EXPECT_EQ(lines[i][0], ' ');
    }
    EXPECT_NE(lines[i].find_first_not_of(' '), std::string::npos);
    if (lines[i].size() > 78) {
      EXPECT_EQ(lines[i].find(' ', 1), std::string::npos);
    }
  }
  EXPECT_EQ(unfolded(block, "TLS-Report-Domain"), input.policy_domain);
}

// A fold never leaves a line of white space only (RFC 5322 §3.2.2), even
// inside a run of spaces.
TEST(ComposeReportMail, RunOfSpacesFoldedAfterItsLastSpace) {
  auto input = example_mail();
  input.report_id = std::string(76, 'x') + "    " + std::string(80, 'y');  // " <" + 76 fills a line
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  const auto block = header_block(*mail);
  EXPECT_EQ(unfolded(block, "Subject"),
            "Report Domain: example.com Submitter: mx.example.net Report-ID: <" + input.report_id + ">");
  for (const auto& line : split_crlf(block)) {
    EXPECT_NE(line.find_first_not_of(' '), std::string::npos) << "blank line in\n" << block;
  }
}

// The longest fields everywhere: no line reaches RFC 5322's 998 octets.
TEST(ComposeReportMail, LongestFieldsKeepLinesUnder998) {
  auto input = example_mail();
  const std::string local(kReportMailMaxField - 12, 'l');
  input.from = local + "@example.net";
  input.to = local + "@example.com";
  input.message_id = local + "@example.org";
  for (auto member : {&ReportMail::policy_domain, &ReportMail::submitter, &ReportMail::report_id,
                      &ReportMail::file_name, &ReportMail::date}) {
    input.*member = std::string(kReportMailMaxField, 'x');
  }
  input.boundary = std::string(70, 'b');
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  for (const auto& line : split_crlf(*mail)) EXPECT_LT(line.size(), 998U);
  std::size_t bare = 0;
  for (std::size_t i = 0; i < mail->size(); ++i) {
    if (((*mail)[i] == '\n') != (i > 0 && (*mail)[i - 1] == '\r')) ++bare;
  }
  EXPECT_EQ(bare, 0U) << "CR and LF only as CRLF pairs";
}

// A boundary with spaces (legal bchars) stays whole inside its quotes.
TEST(ComposeReportMail, QuotedBoundaryNeverFolded) {
  auto input = example_mail();
  input.boundary = "tlsrpt boundary with spaces 0123456789 0123456789 0123456789 012345678";
  ASSERT_EQ(input.boundary.size(), 70U);
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  EXPECT_NE(mail->find("\r\n boundary=\"" + input.boundary + "\"\r\n"), std::string::npos);
}

// The boundary appears only where MIME puts it: the Content-Type parameter,
// the two delimiter lines and the close delimiter.
TEST(ComposeReportMail, BoundaryAbsentFromParts) {
  const auto input = example_mail();
  const auto mail = compose_report_mail(input);
  ASSERT_TRUE(mail.has_value()) << mail.error().detail;
  const auto body = mail->substr(mail->find("\r\n\r\n") + 4);
  std::vector<std::string> with_boundary;
  for (const auto& line : split_crlf(body)) {
    if (line.find(input.boundary) != std::string::npos) with_boundary.push_back(line);
  }
  const std::string delimiter = "--" + input.boundary;
  EXPECT_EQ(with_boundary, (std::vector<std::string>{delimiter, delimiter, delimiter + "--"}));
}

TEST(ComposeReportMail, BoundaryOccurringInAPartRejected) {
  struct Case {
    std::string name;
    std::string boundary;
    std::string gz_report;
  };
  const Case cases[] = {
      {"in the explanation", "Policy domain", kGz},
      {"in the part headers", "application/tlsrpt", kGz},
      {"in the file name", "1796428800", kGz},
      {"in the base64 text", "AAAAAAAA", std::string(64, '\0')},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto input = example_mail();
    input.boundary = c.boundary;
    input.gz_report = c.gz_report;
    const auto mail = compose_report_mail(input);
    ASSERT_FALSE(mail.has_value());
    EXPECT_EQ(mail.error().code, "mail-invalid-field");
    EXPECT_EQ(mail.error().detail, "boundary: occurs in a part");
  }
}

}  // namespace
}  // namespace mtasts::policy
