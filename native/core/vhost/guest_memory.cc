#include "vhost/guest_memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "common/checked.h"

namespace nydus::vhost {

std::shared_ptr<const MappedRegion> MappedRegion::Map(int fd, const VhostUserMemoryRegion& r,
                                                      std::string* error) {
  char buf[256];
  if (!r.IsValid()) {
    std::snprintf(buf, sizeof(buf),
                  "memory region gpa=0x%llx size=0x%llx uva=0x%llx offset=0x%llx is empty or "
                  "overflows",
                  static_cast<unsigned long long>(r.guest_phys_addr),
                  static_cast<unsigned long long>(r.memory_size),
                  static_cast<unsigned long long>(r.userspace_addr),
                  static_cast<unsigned long long>(r.mmap_offset));
    *error = buf;
    return nullptr;
  }
  uint64_t map_len = 0;
  if (!CheckedAdd<uint64_t>(r.memory_size, r.mmap_offset, &map_len) || map_len > SIZE_MAX / 2) {
    *error = "memory region too large to map";
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::snprintf(buf, sizeof(buf), "fstat of memory region fd: %s", strerror(errno));
    *error = buf;
    return nullptr;
  }
  // A mapping past the end of the file faults with SIGBUS on first touch. Memfds, /dev/shm files
  // and hugetlbfs files all report their size; anything else is not guest RAM.
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < map_len) {
    std::snprintf(buf, sizeof(buf),
                  "memory region fd is not a regular file of at least 0x%llx bytes (mode 0%o, "
                  "size 0x%llx)",
                  static_cast<unsigned long long>(map_len), st.st_mode,
                  static_cast<unsigned long long>(st.st_size));
    *error = buf;
    return nullptr;
  }
  void* base = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    std::snprintf(buf, sizeof(buf), "mmap of 0x%llx bytes: %s",
                  static_cast<unsigned long long>(map_len), strerror(errno));
    *error = buf;
    return nullptr;
  }
  uint8_t* host = static_cast<uint8_t*>(base) + r.mmap_offset;
  return std::shared_ptr<const MappedRegion>(
      new MappedRegion(r, base, static_cast<size_t>(map_len), host));
}

MappedRegion::~MappedRegion() { ::munmap(base_, len_); }

GuestMemory::GuestMemory(std::vector<std::shared_ptr<const MappedRegion>> regions)
    : regions_(std::move(regions)) {
  std::sort(regions_.begin(), regions_.end(),
            [](const auto& a, const auto& b) { return a->gpa() < b->gpa(); });
}

bool GuestMemory::CanAdd(const VhostUserMemoryRegion& r, std::string* error) const {
  for (const auto& m : regions_) {
    // Both ranges are overflow-free (IsValid / Map checked them).
    bool disjoint =
        r.guest_phys_addr + r.memory_size <= m->gpa() || m->gpa() + m->size() <= r.guest_phys_addr;
    if (!disjoint) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "memory region gpa=0x%llx size=0x%llx overlaps gpa=0x%llx",
                    static_cast<unsigned long long>(r.guest_phys_addr),
                    static_cast<unsigned long long>(r.memory_size),
                    static_cast<unsigned long long>(m->gpa()));
      *error = buf;
      return false;
    }
  }
  return true;
}

int GuestMemory::FindGpa(uint64_t gpa) const {
  // Last region starting at or below gpa (regions are sorted and disjoint).
  size_t lo = 0;
  size_t hi = regions_.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (regions_[mid]->gpa() <= gpa) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return -1;
  const MappedRegion& r = *regions_[lo - 1];
  return gpa - r.gpa() < r.size() ? static_cast<int>(lo - 1) : -1;
}

int GuestMemory::TranslateGpa(uint64_t gpa, uint64_t len, transport::IoSlice* out, size_t cap,
                              size_t* n) const {
  uint64_t end = 0;
  if (!CheckedAdd(gpa, len, &end)) return -EFAULT;
  // Each step consumes at least one whole region, so the loop runs at most num_regions times.
  while (len > 0) {
    int i = FindGpa(gpa);
    if (i < 0) return -EFAULT;
    const MappedRegion& r = *regions_[static_cast<size_t>(i)];
    uint64_t off = gpa - r.gpa();
    uint64_t take = std::min<uint64_t>(len, r.size() - off);
    if (*n >= cap) return -E2BIG;
    out[(*n)++] = transport::IoSlice{r.host() + off, static_cast<size_t>(take)};
    gpa += take;
    len -= take;
  }
  return 0;
}

uint8_t* GuestMemory::GpaToHost(uint64_t gpa, uint64_t len) const {
  int i = FindGpa(gpa);
  if (i < 0) return nullptr;
  const MappedRegion& r = *regions_[static_cast<size_t>(i)];
  uint64_t off = gpa - r.gpa();
  return RangeWithin(off, len, r.size()) ? r.host() + off : nullptr;
}

uint8_t* GuestMemory::UvaToHost(uint64_t uva, uint64_t len) const {
  for (const auto& r : regions_) {
    if (uva < r->uva()) continue;
    uint64_t off = uva - r->uva();
    if (off < r->size()) return RangeWithin(off, len, r->size()) ? r->host() + off : nullptr;
  }
  return nullptr;
}

}  // namespace nydus::vhost
