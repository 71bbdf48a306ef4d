#include "store/statement.h"

namespace mtasts::store {

sqlite3_stmt* StatementCache::get(std::string_view sql, int& rc) {
  rc = SQLITE_OK;
  const auto found = statements_.find(std::string(sql));
  if (found != statements_.end()) {
    return found->second.get();
  }
  sqlite3_stmt* raw = nullptr;
  // PERSISTENT: these statements live as long as the connection.
  rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                          &raw, nullptr);
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

std::int64_t StatementUse::integer(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

}  // namespace mtasts::store
