#include "codec/digest.h"

#include <blake3.h>
#include <openssl/evp.h>

#include <cstring>
#include <new>

// Not in blake3.h, but exported by blake3_dispatch.c (declared in its blake3_impl.h).
extern "C" size_t blake3_simd_degree(void);

namespace nydus::codec {
namespace {

static_assert(sizeof(blake3_hasher) <= sizeof(Blake3{}) && alignof(blake3_hasher) <= 8,
              "Blake3::state_ must hold a blake3_hasher");

blake3_hasher* State(unsigned char* s) { return std::launder(reinterpret_cast<blake3_hasher*>(s)); }
const blake3_hasher* State(const unsigned char* s) {
  return std::launder(reinterpret_cast<const blake3_hasher*>(s));
}

// blake3_dispatch.c caches the CPU features in a plain global the first time any hash runs, so
// two threads hashing first at once would race on it. Detecting them once here, inside C++'s
// thread-safe static initialization, orders that write before every hash that follows.
size_t Dispatch() {
  static const size_t degree = blake3_simd_degree();
  return degree;
}

// Fetched once: in OpenSSL 3.0 an implicit fetch (EVP_sha256()) looks the algorithm up in the
// provider store again on every digest init.
const EVP_MD* Sha256Md() {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  static const EVP_MD* md = [] {
    const EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return m != nullptr ? m : EVP_sha256();
  }();
  return md;
#else
  return EVP_sha256();
#endif
}

}  // namespace

Blake3::Blake3() {
  Dispatch();
  blake3_hasher_init(State(state_));
}

void Blake3::Update(const uint8_t* data, size_t len) {
  if (len > 0) blake3_hasher_update(State(state_), data, len);
}

void Blake3::Finalize(uint8_t out[kOutLen]) const {
  blake3_hasher_finalize(State(state_), out, kOutLen);
}

void Blake3::Hash(const uint8_t* data, size_t len, uint8_t out[kOutLen]) {
  Blake3 h;
  h.Update(data, len);
  h.Finalize(out);
}

size_t Blake3::SimdDegree() { return Dispatch(); }

bool Digest(DigestAlgo algo, const uint8_t* data, size_t len, uint8_t out[kDigestLen]) {
  if (algo == DigestAlgo::kBlake3) {
    Blake3::Hash(data, len, out);
    return true;
  }
  unsigned int n = 0;
  // EVP_Digest reads nothing for len 0, but wants a valid pointer all the same.
  static const uint8_t kEmpty = 0;
  return EVP_Digest(len > 0 ? data : &kEmpty, len, out, &n, Sha256Md(), nullptr) == 1 &&
         n == kDigestLen;
}

DigestHasher::DigestHasher(DigestAlgo algo) : algo_(algo) {
  if (algo_ != DigestAlgo::kSha256) return;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    failed_ = true;
    return;
  }
  sha_ = ctx;
}

DigestHasher::~DigestHasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(sha_)); }

bool DigestHasher::Update(const uint8_t* data, size_t len) {
  if (algo_ == DigestAlgo::kBlake3) {
    blake3_.Update(data, len);
    return true;
  }
  if (failed_) return false;
  if (len > 0 && EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(sha_), data, len) != 1) failed_ = true;
  return !failed_;
}

bool DigestHasher::Finalize(uint8_t out[kDigestLen]) const {
  if (algo_ == DigestAlgo::kBlake3) {
    blake3_.Finalize(out);
    return true;
  }
  if (failed_) return false;
  // EVP_DigestFinal_ex ends a context: finalize a copy so the hasher can keep going.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  unsigned int n = 0;
  const bool ok = copy != nullptr &&
                  EVP_MD_CTX_copy_ex(copy, static_cast<const EVP_MD_CTX*>(sha_)) == 1 &&
                  EVP_DigestFinal_ex(copy, out, &n) == 1 && n == kDigestLen;
  EVP_MD_CTX_free(copy);
  return ok;
}

}  // namespace nydus::codec
