// Rdata decoders, moved out of unbound_dns.cpp unchanged so that they can be
// fuzzed on their own (tests/fuzz/fuzz_dns_wire.cpp).
//
// libunbound hands out rdata with every domain name already expanded
// (util/data/msgparse.c decompresses the names of known types such as MX
// before it stores an RRset, and refuses a message whose names run past
// their rdata or whose MX rdata is empty), but it passes bytes after the
// name and any TLSA rdata through untouched; the hermetic CraftedMxRdata /
// CraftedTlsaRdata tests pin this down. The checks below assume nothing.
#include "policy/net/dns_wire.h"
#include "policy/ascii.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <utility>

namespace mtasts::policy::net {
namespace {

constexpr std::size_t kMaxLabel = 63;      // RFC 1035 §2.3.4; 0x40-0xFF are pointers/reserved
constexpr std::size_t kMaxWireName = 255;  // RFC 1035 §3.1

bool is_ldh(std::string_view label) {
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::uint16_t read_u16(std::string_view bytes, std::size_t pos) {
  const auto high = static_cast<unsigned char>(bytes.at(pos));
  const auto low = static_cast<unsigned char>(bytes.at(pos + 1));
  return static_cast<std::uint16_t>((high << 8) | low);
}

}  // namespace

std::optional<std::string> join_character_strings(std::string_view rdata) {
  std::string joined;
  std::size_t pos = 0;
  while (pos < rdata.size()) {
    const std::size_t len = static_cast<unsigned char>(rdata[pos]);
    ++pos;
    if (len > rdata.size() - pos) return std::nullopt;
    joined.append(rdata.substr(pos, len));
    pos += len;
  }
  return joined;
}

std::optional<std::string> address_text(std::string_view rdata, int family, std::size_t size) {
  if (rdata.size() != size) return std::nullopt;
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (inet_ntop(family, rdata.data(), text.data(), text.size()) == nullptr) return std::nullopt;
  return std::string{text.data()};
}

std::optional<std::string> wire_name_text(std::string_view wire) {
  std::string text;
  std::size_t pos = 0;
  while (true) {
    if (pos >= wire.size() || pos >= kMaxWireName) return std::nullopt;
    const std::size_t len = static_cast<unsigned char>(wire[pos]);
    ++pos;
    if (len == 0) break;
    if (len > kMaxLabel || len > wire.size() - pos) return std::nullopt;
    const std::string_view label = wire.substr(pos, len);
    if (!is_ldh(label)) return std::nullopt;
    if (!text.empty()) text += '.';
    std::transform(label.begin(), label.end(), std::back_inserter(text), ascii_lower);
    pos += len;
  }
  if (pos != wire.size()) return std::nullopt;
  return text;
}

std::optional<MxRecord> parse_mx(std::string_view rdata) {
  constexpr std::size_t kPreference = 2;
  if (rdata.size() <= kPreference) return std::nullopt;
  auto host = wire_name_text(rdata.substr(kPreference));
  if (!host) return std::nullopt;
  return MxRecord{read_u16(rdata, 0), std::move(*host)};
}

std::optional<TlsaRecord> parse_tlsa(std::string_view rdata) {
  constexpr std::size_t kFixed = 3;
  if (rdata.size() <= kFixed) return std::nullopt;
  TlsaRecord record;
  record.usage = static_cast<std::uint8_t>(rdata[0]);
  record.selector = static_cast<std::uint8_t>(rdata[1]);
  record.matching_type = static_cast<std::uint8_t>(rdata[2]);
  const std::string_view data = rdata.substr(kFixed);
  record.data.assign(data.begin(), data.end());
  return record;
}

}  // namespace mtasts::policy::net
