// ProbeOutcome names; the types are in the header.
#include "policy/probe.h"

namespace mtasts::policy {

std::string_view to_string(ProbeOutcome outcome) {
  switch (outcome) {
    case ProbeOutcome::Verified:
      return "verified";
    case ProbeOutcome::DaneVerified:
      return "dane-verified";
    case ProbeOutcome::TlsFailure:
      return "tls-failure";
    case ProbeOutcome::Unreachable:
      break;
  }
  return "unreachable";
}

}  // namespace mtasts::policy
