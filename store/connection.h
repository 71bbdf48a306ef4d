// The connections of a Database (store/database.h), private to store/: each
// with its cache of prepared statements, lent to one caller at a time by
// with_writer() and with_reader().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/result.h"
#include "store/database.h"
#include "store/statement.h"
#include "store/warning_limiter.h"

namespace mtasts::store {

struct Connection {
  explicit Connection(DbPtr opened, std::uint64_t file_generation = 0)
      : db(std::move(opened)), statements(db.get()), generation(file_generation) {}
  sqlite3* handle() const { return db.get(); }

  DbPtr db;
  StatementCache statements;  // after db: finalised before the connection closes
  std::uint64_t generation;   // which file of the path it reads (ReaderPool)
};

// Readers are opened on demand up to kMaxReaders and kept; a caller beyond
// that waits for one to come back (reads take micro- to milliseconds).
class ReaderPool {
 public:
  static constexpr std::size_t kMaxReaders = 4;

  ReaderPool(std::string path, std::chrono::milliseconds busy_timeout, Storage storage)
      : path_(std::move(path)), busy_timeout_(busy_timeout), storage_(storage) {}

  std::unique_ptr<Connection> acquire();
  void release(std::unique_ptr<Connection> reader);
  // The file at the path was replaced: idle readers are closed now, readers
  // in use when they come back, and later ones open the new file.
  void retire_all();

 private:
  std::string path_;
  std::chrono::milliseconds busy_timeout_;
  Storage storage_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t opened_ = 0;
  std::uint64_t generation_ = 0;
};

// The identity of a file, to notice that the path now names another one.
struct FileId {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileId&) const = default;
};

// What became of the file the writer had open, when the path no longer
// names it (an operator's rm, a restore that replaced it).
enum class FileChange { Deleted, Replaced };

struct FileReopen {
  FileChange change = FileChange::Deleted;
  // Deleted: the rows of the old file were copied into the new one.
  bool copied = false;
  std::string error;  // "" when a new file was opened and migrated
};

struct Database::Impl {
  // `memory_copy_of`: db_path is an in-memory database's URI, filled with a
  // copy of that file's rows when it can be read.
  Impl(std::string db_path, DatabaseOptions db_options,
       std::optional<std::string> memory_copy_of = std::nullopt);

  // Under write_mutex, at most once per file_check_interval: when the path
  // no longer names the file the writer has open, opens (creating and
  // migrating) the file at the path and retires the readers, so later
  // writes land in a file that exists. A deleted file's rows are copied
  // into the new one first; a replacing file is taken as it is. What happened, for a log line
  // written after the lock is released; nullopt when nothing changed.
  std::optional<FileReopen> reopen_if_replaced();

  std::string path;  // the file's path, or the in-memory database's URI
  DatabaseOptions options;
  Storage storage = Storage::File;  // SharedMemory: DatabaseOptions::memory_when_unwritable
  std::mutex write_mutex;
  std::unique_ptr<Connection> writer;                     // guarded by write_mutex
  std::optional<FileId> writer_file;                      // guarded by write_mutex
  std::chrono::steady_clock::time_point file_checked_at;  // guarded by write_mutex
  ReaderPool readers;
  WarningLimiter failure_warnings;
};

enum class StoreAccess { Read, Write };

// Logs a failed read or write at warning, at most once per (access, op,
// code) per DatabaseOptions::warning_interval, with held_back= the number
// of the same left out since the last line. `subject` is the logfmt pairs
// naming the rows ("domain=example.com", "rows=12").
void warn_failed(Database& database, StoreAccess access, std::string_view op, std::string_view subject,
                 const policy::Error& error);

// Logs a FileReopen (error level: writes went to a file nobody will read).
void log_reopen(const std::string& path, const FileReopen& reopen);

// Runs fn(Connection&) on the writer, holding the write mutex.
template <class Fn>
decltype(auto) with_writer(Database& database, Fn&& fn) {
  Database::Impl& impl = database.impl();
  std::unique_lock lock(impl.write_mutex);
  if (const auto reopened = impl.reopen_if_replaced()) {
    lock.unlock();  // no logging under the lock
    log_reopen(impl.path, *reopened);
    lock.lock();
  }
  return std::forward<Fn>(fn)(*impl.writer);
}

// Runs fn(Connection&) on a reader of its own, returned to the pool after.
template <class Fn>
decltype(auto) with_reader(Database& database, Fn&& fn) {
  ReaderPool& pool = database.impl().readers;
  struct Lease {
    ReaderPool& pool;
    std::unique_ptr<Connection> reader;
    ~Lease() { pool.release(std::move(reader)); }
  } lease{pool, pool.acquire()};
  return std::forward<Fn>(fn)(*lease.reader);
}

}  // namespace mtasts::store
