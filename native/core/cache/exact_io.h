// Exact positioned I/O on cache files: pread/pwrite of exactly `len` bytes, retrying short
// transfers and EINTR. A file that ends first is -EIO (a truncated cache file, or a write that
// made no progress).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "common/thread_sched.h"

namespace nydus::cache {

namespace detail {
template <typename Io, typename Buf>
int Exact(Io io, int fd, Buf* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    // At most kBulkIoStep per call: the fill thread returns to user space between steps, where
    // a woken event loop takes the CPU (thread_sched.h).
    const size_t step = len - done < kBulkIoStep ? len - done : kBulkIoStep;
    ssize_t n = io(fd, buf + done, step, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    done += static_cast<size_t>(n);
    // A step boundary: a loop waiting behind this thread gets the CPU (thread_sched.h).
    BulkYieldPoint();
  }
  return 0;
}
}  // namespace detail

// 0 or -errno.
inline int PreadExact(int fd, uint8_t* buf, size_t len, uint64_t off) {
  return detail::Exact(::pread, fd, buf, len, off);
}
inline int PwriteAll(int fd, const uint8_t* buf, size_t len, uint64_t off) {
  return detail::Exact(::pwrite, fd, buf, len, off);
}

}  // namespace nydus::cache
