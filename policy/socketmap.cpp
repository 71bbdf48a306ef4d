// The socketmap protocol layer (see socketmap.h for the protocol text and
// the choices). Why the code looks the way it does:
// - The reader re-reads the length of an unfinished frame on every next():
//   the length is at most a few digits, so that costs nothing and keeps the
//   reader's state to a buffer and an offset (no half-parsed number to keep
//   consistent across feeds).
// - Returned frames only advance an offset; the consumed prefix is erased
//   once, when the reader runs out of complete frames, so a feed holding many
//   pipelined requests is not moved in memory once per request.
// - Everything we send is checked where it is built (host names, patterns,
//   policy lines); format_reply() checks OK data once more so that a bug in a
//   builder can defer a mail, but never break the MTA's reply parser.
#include "policy/socketmap.h"

#include <algorithm>
#include <utility>

#include "policy/ascii.h"
#include "policy/decide.h"
#include "policy/mx_match.h"
#include "policy/policy.h"
#include "policy/reason.h"

namespace mtasts::policy {
namespace {

using ReadResult = Result<std::optional<std::string>, NetstringError>;

bool is_control(char c) { return is_ascii_control(c); }
bool has_control(std::string_view text) { return std::any_of(text.begin(), text.end(), is_control); }

// ---- Netstrings

struct FrameHeader {
  std::size_t length = 0;        // the declared payload length
  std::size_t header_bytes = 0;  // the digits and the ':'
};

// Adds one decimal digit to `length` unless the result would exceed `max`;
// tested before multiplying, so no length, however many digits, overflows.
bool append_digit(std::size_t& length, char digit, std::size_t max) {
  if (length > max / 10) return false;
  length *= 10;
  const auto value = static_cast<std::size_t>(digit - '0');
  if (value > max - length) return false;
  length += value;
  return true;
}

// `LEN:` at the start of `bytes`; an empty optional while the bytes end
// inside the length (need more).
Result<std::optional<FrameHeader>, NetstringError> read_header(std::string_view bytes,
                                                               std::size_t max_payload) {
  std::size_t length = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c == ':') {
      if (i == 0) return NetstringError::EmptyLength;
      return std::optional<FrameHeader>{FrameHeader{length, i + 1}};
    }
    if (!is_ascii_digit(c)) return i == 0 ? NetstringError::BadLengthDigit : NetstringError::MissingColon;
    if (i == 1 && bytes[0] == '0') return NetstringError::LeadingZero;
    if (!append_digit(length, c, max_payload)) return NetstringError::TooLong;
  }
  return std::optional<FrameHeader>{};
}

// ---- Requests

bool is_name_byte(char c) { return c > ' ' && c < 0x7f; }
// Printable ASCII without space, or any byte >= 0x80 (UTF-8 domains).
bool is_key_byte(char c) { return c != ' ' && !is_control(c); }

// ---- Replies

SocketmapReply framed(SocketmapStatus status, std::string_view text) {
  std::string payload(to_string(status));
  payload += ' ';
  payload += text;
  return {status, encode_netstring(payload)};
}

std::string reason_text(std::string_view text) {
  std::string reason(text.substr(0, kMaxReasonBytes));
  std::replace_if(
      reason.begin(), reason.end(), [](char c) { return !is_ascii_printable(c); }, '?');
  return reason;
}

// ---- Answer data

// An MX pattern as the policy parser accepts it (policy.h), so that an
// answer never refuses what the parser stored.
bool is_mx_pattern(std::string_view pattern) { return mx_pattern_problem(pattern).empty(); }

// A policy domain: an MX-pattern-shaped name without the wildcard, whose last
// label is not all digits (never an IPv4 address, which Postfix's
// valid_hostname() refuses too).
bool is_host_name(std::string_view name) {
  if (name.starts_with("*.") || !is_mx_pattern(name)) return false;
  const std::string_view last = name.substr(name.rfind('.') + 1);
  return !std::all_of(last.begin(), last.end(), is_ascii_digit);
}

constexpr std::string_view kWildcard = "*.";

// RFC 8461 `*.example.net` is Postfix's `.example.net` (REFERENCE.md).
std::string_view postfix_match_pattern(std::string_view pattern) {
  return pattern.starts_with(kWildcard) ? pattern.substr(1) : pattern;
}

// One policy line as it can sit inside `{ policy_string = ... }`.
Result<std::string, AnswerError> carried_policy_line(std::string_view line) {
  constexpr std::string_view kWsp = " \t";
  const std::size_t first = line.find_first_not_of(kWsp);
  if (first == std::string_view::npos) return AnswerError::UnsafePolicyLine;
  std::string carried(line.substr(first, line.find_last_not_of(kWsp) - first + 1));
  for (char& c : carried) {
    if (c == '\t') c = ' ';
    if (c == '{' || c == '}' || is_control(c)) return AnswerError::UnsafePolicyLine;
  }
  return carried;
}

