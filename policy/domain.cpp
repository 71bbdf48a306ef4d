// Recipient-domain normalisation.
// RFC 8461 §3.4 (the policy applies to the exact domain), RFC 5890 §2.3
// (LDH labels, A-labels), RFC 1035 §2.3.4 (63-octet labels, 255-octet names
// on the wire = 253 characters of text without the root dot), RFC 3696 §2
// (no all-numeric top-level label), UTS #46 non-transitional via libidn2.
#include "policy/domain.h"
#include "policy/ascii.h"

#include <arpa/inet.h>
#include <idn2.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>

namespace mtasts::policy {
namespace {

constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxName = 253;
// UTS #46 mapping can delete characters (soft hyphen, joiners), so input may
// be longer than the result; the bound only keeps libidn2's work small.
constexpr std::size_t kMaxInput = 1024;

struct IdnFree {
  void operator()(char* p) const { idn2_free(p); }
};
using IdnString = std::unique_ptr<char, IdnFree>;

Error invalid(std::string detail) { return Error{"invalid-name", std::move(detail)}; }

bool is_ldh(char c) { return (c >= 'a' && c <= 'z') || is_ascii_digit(c) || c == '-'; }
bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}
bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}
bool all_digits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_ascii_digit); }

std::string_view strip_root_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

// Splits on '.', keeping empty labels so the caller can reject them.
template <class F>
void for_each_label(std::string_view name, F&& f) {
  for (;;) {
    const auto dot = name.find('.');
    f(name.substr(0, dot));
    if (dot == std::string_view::npos) return;
    name.remove_prefix(dot + 1);
  }
}

// Bare IP text: IPv6 (inet_pton), "IPv6:" tagged text, or any dotted-numeric
// form (inet_aton also accepts "127.1" and "2130706433" as IPv4).
bool looks_like_ip(std::string_view raw) {
  const std::string_view s = strip_root_dot(raw);
  if (s.empty()) return false;
  if (s.size() >= 5 &&
      std::equal(s.begin(), s.begin() + 5, "ipv6:", [](char a, char b) { return ascii_lower(a) == b; })) {
    return true;
  }
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET6, std::string(s).c_str(), buf.data()) == 1) return true;
  bool numeric = true;
  for_each_label(s, [&](std::string_view label) { numeric = numeric && all_digits(label); });
  return numeric;
}

// The LDH rules on the final A-label name (no trailing dot any more).
std::optional<std::string> ldh_problem(std::string_view name) {
  if (name.empty()) return "the root name is not a mail domain";
  if (name.size() > kMaxName) return "name longer than 253 octets";
  std::optional<std::string> problem;
  std::string_view last;
  for_each_label(name, [&](std::string_view label) {
    last = label;
    if (problem) return;
    if (label.empty()) {
      problem = "empty label";
    } else if (label.size() > kMaxLabel) {
      problem = "label longer than 63 octets";
    } else if (!std::all_of(label.begin(), label.end(), is_ldh)) {
      problem = "character outside letters, digits and hyphen";
    } else if (label.front() == '-' || label.back() == '-') {
      problem = "label starts or ends with a hyphen";
    }
  });
  if (!problem && all_digits(last)) problem = "all-numeric top-level label";
  return problem;
}

// An "xn--" label must be a valid A-label: libidn2 accepts it and gives it
// back unchanged (round trip).
bool valid_a_label(std::string_view label) {
  char* out = nullptr;
  const int rc = idn2_to_ascii_8z(std::string(label).c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  const IdnString owned(out);
  return rc == IDN2_OK && owned && label == owned.get();
}

// All-ASCII input holds no U-labels: UTS #46 would only lower-case it. We
// skip libidn2's CheckHyphens rule for ordinary labels so reserved-LDH host
// names such as "r3--sn-abc" (RFC 5890 §2.3.1 allows them as host names, and
// real MX hosts use them) still normalise; "xn--" labels are validated.
Result<std::string> map_ascii(std::string_view input) {
  std::string name(input.size(), '\0');
  std::transform(input.begin(), input.end(), name.begin(), ascii_lower);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (auto problem = ldh_problem(name)) return invalid(*problem);
  bool ok = true;
  for_each_label(name, [&](std::string_view label) {
    if (ok && label.substr(0, 4) == "xn--") ok = valid_a_label(label);
  });
  if (!ok) return Error{"idna", "invalid A-label (xn--) in \"" + name + "\""};
  return name;
}

Result<std::string> map_unicode(std::string_view input) {
  char* out = nullptr;
  const int rc = idn2_to_ascii_8z(std::string(input).c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  const IdnString owned(out);
  if (rc != IDN2_OK || !owned) {
    return Error{"idna", std::string("libidn2: ") + idn2_strerror_name(rc)};
  }
  std::string name(owned.get());
  std::transform(name.begin(), name.end(), name.begin(), ascii_lower);
  // UTS #46 maps ideographic and full-width full stops to '.', so the root
  // dot can appear only now.
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (looks_like_ip(name)) return Error{"address-literal", "IP address, not a domain"};
  if (auto problem = ldh_problem(name)) return invalid(*problem);
  return name;
}

}  // namespace

Result<std::string> normalize_domain(std::string_view input) {
  if (input.empty()) return Error{"empty", "empty domain"};
  if (input.front() == '[' || input.back() == ']') {
    return Error{"address-literal", "address literals never have a policy"};
  }
  if (input.size() > kMaxInput) return invalid("input longer than 1024 octets");
  // Checked before any C call: a NUL would silently truncate the name.
  if (has_control(input)) return invalid("NUL or control character");
  if (looks_like_ip(input)) return Error{"address-literal", "IP address, not a domain"};
  return is_ascii(input) ? map_ascii(input) : map_unicode(input);
}

std::string_view address_domain(std::string_view address) {
  if (!address.empty() && address.front() == '<') address.remove_prefix(1);
  if (!address.empty() && address.back() == '>') address.remove_suffix(1);
  // The last '@': a quoted local part may itself contain '@'.
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return address.substr(at + 1);
}

}  // namespace mtasts::policy
