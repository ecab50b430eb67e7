// The READ fast path: extent tables over a real temporary cache file and chunk map, holes, EOF,
// scattered reply buffers, partial readiness (misses) and compressed sources; then the same
// through FuseSession (install at OPEN, park on a miss, complete after the fill).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cache/chunk_map.h"
#include "fuse/session.h"
#include "fuse_testing.h"
#include "readpath/reader.h"
#include "testing.h"

namespace nydus::testing {
namespace {

using readpath::Extent;
using readpath::ExtentTable;

constexpr uint32_t kChunk = 4096;

uint8_t Pattern(uint64_t file_pos) { return static_cast<uint8_t>((file_pos * 7 + 3) % 251); }

void WriteFile(const std::string& path, const std::vector<uint8_t>& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ssize_t n = ::write(fd, data.data(), data.size());
  (void)n;
  ::close(fd);
}

// A file of 4 full chunks plus a 1000-byte tail (17384 bytes) whose chunks live in a cache file
// in the order 0, 1, 3, 2, 4 (so 0-1 can be one preadv and 2/3 cannot). Chunk 2 of the file
// is a hole extent instead; bytes [16384, 16384+1000) are chunk 4.
struct Fixture {
  TempDir dir;
  std::string cache_path = dir.File("blob.data");
  std::string map_path = dir.File("blob.data.chunk_map");
  uint64_t file_size = 4 * kChunk + 1000;
  std::vector<Extent> extents;
  std::vector<uint8_t> expected;

  Fixture() {
    const uint32_t order[5] = {0, 1, 3, 2, 4};  // cache slot -> file chunk
    std::vector<uint8_t> cache(5 * kChunk, 0);
    for (uint32_t slot = 0; slot < 5; ++slot) {
      uint32_t c = order[slot];
      for (uint32_t i = 0; i < kChunk; ++i) cache[slot * kChunk + i] = Pattern(c * kChunk + i);
    }
    WriteFile(cache_path, cache);
    const uint64_t src[5] = {0, kChunk, 3 * kChunk, 2 * kChunk, 4 * kChunk};
    for (uint32_t c = 0; c < 5; ++c) {
      uint32_t len = c == 4 ? 1000 : kChunk;
      uint32_t flags = c == 2 ? readpath::kExtentHole : 0;
      extents.push_back({c * uint64_t{kChunk}, src[c], len, len, 0, c, flags});
    }
    expected.resize(file_size);
    for (uint64_t i = 0; i < file_size; ++i) {
      expected[i] = (i >= 2 * kChunk && i < 3 * kChunk) ? 0 : Pattern(i);
    }
  }

