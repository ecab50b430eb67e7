// Guest memory as the frontend shares it: regions of guest-physical space, each backed by a file
// descriptor (memfd, /dev/shm or hugetlbfs file) that we mmap. Translates guest physical
// addresses (descriptors, indirect tables) and frontend virtual addresses (SET_VRING_ADDR) to our
// own pointers with overflow checks (reference §1.6, §2.4).
//
// Concurrency: a GuestMemory is an immutable snapshot. Memory updates (SET_MEM_TABLE, ADD_MEM_REG,
// REM_MEM_REG) build a new snapshot and swap it into the MemoryTable; queue workers take the
// current snapshot once per drain and every in-flight request keeps a reference to the snapshot
// its buffers were translated with, so a mapping is unmapped only after the last request that can
// touch it has completed (RCU by reference counting).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "transport/request.h"
#include "vhost/vhost_user.h"

namespace nydus::vhost {

class MappedRegion {
 public:
  // mmaps `size + mmap_offset` bytes of fd from file offset 0 (what libvhost-user does; keeps
  // hugetlbfs happy when mmap_offset is not huge-page aligned) and uses base + mmap_offset.
  // Refuses regions that overflow or extend past the end of the file (touching them would
  // SIGBUS). Does not take ownership of fd.
  static std::shared_ptr<const MappedRegion> Map(int fd, const VhostUserMemoryRegion& region,
                                                 std::string* error);
  ~MappedRegion();
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  uint64_t gpa() const { return info_.guest_phys_addr; }
  uint64_t size() const { return info_.memory_size; }
  uint64_t uva() const { return info_.userspace_addr; }
  const VhostUserMemoryRegion& info() const { return info_; }
  uint8_t* host() const { return host_; }

 private:
  MappedRegion(const VhostUserMemoryRegion& info, void* base, size_t len, uint8_t* host)
      : info_(info), base_(base), len_(len), host_(host) {}

  VhostUserMemoryRegion info_;
  void* base_;
  size_t len_;
  uint8_t* host_;
};

class GuestMemory {
 public:
  GuestMemory() = default;
  // Regions must not overlap in guest-physical space (checked by CanAdd); kept sorted by gpa.
  explicit GuestMemory(std::vector<std::shared_ptr<const MappedRegion>> regions);

  size_t num_regions() const { return regions_.size(); }
  const std::vector<std::shared_ptr<const MappedRegion>>& regions() const { return regions_; }

  // False (with *error) if `r` overlaps an existing region in guest-physical space.
  bool CanAdd(const VhostUserMemoryRegion& r, std::string* error) const;

  // Appends host slices covering [gpa, gpa+len) to out[*n, cap). A buffer may span adjacent
  // regions and is split (libvhost-user and rust-vmm get_slices do the same). Returns 0, -EFAULT
  // when any byte is unmapped or the range overflows, -E2BIG when more than cap slices are needed.
  // len == 0 adds nothing and succeeds.
  int TranslateGpa(uint64_t gpa, uint64_t len, transport::IoSlice* out, size_t cap,
                   size_t* n) const;
  // A host pointer for [gpa, gpa+len) when the whole range lies in one region, else nullptr.
  uint8_t* GpaToHost(uint64_t gpa, uint64_t len) const;
  // Same for frontend virtual addresses (SET_VRING_ADDR rings).
  uint8_t* UvaToHost(uint64_t uva, uint64_t len) const;

 private:
  // Index of the region containing gpa, or -1.
  int FindGpa(uint64_t gpa) const;

  std::vector<std::shared_ptr<const MappedRegion>> regions_;
};

// The current snapshot, swapped by the control thread and read by queue workers.
class MemoryTable {
 public:
  MemoryTable() : current_(std::make_shared<const GuestMemory>()) {}
  std::shared_ptr<const GuestMemory> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void Replace(std::shared_ptr<const GuestMemory> next) {
    std::shared_ptr<const GuestMemory> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = std::exchange(current_, std::move(next));
    }
    // `old` is released outside the lock: dropping the last reference munmaps.
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const GuestMemory> current_;  // guarded by mu_
};

}  // namespace nydus::vhost
