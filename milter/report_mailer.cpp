// The transport of `report send`; see the header.
#include "milter/report_mailer.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "policy/net/dkim_signer.h"
#include "policy/net/report_transport.h"
#include "policy/report_delivery.h"
#include "policy/tlsrpt_mail.h"
#include "policy/tlsrpt_record.h"

namespace mtasts::milter {

std::optional<ReportIdentity> identity_of(const ReportConfig& report) {
  if (report.contact_info.empty()) return std::nullopt;
  ReportIdentity id;
  id.submitter.contact_info = report.contact_info;
  id.submitter.submitter = report_submitter(report);
  id.submitter.organization_name =
      report.organization_name.empty() ? id.submitter.submitter : report.organization_name;
  id.mail_from = report_mail_from(report);
  id.dkim_domain = report.dkim_domain.empty() ? id.submitter.submitter : report.dkim_domain;
  return id;
}

namespace {

policy::AttemptOutcome outcome_of(policy::net::DeliveryOutcome outcome) {
  switch (outcome) {
    case policy::net::DeliveryOutcome::Delivered:
      return policy::AttemptOutcome::Delivered;
    case policy::net::DeliveryOutcome::Permanent:
      return policy::AttemptOutcome::Permanent;
    case policy::net::DeliveryOutcome::Temporary:
      break;
  }
  return policy::AttemptOutcome::Temporary;
}

// RFC 5322 §3.3 date-time of `now`, in UTC, English names whatever the locale.
std::string mail_date(std::int64_t now) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = now;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return text;
}

// Stable per (report, destination): a retry, or a copy after a crash, has the
// Message-ID of the first attempt, so a receiver can tell it is the same.
std::string stable_token(const std::string& report_id, const std::string& destination) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(policy::delivery_hash(report_id, destination)));
  return text;
}

}  // namespace

std::string dkim_key_path(const std::string& configured) {
  if (configured.find('/') != std::string::npos) return configured;
  const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
  if (credentials == nullptr || *credentials == '\0') return configured;
  return (std::filesystem::path(credentials) / configured).string();
}

namespace {

// Mail (§5.3: composed, DKIM-signed, handed to the local MTA) and https
// (§5.4: POST).
class RealReportTransport final : public ReportTransport {
 public:
  RealReportTransport(const Config& config, ReportIdentity id)
      : id_(std::move(id)),
        poster_(policy::net::HttpsPosterConfig{config.report.ca_file, std::chrono::milliseconds(10'000),
                                               std::chrono::seconds(config.report.https_timeout),
                                               "mta-sts-milter", config.report.allow_private_destinations}),
        submitter_(policy::net::MailSubmitConfig{config.report.sendmail_command, std::chrono::seconds(60)}) {
    load_signer(config.report);
  }

  TransportResult deliver(const store::StoredReport& report, const policy::ReportUri& destination) override {
    if (destination.scheme == policy::ReportScheme::Https) {
      const auto posted = poster_.post(destination.uri, report.report_gz);
      return {outcome_of(posted.outcome), posted.detail};
    }
    return mail(report, destination.uri);
  }

 private:
  void load_signer(const ReportConfig& config) {
    if (config.dkim_key_file.empty() || config.dkim_selector.empty()) {
      signer_error_ =
          "no DKIM key (report.dkim_key_file and report.dkim_selector; RFC 8460 section 3 requires DKIM)";
      return;
    }
    const std::string path = dkim_key_path(config.dkim_key_file);
    std::ifstream in(path, std::ios::binary);
    const std::string pem{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (!in.is_open() || (!in.good() && !in.eof())) {
      signer_error_ = "cannot read report.dkim_key_file " + path;
      return;
    }
    auto signer = policy::net::DkimSigner::create({id_.dkim_domain, config.dkim_selector, pem});
    if (!signer) {
      signer_error_ = signer.error().code + ": " + signer.error().detail;
      return;
    }
    signer_.emplace(std::move(signer).value());
  }

  TransportResult mail(const store::StoredReport& report, const std::string& uri) {
    // Temporary: a key fixed within the day still sends the report.
    if (!signer_) return {policy::AttemptOutcome::Temporary, signer_error_};
    const std::string token = stable_token(report.report_id, uri);
    policy::ReportMail mail{id_.mail_from,
                            policy::mailto_address(uri),
                            report.policy_domain,
                            id_.submitter.submitter,
                            report.report_id,
                            report.file_name,
                            report.report_gz,
                            mail_date(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()),
                            "tlsrpt." + token + "@" + id_.submitter.submitter,
                            "tlsrpt-boundary-" + token};
    const auto message = policy::compose_report_mail(mail);
    if (!message)
      return {policy::AttemptOutcome::Permanent, message.error().code + ": " + message.error().detail};
    const auto signature = signer_->sign(*message);
    if (!signature) return {policy::AttemptOutcome::Temporary, signature.error().code};
    const auto sent = submitter_.submit(id_.mail_from, mail.to, *signature + *message);
    return {outcome_of(sent.outcome), sent.detail};
  }

  ReportIdentity id_;
  policy::net::HttpsReportPoster poster_;
  policy::net::MailSubmitter submitter_;
  std::optional<policy::net::DkimSigner> signer_;
  std::string signer_error_;
};

}  // namespace

std::unique_ptr<ReportTransport> make_report_transport(const Config& config, ReportIdentity id) {
  return std::make_unique<RealReportTransport>(config, std::move(id));
}

}  // namespace mtasts::milter