  std::shared_ptr<const ExtentTable> Table() {
    std::string err;
    auto t = ExtentTable::FromExtents(file_size, extents, &err);
    if (t == nullptr) RecordFailure(__FILE__, __LINE__, err);
    return t;
  }
};

std::vector<uint8_t> Serve(const ExtentTable& t, const readpath::BlobRegistry& blobs, uint64_t off,
                           uint32_t size, size_t cap, size_t piece, readpath::ReadOutcome* res,
                           std::vector<readpath::ChunkRef>* missing,
                           readpath::ReadStats* stats = nullptr) {
  std::vector<uint8_t> buf(cap, 0xAA);
  std::vector<transport::IoSlice> slices;
  for (size_t o = 0; o < cap; o += piece)
    slices.push_back({buf.data() + o, std::min(piece, cap - o)});
  transport::SliceWriter w(slices);
  *res = readpath::ServeRead(t, blobs, off, size, w, 0, missing, stats);
  buf.resize(res->bytes);
  return buf;
}

NTEST(ReadPath, ServesCachedChunksHolesAndEof) {
  Fixture f;
  readpath::BlobRegistry blobs;
  std::string err;
  NASSERT_EQ(blobs.Register(0, f.cache_path, nullptr, &err), 0);
  auto t = f.Table();
  NASSERT_TRUE(t != nullptr);
  readpath::ReadOutcome res;
  std::vector<readpath::ChunkRef> missing;
  readpath::ReadStats st;
  // Whole file into 4 KiB pages plus an odd piece: bytes equal, stops at EOF.
  auto all = Serve(*t, blobs, 0, 1 << 20, 1 << 20, 4096, &res, &missing, &st);
  NEXPECT_EQ(static_cast<int>(res.status), static_cast<int>(readpath::ReadStatus::kDone));
  NEXPECT_EQ(res.bytes, f.file_size);
  NEXPECT_TRUE(all == f.expected);
  // Chunks 0-1 are contiguous in the cache (one preadv), 3 and 4 are separate.
  NEXPECT_EQ(st.preadv_calls, 3u);
  NEXPECT_EQ(st.bytes_zero, kChunk);
  // Unaligned middle range across the hole, scattered into 7-byte pieces.
  auto mid = Serve(*t, blobs, 5000, 9000, 9000, 7, &res, &missing);
  NEXPECT_EQ(res.bytes, 9000u);
  NEXPECT_TRUE(std::equal(mid.begin(), mid.end(), f.expected.begin() + 5000));
  // Near EOF: clipped; at and past EOF: empty.
  auto tail = Serve(*t, blobs, f.file_size - 10, 4096, 4096, 4096, &res, &missing);
  NEXPECT_EQ(res.bytes, 10u);
  NEXPECT_TRUE(std::equal(tail.begin(), tail.end(), f.expected.end() - 10));
  Serve(*t, blobs, f.file_size, 4096, 4096, 4096, &res, &missing);
  NEXPECT_EQ(res.bytes, 0u);
  Serve(*t, blobs, UINT64_MAX - 5, 4096, 4096, 4096, &res, &missing);
  NEXPECT_EQ(res.bytes, 0u);
  // Writable space smaller than the request: the reply is clipped to it.
  auto clip = Serve(*t, blobs, 100, 8192, 1000, 1000, &res, &missing);
  NEXPECT_EQ(res.bytes, 1000u);
  NEXPECT_TRUE(std::equal(clip.begin(), clip.end(), f.expected.begin() + 100));
}

NTEST(ReadPath, SparseGapsReadAsZeros) {
  Fixture f;
  readpath::BlobRegistry blobs;
  std::string err;
  blobs.Register(0, f.cache_path, nullptr, &err);
  // Only chunk 1 is covered; everything else of a 20000-byte file is a gap.
  auto t = ExtentTable::FromExtents(20000, {{kChunk, kChunk, kChunk, kChunk, 0, 1, 0}}, &err);
  NASSERT_TRUE(t != nullptr);
  readpath::ReadOutcome res;
  std::vector<readpath::ChunkRef> missing;
  auto b = Serve(*t, blobs, 0, 20000, 20000, 20000, &res, &missing);
  NASSERT_EQ(res.bytes, 20000u);
  for (uint32_t i = 0; i < 20000; ++i) {
    uint8_t want = (i >= kChunk && i < 2 * kChunk) ? Pattern(i) : 0;
    if (b[i] != want) {
      NEXPECT_EQ(static_cast<int>(b[i]), static_cast<int>(want));
      break;
    }
  }
}

NTEST(ReadPath, MissingChunksAreReportedBeforeAnyWrite) {
  Fixture f;
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  NASSERT_EQ(map->Open(f.map_path, 5, &err), 0);
  map->SetReady(0);
  map->SetReady(4);
  readpath::BlobRegistry blobs;
  blobs.Register(0, f.cache_path, map, &err);
  auto t = f.Table();
  readpath::ReadOutcome res;
  std::vector<readpath::ChunkRef> missing;
  std::vector<uint8_t> buf(f.file_size, 0xAA);
  transport::IoSlice sl{buf.data(), buf.size()};
  transport::SliceWriter w(std::span<const transport::IoSlice>(&sl, 1));
  res = readpath::ServeRead(*t, blobs, 0, static_cast<uint32_t>(f.file_size), w, 0, &missing,
                            nullptr);
  NEXPECT_EQ(static_cast<int>(res.status), static_cast<int>(readpath::ReadStatus::kMissing));
  // Chunk 2 is a hole: never missing. Chunks 1 and 3 are.
  NASSERT_EQ(missing.size(), 2u);
  NEXPECT_EQ(missing[0].index, 1u);
  NEXPECT_EQ(missing[1].index, 3u);
  NEXPECT_EQ(buf[0], 0xAA);  // nothing written
  // A range inside ready chunks is served.
  missing.clear();
  Serve(*t, blobs, 16384, 1000, 1000, 1000, &res, &missing);
  NEXPECT_EQ(res.bytes, 1000u);
  // An index beyond the chunk map is an error, not a miss.
  auto bad = ExtentTable::FromExtents(kChunk, {{0, 0, kChunk, kChunk, 0, 9, 0}}, &err);
  missing.clear();
  Serve(*bad, blobs, 0, 100, 100, 100, &res, &missing);
  NEXPECT_EQ(static_cast<int>(res.status), static_cast<int>(readpath::ReadStatus::kError));
  // So is an unregistered blob.
  auto other = ExtentTable::FromExtents(kChunk, {{0, 0, kChunk, kChunk, 7, 0, 0}}, &err);
  Serve(*other, blobs, 0, 100, 100, 100, &res, &missing);
  NEXPECT_EQ(res.err, EIO);
}

NTEST(ReadPath, ExtentTablesAreValidated) {
  std::string err;
  auto bad = [&](uint64_t size, std::vector<Extent> e) {
    err.clear();
    return ExtentTable::FromExtents(size, std::move(e), &err) == nullptr && !err.empty();
  };
  NEXPECT_TRUE(bad(8192, {{4096, 0, 4096, 4096, 0, 1, 0}, {0, 0, 4096, 4096, 0, 0, 0}}));
  NEXPECT_TRUE(bad(8192, {{0, 0, 4096, 4096, 0, 0, 0}, {4000, 0, 4096, 4096, 0, 1, 0}}));
  NEXPECT_TRUE(bad(4000, {{0, 0, 4096, 4096, 0, 0, 0}}));  // past fileSize
  NEXPECT_TRUE(bad(8192, {{0, 0, 4096, 4000, 0, 0, 0}}));  // size != length
  NEXPECT_TRUE(bad(8192, {{0, 0, 4096, 4096, 0, 0, 8}}));  // unknown flag
  NEXPECT_TRUE(bad(8192, {{0, 0, 4096, 0, 0, 0, 2}}));     // no compressed extents (yet)
  NEXPECT_TRUE(bad(8192, {{0, 0, 0, 0, 0, 0, 1}}));        // empty
  NEXPECT_TRUE(bad(1ull << 60, {}));                       // size past 2^53
  const double vals[7] = {0, 4096.5, 0, 0, 0, 4096, 0};
  NEXPECT_TRUE(ExtentTable::FromValues(8192, vals, 1, &err) == nullptr);
  NEXPECT_TRUE(err.find("length") != std::string::npos);
  static_assert(abi::ExtentRecord::kStride == 7 && abi::ExtentRecord::kFlags == 6);
  const double flagged[7] = {0, 4096, 0, 0, 0, 4096, 2};
  NEXPECT_TRUE(ExtentTable::FromValues(8192, flagged, 1, &err) == nullptr);
  NEXPECT_TRUE(err.find("flags") != std::string::npos);
  const double ok[14] = {0, 4096, 0, 0, 0, 4096, 0, 4096, 4096, 3, 9, 10000, 4096, 0};
  auto t = ExtentTable::FromValues(8192, ok, 2, &err);
  NASSERT_TRUE(t != nullptr);
  NEXPECT_EQ(t->extents()[1].blob_slot, 3u);
  NEXPECT_EQ(t->extents()[1].chunk_index, 9u);
  NEXPECT_EQ(t->extents()[1].source_offset, 10000u);
  NEXPECT_EQ(t->FirstEndingAfter(4095), 0u);
  NEXPECT_EQ(t->FirstEndingAfter(4096), 1u);
  NEXPECT_EQ(t->FirstEndingAfter(9000), 2u);
}

// --- Through the session -------------------------------------------------------------------

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 2000 && !cond(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return cond();
}

uint64_t OpenWithTable(Harness& h, std::shared_ptr<const ExtentTable> t, uint64_t fh) {
  auto& s = *h.s;
  auto& open = h.Req(ReqBuilder(FUSE_OPEN, 50, 2).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  s.OnRequest(&open);
  auto ups = DrainAll(s);
  if (ups.size() != 1) return 0;
  s.ReplyOpen(ups[0].token(), fh, FOPEN_KEEP_CACHE, std::move(t));
  return U64At(open.reply(), 16);
}

std::vector<uint8_t> ReadBytes(const fuse_read_in& ri) {
  return ReqBuilder(FUSE_READ, 60 + ri.offset, 2).Arg(ri).Bytes();
}

// Registers the fixture's cache file as blob slot 0 with only chunk 0 marked ready; returns its
// chunk map (null on failure).
std::shared_ptr<cache::ChunkMap> RegisterWithChunk0Ready(fuse::FuseSession& s, const Fixture& f) {
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  if (map->Open(f.map_path, 5, &err) != 0) return nullptr;
  map->SetReady(0);
  if (s.blobs().Register(0, f.cache_path, map, &err) != 0) return nullptr;
  return map;
}

NTEST(ReadPathSession, FastReadMissAndFill) {
  Fixture f;
  Harness h(AllOps());
  auto& s = *h.s;
  InitSession(s);
  DrainAll(s);
  auto map = RegisterWithChunk0Ready(s, f);
  NASSERT_TRUE(map != nullptr);
  NEXPECT_EQ(OpenWithTable(h, f.Table(), 17), 17u);
  NEXPECT_EQ(s.Stats().extent_tables, 1u);

  // Ready range: answered inline, no upcall.
  fuse_read_in ri{};
  ri.fh = 17;
  ri.offset = 0;
  ri.size = 4096;
  auto& fast = h.Req(ReadBytes(ri), 16 + 4096, 0, 16);  // header slice + one page
  s.OnRequest(&fast);
  NASSERT_EQ(fast.completions(), 1);
  auto b = fast.reply();
  NASSERT_EQ(b.size(), 16u + 4096u);
  NEXPECT_TRUE(std::equal(b.begin() + 16, b.end(), f.expected.begin()));
  NEXPECT_TRUE(DrainAll(s).empty());

  // Two READs needing chunk 1 park; each becomes one miss upcall naming (slot 0, chunk 1).
  ri.offset = 4096;
  auto& m1 = h.Req(ReadBytes(ri), 16 + 4096);
  ri.offset = 6000;
  ri.size = 100;
  auto& m2 = h.Req(ReadBytes(ri), 16 + 4096);
  s.OnRequest(&m1);
  s.OnRequest(&m2);
  NEXPECT_EQ(m1.completions(), 0);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 2u);
  NEXPECT_EQ(ups[0].opcode(), fuse::kUpcallReadMiss);
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA0], 17);    // fh
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA1], 4096);  // offset
  NEXPECT_EQ(ups[0].rec[UpcallSlot::kA3], 1);     // one chunk
  NASSERT_EQ(ups[0].bytes.size(), 8u);
  NEXPECT_EQ(U32At(ups[0].bytes, 0), 0u);
  NEXPECT_EQ(U32At(ups[0].bytes, 4), 1u);
  NEXPECT_EQ(s.Stats().parked_now, 2u);

  // The "fill": the data is in the cache file already; set the bit and say so once.
  map->SetReady(1);
  const uint32_t idx[] = {1};
  NEXPECT_EQ(s.ChunksReady(0, idx), 2u);
  NEXPECT_TRUE(WaitFor([&] { return m1.completions() == 1 && m2.completions() == 1; }));
  auto r1 = m1.reply();
  NASSERT_EQ(r1.size(), 16u + 4096u);
  NEXPECT_TRUE(std::equal(r1.begin() + 16, r1.end(), f.expected.begin() + 4096));
  auto r2 = m2.reply();
  NASSERT_EQ(r2.size(), 116u);
  NEXPECT_TRUE(std::equal(r2.begin() + 16, r2.end(), f.expected.begin() + 6000));
  // The misses' own answers arrive later and are stale: no second completion.
  NEXPECT_EQ(s.ResolveMiss(ups[0].token(), 0), -ESTALE);
  NEXPECT_EQ(m1.completions(), 1);
  NEXPECT_EQ(s.Stats().parked_now, 0u);

  // RELEASE drops the table; the next READ on that fh goes to the handler.
  auto& rel = h.Req(ReqBuilder(FUSE_RELEASE, 90, 2).Arg(fuse_release_in{17, 0, 0, 0}).Bytes(), 16);
  s.OnRequest(&rel);
  NEXPECT_EQ(s.Stats().extent_tables, 0u);
  auto rel_up = DrainAll(s);
  NASSERT_EQ(rel_up.size(), 1u);
  NEXPECT_EQ(s.ReplyOk(rel_up[0].token()), 0);
  ri.offset = 0;
  auto& slow = h.Req(ReadBytes(ri), 16 + 4096);
  s.OnRequest(&slow);
  auto rd = DrainAll(s);
  NASSERT_EQ(rd.size(), 1u);
  NEXPECT_EQ(rd[0].opcode(), static_cast<uint32_t>(FUSE_READ));
  const uint8_t data[3] = {1, 2, 3};
  NEXPECT_EQ(s.ReplyData(rd[0].token(), data, 3), 0);
  NEXPECT_EQ(slow.written(), 19u);
}

