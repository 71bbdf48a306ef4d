// RAII for SQLite handles, private to store/ (no public header exposes
// sqlite3, ARCHITECTURE.md "Layout"): the connection, prepared statements, a
// per-connection cache of prepared statements, and a scoped use of one cached
// statement that resets it on every exit path.
// Not thread-safe: store/connection.h lends each connection to one caller at a time.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mtasts::store {

struct DbCloser {
  // close_v2 turns the handle into a zombie if statements are still alive
  // instead of failing, so destruction order can never leak the connection.
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

// How long a statement waits for another connection's lock before it fails
// with SQLITE_BUSY ("store-busy").
inline constexpr std::chrono::milliseconds kBusyTimeout{5000};

// Where a database lives: the configured file, or (Database's fallback when
// the file cannot be written) a private in-memory database that the
// process's connections share, named by a "file:...?mode=memory&cache=shared"
// URI. A memory database has no WAL; its readers read uncommitted rows.
enum class Storage { File, SharedMemory };

// Opens or creates the database file the way every store/ connection uses
// it: extended result codes, a busy timeout (kBusyTimeout unless a test
// shortens it), WAL (readers never block the writer), synchronous=NORMAL
// (durable across a process crash; an OS crash may lose the last commits of
// what is a cache) and foreign keys on.
// Throws std::runtime_error with one sentence naming the file.
DbPtr open_database(const std::string& path, std::chrono::milliseconds busy_timeout = kBusyTimeout,
                    Storage storage = Storage::File);

// Before closing a connection to a file that was deleted or replaced at run
// time: its close must not delete the -wal and -shm files now at the path,
// which belong to the new file (SQLite deletes them by name).
void keep_wal_files_on_close(sqlite3* db);

// A reader of a file open_database() already set up (WAL is a property of
// the file): query_only, so a bug cannot make it a second writer.
// Throws std::runtime_error with one sentence naming the file.
DbPtr open_reader(const std::string& path, std::chrono::milliseconds busy_timeout,
                  Storage storage = Storage::File);

// True for the result codes that say the file itself is damaged
// (SQLITE_CORRUPT, SQLITE_NOTADB), as opposed to a lock, a full disk or a
// permission.
bool is_corruption(int rc);

// What open_database(), migrate() and schema_version() throw instead of a
// plain std::runtime_error when is_corruption(): Database::open then moves
// the file aside and starts afresh (it is only a cache).
class CorruptDatabase : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The stable error code of an SQLite result code, as Result errors carry it:
// "store-full", "store-readonly", "store-io", "store-busy" or "store-error".
std::string_view error_code(int rc);

struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// Prepared statements of one connection, keyed by their SQL text, prepared on
// first use and finalised when the cache is destroyed (before the connection:
// declare the cache after the DbPtr that owns `db`).
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}

  // The statement for `sql`, or nullptr with `rc` set to the SQLite error.
  sqlite3_stmt* get(std::string_view sql, int& rc);

 private:
  sqlite3* db_;
  std::unordered_map<std::string, StatementPtr> statements_;
};

// One execution of a cached statement: bind, step, read columns. The first
// bind error is kept and returned by step(). The destructor resets the
// statement and clears its bindings so the cache can hand it out again.
class StatementUse {
 public:
  explicit StatementUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementUse();
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

  // Text is bound without copying: it must outlive the step() calls.
  void bind(int index, std::string_view text);
  void bind(int index, std::int64_t value);
  // Bytes as a BLOB (text() would stop nothing, but a BLOB keeps sqlite3
  // from treating them as UTF-8); same lifetime rule as text.
  void bind_blob(int index, std::string_view bytes);
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step();

  // Column readers; NULL reads as "" or 0.
  std::string text(int column) const;
  std::int64_t integer(int column) const;
  std::string blob(int column) const;

 private:
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// One write transaction (BEGIN IMMEDIATE). Anything but a successful
// commit() rolls back when the guard goes out of scope, exceptions included,
// so the connection never stays inside a half-written transaction.
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // SQLITE_OK when BEGIN succeeded.
  int begun() const { return begin_rc_; }
  // SQLITE_OK when the transaction is committed.
  int commit();

 private:
  sqlite3* db_;
  int begin_rc_;
};

}  // namespace mtasts::store
