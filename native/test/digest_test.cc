// Digests against published known answers: every hash-mode case of BLAKE3's official
// test_vectors.json (input byte i = i % 251; the first 32 bytes of each extended output) and
// the SHA-256 examples of FIPS 180-2 and NIST's SHAVS byte-oriented short messages. Each is
// checked one-shot, at every start alignment within a cache line and fed in pieces of many sizes,
// so the SIMD paths (whole-chunk batches, unaligned loads) and the buffering paths all run.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "codec/digest.h"
#include "testing.h"

using nydus::codec::Blake3;
using nydus::codec::Digest;
using nydus::codec::DigestAlgo;
using nydus::codec::DigestHasher;
using nydus::codec::kDigestLen;

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

std::string OneShot(DigestAlgo algo, const uint8_t* p, size_t n) {
  uint8_t out[kDigestLen];
  if (!Digest(algo, p, n, out)) return "digest failed";
  return Hex(out, kDigestLen);
}

std::string Pieces(DigestAlgo algo, const uint8_t* p, size_t n, size_t step) {
  DigestHasher h(algo);
  for (size_t off = 0; off < n; off += step) {
    if (!h.Update(p + off, std::min(step, n - off))) return "update failed";
  }
  uint8_t out[kDigestLen];
  if (!h.Finalize(out)) return "finalize failed";
  return Hex(out, kDigestLen);
}

// One-shot at offsets 0..63 of a buffer, and fed in pieces: all must give `want`.
void CheckEveryWay(DigestAlgo algo, const std::vector<uint8_t>& input, const std::string& want) {
  std::vector<uint8_t> shifted(input.size() + 64);
  for (size_t align = 0; align < 64; ++align) {
    if (!input.empty()) std::memcpy(shifted.data() + align, input.data(), input.size());
    const std::string got = OneShot(algo, shifted.data() + align, input.size());
    if (got != want) {
      NEXPECT_EQ(
          got + " (len " + std::to_string(input.size()) + ", offset " + std::to_string(align) + ")",
          want + " (len " + std::to_string(input.size()) + ", offset " + std::to_string(align) +
              ")");
      return;
    }
  }
  for (size_t step : {1, 3, 63, 64, 65, 1000, 1024, 4096, 65536}) {
    if (step > input.size() * 2 + 1) break;
    const std::string got = Pieces(algo, input.data(), input.size(), step);
    if (got != want) {
      NEXPECT_EQ(got + " (len " + std::to_string(input.size()) + ", pieces of " +
                     std::to_string(step) + ")",
                 want + " (len " + std::to_string(input.size()) + ", pieces of " +
                     std::to_string(step) + ")");
      return;
    }
  }
}

// The official test-vector input: byte i is i % 251.
std::vector<uint8_t> VectorInput(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i % 251);
  return v;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

