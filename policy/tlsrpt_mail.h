// The RFC 8460 §5.3 report e-mail: one gzipped §4 report (policy/tlsrpt_report.h)
// wrapped in an RFC 5322 message for a "mailto:" rua. Pure: no clock, no I/O;
// the caller gives the Date, Message-ID and MIME boundary, DKIM-signs the
// result (policy/net/dkim_signer.h; RFC 8460 §3: a mailed report without a
// valid DKIM signature of the reporting domain is to be ignored) and hands it
// to the MTA.
//
// What RFC 8460 §5.3 asks of the message, in our words:
// - The top-level type is multipart/report (RFC 6522) with the parameter
//   report-type="tlsrpt". Its first part is for humans (text/plain), its
//   second is the report: application/tlsrpt+json, or application/tlsrpt+gzip
//   when compressed (always, here: §5.2 says reports SHOULD be gzipped).
// - Two header fields MUST be present, so that receivers can search for them:
//   TLS-Report-Domain (the Policy Domain) and TLS-Report-Submitter (the
//   sender's domain, equal to the domain of the report's contact-info and of
//   the §5.1 file name). They SHOULD be covered by the DKIM signature.
// - The Subject SHOULD read "Report" "Domain:" policy-domain "Submitter:"
//   submitter "Report-ID:" msg-id, with folding white space between the
//   words; msg-id is the report-id in angle brackets.
// - The receiver finds the report by media type and file name and ignores
//   the rest.
// RFC 8460 §3 also says reports MUST be delivered despite TLS failures, so the
// message carries "TLS-Required: No" (RFC 8689 §5: the sender's MTA may then
// ignore a TLS policy such as MTA-STS or DANE for this one message), and it is
// marked "Auto-Submitted: auto-generated" (RFC 3834 §5) so that nobody
// auto-replies to it.
//
// The message (CRLF line ends; every line under RFC 5322's 998 octets, header
// lines folded at white space to 78 where the words allow):
//   From, To, Subject, Date, Message-ID, MIME-Version: 1.0, TLS-Report-Domain,
//   TLS-Report-Submitter, TLS-Required: No, Auto-Submitted: auto-generated,
//   Content-Type: multipart/report; report-type="tlsrpt"; boundary="B"
//   part 1: text/plain; charset=us-ascii, 7bit: a short explanation naming
//           the policy domain, the submitter and the report-id
//   part 2: application/tlsrpt+gzip; name="F", base64 in 76-character lines
//           (RFC 2045 §6.8), Content-Disposition: attachment; filename="F"
#pragma once

#include <string>

#include "policy/result.h"

namespace mtasts::policy {

// The inputs of one report e-mail. Every text field is printable US-ASCII
// (policy domain and submitter in A-labels); only gz_report is binary.
struct ReportMail {
  std::string from;           // addr-spec, e.g. "tlsrpt-noreply@mx.example.net" (also the envelope sender)
  std::string to;             // addr-spec of the mailto: rua (no "mailto:", no ?hfields)
  std::string policy_domain;  // TLS-Report-Domain
  std::string submitter;      // TLS-Report-Submitter, a domain
  std::string report_id;      // §4.4 report-id (DailyReport::report_id)
  std::string file_name;      // §5.1 name, e.g. "mx.example.net!example.com!1796428800!1796515199.json.gz"
  std::string gz_report;      // the gzipped §4 JSON document (binary)
  std::string date;           // RFC 5322 date-time, e.g. "Sun, 06 Dec 2026 00:10:00 +0000"
  std::string message_id;     // id-left "@" id-right, without angle brackets
  std::string boundary;       // RFC 2046 §5.1.1 boundary; must occur nowhere in the parts
};

// The longest text field accepted: with it every line of the message stays
// under 998 octets whatever the field holds.
inline constexpr std::size_t kReportMailMaxField = 900;

// The complete message, byte for byte deterministic for a given input.
// Errors (code "mail-invalid-field", detail naming the field), returned
// instead of a message that could carry injected header fields or break
// the MIME structure:
// - any text field empty, longer than kReportMailMaxField, or holding a byte
//   outside printable US-ASCII (CR, LF, NUL, HTAB, other controls, 8-bit);
// - from, to or message_id not of the form local "@" domain, or holding
//   white space, '<', '>', ',', ';' or '"' (bare addr-specs only);
// - file_name holding '"' or '\' (it is written as a quoted-string);
// - a boundary that is not 1-70 RFC 2046 bchars ending in a non-space, or
//   that occurs in the explanation or the base64 text.
// Pure, thread-safe.
Result<std::string> compose_report_mail(const ReportMail& mail);

}  // namespace mtasts::policy
