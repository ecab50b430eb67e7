// Compressed (.blob.raw) and encrypted cache files (cache/cache_layout.h): the one cache fill
// (cache/fill.h RunFill) with a LayoutStore writes the backend's bytes at their compressed offsets
// / AES-XTS units at the uncompressed offsets and records each chunk's place, hits decode to the
// exact chunk, and the READ fast path serves them. Anything short, damaged, unrecorded or read
// with the wrong key is a miss or EIO, never bytes; a chunk the layout cannot hold is never
// written.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "cache/cache_layout.h"
#include "cache/chunk_map.h"
#include "cache/fill.h"
#include "cache/layout_store.h"
#include "codec/codec.h"
#include "codec/digest.h"
#include "readpath/reader.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using cache::ChunkLayout;
using cache::LayoutChunk;
using cache::LayoutKind;
using cache::LayoutOptions;
using readpath::Extent;
using readpath::ExtentTable;

std::vector<uint8_t> Plain(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(((i / 13) * 31 + seed) % 251);
  return v;
}

std::vector<uint8_t> ReadAll(int fd) {
  std::vector<uint8_t> v(static_cast<size_t>(::lseek(fd, 0, SEEK_END)));
  ssize_t n = ::pread(fd, v.data(), v.size(), 0);
  v.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return v;
}

bool Contains(const std::vector<uint8_t>& hay, const uint8_t* needle, size_t n) {
  return std::search(hay.begin(), hay.end(), needle, needle + n) != hay.end();
}

// Three chunks of one blob: 8192, 8192 (kept uncompressed by the builder) and a 5000-byte tail,
// at uncompressed offsets 0, 8192, 16384; compressed back to back in `src`.
struct Blob {
  std::vector<std::vector<uint8_t>> plain;
  std::vector<LayoutChunk> chunks;
  std::vector<uint8_t> src;
  uint64_t uncompressed_size = 16384 + 5000;

  explicit Blob(codec::Algo algo) {
    const size_t sizes[3] = {8192, 8192, 5000};
    for (uint32_t i = 0; i < 3; ++i) {
      plain.push_back(Plain(sizes[i], static_cast<uint8_t>(i * 40)));
      LayoutChunk c;
      c.uncompressed_offset = i * 8192;
      c.uncompressed_size = static_cast<uint32_t>(sizes[i]);
      c.compressed_offset = src.size();
      c.compressed = i != 1;
      if (c.compressed) {
        std::vector<uint8_t> out(codec::CompressBound(algo, sizes[i]));
        ssize_t n = codec::Compress(algo, plain[i].data(), sizes[i], out.data(), out.size(), 0);
        out.resize(n > 0 ? static_cast<size_t>(n) : 0);
        src.insert(src.end(), out.begin(), out.end());
        c.compressed_size = static_cast<uint32_t>(out.size());
      } else {
        src.insert(src.end(), plain[i].begin(), plain[i].end());
        c.compressed_size = c.uncompressed_size;
      }
      codec::Digest(codec::DigestAlgo::kBlake3, plain[i].data(), sizes[i], c.digest);
      c.has_digest = true;
      chunks.push_back(c);
    }
  }

  std::unique_ptr<ChunkLayout> Layout(LayoutOptions o, bool learn = true) const {
    o.data_size = o.kind == LayoutKind::kRaw ? src.size() : uncompressed_size;
    std::string err;
    auto l = ChunkLayout::Create(o, 3, &err);
    if (l == nullptr) RecordFailure(__FILE__, __LINE__, err);
    for (uint32_t i = 0; learn && l != nullptr && i < 3; ++i) {
      if (l->Learn(i, chunks[i], &err) != 0) RecordFailure(__FILE__, __LINE__, err);
    }
    return l;
  }

  // The fill plan of all three chunks over `src` (the blob's bytes from compressed offset 0).
  std::vector<cache::FillChunk> Plan() const {
    std::vector<cache::FillChunk> p;
    for (uint32_t i = 0; i < 3; ++i) {
      const LayoutChunk& lc = chunks[i];
      cache::FillChunk c;
      c.src_offset = lc.compressed_offset;
      c.src_size = lc.compressed_size;
      c.file_offset = lc.uncompressed_offset;
      c.size = lc.uncompressed_size;
      c.compressed = lc.compressed;
      c.index = i;
      c.has_digest = lc.has_digest;
      std::memcpy(c.digest, lc.digest, sizeof c.digest);
      c.blob_offset = lc.compressed_offset;
      p.push_back(c);
    }
    return p;
  }

