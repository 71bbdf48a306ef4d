// The transport of `report send` (RFC 8460 §5): https: POSTs (§5.4) and
// mail (§5.3: composed, DKIM-signed, handed to the local MTA's sendmail),
// with who we are in reports.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "milter/config.h"
#include "milter/report_sender.h"
#include "policy/tlsrpt_report.h"

namespace mtasts::milter {

// Who we are in reports, with the defaults of README "TLSRPT reports".
struct ReportIdentity {
  policy::ReportSubmitter submitter;
  std::string mail_from;
  std::string dkim_domain;
};

// nullopt when report.contact_info is not set (no reports then).
std::optional<ReportIdentity> identity_of(const ReportConfig& report);

// report.dkim_key_file: a path, or a bare name looked up in systemd's
// $CREDENTIALS_DIRECTORY (LoadCredential=NAME:/etc/..., README "TLSRPT
// reports"), so the key can stay readable by root only.
std::string dkim_key_path(const std::string& configured);

// Throws std::runtime_error when the https trust anchors cannot be read.
std::unique_ptr<ReportTransport> make_report_transport(const Config& config, ReportIdentity id);

}  // namespace mtasts::milter
