#include "passthrough/pt_host.h"

#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace nydus::passthrough {
namespace {

// ORDERING: a one-way latch (openat2 missing on this kernel), read and written relaxed: a thread
// that has not seen it yet just tries openat2 once more and gets ENOSYS again.
std::atomic<bool> g_no_openat2{false};

}  // namespace

ProcPath::ProcPath(int fd) {
  static constexpr char kPrefix[] = "/proc/self/fd/";
  std::memcpy(buf_, kPrefix, sizeof(kPrefix) - 1);
  char digits[12];
  int n = 0;
  unsigned v = fd < 0 ? 0u : static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  size_t pos = sizeof(kPrefix) - 1;
  while (n > 0) buf_[pos++] = digits[--n];
  buf_[pos] = '\0';
}

bool HasSlash(const char* name, size_t len) { return std::memchr(name, '/', len) != nullptr; }

bool IsPlainName(const char* name, size_t len) {
  if (len == 0 || HasSlash(name, len)) return false;
  if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'))) return false;
  return true;
}

int OpenBeneath(int dirfd, const char* name, int flags, mode_t mode) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags);
    how.mode = (flags & (O_CREAT | __O_TMPFILE)) != 0 ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != ENOSYS) return -errno;
    g_no_openat2.store(true, std::memory_order_relaxed);
  }
  int fd = openat(dirfd, name, flags, mode);
  return fd >= 0 ? fd : -errno;
}

int ReopenInode(int opath_fd, int flags) {
  flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_PATH | __O_TMPFILE | O_NOFOLLOW);
  ProcPath p(opath_fd);
  int fd = open(p.c_str(), flags | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int StatFd(int fd, struct statx* st) {
  int rc = statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
                 STATX_BASIC_STATS | STATX_MNT_ID, st);
  return rc == 0 ? 0 : -errno;
}

void AttrFromStatx(const struct statx& st, fuse_attr* out) {
  std::memset(out, 0, sizeof(*out));
  out->ino = st.stx_ino;
  out->size = st.stx_size;
  out->blocks = st.stx_blocks;
  out->atime = static_cast<uint64_t>(st.stx_atime.tv_sec);
  out->atimensec = st.stx_atime.tv_nsec;
  out->mtime = static_cast<uint64_t>(st.stx_mtime.tv_sec);
  out->mtimensec = st.stx_mtime.tv_nsec;
  out->ctime = static_cast<uint64_t>(st.stx_ctime.tv_sec);
  out->ctimensec = st.stx_ctime.tv_nsec;
  out->mode = st.stx_mode;
  out->nlink = st.stx_nlink;
  out->uid = st.stx_uid;
  out->gid = st.stx_gid;
  // FUSE carries the kernel's 32-bit "new" device encoding, which is the low half of glibc's.
  out->rdev = static_cast<uint32_t>(makedev(st.stx_rdev_major, st.stx_rdev_minor));
  out->blksize = st.stx_blksize;
}

}  // namespace nydus::passthrough
