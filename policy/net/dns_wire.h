// Decoders for the rdata libunbound hands out (ub_result->data): the bytes of
// one record of a known type, as the authority sent them after libunbound's
// own checks. Used by unbound_dns.cpp; exposed for tests/fuzz. Every function
// is pure, thread-safe and bounds-checked, and returns nullopt for malformed
// rdata (which the caller logs and skips). Never throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/sources.h"

namespace mtasts::policy::net {

// TXT rdata (RFC 1035 §3.3.14): character-strings, each a length octet and
// that many octets, joined without separator (RFC 8461 §3.1 reads the
// concatenation). nullopt when a length runs past the end.
std::optional<std::string> join_character_strings(std::string_view rdata);

// A or AAAA rdata (RFC 1035 §3.4.1, RFC 3596 §2.2) as text: `family` is
// AF_INET with `size` 4 or AF_INET6 with `size` 16. nullopt when the rdata is
// not exactly `size` octets.
std::optional<std::string> address_text(std::string_view rdata, int family, std::size_t size);

// The uncompressed wire-format name (RFC 1035 §3.1) that fills `wire`
// exactly, as lower-case text without the trailing dot ("" for the root).
// nullopt for a compression pointer, a reserved label type, a label that is
// not letter-digit-hyphen (RFC 5321 §2.3.5), a name over 255 octets, a
// label running past the end, or bytes left after the root label.
std::optional<std::string> wire_name_text(std::string_view wire);

// MX rdata (RFC 1035 §3.3.9): PREFERENCE (16 bits, network order) and
// EXCHANGE as wire_name_text reads it. nullopt when either is malformed.
std::optional<MxRecord> parse_mx(std::string_view rdata);

// TLSA rdata (RFC 6698 §2.1): usage, selector, matching type (one octet
// each), then the certificate association data, which must be non-empty
// (nothing could match nothing). Field values are not judged here.
std::optional<TlsaRecord> parse_tlsa(std::string_view rdata);

}  // namespace mtasts::policy::net
