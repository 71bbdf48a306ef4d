// Why one writer: three connections (policies, TLSRPT counts, overrides)
// used to write the same file, so a TLSRPT flush and a policy save
// busy-waited on each other's locks while holding their store's mutex, and
// a read queued behind them. Now writes in this process take turns on one
// mutex, and reads never touch it.
#include "store/database.h"

#include <spdlog/spdlog.h>

#include "policy/logfmt.h"
#include "store/connection.h"
#include "store/schema.h"

namespace mtasts::store {

Database::Impl::Impl(std::string db_path, DatabaseOptions options)
    : path(std::move(db_path)),
      writer(open_database(path, options.write_busy_timeout)),
      readers(path, options.read_busy_timeout) {
  const int before = schema_version(writer.handle(), path);
  migrate(writer.handle(), path);
  if (before != kSchemaVersion) {
    spdlog::info("store event=migrated path={} from={} to={}", policy::logfmt_value(path), before,
                 kSchemaVersion);
  }
  if (sqlite3_db_readonly(writer.handle(), "main") == 1) {
    spdlog::warn("store event=read-only path={} writes will fail", policy::logfmt_value(path));
  }
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
  lock.unlock();
  try {
    return std::make_unique<Connection>(open_reader(path_, busy_timeout_));
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
    idle_.push_back(std::move(reader));
  }
  returned_.notify_one();
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

std::shared_ptr<Database> Database::open(const std::string& path, DatabaseOptions options) {
  return std::shared_ptr<Database>(new Database(std::make_unique<Impl>(path, options)));
}

const std::string& Database::path() const { return impl_->path; }

}  // namespace mtasts::store
