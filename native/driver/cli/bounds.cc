// `bounds`: what this machine can do at best on one core, measured in the same run as the
// benchmarks so ratios compare like with like (no backend involved):
//   bounds pread --file F [--size 1M] [--seconds 2]   page-cache read bandwidth, one copy:
//       pread of an already cached file into one buffer, sequential, wrapping at the end
//   bounds memcpy [--size 1M] [--span 256M] [--seconds 2]   memcpy of `size` blocks streaming
//       through a `span` source (larger than the caches, as page-cache pages are) into one buffer
//   bounds codec --file F --algo none|lz4_block|zstd [--chunk 1M] [--level 0] [--max 128M]
//       [--seconds 2]   single-core decompression of the file cut into `chunk` chunks compressed
//       with our codec (the builder's: zstd at the library default level, raw LZ4 blocks), into
//       one buffer, with one reused zstd context like the read path
//   bounds digest --algo blake3|sha256 [--size 1M] [--span 64M] [--seconds 2]   single-core
//       digests (codec/digest.h: what the builder and digest validation call) of `size` pieces
//       walking through a `span` buffer of random bytes; --size equal to --span hashes the whole
//       buffer each time
// Each prints one JSON object; MB is 10^6 bytes.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "codec/codec.h"
#include "codec/digest.h"
#include "driver/cli/bench_common.h"
#include "driver/cli/driver.h"

namespace nydus::driver {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, FreeDeleter>;

Buffer PageAligned(size_t n) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, std::max<size_t>(n, 4096)) != 0) return nullptr;
  memset(p, 0x5a, n);  // touch every page now, not inside the timed loop
  return Buffer(static_cast<uint8_t*>(p));
}

// Keeps the compiler from dropping copies into a buffer nobody reads.
inline void Clobber(void* p) { asm volatile("" : : "r"(p) : "memory"); }

struct Timed {
  uint64_t bytes = 0;
  double seconds = 0;
  double cpu_s = 0;
};

// Calls `step` (false: stop, it failed) until `seconds` have passed; fills t's time and CPU.
template <typename Step>
bool TimeLoop(double seconds, Timed* t, Step step) {
  const double cpu0 = SelfCpuSeconds();
  const uint64_t start = MonoNs();
  const uint64_t end = start + static_cast<uint64_t>(seconds * 1e9);
  do {
    if (!step()) return false;
  } while (MonoNs() < end);
  t->seconds = double(MonoNs() - start) / 1e9;
  t->cpu_s = SelfCpuSeconds() - cpu0;
  return true;
}

void Print(const char* what, const Timed& t, Json& extra) {
  Json j;
  j.BeginObject()
      .Field("bound", what)
      .Field("bytes", t.bytes)
      .Field("seconds", t.seconds)
      .Field("mb_per_s", t.seconds > 0 ? double(t.bytes) / t.seconds / 1e6 : 0.0)
      .Field("cpu_s", t.cpu_s);
  std::string s = j.str();
  std::string e = extra.str();
  // `extra` is an object body ("{...}"): splice its fields in.
  if (e.size() > 2) s += "," + e.substr(1, e.size() - 2);
  std::printf("%s}\n", s.c_str());
}

int Pread(const DriverOptions& o, double seconds) {
  const std::string file = o.Flag("file", "");
  if (file.empty()) return Fail("bounds pread needs --file");
  const uint64_t size = ParseSize(o.Flag("size", "1M"));
  if (size == 0 || size > (64u << 20)) return Fail("--size must be 1..64M");
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(file + ": " + strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(size)) {
    ::close(fd);
    return Fail(file + " is smaller than --size");
  }
  const uint64_t span = uint64_t(st.st_size) / size * size;
  Buffer buf = PageAligned(size);
  if (!buf) return Fail("out of memory");
  // One untimed pass: the file is in the page cache before timing starts.
  for (uint64_t off = 0; off < span; off += size) {
    if (::pread(fd, buf.get(), size, static_cast<off_t>(off)) < 0) return Fail(strerror(errno));
  }
  Timed t;
  uint64_t off = 0;
  const bool ok = TimeLoop(seconds, &t, [&] {
    if (::pread(fd, buf.get(), size, static_cast<off_t>(off)) != static_cast<ssize_t>(size))
      return false;
    Clobber(buf.get());
    t.bytes += size;
    off = off + size >= span ? 0 : off + size;
    return true;
  });
  ::close(fd);
  if (!ok) return Fail("short pread");
  Json extra;
  extra.BeginObject().Field("file", file).Field("size", size).Field("file_bytes", span).EndObject();
  Print("pread", t, extra);
  return 0;
}

