// Recipient-domain normalisation: the one place a domain name from outside
// (an address, a macro, the command line) becomes the name we look up.
// RFC 8461 §3.4 (policy applies to the exact domain), RFC 5890 (A-labels),
// UTS #46 non-transitional processing via libidn2.
#pragma once

#include <string>
#include <string_view>

#include "policy/result.h"

namespace mtasts::policy {

// Returns the normalised A-label form: lower case, one trailing dot removed,
// U-labels converted to A-labels (UTS #46 non-transitional).
// Errors (code): "empty", "address-literal" (e.g. "[192.0.2.1]", never has a
// policy), "invalid-name" (empty label, label > 63 octets, name > 253 octets,
// characters outside LDH after conversion, leading/trailing hyphen),
// "idna" (libidn2 refused the U-label). Thread-safe, no I/O.
Result<std::string> normalize_domain(std::string_view input);

// The domain part of an address ("user@Example.COM" -> "Example.COM",
// "<user@x>" -> "x"); empty when there is no '@'. Not normalised.
std::string_view address_domain(std::string_view address);

}  // namespace mtasts::policy
