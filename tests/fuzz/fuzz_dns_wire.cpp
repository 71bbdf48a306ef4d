// libFuzzer target: the rdata decoders of policy/net/dns_wire.h on arbitrary
// bytes (the same bytes as TXT, A/AAAA, MX, TLSA rdata and as a bare name).
// Checks against the wire formats: success exactly when the bytes are well
// formed, and a decoded value encoded again gives the bytes back (names
// lower-cased, as the decoder promises).
#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "policy/net/dns_wire.h"

namespace {

using namespace mtasts::policy::net;

void require(bool condition) {
  if (!condition) std::abort();
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view bytes) {
  std::string out(bytes);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// RFC 1035 §3.3.14: a length octet and that many octets, repeated.
void check_txt(std::string_view rdata) {
  std::size_t pos = 0, strings = 0;
  bool well_formed = true;
  while (pos < rdata.size() && well_formed) {
    const std::size_t len = static_cast<unsigned char>(rdata[pos]);
    well_formed = len <= rdata.size() - pos - 1;
    pos += 1 + len;
    ++strings;
  }
  const auto joined = join_character_strings(rdata);
  require(joined.has_value() == well_formed);
  if (!joined) return;
  require(joined->size() + strings == rdata.size());
  // Encoded again in 255-octet strings and decoded: the same text.
  std::string encoded;
  for (std::size_t at = 0; at < joined->size(); at += 255) {
    const std::string_view piece = std::string_view(*joined).substr(at, 255);
    encoded += static_cast<char>(piece.size());
    encoded += piece;
  }
  const auto again = join_character_strings(encoded);
  require(again && *again == *joined);
}

void check_address(std::string_view rdata) {
  struct Family {
    int family;
    std::size_t size;
  };
  for (const Family f : {Family{AF_INET, 4}, Family{AF_INET6, 16}}) {
    const auto text = address_text(rdata, f.family, f.size);
    require(text.has_value() == (rdata.size() == f.size));
    if (!text) continue;
    std::array<unsigned char, 16> back{};
    require(inet_pton(f.family, text->c_str(), back.data()) == 1);
    require(std::memcmp(back.data(), rdata.data(), f.size) == 0);
  }
}

bool ldh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// RFC 1035 §3.1, no compression: labels of 1-63 LDH octets, a root label that
// ends the bytes, at most 255 octets in all.
bool well_formed_name(std::string_view wire) {
  std::size_t pos = 0;
  while (pos < wire.size()) {
    const std::size_t len = static_cast<unsigned char>(wire[pos]);
    if (len == 0) return pos + 1 == wire.size() && wire.size() <= 255;
    if (len > 63 || len > wire.size() - pos - 1) return false;
    for (const char c : wire.substr(pos + 1, len)) {
      if (!ldh(c)) return false;
    }
    pos += 1 + len;
  }
  return false;  // no root label
}

std::string name_to_wire(const std::string& text) {
  std::string wire;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t dot = text.find('.', start);
    const std::size_t end = dot == std::string::npos ? text.size() : dot;
    wire += static_cast<char>(end - start);
    wire.append(text, start, end - start);
    start = end + 1;
  }
  return wire + '\0';
}

void check_name(std::string_view wire) {
  const auto text = wire_name_text(wire);
  require(text.has_value() == well_formed_name(wire));
  if (!text) return;
  require(text->size() <= 253 && (text->empty() || text->back() != '.'));
  require(text->find("..") == std::string::npos && (text->empty() || text->front() != '.'));
  for (const char c : *text) require(c == '.' || (ldh(c) && !(c >= 'A' && c <= 'Z')));
  require(name_to_wire(*text) == lowered(wire));
}

std::string u16(std::uint16_t value) {
  return {static_cast<char>(value >> 8), static_cast<char>(value & 0xff)};
}

void check_mx(std::string_view rdata) {
  const auto mx = parse_mx(rdata);
  require(mx.has_value() == (rdata.size() > 2 && well_formed_name(rdata.substr(2))));
  if (!mx) return;
  require(u16(mx->preference) + name_to_wire(mx->host) ==
          std::string(rdata.substr(0, 2)) + lowered(rdata.substr(2)));
}

void check_tlsa(std::string_view rdata) {
  const auto tlsa = parse_tlsa(rdata);
  require(tlsa.has_value() == (rdata.size() > 3));
  if (!tlsa) return;
  std::string encoded{static_cast<char>(tlsa->usage), static_cast<char>(tlsa->selector),
                      static_cast<char>(tlsa->matching_type)};
  encoded.append(tlsa->data.begin(), tlsa->data.end());
  require(encoded == rdata);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view rdata(reinterpret_cast<const char*>(data), size);
  check_txt(rdata);
  check_address(rdata);
  check_name(rdata);
  check_mx(rdata);
  check_tlsa(rdata);
  return 0;
}
