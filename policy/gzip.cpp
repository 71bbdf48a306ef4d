// RFC 1952 through zlib. Why a class per direction rather than a
// unique_ptr: zlib's state points back at its z_stream (inflateStateCheck
// compares the two), so the stream is owned where it was initialised and
// never moves.
#include "policy/gzip.h"

#define ZLIB_CONST  // next_in is const: we inflate from a string_view
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

namespace mtasts::policy {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // 32 KiB window, gzip wrapper only (no zlib, no raw)
constexpr int kMemLevel = 8;
constexpr int kOsUnix = 3;
constexpr std::size_t kChunk = std::size_t{64} * 1024;
constexpr std::size_t kMaxFeed = std::size_t{1} << 30;  // avail_in is a 32-bit uInt

class Deflater {
 public:
  Deflater()
      : ok_(deflateInit2(&zs_, 9, Z_DEFLATED, kGzipWindowBits, kMemLevel, Z_DEFAULT_STRATEGY) == Z_OK) {
    if (!ok_) throw std::bad_alloc();
  }
  ~Deflater() { deflateEnd(&zs_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  z_stream& stream() { return zs_; }

 private:
  z_stream zs_{};
  bool ok_;
};

class Inflater {
 public:
  Inflater() : ok_(inflateInit2(&zs_, kGzipWindowBits) == Z_OK) {
    if (!ok_) throw std::bad_alloc();
  }
  ~Inflater() { inflateEnd(&zs_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& stream() { return zs_; }

 private:
  z_stream zs_{};
  bool ok_;
};

// Hands zlib the next piece of `rest` (at most kMaxFeed bytes).
void feed(z_stream& zs, std::string_view& rest) {
  const std::size_t n = std::min(rest.size(), kMaxFeed);
  zs.next_in = reinterpret_cast<const Bytef*>(rest.data());
  zs.avail_in = static_cast<uInt>(n);
  rest.remove_prefix(n);
}

// Room for `needed` bytes in `out`, its buffer never larger than `cap`:
// std::string's own growth (reserve included) may double past the cap, so
// the grown buffer is a new string's, whose first reserve is exact.
void grow_capped(std::string& out, std::size_t needed, std::size_t cap) {
  if (out.capacity() >= needed) return;
  std::string bigger;
  bigger.reserve(std::min(cap, std::max(needed, 2 * out.capacity())));
  bigger.append(out);
  out.swap(bigger);
}

Error invalid(std::string detail) { return Error{"gzip-invalid", std::move(detail)}; }

}  // namespace

bool looks_gzipped(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

std::string gzip_compress(std::string_view data) {
  Deflater deflater;
  z_stream& zs = deflater.stream();
  gz_header header{};  // MTIME 0, no name, comment or extra field
  header.os = kOsUnix;
  deflateSetHeader(&zs, &header);
  std::vector<unsigned char> chunk(kChunk);
  std::string out;
  std::string_view rest = data;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.avail_in == 0) feed(zs, rest);
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(kChunk);
    rc = deflate(&zs, rest.empty() ? Z_FINISH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) std::abort();  // only misuse gets here
    out.append(reinterpret_cast<const char*>(chunk.data()), kChunk - zs.avail_out);
  }
  return out;
}

Result<std::string> gzip_decompress(std::string_view gz, std::size_t max_output_bytes) {
  if (!looks_gzipped(gz)) return invalid("not gzip: no 1f 8b magic");
  Inflater inflater;
  z_stream& zs = inflater.stream();
  std::vector<unsigned char> chunk(kChunk);
  std::string out;
  std::string_view rest = gz;
  for (;;) {
    if (zs.avail_in == 0) feed(zs, rest);
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(kChunk);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t produced = kChunk - zs.avail_out;
    if (produced > max_output_bytes - out.size()) {
      return Error{"gzip-too-large", "more than " + std::to_string(max_output_bytes) + " bytes"};
    }
    grow_capped(out, out.size() + produced, max_output_bytes);
    out.append(reinterpret_cast<const char*>(chunk.data()), produced);
    if (rc == Z_STREAM_END) {
      // next_in and rest are adjacent in gz: what follows this member.
      const std::size_t end = gz.size() - zs.avail_in - rest.size();
      if (end == gz.size()) return out;
      if (!looks_gzipped(gz.substr(end))) return invalid("trailing garbage at byte " + std::to_string(end));
      inflateReset(&zs);  // the next member; next_in and avail_in are kept
      continue;
    }
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc == Z_BUF_ERROR) return invalid(rest.empty() && zs.avail_in == 0 ? "truncated" : "no progress");
    if (rc != Z_OK) return invalid(zs.msg != nullptr ? zs.msg : "corrupt data");
  }
}

}  // namespace mtasts::policy
