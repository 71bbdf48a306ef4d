// Why compare-and-set claims: `report send` runs from a timer and by hand;
// two runs at once must not both send one report. The claim (state Sending,
// one more attempt) commits before the transport runs, only where the row
// still holds what the sender read; the loser sees false and moves on.
// Reads for `report status` and `report send` take a reader; writes the
// Database's one writer (store/database.h).
#include "store/report_store.h"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string_view>
#include <utility>

#include "store/connection.h"

namespace mtasts::store {
namespace {

using policy::Delivery;
using policy::DeliveryState;
using policy::Error;
using policy::Result;

constexpr std::string_view kInsertReport =
    "INSERT INTO tlsrpt_reports (report_id, day, policy_domain, file_name, report_gz, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (report_id) DO NOTHING";
constexpr std::string_view kSelectReportsOfDay =
    "SELECT report_id, day, policy_domain, file_name, report_gz, created_at FROM tlsrpt_reports "
    "WHERE day = ?1 ORDER BY policy_domain, report_id";
constexpr std::string_view kSelectReport =
    "SELECT report_id, day, policy_domain, file_name, report_gz, created_at FROM tlsrpt_reports "
    "WHERE report_id = ?1";
constexpr std::string_view kSelectUnstarted =
    "SELECT report_id, day, policy_domain, file_name, x'', created_at FROM tlsrpt_reports r "
    "WHERE ?1 = '' AND NOT EXISTS (SELECT 1 FROM tlsrpt_deliveries d WHERE d.report_id = r.report_id) "
    "ORDER BY day, policy_domain";
constexpr std::string_view kInsertDelivery =
    "INSERT INTO tlsrpt_deliveries (report_id, destination, state, attempts, not_before, "
    "first_attempt_at, claimed_at, finished_at, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
    "ON CONFLICT (report_id, destination) DO NOTHING";
constexpr std::string_view kSelectDeliveries =
    "SELECT d.report_id, d.destination, d.state, d.attempts, d.not_before, d.first_attempt_at, "
    "d.claimed_at, d.finished_at, d.last_error FROM tlsrpt_deliveries d "
    "JOIN tlsrpt_reports r ON r.report_id = d.report_id "
    "WHERE ?1 = '' OR r.day = ?1 ORDER BY r.day, r.policy_domain, d.report_id, d.destination";
constexpr std::string_view kSelectOpenDeliveries =
    "SELECT d.report_id, d.destination, d.state, d.attempts, d.not_before, d.first_attempt_at, "
    "d.claimed_at, d.finished_at, d.last_error FROM tlsrpt_deliveries d "
    "JOIN tlsrpt_reports r ON r.report_id = d.report_id "
    "WHERE d.state IN ('pending', 'sending') AND (?1 = '' OR r.day = ?1) "
    "ORDER BY r.day, r.policy_domain, d.report_id, d.destination";
// Reports of old days with no open delivery: their deliveries first, then
// the reports left without any.
constexpr std::string_view kPruneDeliveries =
    "DELETE FROM tlsrpt_deliveries WHERE report_id IN (SELECT report_id FROM tlsrpt_reports r WHERE day < ?1 "
    "AND NOT EXISTS (SELECT 1 FROM tlsrpt_deliveries o WHERE o.report_id = r.report_id "
    "AND o.state IN ('pending', 'sending')))";
constexpr std::string_view kPruneReports =
    "DELETE FROM tlsrpt_reports AS r WHERE day < ?1 AND NOT EXISTS (SELECT 1 FROM tlsrpt_deliveries o "
    "WHERE o.report_id = r.report_id)";
constexpr std::string_view kReplaceDelivery =
    "UPDATE tlsrpt_deliveries SET state = ?3, attempts = ?4, not_before = ?5, first_attempt_at = ?6, "
    "claimed_at = ?7, finished_at = ?8, last_error = ?9 "
    "WHERE report_id = ?1 AND destination = ?2 AND state = ?10 AND attempts = ?11 AND claimed_at = ?12";

StoredReport read_report(const StatementUse& use) {
  return StoredReport{use.text(0), use.text(1), use.text(2), use.text(3), use.blob(4), use.integer(5)};
}

std::optional<Delivery> read_delivery(const StatementUse& use) {
  Delivery d;
  d.report_id = use.text(0);
  d.destination = use.text(1);
  const auto state = policy::delivery_state_from_string(use.text(2));
  if (!state) {
    spdlog::warn("store event=bad-row table=tlsrpt_deliveries report_id={} column=state", d.report_id);
    return std::nullopt;
  }
  d.state = *state;
  d.attempts = static_cast<int>(use.integer(3));
  d.not_before = use.integer(4);
  d.first_attempt_at = use.integer(5);
  d.claimed_at = use.integer(6);
  d.finished_at = use.integer(7);
  d.last_error = use.text(8);
  return d;
}

// Binds ?1..?9 in the column order of kInsertDelivery and kReplaceDelivery.
void bind_delivery(StatementUse& use, const Delivery& d, const std::string& state) {
  use.bind(1, d.report_id);
  use.bind(2, d.destination);
  use.bind(3, state);
  use.bind(4, static_cast<std::int64_t>(d.attempts));
  use.bind(5, d.not_before);
  use.bind(6, d.first_attempt_at);
  use.bind(7, d.claimed_at);
  use.bind(8, d.finished_at);
  use.bind(9, d.last_error);
}

Error sqlite_error(Connection& connection, int rc) {
  return Error{std::string(error_code(rc)), sqlite3_errmsg(connection.handle())};
}

// Runs `write` in one transaction on the writer; logs a failure.
template <class T, class Fn>
Result<T> write(Database& database, std::string_view op, std::string_view subject, Fn&& fn) {
  Result<T> result = Error{"store-error", "not run"};
  try {
    result = with_writer(database, [&fn](Connection& writer) -> Result<T> {
      Transaction transaction(writer.handle());
      if (const int rc = transaction.begun(); rc != SQLITE_OK) return sqlite_error(writer, rc);
      Result<T> done = fn(writer);
      if (!done) return done;
      if (const int rc = transaction.commit(); rc != SQLITE_OK) return sqlite_error(writer, rc);
      return done;
    });
  } catch (const std::exception& e) {
    result = Error{"store-error", e.what()};
  }
  if (!result) warn_failed(database, StoreAccess::Write, op, subject, result.error());
  return result;
}

// Runs `read` on a reader; logs a failure.
template <class T, class Fn>
Result<T> read(Database& database, std::string_view op, std::string_view subject, Fn&& fn) {
  Result<T> result = Error{"store-error", "not run"};
  try {
    result = with_reader(database, [&fn](Connection& reader) -> Result<T> { return fn(reader); });
  } catch (const std::exception& e) {
    result = Error{"store-error", e.what()};
  }
  if (!result) warn_failed(database, StoreAccess::Read, op, subject, result.error());
  return result;
}

// Every row `sql` returns for the one text parameter, through `row`.
template <class T, class RowFn>
Result<std::vector<T>> select_all(Connection& reader, std::string_view sql, const std::string& param,
                                  RowFn&& row) {
  int rc = SQLITE_OK;
  sqlite3_stmt* const stmt = reader.statements.get(sql, rc);
  if (stmt == nullptr) return sqlite_error(reader, rc);
  StatementUse use(stmt);
  use.bind(1, param);
  std::vector<T> rows;
  while ((rc = use.step()) == SQLITE_ROW)
    if (auto value = row(use)) rows.push_back(std::move(*value));
  if (rc != SQLITE_DONE) return sqlite_error(reader, rc);
  return rows;
}

}  // namespace

ReportStore::ReportStore(std::shared_ptr<Database> database) : database_(std::move(database)) {}

Result<int> ReportStore::save_reports(const std::vector<StoredReport>& reports) {
  return write<int>(*database_, "report_save", fmt::format("reports={}", reports.size()),
                    [&reports](Connection& writer) -> Result<int> {
                      int added = 0;
                      for (const StoredReport& r : reports) {
                        int rc = SQLITE_OK;
                        sqlite3_stmt* const stmt = writer.statements.get(kInsertReport, rc);
                        if (stmt == nullptr) return sqlite_error(writer, rc);
                        StatementUse use(stmt);
                        use.bind(1, r.report_id);
                        use.bind(2, r.day);
                        use.bind(3, r.policy_domain);
                        use.bind(4, r.file_name);
                        use.bind_blob(5, r.report_gz);
                        use.bind(6, r.created_at);
                        if ((rc = use.step()) != SQLITE_DONE) return sqlite_error(writer, rc);
                        added += sqlite3_changes(writer.handle());
                      }
                      return added;
                    });
}

Result<std::vector<StoredReport>> ReportStore::reports_of_day(const std::string& day) {
  return read<std::vector<StoredReport>>(*database_, "report_read", "day=" + day, [&day](Connection& reader) {
    return select_all<StoredReport>(reader, kSelectReportsOfDay, day,
                                    [](const StatementUse& use) { return std::optional(read_report(use)); });
  });
}

std::optional<StoredReport> ReportStore::load_report(const std::string& report_id) {
  auto rows = read<std::vector<StoredReport>>(
      *database_, "report_read", "report_id=" + report_id, [&report_id](Connection& reader) {
        return select_all<StoredReport>(reader, kSelectReport, report_id, [](const StatementUse& use) {
          return std::optional(read_report(use));
        });
      });
  if (!rows || rows->empty()) return std::nullopt;
  return rows->front();
}

Result<std::vector<StoredReport>> ReportStore::reports_without_deliveries() {
  return read<std::vector<StoredReport>>(*database_, "report_read", "unstarted=1", [](Connection& reader) {
    return select_all<StoredReport>(reader, kSelectUnstarted, "",
                                    [](const StatementUse& use) { return std::optional(read_report(use)); });
  });
}

Result<bool> ReportStore::add_deliveries(const std::vector<Delivery>& deliveries) {
  return write<bool>(*database_, "delivery_add", fmt::format("deliveries={}", deliveries.size()),
                     [&deliveries](Connection& writer) -> Result<bool> {
                       for (const Delivery& d : deliveries) {
                         int rc = SQLITE_OK;
                         sqlite3_stmt* const stmt = writer.statements.get(kInsertDelivery, rc);
                         if (stmt == nullptr) return sqlite_error(writer, rc);
                         StatementUse use(stmt);
                         const std::string state(policy::to_string(d.state));
                         bind_delivery(use, d, state);
                         if ((rc = use.step()) != SQLITE_DONE) return sqlite_error(writer, rc);
                       }
                       return true;
                     });
}

Result<std::vector<Delivery>> ReportStore::deliveries(const std::string& day) {
  return read<std::vector<Delivery>>(*database_, "delivery_read", "day=" + day, [&day](Connection& reader) {
    return select_all<Delivery>(reader, kSelectDeliveries, day, read_delivery);
  });
}

Result<std::vector<Delivery>> ReportStore::open_deliveries(const std::string& day) {
  return read<std::vector<Delivery>>(*database_, "delivery_read", "day=" + day, [&day](Connection& reader) {
    return select_all<Delivery>(reader, kSelectOpenDeliveries, day, read_delivery);
  });
}

Result<int> ReportStore::prune_before(const std::string& first_kept_day) {
  return write<int>(*database_, "report_prune", "before=" + first_kept_day,
                    [&first_kept_day](Connection& writer) -> Result<int> {
                      int pruned = 0;
                      for (const std::string_view sql : {kPruneDeliveries, kPruneReports}) {
                        int rc = SQLITE_OK;
                        sqlite3_stmt* const stmt = writer.statements.get(sql, rc);
                        if (stmt == nullptr) return sqlite_error(writer, rc);
                        StatementUse use(stmt);
                        use.bind(1, first_kept_day);
                        if ((rc = use.step()) != SQLITE_DONE) return sqlite_error(writer, rc);
                        pruned = sqlite3_changes(writer.handle());
                      }
                      return pruned;
                    });
}

Result<bool> ReportStore::replace_delivery(const Delivery& before, const Delivery& after) {
  return write<bool>(*database_, "delivery_update", "report_id=" + after.report_id,
                     [&before, &after](Connection& writer) -> Result<bool> {
                       int rc = SQLITE_OK;
                       sqlite3_stmt* const stmt = writer.statements.get(kReplaceDelivery, rc);
                       if (stmt == nullptr) return sqlite_error(writer, rc);
                       StatementUse use(stmt);
                       const std::string state(policy::to_string(after.state));
                       const std::string old_state(policy::to_string(before.state));
                       bind_delivery(use, after, state);
                       use.bind(10, old_state);
                       use.bind(11, static_cast<std::int64_t>(before.attempts));
                       use.bind(12, before.claimed_at);
                       if ((rc = use.step()) != SQLITE_DONE) return sqlite_error(writer, rc);
                       return sqlite3_changes(writer.handle()) == 1;
                     });
}

}  // namespace mtasts::store