int Memcpy(const DriverOptions& o, double seconds) {
  const uint64_t size = ParseSize(o.Flag("size", "1M"));
  const uint64_t span = ParseSize(o.Flag("span", "256M"));
  if (size == 0 || size > (64u << 20) || span < size || span > (4ull << 30)) {
    return Fail("need 0 < --size <= 64M and --size <= --span <= 4G");
  }
  Buffer src = PageAligned(span);
  Buffer dst = PageAligned(size);
  if (!src || !dst) return Fail("out of memory");
  const uint64_t usable = span / size * size;
  Timed t;
  uint64_t off = 0;
  TimeLoop(seconds, &t, [&] {
    memcpy(dst.get(), src.get() + off, size);
    Clobber(dst.get());
    t.bytes += size;
    off = off + size >= usable ? 0 : off + size;
    return true;
  });
  Json extra;
  extra.BeginObject().Field("size", size).Field("span", span).EndObject();
  Print("memcpy", t, extra);
  return 0;
}

int Codec(const DriverOptions& o, double seconds) {
  const std::string file = o.Flag("file", "");
  const std::string algo_name = o.Flag("algo", "");
  codec::Algo algo;
  if (algo_name == "none") {
    algo = codec::Algo::kNone;
  } else if (algo_name == "lz4_block") {
    algo = codec::Algo::kLz4Block;
  } else if (algo_name == "zstd") {
    algo = codec::Algo::kZstd;
  } else {
    return Fail("--algo must be none, lz4_block or zstd");
  }
  const uint64_t chunk = ParseSize(o.Flag("chunk", "1M"));
  const uint64_t max = ParseSize(o.Flag("max", "128M"));
  const int level = std::atoi(o.Flag("level", "0").c_str());
  if (file.empty() || chunk == 0 || chunk > (16u << 20)) {
    return Fail("bounds codec needs --file and 0 < --chunk <= 16M");
  }
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(file + ": " + strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t len = std::min<uint64_t>(uint64_t(st.st_size), max) / chunk * chunk;
  if (len == 0) return Fail(file + " is smaller than one chunk");
  Buffer data = PageAligned(len);
  if (!data) return Fail("out of memory");
  for (uint64_t got = 0; got < len;) {
    ssize_t n = ::pread(fd, data.get() + got, len - got, static_cast<off_t>(got));
    if (n <= 0) return Fail(file + ": short read");
    got += uint64_t(n);
  }
  ::close(fd);
  // Compress every chunk (untimed, except for the informational compress speed).
  struct Chunk {
    uint64_t off;
    uint64_t len;
  };
  std::vector<Chunk> chunks;
  const size_t bound = codec::CompressBound(algo, chunk);
  Buffer packed = PageAligned(bound * (len / chunk));
  if (!packed) return Fail("out of memory");
  uint64_t packed_len = 0;
  const uint64_t c0 = MonoNs();
  for (uint64_t off = 0; off < len; off += chunk) {
    ssize_t n =
        codec::Compress(algo, data.get() + off, chunk, packed.get() + packed_len, bound, level);
    if (n <= 0) return Fail("compress failed: " + std::to_string(n));
    chunks.push_back({packed_len, uint64_t(n)});
    packed_len += uint64_t(n);
  }
  const double compress_s = double(MonoNs() - c0) / 1e9;
  Buffer out = PageAligned(chunk);
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  auto decompress = [&](const Chunk& c) -> bool {
    const uint8_t* src = packed.get() + c.off;
    if (algo == codec::Algo::kZstd) {
      size_t n = ZSTD_decompressDCtx(dctx, out.get(), chunk, src, c.len);
      return !ZSTD_isError(n) && n == chunk;
    }
    return codec::Decompress(algo, src, c.len, out.get(), chunk) == static_cast<ssize_t>(chunk);
  };
  // One checked pass: the numbers are for data that really round-trips.
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!decompress(chunks[i]) || memcmp(out.get(), data.get() + i * chunk, chunk) != 0) {
      ZSTD_freeDCtx(dctx);
      return Fail("chunk " + std::to_string(i) + " does not round-trip");
    }
  }
  Timed t;
  size_t i = 0;
  const bool ok = TimeLoop(seconds, &t, [&] {
    if (!decompress(chunks[i])) return false;
    Clobber(out.get());
    t.bytes += chunk;
    i = i + 1 == chunks.size() ? 0 : i + 1;
    return true;
  });
  ZSTD_freeDCtx(dctx);
  if (!ok) return Fail("decompression failed");
  Json extra;
  extra.BeginObject()
      .Field("algo", algo_name)
      .Field("file", file)
      .Field("chunk", chunk)
      .Field("level", level)
      .Field("input_bytes", len)
      .Field("compressed_bytes", packed_len)
      .Field("ratio", packed_len > 0 ? double(len) / double(packed_len) : 0.0)
      .Field("compress_mb_per_s", compress_s > 0 ? double(len) / compress_s / 1e6 : 0.0)
      .EndObject();
  Print("decompress", t, extra);
  return 0;
}

