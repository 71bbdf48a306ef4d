// RFC 8460 §4.4 counts per UTC day. Why upserts that add: the buffer
// flushes partial counts every few seconds and after restarts, so a row is
// the sum of every flush of that day; the UNIQUE key of schema v2 is the
// report's grouping (policy, then failure-details entry).
// Writes take the Database's one writer (store/database.h), so a flush and a
// policy save take turns instead of busy-waiting on each other's locks;
// reads for a report take a reader and never wait for either.
#include "store/tlsrpt_store.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <stdexcept>
#include <string_view>

#include "store/connection.h"

namespace mtasts::store {
namespace {

using policy::Error;
using policy::Result;
using policy::TlsrptAggregate;

constexpr std::string_view kUpsertFailure =
    "INSERT INTO tlsrpt_failures (day, policy_type, policy_domain, policy_string, mx_patterns, "
    "result_type, failure_reason_code, sending_mta_ip, receiving_mx_hostname, receiving_ip, "
    "additional_information, failed_session_count) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
    "ON CONFLICT (day, policy_type, policy_domain, policy_string, mx_patterns, result_type, "
    "failure_reason_code, sending_mta_ip, receiving_mx_hostname, receiving_ip, "
    "additional_information) DO UPDATE SET "
    "failed_session_count = failed_session_count + excluded.failed_session_count";
constexpr std::string_view kUpsertSuccess =
    "INSERT INTO tlsrpt_successes (day, policy_type, policy_domain, policy_string, mx_patterns, "
    "successful_session_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (day, policy_type, policy_domain, policy_string, mx_patterns) DO UPDATE SET "
    "successful_session_count = successful_session_count + excluded.successful_session_count";
constexpr std::string_view kSelectFailures =
    "SELECT day, policy_type, policy_domain, policy_string, mx_patterns, result_type, "
    "failure_reason_code, sending_mta_ip, receiving_mx_hostname, receiving_ip, "
    "additional_information, failed_session_count FROM tlsrpt_failures "
    "WHERE day BETWEEN ?1 AND ?2 ORDER BY day, policy_domain, policy_type, result_type, "
    "receiving_mx_hostname, receiving_ip, failure_reason_code";
constexpr std::string_view kSelectSuccesses =
    "SELECT day, policy_type, policy_domain, policy_string, mx_patterns, successful_session_count "
    "FROM tlsrpt_successes WHERE day BETWEEN ?1 AND ?2 "
    "ORDER BY day, policy_domain, policy_type, policy_string";

void bind_policy(StatementUse& use, const TlsrptAggregate& a) {
  use.bind(1, a.day);
  use.bind(2, a.policy_type);
  use.bind(3, a.policy_domain);
  use.bind(4, a.policy_string);
  use.bind(5, a.mx_patterns);
}

TlsrptAggregate read_policy(const StatementUse& use) {
  TlsrptAggregate a;
  a.day = use.text(0);
  a.policy_type = use.text(1);
  a.policy_domain = use.text(2);
  a.policy_string = use.text(3);
  a.mx_patterns = use.text(4);
  return a;
}

std::optional<TlsrptAggregate> read_failure(const StatementUse& use) {
  TlsrptAggregate a = read_policy(use);
  a.result_type = policy::result_type_from_string(use.text(5));
  if (!a.result_type) {
    spdlog::warn("store event=bad-row table=tlsrpt_failures domain={} column=result_type", a.policy_domain);
    return std::nullopt;
  }
  a.failure_reason_code = use.text(6);
  a.sending_mta_ip = use.text(7);
  a.receiving_mx_hostname = use.text(8);
  a.receiving_ip = use.text(9);
  a.additional_information = use.text(10);
  a.sessions = use.integer(11);
  return a;
}

}  // namespace

struct SqliteTlsrptStore::Impl {
  explicit Impl(std::shared_ptr<Database> opened) : database(std::move(opened)) {}

