// SHA-256 (FIPS 180-4) for the driver's `tree` output, so it can be compared with digests the
// tests compute on the host (node:crypto). A standalone executable cannot use Node's OpenSSL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nydus::driver {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  // Finishes and returns the lowercase hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

}  // namespace nydus::driver
