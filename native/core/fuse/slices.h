// Byte access over a transport's scattered buffers (transport/request.h IoSlice spans).
//
// SliceReader copies readable bytes into private memory: for virtio the source is guest memory
// that the guest may rewrite at any time, so every header, fixed argument and name is copied once
// and validated only in the copy (TOCTOU, vhost-user-fs.md §2.4). SliceWriter scatters reply
// bytes into the writable slices and never writes past them; IovecsFor maps a byte range of the
// writable space to iovecs for preadv straight into the reply.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "transport/request.h"

namespace nydus::fuse {

class SliceReader {
 public:
  // `limit` caps how many bytes may be consumed (the request's declared length).
  SliceReader(std::span<const transport::IoSlice> slices, size_t limit);

  size_t remaining() const { return limit_ - consumed_; }
  // Copies exactly n bytes and advances; false (nothing consumed) when fewer remain.
  bool Copy(void* dst, size_t n);
  // Advances past n bytes; false when fewer remain.
  bool Skip(size_t n);
  // Copies a NUL-terminated string of at most max_len bytes (without the NUL) into dst, which
  // must hold max_len + 1 bytes. Consumes through the NUL. Returns the length, or -1 when there
  // is no NUL within max_len + 1 bytes of what remains (dst content is then unspecified).
  long CopyCString(char* dst, size_t max_len);

 private:
  // Consumes n bytes, copying them to `out` unless it is null.
  bool Take(uint8_t* out, size_t n);

  std::span<const transport::IoSlice> slices_;
  size_t limit_;
  size_t consumed_ = 0;
  size_t slice_ = 0;   // index of the slice holding the next byte
  size_t within_ = 0;  // offset of the next byte inside that slice
};

class SliceWriter {
 public:
  explicit SliceWriter(std::span<const transport::IoSlice> slices);

  size_t capacity() const { return capacity_; }
  // Writes n bytes at absolute offset pos; false (nothing written) when past capacity.
  bool Write(size_t pos, const void* src, size_t n) const;
  bool Zero(size_t pos, size_t n) const;
  // Fills `iov` (up to max entries) with the slices covering [pos, pos+n). Returns the number of
  // entries, or -1 when the range is outside the capacity or needs more than max entries.
  int IovecsFor(size_t pos, size_t n, struct iovec* iov, int max) const;
  // A pointer to [pos, pos+n) when that range lies inside one slice, else nullptr.
  uint8_t* Contiguous(size_t pos, size_t n) const;

 private:
  // Finds the slice holding byte pos; returns false when pos >= capacity.
  bool Locate(size_t pos, size_t* slice, size_t* within) const;

  std::span<const transport::IoSlice> slices_;
  size_t capacity_ = 0;
};

}  // namespace nydus::fuse
