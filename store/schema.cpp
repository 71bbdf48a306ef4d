#include "store/schema.h"

#include <fmt/format.h>

#include <array>
#include <stdexcept>
#include <string_view>

#include "store/statement.h"

namespace mtasts::store {
namespace {

struct Migration {
  int version;
  std::string_view sql;
};

// Append only: a released migration is never edited, a change is a new entry.
// Times are INTEGER unix seconds; enumerations are stored as their RFC / log
// strings so `sqlite3` shows them as they appear in logs and reports.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE policies (
  domain       TEXT PRIMARY KEY NOT NULL,
  txt_id       TEXT NOT NULL,
  mode         TEXT NOT NULL CHECK (mode IN ('enforce', 'testing', 'none')),
  max_age      INTEGER NOT NULL CHECK (max_age >= 0),
  mx           TEXT NOT NULL,
  raw          TEXT NOT NULL,
  fetched_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  last_checked INTEGER NOT NULL,
  last_used    INTEGER NOT NULL,
  dnssec       TEXT NOT NULL CHECK (dnssec IN ('secure', 'insecure', 'bogus')),
  last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX policies_expires_at ON policies (expires_at);
CREATE VIEW policies_readable AS
  SELECT domain, txt_id, mode, max_age, mx, dnssec, last_error,
         strftime('%Y-%m-%dT%H:%M:%SZ', fetched_at, 'unixepoch')   AS fetched_at,
         strftime('%Y-%m-%dT%H:%M:%SZ', expires_at, 'unixepoch')   AS expires_at,
         strftime('%Y-%m-%dT%H:%M:%SZ', last_checked, 'unixepoch') AS last_checked,
         strftime('%Y-%m-%dT%H:%M:%SZ', last_used, 'unixepoch')    AS last_used
  FROM policies;
CREATE TABLE fetch_failures (
  domain      TEXT PRIMARY KEY NOT NULL,
  txt_id      TEXT NOT NULL,
  failed_at   INTEGER NOT NULL,
  retry_at    INTEGER NOT NULL,
  result_type TEXT NOT NULL,
  reason      TEXT NOT NULL
);
)sql";

// v2: TLSRPT aggregates (RFC 8460 §4.4), per UTC day. Every column is NOT
// NULL (empty text for "absent") so the UNIQUE keys compare as written and
// an upsert can add to the count; a row is never split by NULLs.
constexpr std::string_view kV2 = R"sql(
CREATE TABLE tlsrpt_failures (
  day                    TEXT NOT NULL,
  policy_type            TEXT NOT NULL CHECK (policy_type IN ('sts', 'tlsa', 'no-policy-found')),
  policy_domain          TEXT NOT NULL,
  policy_string          TEXT NOT NULL DEFAULT '',
  mx_patterns            TEXT NOT NULL DEFAULT '',
  result_type            TEXT NOT NULL,
  failure_reason_code    TEXT NOT NULL DEFAULT '',
  sending_mta_ip         TEXT NOT NULL DEFAULT '',
  receiving_mx_hostname  TEXT NOT NULL DEFAULT '',
  receiving_ip           TEXT NOT NULL DEFAULT '',
  additional_information TEXT NOT NULL DEFAULT '',
  failed_session_count   INTEGER NOT NULL CHECK (failed_session_count > 0),
  UNIQUE (day, policy_type, policy_domain, policy_string, mx_patterns, result_type,
          failure_reason_code, sending_mta_ip, receiving_mx_hostname, receiving_ip,
          additional_information)
);
CREATE INDEX tlsrpt_failures_domain_day ON tlsrpt_failures (policy_domain, day);
CREATE TABLE tlsrpt_successes (
  day                      TEXT NOT NULL,
  policy_type              TEXT NOT NULL CHECK (policy_type IN ('sts', 'tlsa', 'no-policy-found')),
  policy_domain            TEXT NOT NULL,
  policy_string            TEXT NOT NULL DEFAULT '',
  mx_patterns              TEXT NOT NULL DEFAULT '',
  successful_session_count INTEGER NOT NULL CHECK (successful_session_count > 0),
  UNIQUE (day, policy_type, policy_domain, policy_string, mx_patterns)
);
CREATE INDEX tlsrpt_successes_domain_day ON tlsrpt_successes (policy_domain, day);
)sql";

// v3: per-domain overrides of the decision actions, written by operators with
// plain sqlite3 (README "Per-domain overrides"). NULL means "use the config".
// No CHECK constraints on purpose: the milter validates each row when it
// loads the table (store/override_store.h) and skips a bad one with a
// warning, and a later release can accept new action names without
// rebuilding the table (SQLite cannot alter a CHECK).
constexpr std::string_view kV3 = R"sql(
CREATE TABLE overrides (
  domain         TEXT PRIMARY KEY NOT NULL,
  enforce_action TEXT,
  testing_action TEXT,
  strict_testing INTEGER,
  note           TEXT
);
)sql";

