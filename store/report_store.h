// The built TLSRPT reports (RFC 8460 §4, gzipped per §5.2) and the state of
// their deliveries (policy/report_delivery.h), in the policy cache database
// (tables tlsrpt_reports and tlsrpt_deliveries, schema v5 in
// store/schema.cpp), so `report send` run by a timer never sends a delivered
// report twice and never loses one across a crash or a restart.
// Thread-safe; several processes may use the file at once (claims are
// compare-and-set, so two senders never both send one delivery).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/report_delivery.h"
#include "policy/result.h"
#include "store/database.h"

namespace mtasts::store {

struct StoredReport {
  std::string report_id;  // §4.4 report-id (primary key)
  std::string day;        // "YYYY-MM-DD"
  std::string policy_domain;
  std::string file_name;  // §5.1 name of report_gz
  std::string report_gz;  // the gzipped JSON document, as sent
  std::int64_t created_at = 0;

  bool operator==(const StoredReport&) const = default;
};

class ReportStore {
 public:
  explicit ReportStore(std::shared_ptr<Database> database);

  // Stores each report whose report_id is not stored yet; one already stored
  // is kept as it was (its deliveries may have started: a report, once
  // built, is what gets sent). The number of new reports, or the error (all
  // or nothing).
  policy::Result<int> save_reports(const std::vector<StoredReport>& reports);

  // The reports of `day`, by policy domain (with their bytes).
  policy::Result<std::vector<StoredReport>> reports_of_day(const std::string& day);
  std::optional<StoredReport> load_report(const std::string& report_id);
  // Reports with no delivery row yet (their destinations not looked up),
  // without their bytes (report_gz empty).
  policy::Result<std::vector<StoredReport>> reports_without_deliveries();

  // Adds deliveries whose (report_id, destination) is not stored yet.
  policy::Result<bool> add_deliveries(const std::vector<policy::Delivery>& deliveries);

  // Every delivery of the reports of `day` ("" : of every day), ordered by
  // report and destination.
  policy::Result<std::vector<policy::Delivery>> deliveries(const std::string& day);

  // As deliveries(), only those still pending or sending (what a send run
  // reads: the index on state keeps it cheap however many have ended).
  policy::Result<std::vector<policy::Delivery>> open_deliveries(const std::string& day);

  // Deletes the reports of days before `first_kept_day` whose deliveries
  // have all ended (none pending or sending), with their deliveries. The
  // number of reports deleted.
  policy::Result<int> prune_before(const std::string& first_kept_day);

  // Writes `after` over the stored delivery only while it still equals
  // `before` (state, attempts, claimed_at): true when written, false when
  // another process changed it first (nothing written).
  policy::Result<bool> replace_delivery(const policy::Delivery& before, const policy::Delivery& after);

 private:
  std::shared_ptr<Database> database_;
};

}  // namespace mtasts::store
