#include "cache/chunk_map.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <vector>

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
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
    fd_ = -1;
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

int ChunkMap::Lock(const std::string& path, bool repair, OpenInfo* info, std::string* error) {
  // Only an opener that may repair competes for the exclusive lock.
  if (repair && flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    info->exclusive = true;
    return 0;
  }
  // Someone else has it: shared, unless the first opener is still repairing (it holds the lock
  // exclusively for a few milliseconds). Bounded, so a stopped process cannot block us forever.
  for (int i = 0; i < 200; ++i) {
    if (flock(fd_, LOCK_SH | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    usleep(10000);
  }
  int err = errno == EWOULDBLOCK ? EBUSY : errno;
  *error = "chunk map " + path + " stays locked by another process: " + std::strerror(err);
  return -err;
}

int ChunkMap::Open(const std::string& path, uint32_t chunk_count, std::string* error) {
  OpenInfo info;
  return Open(path, chunk_count, OpenOptions{}, &info, error);
}

int ChunkMap::Open(const std::string& path, uint32_t chunk_count, const OpenOptions& opts,
                   OpenInfo* info, std::string* error) {
  Close();
  *info = OpenInfo{};
  if (chunk_count == 0) {
    *error = "chunk count must be greater than 0";
    return -EINVAL;
  }
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int err = errno;
    *error = "cannot open chunk map " + path + ": " + std::strerror(err);
    return -err;
  }
  auto fail = [&](int err, std::string what) {
    Close();
    *error = std::move(what);
    return -err;
  };
  if (int rc = Lock(path, opts.repair, info, error); rc != 0) {
    Close();
    return rc;
  }
  const size_t expected = FileSize(chunk_count);
  struct stat st {};
  if (fstat(fd_, &st) != 0) {
    int err = errno;
    return fail(err, "cannot stat chunk map " + path + ": " + std::strerror(err));
  }
  std::string damage;
  if (st.st_size != 0 && static_cast<size_t>(st.st_size) != expected) {
    damage = "size " + std::to_string(st.st_size) + ", expected " + std::to_string(expected) +
             " for " + std::to_string(chunk_count) + " chunks";
  } else if (st.st_size != 0) {
    Header h{};
    ssize_t n = ::pread(fd_, &h, sizeof(h), 0);
    if (n != static_cast<ssize_t>(sizeof(h))) {
      damage = "a short header";
    } else if (h.magic != kMagic) {
      // An all-zero file is a creation that died between sizing and writing the header; anything
      // else is not ours and must not be trusted.
      std::vector<uint8_t> all(expected);
      if (::pread(fd_, all.data(), expected, 0) != static_cast<ssize_t>(expected)) {
        damage = "a short read";
      } else {
        for (uint8_t b : all) {
          if (b != 0) {
            damage = "a bad header magic";
            break;
          }
        }
      }
    } else if (h.version >= 1 && h.magic2 != kMagic2) {
      damage = "a bad second header magic";
    }
  }
  if (!damage.empty()) {
    if (!opts.repair || !info->exclusive) {
      return fail(EINVAL, "chunk map " + path + " is damaged: " + damage +
                              (opts.repair ? " (in use by another process, not repaired)" : ""));
    }
    // Rebuilt in place (same inode), empty: no chunk is trusted.
    if (ftruncate(fd_, 0) != 0) {
      int err = errno;
      return fail(err, "cannot reset damaged chunk map " + path + ": " + std::strerror(err));
    }
    info->repaired = damage;
  }
  if (ftruncate(fd_, static_cast<off_t>(expected)) != 0) {
    int err = errno;
    return fail(err, "cannot size chunk map " + path + ": " + std::strerror(err));
  }
  // Allocate every block now: a store through the mapping into a hole of a full filesystem
  // would kill the process with SIGBUS instead of failing.
  if (int err = posix_fallocate(fd_, 0, static_cast<off_t>(expected)); err != 0) {
    return fail(err, "cannot allocate chunk map " + path + ": " + std::strerror(err));
  }
  void* p = mmap(nullptr, expected, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    return fail(err, "cannot map chunk map " + path + ": " + std::strerror(err));
  }
  map_ = static_cast<uint8_t*>(p);
  map_len_ = expected;
  chunk_count_ = chunk_count;

  Header h;
  std::memcpy(&h, map_, sizeof(h));
  if (h.magic != kMagic) {
    // Fresh, half-created or rebuilt (all zero: checked above). Concurrent shared openers of a
    // half-created map write the same header.
    Header init{kMagic, 1, kMagic2, 0};
    std::memcpy(map_, &init, sizeof(init));
    not_ready_.store(chunk_count, std::memory_order_relaxed);
    return 0;
  }
  // The bits decide; the all_ready word is only a summary (cleared when it lies).
  uint32_t ready = ReadyCount();
  if (ready > chunk_count) ready = chunk_count;
  not_ready_.store(chunk_count - ready, std::memory_order_relaxed);
  if (ready >= chunk_count) {
    MarkAllReady();
  } else if (h.all_ready == kAllReady && info->exclusive) {
    reinterpret_cast<std::atomic<uint32_t>*>(map_ + 12)->store(0, std::memory_order_release);
  }
  return 0;
}

int ChunkMap::Share() {
  if (fd_ < 0) return -EBADF;
  return flock(fd_, LOCK_SH) == 0 ? 0 : -errno;
}

bool ChunkMap::ClearReady(uint32_t index) {
  if (map_ == nullptr || index >= chunk_count_) return false;
  uint8_t before =
      Byte(index)->fetch_and(static_cast<uint8_t>(~MaskOf(index)), std::memory_order_acq_rel);
  if ((before & MaskOf(index)) == 0) return false;
  if (not_ready_.fetch_add(1, std::memory_order_relaxed) == 0) {
    reinterpret_cast<std::atomic<uint32_t>*>(map_ + 12)->store(0, std::memory_order_release);
  }
  return true;
}

void ChunkMap::AddListener(std::shared_ptr<ReadyListener> l) {
  std::lock_guard lock(listeners_mu_);
  listeners_.push_back(std::move(l));
}

void ChunkMap::RemoveListener(const ReadyListener* l) {
  std::lock_guard lock(listeners_mu_);
  std::erase_if(listeners_, [l](const auto& p) { return p.get() == l; });
}

void ChunkMap::NotifyReady(std::span<const uint32_t> indices) {
  if (indices.empty()) return;
  std::vector<std::shared_ptr<ReadyListener>> now;
  {
    // Called outside the lock: a listener may take locks that AddListener's callers hold.
    std::lock_guard lock(listeners_mu_);
    now = listeners_;
  }
  for (const auto& l : now) l->OnReady(indices);
}

void ChunkMap::NotifyDecoded(const DecodedRun& run) {
  if (run.Fresh().empty()) return;
  std::vector<std::shared_ptr<ReadyListener>> now;
  {
    std::lock_guard lock(listeners_mu_);
    now = listeners_;
  }
  for (const auto& l : now) l->OnDecoded(run);
}

const uint8_t* DecodedRun::Find(uint32_t index, uint64_t from, uint64_t len) const {
  if (indices.empty() || indices.size() != offsets.size() || from < offsets[0] || from >= end ||
      len > end - from) {
    return nullptr;
  }
  // The last chunk starting at or before `from`.
  const auto it = std::upper_bound(offsets.begin(), offsets.end(), from) - 1;
  const size_t k = static_cast<size_t>(it - offsets.begin());
  const uint64_t chunk_end = k + 1 < offsets.size() ? offsets[k + 1] : end;
  if (indices[k] != index || len > chunk_end - from) return nullptr;
  return bytes + (from - offsets[0]);
}

bool DecodedRun::Contains(uint32_t index) const {
  for (uint32_t i : indices) {
    if (i == index) return true;
  }
  return false;
}

Spill* ChunkMap::EnsureSpill(std::string* error) {
  if (Spill* s = spill(); s != nullptr) return s;
  std::lock_guard lock(spill_mu_);
  if (spill_owner_ == nullptr) {
    if (chunk_count_ == 0) {
      *error = "chunk map is closed";
      return nullptr;
    }
    spill_owner_ = Spill::Create(chunk_count_, error);
    if (spill_owner_ == nullptr) return nullptr;
    spill_.store(spill_owner_.get(), std::memory_order_release);
  }
  return spill_owner_.get();
}

bool ChunkMap::AttachLayout(std::unique_ptr<ChunkLayout> layout) {
  std::lock_guard lock(spill_mu_);
  if (layout_owner_ != nullptr) return false;
  layout_owner_ = std::move(layout);
  layout_.store(layout_owner_.get(), std::memory_order_release);
  return true;
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
