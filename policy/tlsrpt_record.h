// The `_smtp._tls` TXT record: where a Policy Domain wants its TLS reports,
// RFC 8460 §3. The ABNF (RFC 5234 with RFC 7405 %s case-sensitive strings):
//   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//   field-delim      = *WSP ";" *WSP             (WSP = SP / HTAB)
//   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension  ; rua is required
//   tlsrpt-version   = %s"v=TLSRPTv1"
//   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//   tlsrpt-uri       = URI (RFC 3986); ",", "!" and ";" MUST be %-encoded
//   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
//   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
// §3 also: records not beginning with "v=TLSRPTv1;" are discarded; if the
// number left is not one, the domain "does not implement TLSRPT"; two URI
// schemes are supported, "mailto" (RFC 6068) and "https"; unknown fields of a
// syntactically valid record are ignored.
//
// Readings where the RFC leaves room:
// - Candidates: the text begins with %s"v=TLSRPTv1" then *WSP ";" (the
//   prose's "v=TLSRPTv1;" widened only by field-delim's WSP, as
//   txt_record.h does). "v=TLSRPTv10;", "V=TLSRPTv1;" and a bare
//   "v=TLSRPTv1" are not candidates.
// - The ABNF is applied exactly: no WSP around "=", none right after "rua=",
//   no empty field (";;"), no empty URI ("a,,b", a trailing ","), and
//   whitespace at the very end is an error unless a ";" precedes it.
// - "rua" is reserved: a field named exactly "rua" must be a valid
//   tlsrpt-rua (the ABNF would also read "rua=junk" as an extension, which
//   would silently hide an operator's typo). "RUA=..." is an extension (%s).
// - Several rua fields: the ABNF allows them (1*tlsrpt-field) and §3 says a
//   record "supports ... more than one rua"; their URIs are merged in record
//   order. Rejecting would drop every destination the domain published.
// - Duplicate URIs (same text, scheme compared case-insensitively) are kept
//   once, first occurrence wins.
// - Schemes are case-insensitive (RFC 3986 §3.1): "MAILTO:" is mailto. The
//   URI is kept as published.
// - A URI is checked for RFC 3986 characters only (plus a valid scheme,
//   well-formed %HH, at most one "#"); raw "!" is an error (raw "," and ";"
//   cannot occur: they split the list and the record).
// - A well-formed URI of another scheme (http:, ftp:, ...) is not an error:
//   it goes to `ignored_uris`. A record with none of mailto:/https: is
//   "tlsrpt-no-usable-uri".
// - mailto: exactly one addr-spec before any "?": a non-empty local part,
//   one "@", a domain that normalize_domain() accepts (A-labels; no address
//   literal, no %-encoded name). "%2C" in the address (a second recipient
//   per RFC 6068) and a "#" fragment (RFC 6068 has none) are errors. The
//   "?hfields" part is kept as published; the mailer uses only the address.
// - https: "//" then a host: a domain name (normalize_domain()), a dotted
//   IPv4 address or a bracketed IPv6 address; an optional port 1-65535
//   (":" with no digits is an error). Userinfo ("user@") is an error
//   (RFC 9110 §4.2.4: treat it as an error from untrusted sources). "[" and
//   "]" only around an IPv6 host.
// - Length: a record over 4,096 bytes is an error (a real one is < 200).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace mtasts::policy {

enum class ReportScheme { Mailto, Https };

struct ReportUri {
  ReportScheme scheme;
  std::string uri;  // as published, e.g. "mailto:tlsrpt@example.com"
  friend bool operator==(const ReportUri&, const ReportUri&) = default;
};

struct TlsrptRecord {
  std::vector<ReportUri> rua;             // usable URIs, record order, no duplicates; never empty
  std::vector<std::string> ignored_uris;  // well-formed URIs of other schemes, for logs
};

// Maximum length of one record's text, in bytes.
inline constexpr std::size_t kMaxTlsrptRecordBytes = 4096;

// One record's text (its TXT character-strings already joined, RFC 8460 §3).
// Errors (code): "tlsrpt-syntax" (detail says what and at which offset: bad
// version, missing rua, empty URI list, bad URI, bad extension name or value,
// bad delimiter, too long), "tlsrpt-no-usable-uri" (valid, but no mailto: or
// https: URI). Details show untrusted text escaped and cut. Pure, thread-safe.
Result<TlsrptRecord> parse_tlsrpt_record(std::string_view text);

// All TXT records at _smtp._tls.DOMAIN, one entry per record. Records that
// are not candidates (see above) are discarded; exactly one must remain.
// Errors: "tlsrpt-none" (no candidate), "tlsrpt-multiple" (more than one,
// even if identical), else those of parse_tlsrpt_record. Pure, thread-safe.
Result<TlsrptRecord> select_tlsrpt_record(std::span<const std::string> txt_records);

// The recipient of a mailto: URI that parse_tlsrpt_record accepted (RFC
// 6068): the part before any "?", its %HH decoded ("%2B" is "+").
std::string mailto_address(std::string_view uri);

}  // namespace mtasts::policy
