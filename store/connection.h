// The connections of a Database (store/database.h), private to store/: each
// with its cache of prepared statements, lent to one caller at a time by
// with_writer() and with_reader().
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store/database.h"
#include "store/statement.h"

namespace mtasts::store {

struct Connection {
  explicit Connection(DbPtr opened) : db(std::move(opened)), statements(db.get()) {}
  sqlite3* handle() const { return db.get(); }

  DbPtr db;
  StatementCache statements;  // after db: finalised before the connection closes
};

// Readers are opened on demand up to kMaxReaders and kept; a caller beyond
// that waits for one to come back (reads take micro- to milliseconds).
class ReaderPool {
 public:
  static constexpr std::size_t kMaxReaders = 4;

  ReaderPool(std::string path, std::chrono::milliseconds busy_timeout)
      : path_(std::move(path)), busy_timeout_(busy_timeout) {}

  std::unique_ptr<Connection> acquire();
  void release(std::unique_ptr<Connection> reader);

 private:
  std::string path_;
  std::chrono::milliseconds busy_timeout_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t opened_ = 0;
};

struct Database::Impl {
  Impl(std::string db_path, DatabaseOptions options);

  std::string path;
  std::mutex write_mutex;
  Connection writer;  // guarded by write_mutex
  ReaderPool readers;
};

// Runs fn(Connection&) on the writer, holding the write mutex.
template <class Fn>
decltype(auto) with_writer(Database& database, Fn&& fn) {
  Database::Impl& impl = database.impl();
  const std::lock_guard lock(impl.write_mutex);
  return std::forward<Fn>(fn)(impl.writer);
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
