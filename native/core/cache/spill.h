// Chunks that could not be written to the blob cache file (ENOSPC, EDQUOT, EIO on the cache
// directory) are kept here instead, so the READ that wanted them is still served: an anonymous
// memory file (memfd) laid out like the cache file (uncompressed offsets), with its own
// in-memory ready bits. TypeScript bounds how much it holds and evicts the oldest chunks.
//
// Eviction and reading must not interleave: a reader that saw a bit must read the bytes before
// they are punched out. Readers hold `mu()` shared from the bit check to the end of the read;
// Evict takes it exclusively. Evict runs on one thread (the JS thread) only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>

namespace nydus::cache {

class Spill {
 public:
  ~Spill();
  Spill(const Spill&) = delete;
  Spill& operator=(const Spill&) = delete;

  // Null with *error set when no memory file can be made.
  static std::unique_ptr<Spill> Create(uint32_t chunk_count, std::string* error);

  int fd() const { return fd_; }
  bool IsReady(uint32_t index) const;
  // Publishes a chunk whose bytes the caller wrote to fd() at its uncompressed offset.
  bool SetReady(uint32_t index);
  // Clears the chunk's bit, then frees its bytes [offset, offset+size).
  void Evict(uint32_t index, uint64_t offset, uint64_t size);
  std::shared_mutex& mu() const { return mu_; }

 private:
  Spill(int fd, uint32_t chunk_count);
  const int fd_;
  const uint32_t chunk_count_;
  std::unique_ptr<std::atomic<uint8_t>[]> bits_;
  mutable std::shared_mutex mu_;
};

}  // namespace nydus::cache