// The four types Postfix accepts in policy_failure (REFERENCE.md).
bool is_postfix_policy_failure(ResultType type) {
  return type == ResultType::StsPolicyFetchError || type == ResultType::StsPolicyInvalid ||
         type == ResultType::StsWebpkiInvalid || type == ResultType::ValidationFailure;
}

// Appends ` policy_failure=TYPE` when there is one; false when Postfix
// would not take the type.
bool append_policy_failure(std::string& out, std::optional<ResultType> failure) {
  if (!failure) return true;
  if (!is_postfix_policy_failure(*failure)) return false;
  out += " policy_failure=";
  out += to_string(*failure);
  return true;
}

Result<std::string, AnswerError> bounded(std::string data) {
  if (data.size() > kMaxOkDataBytes) return AnswerError::TooLong;
  return data;
}

}  // namespace

// ---- Netstrings

std::string_view to_string(NetstringError error) {
  switch (error) {
    case NetstringError::EmptyLength:
      return "empty-length";
    case NetstringError::BadLengthDigit:
      return "bad-length-digit";
    case NetstringError::LeadingZero:
      return "leading-zero";
    case NetstringError::TooLong:
      return "too-long";
    case NetstringError::MissingColon:
      return "missing-colon";
    case NetstringError::MissingComma:
      return "missing-comma";
  }
  return "unknown";
}

NetstringReader::NetstringReader(std::size_t max_payload) : max_payload_(max_payload) {}

void NetstringReader::feed(std::string_view bytes) {
  if (!failed()) buffer_.append(bytes);
}

ReadResult NetstringReader::next() {
  if (error_) return *error_;
  const std::string_view pending = std::string_view(buffer_).substr(start_);
  const auto header = read_header(pending, max_payload_);
  if (!header) return fail(header.error());
  if (!header.value()) return need_more();
  const FrameHeader frame = *header.value();
  // Compared as "bytes after the header", so a length near SIZE_MAX cannot wrap.
  if (pending.size() - frame.header_bytes <= frame.length) return need_more();
  const std::size_t comma = frame.header_bytes + frame.length;
  if (pending[comma] != ',') return fail(NetstringError::MissingComma);
  std::string payload(pending.substr(frame.header_bytes, frame.length));
  start_ += comma + 1;
  return std::optional<std::string>(std::move(payload));
}

ReadResult NetstringReader::fail(NetstringError error) {
  error_ = error;
  std::string().swap(buffer_);  // nothing buffered is ever read again
  start_ = 0;
  return error;
}

ReadResult NetstringReader::need_more() {
  buffer_.erase(0, start_);
  start_ = 0;
  return std::optional<std::string>{};
}

std::string encode_netstring(std::string_view payload) {
  std::string frame = std::to_string(payload.size());
  frame += ':';
  frame += payload;
  frame += ',';
  return frame;
}

// ---- Requests

std::string_view to_string(RequestError error) {
  switch (error) {
    case RequestError::NoSpace:
      return "no-space";
    case RequestError::EmptyName:
      return "empty-name";
    case RequestError::NameTooLong:
      return "name-too-long";
    case RequestError::BadNameByte:
      return "bad-name-byte";
    case RequestError::EmptyKey:
      return "empty-key";
    case RequestError::KeyTooLong:
      return "key-too-long";
    case RequestError::BadKeyByte:
      return "bad-key-byte";
  }
  return "unknown";
}

Result<SocketmapRequest, RequestError> parse_request(std::string_view payload) {
  const std::size_t space = payload.find(' ');
  if (space == std::string_view::npos) return RequestError::NoSpace;
  const std::string_view name = payload.substr(0, space);
  const std::string_view key = payload.substr(space + 1);
  if (name.empty()) return RequestError::EmptyName;
  if (name.size() > kMaxMapNameBytes) return RequestError::NameTooLong;
  if (!std::all_of(name.begin(), name.end(), is_name_byte)) return RequestError::BadNameByte;
  if (key.empty()) return RequestError::EmptyKey;
  if (key.size() > kMaxKeyBytes) return RequestError::KeyTooLong;
  if (!std::all_of(key.begin(), key.end(), is_key_byte)) return RequestError::BadKeyByte;
  return SocketmapRequest{std::string(name), std::string(key)};
}

// ---- Replies

std::string_view to_string(SocketmapStatus status) {
  switch (status) {
    case SocketmapStatus::Ok:
      return "OK";
    case SocketmapStatus::NotFound:
      return "NOTFOUND";
    case SocketmapStatus::Temp:
      return "TEMP";
    case SocketmapStatus::Timeout:
      return "TIMEOUT";
    case SocketmapStatus::Perm:
      return "PERM";
  }
  return "PERM";
}

