#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "codec/blake3.h"
#include "testing.h"

using nydus::codec::Blake3;

namespace {

std::string Hex(const uint8_t* d, size_t n) {
  std::string s;
  char buf[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", d[i]);
    s += buf;
  }
  return s;
}

std::string HashHex(const std::vector<uint8_t>& v) {
  uint8_t out[32];
  Blake3::Hash(v.data(), v.size(), out);
  return Hex(out, 32);
}

// The official test-vector input: byte i is i % 251.
std::vector<uint8_t> VectorInput(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i % 251);
  return v;
}

}  // namespace

NTEST(Blake3, KnownAnswers) {
  NEXPECT_EQ(HashHex({}), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  std::vector<uint8_t> abc{'a', 'b', 'c'};
  NEXPECT_EQ(HashHex(abc), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
}

NTEST(Blake3, OfficialVectorsAcrossChunkBoundaries) {
  // From the BLAKE3 test_vectors.json (hash mode, first 32 bytes).
  const std::pair<size_t, const char*> kVectors[] = {
      {1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
      {1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
      {2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
      {2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
      {3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
      {8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
      {102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
  };
  for (const auto& [len, hex] : kVectors) NEXPECT_EQ(HashHex(VectorInput(len)), std::string(hex));
}

NTEST(Blake3, IncrementalEqualsOneShot) {
  // Lengths around block (64), chunk (1024) and subtree boundaries.
  for (size_t n : {63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4097, 31744, 102400}) {
    auto v = VectorInput(n);
    std::string whole = HashHex(v);
    for (size_t step : {1, 7, 64, 1000, 4096}) {
      Blake3 h;
      for (size_t off = 0; off < n; off += step) {
        h.Update(v.data() + off, std::min(step, n - off));
      }
      uint8_t out[32];
      h.Finalize(out);
      NEXPECT_EQ(Hex(out, 32), whole);
    }
  }
}
