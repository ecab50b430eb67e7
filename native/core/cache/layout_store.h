// The compressed (`.blob.raw`) and encrypted cache files as the fill's ChunkStore (cache/fill.h):
// RunFill decodes and verifies as for the plain layout, then this store writes each run in the
// blob's ChunkLayout (cache/cache_layout.h) and sets the ready bits after the writes returned.
//   kRaw        the fetched bytes (job.src) as the backend served them, at their compressed
//               offsets in the blob: one pwrite per stretch adjacent both in the fetched range
//               and in the blob.
//   kEncrypted  the decoded bytes, AES-128-XTS in 4096-byte units (cache/cache_crypt.h), at their
//               uncompressed offsets: one pwrite per run.
// Admit learns each chunk's place from the fill plan before it is decoded, so the READ fast path
// can decode it as soon as its bit is set; a chunk the layout cannot hold (misaligned for
// encryption, outside the blob, no digest to key it under convergent encryption, metadata that
// contradicts what was recorded) is kFillBadPlace and never written.
#pragma once

#include "cache/cache_layout.h"
#include "cache/fill.h"

namespace nydus::cache {

class LayoutStore final : public ChunkStore {
 public:
  // `layout` belongs to job.map (alive while the job is); `fd` to the caller, open until the
  // fill completed.
  LayoutStore(ChunkLayout& layout, int fd) : layout_(layout), fd_(fd) {}
  int Admit(const FillJob& job, const FillChunk& c) override;
  int Store(const FillJob& job, std::span<const FillChunk* const> run,
            const uint8_t* decoded) override;

 private:
  int StoreRaw(const FillJob& job, std::span<const FillChunk* const> run);
  int StoreEncrypted(std::span<const FillChunk* const> run, const uint8_t* decoded);

  ChunkLayout& layout_;
  const int fd_;
};

}  // namespace nydus::cache
