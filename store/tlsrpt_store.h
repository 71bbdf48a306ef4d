// SQLite implementation of policy::TlsrptStore: the daily TLSRPT counts of
// RFC 8460 §4.4 (tables tlsrpt_failures and tlsrpt_successes, schema v2 in
// store/schema.cpp), in the same database file as the policy cache, through
// its own connection (WAL lets it write beside SqliteStore; the busy timeout
// covers the short moments both write at once).
// Thread-safe: one connection guarded by a mutex.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/sources.h"
#include "policy/tlsrpt.h"

namespace mtasts::store {

class SqliteTlsrptStore final : public policy::TlsrptStore {
 public:
  // Opens (creating if needed) and migrates the database at `path`. Throws
  // std::runtime_error with one sentence naming the file when it cannot.
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
