#include <cerrno>
#include <cstring>
#include <vector>

#include "codec/codec.h"
#include "testing.h"

using nydus::codec::Algo;

namespace {

std::vector<uint8_t> Sample(size_t n) {
  std::vector<uint8_t> v(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    // Mildly compressible: runs of repeated bytes mixed with noise.
    x = x * 1103515245 + 12345;
    v[i] = (i % 64 < 40) ? static_cast<uint8_t>(i / 64) : static_cast<uint8_t>(x >> 16);
  }
  return v;
}

void RoundTrip(Algo algo) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20}) {
    auto src = Sample(n);
    std::vector<uint8_t> comp(nydus::codec::CompressBound(algo, n) + 1);
    ssize_t c = nydus::codec::Compress(algo, src.data(), n, comp.data(), comp.size(), 0);
    NASSERT_GE(c, 0);
    std::vector<uint8_t> out(n + 1);
    ssize_t d = nydus::codec::Decompress(algo, comp.data(), static_cast<size_t>(c), out.data(), n);
    NASSERT_EQ(d, static_cast<ssize_t>(n));
    if (n > 0) NEXPECT_EQ(std::memcmp(out.data(), src.data(), n), 0);
  }
}

}  // namespace

NTEST(Codec, Lz4BlockRoundTrip) { RoundTrip(Algo::kLz4Block); }
NTEST(Codec, ZstdRoundTrip) { RoundTrip(Algo::kZstd); }
NTEST(Codec, NoneRoundTrip) { RoundTrip(Algo::kNone); }

NTEST(Codec, WrongSizeIsAnError) {
  auto src = Sample(8192);
  for (Algo algo : {Algo::kLz4Block, Algo::kZstd}) {
    std::vector<uint8_t> comp(nydus::codec::CompressBound(algo, src.size()));
    ssize_t c = nydus::codec::Compress(algo, src.data(), src.size(), comp.data(), comp.size(), 0);
    NASSERT_GE(c, 1);
    std::vector<uint8_t> out(src.size() + 100);
    // Claiming a larger uncompressed size than the block holds must fail, not pad.
    NEXPECT_EQ(nydus::codec::Decompress(algo, comp.data(), static_cast<size_t>(c), out.data(),
                                        src.size() + 100),
               -EIO);
    NEXPECT_EQ(nydus::codec::Decompress(algo, comp.data(), static_cast<size_t>(c), out.data(),
                                        src.size() - 1),
               -EIO);
  }
}

NTEST(Codec, GarbageInputIsAnError) {
  std::vector<uint8_t> junk(300, 0xff);
  std::vector<uint8_t> out(4096);
  NEXPECT_EQ(
      nydus::codec::Decompress(Algo::kZstd, junk.data(), junk.size(), out.data(), out.size()),
      -EIO);
  NEXPECT_EQ(
      nydus::codec::Decompress(Algo::kLz4Block, junk.data(), junk.size(), out.data(), out.size()),
      -EIO);
  NEXPECT_EQ(
      nydus::codec::Decompress(Algo::kGzip, junk.data(), junk.size(), out.data(), out.size()),
      -EINVAL);
  NEXPECT_EQ(nydus::codec::Decompress(static_cast<Algo>(77), junk.data(), junk.size(), out.data(),
                                      out.size()),
             -EINVAL);
}
