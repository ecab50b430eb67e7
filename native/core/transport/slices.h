// Byte access over a transport's scattered buffers (IoSlice spans, request.h): the one slice
// walker of the core. The FUSE codec and the READ path use the reader and writer below; the
// virtqueue uses CopyOut/CopyIn for the reply to a malformed chain and for descriptor tables
// that straddle memory regions.
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

namespace nydus::transport {

// A byte position inside a span of slices: the slice, and the offset inside it.
struct SlicePos {
  size_t slice = 0;
  size_t within = 0;
};

// Finds byte `pos`; false when it is at or past the end of the slices.
inline bool Locate(std::span<const IoSlice> slices, size_t pos, SlicePos* at) {
  for (size_t i = 0; i < slices.size(); ++i) {
    if (pos < slices[i].len) {
      *at = {i, pos};
      return true;
    }
    pos -= slices[i].len;
  }
  return false;
}

// The walker: calls fn(uint8_t* base, size_t len) for each contiguous piece of the n bytes
// starting at *at, in order, and advances *at past them (empty slices are stepped over). Returns
// false when the slices end first (fn has then seen a prefix).
template <typename Fn>
inline bool Walk(std::span<const IoSlice> slices, SlicePos* at, size_t n, Fn&& fn) {
  while (n > 0) {
    if (at->slice >= slices.size()) return false;
    const IoSlice& s = slices[at->slice];
    size_t take = s.len - at->within;
    if (take > n) take = n;
    if (take > 0) fn(s.base + at->within, take);
    n -= take;
    at->within += take;
    if (at->within == s.len) {
      ++at->slice;
      at->within = 0;
    }
  }
  return true;
}

// Copies the n bytes at byte `pos` of `slices` to dst (CopyOut) or from src (CopyIn). False when
// the range is not all inside the slices (a prefix may have been copied).
inline bool CopyOut(std::span<const IoSlice> slices, size_t pos, void* dst, size_t n) {
  if (n == 0) return true;
  SlicePos at;
  if (!Locate(slices, pos, &at)) return false;
  auto* d = static_cast<uint8_t*>(dst);
  return Walk(slices, &at, n, [&d](const uint8_t* p, size_t len) {
    __builtin_memcpy(d, p, len);
    d += len;
  });
}

inline bool CopyIn(std::span<const IoSlice> slices, size_t pos, const void* src, size_t n) {
  if (n == 0) return true;
  SlicePos at;
  if (!Locate(slices, pos, &at)) return false;
  const auto* s = static_cast<const uint8_t*>(src);
  return Walk(slices, &at, n, [&s](uint8_t* p, size_t len) {
    __builtin_memcpy(p, s, len);
    s += len;
  });
}

// Sequential, bounded reads of the readable bytes (the FUSE decoder).
class SliceReader {
 public:
  // `limit` caps how many bytes may be consumed (the request's declared length).
  SliceReader(std::span<const IoSlice> slices, size_t limit);

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

  std::span<const IoSlice> slices_;
  size_t limit_;
  size_t consumed_ = 0;
  SlicePos pos_;
};

// Random-access writes into the writable bytes (replies).
class SliceWriter {
 public:
  explicit SliceWriter(std::span<const IoSlice> slices);

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
  // True when [pos, pos+n) lies inside the capacity (no overflow).
  bool Inside(size_t pos, size_t n) const {
    size_t end = 0;
    return !__builtin_add_overflow(pos, n, &end) && end <= capacity_;
  }

  std::span<const IoSlice> slices_;
  size_t capacity_ = 0;
};

}  // namespace nydus::transport
