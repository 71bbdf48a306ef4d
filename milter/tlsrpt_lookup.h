// A policy domain's _smtp._tls record (RFC 8460 §3) through the daemon's
// DNSSEC-validating resolver: for `report send` (where to deliver) and for
// the datagram forwarder (the record a libtlsrpt datagram carries).
#pragma once

#include <optional>
#include <string>

#include "milter/report_sender.h"
#include "policy/sources.h"

namespace mtasts::milter {

class DnsDestinationLookup final : public DestinationLookup {
 public:
  explicit DnsDestinationLookup(policy::Dns& dns) : dns_(dns) {}
  DestinationAnswer lookup(const std::string& policy_domain) override;

 private:
  policy::Dns& dns_;
};

// The text of DOMAIN's one valid record; nullopt when it has none, or the
// lookup failed or was bogus.
std::optional<std::string> tlsrpt_record_text(policy::Dns& dns, const std::string& domain);

}  // namespace mtasts::milter
