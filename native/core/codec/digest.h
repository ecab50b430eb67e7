// Chunk and file digests: BLAKE3 from the reference C implementation (Debian's
// librust-blake3-dev, compiled by binding.gyp with its run-time SIMD dispatch) and SHA-256 from
// OpenSSL's libcrypto. RAFS records one of the two per image (superblock digester); the builder,
// digest validation on cache fills and `nydus-image check` all hash through these functions, so
// what is written and what is verified can never disagree.
//
// In the addon the OpenSSL symbols resolve to the copy Node itself exports (see binding.gyp);
// the core tests and tools link the system libcrypto.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nydus::codec {

// The RAFS on-disk digester enum (superblock `digester`, rafs-format.md), passed straight through.
enum class DigestAlgo : uint32_t { kBlake3 = 0, kSha256 = 1 };

inline constexpr size_t kDigestLen = 32;

// Both algorithms produce 32 bytes. Returns false only when OpenSSL cannot allocate its
// context (SHA-256); BLAKE3 cannot fail.
bool Digest(DigestAlgo algo, const uint8_t* data, size_t len, uint8_t out[kDigestLen]);

// BLAKE3 in hash mode with a 32-byte output.
class Blake3 {
 public:
  static constexpr size_t kOutLen = kDigestLen;

  Blake3();
  void Update(const uint8_t* data, size_t len);
  // Finalizing does not consume the state: more input may follow (the reference's behaviour).
  void Finalize(uint8_t out[kOutLen]) const;

  static void Hash(const uint8_t* data, size_t len, uint8_t out[kOutLen]);
  // How many inputs the dispatched compression function hashes in parallel on this CPU:
  // 16 AVX-512, 8 AVX2, 4 SSE4.1/SSE2/NEON, 1 portable.
  static size_t SimdDegree();

 private:
  // The reference's blake3_hasher, held by value without exposing its header to every includer
  // (digest.cc checks the size and alignment at compile time).
  alignas(8) unsigned char state_[1920];
};

// Either digester, fed in pieces (v5 inode digests, a whole blob file).
class DigestHasher {
 public:
  explicit DigestHasher(DigestAlgo algo);
  ~DigestHasher();
  DigestHasher(const DigestHasher&) = delete;
  DigestHasher& operator=(const DigestHasher&) = delete;

  DigestAlgo algo() const { return algo_; }
  // False when SHA-256's OpenSSL context could not be set up or updated (out of memory).
  bool Update(const uint8_t* data, size_t len);
  // Does not consume the state, for either algorithm. False as for Update.
  bool Finalize(uint8_t out[kDigestLen]) const;

 private:
  DigestAlgo algo_;
  Blake3 blake3_;
  void* sha_ = nullptr;  // EVP_MD_CTX*, kept out of this header
  bool failed_ = false;
};

}  // namespace nydus::codec
