#include "store/statement.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace mtasts::store {

namespace {

// Returns the first column of the pragma's first row ("" when none).
std::string pragma(sqlite3* db, const std::string& path, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
  const StatementPtr stmt(raw);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt.get());
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE && rc != SQLITE_OK) {
    if (is_corruption(rc))
      throw CorruptDatabase("The policy cache database '" + path + "' is damaged (" + sql +
                            "): " + sqlite3_errmsg(db) + ".");
    throw std::runtime_error("Cannot configure the policy cache database '" + path + "' (" + sql +
                             "): " + sqlite3_errmsg(db) + ".");
  }
  const auto* const text = rc == SQLITE_ROW ? sqlite3_column_text(stmt.get(), 0) : nullptr;
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
}

void configure(sqlite3* db, const std::string& path, std::chrono::milliseconds busy_timeout,
               Storage storage) {
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  if (storage == Storage::SharedMemory) {
    pragma(db, path, "PRAGMA foreign_keys = ON");
    return;
  }
  // WAL: readers never block the writer; NORMAL is durable across a process
  // crash (only an OS crash may lose the last commits, which are a cache).
  const std::string journal = pragma(db, path, "PRAGMA journal_mode = WAL");
  if (journal != "wal") {
    spdlog::warn("store event=no-wal path=\"{}\" journal_mode={}", path, journal);
  }
  pragma(db, path, "PRAGMA synchronous = NORMAL");
  pragma(db, path, "PRAGMA foreign_keys = ON");
}

}  // namespace

bool is_corruption(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

std::string_view error_code(int rc) {
  switch (rc & 0xff) {  // primary code of an extended result code
    case SQLITE_FULL:
      return "store-full";
    case SQLITE_READONLY:
      return "store-readonly";
    case SQLITE_IOERR:
      return "store-io";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "store-busy";
    default:
      return "store-error";
  }
}

namespace {

DbPtr open_connection(const std::string& path, int flags, Storage storage) {
  if (storage == Storage::SharedMemory) flags |= SQLITE_OPEN_URI;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);  // a handle is returned even on failure, and must be closed
  if (rc != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
    throw std::runtime_error("Cannot open the policy cache database '" + path + "': " + why + ".");
  }
  sqlite3_extended_result_codes(db.get(), 1);
  return db;
}

}  // namespace

DbPtr open_database(const std::string& path, std::chrono::milliseconds busy_timeout, Storage storage) {
  DbPtr db = open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, storage);
  configure(db.get(), path, busy_timeout, storage);
  return db;
}

void keep_wal_files_on_close(sqlite3* db) {
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}

DbPtr open_reader(const std::string& path, std::chrono::milliseconds busy_timeout, Storage storage) {
  // READWRITE although it never writes: a read-only connection cannot
  // create the -shm file WAL readers share.
  DbPtr db = open_connection(path, SQLITE_OPEN_READWRITE, storage);
  sqlite3_busy_timeout(db.get(), static_cast<int>(busy_timeout.count()));
  pragma(db.get(), path, "PRAGMA query_only = 1");
  // Shared-cache readers take table locks a write holds (SQLITE_LOCKED, which
  // no busy timeout waits out); reading uncommitted rows is fine for a cache.
  if (storage == Storage::SharedMemory) pragma(db.get(), path, "PRAGMA read_uncommitted = 1");
  return db;
}

sqlite3_stmt* StatementCache::get(std::string_view sql, int& rc) {
  rc = SQLITE_OK;
  const auto found = statements_.find(std::string(sql));
  if (found != statements_.end()) {
    return found->second.get();
  }
  sqlite3_stmt* raw = nullptr;
  // PERSISTENT: these statements live as long as the connection.
  rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                          nullptr);
  StatementPtr stmt(raw);
  if (rc != SQLITE_OK || stmt == nullptr) {
    if (rc == SQLITE_OK) {
      rc = SQLITE_ERROR;  // empty SQL: a programming error, reported as one
    }
    return nullptr;
  }
  sqlite3_stmt* const result = stmt.get();
  statements_.emplace(std::string(sql), std::move(stmt));
  return result;
}

Transaction::Transaction(sqlite3* db)
    : db_(db), begin_rc_(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr)) {}

Transaction::~Transaction() {
  // A failed COMMIT may leave the transaction open (SQLITE_BUSY); autocommit
  // tells whether one is still open, whatever happened before.
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

int Transaction::commit() { return sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr); }

StatementUse::~StatementUse() {
  // The return value repeats the last step()'s error, already handled there.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void StatementUse::bind(int index, std::string_view text) {
  if (bind_rc_ != SQLITE_OK) {
    return;
  }
  // A null pointer would bind SQL NULL; an empty view is the empty string.
  const char* const data = text.data() != nullptr ? text.data() : "";
  // SQLITE_STATIC: the caller keeps the text alive until the statement is reset.
  bind_rc_ = sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

void StatementUse::bind(int index, std::int64_t value) {
  if (bind_rc_ != SQLITE_OK) {
    return;
  }
  bind_rc_ = sqlite3_bind_int64(stmt_, index, value);
}

void StatementUse::bind_blob(int index, std::string_view bytes) {
  if (bind_rc_ != SQLITE_OK) {
    return;
  }
  // A null pointer would bind SQL NULL; an empty view is a zero-length BLOB.
  const char* const data = bytes.data() != nullptr ? bytes.data() : "";
  bind_rc_ = sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_STATIC);
}

int StatementUse::step() {
  if (bind_rc_ != SQLITE_OK) {
    return bind_rc_;
  }
  return sqlite3_step(stmt_);
}

std::string StatementUse::text(int column) const {
  const auto* const data = sqlite3_column_text(stmt_, column);
  if (data == nullptr) {
    return {};
  }
  const int size = sqlite3_column_bytes(stmt_, column);
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
}

std::int64_t StatementUse::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string StatementUse::blob(int column) const {
  const void* const data = sqlite3_column_blob(stmt_, column);
  if (data == nullptr) {
    return {};
  }
  const int size = sqlite3_column_bytes(stmt_, column);
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

}  // namespace mtasts::store
