// The socketmap protocol, pure: framing, requests, replies and the MTA-STS
// answer data for Postfix's smtp_tls_policy_maps and Sendmail's
// FEATURE(`sts'). The server (milter/, event-driven) does the I/O around it.
//
// Postfix socketmap_table(5): "the client sends one request, and the server
// sends one reply. Each request and each reply are sent as one netstring
// object" (https://cr.yp.to/proto/netstrings.txt: `LEN:DATA,`, "Extra zeros
// at the front of [len] are prohibited"). Request: `name <space> key`.
// Replies: `OK <space> data`, `NOTFOUND <space>`, `TEMP|TIMEOUT|PERM <space>
// reason` ("The reason, if non-empty, is descriptive text"). Replies are at
// most 100,000 bytes without the netstring framing (socketmap_max_reply_size).
// REFERENCE.md adds: Postfix sends requests of at most 10,000 bytes; DATA for
// MTA-STS is `secure match=PAT1:PAT2 servername=hostname` with `*.example.com`
// written `.example.com`; Postfix 3.10+ takes TLSRPT attributes after it,
// separated by spaces, a value with whitespace written `{ name = value }`:
// policy_type, policy_domain, one `{ policy_string = LINE }` per policy line
// in order, one mx_host_pattern per mx line in the policy's own form
// (`*.example.net`), and an optional policy_failure. Postfix 3.9 and older
// reject every attribute, so appending them is the caller's switch.
//
// Choices made here:
// - Netstrings as djb defines them: the length is 1+ ASCII digits without
//   leading zeros ("0:," is the empty payload, "00:" and "012:" are errors),
//   no whitespace anywhere. A length over the maximum fails as soon as its
//   digits exceed it, before any data arrives.
// - Requests: the map name is 1-64 printable ASCII bytes without space (it is
//   the NAME of `socketmap:inet:HOST:PORT:NAME`); the key is 1-512 bytes, no
//   space, no control byte, no DEL. 512 is twice any real key: a domain is at
//   most 253 bytes, `[host]:port` at most 261, and a UTF-8 (SMTPUTF8) domain
//   may be somewhat longer than its A-label. Bytes >= 0x80 are kept: the
//   caller normalises (IDNA, case) as for any other untrusted domain.
// - Reasons (TEMP, TIMEOUT, PERM) become one line of printable ASCII: every
//   other byte is replaced by '?', and the text is cut at 256 bytes. NOTFOUND
//   carries no text. OK data is ours and is never rewritten: data that holds
//   a control byte or does not fit Postfix's limit turns the reply into TEMP
//   (Postfix would defer on such a reply anyway; TEMP says so cleanly).
// - Policy lines go into `{ policy_string = LINE }` trimmed of surrounding
//   whitespace (Postfix trims inside braces, so this is what it reports), with
//   an inner HTAB written as one space (WSP in RFC 8461 §3.2; it keeps the
//   reply free of control bytes). A line holding '{', '}' or another control
//   byte, or an empty line, cannot be carried safely: tlsrpt_sts_attributes()
//   refuses it (AnswerError::UnsafePolicyLine), and choose_socketmap_answer()
//   then answers without the attributes: the hosts are still verified, the
//   report loses its policy text, and the log says so. Dropping the line
//   would report a policy the domain did not publish. split_policy_lines()
//   already drops blank lines, so only a policy that is not RFC text is refused.
// - Bytes >= 0x80 may appear in policy lines (RFC 8461 §3.2 allows UTF-8 in
//   extension values); they pass through unchanged.
// Everything here is pure and thread-safe except NetstringReader, which is
// one connection's state (one thread at a time).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/resolution.h"
#include "policy/result.h"
#include "policy/tlsrpt.h"

