// What policy discovery found for one policy domain (RFC 8461 §5.1): the
// engine's answer (policy/engine/resolver.h) and the input of the pure
// decision (decide.h). A value type: no I/O, no threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/sources.h"

namespace mtasts::policy {

enum class PolicySource {
  Cache,    // cached policy, TXT id current (or checked recently)
  Fetched,  // fetched over HTTPS during this call
  Stale,    // cached policy used because discovery failed (TXT gone, DNS or fetch error)
  None,     // no policy applies
};
std::string_view to_string(PolicySource source);  // "cache" | "fetched" | "stale" | "none"

struct Resolution {
  std::string domain;
  PolicySource source = PolicySource::None;
  DnsSecurity dnssec = DnsSecurity::Insecure;  // of the _mta-sts TXT answer (or cached)
  std::optional<std::string> txt_id;           // from DNS, or the cached one
  std::optional<StoredPolicy> policy;          // the policy that applies, if any
  std::optional<ResultType> result_type;       // discovery error, kept for reporting
  std::string reason;                          // its reason code ("" when none)
  // True when the answer is unknown because of a temporary error (no usable
  // policy, but one may exist): callers must not treat it as "no policy" for
  // anything but delivery under RFC 8461 §5.
  bool temporary = false;
  // True when this call looked up the TXT record and it confirmed the policy
  // (RFC 8461 §5.1: a permanent rejection needs a fresh check).
  bool fresh_txt_check = false;
};

}  // namespace mtasts::policy
