// The MTA-STS policy body parser, RFC 8461 §3.2 (size limit from §3.3).
//
// Decisions the RFC leaves open, made here on purpose:
// - Line ends: LF or CRLF, mixed freely (§3.2 `sts-policy-term = LF / CRLF`,
//   see also erratum 6253). A CR that is not directly before an LF is a control
//   character and makes the body invalid.
// - Blank lines: the ABNF allows no empty line between fields and one optional
//   final terminator. Real policies are often written by editors that add one
//   more newline, so blank (empty or whitespace-only) lines at the END of the
//   body are tolerated; a blank line followed by another field is a
//   "blank-line" error.
// - Leading whitespace before a key is not allowed (the published ABNF starts
//   every line with the field name; a leading WSP would read as an RFC 5322
//   continuation line), so " mode: enforce" is a "bad-key".
// - max_age "0" matches `1*10DIGIT` and §3.2 calls max_age a "non-negative
//   integer", so it is accepted: the policy applies to the delivery that
//   fetched it and is stale at once. Rejecting it would instead keep an older
//   cached policy alive, which is the less predictable outcome.
// - Duplicates of version/mode/max_age: only the first occurrence is read
//   (and validated); later ones are ignored, even if the first one is bad.
// - Extension values must be non-empty, well-formed UTF-8 (RFC 3629), as
//   `sts-policy-ext-value` requires at least one sts-policy-vchar.
// - A line with a control character is reported once; its key still counts as
//   "seen" so that lint output does not add a misleading "missing-*" issue.
//
// Rule codes (stable, used by lint): too-large, control-character,
// blank-line, not-a-field, bad-key, non-ascii, empty-value, bad-utf8,
// missing-version, bad-version, missing-mode, bad-mode, missing-max-age,
// bad-max-age, missing-mx, bad-mx-pattern.
#include "policy/policy.h"
#include "policy/ascii.h"

#include <algorithm>
#include <unordered_set>
#include <utility>

namespace mtasts::policy {
namespace {

constexpr std::string_view kWsp = " \t";
constexpr std::size_t kMaxKeyLength = 32;      // (ALPHA / DIGIT) *31(...)
constexpr std::size_t kMaxAgeDigits = 10;      // 1*10DIGIT
constexpr std::size_t kMaxLabelLength = 63;    // RFC 1035 §2.3.4
constexpr std::size_t kMaxDomainLength = 253;  // text form, no trailing dot

struct Line {
  std::size_t number = 0;
  std::string_view text;  // without its terminator
};

struct Field {
  std::size_t line = 0;
  std::string_view value;
  bool usable = true;  // false when the line was already reported as broken
};

struct Fields {
  std::optional<Field> version;
  std::optional<Field> mode;
  std::optional<Field> max_age;
  std::vector<Field> mx;
};

bool is_non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }
bool has_non_ascii(std::string_view s) { return std::any_of(s.begin(), s.end(), is_non_ascii); }

// CTL = %x00-1F / %x7F; HTAB is allowed as WSP.
bool is_control(char c) { return is_ascii_control(c) && c != '\t'; }

bool is_blank(std::string_view s) { return s.find_first_not_of(kWsp) == std::string_view::npos; }

std::string_view trim_wsp(std::string_view s) {
  const auto first = s.find_first_not_of(kWsp);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kWsp) - first + 1);
}

// Splits at LF, dropping one CR before each LF. A final line without a
// terminator is a line; the empty remainder after a final LF is not.
std::vector<Line> split_lines(std::string_view body) {
  std::vector<Line> lines;
  std::size_t number = 1;
  while (!body.empty()) {
    const auto lf = body.find('\n');
    std::string_view text = body.substr(0, lf);
    if (lf != std::string_view::npos && !text.empty() && text.back() == '\r') text.remove_suffix(1);
    lines.push_back(Line{number++, text});
    if (lf == std::string_view::npos) break;
    body.remove_prefix(lf + 1);
  }
  while (!lines.empty() && is_blank(lines.back().text)) lines.pop_back();
  return lines;
}

// sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
bool is_valid_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyLength || !is_ascii_alnum(key.front())) return false;
  return std::all_of(key.begin(), key.end(),
                     [](char c) { return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// Length of the UTF-8 sequence starting with lead byte `u` (RFC 3629 §4),
// 0 when `u` cannot start one.
std::size_t utf8_length(unsigned char u) {
  if (u < 0x80) return 1;
  if (u >= 0xc2 && u <= 0xdf) return 2;
  if (u >= 0xe0 && u <= 0xef) return 3;
  if (u >= 0xf0 && u <= 0xf4) return 4;
  return 0;
}

// Well-formed UTF-8 per RFC 3629: no overlong forms, surrogates, or code
// points above U+10FFFF.
bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const std::size_t n = utf8_length(lead);
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto u = static_cast<unsigned char>(s[i + k]);
      unsigned char lo = 0x80;
      unsigned char hi = 0xbf;
      if (k == 1 && lead == 0xe0) lo = 0xa0;  // overlong 3-byte
      if (k == 1 && lead == 0xed) hi = 0x9f;  // surrogates
      if (k == 1 && lead == 0xf0) lo = 0x90;  // overlong 4-byte
      if (k == 1 && lead == 0xf4) hi = 0x8f;  // above U+10FFFF
      if (u < lo || u > hi) return false;
    }
    i += n;
  }
  return true;
}

// sts-policy-max-age-value = 1*10DIGIT; values above the cap are capped.
std::optional<std::uint32_t> parse_max_age(std::string_view value) {
  if (value.empty() || value.size() > kMaxAgeDigits ||
      !std::all_of(value.begin(), value.end(), is_ascii_digit)) {
    return std::nullopt;
  }
  std::uint64_t seconds = 0;
  for (const char c : value) seconds = seconds * 10 + static_cast<std::uint64_t>(c - '0');
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(seconds, kMaxAgeCap));
}

std::optional<Mode> parse_mode(std::string_view value) {
  if (value == "enforce") return Mode::Enforce;
  if (value == "testing") return Mode::Testing;
  if (value == "none") return Mode::None;
  return std::nullopt;
}

// One label of RFC 5321 `Domain`: Let-dig [Ldh-str], at most 63 octets.
// Returns why it is bad, or an empty view when it is fine.
std::string_view label_problem(std::string_view label) {
  if (label.empty()) return "has an empty label";
  if (label.size() > kMaxLabelLength) return "has a label longer than 63 characters";
  if (label.find('*') != std::string_view::npos) return "has a wildcard that is not the whole leftmost label";
  const bool ldh =
      std::all_of(label.begin(), label.end(), [](char c) { return is_ascii_alnum(c) || c == '-'; });
  if (!ldh) return "has a character other than letters, digits and hyphens";
  if (label.front() == '-' || label.back() == '-') return "has a label that starts or ends with a hyphen";
  return {};
}

}  // namespace

// sts-policy-mx-value = ["*."] Domain (RFC 8461 §3.2, §4.1). A byte that is
// not ASCII fails the LDH check. Returns why it is bad, or an empty view.
std::string_view mx_pattern_problem(std::string_view pattern) {
  if (pattern.empty()) return "is empty";
  if (pattern.back() == '.') return "ends with a dot";
  std::string_view domain = pattern;
  if (domain.starts_with("*.")) domain.remove_prefix(2);
  if (domain.empty() || domain == "*") return "is a bare wildcard";
  if (domain.size() > kMaxDomainLength) return "is longer than 253 characters";
  while (true) {
    const auto dot = domain.find('.');
    if (const auto problem = label_problem(domain.substr(0, dot)); !problem.empty()) return problem;
    if (dot == std::string_view::npos) return {};
    domain.remove_prefix(dot + 1);
  }
}

std::vector<std::string_view> policy_text_lines(std::string_view body) {
  std::vector<std::string_view> texts;
  for (const Line& line : split_lines(body)) texts.push_back(line.text);
  return texts;
}

namespace {

class Parser {
 public:
  PolicyParse run(std::string_view body) {
    if (body.size() > kMaxPolicyBytes) {
      add(0, "too-large", "The policy is larger than 64 KiB (RFC 8461 §3.3).");
      return finish({});
    }
    for (const Line& line : split_lines(body)) read_line(line);
    Policy policy;
    check_version();
    check_mode(policy);
    check_max_age(policy);
    check_mx(policy);
    return finish(std::move(policy));
  }

 private:
  void add(std::size_t line, std::string_view rule, std::string message) {
    issues_.push_back(PolicyIssue{line, std::string(rule), std::move(message)});
  }

  // Issues in line order (whole-body ones, line 0, first) so lint reads top-down.
  PolicyParse finish(Policy policy) {
    std::stable_sort(issues_.begin(), issues_.end(),
                     [](const PolicyIssue& a, const PolicyIssue& b) { return a.line < b.line; });
    PolicyParse result;
    if (issues_.empty()) result.policy = std::move(policy);
    result.issues = std::move(issues_);
    return result;
  }

