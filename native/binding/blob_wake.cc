#include "blob_wake.h"

#include "fuse/session.h"

namespace nydus::binding {

class SessionWaker final : public cache::ReadyListener {
 public:
  SessionWaker(std::weak_ptr<fuse::FuseSession> session, uint32_t slot,
               std::shared_ptr<std::shared_mutex> mu)
      : session_(std::move(session)), slot_(slot), mu_(std::move(mu)) {}

  void OnReady(std::span<const uint32_t> indices) override {
    auto s = session_.lock();
    if (s == nullptr) return;
    std::shared_lock lock(*mu_);
    s->ChunksReady(slot_, indices);
  }

  // The READs are answered under the lock (shared) as ChunksReady is: FailParked and Shutdown
  // never find one half served.
  void OnDecoded(const cache::DecodedRun& run) override {
    auto s = session_.lock();
    if (s == nullptr) return;
    std::shared_lock lock(*mu_);
    s->ChunksDecoded(slot_, run);
  }

 private:
  const std::weak_ptr<fuse::FuseSession> session_;
  const uint32_t slot_;
  const std::shared_ptr<std::shared_mutex> mu_;
};

void BlobWakers::Attach(uint32_t slot, const std::shared_ptr<cache::ChunkMap>& map) {
  Detach(slot);
  if (map == nullptr) return;
  auto waker = std::make_shared<SessionWaker>(session_, slot, mu_);
  map->AddListener(waker);
  slots_[slot] = Entry{map, std::move(waker)};
}

void BlobWakers::Detach(uint32_t slot) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  if (auto m = it->second.map.lock()) m->RemoveListener(it->second.waker.get());
  slots_.erase(it);
}

void BlobWakers::DetachAll() {
  while (!slots_.empty()) Detach(slots_.begin()->first);
}

}  // namespace nydus::binding
