#include "readpath/blob_registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "readpath/extent_table.h"

namespace nydus::readpath {

Blob::~Blob() {
  if (fd >= 0) ::close(fd);
}

BlobRegistry::BlobRegistry() : slots_(kMaxBlobSlots) {}

int BlobRegistry::Register(uint32_t slot, const std::string& data_path,
                           std::shared_ptr<cache::ChunkMap> chunk_map, std::string* error) {
  if (slot >= kMaxBlobSlots) {
    *error = "blob slot " + std::to_string(slot) + " out of range (max 4095)";
    return -EINVAL;
  }
  int fd = ::open(data_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    *error = "cannot open blob data file " + data_path + ": " + std::strerror(err);
    return -err;
  }
  return RegisterFd(slot, fd, std::move(chunk_map), error);
}

int BlobRegistry::RegisterFd(uint32_t slot, int fd, std::shared_ptr<cache::ChunkMap> chunk_map,
                             std::string* error) {
  if (slot >= kMaxBlobSlots) {
    ::close(fd);
    *error = "blob slot " + std::to_string(slot) + " out of range (max 4095)";
    return -EINVAL;
  }
  auto blob = std::make_shared<const Blob>(fd, std::move(chunk_map));
  std::unique_lock lock(mu_);
  slots_[slot] = std::move(blob);
  return 0;
}

void BlobRegistry::Unregister(uint32_t slot) {
  if (slot >= kMaxBlobSlots) return;
  std::shared_ptr<const Blob> old;
  std::unique_lock lock(mu_);
  old.swap(slots_[slot]);
  // `old` is released after the lock: closing a file is a syscall we keep out of the lock.
  lock.unlock();
}

void BlobRegistry::Clear() {
  std::vector<std::shared_ptr<const Blob>> old(kMaxBlobSlots);
  std::unique_lock lock(mu_);
  old.swap(slots_);
}

std::shared_ptr<const Blob> BlobRegistry::Get(uint32_t slot) const {
  if (slot >= kMaxBlobSlots) return nullptr;
  std::shared_lock lock(mu_);
  return slots_[slot];
}

size_t BlobRegistry::size() const {
  std::shared_lock lock(mu_);
  size_t n = 0;
  for (const auto& b : slots_) n += b != nullptr ? 1 : 0;
  return n;
}

}  // namespace nydus::readpath