NTEST(ReadPathSession, ResolvedMissStillMissingFailsAndErrorsPropagate) {
  Fixture f;
  Harness h(AllOps());
  auto& s = *h.s;
  InitSession(s);
  DrainAll(s);
  std::string err;
  auto map = std::make_shared<cache::ChunkMap>();
  NASSERT_EQ(map->Open(f.map_path, 5, &err), 0);
  NASSERT_EQ(s.blobs().Register(0, f.cache_path, map, &err), 0);
  OpenWithTable(h, f.Table(), 3);
  fuse_read_in ri{};
  ri.fh = 3;
  ri.size = 4096;
  auto& a = h.Req(ReadBytes(ri), 16 + 4096);
  ri.offset = 4096;
  auto& b = h.Req(ReadBytes(ri), 16 + 4096);
  ri.offset = 12288;
  auto& c = h.Req(ReadBytes(ri), 16 + 4096);
  s.OnRequest(&a);
  s.OnRequest(&b);
  s.OnRequest(&c);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 3u);
  NEXPECT_EQ(s.ResolveMiss(ups[0].token(), 0), 0);  // "filled" but the bit is still clear
  NEXPECT_EQ(s.ResolveMiss(ups[1].token(), ENOENT), 0);
  NEXPECT_TRUE(WaitFor([&] { return a.completions() == 1; }));
  NEXPECT_EQ(a.header().error, -EIO);
  NEXPECT_EQ(b.header().error, -ENOENT);
  // Shutdown fails the one still parked.
  s.Shutdown();
  NEXPECT_EQ(c.completions(), 1);
  NEXPECT_EQ(c.header().error, -EIO);
}