namespace mtasts::policy {

// The largest request payload Postfix sends (3.12 enforces it).
inline constexpr std::size_t kPostfixMaxRequestBytes = 10'000;
// socketmap_max_reply_size: the largest reply payload Postfix reads.
inline constexpr std::size_t kPostfixMaxReplyBytes = 100'000;
// The largest reason text a TEMP, TIMEOUT or PERM reply carries.
inline constexpr std::size_t kMaxReasonBytes = 256;
// Request limits (see "Choices" above).
inline constexpr std::size_t kMaxMapNameBytes = 64;
inline constexpr std::size_t kMaxKeyBytes = 512;
// The largest OK data: the whole reply payload "OK " + data fits Postfix.
inline constexpr std::size_t kMaxOkDataBytes = kPostfixMaxReplyBytes - 3;

// ---- Netstring framing -------------------------------------------------

enum class NetstringError {
  EmptyLength,     // ':' with no digit before it
  BadLengthDigit,  // the frame does not start with a digit
  LeadingZero,     // "00:", "012:"
  TooLong,         // the declared length exceeds the reader's maximum
  MissingColon,    // the digits are followed by something other than ':'
  MissingComma,    // the payload is not followed by ','
};

// "empty-length", "bad-length-digit", "leading-zero", "too-long",
// "missing-colon", "missing-comma": stable codes for logs.
std::string_view to_string(NetstringError error);

// Splits a byte stream into netstring payloads, incrementally: bytes may
// arrive split anywhere, and several frames may arrive in one feed.
// Use: feed() what the socket gave, then call next() until it returns
// "need more" (an empty optional) or an error. Used that way the reader holds
// at most one unfinished frame: 10,006 bytes for a 10,000-byte maximum
// (max_payload + its digit count + 1 in general). After an error it stays
// failed: next() repeats the error, feed() discards its input, and the buffer
// is released; the server answers PERM and closes. Not thread-safe.
class NetstringReader {
 public:
  explicit NetstringReader(std::size_t max_payload);

  void feed(std::string_view bytes);

  // The next complete payload; an empty optional when the buffered bytes end
  // inside a frame (need more); or the error that broke the stream.
  Result<std::optional<std::string>, NetstringError> next();

  bool failed() const { return error_.has_value(); }
  // Bytes held for frames not yet returned (for the server's own bound).
  std::size_t buffered_bytes() const { return buffer_.size() - start_; }

 private:
  Result<std::optional<std::string>, NetstringError> fail(NetstringError error);
  Result<std::optional<std::string>, NetstringError> need_more();

