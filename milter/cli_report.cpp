// `report build|send|status|show|read`: the daily TLSRPT reports of RFC 8460.
// Why a day is built only once it is over (plus the daemon's flush interval
// and a minute): a stored report is what gets sent, never rebuilt, so a
// report built at 23:00 would miss the last hour for good.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <variant>

#include "milter/cli_commands.h"
#include "milter/report_mailer.h"
#include "milter/report_sender.h"
#include "milter/services.h"
#include "milter/tlsrpt_lookup.h"
#include "policy/gzip.h"
#include "policy/logfmt.h"
#include "policy/tlsrpt_record.h"
#include "policy/tlsrpt_report.h"
#include "policy/tlsrpt_report_reader.h"
#include "store/database.h"
#include "store/report_store.h"
#include "store/tlsrpt_store.h"

namespace mtasts::milter {
namespace {

constexpr std::int64_t kDay = 86'400;
constexpr std::size_t kMaxReadBytes = policy::kMaxReceivedReportBytes;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first second at which `day` may be built: the daemon has flushed its
// last counts of it.
std::int64_t buildable_from(const Config& config, std::int64_t day_start) {
  return day_start + kDay + config.tlsrpt.flush_interval + 60;
}

int fail(int code, const std::string& message) {
  std::cerr << "mta-sts-milter: report: " << shown_message(message) << "\n";
  return code;
}

// The day to work on: --day, or yesterday (UTC).
std::optional<std::string> chosen_day(const ReportArgs& args, std::int64_t now) {
  if (args.day.empty()) return policy::utc_day(now - kDay);
  if (!policy::utc_day_start(args.day)) return std::nullopt;
  return args.day;
}

std::vector<store::StoredReport> stored_form(const std::vector<policy::DailyReport>& built,
                                             std::int64_t now) {
  std::vector<store::StoredReport> stored;
  for (const policy::DailyReport& r : built)
    stored.push_back({r.report_id, r.day, r.policy_domain, r.file_name, policy::gzip_compress(r.json), now});
  return stored;
}

// Builds `day` from the stored counts and stores the reports not stored yet;
// returns the day's reports as stored (what will be sent).
policy::Result<std::vector<store::StoredReport>> build_and_store(const std::shared_ptr<store::Database>& db,
                                                                 const ReportIdentity& id,
                                                                 const std::string& day, std::int64_t now) {
  store::SqliteTlsrptStore counts(db);
  const std::vector<policy::TlsrptAggregate> rows = counts.read(day, day);
  store::ReportStore reports(db);
  const auto added =
      reports.save_reports(stored_form(policy::build_daily_reports(rows, day, id.submitter), now));
  if (!added) return added.error();
  if (*added > 0) spdlog::info("report event=built day={} new={}", day, *added);
  return reports.reports_of_day(day);
}

// A §5.1 name is a single file name: nothing that could leave --out.
bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool write_file(const std::filesystem::path& path, std::string_view bytes) {
  if (!plain_file_name(path.filename().string())) return false;
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  return !ec;
}

int build_command(const Config& config, const ReportArgs& args) {
  const auto id = identity_of(config.report);
  if (!id) return fail(kExitConfig, "set report.contact_info (RFC 8460 contact-info) to build reports");
  const std::int64_t now = unix_now();
  const auto day = chosen_day(args, now);
  if (!day) return fail(kExitInvalid, "--day must be a date YYYY-MM-DD, not '" + args.day + "'");
  if (now < buildable_from(config, *policy::utc_day_start(*day)))
    return fail(kExitInvalid, *day + " is not over (UTC) yet: a report is built once, after its day");
  std::error_code ec;
  if (!args.out_dir.empty()) std::filesystem::create_directories(args.out_dir, ec);
  if (ec) return fail(kExitTempFail, "cannot make " + args.out_dir + ": " + ec.message());
  const auto db = store::Database::open(config.store_path);
  const auto built = build_and_store(db, *id, *day, now);
  if (!built) return fail(kExitTempFail, "the store failed: " + built.error().detail);
  for (const store::StoredReport& r : *built) {
    if (!args.out_dir.empty() &&
        (!plain_file_name(r.file_name) ||
         !write_file(std::filesystem::path(args.out_dir) / r.file_name, r.report_gz)))
      return fail(kExitTempFail,
                  "cannot write " + (std::filesystem::path(args.out_dir) / r.file_name).string());
    std::cout << r.day << " " << r.policy_domain << " " << r.report_id << " " << r.file_name << " "
              << r.report_gz.size() << "\n";
  }
  return kExitOk;
}

// Days `report send` builds: --day alone, else yesterday and the six before.
constexpr int kCatchUpDays = 7;
// Days a report is kept once every delivery of it has ended.
constexpr int kKeepDays = 30;
std::vector<std::string> days_to_build(const ReportArgs& args, const std::string& day) {
  if (!args.day.empty()) return {day};
  std::vector<std::string> days;
  const std::int64_t start = *policy::utc_day_start(day);
  for (int i = kCatchUpDays - 1; i >= 0; --i) days.push_back(policy::utc_day(start - i * kDay));
  return days;
}

int send_command(const Config& config, const ReportArgs& args) {
  const auto id = identity_of(config.report);
  if (!id) return fail(kExitConfig, "set report.contact_info (RFC 8460 contact-info) to send reports");
  const std::int64_t now = unix_now();
  const auto day = chosen_day(args, now);
  if (!day) return fail(kExitInvalid, "--day must be a date YYYY-MM-DD, not '" + args.day + "'");
  auto services = make_services(config);
  // The days are built first when they are over (--day, or the last
  // kCatchUpDays: a timer that did not run for a while loses no day); then
  // every day's due deliveries are sent (retries cross midnight), or only
  // --day's.
  for (const std::string& d : days_to_build(args, *day)) {
    if (now < buildable_from(config, *policy::utc_day_start(d))) continue;
    if (const auto built = build_and_store(services->database, *id, d, now); !built)
      return fail(kExitTempFail, "the store failed: " + built.error().detail);
  }
  store::ReportStore reports(services->database);
  DnsDestinationLookup lookup(*services->dns);
  const auto transport = make_report_transport(config, *id);
  ReportSenderSettings settings;
  settings.send_window = config.report.send_window;
  settings.ignore_window = args.now;
  ReportSender sender(reports, lookup, *transport, services->clock, settings);
  const SendSummary summary = sender.send(args.day.empty() ? "" : *day);
  // Reports whose deliveries have all ended go after kKeepDays (a report is a
  // few hundred bytes, but every day adds one per domain with mail).
  if (const auto pruned = reports.prune_before(policy::utc_day(now - kKeepDays * kDay));
      pruned && *pruned > 0)
    spdlog::info("report event=pruned reports={} before={}", *pruned,
                 policy::utc_day(now - kKeepDays * kDay));
  std::cout << "attempted=" << summary.attempted << " delivered=" << summary.delivered
            << " failed=" << summary.failed << " expired=" << summary.expired
            << " no_destination=" << summary.no_destination << " waiting=" << summary.waiting << "\n";
  return summary.store_error ? kExitTempFail : kExitOk;
}

nlohmann::json delivery_json(const policy::Delivery& d) {
  return {{"report_id", d.report_id},  {"destination", d.destination}, {"state", policy::to_string(d.state)},
          {"attempts", d.attempts},    {"not_before", d.not_before},   {"finished_at", d.finished_at},
          {"last_error", d.last_error}};
}

int status_command(const Config& config, const ReportArgs& args) {
  if (!args.day.empty() && !policy::utc_day_start(args.day))
    return fail(kExitInvalid, "--day must be a date YYYY-MM-DD, not '" + args.day + "'");
  store::ReportStore reports(store::Database::open(config.store_path));
  const auto rows = reports.deliveries(args.day);
  if (!rows) return fail(kExitTempFail, "the store failed: " + rows.error().detail);
  for (const policy::Delivery& d : *rows) {
    if (args.json) {
      std::cout << json_text(delivery_json(d)) << "\n";
      continue;
    }
    std::cout << d.report_id << " " << d.destination << " " << policy::to_string(d.state)
              << " attempts=" << d.attempts << " not_before=" << d.not_before
              << " last_error=" << policy::logfmt_value(d.last_error) << "\n";
  }
  return kExitOk;
}

// Prints one report document (its JSON text) as `report read` does.
int print_report(const std::string& json, bool as_json, const std::string& source) {
  const auto read = policy::read_received_report(json);
  if (const auto* error = std::get_if<policy::ReportReadError>(&read)) {
    return fail(kExitInvalid,
                source + ": not an RFC 8460 report: at '" + error->path + "': " + error->message);
  }
  const auto& report = std::get<policy::ReceivedReport>(read);
  std::cout << (as_json ? policy::received_report_json(report) + "\n" : policy::received_report_text(report));
  return kExitOk;
}

int show_command(const Config& config, const ReportArgs& args) {
  const auto id = identity_of(config.report);
  if (!id) return fail(kExitConfig, "set report.contact_info (RFC 8460 contact-info) to show reports");
  const auto day = chosen_day(args, unix_now());
  if (!day) return fail(kExitInvalid, "--day must be a date YYYY-MM-DD, not '" + args.day + "'");
  const auto db = store::Database::open(config.store_path);
  // What was stored (and is sent); for a day not built yet, what would be.
  auto stored = store::ReportStore(db).reports_of_day(*day);
  if (!stored) return fail(kExitTempFail, "the store failed: " + stored.error().detail);
  if (stored->empty())
    stored.value() = stored_form(
        policy::build_daily_reports(store::SqliteTlsrptStore(db).read(*day, *day), *day, id->submitter), 0);
  if (stored->empty()) std::cout << "no TLSRPT sessions recorded on " << *day << "\n";
  int status = kExitOk;
  for (const store::StoredReport& r : *stored) {
    const auto json = policy::gzip_decompress(r.report_gz, kMaxReadBytes);
    status = json ? std::max(status, print_report(*json, args.json, r.file_name)) : kExitTempFail;
  }
  return status;
}

// At most `cap` + 1 bytes of `in`: one more than allowed shows it was too big.
std::string read_capped(std::istream& in, std::size_t cap) {
  std::string bytes;
  char chunk[65536];
  while (bytes.size() <= cap && in.read(chunk, sizeof chunk).gcount() > 0)
    bytes.append(chunk, static_cast<std::size_t>(in.gcount()));
  if (bytes.size() > cap + 1) bytes.resize(cap + 1);
  return bytes;
}

}  // namespace

int report_command(const Config& config, const ReportArgs& args) {
  try {
    if (args.action == "build") return build_command(config, args);
    if (args.action == "send") return send_command(config, args);
    if (args.action == "status") return status_command(config, args);
    return show_command(config, args);
  } catch (const std::exception& e) {
    return fail(kExitTempFail, e.what());
  }
}

int report_read_command(const std::string& file, bool json) {
  std::string bytes;
  if (file == "-") {
    bytes = read_capped(std::cin, kMaxReadBytes);
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail(kExitInvalid, "cannot open " + file);
    bytes = read_capped(in, kMaxReadBytes);
  }
  if (bytes.size() > kMaxReadBytes) return fail(kExitInvalid, file + ": larger than 64 MiB");
  if (policy::looks_gzipped(bytes)) {
    auto text = policy::gzip_decompress(bytes, kMaxReadBytes);
    if (!text) return fail(kExitInvalid, file + ": " + text.error().code + ": " + text.error().detail);
    bytes = std::move(text).value();
  }
  return print_report(bytes, json, file);
}

}  // namespace mtasts::milter
