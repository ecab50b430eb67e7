// FUSE wire structs as the frontend driver and the test responder use them: the kernel's own
// <linux/fuse.h> (7.38 on Debian 12), with the sizes checked against the reference (§4.3). The
// production FUSE codec lives in native/core/fuse (another layer); these two test tools only
// need the layouts.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace nydus::driver {

template <typename T>
constexpr bool kPod = std::is_trivially_copyable_v<T>&& std::is_standard_layout_v<T>;

static_assert(sizeof(fuse_in_header) == 40 && kPod<fuse_in_header>);
static_assert(sizeof(fuse_out_header) == 16 && kPod<fuse_out_header>);
static_assert(sizeof(fuse_init_in) == 64 && sizeof(fuse_init_out) == 64);
static_assert(sizeof(fuse_attr) == 88 && sizeof(fuse_entry_out) == 128);
static_assert(sizeof(fuse_attr_out) == 104 && sizeof(fuse_getattr_in) == 16);
static_assert(sizeof(fuse_open_in) == 8 && sizeof(fuse_open_out) == 16);
static_assert(sizeof(fuse_read_in) == 40 && sizeof(fuse_release_in) == 24);
static_assert(sizeof(fuse_forget_in) == 8 && sizeof(fuse_getxattr_in) == 8);
static_assert(sizeof(fuse_getxattr_out) == 8 && sizeof(fuse_statfs_out) == 80);
static_assert(sizeof(fuse_dirent) == 24 && sizeof(fuse_direntplus) == 152);
static_assert(sizeof(fuse_batch_forget_in) == 8 && sizeof(fuse_forget_one) == 16);
static_assert(sizeof(fuse_flush_in) == 24);

// The INIT a Linux 6.1 virtiofs guest sends (reference §4.1 / appendix): 7.38, flags
// 0x7bfffffb, flags2 0xb, max_readahead 128 KiB.
constexpr uint32_t kGuestInitMinor = 38;
constexpr uint32_t kGuestInitFlags = 0x7bfffffb;
constexpr uint32_t kGuestInitFlags2 = 0xb;
constexpr uint32_t kGuestMaxReadahead = 0x20000;

constexpr uint64_t kRootNodeId = FUSE_ROOT_ID;
constexpr size_t kPageSize = 4096;

// FUSE_DIRENT_ALIGN without the macro's size_t juggling.
constexpr size_t DirentAlign(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace nydus::driver
