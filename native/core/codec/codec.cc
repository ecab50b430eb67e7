#include "codec/codec.h"

#include <lz4.h>
#include <zstd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace nydus::codec {

ssize_t Decompress(Algo algo, const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len) {
  if (dst_len > static_cast<size_t>(SSIZE_MAX)) return -EINVAL;
  switch (algo) {
    case Algo::kNone:
      if (src_len != dst_len) return -EIO;
      if (dst_len > 0) std::memcpy(dst, src, dst_len);
      return static_cast<ssize_t>(dst_len);
    case Algo::kLz4Block: {
      if (src_len > INT_MAX || dst_len > INT_MAX) return -EINVAL;
      // LZ4_decompress_safe never writes past dst_len and reports malformed input as < 0.
      int n = LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst),
                                  static_cast<int>(src_len), static_cast<int>(dst_len));
      if (n < 0 || static_cast<size_t>(n) != dst_len) return -EIO;
      return n;
    }
    case Algo::kZstd: {
      size_t n = ZSTD_decompress(dst, dst_len, src, src_len);
      if (ZSTD_isError(n) || n != dst_len) return -EIO;
      return static_cast<ssize_t>(n);
    }
    case Algo::kGzip:
      break;
  }
  return -EINVAL;
}

size_t CompressBound(Algo algo, size_t src_len) {
  switch (algo) {
    case Algo::kNone:
      return src_len;
    case Algo::kLz4Block:
      if (src_len > LZ4_MAX_INPUT_SIZE) return 0;
      return static_cast<size_t>(LZ4_compressBound(static_cast<int>(src_len)));
    case Algo::kZstd:
      return ZSTD_compressBound(src_len);
    case Algo::kGzip:
      break;
  }
  return 0;
}

ssize_t Compress(Algo algo, const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_cap,
                 int level) {
  switch (algo) {
    case Algo::kNone:
      if (dst_cap < src_len) return -ENOSPC;
      if (src_len > 0) std::memcpy(dst, src, src_len);
      return static_cast<ssize_t>(src_len);
    case Algo::kLz4Block: {
      if (src_len > LZ4_MAX_INPUT_SIZE) return -EINVAL;
      int cap = dst_cap > INT_MAX ? INT_MAX : static_cast<int>(dst_cap);
      int n = LZ4_compress_default(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst),
                                   static_cast<int>(src_len), cap);
      if (n <= 0) return -ENOSPC;
      return n;
    }
    case Algo::kZstd: {
      size_t n =
          ZSTD_compress(dst, dst_cap, src, src_len, level == 0 ? ZSTD_CLEVEL_DEFAULT : level);
      if (ZSTD_isError(n)) return -ENOSPC;
      return static_cast<ssize_t>(n);
    }
    case Algo::kGzip:
      break;
  }
  return -EINVAL;
}

}  // namespace nydus::codec
