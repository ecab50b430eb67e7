#include "cache/cache_crypt.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace nydus::cache {
namespace {

// Upstream's substitute key for a convergent chunk whose digest has equal halves (a value from
// utils/src/crypt.rs, needed to read caches upstream wrote).
constexpr uint8_t kConvergentFallbackKey[kCryptKeyLen] = {
    0xac, 0xed, 0x14, 0x69, 0x94, 0x23, 0x1e, 0xca, 0x44, 0x8c, 0xed, 0x2f, 0x6b, 0x40, 0x0c, 0x00,
    0xfd, 0xbb, 0x3f, 0xac, 0xdd, 0xc7, 0xd9, 0xee, 0x83, 0xf6, 0x5c, 0xd9, 0x3c, 0xaa, 0x28, 0x7c,
};
constexpr uint8_t kZeroTweak[16] = {};

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// One data unit per EVP update, re-initialising the tweak before each (XTS treats one update as
// one data unit; the key schedule is kept).
int Units(const uint8_t key[kCryptKeyLen], const uint8_t* in, size_t len, uint8_t* out, int enc) {
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return -ENOMEM;
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_128_xts(), nullptr, key, kZeroTweak, enc) != 1) {
    return -EIO;
  }
  uint8_t page[kCryptUnit];
  for (size_t pos = 0; pos < len; pos += kCryptUnit) {
    const size_t take = len - pos < kCryptUnit ? len - pos : kCryptUnit;
    const uint8_t* src = in + pos;
    if (enc == 1 && take < kCryptUnit) {  // the last unit of the plaintext: zero padded
      std::memset(page, 0, sizeof page);
      std::memcpy(page, src, take);
      src = page;
    }
    uint8_t* dst = out + pos;
    uint8_t tmp[kCryptUnit];
    if (enc == 0 && take < kCryptUnit) dst = tmp;  // only `take` bytes of plaintext are wanted
    int n = 0;
    if (pos > 0 && EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, nullptr, kZeroTweak, enc) != 1) {
      return -EIO;
    }
    if (EVP_CipherUpdate(ctx.get(), dst, &n, src, static_cast<int>(kCryptUnit)) != 1 ||
        n != static_cast<int>(kCryptUnit)) {
      return -EIO;
    }
    if (dst == tmp) std::memcpy(out + pos, tmp, take);
  }
  return 0;
}

}  // namespace

bool CryptKeyUsable(const uint8_t key[kCryptKeyLen]) {
  return std::memcmp(key, key + kCryptKeyLen / 2, kCryptKeyLen / 2) != 0;
}

void ChunkCryptKey(const uint8_t key[kCryptKeyLen], bool convergent, const uint8_t digest[32],
                   uint8_t out[kCryptKeyLen]) {
  if (!convergent) {
    std::memcpy(out, key, kCryptKeyLen);
  } else if (CryptKeyUsable(digest)) {
    std::memcpy(out, digest, kCryptKeyLen);
  } else {
    std::memcpy(out, kConvergentFallbackKey, kCryptKeyLen);
  }
}

int EncryptUnits(const uint8_t key[kCryptKeyLen], const uint8_t* in, size_t len, uint8_t* out) {
  return Units(key, in, len, out, 1);
}

int DecryptUnits(const uint8_t key[kCryptKeyLen], const uint8_t* in, size_t len, uint8_t* out) {
  return Units(key, in, len, out, 0);
}

}  // namespace nydus::cache
