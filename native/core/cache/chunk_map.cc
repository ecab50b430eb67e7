#include "cache/chunk_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

namespace nydus::cache {
namespace {

struct Header {
  uint32_t magic;
  uint32_t version;
  uint32_t magic2;
  uint32_t all_ready;
};
static_assert(sizeof(Header) == 16 && std::is_trivially_copyable_v<Header>);

inline uint8_t MaskOf(uint32_t index) { return static_cast<uint8_t>(1u << (7 - (index & 7))); }

}  // namespace

ChunkMap::~ChunkMap() { Close(); }

void ChunkMap::Close() {
  if (map_ != nullptr) {
    munmap(map_, map_len_);
    map_ = nullptr;
  }
  map_len_ = 0;
  chunk_count_ = 0;
}

std::atomic<uint8_t>* ChunkMap::Byte(uint32_t index) const {
  // SAFETY: the map covers kHeaderSize + ceil(count/8) bytes and index < count is checked by
  // callers; std::atomic<uint8_t> has the size and alignment of uint8_t (asserted below).
  static_assert(sizeof(std::atomic<uint8_t>) == 1 && std::atomic<uint8_t>::is_always_lock_free);
  return reinterpret_cast<std::atomic<uint8_t>*>(map_ + kHeaderSize + (index >> 3));
}

int ChunkMap::Open(const std::string& path, uint32_t chunk_count, std::string* error) {
  Close();
  if (chunk_count == 0) {
    *error = "chunk count must be greater than 0";
    return -EINVAL;
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    *error = "cannot open chunk map " + path + ": " + std::strerror(err);
    return -err;
  }
  const size_t expected = FileSize(chunk_count);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    *error = "cannot stat chunk map " + path + ": " + std::strerror(err);
    return -err;
  }
  bool fresh = false;
  if (st.st_size == 0) {
    if (ftruncate(fd, static_cast<off_t>(expected)) != 0) {
      int err = errno;
      ::close(fd);
      *error = "cannot size chunk map " + path + ": " + std::strerror(err);
      return -err;
    }
    fresh = true;
  } else if (static_cast<size_t>(st.st_size) != expected) {
    ::close(fd);
    *error = "chunk map " + path + " has size " + std::to_string(st.st_size) + ", expected " +
             std::to_string(expected) + " for " + std::to_string(chunk_count) + " chunks";
    return -EINVAL;
  }
  void* p = mmap(nullptr, expected, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    *error = "cannot map chunk map " + path + ": " + std::strerror(map_err);
    return -map_err;
  }
  map_ = static_cast<uint8_t*>(p);
  map_len_ = expected;
  chunk_count_ = chunk_count;

  Header h;
  std::memcpy(&h, map_, sizeof(h));
  if (h.magic != kMagic) {
    // An all-zero file is a creation that died between sizing and writing the header; anything
    // else is not ours and must not be trusted.
    for (size_t i = 0; i < expected; ++i) {
      if (map_[i] != 0) {
        Close();
        *error = "chunk map " + path + " has a bad header magic";
        return -EINVAL;
      }
    }
    fresh = true;
  } else if (h.version >= 1 && h.magic2 != kMagic2) {
    Close();
    *error = "chunk map " + path + " has a bad second header magic";
    return -EINVAL;
  }
  if (fresh) {
    Header init{kMagic, 1, kMagic2, 0};
    std::memcpy(map_, &init, sizeof(init));
    not_ready_.store(chunk_count, std::memory_order_relaxed);
    return 0;
  }
  uint32_t ready = h.all_ready == kAllReady ? chunk_count : ReadyCount();
  not_ready_.store(chunk_count - (ready > chunk_count ? chunk_count : ready),
                   std::memory_order_relaxed);
  if (ready >= chunk_count) MarkAllReady();
  return 0;
}

bool ChunkMap::IsReady(uint32_t index) const {
  if (map_ == nullptr || index >= chunk_count_) return false;
  // ORDERING: acquire pairs with the release in SetReady, so a reader that sees the bit also
  // sees the data-file writes the setter completed before setting it.
  return (Byte(index)->load(std::memory_order_acquire) & MaskOf(index)) != 0;
}

bool ChunkMap::RangeReady(uint32_t first, uint32_t count) const {
  if (map_ == nullptr || first >= chunk_count_ || count > chunk_count_ - first) return false;
  for (uint32_t i = first; i < first + count; ++i) {
    if (!IsReady(i)) return false;
  }
  return true;
}

bool ChunkMap::SetReady(uint32_t index) {
  if (map_ == nullptr || index >= chunk_count_) return false;
  // ORDERING: release publishes the chunk data written before this call (see IsReady).
  uint8_t before = Byte(index)->fetch_or(MaskOf(index), std::memory_order_acq_rel);
  if ((before & MaskOf(index)) != 0) return false;
  if (not_ready_.fetch_sub(1, std::memory_order_relaxed) == 1) MarkAllReady();
  return true;
}

uint32_t ChunkMap::ReadyCount() const {
  if (map_ == nullptr) return 0;
  uint32_t n = 0;
  const uint32_t full_bytes = chunk_count_ / 8;
  for (uint32_t b = 0; b < full_bytes; ++b) {
    n += static_cast<uint32_t>(__builtin_popcount(Byte(b * 8)->load(std::memory_order_relaxed)));
  }
  for (uint32_t i = full_bytes * 8; i < chunk_count_; ++i) n += IsReady(i) ? 1 : 0;
  return n;
}

bool ChunkMap::AllReady() const {
  return map_ != nullptr && not_ready_.load(std::memory_order_relaxed) == 0;
}

void ChunkMap::MarkAllReady() {
  uint32_t v = kAllReady;
  // SAFETY: the all_ready word is at header offset 12, inside the mapped header.
  reinterpret_cast<std::atomic<uint32_t>*>(map_ + 12)->store(v, std::memory_order_release);
}

}  // namespace nydus::cache
