// The `_mta-sts` TXT RRset, RFC 8461 §3.1.
//   sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
//   sts-version = %s"v=STSv1"; sts-id = %s"id=" 1*32(ALPHA / DIGIT)
//   sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//   sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
// "If multiple TXT records for _mta-sts are returned by the resolver, records
//  that do not begin with v=STSv1; are discarded. If the number of resulting
//  records is not one, or if the resulting record is syntactically invalid,
//  senders MUST assume the recipient domain does not have an available
//  MTA-STS Policy."
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace mtasts::policy {

struct TxtRecord {
  std::string id;  // 1-32 alphanumerics, case preserved
};

// `records`: one entry per TXT record, its character-strings already joined.
// Errors (code): "no-record" (no candidate), "multiple-records" (more than one
// candidate), "syntax" (the one candidate breaks the ABNF; detail says where).
// Records not starting with "v=STSv1" followed by optional WSP and ';' are
// ignored. Pure, thread-safe.
Result<TxtRecord> parse_txt_rrset(std::span<const std::string> records);

// Validates one record on its own (for lint-txt errors); same codes.
Result<TxtRecord> parse_txt_record(std::string_view record);

// RFC 8461 §3.1 sts-id: 1-32 alphanumerics.
bool is_valid_policy_id(std::string_view id);

}  // namespace mtasts::policy