  std::size_t max_payload_;
  std::string buffer_;
  std::size_t start_ = 0;  // the first byte of buffer_ not yet returned
  std::optional<NetstringError> error_;
};

// `LEN:DATA,` for any bytes.
std::string encode_netstring(std::string_view payload);

// ---- Requests ----------------------------------------------------------

struct SocketmapRequest {
  std::string map_name;  // as sent, e.g. "postfix" or "sts"
  std::string key;       // as sent: the caller lowercases and normalises
  friend bool operator==(const SocketmapRequest&, const SocketmapRequest&) = default;
};

enum class RequestError {
  NoSpace,      // no ' ' between name and key
  EmptyName,    // the payload starts with ' '
  NameTooLong,  // over kMaxMapNameBytes
  BadNameByte,  // a byte outside printable ASCII in the name
  EmptyKey,     // nothing after the first ' '
  KeyTooLong,   // over kMaxKeyBytes
  BadKeyByte,   // a space, control byte or DEL in the key
};

// "no-space", "empty-name", "name-too-long", "bad-name-byte", "empty-key",
// "key-too-long", "bad-key-byte".
std::string_view to_string(RequestError error);

// Parses one payload `NAME KEY`, splitting at the first space.
Result<SocketmapRequest, RequestError> parse_request(std::string_view payload);

// ---- Replies -----------------------------------------------------------

enum class SocketmapStatus { Ok, NotFound, Temp, Timeout, Perm };

// "OK", "NOTFOUND", "TEMP", "TIMEOUT", "PERM": the words on the wire.
std::string_view to_string(SocketmapStatus status);

// One reply as it goes on the wire, with the status it carries: the status
// asked for, except OK data that cannot be sent, which goes as TEMP. Counting
// `status` counts what the MTA reads; nobody parses the bytes back.
struct SocketmapReply {
  SocketmapStatus status = SocketmapStatus::Perm;
  std::string framed;  // the netstring
  friend bool operator==(const SocketmapReply&, const SocketmapReply&) = default;
};

// The whole framed reply. Ok: `OK DATA` with `text` as the data (see
// "Choices": unsafe or oversized data becomes TEMP). NotFound: `NOTFOUND `,
// `text` ignored. Temp, Timeout, Perm: `WORD REASON`, the reason sanitised to
// printable ASCII and cut at kMaxReasonBytes. Never longer than
// kPostfixMaxReplyBytes plus the framing.
SocketmapReply make_reply(SocketmapStatus status, std::string_view text);
// make_reply(status, text).framed.
std::string format_reply(SocketmapStatus status, std::string_view text);

// ---- MTA-STS answer data -----------------------------------------------

// One policy as the answer needs it: plain data, so that the raw text stays
// what the domain published (policy.h's Policy keeps only the parsed values).
struct StsPolicyFacts {
  std::string domain;                     // the policy domain, a host name
  std::vector<std::string> policy_lines;  // split_policy_lines(raw body)
  std::vector<std::string> mx_patterns;   // RFC 8461 form: "mx.example.com", "*.example.net"
  // What `match=` lists when not empty (match_list_for()); else mx_patterns.
  std::vector<std::string> match_list = {};
};

// Whether the TLSRPT attributes follow the DATA (Postfix 3.10+ only).
enum class TlsrptAttributes { Omit, Append };

enum class AnswerError {
  BadPolicyDomain,           // not a host name: LDH labels of 1-63 (no '-' at either end),
                             // at most 253 bytes, no trailing dot, last label not all digits
  NoMxPatterns,              // `match=` would be empty
  BadMxPattern,              // not a host name or "*." and a host name
  UnsafePolicyLine,          // empty, or holds '{', '}' or a control byte other than HTAB
  UnsupportedPolicyFailure,  // Postfix takes only the four types below
  FailureNeedsAttributes,    // a policy_failure with TlsrptAttributes::Omit
  TooLong,                   // the data would exceed kMaxOkDataBytes
};

// "bad-policy-domain", "no-mx-patterns", "bad-mx-pattern",
// "unsafe-policy-line", "unsupported-policy-failure",
// "failure-needs-attributes", "too-long".
std::string_view to_string(AnswerError error);

// The body's lines in order, without their LF or CRLF terminator; blank
// (empty or whitespace-only) lines are dropped.
std::vector<std::string> split_policy_lines(std::string_view body);

// The names `match=` lists for a policy, given the MX hosts the MTA will
// see: each wildcard pattern is replaced by the hosts it matches under RFC
// 8461 §4.1 (one label: "*.example.net" matches "mx.example.net", never
// "a.mx.example.net"), listed by exact name; other patterns stay. Postfix
// before 3.10.5 reads ".example.net" as any depth of subdomain, so sending
// the pattern itself would let it deliver to a host the policy does not
// allow (Sendmail reads it as one label). A wildcard no host matches is left
// out. When nothing is left (no MX host is allowed) the list is
// kNoHostAllowed alone, so that no host verifies and Postfix defers, as RFC
// 8461 §5 asks; when `mx_hosts` is empty (the lookup failed) the patterns
// are returned unchanged.
inline constexpr std::string_view kNoHostAllowed = "mx-not-in-policy.invalid";  // RFC 2606 .invalid
std::vector<std::string> match_list_for(std::span<const std::string> mx_patterns,
                                        std::span<const std::string> mx_hosts);

// `secure match=mx1.example.com:.example.net servername=hostname`.
Result<std::string, AnswerError> sts_secure_data(std::span<const std::string> mx_patterns);

// `policy_type=sts policy_domain=D { policy_string = L1 } ... mx_host_pattern=P1 ...`
// and ` policy_failure=TYPE` when given. policy_failure takes only
// sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid and
// validation-failure (each makes Postfix fail certificate verification).
Result<std::string, AnswerError> tlsrpt_sts_attributes(const StsPolicyFacts& facts,
                                                       std::optional<ResultType> policy_failure);

// `policy_type=no-policy-found policy_domain=D` [` policy_failure=TYPE`]; the
// caller chooses the TLS level that precedes it.
Result<std::string, AnswerError> tlsrpt_no_policy_attributes(std::string_view domain,
                                                             std::optional<ResultType> policy_failure);

// The whole OK data for a policy: sts_secure_data(), then with Append a space
// and tlsrpt_sts_attributes(). At most kMaxOkDataBytes.
Result<std::string, AnswerError> sts_answer_data(const StsPolicyFacts& facts, TlsrptAttributes attributes,
                                                 std::optional<ResultType> policy_failure = std::nullopt);

// ---- Which answer ------------------------------------------------------
//
// RFC 8461 §5 for a delivery-time lookup, in Postfix's TLS security levels:
// - enforce (or testing under strict_testing): `secure match=...
//   servername=hostname` -- Postfix verifies the chain and that the name it
//   connected to matches a pattern (§4.1-§4.2); a failing MX is skipped and
//   the mail deferred when none passes (§5 "MUST NOT deliver").
//   DANE first (RFC 8461 §2, RFC 7672): when EVERY host the MTA may use has
//   a DNSSEC-secure, usable TLSA RRset behind a secure MX answer, the answer
//   is `dane-only`, so Postfix's own DANE verifies each host (strictly
//   stronger than STS for those hosts). When only some have, Postfix cannot
//   mix levels per host: `secure` keeps every host verified (a DANE host must
//   then also pass WebPKI, as the RFC already asks of enforce MX hosts);
//   `dane` would leave the others at `may`, an unverified delivery.
//   The operator may switch that off for a policy domain (enforce_action =
//   "off", or an override row saying so; Enforcement::Off): NOTFOUND, as for
//   testing below, whatever the next hop; the milter likewise continues.
// - testing (RFC 8461 §5: deliver, report): NOTFOUND, so Postfix applies its
//   own default level (DANE where published) and delivers.
// - none, or no policy (no TXT record, an invalid one, a failed fetch with
//   nothing cached; §5.1 "no policy"): NOTFOUND, for the same reason. No
//   level of ours replaces the operator's default (which may be `dane` or
//   `encrypt`): Postfix reports such mail as no-policy-found itself.
// - a DNS SERVFAIL or bogus `_mta-sts` answer with nothing cached: NOTFOUND,
//   as the milter continues (a discovery failure without a usable policy must
//   not block mail; the same broken DNS usually stops Postfix's MX lookup).
// - a first-contact discovery still running at the deadline, or refused as
//   overloaded, or the daemon stopping: TEMP. Postfix defers and retries,
//   and the retry finds the policy ready; NOTFOUND would send the first
//   message without the protection the domain asked for.
// - A stale policy (discovery failed, an unexpired policy cached) applies
//   like a fresh one (§5.1).
// policy_failure is never sent: in every case above where the RFC lets a
// failure stop mail, Postfix's own check fails the connection; sending it
// for a discovery failure would block mail the RFC says must flow.

// Whether the hosts Postfix may connect to have DNSSEC-secure, usable TLSA.
enum class DaneCoverage {
  Unknown,  // not looked up, or a lookup failed
  None,     // no host has (or the MX answer is not secure)
  Some,     // some do, some do not
  All,      // every host does: Postfix's `dane-only` applies
};
std::string_view to_string(DaneCoverage coverage);  // "unknown" | "none" | "some" | "all"

// Whether a policy that enforces may steer delivery, as the operator set it
// for the policy domain (the config's enforce_action or an override row).
enum class Enforcement { On, Off };

struct SocketmapSettings {
  bool strict_testing = false;  // testing answered as enforce
  TlsrptAttributes attributes = TlsrptAttributes::Omit;
  Enforcement enforcement = Enforcement::On;
};

struct SocketmapAnswer {
  SocketmapStatus status = SocketmapStatus::NotFound;
  std::string text;  // OK data or the TEMP reason
  // Why, for the log: "enforce", "dane-only", "testing", "mode-none",
  // "enforce-no-attributes", "enforce-off", "no-policy", "pending",
  // "overloaded", "stopping", "unusable-policy".
  std::string_view why;
  friend bool operator==(const SocketmapAnswer&, const SocketmapAnswer&) = default;
};

// What the MTA's next hop looks like, for a policy that enforces.
struct NextHopView {
  DaneCoverage dane = DaneCoverage::Unknown;
  std::vector<std::string> mx_hosts;  // the hosts the MTA may connect to; empty: unknown
};

// The answer for one resolution (see above). `hop` matters only for a
// policy that enforces.
SocketmapAnswer choose_socketmap_answer(const Resolution& resolution, const NextHopView& hop,
                                        const SocketmapSettings& settings);

// The coverage from the TLSA answers of every host the MTA may use, looked
// up after a DNSSEC-secure MX answer (the caller answers None without one:
// Postfix's DANE needs it). A host counts when its RRset is secure and holds
// a usable record (usable_tlsa(), decide.h). A failed or bogus lookup makes
// the coverage at most Some (Unknown when no host counts): `dane-only` would
// fail that host, `secure` still verifies it. No hosts: None.
DaneCoverage dane_coverage(std::span<const TlsaAnswer> hosts);

// Whether the answer for a resolution enforces (enforce, or testing under
// strict_testing, and Enforcement::On): then it needs the next hop
// (NextHopView); otherwise the next hop changes nothing.
bool socketmap_enforces(const Resolution& resolution, const SocketmapSettings& settings);

}  // namespace mtasts::policy