  // Line-level syntax; at most one issue per line. Known fields are stored
  // for the per-key checks, unknown (extension) fields are checked and dropped.
  void read_line(const Line& line) {
    const bool broken = std::any_of(line.text.begin(), line.text.end(), is_control);
    if (broken)
      add(line.number, "control-character",
          "The line contains a control character (NUL, CR without LF, ...).");
    if (!broken && is_blank(line.text)) {
      add(line.number, "blank-line", "Blank lines are not allowed between fields.");
      return;
    }
    const auto colon = line.text.find(':');
    if (colon == std::string_view::npos) {
      if (!broken) add(line.number, "not-a-field", "The line is not a `key: value` field.");
      return;
    }
    const auto key = line.text.substr(0, colon);
    if (!is_valid_key(key)) {
      if (!broken) report_bad_key(line.number, key);
      return;
    }
    const Field field{line.number, trim_wsp(line.text.substr(colon + 1)), !broken};
    if (!store_known(key, field) && !broken) check_extension(field);
  }

  void report_bad_key(std::size_t line, std::string_view key) {
    if (has_non_ascii(key)) {
      add(line, "non-ascii", "The field name contains non-ASCII characters.");
    } else {
      add(line, "bad-key",
          "The field name must be a letter or digit then up to 31 of letters, digits, "
          "'_', '-', '.', directly followed by ':'.");
    }
  }

  // Keeps the first version/mode/max_age and every mx; false for other keys.
  bool store_known(std::string_view key, const Field& field) {
    std::optional<Field>* single = nullptr;
    if (key == "version") single = &fields_.version;
    if (key == "mode") single = &fields_.mode;
    if (key == "max_age") single = &fields_.max_age;
    if (single != nullptr) {
      if (!single->has_value()) *single = field;
      return true;
    }
    if (key == "mx") {
      fields_.mx.push_back(field);
      return true;
    }
    return false;
  }

  void check_extension(const Field& field) {
    if (field.value.empty()) {
      add(field.line, "empty-value", "The field has no value.");
    } else if (!is_valid_utf8(field.value)) {
      add(field.line, "bad-utf8", "The extension field value is not valid UTF-8.");
    }
  }

  // Shared by the known fields: present, not already reported, ASCII only.
  bool usable_ascii(const std::optional<Field>& field, std::string_view missing_rule, std::string_view name) {
    if (!field) {
      add(0, missing_rule, "The policy has no `" + std::string(name) + "` field.");
      return false;
    }
    if (!field->usable) return false;
    if (has_non_ascii(field->value)) {
      add(field->line, "non-ascii", "The `" + std::string(name) + "` value contains non-ASCII characters.");
      return false;
    }
    return true;
  }

  void check_version() {
    if (!usable_ascii(fields_.version, "missing-version", "version")) return;
    if (fields_.version->value != "STSv1") {
      add(fields_.version->line, "bad-version", "The version must be exactly `STSv1`.");
    }
  }

  void check_mode(Policy& policy) {
    if (!usable_ascii(fields_.mode, "missing-mode", "mode")) return;
    if (const auto mode = parse_mode(fields_.mode->value)) {
      policy.mode = *mode;
      mode_known_ = true;
    } else {
      add(fields_.mode->line, "bad-mode", "The mode must be `enforce`, `testing` or `none` (lower case).");
    }
  }

  void check_max_age(Policy& policy) {
    if (!usable_ascii(fields_.max_age, "missing-max-age", "max_age")) return;
    if (const auto seconds = parse_max_age(fields_.max_age->value)) {
      policy.max_age = *seconds;
    } else {
      add(fields_.max_age->line, "bad-max-age", "max_age must be 1 to 10 decimal digits.");
    }
  }

  void check_mx(Policy& policy) {
    std::unordered_set<std::string> seen;
    for (const Field& field : fields_.mx) {
      if (!field.usable) continue;
      if (has_non_ascii(field.value)) {
        add(field.line, "non-ascii", "The mx pattern must be ASCII (use the A-label form, xn--...).");
        continue;
      }
      if (const auto problem = mx_pattern_problem(field.value); !problem.empty()) {
        add(field.line, "bad-mx-pattern", "The mx pattern " + std::string(problem) + ".");
        continue;
      }
      auto pattern = ascii_lowercase(field.value);
      if (seen.insert(pattern).second) policy.mx.push_back(std::move(pattern));
    }
    if (mode_known_ && policy.mode != Mode::None && fields_.mx.empty()) {
      add(0, "missing-mx", "Mode enforce and testing need at least one `mx` field.");
    }
  }

  std::vector<PolicyIssue> issues_;
  Fields fields_;
  bool mode_known_ = false;
};

}  // namespace

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::Enforce:
      return "enforce";
    case Mode::Testing:
      return "testing";
    case Mode::None:
      return "none";
  }
  return "none";
}

PolicyParse parse_policy(std::string_view body) { return Parser{}.run(body); }

}  // namespace mtasts::policy
