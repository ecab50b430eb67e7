// Chunk compression codecs used by RAFS blobs.
//
// The algorithm numbers are the RAFS on-disk enum (blob table `compression_algo`), so callers can
// pass the stored value straight through. lz4_block is a raw LZ4 block without frame or size
// prefix: the decoder needs the exact uncompressed size from chunk metadata. gzip is handled by
// Node's zlib on the TypeScript side and is refused here.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace nydus::codec {

enum class Algo : uint32_t { kNone = 0, kLz4Block = 1, kGzip = 2, kZstd = 3 };

// Decompresses `src` into `dst`, which must be exactly the chunk's uncompressed size.
// Returns dst_len on success; -EINVAL for an algorithm not handled here; -EIO when the input is
// corrupt or does not decode to exactly dst_len bytes.
ssize_t Decompress(Algo algo, const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len);

// Upper bound of Compress output for `src_len` input bytes (0 for unsupported algorithms).
size_t CompressBound(Algo algo, size_t src_len);

// Compresses `src` into `dst` (capacity `dst_cap`, at least CompressBound). `level` is the zstd
// level (ignored for lz4_block; 0 means the library default). Returns the compressed size or
// -errno.
ssize_t Compress(Algo algo, const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_cap,
                 int level);

}  // namespace nydus::codec
