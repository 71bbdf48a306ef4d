// The policy cache of RFC 8461 §5.1 (a cached policy is used until its
// max_age, §3.2, runs out, and is replaced only by a newer valid one) and the
// fetch back-off the RFC allows in §3.3 (senders may rate-limit fetches).
// Schema: store/schema.cpp, documented for operators in README ("The cache database").
//
// Writes go through the Database's one writer, reads through its readers
// (store/database.h); parsing and logging happen outside both. Writes turn every SQLite failure into an Error
// value and a log line, never an exception.
#include "store/sqlite_store.h"

#include <spdlog/spdlog.h>

#include <array>
#include <functional>
#include <stdexcept>
#include <utility>

#include "store/connection.h"

namespace mtasts::store {
namespace {

using policy::Error;
using policy::FetchFailure;
using policy::Result;
using policy::StoredPolicy;

constexpr std::string_view kSelectPolicy =
    "SELECT domain, txt_id, raw, fetched_at, expires_at, last_checked, last_used, dnssec, "
    "last_error FROM policies WHERE domain = ?1";
constexpr std::string_view kSelectAllPolicies =
    "SELECT domain, txt_id, raw, fetched_at, expires_at, last_checked, last_used, dnssec, "
    "last_error FROM policies ORDER BY domain";
constexpr std::string_view kUpsertPolicy =
    "INSERT INTO policies (domain, txt_id, mode, max_age, mx, raw, fetched_at, expires_at, "
    "last_checked, last_used, dnssec, last_error) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
    "ON CONFLICT (domain) DO UPDATE SET txt_id = excluded.txt_id, mode = excluded.mode, "
    "max_age = excluded.max_age, mx = excluded.mx, raw = excluded.raw, "
    "fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, "
    "last_checked = excluded.last_checked, last_used = excluded.last_used, "
    "dnssec = excluded.dnssec, last_error = excluded.last_error";
// Never moves a column backwards: a save() from a fetch may land between the
// moment the resolver took these values from memory and this write.
constexpr std::string_view kTouchPolicy =
    "UPDATE policies SET last_used = MAX(last_used, ?3), "
    "last_error = CASE WHEN ?2 >= last_checked THEN ?4 ELSE last_error END, "
    "last_checked = MAX(last_checked, ?2) WHERE domain = ?1";
constexpr std::string_view kSelectRefreshSlots =
    "SELECT domain, fetched_at, max_age, expires_at, last_used FROM policies";
constexpr std::string_view kDeletePolicy = "DELETE FROM policies WHERE domain = ?1";
constexpr std::string_view kDeleteExpiredPolicies = "DELETE FROM policies WHERE expires_at <= ?1";
constexpr std::string_view kSelectFailure =
    "SELECT domain, txt_id, failed_at, retry_at, result_type, reason, temporary FROM fetch_failures "
    "WHERE domain = ?1";
constexpr std::string_view kUpsertFailure =
    "INSERT INTO fetch_failures (domain, txt_id, failed_at, retry_at, result_type, reason, temporary) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (domain) DO UPDATE SET txt_id = excluded.txt_id, "
    "failed_at = excluded.failed_at, retry_at = excluded.retry_at, "
    "result_type = excluded.result_type, reason = excluded.reason, temporary = excluded.temporary";
constexpr std::string_view kDeleteFailure = "DELETE FROM fetch_failures WHERE domain = ?1";

// A policies row before its raw text is parsed (parsing runs outside the lock).
struct PolicyRow {
  StoredPolicy stored;
  std::string dnssec;
};

struct FailureRow {
  FetchFailure failure;
  std::string result_type;
};

std::string join_mx(const std::vector<std::string>& patterns) {
  std::string joined;
  for (const std::string& pattern : patterns) {
    if (!joined.empty()) {
      joined += ' ';
    }
    joined += pattern;
  }
  return joined;
}

std::optional<policy::DnsSecurity> dns_security_from_string(std::string_view text) {
  using policy::DnsSecurity;
  for (const DnsSecurity security : {DnsSecurity::Secure, DnsSecurity::Insecure, DnsSecurity::Bogus}) {
    if (policy::to_string(security) == text) {
      return security;
    }
  }
  return std::nullopt;
}

PolicyRow read_policy_row(const StatementUse& use) {
  PolicyRow row;
  row.stored.domain = use.text(0);
  row.stored.txt_id = use.text(1);
  row.stored.raw = use.text(2);
  row.stored.fetched_at = use.integer(3);
  row.stored.expires_at = use.integer(4);
  row.stored.last_checked = use.integer(5);
  row.stored.last_used = use.integer(6);
  row.dnssec = use.text(7);
  row.stored.last_error = use.text(8);
  return row;
}

// The authoritative policy is the raw text, re-parsed with the one parser;
// the mode/max_age/mx columns are for operators only.
std::optional<StoredPolicy> finish_policy(PolicyRow row) {
  const auto security = dns_security_from_string(row.dnssec);
  if (!security) {
    spdlog::warn("store event=bad-row table=policies domain={} column=dnssec", row.stored.domain);
    return std::nullopt;
  }
  const policy::PolicyParse parsed = policy::parse_policy(row.stored.raw);
  if (!parsed.policy) {
    const std::string rule = parsed.issues.empty() ? "unknown" : parsed.issues.front().rule;
    spdlog::warn("store event=unparsable domain={} policy_id={} rule={}", row.stored.domain,
                 row.stored.txt_id, rule);
    return std::nullopt;
  }
  row.stored.dnssec = *security;
  row.stored.policy = *parsed.policy;
  return std::move(row.stored);
}

std::optional<FetchFailure> finish_failure(FailureRow row) {
  const auto type = policy::result_type_from_string(row.result_type);
  if (!type) {
    spdlog::warn("store event=bad-row table=fetch_failures domain={} column=result_type", row.failure.domain);
    return std::nullopt;
  }
  row.failure.type = *type;
  return std::move(row.failure);
}

}  // namespace

struct SqliteStore::Impl {
  explicit Impl(std::shared_ptr<Database> opened) : database(std::move(opened)) {}

