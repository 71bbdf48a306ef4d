// Why one writer: three connections (policies, TLSRPT counts, overrides)
// used to write the same file, so a TLSRPT flush and a policy save
// busy-waited on each other's locks while holding their store's mutex, and
// a read queued behind them. Now writes in this process take turns on one
// mutex, and reads never touch it.
// Why a damaged file is moved aside rather than refused: it holds a cache
// and counts, and a daemon that refuses to start over it restarts in a
// loop; one that starts afresh keeps deciding and refetches what it needs.
#include "store/database.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "policy/logfmt.h"
#include "store/connection.h"
#include "store/schema.h"

namespace mtasts::store {
namespace {

using policy::logfmt_value;

std::optional<FileId> file_id(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return std::nullopt;
  return FileId{info.st_dev, info.st_ino};
}

// "file:PATH?mode=ro&immutable=1" with PATH %-escaped where a URI needs it.
std::string read_only_uri(const std::string& path) {
  std::string uri = "file:";
  for (const char c : path) {
    if (c == '%' || c == '?' || c == '#' || static_cast<unsigned char>(c) < 0x20) {
      uri += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    } else {
      uri += c;
    }
  }
  return uri + "?mode=ro&immutable=1";
}

// Copies the file's pages into `memory` (SQLite's backup API). The file is
// read as immutable: without locks or WAL files, which an unwritable folder
// cannot hold (commits still in a -wal are not seen). False when it cannot
// be read; `memory` is then as it was.
bool copy_file_into(sqlite3* memory, const std::string& file_path) {
  std::error_code ignored;
  if (!std::filesystem::exists(file_path, ignored)) return false;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(read_only_uri(file_path).c_str(), &raw,
                                 SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
  const DbPtr file(raw);
  if (rc != SQLITE_OK) return false;
  sqlite3_backup* const backup = sqlite3_backup_init(memory, "main", file.get(), "main");
  if (backup == nullptr) return false;
  const int step = sqlite3_backup_step(backup, -1);
  sqlite3_backup_finish(backup);
  return step == SQLITE_DONE;
}

// Opens and migrates the writer (after copying `copy_of` into it, for the
// in-memory fallback); logs a migration and a read-only file.
std::unique_ptr<Connection> open_writer(const std::string& path, const DatabaseOptions& options,
                                        const std::optional<std::string>& copy_of = std::nullopt) {
  const Storage storage = copy_of ? Storage::SharedMemory : Storage::File;
  auto writer = std::make_unique<Connection>(open_database(path, options.write_busy_timeout, storage));
  if (copy_of && copy_file_into(writer->handle(), *copy_of)) {
    spdlog::info("store event=copied-to-memory path={}", logfmt_value(*copy_of));
  }
  const int before = schema_version(writer->handle(), path);
  migrate(writer->handle(), path);
  if (before != kSchemaVersion) {
    spdlog::info("store event=migrated path={} from={} to={}", logfmt_value(path), before, kSchemaVersion);
  }
  if (sqlite3_db_readonly(writer->handle(), "main") == 1) {
    spdlog::warn("store event=read-only path={} writes will fail", logfmt_value(path));
  }
  return writer;
}

// SQLite's account of the damage when the file at `path` is corrupt or not
// a database; nullopt when it is sound or absent, and when it cannot be
// checked for another reason (a lock, a permission: the open reports those).
std::optional<std::string> find_damage(const std::string& path, std::chrono::milliseconds busy_timeout) {
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored)) return std::nullopt;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  const DbPtr db(raw);
  if (rc != SQLITE_OK)
    return is_corruption(rc) ? std::optional<std::string>(sqlite3_errstr(rc)) : std::nullopt;
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), static_cast<int>(busy_timeout.count()));
  sqlite3_stmt* stmt_raw = nullptr;
  // quick_check: every page and record, without matching indexes to tables
  // (fast enough for every start); (1): the first problem is enough.
  rc = sqlite3_prepare_v2(db.get(), "PRAGMA quick_check(1)", -1, &stmt_raw, nullptr);
  const StatementPtr stmt(stmt_raw);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
  if (is_corruption(rc)) return std::string(sqlite3_errmsg(db.get()));
  if (rc != SQLITE_ROW) return std::nullopt;
  const auto* const text = sqlite3_column_text(stmt.get(), 0);
  const std::string verdict = text == nullptr ? "" : reinterpret_cast<const char*>(text);
  if (verdict == "ok") return std::nullopt;
  return verdict;
}