// v4: whether a remembered fetch failure was temporary, as the fetcher found
// it, so the back-off replays "unknown" rather than "no policy" for a reset
// or a timeout (RFC 8461 §5.1: no definite answer without a definite fact).
// Rows from v3 read as permanent; they are gone within one back-off.
constexpr std::string_view kV4 = R"sql(
ALTER TABLE fetch_failures ADD COLUMN temporary INTEGER NOT NULL DEFAULT 0 CHECK (temporary IN (0, 1));
)sql";

// v5: the daily TLSRPT reports as built (RFC 8460 §4, gzipped per §5.2) and
// their deliveries (policy/report_delivery.h), so `report send` never sends a
// delivered report again and a crash loses none. A report is immutable once
// stored; its first step is the lookup of its destinations, a delivery row
// whose destination is "dns:_smtp._tls.DOMAIN" (delivered: the record was
// found and one row per rua URI added; failed: no usable record).
constexpr std::string_view kV5 = R"sql(
CREATE TABLE tlsrpt_reports (
  report_id     TEXT PRIMARY KEY NOT NULL,
  day           TEXT NOT NULL,
  policy_domain TEXT NOT NULL,
  file_name     TEXT NOT NULL,
  report_gz     BLOB NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE INDEX tlsrpt_reports_day ON tlsrpt_reports (day, policy_domain);
CREATE TABLE tlsrpt_deliveries (
  report_id        TEXT NOT NULL REFERENCES tlsrpt_reports (report_id) ON DELETE CASCADE,
  destination      TEXT NOT NULL,
  state            TEXT NOT NULL
                   CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'expired')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  not_before       INTEGER NOT NULL DEFAULT 0,
  first_attempt_at INTEGER NOT NULL DEFAULT 0,
  claimed_at       INTEGER NOT NULL DEFAULT 0,
  finished_at      INTEGER NOT NULL DEFAULT 0,
  last_error       TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (report_id, destination)
);
CREATE INDEX tlsrpt_deliveries_state ON tlsrpt_deliveries (state, not_before);
)sql";

constexpr std::array kMigrations{Migration{1, kV1}, Migration{2, kV2}, Migration{3, kV3}, Migration{4, kV4},
                                 Migration{5, kV5}};
static_assert(kMigrations.back().version == kSchemaVersion);

std::string errmsg(sqlite3* db) { return sqlite3_errmsg(db); }

void exec_or_throw(sqlite3* db, const std::string& sql, const std::string& path, int target) {
  if (const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
    if (is_corruption(rc))
      throw CorruptDatabase(fmt::format("The policy cache database '{}' is damaged: {}.", path, errmsg(db)));
    throw std::runtime_error(fmt::format(
        "Cannot migrate the policy cache database '{}' to schema version {}: {}.", path, target, errmsg(db)));
  }
}

void check_not_newer(int version, const std::string& path) {
  if (version > kSchemaVersion) {
    throw std::runtime_error(
        fmt::format("The policy cache database '{}' has schema version {}, newer than version {} that this "
                    "mta-sts-milter understands; upgrade mta-sts-milter or move the file away.",
                    path, version, kSchemaVersion));
  }
}

// Runs inside the transaction: re-reads the version, since another process
// may have migrated between our first look and taking the write lock.
void apply_pending(sqlite3* db, const std::string& path) {
  const int current = schema_version(db, path);
  check_not_newer(current, path);
  for (const Migration& migration : kMigrations) {
    if (migration.version > current) {
      exec_or_throw(db, std::string(migration.sql), path, migration.version);
    }
  }
  exec_or_throw(db, fmt::format("PRAGMA user_version = {}", kSchemaVersion), path, kSchemaVersion);
}

}  // namespace

int schema_version(sqlite3* db, const std::string& path) {
  sqlite3_stmt* raw = nullptr;
  const int prepare_rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &raw, nullptr);
  const StatementPtr stmt(raw);
  const int rc = prepare_rc == SQLITE_OK ? sqlite3_step(stmt.get()) : prepare_rc;
  if (is_corruption(rc))
    throw CorruptDatabase(fmt::format("The policy cache database '{}' is damaged: {}.", path, errmsg(db)));
  if (rc != SQLITE_ROW) {
    throw std::runtime_error(fmt::format(
        "Cannot read the schema version of the policy cache database '{}': {}.", path, errmsg(db)));
  }
  return sqlite3_column_int(stmt.get(), 0);
}

void migrate(sqlite3* db, const std::string& path) {
  const int current = schema_version(db, path);
  check_not_newer(current, path);
  if (current == kSchemaVersion) {
    return;
  }
  exec_or_throw(db, "BEGIN IMMEDIATE", path, kSchemaVersion);
  try {
    apply_pending(db, path);
    exec_or_throw(db, "COMMIT", path, kSchemaVersion);
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace mtasts::store
