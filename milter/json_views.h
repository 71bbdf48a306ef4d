// JSON shapes the CLI prints and reads. Keys are part of the operator
// interface (README, "check --json"): never rename them once released.
#pragma once

#include <nlohmann/json.hpp>

#include "policy/engine/resolver.h"
#include "policy/policy.h"

namespace mtasts::milter {

nlohmann::json policy_json(const policy::Policy& policy);     // {mode, max_age, mx}
nlohmann::json resolution_json(const policy::Resolution& r);  // `check --json`
nlohmann::json stored_json(const policy::StoredPolicy& p);    // `cache export` line

// Reads one `cache import` line. Errors: "import-json" (not an object or a
// missing/mistyped key), "import-domain" (bad domain), "import-policy" (raw
// does not parse). Missing times default from `now` and the policy's max_age.
policy::Result<policy::StoredPolicy> stored_from_json(const nlohmann::json& j, std::int64_t now);

}  // namespace mtasts::milter