// Whether the file may be a damaged cache rather than someone else's file
// under a mistyped store.path: it has SQLite's header, or its size is a
// whole number of pages (every page size is a multiple of 512), as a file
// whose header page was overwritten still is.
bool could_be_a_database(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return false;
  char magic[16] = {};
  if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
    const std::size_t got = std::fread(magic, 1, sizeof magic, file);
    std::fclose(file);
    if (got == sizeof magic && std::memcmp(magic, "SQLite format 3", sizeof magic) == 0) return true;
  }
  return size >= 512 && size % 512 == 0;
}

// Renames the file and its WAL files to "<path>.corrupt-<unix time>"; the
// WAL must go too, or SQLite would replay it into the new file.
std::string move_aside(const std::string& path, const std::string& damage) {
  const std::string target = path + ".corrupt-" + std::to_string(std::time(nullptr));
  if (std::rename(path.c_str(), target.c_str()) != 0) {
    throw std::runtime_error("The policy cache database '" + path + "' is damaged (" + damage +
                             ") and cannot be moved aside: " + std::strerror(errno) + ".");
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string from = path + suffix;
    if (std::rename(from.c_str(), (target + suffix).c_str()) != 0 && errno != ENOENT) {
      std::remove(from.c_str());
    }
  }
  return target;
}

void remove_wal_files(const std::string& path) {
  for (const char* suffix : {"-wal", "-shm"}) std::remove((path + suffix).c_str());
}

// Copies what the writer's (deleted) file holds, recent commits included,
// into a new file at `path`: the old file is still readable through the
// open handle, and its rows would otherwise be lost with it.
bool copy_into(Connection& old_writer, const std::string& path) {
  int rc = SQLITE_OK;
  sqlite3_stmt* const stmt = old_writer.statements.get("VACUUM INTO ?1", rc);
  if (stmt != nullptr) {
    StatementUse use(stmt);
    use.bind(1, path);
    rc = use.step();
  }
  if (rc == SQLITE_DONE) return true;
  std::remove(path.c_str());  // a partial copy: start empty instead
  return false;
}

}  // namespace

Database::Impl::Impl(std::string db_path, DatabaseOptions db_options,
                     std::optional<std::string> memory_copy_of)
    : path(std::move(db_path)),
      options(db_options),
      storage(memory_copy_of ? Storage::SharedMemory : Storage::File),
      writer(open_writer(path, options, memory_copy_of)),
      writer_file(storage == Storage::File ? file_id(path) : std::nullopt),
      file_checked_at(std::chrono::steady_clock::now()),
      readers(path, options.read_busy_timeout, storage),
      failure_warnings(options.warning_interval) {}

std::optional<FileReopen> Database::Impl::reopen_if_replaced() {
  if (storage != Storage::File) return std::nullopt;  // no file to watch
  const auto now = std::chrono::steady_clock::now();
  if (now - file_checked_at < options.file_check_interval) return std::nullopt;
  file_checked_at = now;
  const auto current = file_id(path);
  if (current && current == writer_file) return std::nullopt;
  FileReopen reopen;
  reopen.change = current ? FileChange::Replaced : FileChange::Deleted;
  try {
    // With the file gone, a -wal left at the path is the old file's: SQLite
    // would replay it into the new one.
    if (reopen.change == FileChange::Deleted) {
      remove_wal_files(path);
      reopen.copied = copy_into(*writer, path);
    }
    auto fresh = open_writer(path, options);
    keep_wal_files_on_close(writer->handle());
    writer = std::move(fresh);
    writer_file = file_id(path);
    readers.retire_all();
  } catch (const std::exception& e) {  // the old writer stays: writes still succeed, into the old file
    reopen.error = e.what();
  }
  return reopen;
}

void log_reopen(const std::string& path, const FileReopen& reopen) {
  const char* const change = reopen.change == FileChange::Deleted ? "deleted" : "replaced";
  if (reopen.error.empty()) {
    spdlog::error("store event=file-{} path={} action=reopened copied_rows={}", change, logfmt_value(path),
                  reopen.copied ? "yes" : "no");
  } else {
    spdlog::error("store event=file-{} path={} action=none error={}", change, logfmt_value(path),
                  logfmt_value(reopen.error));
  }
}

