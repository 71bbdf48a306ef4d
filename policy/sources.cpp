// Report strings for the DNS view types of sources.h (logs, JSON, CLI).
#include "policy/sources.h"

namespace mtasts::policy {

std::string_view to_string(DnsSecurity security) {
  switch (security) {
    case DnsSecurity::Secure:
      return "secure";
    case DnsSecurity::Insecure:
      return "insecure";
    case DnsSecurity::Bogus:
      return "bogus";
  }
  return "bogus";  // out-of-range value: report the unsafe view
}

std::string_view to_string(DnsStatus status) {
  switch (status) {
    case DnsStatus::Ok:
      return "ok";
    case DnsStatus::NxDomain:
      return "nxdomain";
    case DnsStatus::NoData:
      return "nodata";
    case DnsStatus::ServFail:
      return "servfail";
    case DnsStatus::Timeout:
      return "timeout";
  }
  return "servfail";
}

}  // namespace mtasts::policy
