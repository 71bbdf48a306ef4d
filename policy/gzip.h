// gzip (RFC 1952) in memory, for RFC 8460 §5.2 report files: the reports we
// send are gzipped ("application/tlsrpt+gzip", file names ending ".json.gz"),
// and the reports we receive usually are. Pure: zlib on buffers, no files.
//
// Readings:
// - A gzip file is "a series of members" (RFC 1952 §2.2): gzip_decompress
//   reads every member and concatenates their data, as `gzip -d` does.
//   Anything after a member that is not another member (zero padding
//   included) is "trailing garbage": an error, not a warning.
// - Only gzip: a zlib (RFC 1950) or raw deflate stream is "gzip-invalid".
// - The cap counts decompressed bytes over all members. The output buffer
//   never grows past max_output_bytes, whatever the input claims, and the
//   work buffer is one 64 KiB chunk: a decompression bomb stops at the first
//   chunk that would pass the cap.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace mtasts::policy {

// True when `bytes` starts with the gzip magic 1f 8b (RFC 1952 §2.3.1). A
// hint for callers that accept both plain and gzipped text, not a check that
// the rest is valid. Pure, thread-safe.
bool looks_gzipped(std::string_view bytes);

// One gzip member holding `data`, deflate level 9. Deterministic: the header
// has MTIME 0, no FNAME/FCOMMENT/FEXTRA, XFL 2 and OS 3 (Unix, as `gzip -n`
// writes on Linux), so the same input always gives the same bytes.
// Errors: none (throws std::bad_alloc when zlib cannot get memory). Pure,
// thread-safe.
std::string gzip_compress(std::string_view data);

// The data of the gzip file `gz`, at most `max_output_bytes` long.
// Errors (code): "gzip-invalid" (no gzip magic, corrupt deflate data, CRC-32
// or ISIZE mismatch, truncated, trailing garbage; the detail says which),
// "gzip-too-large" (the data would pass max_output_bytes; decompression
// stops there). Pure, thread-safe.
Result<std::string> gzip_decompress(std::string_view gz, std::size_t max_output_bytes);

}  // namespace mtasts::policy
