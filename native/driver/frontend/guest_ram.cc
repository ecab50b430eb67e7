#include "driver/frontend/guest_ram.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/checked.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

std::unique_ptr<GuestRam> GuestRam::Create(uint64_t size, RamLayout layout, std::string* error) {
  if (size < 2 * kAllocStart || size % 4096 != 0) {
    *error = "guest RAM must be a multiple of 4 KiB and at least 2 MiB";
    return nullptr;
  }
  std::unique_ptr<GuestRam> ram(new GuestRam());
  ram->fd_.reset(::memfd_create("nydus-guest-ram", MFD_CLOEXEC));
  if (!ram->fd_.valid()) {
    *error = std::string("memfd_create: ") + strerror(errno);
    return nullptr;
  }
  if (::ftruncate(ram->fd_.get(), static_cast<off_t>(size)) != 0) {
    *error = std::string("ftruncate guest RAM: ") + strerror(errno);
    return nullptr;
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, ram->fd_.get(), 0);
  if (p == MAP_FAILED) {
    *error = std::string("mmap guest RAM: ") + strerror(errno);
    return nullptr;
  }
  ram->base_ = static_cast<uint8_t*>(p);
  ram->size_ = size;
  ram->layout_ = layout;
  return ram;
}

GuestRam::~GuestRam() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

std::vector<VhostUserMemoryRegion> GuestRam::Regions() const {
  std::vector<VhostUserMemoryRegion> out;
  if (layout_ == RamLayout::kSingle) {
    out.push_back({0, size_, Uva(0), 0});
  } else {
    out.push_back({0, kVgaHoleStart, Uva(0), 0});
    out.push_back({kVgaHoleEnd, size_ - kVgaHoleEnd, Uva(kVgaHoleEnd), kVgaHoleEnd});
  }
  return out;
}

uint8_t* GuestRam::Host(uint64_t gpa, uint64_t len) const {
  if (!RangeWithin(gpa, len, size_)) return nullptr;
  if (layout_ == RamLayout::kQemuSplit && gpa < kVgaHoleEnd && gpa + len > kVgaHoleStart) {
    return nullptr;
  }
  return base_ + gpa;
}

uint64_t GuestRam::Alloc(uint64_t size, uint64_t align) {
  uint64_t at = (next_ + align - 1) & ~(align - 1);
  uint64_t end = 0;
  if (!CheckedAdd(at, size, &end) || end > size_) return 0;
  next_ = end;
  return at;
}

}  // namespace nydus::driver::frontend
