// Parked READs are woken by the fill that made their chunks readable, on the fill's thread
// (cache/fill.h): each blob a session registers with a chunk map gets a listener on that map
// that calls the session's ChunksReady for the blob's slot. No JavaScript round trip.
//
// ChunksReady assumes it does not interleave with FailParked or Shutdown (those move parked READs
// in two steps): the session handle takes mu() exclusively around both, and the listeners (and
// the handler's chunksReady) take it shared around ChunksReady and ChunksDecoded. Shared, since
// those are safe together (the session claims each READ once): a fill answering a READ holds the
// lock while it copies the reply, and held exclusively that kept a second fill thread, and the
// JavaScript thread's chunksReady, waiting behind the copy (and behind the scheduler: fill
// threads yield to every thread that wakes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "cache/chunk_map.h"

namespace nydus::fuse {
class FuseSession;
}

namespace nydus::binding {

class SessionWaker;

// One per session handle; Attach/Detach run on the JS thread.
class BlobWakers {
 public:
  explicit BlobWakers(std::weak_ptr<fuse::FuseSession> session) : session_(std::move(session)) {}
  ~BlobWakers() { DetachAll(); }
  BlobWakers(const BlobWakers&) = delete;
  BlobWakers& operator=(const BlobWakers&) = delete;

  // Wakes the session's READs parked on `slot` when `map` reports chunks ready (replaces the
  // slot's previous listener). A null map detaches.
  void Attach(uint32_t slot, const std::shared_ptr<cache::ChunkMap>& map);
  void Detach(uint32_t slot);
  void DetachAll();
  std::shared_mutex& mu() { return *mu_; }

 private:
  struct Entry {
    std::weak_ptr<cache::ChunkMap> map;
    std::shared_ptr<SessionWaker> waker;
  };
  std::weak_ptr<fuse::FuseSession> session_;
  std::shared_ptr<std::shared_mutex> mu_ = std::make_shared<std::shared_mutex>();
  std::map<uint32_t, Entry> slots_;
};

}  // namespace nydus::binding