  std::vector<uint8_t> File() const {
    std::vector<uint8_t> all;
    for (const auto& p : plain) all.insert(all.end(), p.begin(), p.end());
    return all;
  }
};

LayoutOptions Raw(codec::Algo algo, bool verify) {
  LayoutOptions o;
  o.kind = LayoutKind::kRaw;
  o.algo = algo;
  o.verify = verify;
  return o;
}

LayoutOptions Encrypted(codec::Algo algo, uint8_t key_seed, bool convergent = false) {
  LayoutOptions o;
  o.kind = LayoutKind::kEncrypted;
  o.algo = algo;
  o.verify = true;
  o.convergent = convergent;
  for (size_t i = 0; i < cache::kCryptKeyLen; ++i) o.key[i] = static_cast<uint8_t>(key_seed + i);
  return o;
}

// A cache file `name` in `dir`, `size` bytes long (sparse); -1 on failure.
int SizedFile(const TempDir& dir, const char* name, uint64_t size) {
  int fd = ::open(dir.File(name).c_str(), O_RDWR | O_CREAT, 0644);
  if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A temporary directory holding one cache file `name` of `size` bytes, open read-write.
struct CacheDir {
  TempDir dir;
  std::string path;
  int fd;
  CacheDir(const char* name, uint64_t size)
      : path(dir.File(name)), fd(SizedFile(dir, name, size)) {}
  ~CacheDir() {
    if (fd >= 0) ::close(fd);
  }
};

// Runs the cache fill of `plan` over `src` into `fd` in `layout` (validating as the layout
// verifies, no spill); the per-chunk statuses, and which chunks the fill marked ready.
struct Filled {
  std::vector<int> status;
  std::vector<bool> ready;
};
Filled FillVia(const TempDir& dir, ChunkLayout& layout, const uint8_t* src, size_t src_len,
               std::vector<cache::FillChunk> plan, int fd) {
  Filled f;
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  if (map->Open(dir.File("fill.chunk_map"), 3, &err) != 0) RecordFailure(__FILE__, __LINE__, err);
  cache::FillJob job;
  job.algo = layout.options().algo;
  job.digester = codec::DigestAlgo::kBlake3;
  job.validate = layout.options().verify;
  job.src = src;
  job.src_len = src_len;
  job.chunks = std::move(plan);
  job.map = map;
  job.store = std::make_unique<cache::LayoutStore>(layout, fd);
  job.allow_spill = false;
  f.status = cache::RunFill(job).status;
  for (uint32_t i = 0; i < 3; ++i) f.ready.push_back(map->IsReady(i));
  ::unlink(dir.File("fill.chunk_map").c_str());
  return f;
}
Filled FillVia(const TempDir& dir, ChunkLayout& layout, const Blob& b, int fd) {
  return FillVia(dir, layout, b.src.data(), b.src.size(), b.Plan(), fd);
}

// Serves the whole file (and a scattered middle range) through ServeRead over `layout`.
struct Served {
  readpath::ReadOutcome res;
  std::vector<readpath::ChunkRef> missing;
  std::vector<uint8_t> bytes;
};
Served ServeVia(const TempDir& dir, const std::string& data_path, std::unique_ptr<ChunkLayout> l,
                uint64_t file_size, uint64_t off, uint32_t size, size_t piece,
                const std::vector<uint32_t>& ready) {
  Served s;
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  if (map->Open(dir.File("blob.data.chunk_map"), 3, &err) != 0)
    RecordFailure(__FILE__, __LINE__, err);
  for (uint32_t i : ready) map->SetReady(i);
  map->AttachLayout(std::move(l));
  readpath::BlobRegistry blobs;
  if (blobs.Register(0, data_path, map, &err) != 0) RecordFailure(__FILE__, __LINE__, err);
  std::vector<Extent> ext;
  const uint32_t sizes[3] = {8192, 8192, 5000};
  for (uint32_t i = 0; i < 3; ++i)
    ext.push_back({i * 8192ull, i * 8192ull, sizes[i], sizes[i], 0, i, 0});
  auto t = ExtentTable::FromExtents(file_size, ext, &err);
  std::vector<uint8_t> buf(size, 0xAA);
  std::vector<transport::IoSlice> slices;
  for (size_t o = 0; o < buf.size(); o += piece) {
    slices.push_back({buf.data() + o, std::min(piece, buf.size() - o)});
  }
  transport::SliceWriter w(slices);
  s.res = readpath::ServeRead(*t, blobs, off, size, w, 0, &s.missing, nullptr);
  buf.resize(s.res.status == readpath::ReadStatus::kDone ? s.res.bytes : 0);
  s.bytes = std::move(buf);
  ::unlink(dir.File("blob.data.chunk_map").c_str());
  return s;
}

NTEST(CacheLayout, RawFillKeepsBackendBytesAndHitsDecode) {
  for (codec::Algo algo : {codec::Algo::kLz4Block, codec::Algo::kZstd}) {
    Blob b(algo);
    CacheDir cd("blob.raw", b.src.size());
    NASSERT_GE(cd.fd, 0);
    // The fill records each chunk's place itself (nothing learned before).
    auto layout = b.Layout(Raw(algo, false), false);
    auto st = FillVia(cd.dir, *layout, b, cd.fd);
    NASSERT_EQ(st.status.size(), 3u);
    for (uint32_t i = 0; i < 3; ++i) {
      NEXPECT_EQ(st.status[i], cache::kFillCached);
      NEXPECT_TRUE(st.ready[i]);
      NEXPECT_TRUE(layout->Known(i));
      NEXPECT_EQ(layout->Entry(i).compressed_offset, b.chunks[i].compressed_offset);
    }
    // The file is the backend's bytes, byte for byte, at their compressed offsets.
    NEXPECT_TRUE(ReadAll(cd.fd) == b.src);
    for (uint32_t i = 0; i < 3; ++i) {
      std::vector<uint8_t> out(b.plain[i].size());
      NEXPECT_EQ(layout->ReadChunk(cd.fd, i, out.data(), out.size()), 0);
      NEXPECT_TRUE(out == b.plain[i]);
      std::vector<uint8_t> wrong(out.size() + 1);
      NEXPECT_EQ(layout->ReadChunk(cd.fd, i, wrong.data(), wrong.size()), -EINVAL);
    }
    // Through the READ fast path: the whole file in 4 KiB pages, and an unaligned range
    // across all three chunks in 7-byte pieces.
    const auto file = b.File();
    auto all = ServeVia(cd.dir, cd.path, b.Layout(Raw(algo, false)), file.size(), 0, 1 << 16, 4096,
                        {0, 1, 2});
    NEXPECT_EQ(static_cast<int>(all.res.status), static_cast<int>(readpath::ReadStatus::kDone));
    NEXPECT_TRUE(all.bytes == file);
    auto mid = ServeVia(cd.dir, cd.path, b.Layout(Raw(algo, false)), file.size(), 3000, 15000, 7,
                        {0, 1, 2});
    NEXPECT_EQ(mid.res.bytes, 15000u);
    NEXPECT_TRUE(std::equal(mid.bytes.begin(), mid.bytes.end(), file.begin() + 3000));
  }
}

NTEST(CacheLayout, UnrecordedShortOrDamagedChunksAreNeverServed) {
  const codec::Algo algo = codec::Algo::kZstd;
  Blob b(algo);
  CacheDir cd("blob.raw", b.src.size());
  NASSERT_GE(cd.fd, 0);
  auto layout = b.Layout(Raw(algo, true));
  FillVia(cd.dir, *layout, b, cd.fd);
  const auto file = b.File();
  // Ready in the map but its place never recorded: a miss (TypeScript records it), no bytes.
  auto partial = b.Layout(Raw(algo, true), false);
  std::string err;
  NASSERT_EQ(partial->Learn(0, b.chunks[0], &err), 0);
  auto miss = ServeVia(cd.dir, cd.path, std::move(partial), file.size(), 0, 20000, 4096, {0, 1, 2});
  NEXPECT_EQ(static_cast<int>(miss.res.status), static_cast<int>(readpath::ReadStatus::kMissing));
  NEXPECT_EQ(miss.missing.size(), 2u);
  // A recorded entry cannot be changed afterwards.
  LayoutChunk moved = b.chunks[0];
  moved.compressed_offset += 1;
  NEXPECT_EQ(layout->Learn(0, moved, &err), -EINVAL);
  // The map claims chunk 2 ready over a file cut short: EIO, not garbage.
  NASSERT_EQ(::ftruncate(cd.fd, static_cast<off_t>(b.chunks[2].compressed_offset + 10)), 0);
  std::vector<uint8_t> out(5000);
  NEXPECT_EQ(layout->ReadChunk(cd.fd, 2, out.data(), out.size()), -EIO);
  auto cut = ServeVia(cd.dir, cd.path, b.Layout(Raw(algo, true)), file.size(), 16384, 5000, 4096,
                      {0, 1, 2});
  NEXPECT_EQ(static_cast<int>(cut.res.status), static_cast<int>(readpath::ReadStatus::kError));
  NEXPECT_EQ(cut.res.err, EIO);
  // A flipped byte in the stored (uncompressed) chunk 1: the digest catches it.
  uint8_t x = 0;
  NASSERT_EQ(::pread(cd.fd, &x, 1, static_cast<off_t>(b.chunks[1].compressed_offset + 100)), 1);
  x ^= 0x40;
  NASSERT_EQ(::pwrite(cd.fd, &x, 1, static_cast<off_t>(b.chunks[1].compressed_offset + 100)), 1);
  std::vector<uint8_t> one(8192);
  NEXPECT_EQ(layout->ReadChunk(cd.fd, 1, one.data(), one.size()), -EIO);
  // A fill never writes a chunk that does not decode or does not match its digest.
  int fd2 = SizedFile(cd.dir, "blob2.raw", b.src.size());
  NASSERT_GE(fd2, 0);
  std::vector<uint8_t> bad = b.src;
  bad[b.chunks[0].compressed_offset + b.chunks[0].compressed_size / 2] ^= 0xFF;
  bad[b.chunks[1].compressed_offset + 7] ^= 0x01;
  auto st = FillVia(cd.dir, *layout, bad.data(), bad.size(), b.Plan(), fd2);
  // (A damaged zstd frame may still decode, to other bytes: then the digest catches it.)
  NEXPECT_TRUE(st.status[0] == -EBADMSG || st.status[0] == cache::kFillDigestMismatch);
  NEXPECT_EQ(st.status[1], cache::kFillDigestMismatch);
  NEXPECT_EQ(st.status[2], cache::kFillCached);
  NEXPECT_FALSE(st.ready[0]);
  NEXPECT_FALSE(st.ready[1]);
  NEXPECT_TRUE(st.ready[2]);
  auto written = ReadAll(fd2);
  NEXPECT_TRUE(std::all_of(written.begin(),
                           written.begin() + static_cast<long>(b.chunks[2].compressed_offset),
                           [](uint8_t v) { return v == 0; }));
  // Plans pointing outside the fetched bytes are refused per chunk.
  auto oob = FillVia(cd.dir, *layout, b.src.data(), 100, b.Plan(), fd2);
  NEXPECT_EQ(oob.status[2], -EINVAL);
  // A plan whose place contradicts the recorded one is refused before anything is decoded.
  auto moved_plan = b.Plan();
  moved_plan[0].blob_offset += 4;
  auto moved_st = FillVia(cd.dir, *layout, b.src.data(), b.src.size(), moved_plan, fd2);
  NEXPECT_EQ(moved_st.status[0], cache::kFillBadPlace);
  NEXPECT_FALSE(moved_st.ready[0]);
  ::close(fd2);
}

NTEST(CacheLayout, EncryptedUnitsAreUpstreamsXtsAndHideThePlaintext) {
  const codec::Algo algo = codec::Algo::kLz4Block;
  Blob b(algo);
  CacheDir cd("blob.data", b.uncompressed_size);
  NASSERT_GE(cd.fd, 0);
  const LayoutOptions opts = Encrypted(algo, 1);
  auto layout = b.Layout(opts);
  for (int s : FillVia(cd.dir, *layout, b, cd.fd).status) NEXPECT_EQ(s, cache::kFillCached);
  const auto disk = ReadAll(cd.fd);
  // The padded last unit grows the file to a 4096 multiple.
  NEXPECT_EQ(disk.size(), 16384u + 8192u);
  for (const auto& p : b.plain) NEXPECT_FALSE(Contains(disk, p.data() + 64, 64));
  // Each 4096-byte unit is AES-128-XTS with a zero tweak under the configured key.
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const uint8_t iv[16] = {};
  std::vector<uint8_t> unit(4096);
  int n = 0;
  NASSERT_EQ(EVP_DecryptInit_ex(ctx, EVP_aes_128_xts(), nullptr, opts.key, iv), 1);
  NASSERT_EQ(EVP_DecryptUpdate(ctx, unit.data(), &n, disk.data() + 12288, 4096), 1);
  EVP_CIPHER_CTX_free(ctx);
  NEXPECT_TRUE(std::equal(unit.begin(), unit.end(), b.plain[1].begin() + 4096));
  for (uint32_t i = 0; i < 3; ++i) {
    std::vector<uint8_t> out(b.plain[i].size());
    NEXPECT_EQ(layout->ReadChunk(cd.fd, i, out.data(), out.size()), 0);
    NEXPECT_TRUE(out == b.plain[i]);
  }
  // Another key decrypts to garbage, which the digest check turns into EIO.
  auto wrong = b.Layout(Encrypted(algo, 9));
  std::vector<uint8_t> out(8192);
  NEXPECT_EQ(wrong->ReadChunk(cd.fd, 0, out.data(), out.size()), -EIO);
  // The READ fast path decrypts straight into the reply.
  const auto file = b.File();
  auto all = ServeVia(cd.dir, cd.path, b.Layout(opts), file.size(), 0, 1 << 16, 8192, {0, 1, 2});
  NEXPECT_TRUE(all.bytes == file);
  auto mid = ServeVia(cd.dir, cd.path, b.Layout(opts), file.size(), 100, 20000, 7, {0, 1, 2});
  NEXPECT_TRUE(std::equal(mid.bytes.begin(), mid.bytes.end(), file.begin() + 100));
  auto bad =
      ServeVia(cd.dir, cd.path, b.Layout(Encrypted(algo, 9)), file.size(), 0, 4096, 4096, {0});
  NEXPECT_EQ(static_cast<int>(bad.res.status), static_cast<int>(readpath::ReadStatus::kError));
}

NTEST(CacheLayout, ConvergentKeysComeFromTheDigestAndOffsetsMustBeAligned) {
  const codec::Algo algo = codec::Algo::kZstd;
  Blob b(algo);
  CacheDir cd("blob.data", 0);
  NASSERT_GE(cd.fd, 0);
  auto conv = b.Layout(Encrypted(algo, 1, true), false);
  for (int s : FillVia(cd.dir, *conv, b, cd.fd).status) NEXPECT_EQ(s, cache::kFillCached);
  // The configured key plays no part: another one reads the same file.
  auto other = b.Layout(Encrypted(algo, 77, true));
  std::vector<uint8_t> out(8192);
  NEXPECT_EQ(other->ReadChunk(cd.fd, 0, out.data(), out.size()), 0);
  NEXPECT_TRUE(out == b.plain[0]);
  uint8_t key[cache::kCryptKeyLen];
  cache::ChunkCryptKey(nullptr, true, b.chunks[0].digest, key);
  NEXPECT_EQ(std::memcmp(key, b.chunks[0].digest, sizeof key), 0);
  // A digest with equal halves (refused by XTS) is replaced by upstream's fixed key.
  uint8_t sym[32];
  std::memset(sym, 5, sizeof sym);
  cache::ChunkCryptKey(nullptr, true, sym, key);
  NEXPECT_TRUE(cache::CryptKeyUsable(key));
  // Chunks that are not 4096-aligned in the uncompressed blob cannot be laid out.
  LayoutChunk odd = b.chunks[1];
  odd.uncompressed_offset = 8190;
  std::string err;
  auto fresh = b.Layout(Encrypted(algo, 1), false);
  NEXPECT_EQ(fresh->Learn(1, odd, &err), -EINVAL);
  NEXPECT_FALSE(fresh->Known(1));
  // The fill refuses such a chunk, and under convergent encryption a chunk without a digest (no
  // key): neither is decoded, written or marked; the others are stored.
  int fd2 = SizedFile(cd.dir, "blob2.data", 0);
  NASSERT_GE(fd2, 0);
  auto plan = b.Plan();
  plan[1].file_offset = 8190;
  plan[0].has_digest = false;
  auto conv2 = b.Layout(Encrypted(algo, 1, true), false);
  auto st = FillVia(cd.dir, *conv2, b.src.data(), b.src.size(), plan, fd2);
  NEXPECT_EQ(st.status[0], cache::kFillBadPlace);
  NEXPECT_EQ(st.status[1], cache::kFillBadPlace);
  NEXPECT_EQ(st.status[2], cache::kFillCached);
  NEXPECT_FALSE(st.ready[0] || st.ready[1] || conv2->Known(0) || conv2->Known(1));
  NEXPECT_TRUE(st.ready[2]);
  auto written = ReadAll(fd2);
  NEXPECT_TRUE(
      std::all_of(written.begin(), written.begin() + 16384, [](uint8_t v) { return v == 0; }));
  ::close(fd2);
  // An unusable configured key is refused at creation.
  LayoutOptions symmetric = Encrypted(algo, 1);
  std::memset(symmetric.key, 3, sizeof symmetric.key);
  NEXPECT_TRUE(ChunkLayout::Create(symmetric, 3, &err) == nullptr);
}

}  // namespace
}  // namespace nydus::testing
