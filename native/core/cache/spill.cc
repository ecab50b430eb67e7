#include "cache/spill.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace nydus::cache {
namespace {
inline uint8_t MaskOf(uint32_t index) { return static_cast<uint8_t>(1u << (index & 7)); }
}  // namespace

Spill::Spill(int fd, uint32_t chunk_count)
    : fd_(fd), chunk_count_(chunk_count), bits_(new std::atomic<uint8_t>[(chunk_count + 7) / 8]) {
  for (uint32_t i = 0; i < (chunk_count + 7) / 8; ++i) bits_[i].store(0, std::memory_order_relaxed);
}

Spill::~Spill() { ::close(fd_); }

std::unique_ptr<Spill> Spill::Create(uint32_t chunk_count, std::string* error) {
  int fd = ::memfd_create("nydus-cache-spill", MFD_CLOEXEC);
  if (fd < 0) {
    *error =
        std::string("cannot create an in-memory file for uncached chunks: ") + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<Spill>(new Spill(fd, chunk_count));
}

bool Spill::IsReady(uint32_t index) const {
  if (index >= chunk_count_) return false;
  // ORDERING: acquire pairs with SetReady's release (the pwrite to fd_ happened before).
  return (bits_[index >> 3].load(std::memory_order_acquire) & MaskOf(index)) != 0;
}

bool Spill::SetReady(uint32_t index) {
  if (index >= chunk_count_) return false;
  uint8_t before = bits_[index >> 3].fetch_or(MaskOf(index), std::memory_order_acq_rel);
  return (before & MaskOf(index)) == 0;
}

void Spill::Evict(uint32_t index, uint64_t offset, uint64_t size) {
  if (index >= chunk_count_) return;
  std::unique_lock lock(mu_);
  bits_[index >> 3].fetch_and(static_cast<uint8_t>(~MaskOf(index)), std::memory_order_acq_rel);
  // Best effort: a failed punch only keeps memory in use.
  (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(size));
}

}  // namespace nydus::cache