SocketmapReply make_reply(SocketmapStatus status, std::string_view text) {
  switch (status) {
    case SocketmapStatus::Ok:
      if (text.size() > kMaxOkDataBytes || has_control(text)) {
        return framed(SocketmapStatus::Temp, "unsafe or oversized reply data");
      }
      return framed(status, text);
    case SocketmapStatus::NotFound:
      return framed(status, "");
    case SocketmapStatus::Temp:
    case SocketmapStatus::Timeout:
    case SocketmapStatus::Perm:
      return framed(status, reason_text(text));
  }
  return framed(SocketmapStatus::Perm, "");
}

std::string format_reply(SocketmapStatus status, std::string_view text) {
  return make_reply(status, text).framed;
}

// ---- Answer data

std::string_view to_string(AnswerError error) {
  switch (error) {
    case AnswerError::BadPolicyDomain:
      return "bad-policy-domain";
    case AnswerError::NoMxPatterns:
      return "no-mx-patterns";
    case AnswerError::BadMxPattern:
      return "bad-mx-pattern";
    case AnswerError::UnsafePolicyLine:
      return "unsafe-policy-line";
    case AnswerError::UnsupportedPolicyFailure:
      return "unsupported-policy-failure";
    case AnswerError::FailureNeedsAttributes:
      return "failure-needs-attributes";
    case AnswerError::TooLong:
      return "too-long";
  }
  return "unknown";
}

std::vector<std::string> split_policy_lines(std::string_view body) {
  std::vector<std::string> lines;
  for (const std::string_view line : policy_text_lines(body))
    if (line.find_first_not_of(" \t") != std::string_view::npos) lines.emplace_back(line);
  return lines;
}