  // Runs one write statement on the writer. `bind` binds its parameters.
  // The value is true when a row was inserted, changed or deleted.
  Result<bool> write(std::string_view op, std::string_view domain, std::string_view sql,
                     const std::function<void(StatementUse&)>& bind);
  // Runs `sql` once per policy on the writer, in one transaction: all rows
  // are written or none. The value is true when any row changed.
  Result<bool> write_each(std::string_view op, std::string_view sql, std::span<const policy::PolicyUse> rows,
                          const std::function<void(StatementUse&, const policy::PolicyUse&)>& bind);
  // Runs one query on a reader, calling `on_row` for every row. False
  // (logged) when SQLite fails part-way.
  bool read(std::string_view op, std::string_view sql, std::string_view key,
            const std::function<void(const StatementUse&)>& on_row);

  std::shared_ptr<Database> database;
};

namespace {

Error error_from(const Connection& connection, int rc) {
  return Error{std::string(error_code(rc)), sqlite3_errmsg(connection.handle())};
}

}  // namespace

Result<bool> SqliteStore::Impl::write(std::string_view op, std::string_view domain, std::string_view sql,
                                      const std::function<void(StatementUse&)>& bind) {
  std::optional<Error> error;
  bool changed = false;
  try {
    with_writer(*database, [&](Connection& writer) {
      int rc = SQLITE_OK;
      sqlite3_stmt* const stmt = writer.statements.get(sql, rc);
      if (stmt != nullptr) {
        StatementUse use(stmt);
        bind(use);
        rc = use.step();
      }
      if (rc == SQLITE_DONE) {
        changed = sqlite3_changes(writer.handle()) > 0;
      } else {
        error = error_from(writer, rc);
      }
    });
  } catch (const std::exception& e) {  // bad_alloc, system_error from the mutex
    error = Error{"store-error", e.what()};
  }
  if (error) {
    warn_failed(*database, StoreAccess::Write, op, fmt::format("domain={}", domain), *error);
    return *error;
  }
  return changed;
}

Result<bool> SqliteStore::Impl::write_each(
    std::string_view op, std::string_view sql, std::span<const policy::PolicyUse> rows,
    const std::function<void(StatementUse&, const policy::PolicyUse&)>& bind) {
  std::optional<Error> error;
  bool changed = false;
  try {
    with_writer(*database, [&](Connection& writer) {
      Transaction transaction(writer.handle());
      int rc = transaction.begun();
      sqlite3_stmt* const stmt = rc == SQLITE_OK ? writer.statements.get(sql, rc) : nullptr;
      for (std::size_t i = 0; stmt != nullptr && i < rows.size() && rc == SQLITE_OK; ++i) {
        StatementUse use(stmt);
        bind(use, rows[i]);
        rc = use.step();
        if (rc == SQLITE_DONE) {
          changed = changed || sqlite3_changes(writer.handle()) > 0;
          rc = SQLITE_OK;
        }
      }
      if (rc == SQLITE_OK) rc = transaction.commit();
      // read before the guard's ROLLBACK replaces the message
      if (rc != SQLITE_OK) error = error_from(writer, rc);
    });
  } catch (const std::exception& e) {
    error = Error{"store-error", e.what()};
  }
  if (error) {
    warn_failed(*database, StoreAccess::Write, op, fmt::format("rows={}", rows.size()), *error);
    return *error;
  }
  return changed;
}

bool SqliteStore::Impl::read(std::string_view op, std::string_view sql, std::string_view key,
                             const std::function<void(const StatementUse&)>& on_row) {
  std::optional<Error> error;
  try {
    with_reader(*database, [&](Connection& reader) {
      int rc = SQLITE_OK;
      sqlite3_stmt* const stmt = reader.statements.get(sql, rc);
      if (stmt != nullptr) {
        StatementUse use(stmt);
        if (sqlite3_bind_parameter_count(stmt) > 0) {
          use.bind(1, key);
        }
        while ((rc = use.step()) == SQLITE_ROW) {
          on_row(use);
        }
      }
      if (rc != SQLITE_DONE) {
        error = error_from(reader, rc);
      }
    });
  } catch (const std::exception& e) {
    error = Error{"store-error", e.what()};
  }
  if (error) {
    warn_failed(*database, StoreAccess::Read, op, fmt::format("domain={}", key.empty() ? "-" : key), *error);
    return false;
  }
  return true;
}

SqliteStore::SqliteStore(std::shared_ptr<Database> database)
    : impl_(std::make_unique<Impl>(std::move(database))) {}

SqliteStore::SqliteStore(const std::string& path, std::chrono::milliseconds busy_timeout)
    : SqliteStore(Database::open(path, DatabaseOptions{.write_busy_timeout = busy_timeout})) {}

SqliteStore::~SqliteStore() = default;

std::optional<StoredPolicy> SqliteStore::load(const std::string& domain) {
  std::optional<PolicyRow> row;
  const bool ok = impl_->read("load", kSelectPolicy, domain,
                              [&row](const StatementUse& use) { row = read_policy_row(use); });
  if (!ok || !row) {
    return std::nullopt;
  }
  return finish_policy(std::move(*row));
}

Result<bool> SqliteStore::save(const StoredPolicy& stored) {
  const std::string mode(policy::to_string(stored.policy.mode));
  const std::string mx = join_mx(stored.policy.mx);
  const std::string dnssec(policy::to_string(stored.dnssec));
  return impl_->write("save", stored.domain, kUpsertPolicy, [&](StatementUse& use) {
    use.bind(1, stored.domain);
    use.bind(2, stored.txt_id);
    use.bind(3, mode);
    use.bind(4, std::int64_t{stored.policy.max_age});
    use.bind(5, mx);
    use.bind(6, stored.raw);
    use.bind(7, stored.fetched_at);
    use.bind(8, stored.expires_at);
    use.bind(9, stored.last_checked);
    use.bind(10, stored.last_used);
    use.bind(11, dnssec);
    use.bind(12, stored.last_error);
  });
}

Result<bool> SqliteStore::touch(const std::string& domain, std::int64_t last_checked, std::int64_t last_used,
                                const std::string& last_error) {
  return impl_->write("touch", domain, kTouchPolicy, [&](StatementUse& use) {
    use.bind(1, domain);
    use.bind(2, last_checked);
    use.bind(3, last_used);
    use.bind(4, last_error);
  });
}

Result<bool> SqliteStore::forget(const std::string& domain) {
  return impl_->write("forget", domain, kDeletePolicy, [&](StatementUse& use) { use.bind(1, domain); });
}

// One statement (the expires_at index finds the rows), so a refresher pass
// after a long stop is not one transaction per expired policy.
Result<bool> SqliteStore::forget_expired(std::int64_t now) {
  return impl_->write("forget_expired", "-", kDeleteExpiredPolicies,
                      [&](StatementUse& use) { use.bind(1, now); });
}

Result<bool> SqliteStore::touch_all(std::span<const policy::PolicyUse> uses) {
  if (uses.empty()) return false;
  return impl_->write_each("touch_all", kTouchPolicy, uses,
                           [](StatementUse& use, const policy::PolicyUse& p) {
                             use.bind(1, p.domain);
                             use.bind(2, p.last_checked);
                             use.bind(3, p.last_used);
                             use.bind(4, p.last_error);
                           });
}

std::vector<std::string> SqliteStore::domains_due(
    const std::function<bool(const policy::RefreshSlot&)>& due) {
  std::vector<std::string> domains;
  policy::RefreshSlot slot;
  impl_->read("domains_due", kSelectRefreshSlots, "", [&](const StatementUse& use) {
    slot.domain = use.text(0);
    slot.fetched_at = use.integer(1);
    slot.max_age = use.integer(2);
    slot.expires_at = use.integer(3);
    slot.last_used = use.integer(4);
    if (due(slot)) domains.push_back(std::move(slot.domain));
  });
  return domains;
}

std::vector<StoredPolicy> SqliteStore::list() {
  std::vector<PolicyRow> rows;
  impl_->read("list", kSelectAllPolicies, "",
              [&rows](const StatementUse& use) { rows.push_back(read_policy_row(use)); });
  std::vector<StoredPolicy> policies;
  policies.reserve(rows.size());
  for (PolicyRow& row : rows) {
    if (auto stored = finish_policy(std::move(row))) {
      policies.push_back(std::move(*stored));
    }
  }
  return policies;
}

std::optional<FetchFailure> SqliteStore::load_failure(const std::string& domain) {
  std::optional<FailureRow> row;
  const auto on_row = [&row](const StatementUse& use) {
    row = FailureRow{FetchFailure{use.text(0), use.text(1), use.integer(2), use.integer(3),
                                  policy::ResultType::StsPolicyFetchError, use.text(5), use.integer(6) != 0},
                     use.text(4)};
  };
  const bool ok = impl_->read("load_failure", kSelectFailure, domain, on_row);
  if (!ok || !row) {
    return std::nullopt;
  }
  return finish_failure(std::move(*row));
}

Result<bool> SqliteStore::save_failure(const FetchFailure& failure) {
  const std::string type(policy::to_string(failure.type));
  return impl_->write("save_failure", failure.domain, kUpsertFailure, [&](StatementUse& use) {
    use.bind(1, failure.domain);
    use.bind(2, failure.txt_id);
    use.bind(3, failure.failed_at);
    use.bind(4, failure.retry_at);
    use.bind(5, type);
    use.bind(6, failure.reason);
    use.bind(7, std::int64_t{failure.temporary ? 1 : 0});
  });
}

Result<bool> SqliteStore::clear_failure(const std::string& domain) {
  return impl_->write("clear_failure", domain, kDeleteFailure,
                      [&](StatementUse& use) { use.bind(1, domain); });
}

}  // namespace mtasts::store
