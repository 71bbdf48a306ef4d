// The cache database schema and its migrations, private to store/. The schema
// is documented for operators in README ("The cache database"); keep the two
// in step. The version lives in PRAGMA user_version:
// 0 is an empty file, version N is reached by applying migrations 1..N in order.
#pragma once

#include <sqlite3.h>

#include <string>

namespace mtasts::store {

// The newest schema version this build knows (v1: policies, fetch_failures,
// policies_readable; v2: tlsrpt_failures, tlsrpt_successes; v3: overrides).
inline constexpr int kSchemaVersion = 5;

// Brings the database to kSchemaVersion, applying all pending migrations in
// one IMMEDIATE transaction (a concurrent opener waits on the busy timeout and
// then finds nothing to do). Does not write when already current, so an
// up-to-date read-only file opens. Throws std::runtime_error with one sentence
// naming `path` when the file's version is newer than kSchemaVersion, or when
// reading the version or a migration fails (the transaction is rolled back);
// CorruptDatabase (store/statement.h) when SQLite finds the file damaged.
void migrate(sqlite3* db, const std::string& path);

// PRAGMA user_version of `db`; throws std::runtime_error (CorruptDatabase
// for a damaged file) naming `path`.
int schema_version(sqlite3* db, const std::string& path);

}  // namespace mtasts::store
