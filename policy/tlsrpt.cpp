// RFC 8460 §4.3 result types and their exact report strings.
#include "policy/tlsrpt.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <utility>

#include "policy/ascii.h"

namespace mtasts::policy {
namespace {

constexpr std::array<std::pair<ResultType, std::string_view>, 11> kNames{{
    {ResultType::StartTlsNotSupported, "starttls-not-supported"},  // §4.3.1
    {ResultType::CertificateHostMismatch, "certificate-host-mismatch"},
    {ResultType::CertificateExpired, "certificate-expired"},
    {ResultType::CertificateNotTrusted, "certificate-not-trusted"},
    {ResultType::ValidationFailure, "validation-failure"},
    {ResultType::TlsaInvalid, "tlsa-invalid"},  // §4.3.2.1
    {ResultType::DnssecInvalid, "dnssec-invalid"},
    {ResultType::DaneRequired, "dane-required"},
    {ResultType::StsPolicyFetchError, "sts-policy-fetch-error"},  // §4.3.2.2
    {ResultType::StsPolicyInvalid, "sts-policy-invalid"},
    {ResultType::StsWebpkiInvalid, "sts-webpki-invalid"},
}};

bool is_wsp_or_cr(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

// Lines of LF- or CRLF-separated text, trailing WSP cut, empty lines dropped.
std::vector<std::string> policy_string_lines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    while (!line.empty() && is_wsp_or_cr(line.back())) line.remove_suffix(1);
    if (!line.empty()) lines.emplace_back(line);
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return lines;
}

std::vector<std::string> mx_pattern_words(std::string_view text) {
  std::vector<std::string> words;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find(' '), text.size());
    if (end > 0) words.emplace_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return words;
}

std::string_view to_string(ResultType type) {
  for (const auto& [value, name] : kNames) {
    if (value == type) return name;
  }
  return "validation-failure";  // unreachable for valid enum values
}

std::optional<ResultType> result_type_from_string(std::string_view text) {
  for (const auto& [value, name] : kNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string utc_day(std::int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_days days = floor<std::chrono::days>(sys_seconds{seconds{unix_seconds}});
  const year_month_day ymd{days};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return text;
}

std::optional<std::int64_t> utc_day_start(std::string_view day) {
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return std::nullopt;
  for (const std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!is_ascii_digit(day[i])) return std::nullopt;
  }
  const auto number = [&](std::size_t pos, std::size_t len) {
    int value = 0;
    for (std::size_t i = pos; i < pos + len; ++i) value = value * 10 + (day[i] - '0');
    return value;
  };
  const std::chrono::year_month_day ymd{std::chrono::year{number(0, 4)},
                                        std::chrono::month{static_cast<unsigned>(number(5, 2))},
                                        std::chrono::day{static_cast<unsigned>(number(8, 2))}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_seconds{std::chrono::sys_days{ymd}}.time_since_epoch().count();
}

}  // namespace mtasts::policy
