// At-rest encryption of blob cache files (`enable_encryption`), with upstream nydusd's cipher and
// layout so a cache either daemon wrote is readable by the other (facts from upstream
// storage/src/cache/cachedfile.rs and utils/src/crypt.rs):
//   - AES-128-XTS (OpenSSL's EVP_aes_128_xts); a 32-byte key, whose two halves must differ;
//   - the key is `encryption_key` (64 hex digits), or with `enable_convergent_encryption` the
//     chunk's 32-byte digest (a digest whose halves are equal is replaced by a fixed key, since
//     XTS refuses equal halves);
//   - the tweak (IV) is 16 zero bytes for every data unit;
//   - a chunk's plaintext is cut into 4096-byte data units, the last one padded with zeros, and
//     each unit is encrypted on its own; the ciphertext (the size rounded up to 4096) is stored at
//     the chunk's uncompressed offset in `<blob_id>.blob.data`.
// XTS has no integrity check: a wrong key decrypts to garbage, so readers verify the chunk digest.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nydus::cache {

inline constexpr size_t kCryptKeyLen = 32;
inline constexpr size_t kCryptUnit = 4096;

inline constexpr uint64_t RoundUpUnit(uint64_t n) {
  return (n + kCryptUnit - 1) / kCryptUnit * kCryptUnit;
}

// True when the key's two 16-byte halves differ (XTS needs that).
bool CryptKeyUsable(const uint8_t key[kCryptKeyLen]);

// The key for one chunk: `key` itself, or the chunk digest when convergent (see above).
void ChunkCryptKey(const uint8_t key[kCryptKeyLen], bool convergent, const uint8_t digest[32],
                   uint8_t out[kCryptKeyLen]);

// Encrypts `len` plaintext bytes into `out` (RoundUpUnit(len) bytes), unit by unit.
// Decrypts RoundUpUnit(len) ciphertext bytes from `in` and writes the first `len` plaintext bytes
// to `out`. Both return 0, or -EIO when OpenSSL fails (no context, key refused).
int EncryptUnits(const uint8_t key[kCryptKeyLen], const uint8_t* in, size_t len, uint8_t* out);
int DecryptUnits(const uint8_t key[kCryptKeyLen], const uint8_t* in, size_t len, uint8_t* out);

}  // namespace nydus::cache