int DigestBound(const DriverOptions& o, double seconds) {
  const std::string algo_name = o.Flag("algo", "");
  codec::DigestAlgo algo;
  if (algo_name == "blake3") {
    algo = codec::DigestAlgo::kBlake3;
  } else if (algo_name == "sha256") {
    algo = codec::DigestAlgo::kSha256;
  } else {
    return Fail("--algo must be blake3 or sha256");
  }
  const uint64_t size = ParseSize(o.Flag("size", "1M"));
  const uint64_t span = ParseSize(o.Flag("span", "64M"));
  if (size == 0 || span < size || span > (4ull << 30)) {
    return Fail("need 0 < --size <= --span <= 4G");
  }
  Buffer data = PageAligned(span);
  if (!data) return Fail("out of memory");
  // Incompressible bytes, as chunk data mostly is (a constant page would not change a digest's
  // speed, but keeps nothing honest either).
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (uint64_t i = 0; i < span; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data.get()[i] = static_cast<uint8_t>(x);
  }
  const uint64_t usable = span / size * size;
  uint8_t out[codec::kDigestLen];
  Timed t;
  uint64_t off = 0;
  const bool ok = TimeLoop(seconds, &t, [&] {
    if (!codec::Digest(algo, data.get() + off, size, out)) return false;
    Clobber(out);
    t.bytes += size;
    off = off + size >= usable ? 0 : off + size;
    return true;
  });
  if (!ok) return Fail("digest failed");
  Json extra;
  extra.BeginObject()
      .Field("algo", algo_name)
      .Field("size", size)
      .Field("span", span)
      .Field("simd_degree",
             uint64_t{algo == codec::DigestAlgo::kBlake3 ? codec::Blake3::SimdDegree() : 0})
      .EndObject();
  Print("digest", t, extra);
  return 0;
}

}  // namespace

int CmdBounds(const DriverOptions& o) {
  if (o.args.empty()) return Fail("bounds needs pread, memcpy, codec or digest");
  const double seconds = std::max(0.1, std::atof(o.Flag("seconds", "2").c_str()));
  if (o.args[0] == "pread") return Pread(o, seconds);
  if (o.args[0] == "memcpy") return Memcpy(o, seconds);
  if (o.args[0] == "codec") return Codec(o, seconds);
  if (o.args[0] == "digest") return DigestBound(o, seconds);
  return Fail("bounds needs pread, memcpy, codec or digest");
}

}  // namespace nydus::driver