std::vector<std::string> match_list_for(std::span<const std::string> mx_patterns,
                                        std::span<const std::string> mx_hosts) {
  if (mx_hosts.empty()) return {mx_patterns.begin(), mx_patterns.end()};  // MX unknown
  std::vector<std::string> out;
  const auto add = [&out](const std::string& name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  for (const std::string& pattern : mx_patterns) {
    if (!pattern.starts_with("*.")) {
      add(pattern);
      continue;
    }
    for (const std::string& host : mx_hosts)
      if (mx_pattern_matches(pattern, host)) add(ascii_lowercase(host));
  }
  // MX hosts known, none allowed: a name no certificate can carry, so that
  // Postfix verifies no host and defers (RFC 8461 §5), where the bare
  // pattern would let Postfix before 3.10.5 accept a deeper host.
  if (out.empty()) out.emplace_back(kNoHostAllowed);
  return out;
}

Result<std::string, AnswerError> sts_secure_data(std::span<const std::string> mx_patterns) {
  if (mx_patterns.empty()) return AnswerError::NoMxPatterns;
  std::string data = "secure match=";
  for (std::size_t i = 0; i < mx_patterns.size(); ++i) {
    if (!is_mx_pattern(mx_patterns[i])) return AnswerError::BadMxPattern;
    if (i > 0) data += ':';
    data += postfix_match_pattern(mx_patterns[i]);
  }
  data += " servername=hostname";
  return bounded(std::move(data));
}

Result<std::string, AnswerError> tlsrpt_sts_attributes(const StsPolicyFacts& facts,
                                                       std::optional<ResultType> policy_failure) {
  if (!is_host_name(facts.domain)) return AnswerError::BadPolicyDomain;
  std::string out = "policy_type=sts policy_domain=" + facts.domain;
  for (const std::string& line : facts.policy_lines) {
    const auto carried = carried_policy_line(line);
    if (!carried) return carried.error();
    out += " { policy_string = " + carried.value() + " }";
  }
  for (const std::string& pattern : facts.mx_patterns) {
    if (!is_mx_pattern(pattern)) return AnswerError::BadMxPattern;
    out += " mx_host_pattern=" + pattern;
  }
  if (!append_policy_failure(out, policy_failure)) return AnswerError::UnsupportedPolicyFailure;
  return bounded(std::move(out));
}

Result<std::string, AnswerError> tlsrpt_no_policy_attributes(std::string_view domain,
                                                             std::optional<ResultType> policy_failure) {
  if (!is_host_name(domain)) return AnswerError::BadPolicyDomain;
  std::string out = "policy_type=no-policy-found policy_domain=";
  out += domain;
  if (!append_policy_failure(out, policy_failure)) return AnswerError::UnsupportedPolicyFailure;
  return out;
}

Result<std::string, AnswerError> sts_answer_data(const StsPolicyFacts& facts, TlsrptAttributes attributes,
                                                 std::optional<ResultType> policy_failure) {
  if (attributes == TlsrptAttributes::Omit && policy_failure) return AnswerError::FailureNeedsAttributes;
  auto secure = sts_secure_data(facts.match_list.empty() ? facts.mx_patterns : facts.match_list);
  if (!secure || attributes == TlsrptAttributes::Omit) return secure;
  const auto tlsrpt = tlsrpt_sts_attributes(facts, policy_failure);
  if (!tlsrpt) return tlsrpt.error();
  return bounded(secure.value() + " " + tlsrpt.value());
}

std::string_view to_string(DaneCoverage coverage) {
  switch (coverage) {
    case DaneCoverage::Unknown:
      return "unknown";
    case DaneCoverage::None:
      return "none";
    case DaneCoverage::Some:
      return "some";
    case DaneCoverage::All:
      return "all";
  }
  return "unknown";
}

DaneCoverage dane_coverage(std::span<const TlsaAnswer> hosts) {
  std::size_t covered = 0;
  std::size_t failed = 0;
  for (const auto& tlsa : hosts) {
    const bool lookup_failed = tlsa.security == DnsSecurity::Bogus || tlsa.status == DnsStatus::ServFail ||
                               tlsa.status == DnsStatus::Timeout;
    if (lookup_failed)
      ++failed;
    else if (tlsa.status == DnsStatus::Ok && tlsa.security == DnsSecurity::Secure &&
             !usable_tlsa(tlsa.records).empty())
      ++covered;
  }
  if (covered == hosts.size() && !hosts.empty()) return DaneCoverage::All;
  if (covered > 0) return DaneCoverage::Some;
  return failed > 0 ? DaneCoverage::Unknown : DaneCoverage::None;
}

namespace {

// The policy asks for enforcement (§5), before the operator's switch.
bool policy_enforces(const StoredPolicy& stored, const SocketmapSettings& settings) {
  const Mode mode = stored.policy.mode;
  return mode == Mode::Enforce || (mode == Mode::Testing && settings.strict_testing);
}

SocketmapAnswer without_policy(const Resolution& resolution) {
  // Only a discovery that has not finished is worth a retry (see the header).
  if (resolution.temporary) {
    const std::string_view why = resolution.reason;
    if (why == reason::kDeadline)
      return {SocketmapStatus::Temp, "MTA-STS policy discovery for " + resolution.domain + " still running",
              "pending"};
    if (why == reason::kOverloaded)
      return {SocketmapStatus::Temp, "MTA-STS policy discovery overloaded", "overloaded"};
    if (why == reason::kStopping) return {SocketmapStatus::Temp, "MTA-STS server stopping", "stopping"};
  }
  return {SocketmapStatus::NotFound, "", "no-policy"};
}

SocketmapAnswer enforcing(const StoredPolicy& stored, const NextHopView& hop,
                          const SocketmapSettings& settings) {
  if (hop.dane == DaneCoverage::All) return {SocketmapStatus::Ok, "dane-only", "dane-only"};
  const StsPolicyFacts facts{stored.domain, split_policy_lines(stored.raw), stored.policy.mx,
                             match_list_for(stored.policy.mx, hop.mx_hosts)};
  auto data = sts_answer_data(facts, settings.attributes);
  // A policy line the attributes cannot carry costs the report, not the
  // mail: the hosts are still verified (logged as enforce-no-attributes).
  if (!data && settings.attributes == TlsrptAttributes::Append) {
    data = sts_answer_data(facts, TlsrptAttributes::Omit);
    if (data) return {SocketmapStatus::Ok, std::move(data.value()), "enforce-no-attributes"};
  }
  if (!data)
    return {SocketmapStatus::Temp,
            "MTA-STS policy of " + stored.domain +
                " cannot be expressed: " + std::string(to_string(data.error())),
            "unusable-policy"};
  return {SocketmapStatus::Ok, std::move(data.value()), "enforce"};
}

}  // namespace

bool socketmap_enforces(const Resolution& resolution, const SocketmapSettings& settings) {
  return resolution.policy && policy_enforces(*resolution.policy, settings) &&
         settings.enforcement == Enforcement::On;
}

SocketmapAnswer choose_socketmap_answer(const Resolution& resolution, const NextHopView& hop,
                                        const SocketmapSettings& settings) {
  if (!resolution.policy) return without_policy(resolution);
  if (socketmap_enforces(resolution, settings)) return enforcing(*resolution.policy, hop, settings);
  // Switched off by the operator: Postfix's own default level applies, even
  // where the policy could not be expressed (that TEMP would block mail the
  // operator chose to let through).
  if (policy_enforces(*resolution.policy, settings)) return {SocketmapStatus::NotFound, "", "enforce-off"};
  if (resolution.policy->policy.mode == Mode::Testing) return {SocketmapStatus::NotFound, "", "testing"};
  return {SocketmapStatus::NotFound, "", "mode-none"};
}

}  // namespace mtasts::policy
