// SQLite implementation of policy::TlsrptStore: the daily TLSRPT counts of
// RFC 8460 §4.4 (tables tlsrpt_failures and tlsrpt_successes, schema v2 in
// store/schema.cpp), in the same database file as the policy cache, through
// the Database's writer and readers shared with the other stores
// (store/database.h).
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/sources.h"
#include "policy/tlsrpt.h"
#include "store/database.h"

namespace mtasts::store {

class SqliteTlsrptStore final : public policy::TlsrptStore {
 public:
  explicit SqliteTlsrptStore(std::shared_ptr<Database> database);
  // Opens a Database of its own at `path` (creating and migrating it).
  // Throws std::runtime_error with one sentence naming the file when it cannot.
  explicit SqliteTlsrptStore(const std::string& path);
  ~SqliteTlsrptStore() override;
  SqliteTlsrptStore(const SqliteTlsrptStore&) = delete;
  SqliteTlsrptStore& operator=(const SqliteTlsrptStore&) = delete;

  // Adds every aggregate's sessions to its row (creating it), in one
  // transaction: on an error (logged) nothing of the batch is written.
  policy::Result<bool> add(const std::vector<policy::TlsrptAggregate>& batch) override;

  // The rows of days first_day..last_day ("YYYY-MM-DD", inclusive): failures
  // then successes, each ordered by day, domain and key. Empty on a read
  // error (logged).
  std::vector<policy::TlsrptAggregate> read(const std::string& first_day, const std::string& last_day);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::store