namespace {
std::atomic<std::uint64_t> g_failed_statements{0};
}  // namespace

std::uint64_t failed_statements() { return g_failed_statements.load(std::memory_order_relaxed); }

void warn_failed(Database& database, StoreAccess access, std::string_view op, std::string_view subject,
                 const policy::Error& error) {
  const std::string_view event = access == StoreAccess::Write ? "write-failed" : "read-failed";
  g_failed_statements.fetch_add(1, std::memory_order_relaxed);
  const auto held_back = database.impl().failure_warnings.note(fmt::format("{} {}", event, op), error.code,
                                                               std::chrono::steady_clock::now());
  if (!held_back) return;
  spdlog::warn("store event={} op={} {} code={} detail={} held_back={}", event, op, subject, error.code,
               logfmt_value(error.detail), *held_back);
}

std::unique_ptr<Connection> ReaderPool::acquire() {
  std::unique_lock lock(mutex_);
  returned_.wait(lock, [this] { return !idle_.empty() || opened_ < kMaxReaders; });
  if (!idle_.empty()) {
    auto reader = std::move(idle_.back());
    idle_.pop_back();
    return reader;
  }
  ++opened_;  // reserved before opening, outside the lock
  const std::uint64_t generation = generation_;
  lock.unlock();
  try {
    return std::make_unique<Connection>(open_reader(path_, busy_timeout_, storage_), generation);
  } catch (...) {
    const std::lock_guard relock(mutex_);
    --opened_;
    returned_.notify_one();
    throw;
  }
}

void ReaderPool::release(std::unique_ptr<Connection> reader) {
  if (!reader) return;
  {
    const std::lock_guard lock(mutex_);
    if (reader->generation == generation_) {
      idle_.push_back(std::move(reader));
    } else {
      --opened_;  // of a retired file: closed below, outside the lock
      keep_wal_files_on_close(reader->handle());
    }
  }
  returned_.notify_one();
}

void ReaderPool::retire_all() {
  std::vector<std::unique_ptr<Connection>> retired;
  {
    const std::lock_guard lock(mutex_);
    ++generation_;
    opened_ -= idle_.size();
    retired.swap(idle_);
  }
  for (const auto& reader : retired) keep_wal_files_on_close(reader->handle());
  returned_.notify_all();
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

namespace {

// The in-memory fallback: a shared-cache URI, one per database opened, that
// the writer and the readers of this process open alike.
std::string memory_uri() {
  static std::atomic<int> opened{0};
  return fmt::format("file:mtasts-memory-{}-{}?mode=memory&cache=shared", getpid(), ++opened);
}

// The file at `path`, moved aside and rebuilt when damaged.
std::unique_ptr<Database::Impl> open_file(const std::string& path, const DatabaseOptions& options) {
  std::optional<std::string> damage = find_damage(path, options.write_busy_timeout);
  if (!damage) {
    try {
      return std::make_unique<Database::Impl>(path, options);
    } catch (const CorruptDatabase& e) {  // found by the open or the migration
      damage = e.what();
    }
  }
  if (!could_be_a_database(path))
    throw std::runtime_error("'" + path + "' is not an SQLite database (" + *damage +
                             "); it is left as it is: check store.path.");
  const std::string moved_to = move_aside(path, *damage);
  spdlog::error("store event=corrupt path={} moved_to={} action=rebuilt detail={}", logfmt_value(path),
                logfmt_value(moved_to), logfmt_value(*damage));
  return std::make_unique<Database::Impl>(path, options);
}

}  // namespace

std::shared_ptr<Database> Database::open(const std::string& path, DatabaseOptions options) {
  try {
    return std::shared_ptr<Database>(new Database(open_file(path, options)));
  } catch (const std::runtime_error& e) {
    if (!options.memory_when_unwritable) throw;
    spdlog::error(
        "store event=unavailable path={} error={} action=memory note=\"running on an in-memory copy until "
        "restart: new policies, back-off and TLSRPT counts are lost at stop; make the store writable\"",
        logfmt_value(path), logfmt_value(e.what()));
    return std::shared_ptr<Database>(new Database(std::make_unique<Impl>(memory_uri(), options, path)));
  }
}

const std::string& Database::path() const { return impl_->path; }

}  // namespace mtasts::store
