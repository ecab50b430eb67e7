// cache::DecodeAndWrite: runs of adjacent chunks are written once, a chunk that does not decode
// is never written (its neighbours are), write errors are reported per chunk; ValidatePlan
// refuses plans that point outside the fetched bytes.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "cache/fill.h"
#include "codec/codec.h"
#include "testing.h"

using nydus::cache::DecodeAndWrite;
using nydus::cache::FillChunk;
using nydus::cache::ValidatePlan;
using nydus::codec::Algo;

namespace {

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i / 7) ^ seed);
  return v;
}

// Appends `data` compressed with `algo` (or stored) to `src`; returns the chunk.
FillChunk Add(std::vector<uint8_t>* src, const std::vector<uint8_t>& data, Algo algo,
              uint64_t file_offset) {
  FillChunk c;
  c.src_offset = src->size();
  c.file_offset = file_offset;
  c.size = static_cast<uint32_t>(data.size());
  if (algo == Algo::kNone) {
    src->insert(src->end(), data.begin(), data.end());
    c.src_size = c.size;
    return c;
  }
  std::vector<uint8_t> comp(nydus::codec::CompressBound(algo, data.size()));
  ssize_t n = nydus::codec::Compress(algo, data.data(), data.size(), comp.data(), comp.size(), 0);
  src->insert(src->end(), comp.begin(), comp.begin() + n);
  c.src_size = static_cast<uint32_t>(n);
  c.compressed = true;
  return c;
}

std::vector<uint8_t> ReadAt(int fd, uint64_t off, size_t n) {
  std::vector<uint8_t> v(n);
  ssize_t r = ::pread(fd, v.data(), n, static_cast<off_t>(off));
  v.resize(r < 0 ? 0 : static_cast<size_t>(r));
  return v;
}

NTEST(CacheFill, RunsBadChunksAndWriteErrors) {
  for (Algo algo : {Algo::kLz4Block, Algo::kZstd}) {
    nydus::testing::TempDir dir;
    const std::string path = dir.File("blob.data");
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    NASSERT_GE(fd, 0);
    NASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    std::vector<uint8_t> src;
    auto a = Pattern(4096, 1), b = Pattern(8192, 2), c = Pattern(4096, 3), d = Pattern(5000, 4);
    std::vector<FillChunk> plan = {Add(&src, a, algo, 0), Add(&src, b, algo, 4096),
                                   Add(&src, c, algo, 12288), Add(&src, d, Algo::kNone, 65536)};
    // Corrupt chunk c's stored bytes: it must fail alone, a and b still land.
    src[plan[2].src_offset] ^= 0xff;
    src[plan[2].src_offset + 1] ^= 0xff;
    NEXPECT_EQ(ValidatePlan(plan, src.size()), "");
    auto st = DecodeAndWrite(algo, src.data(), src.size(), plan, fd);
    NASSERT_EQ(st.size(), size_t{4});
    NEXPECT_EQ(st[0], 0);
    NEXPECT_EQ(st[1], 0);
    NEXPECT_EQ(st[2], -EBADMSG);
    NEXPECT_EQ(st[3], 0);
    NEXPECT_TRUE(ReadAt(fd, 0, 4096) == a);
    NEXPECT_TRUE(ReadAt(fd, 4096, 8192) == b);
    NEXPECT_TRUE(ReadAt(fd, 12288, 4096) == std::vector<uint8_t>(4096, 0));  // never written
    NEXPECT_TRUE(ReadAt(fd, 65536, 5000) == d);
    ::close(fd);
    // A file opened read-only: every good chunk reports the write's errno.
    fd = ::open(path.c_str(), O_RDONLY);
    NASSERT_GE(fd, 0);
    st = DecodeAndWrite(algo, src.data(), src.size(), plan, fd);
    NEXPECT_EQ(st[0], -EBADF);
    NEXPECT_EQ(st[2], -EBADMSG);
    NEXPECT_EQ(st[3], -EBADF);
    ::close(fd);
  }
}

NTEST(CacheFill, PlansOutsideTheFetchedBytesAreRefused) {
  std::vector<uint8_t> src(100);
  FillChunk c;
  c.src_offset = 90;
  c.src_size = 20;
  c.size = 20;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.src_offset = ~uint64_t{0} - 5;  // offset + size would wrap
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.src_offset = 0;
  c.size = 0;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.size = 30;  // stored != uncompressed for an uncompressed chunk
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.size = 20;
  c.file_offset = uint64_t{1} << 60;
  NEXPECT_NE(ValidatePlan({c}, src.size()), "");
  c.file_offset = 0;
  NEXPECT_EQ(ValidatePlan({c}, src.size()), "");
  // Even without validation the decoder never reads outside the buffer.
  c.src_offset = 95;
  auto st = DecodeAndWrite(Algo::kZstd, src.data(), src.size(), {c}, -1);
  NEXPECT_EQ(st[0], -EINVAL);
}

}  // namespace
