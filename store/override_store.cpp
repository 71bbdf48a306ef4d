// Why a whole-table read on every reload: the table is small (one row per
// domain an operator cares about) and a reload is rare, so there is no cache
// to keep in step. Why skip a bad row instead of refusing the table: one typo
// must not take away every other override while the milter keeps running; the
// warning names the row so the operator can fix it and signal again.
// It only reads, through one of the Database's readers (store/database.h),
// so a reload never waits for a write.
#include "store/override_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <stdexcept>

#include "policy/domain.h"
#include "policy/logfmt.h"
#include "store/connection.h"

namespace mtasts::store {
namespace {

using policy::Error;
using policy::Result;

constexpr std::string_view kSelect =
    "SELECT rowid, domain, enforce_action, testing_action, strict_testing FROM overrides ORDER BY rowid";
enum Column { kRowid = 0, kDomain, kEnforce, kTesting, kStrict };

constexpr std::array kEnforceActions = {"tempfail", "reject", "quarantine", "tag", "off"};
constexpr std::array kTestingActions = {"tag", "off"};

template <std::size_t N>
bool one_of(std::string_view value, const std::array<const char*, N>& words) {
  for (const char* word : words)
    if (value == word) return true;
  return false;
}

std::string column_text(sqlite3_stmt* stmt, int column) {
  const auto* data = sqlite3_column_text(stmt, column);
  if (data == nullptr) return "NULL";
  return std::string(reinterpret_cast<const char*>(data),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
}

// An action column: NULL, or TEXT naming one of `valid`. Error: the column.
Result<std::optional<std::string>> action_column(sqlite3_stmt* stmt, int column,
                                                 bool (*valid)(std::string_view)) {
  const int type = sqlite3_column_type(stmt, column);
  if (type == SQLITE_NULL) return std::optional<std::string>();
  const std::string value = column_text(stmt, column);
  if (type != SQLITE_TEXT || !valid(value)) return Error{sqlite3_column_name(stmt, column), value};
  return std::optional<std::string>(value);
}

Result<std::optional<bool>> strict_column(sqlite3_stmt* stmt) {
  const int type = sqlite3_column_type(stmt, kStrict);
  if (type == SQLITE_NULL) return std::optional<bool>();
  const std::int64_t value = sqlite3_column_int64(stmt, kStrict);
  if (type != SQLITE_INTEGER || (value != 0 && value != 1))
    return Error{"strict_testing", column_text(stmt, kStrict)};
  return std::optional<bool>(value == 1);
}

// One row, validated. Error: the column at fault and its value.
Result<std::pair<std::string, DomainOverride>> parse_row(sqlite3_stmt* stmt) {
  const bool is_text = sqlite3_column_type(stmt, kDomain) == SQLITE_TEXT;  // before any conversion
  const std::string raw_domain = column_text(stmt, kDomain);
  auto domain = policy::normalize_domain(raw_domain);
  if (!is_text || !domain) return Error{"domain", raw_domain};
  auto enforce = action_column(stmt, kEnforce, valid_enforce_action);
  if (!enforce) return enforce.error();
  auto testing = action_column(stmt, kTesting, valid_testing_action);
  if (!testing) return testing.error();
  auto strict = strict_column(stmt);
  if (!strict) return strict.error();
  return std::pair{std::move(*domain), DomainOverride{std::move(*enforce), std::move(*testing), *strict}};
}

void warn_invalid(sqlite3_stmt* stmt, std::string_view column, std::string_view value) {
  spdlog::warn("overrides event=invalid-row rowid={} domain={} column={} value={} action=skipped",
               sqlite3_column_int64(stmt, kRowid), policy::logfmt_value(column_text(stmt, kDomain)), column,
               policy::logfmt_value(value));
}

}  // namespace

bool valid_enforce_action(std::string_view value) { return one_of(value, kEnforceActions); }
bool valid_testing_action(std::string_view value) { return one_of(value, kTestingActions); }

struct OverrideStore::Impl {
  explicit Impl(std::shared_ptr<Database> opened) : database(std::move(opened)) {}

  std::shared_ptr<Database> database;
};

namespace {

// Every row of the table; invalid rows are logged and skipped.
Result<DomainOverrides> load_rows(const Connection& reader, const std::string& path) {
  sqlite3_stmt* raw = nullptr;
  int rc =
      sqlite3_prepare_v2(reader.handle(), kSelect.data(), static_cast<int>(kSelect.size()), &raw, nullptr);
  const StatementPtr stmt(raw);
  DomainOverrides out;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) break;
    auto row = parse_row(stmt.get());
    if (!row) {
      warn_invalid(stmt.get(), row.error().code, row.error().detail);
    } else if (!out.emplace(row->first, row->second).second) {
      warn_invalid(stmt.get(), "domain", fmt::format("{} (repeats an earlier row)", row->first));
    }
  }
  if (rc == SQLITE_DONE) return out;
  const Error error{std::string(error_code(rc)), sqlite3_errmsg(reader.handle())};
  spdlog::error("overrides event=read-failed store={} error={}", policy::logfmt_value(path),
                policy::logfmt_value(error.detail));
  return error;
}

}  // namespace

OverrideStore::OverrideStore(std::shared_ptr<Database> database)
    : impl_(std::make_unique<Impl>(std::move(database))) {}
OverrideStore::OverrideStore(const std::string& path) : OverrideStore(Database::open(path)) {}
OverrideStore::~OverrideStore() = default;

Result<DomainOverrides> OverrideStore::load() try {
  Database& database = *impl_->database;
  return with_reader(database,
                     [&database](const Connection& reader) { return load_rows(reader, database.path()); });
} catch (const std::exception& e) {  // allocation failure, a reader that cannot open: a value, never a throw
  return Error{"store-error", e.what()};
}

}  // namespace mtasts::store