NTEST(Blake3, OfficialTestVectors) {
  // BLAKE3-team/BLAKE3 test_vectors/test_vectors.json, "hash" of every case (first 32 bytes).
  const std::pair<size_t, const char*> kVectors[] = {
      {0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
      {1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
      {2, "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63"},
      {3, "e1be4d7a8ab5560aa4199eea339849ba8e293d55ca0a81006726d184519e647f"},
      {4, "f30f5ab28fe047904037f77b6da4fea1e27241c5d132638d8bedce9d40494f32"},
      {5, "b40b44dfd97e7a84a996a91af8b85188c66c126940ba7aad2e7ae6b385402aa2"},
      {6, "06c4e8ffb6872fad96f9aaca5eee1553eb62aed0ad7198cef42e87f6a616c844"},
      {7, "3f8770f387faad08faa9d8414e9f449ac68e6ff0417f673f602a646a891419fe"},
      {8, "2351207d04fc16ade43ccab08600939c7c1fa70a5c0aaca76063d04c3228eaeb"},
      {63, "e9bc37a594daad83be9470df7f7b3798297c3d834ce80ba85d6e207627b7db7b"},
      {64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"},
      {65, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee"},
      {127, "d81293fda863f008c09e92fc382a81f5a0b4a1251cba1634016a0f86a6bd640d"},
      {128, "f17e570564b26578c33bb7f44643f539624b05df1a76c81f30acd548c44b45ef"},
      {129, "683aaae9f3c5ba37eaaf072aed0f9e30bac0865137bae68b1fde4ca2aebdcb12"},
      {1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
      {1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
      {1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
      {2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
      {2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
      {3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
      {3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"},
      {4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
      {4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
      {5120, "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833"},
      {5121, "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff"},
      {6144, "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205"},
      {6145, "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f"},
      {7168, "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a"},
      {7169, "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817"},
      {8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
      {8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
      {16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4"},
      {31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
      {102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
  };
  for (const auto& [len, hex] : kVectors) {
    CheckEveryWay(DigestAlgo::kBlake3, VectorInput(len), hex);
  }
}

NTEST(Blake3, KnownAnswerAbc) {
  uint8_t out[32];
  const auto abc = Bytes("abc");
  Blake3::Hash(abc.data(), abc.size(), out);
  NEXPECT_EQ(Hex(out, 32), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
}

NTEST(Blake3, FinalizeDoesNotConsume) {
  const auto v = VectorInput(2049);
  Blake3 h;
  h.Update(v.data(), 1024);
  uint8_t mid[32];
  h.Finalize(mid);
  NEXPECT_EQ(Hex(mid, 32), "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7");
  h.Update(v.data() + 1024, v.size() - 1024);
  uint8_t end[32];
  h.Finalize(end);
  NEXPECT_EQ(Hex(end, 32), "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030");
}

NTEST(Blake3, DispatchUsesTheWidestSimdTheCpuHas) {
  // The reference's dispatch hashes this many chunks at once; a build that lost the assembly
  // (or the dispatch) would fall back to 1 and run several times slower with correct output.
  size_t want = 1;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
    want = 16;
  } else if (__builtin_cpu_supports("avx2")) {
    want = 8;
  } else {
    want = 4;  // SSE2 is part of x86-64
  }
#elif defined(__aarch64__)
  want = 4;
#endif
  NEXPECT_EQ(Blake3::SimdDegree(), want);
}

NTEST(Sha256, NistKnownAnswers) {
  const std::pair<std::string, const char*> kVectors[] = {
      // FIPS 180-2 appendix B examples.
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmn"
       "o"
       "pqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      // SHAVS SHA256ShortMsg.rsp, Len = 0, 8, 16.
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"\xd3", "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1"},
      {"\x11\xaf", "5ca7133fa735326081558ac312c620eeca9970d1e70a4b95533d956f072d1f98"},
  };
  for (const auto& [msg, hex] : kVectors) CheckEveryWay(DigestAlgo::kSha256, Bytes(msg), hex);
  // FIPS 180-2: one million repetitions of "a".
  CheckEveryWay(DigestAlgo::kSha256, std::vector<uint8_t>(1000000, 'a'),
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

NTEST(Digest, HasherFinalizeDoesNotConsumeEitherAlgorithm) {
  const auto abc = Bytes("abc");
  for (DigestAlgo algo : {DigestAlgo::kBlake3, DigestAlgo::kSha256}) {
    DigestHasher h(algo);
    NASSERT_TRUE(h.Update(abc.data(), 1));
    uint8_t first[32];
    NASSERT_TRUE(h.Finalize(first));
    NEXPECT_EQ(Hex(first, 32), OneShot(algo, abc.data(), 1));
    NASSERT_TRUE(h.Update(abc.data() + 1, 2));
    uint8_t all[32];
    NASSERT_TRUE(h.Finalize(all));
    NEXPECT_EQ(Hex(all, 32), OneShot(algo, abc.data(), 3));
  }
}

NTEST(Digest, ChunkSizesOneShotEqualsPieces) {
  // RAFS chunk sizes (4 KiB .. 16 MiB) and odd sizes around them, with content that is not
  // periodic in any SIMD width: one-shot and piecewise must agree for both algorithms.
  std::vector<uint8_t> data((16u << 20) + 4097);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& b : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  for (size_t n :
       {size_t{4096}, size_t{4097}, size_t{65535}, size_t{1} << 20, (size_t{1} << 20) + 1,
        (size_t{1} << 20) * 3 - 1, size_t{16} << 20, (size_t{16} << 20) + 4097}) {
    for (DigestAlgo algo : {DigestAlgo::kBlake3, DigestAlgo::kSha256}) {
      const std::string whole = OneShot(algo, data.data(), n);
      for (size_t step : {size_t{4093}, size_t{1} << 16, size_t{1} << 20}) {
        NEXPECT_EQ(Pieces(algo, data.data(), n, step), whole);
      }
    }
  }
}

NTEST(Digest, ThreadsHashAtOnce) {
  // The fill path hashes on several threads; each must see the same dispatch (run under TSan
  // this also checks the reference's lazily cached CPU features are not raced on).
  const auto v = VectorInput(102400);
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        got[t] =
            OneShot(t % 2 == 0 ? DigestAlgo::kBlake3 : DigestAlgo::kSha256, v.data(), v.size());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < got.size(); t += 2) {
    NEXPECT_EQ(got[t], "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085");
  }
  for (size_t t = 1; t < got.size(); t += 2) {
    NEXPECT_EQ(got[t], "74588b7f0bcc354ac14d9cf199fa3a20c05f0c7293b9075b2f2e146e718de800");
  }
}
