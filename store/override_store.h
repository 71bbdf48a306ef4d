// Per-domain overrides of the milter's decision actions: the table
// `overrides` (schema v3, store/schema.cpp) in the policy cache database,
// written by operators with plain sqlite3 (README "Per-domain overrides") and
// read by the milter at start-up and on every reload (SIGUSR1). A row applies
// to the POLICY domain (RFC 8461 §3.4: the recipient domain, or the smart
// host's domain), never to a parent domain. NULL columns mean "use the
// config". The rows are operator input: each is validated here, once, and a
// bad row is skipped with one warning naming it (`overrides event=invalid-row
// domain=... column=... value=...`) rather than failing the whole table.
// Thread-safe: reads through the shared Database's readers.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policy/result.h"
#include "store/database.h"

namespace mtasts::store {

// One validated row; a field left empty (NULL in the table) keeps the
// configured value ([decision] in the config file).
struct DomainOverride {
  std::optional<std::string> enforce_action;  // "tempfail" | "reject" | "quarantine" | "tag" | "off"
  std::optional<std::string> testing_action;  // "tag" | "off"
  std::optional<bool> strict_testing;         // stored as INTEGER 0 / 1
  bool operator==(const DomainOverride&) const = default;
};

// Key: the policy domain, normalised (policy/domain.h: A-label, lower case,
// no trailing dot) -- compare with CheckResult::policy_domain.
using DomainOverrides = std::map<std::string, DomainOverride>;

// The values the action columns accept: the same words as the config's
// decision.enforce_action / decision.testing_action.
bool valid_enforce_action(std::string_view value);
bool valid_testing_action(std::string_view value);

class OverrideStore {
 public:
  explicit OverrideStore(std::shared_ptr<Database> database);
  // Opens a Database of its own at `path` (creating and migrating it).
  // Throws std::runtime_error with one sentence naming the file when it cannot.
  explicit OverrideStore(const std::string& path);
  ~OverrideStore();
  OverrideStore(const OverrideStore&) = delete;
  OverrideStore& operator=(const OverrideStore&) = delete;

  // Every valid row, read in one statement (one consistent snapshot).
  // Invalid rows -- a domain that does not normalise, a domain that repeats
  // another after normalisation, an unknown action word, strict_testing
  // other than NULL/0/1, a value of the wrong type -- are skipped, each with
  // a warning. Error (code "store-error", "store-busy", ...; logged) only
  // when the table cannot be read: the caller keeps what it had. Never throws.
  policy::Result<DomainOverrides> load();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::store
