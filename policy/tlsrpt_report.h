// The RFC 8460 §4 aggregate report: one day's TlsrptAggregate rows (as
// store/tlsrpt_store.h reads them) turned into one JSON document per Policy
// Domain, plus its report-id and §5.1 file name. Pure: no clock, no I/O; the
// caller gzips, signs and delivers (§5.2-§5.4).
//
// The document (§4.4), keys in the order of the RFC's schema and example:
//   {"organization-name", "date-range": {"start-datetime", "end-datetime"},
//    "contact-info", "report-id",
//    "policies": [{"policy": {"policy-type", "policy-string", "policy-domain", "mx-host"},
//                  "summary": {"total-successful-session-count", "total-failure-session-count"},
//                  "failure-details": [{"result-type", "sending-mta-ip", "receiving-mx-hostname",
//                                       "receiving-ip", "failed-session-count",
//                                       "additional-information", "failure-reason-code"}]}]}
// compact (no whitespace), UTF-8, I-JSON (RFC 7493, §4.4); invalid UTF-8 in
// stored text is replaced by U+FFFD rather than failing the report.
//
// Readings where the RFC leaves room:
// - Time frame: §4.2 says a report SHOULD cover one full UTC day, §4.4 "0000-2400".
//   We write start-datetime "DAYT00:00:00Z" and end-datetime "DAYT23:59:59Z"
//   (the last second of the day, as in the RFC's example in Appendix B), so two
//   days' ranges never overlap. The file name's timestamps are the same two
//   instants in UNIX seconds (begin, begin + 86399).
// - "policies" (§4.4: always an array): one entry per distinct (policy_type,
//   policy_string, mx_patterns) of the domain, ordered by those three fields
//   (byte order, so "no-policy-found" < "sts" < "tlsa").
// - "policy-string" (§4.4: a JSON array of strings): the stored text split into
//   lines (LF or CRLF), trailing WSP/CR cut, empty lines dropped. For sts the
//   stored text is the raw policy, so each element is one "key: value" line as
//   in the RFC's example; for tlsa it is one TLSA record's data per line
//   ("3 1 1 0C72...", no owner name or class: policy/engine/next_hop_checker.cpp),
//   so each element is one record. The
//   key is left out when there are no lines (always for no-policy-found).
// - "mx-host" (§4.4: a JSON array of RFC 8461 §4.1 patterns; an array per
//   erratum 6241): mx_patterns split at spaces, for sts (the policy's mx lines)
//   and for tlsa, where the engine stores the one MX host the TLSA RRset
//   belongs to (a plain name is a pattern matching itself; §4.1 lists "the MX
//   host" as part of the policy). Left out when empty, always for no-policy-found.
// - "failure-details": one entry per distinct (result-type, sending-mta-ip,
//   receiving-mx-hostname, receiving-ip, additional-information,
//   failure-reason-code) of the policy, failed-session-count summed, ordered by
//   those fields (result-type by its RFC string). The key is left out when the
//   policy had no failure (the RFC's schema does not require it).
// - Optional failure fields are left out when empty: we never know
//   "receiving-mx-helo", and a policy fetch failure has no receiving host.
// - "summary": the sums of the successful and the failed sessions, integers.
// - Rows are taken as stored; rows with sessions <= 0, an empty policy domain
//   or a policy type other than the three of §4.4 are skipped (none comes from
//   policy/engine/tlsrpt_buffer.cpp). A failure without a result type counts as
//   "validation-failure", as the buffer does (§4.3.4).
// - "contact-info" (§4.4: an RFC 5322 addr-spec) and "organization-name" are
//   written as given; validating them is the configuration's job.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "policy/tlsrpt.h"

namespace mtasts::policy {

// Who sends the reports (§4.4 report metadata; §5.1 "sender"; §5.3
// TLS-Report-Submitter).
struct ReportSubmitter {
  std::string organization_name;  // "organization-name"
  std::string contact_info;       // "contact-info": an addr-spec, e.g. "tlsrpt@mx.example.net"
  // The submitter's domain (report-id, file name), e.g. "mx.example.net". §5.1
  // makes the file name's "sender" the domain of the contact-info address, so
  // this should be that domain, in A-labels.
  std::string submitter;
};

// One report: the §4 document for one Policy Domain and one UTC day.
struct DailyReport {
  std::string policy_domain;
  std::string day;        // "YYYY-MM-DD" (UTC)
  std::string report_id;  // make_report_id(day, policy_domain, submitter)
  std::string json;       // the RFC 8460 §4.4 document, compact UTF-8
  // §5.1: submitter "!" policy-domain "!" begin-timestamp "!" end-timestamp
  // ".json.gz", e.g. "mx.example.net!example.com!1796428800!1796515199.json.gz":
  // the name of `json` once gzipped (§5.2: reports SHOULD be compressed). The
  // optional "!" unique-id is left out: it tells apart reports of one submitter
  // from several sources, and this name is already unique per (submitter,
  // policy domain, day), the key of report_id.
  std::string file_name;

  bool operator==(const DailyReport&) const = default;
};

// §4.4 "report-id" (any scheme that makes it unique):
// DAY "." POLICY-DOMAIN "@" SUBMITTER, e.g.
// "2026-12-05.example.com@mx.example.net". Unique per (day, policy domain,
// submitter): the day part is fixed-width and a domain name holds no "@",
// so the three parts can be read back. It is also an RFC 5322 msg-id's
// inside (dot-atom "@" dot-atom), as §5.3 wants in the mail's Subject
// "Report-ID: <...>" (a ':' would not be). Several daemons that keep
// separate stores and report under one submitter would send equal ids for
// different counts: they should share one store (PostgreSQL) or use
// different contact domains. Pure, thread-safe.
std::string make_report_id(const std::string& day, const std::string& policy_domain,
                           const ReportSubmitter& submitter);

// The reports of `day` ("YYYY-MM-DD"): the aggregates of that day grouped by
// policy domain (aggregates of other days are ignored), one DailyReport per
// domain, sorted by domain; no reports for an empty input or a `day` that is
// not a valid date. Deterministic: the same rows, in any order, give the same
// bytes. Pure, thread-safe.
std::vector<DailyReport> build_daily_reports(std::span<const TlsrptAggregate> aggregates,
                                             const std::string& day, const ReportSubmitter& submitter);

}  // namespace mtasts::policy