  std::shared_ptr<Database> database;
};

namespace {

// One upsert; SQLITE_DONE or the error.
int upsert(Connection& writer, const TlsrptAggregate& a) {
  int rc = SQLITE_OK;
  sqlite3_stmt* const stmt = writer.statements.get(a.success ? kUpsertSuccess : kUpsertFailure, rc);
  if (stmt == nullptr) return rc;
  StatementUse use(stmt);
  bind_policy(use, a);
  if (a.success) {
    use.bind(6, a.sessions);
    return use.step();
  }
  const std::string type(policy::to_string(a.result_type.value_or(policy::ResultType::ValidationFailure)));
  use.bind(6, type);
  use.bind(7, a.failure_reason_code);
  use.bind(8, a.sending_mta_ip);
  use.bind(9, a.receiving_mx_hostname);
  use.bind(10, a.receiving_ip);
  use.bind(11, a.additional_information);
  use.bind(12, a.sessions);
  return use.step();
}

Result<bool> add_all(Connection& writer, const std::vector<TlsrptAggregate>& batch) {
  Transaction transaction(writer.handle());
  int rc = transaction.begun();
  for (auto it = batch.begin(); rc == SQLITE_OK && it != batch.end(); ++it) {
    rc = upsert(writer, *it);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK) rc = transaction.commit();
  if (rc == SQLITE_OK) return true;
  return Error{std::string(error_code(rc)), sqlite3_errmsg(writer.handle())};
}

// Every row of both tables for the days, or the SQLite error code.
int read_all(Connection& reader, const std::string& first_day, const std::string& last_day,
             std::vector<TlsrptAggregate>& rows) {
  int rc = SQLITE_OK;
  for (const std::string_view sql : {kSelectFailures, kSelectSuccesses}) {
    sqlite3_stmt* const stmt = reader.statements.get(sql, rc);
    if (stmt == nullptr) break;
    StatementUse use(stmt);
    use.bind(1, first_day);
    use.bind(2, last_day);
    const bool failures = sql == kSelectFailures;
    while ((rc = use.step()) == SQLITE_ROW) {
      if (!failures) {
        TlsrptAggregate a = read_policy(use);
        a.success = true;
        a.sessions = use.integer(5);
        rows.push_back(std::move(a));
      } else if (auto a = read_failure(use)) {
        rows.push_back(std::move(*a));
      }
    }
    if (rc != SQLITE_DONE) break;
  }
  return rc;
}

}  // namespace

SqliteTlsrptStore::SqliteTlsrptStore(std::shared_ptr<Database> database)
    : impl_(std::make_unique<Impl>(std::move(database))) {}

SqliteTlsrptStore::SqliteTlsrptStore(const std::string& path) : SqliteTlsrptStore(Database::open(path)) {}

SqliteTlsrptStore::~SqliteTlsrptStore() = default;

Result<bool> SqliteTlsrptStore::add(const std::vector<TlsrptAggregate>& batch) {
  if (batch.empty()) return false;
  Result<bool> result = false;
  try {
    result = with_writer(*impl_->database, [&batch](Connection& writer) { return add_all(writer, batch); });
  } catch (const std::exception& e) {
    result = Error{"store-error", e.what()};
  }
  if (!result)
    warn_failed(*impl_->database, StoreAccess::Write, "tlsrpt_add",
                fmt::format("aggregates={}", batch.size()), result.error());
  return result;
}

std::vector<TlsrptAggregate> SqliteTlsrptStore::read(const std::string& first_day,
                                                     const std::string& last_day) {
  std::vector<TlsrptAggregate> rows;
  std::optional<Error> failed;
  try {
    with_reader(*impl_->database, [&](Connection& reader) {
      const int rc = read_all(reader, first_day, last_day, rows);
      if (rc != SQLITE_DONE) failed = Error{std::string(error_code(rc)), sqlite3_errmsg(reader.handle())};
    });
  } catch (const std::exception& e) {
    failed = Error{"store-error", e.what()};
  }
  if (failed) {
    warn_failed(*impl_->database, StoreAccess::Read, "tlsrpt_read",
                fmt::format("days={}..{}", first_day, last_day), *failed);
    return {};
  }
  return rows;
}

}  // namespace mtasts::store