// An immutable session remembers a node's first OPEN answer (flags + extent table) and answers
// later OPENs of that node itself, with its own handles (>= 2^53) that READ natively and
// RELEASE without an upcall. Handler handles still go to the handler; a reset forgets it all.
NTEST(ReadPathSession, ImmutableSessionOpensAndReleasesNatively) {
  Fixture f;
  auto o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  Harness h(o);
  auto& s = *h.s;
  InitSession(s);
  DrainAll(s);
  NASSERT_TRUE(RegisterWithChunk0Ready(s, f) != nullptr);
  NEXPECT_EQ(OpenWithTable(h, f.Table(), 17), 17u);
  auto& again = h.Req(ReqBuilder(FUSE_OPEN, 51, 2).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  s.OnRequest(&again);
  NEXPECT_TRUE(DrainAll(s).empty());
  NASSERT_EQ(again.completions(), 1);
  NEXPECT_EQ(again.header().error, 0);
  const uint64_t fh = U64At(again.reply(), 16);
  NEXPECT_TRUE(fh >= (1ull << 53));
  NEXPECT_EQ(U32At(again.reply(), 24), static_cast<uint32_t>(FOPEN_KEEP_CACHE));
  NEXPECT_EQ(s.Stats().native_opens, 1u);
  NEXPECT_EQ(s.Stats().extent_tables, 2u);

  fuse_read_in ri{};
  ri.fh = fh;
  ri.size = 4096;
  auto& rd = h.Req(ReadBytes(ri), 16 + 4096);
  s.OnRequest(&rd);
  NASSERT_EQ(rd.completions(), 1);
  auto b = rd.reply();
  NASSERT_EQ(b.size(), 16u + 4096u);
  NEXPECT_TRUE(std::equal(b.begin() + 16, b.end(), f.expected.begin()));

  // Another node, and writes, are not served from the remembered answer.
  auto& other = h.Req(ReqBuilder(FUSE_OPEN, 52, 3).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  s.OnRequest(&other);
  auto ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(s.ReplyError(ups[0].token(), EACCES), 0);
  auto& w = h.Req(ReqBuilder(FUSE_OPEN, 53, 2).Arg(fuse_open_in{O_WRONLY, 0}).Bytes(), 32);
  s.OnRequest(&w);
  NEXPECT_EQ(w.header().error, -EROFS);

  auto& rel = h.Req(ReqBuilder(FUSE_RELEASE, 54, 2).Arg(fuse_release_in{fh, 0, 0, 0}).Bytes(), 16);
  s.OnRequest(&rel);
  NEXPECT_TRUE(DrainAll(s).empty());
  NEXPECT_EQ(rel.completions(), 1);
  NEXPECT_EQ(rel.header().error, 0);
  NEXPECT_EQ(s.Stats().extent_tables, 1u);
  auto& rel17 =
      h.Req(ReqBuilder(FUSE_RELEASE, 55, 2).Arg(fuse_release_in{17, 0, 0, 0}).Bytes(), 16);
  s.OnRequest(&rel17);
  ups = DrainAll(s);
  NASSERT_EQ(ups.size(), 1u);
  NEXPECT_EQ(s.ReplyOk(ups[0].token()), 0);

  s.OnSessionReset();
  DrainAll(s);
  InitSession(s);
  DrainAll(s);
  auto& fresh = h.Req(ReqBuilder(FUSE_OPEN, 56, 2).Arg(fuse_open_in{O_RDONLY, 0}).Bytes(), 32);
  s.OnRequest(&fresh);
  NEXPECT_EQ(DrainAll(s).size(), 1u);
  NEXPECT_EQ(fresh.completions(), 0);
  s.Shutdown();
}

}  // namespace
}  // namespace nydus::testing
