// The frontend side of vhost-user, part 1: guest RAM as a VMM provides it.
//
// The frontend library in native/driver/frontend plays QEMU (or cloud-hypervisor) and the
// guest's virtio driver against any vhost-user-fs backend: it is what the frontend driver tool
// (native/driver/cli) and the core unit tests use to exercise the backend over a real socket.
// It is test tooling: a static library of its own, linked into those binaries and never into
// the addon (test/unit/native-symbols.test.ts checks the addon's symbols).
//
// GuestRam is one memfd (like `-object memory-backend-memfd,share=on`) mapped once into this
// process. Guest physical address g lives at file offset g; QEMU's x86 layout leaves out the VGA
// hole [0xa0000, 0xc0000) so the RAM is announced as two regions (reference §1.5), while
// cloud-hypervisor announces one region.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vhost/vhost_user.h"

namespace nydus::driver::frontend {

// The frontend speaks the backend's protocol vocabulary (vhost/vhost_user.h, vhost/virtq.h).
using namespace vhost;

enum class RamLayout : uint8_t { kQemuSplit, kSingle };

class GuestRam {
 public:
  static constexpr uint64_t kVgaHoleStart = 0xa0000;
  static constexpr uint64_t kVgaHoleEnd = 0xc0000;
  // Allocations start at 1 MiB, like a guest's normal zone, and stay out of the hole.
  static constexpr uint64_t kAllocStart = 0x100000;

  static std::unique_ptr<GuestRam> Create(uint64_t size, RamLayout layout, std::string* error);
  ~GuestRam();

  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }
  RamLayout layout() const { return layout_; }
  // The regions as SET_MEM_TABLE / ADD_MEM_REG announce them; userspace_addr is our mapping.
  std::vector<VhostUserMemoryRegion> Regions() const;

  // Pointer for [gpa, gpa+len) if it lies in RAM outside the hole, else nullptr.
  uint8_t* Host(uint64_t gpa, uint64_t len) const;
  // Frontend virtual address of gpa (what SET_VRING_ADDR carries).
  uint64_t Uva(uint64_t gpa) const { return reinterpret_cast<uint64_t>(base_) + gpa; }

  // Bump allocator; returns the gpa or 0 when RAM is exhausted.
  uint64_t Alloc(uint64_t size, uint64_t align);
  uint64_t allocated() const { return next_; }

 private:
  GuestRam() = default;

  UniqueFd fd_;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  RamLayout layout_ = RamLayout::kQemuSplit;
  uint64_t next_ = kAllocStart;
};

}  // namespace nydus::driver::frontend
