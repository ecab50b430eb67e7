// Blobs the READ fast path can serve from, by slot number (the blob's index in the image's blob
// table, chosen by TypeScript). A blob is its data file (opened read-only here) plus, when the
// data is filled lazily, the chunk map whose bits say which chunks are present.
//
// Threading: Register/Unregister run on the JS thread; Get runs on any reader thread. Readers
// hold a shared_ptr, so unregistering never closes a file under a READ in progress.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cache/chunk_map.h"

namespace nydus::readpath {

struct Blob {
  Blob(int data_fd, std::shared_ptr<cache::ChunkMap> map)
      : fd(data_fd), chunk_map(std::move(map)) {}
  ~Blob();
  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;

  const int fd;
  // Null: every chunk is present (a local blob file, or a fully populated cache).
  const std::shared_ptr<cache::ChunkMap> chunk_map;

  // In the cache file (and, in a compressed or encrypted one, its place recorded), or held in
  // memory because the cache file could not take it (a hint for wake-ups; ServeRead re-checks
  // spilled chunks under the spill's lock).
  bool ChunkReady(uint32_t index) const {
    if (chunk_map == nullptr) return true;
    if (chunk_map->IsReady(index)) {
      const cache::ChunkLayout* layout = chunk_map->layout();
      return layout == nullptr || layout->Known(index);
    }
    const cache::Spill* s = chunk_map->spill();
    return s != nullptr && s->IsReady(index);
  }
};

class BlobRegistry {
 public:
  BlobRegistry();
  // Opens `data_path` read-only and installs the blob in `slot` (replacing any previous one).
  // Returns 0 or -errno with a one-line *error.
  int Register(uint32_t slot, const std::string& data_path,
               std::shared_ptr<cache::ChunkMap> chunk_map, std::string* error);
  // Same with an already-open fd (ownership passes to the registry, also on failure).
  int RegisterFd(uint32_t slot, int fd, std::shared_ptr<cache::ChunkMap> chunk_map,
                 std::string* error);
  void Unregister(uint32_t slot);
  void Clear();
  std::shared_ptr<const Blob> Get(uint32_t slot) const;
  size_t size() const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::shared_ptr<const Blob>> slots_;  // guarded by mu_
};

}  // namespace nydus::readpath
