// The policy cache database file, opened once per process and shared by
// every store (SqliteStore, SqliteTlsrptStore, OverrideStore):
// - one writer connection: writes from this process queue on its mutex
//   instead of busy-waiting on each other's SQLite locks, and only a writer
//   in another process (an operator's sqlite3, `cache import`) can make a
//   write wait, up to write_busy_timeout;
// - reader connections (query_only) that never queue behind that writer:
//   in WAL mode a reader sees the last commit and takes no lock a writer
//   holds, so a read on the decision path returns while a write waits.
// Opening migrates the schema (store/schema.cpp) once, on the writer.
// A write notices when the file was deleted or replaced at run time and
// reopens the path (store/connection.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace mtasts::store {

struct DatabaseOptions {
  // How long a write waits for another process's lock before it fails with
  // "store-busy".
  std::chrono::milliseconds write_busy_timeout{5000};
  // How long a read waits in the rare moments WAL makes readers wait (another
  // connection rebuilding the WAL index after a crash); then it fails
  // ("store-busy", logged) and the caller goes on without the row.
  std::chrono::milliseconds read_busy_timeout{250};
  // How often a write first checks that the path still names the file the
  // writer has open (an operator may delete or replace it at run time).
  std::chrono::milliseconds file_check_interval{10000};
  // A failed read or write of one kind (operation, error code) is logged at most
  // once per this interval, with how many were held back.
  std::chrono::milliseconds warning_interval{10000};
  // The daemon's choice when the file cannot be opened for writing (a
  // read-only folder or file system, a permission): run on a private
  // in-memory database holding a copy of the file's rows, until restart,
  // instead of refusing to start. The CLI keeps false: an operator's
  // `cache import` must fail, not vanish into memory.
  bool memory_when_unwritable = false;
};

class Database {
 public:
  // Opens (creating the file if needed), checks (PRAGMA quick_check) and
  // migrates. A file SQLite finds corrupt or not a database at all is moved
  // aside to "<path>.corrupt-<unix time>" (with its -wal and -shm), logged
  // at error, and replaced by a new, empty database: the file is only a
  // cache, and a damaged one must not keep the daemon from starting.
  // Throws std::runtime_error with one sentence naming the file when it
  // cannot open it (or cannot move a damaged one aside), unless
  // options.memory_when_unwritable: then logs "store event=unavailable ...
  // action=memory" at error and returns the in-memory database.
  static std::shared_ptr<Database> open(const std::string& path, DatabaseOptions options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const;

  // Private to store/ (store/connection.h): the connections.
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// SQLite statements that failed since the process started (each is also
// a store event=write-failed/read-failed line, rate-limited): the metrics'
// mtasts_store_errors_total.
std::uint64_t failed_statements();

}  // namespace mtasts::store
