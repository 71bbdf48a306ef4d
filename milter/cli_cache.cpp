// `cache`: inspect and seed the policy cache (list, show, forget, import,
// export) and run one refresher pass (RFC 8461 §8.1 "refresh").
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "milter/cli_commands.h"
#include "milter/json_views.h"
#include "milter/services.h"
#include "policy/domain.h"

namespace mtasts::milter {
namespace {

int list_policies(policy::PolicyStore& store) {
  for (const auto& p : store.list()) {
    std::cout << p.domain << " mode=" << policy::to_string(p.policy.mode) << " txt_id=" << p.txt_id
              << " expires_at=" << p.expires_at << " dnssec=" << policy::to_string(p.dnssec)
              << (p.last_error.empty() ? "" : " last_error=" + shown_message(p.last_error)) << "\n";
  }
  return kExitOk;
}

int show_policy(policy::PolicyStore& store, const std::string& domain) {
  const auto p = store.load(domain);
  if (!p) {
    std::cerr << "mta-sts-milter cache show: no cached policy for " << domain << "\n";
    return kExitInvalid;
  }
  nlohmann::json j = stored_json(*p);
  j["policy"] = policy_json(p->policy);
  std::cout << json_text(j, 2) << "\n";
  return kExitOk;
}

int forget_policy(policy::PolicyStore& store, const std::string& domain) {
  const auto removed = store.forget(domain);
  const auto cleared = store.clear_failure(domain);
  if (!removed) {
    std::cerr << "mta-sts-milter cache forget: " << removed.error().detail << "\n";
    return kExitTempFail;
  }
  if (!*removed && !(cleared && *cleared)) {
    std::cerr << "mta-sts-milter cache forget: nothing cached for " << domain << "\n";
    return kExitInvalid;
  }
  return kExitOk;
}

int import_policies(policy::PolicyStore& store, const std::string& file, std::int64_t now) {
  std::ifstream in_file;
  std::istream* in = &std::cin;
  if (file != "-") {
    in_file.open(file);
    if (!in_file) {
      std::cerr << "mta-sts-milter cache import: cannot read " << shown_input(file) << "\n";
      return kExitInvalid;
    }
    in = &in_file;
  }
  std::size_t line_no = 0, imported = 0, rejected = 0;
  for (std::string line; std::getline(*in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    const auto p = j.is_discarded()
                       ? policy::Result<policy::StoredPolicy>(policy::Error{"import-json", "not JSON"})
                       : stored_from_json(j, now);
    const auto saved = p ? store.save(*p) : policy::Result<bool>(p.error());
    if (saved) {
      ++imported;
      continue;
    }
    ++rejected;
    std::cerr << shown_input(file) << ":" << line_no << ": " << saved.error().code << ": "
              << shown_message(saved.error().detail) << "\n";
  }
  std::cerr << "imported=" << imported << " rejected=" << rejected << "\n";
  return rejected == 0 ? kExitOk : kExitInvalid;
}

int export_policies(policy::PolicyStore& store) {
  for (const auto& p : store.list()) std::cout << json_text(stored_json(p)) << "\n";
  return kExitOk;
}

int refresh_policies(const Config& config, bool force) {
  auto services = make_services(config);
  const int refreshed = services->resolver->refresh_due(force);
  services->resolver->flush();
  std::cout << nlohmann::json{{"refreshed", refreshed}}.dump() << "\n";
  return kExitOk;
}

}  // namespace

int cache_command(const Config& config, const CacheArgs& args) {
  if (args.action == "refresh") return refresh_policies(config, args.force);
  std::string domain;  // show, forget: the name as the cache keys it ("Example.COM." is example.com)
  if (args.action == "show" || args.action == "forget") {
    const auto normalised = policy::normalize_domain(args.operand);
    if (!normalised) {
      std::cerr << "mta-sts-milter cache " << args.action << ": invalid domain '" << shown_input(args.operand)
                << "' (" << normalised.error().code << ")\n";
      return kExitInvalid;
    }
    domain = *normalised;
  }
  auto store = open_store(config);
  if (args.action == "list") return list_policies(*store);
  if (args.action == "show") return show_policy(*store, domain);
  if (args.action == "forget") return forget_policy(*store, domain);
  if (args.action == "import") return import_policies(*store, args.operand, SystemClock().now());
  if (args.action == "export") return export_policies(*store);
  return kExitInvalid;
}

}  // namespace mtasts::milter
