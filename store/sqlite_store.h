// SQLite implementation of policy::PolicyStore. WAL journal, one writer and
// readers that never wait for it (store/database.h), busy timeout,
// prepared statements as RAII, schema version in PRAGMA user_version with
// migrations. The schema is documented in README ("The cache database") and
// is meant to be read with plain sqlite3. Raw policy text is authoritative and
// re-parsed on load with policy::parse_policy (one parser).
// Thread-safe: reads run in parallel; writes take turns on the one writer.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "policy/sources.h"
#include "store/database.h"

namespace mtasts::store {

class SqliteStore final : public policy::PolicyStore {
 public:
  // Uses the database's writer and readers, shared with the other stores.
  explicit SqliteStore(std::shared_ptr<Database> database);
  // Opens a Database of its own (the CLI, tests). Throws std::runtime_error
  // with one clear sentence when the file cannot be opened or migrated.
  // busy_timeout: how long a write waits for another process's lock before
  // it fails with "store-busy" (DatabaseOptions::write_busy_timeout).
  explicit SqliteStore(const std::string& path,
                       std::chrono::milliseconds busy_timeout = std::chrono::seconds{5});
  ~SqliteStore() override;

  std::optional<policy::StoredPolicy> load(const std::string& domain) override;
  policy::Result<bool> save(const policy::StoredPolicy& policy) override;
  policy::Result<bool> touch(const std::string& domain, std::int64_t last_checked, std::int64_t last_used,
                             const std::string& last_error) override;
  policy::Result<bool> touch_all(std::span<const policy::PolicyUse> uses) override;
  policy::Result<bool> forget(const std::string& domain) override;
  policy::Result<bool> forget_expired(std::int64_t now) override;
  std::vector<policy::StoredPolicy> list() override;
  std::vector<std::string> domains_due(const std::function<bool(const policy::RefreshSlot&)>& due) override;
  std::optional<policy::FetchFailure> load_failure(const std::string& domain) override;
  policy::Result<bool> save_failure(const policy::FetchFailure& failure) override;
  policy::Result<bool> clear_failure(const std::string& domain) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::store
