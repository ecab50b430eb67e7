// The FUSE wire ABI as this server speaks it (kernel protocol 7.38, Linux 6.1 guests and hosts).
//
// Layouts come from the system <linux/fuse.h>; this header pins every struct the session reads
// or writes to the size the reference lists (vhost-user-fs.md §4.3), so a header drift fails the
// build instead of corrupting replies. It also names the INIT parameters we negotiate and the
// limits the decoder enforces on guest-supplied numbers.
//
// Neighbours: decode.h (requests -> private structs), reply.h (structs -> writable slices),
// session.h (dispatch). Nothing here allocates or touches a transport.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "abi/js_abi.h"

namespace nydus::fuse {

// Style rule 1: every wire struct is POD with a pinned size.
#define NYDUS_FUSE_WIRE(T, N) \
  static_assert(sizeof(T) == (N) && std::is_trivially_copyable_v<T>, #T " size drifted")

NYDUS_FUSE_WIRE(fuse_in_header, 40);
NYDUS_FUSE_WIRE(fuse_out_header, 16);
NYDUS_FUSE_WIRE(fuse_init_in, 64);
NYDUS_FUSE_WIRE(fuse_init_out, 64);
NYDUS_FUSE_WIRE(fuse_attr, 88);
NYDUS_FUSE_WIRE(fuse_entry_out, 128);
NYDUS_FUSE_WIRE(fuse_attr_out, 104);
NYDUS_FUSE_WIRE(fuse_getattr_in, 16);
NYDUS_FUSE_WIRE(fuse_setattr_in, 88);
NYDUS_FUSE_WIRE(fuse_open_in, 8);
NYDUS_FUSE_WIRE(fuse_open_out, 16);
NYDUS_FUSE_WIRE(fuse_create_in, 16);
NYDUS_FUSE_WIRE(fuse_read_in, 40);
NYDUS_FUSE_WIRE(fuse_write_in, 40);
NYDUS_FUSE_WIRE(fuse_write_out, 8);
NYDUS_FUSE_WIRE(fuse_release_in, 24);
NYDUS_FUSE_WIRE(fuse_flush_in, 24);
NYDUS_FUSE_WIRE(fuse_fsync_in, 16);
NYDUS_FUSE_WIRE(fuse_forget_in, 8);
NYDUS_FUSE_WIRE(fuse_forget_one, 16);
NYDUS_FUSE_WIRE(fuse_batch_forget_in, 8);
NYDUS_FUSE_WIRE(fuse_getxattr_in, 8);
NYDUS_FUSE_WIRE(fuse_getxattr_out, 8);
NYDUS_FUSE_WIRE(fuse_setxattr_in, 16);
NYDUS_FUSE_WIRE(fuse_access_in, 8);
NYDUS_FUSE_WIRE(fuse_mknod_in, 16);
NYDUS_FUSE_WIRE(fuse_mkdir_in, 8);
NYDUS_FUSE_WIRE(fuse_rename_in, 8);
NYDUS_FUSE_WIRE(fuse_rename2_in, 16);
NYDUS_FUSE_WIRE(fuse_link_in, 8);
NYDUS_FUSE_WIRE(fuse_lk_in, 48);
NYDUS_FUSE_WIRE(fuse_lk_out, 24);
NYDUS_FUSE_WIRE(fuse_interrupt_in, 8);
NYDUS_FUSE_WIRE(fuse_lseek_in, 24);
NYDUS_FUSE_WIRE(fuse_lseek_out, 8);
NYDUS_FUSE_WIRE(fuse_fallocate_in, 32);
NYDUS_FUSE_WIRE(fuse_copy_file_range_in, 56);
NYDUS_FUSE_WIRE(fuse_statfs_out, 80);
NYDUS_FUSE_WIRE(fuse_kstatfs, 80);
NYDUS_FUSE_WIRE(fuse_dirent, 24);
NYDUS_FUSE_WIRE(fuse_direntplus, 152);
NYDUS_FUSE_WIRE(fuse_syncfs_in, 8);
NYDUS_FUSE_WIRE(fuse_setupmapping_in, 40);
NYDUS_FUSE_WIRE(fuse_removemapping_in, 4);
NYDUS_FUSE_WIRE(fuse_removemapping_one, 16);
static_assert(FUSE_NAME_OFFSET == 24 && FUSE_NAME_OFFSET_DIRENTPLUS == 152);

#undef NYDUS_FUSE_WIRE

// INIT negotiation (reference §4.1). We speak 7.38; a kernel below 7.13 predates the struct
// sizes we use (getattr_in, read_in with lock owner) and is refused. Minor < 23 gets the 24-byte
// init_out the old kernels expect.
inline constexpr uint32_t kOurMajor = FUSE_KERNEL_VERSION;
inline constexpr uint32_t kOurMinor = abi::kProtocolMinor;
static_assert(kOurMajor == 7 && kOurMinor >= 31, "the ABI header is older than 7.31");
inline constexpr uint32_t kOldestMinor = 13;
inline constexpr uint32_t kInitOutCompat22Minor = 23;

// What a read-only, immutable image server benefits from (§4.1): parallel async reads, readdirplus
// (auto-selected by the kernel), parallel lookups in one directory, 1 MiB requests, symlink
// caching, and the flags2 extension. Deliberately absent: WRITEBACK_CACHE, locks, ACLs,
// KILLPRIV, SECURITY_CTX, EXPORT_SUPPORT, DAX.
inline constexpr uint64_t kWantedInitFlags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS |
                                             FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS |
                                             FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT;
inline constexpr uint32_t kMaxPages = abi::kMaxPages;
inline constexpr uint32_t kMaxWrite = 1u << 20;
inline constexpr uint32_t kTimeGranNs = 1;
// The kernel defaults are 12/9 outstanding background requests (mostly readahead READs); an
// immutable cache-backed server can take more in parallel.
inline constexpr uint16_t kMaxBackground = 64;
inline constexpr uint16_t kCongestionThreshold = 48;

// Limits on guest-supplied sizes. Linux caps names at 1024 bytes (FUSE_NAME_MAX) and xattr names
// at 255 (XATTR_NAME_MAX); we accept up to the larger for both and let the handler decide.
inline constexpr size_t kMaxName = 1024;
// The biggest reply we build: READ / READDIR / LISTXATTR payloads never exceed max_pages pages
// plus the header; larger writable space is simply not used.
inline constexpr size_t kMaxReplyPayload = abi::kMaxReplyPayload;
// An error number the kernel accepts in fuse_out_header.error: 0 or -errno with errno < 512.
inline constexpr int kMaxErrno = abi::kMaxErrno;
// Opcodes with a row in the opcode table (ops.h). The upcall kinds that are not FUSE requests
// (read misses, notifications; abi/js_abi.h) sit above CUSE_INIT, outside it.
inline constexpr uint32_t kOpcodeTableSize = abi::kOpcodeTableSize;

// Time values on the wire: seconds + nanoseconds.
struct WireTime {
  uint64_t sec;
  uint32_t nsec;
};

}  // namespace nydus::fuse
