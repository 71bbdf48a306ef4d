// Test helpers for store/: a temporary directory removed afterwards, and a
// second, plain SQLite connection doing what an operator's `sqlite3` would.
#pragma once

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace mtasts::testing {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "mtasts-store-test.XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class RawDb {
 public:
  // Opens (creating) the file, waiting up to 5 s for the store's locks.
  explicit RawDb(const std::string& path) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) throw std::runtime_error("RawDb open failed: " + path);
    sqlite3_busy_timeout(db_.get(), 5000);
  }

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string why = message != nullptr ? message : "?";
      sqlite3_free(message);
      throw std::runtime_error("RawDb exec failed: " + sql + ": " + why);
    }
  }

  // Runs `sql` with text parameters ?1, ?2, ... and returns every row, each
  // column as text ("NULL" for NULL), columns separated by '|'.
  std::vector<std::string> rows(const std::string& sql, const std::vector<std::string>& params = {}) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
      throw std::runtime_error("RawDb prepare failed: " + sql + ": " + sqlite3_errmsg(db_.get()));
    const std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
    for (std::size_t i = 0; i < params.size(); ++i)
      sqlite3_bind_text64(raw, static_cast<int>(i + 1), params[i].data(), params[i].size(), SQLITE_TRANSIENT,
                          SQLITE_UTF8);
    std::vector<std::string> result;
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      std::string row;
      for (int c = 0; c < sqlite3_column_count(raw); ++c) {
        const auto* text = sqlite3_column_text(raw, c);
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(raw, c));
        row += (c > 0 ? "|" : "");
        row += text == nullptr ? std::string("NULL") : std::string(reinterpret_cast<const char*>(text), size);
      }
      result.push_back(row);
    }
    if (rc != SQLITE_DONE)
      throw std::runtime_error("RawDb step failed: " + sql + ": " + sqlite3_errmsg(db_.get()));
    return result;
  }

  // The first row ("<no row>" when none).
  std::string one(const std::string& sql, const std::vector<std::string>& params = {}) {
    const auto all_rows = rows(sql, params);
    return all_rows.empty() ? std::string("<no row>") : all_rows.front();
  }

  // Every row joined by ';' (like `sqlite3 -list` on one line).
  std::string all(const std::string& sql) {
    std::string out;
    for (const auto& row : rows(sql)) out += (out.empty() ? "" : ";") + row;
    return out;
  }

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::unique_ptr<sqlite3, Closer> db_;
};

}  // namespace mtasts::testing
