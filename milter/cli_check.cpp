// `check`: resolve one domain now (RFC 8461 §3.3 and §5.1), through the same
// engine, cache and store the daemon uses.
#include <chrono>
#include <iostream>

#include "milter/cli_commands.h"
#include "milter/json_views.h"
#include "milter/services.h"
#include "policy/domain.h"

namespace mtasts::milter {
namespace {

void print_human(const policy::Resolution& r) {
  std::cout << "domain: " << r.domain << "\nsource: " << policy::to_string(r.source)
            << "\ndnssec: " << policy::to_string(r.dnssec) << "\ntxt_id: " << r.txt_id.value_or("-") << "\n";
  if (r.policy) {
    const auto& p = r.policy->policy;
    std::cout << "policy: mode=" << policy::to_string(p.mode) << " max_age=" << p.max_age << " mx=";
    for (std::size_t i = 0; i < p.mx.size(); ++i) std::cout << (i ? "," : "") << p.mx[i];
    std::cout << "\nexpires_at: " << r.policy->expires_at << "\n";
  } else {
    std::cout << "policy: none\n";
  }
  if (r.result_type || !r.reason.empty())
    std::cout << "problem: " << (r.result_type ? policy::to_string(*r.result_type) : "-") << " "
              << shown_message(r.reason) << (r.temporary ? " (temporary)" : "") << "\n";
}

}  // namespace

int check_command(const Config& config, const std::string& domain_arg, bool json) {
  const auto domain = policy::normalize_domain(domain_arg);
  if (!domain) {
    std::cerr << "mta-sts-milter check: '" << shown_input(domain_arg) << "' is not a domain name ("
              << domain.error().code
              << (domain.error().detail.empty() ? "" : ": " + shown_message(domain.error().detail)) << ")\n";
    return kExitInvalid;
  }
  auto services = make_services(config);
  const auto wait = config.decision_deadline_ms > 0 ? std::chrono::milliseconds(config.decision_deadline_ms)
                                                    : std::chrono::milliseconds(std::chrono::minutes(10));
  const auto resolution = services->resolver->resolve(*domain, std::chrono::steady_clock::now() + wait);
  services->resolver->flush();
  if (json)
    std::cout << json_text(resolution_json(resolution)) << "\n";
  else
    print_human(resolution);
  return resolution.temporary ? kExitTempFail : kExitOk;
}

}  // namespace mtasts::milter
