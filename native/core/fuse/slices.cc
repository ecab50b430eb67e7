#include "fuse/slices.h"

#include <cstring>

namespace nydus::fuse {

SliceReader::SliceReader(std::span<const transport::IoSlice> slices, size_t limit)
    : slices_(slices) {
  size_t total = 0;
  for (const auto& s : slices) {
    if (__builtin_add_overflow(total, s.len, &total)) total = SIZE_MAX;
  }
  limit_ = limit < total ? limit : total;
}

bool SliceReader::Copy(void* dst, size_t n) { return Take(static_cast<uint8_t*>(dst), n); }

bool SliceReader::Skip(size_t n) { return Take(nullptr, n); }

bool SliceReader::Take(uint8_t* out, size_t n) {
  if (n > remaining()) return false;
  while (n > 0) {
    const auto& s = slices_[slice_];
    size_t take = s.len - within_;
    if (take > n) take = n;
    if (out != nullptr) {
      std::memcpy(out, s.base + within_, take);
      out += take;
    }
    n -= take;
    consumed_ += take;
    within_ += take;
    if (within_ == s.len) {
      ++slice_;
      within_ = 0;
    }
  }
  return true;
}

long SliceReader::CopyCString(char* dst, size_t max_len) {
  // Copy byte-wise from the private copy's point of view: each byte is read from shared memory
  // once, and the NUL search runs on what we copied.
  size_t n = 0;
  while (n <= max_len) {
    if (remaining() == 0) return -1;
    const auto& s = slices_[slice_];
    const uint8_t* src = s.base + within_;
    size_t avail = s.len - within_;
    if (avail > remaining()) avail = remaining();
    size_t room = max_len + 1 - n;
    size_t take = avail < room ? avail : room;
    std::memcpy(dst + n, src, take);
    const void* nul = std::memchr(dst + n, 0, take);
    if (nul != nullptr) {
      size_t used = static_cast<size_t>(static_cast<const char*>(nul) - (dst + n)) + 1;
      Skip(used);
      return static_cast<long>(n + used - 1);
    }
    Skip(take);
    n += take;
  }
  return -1;
}

SliceWriter::SliceWriter(std::span<const transport::IoSlice> slices) : slices_(slices) {
  for (const auto& s : slices) {
    if (__builtin_add_overflow(capacity_, s.len, &capacity_)) capacity_ = SIZE_MAX;
  }
}

bool SliceWriter::Locate(size_t pos, size_t* slice, size_t* within) const {
  for (size_t i = 0; i < slices_.size(); ++i) {
    if (pos < slices_[i].len) {
      *slice = i;
      *within = pos;
      return true;
    }
    pos -= slices_[i].len;
  }
  return false;
}

bool SliceWriter::Write(size_t pos, const void* src, size_t n) const {
  size_t end = 0;
  if (__builtin_add_overflow(pos, n, &end) || end > capacity_) return false;
  if (n == 0) return true;
  size_t i = 0;
  size_t within = 0;
  if (!Locate(pos, &i, &within)) return false;
  const auto* in = static_cast<const uint8_t*>(src);
  while (n > 0) {
    size_t take = slices_[i].len - within;
    if (take > n) take = n;
    std::memcpy(slices_[i].base + within, in, take);
    in += take;
    n -= take;
    ++i;
    within = 0;
  }
  return true;
}

bool SliceWriter::Zero(size_t pos, size_t n) const {
  size_t end = 0;
  if (__builtin_add_overflow(pos, n, &end) || end > capacity_) return false;
  if (n == 0) return true;
  size_t i = 0;
  size_t within = 0;
  if (!Locate(pos, &i, &within)) return false;
  while (n > 0) {
    size_t take = slices_[i].len - within;
    if (take > n) take = n;
    std::memset(slices_[i].base + within, 0, take);
    n -= take;
    ++i;
    within = 0;
  }
  return true;
}

int SliceWriter::IovecsFor(size_t pos, size_t n, struct iovec* iov, int max) const {
  size_t end = 0;
  if (__builtin_add_overflow(pos, n, &end) || end > capacity_) return -1;
  if (n == 0) return 0;
  size_t i = 0;
  size_t within = 0;
  if (!Locate(pos, &i, &within)) return -1;
  int count = 0;
  while (n > 0) {
    if (count == max) return -1;
    size_t take = slices_[i].len - within;
    if (take > n) take = n;
    iov[count].iov_base = slices_[i].base + within;
    iov[count].iov_len = take;
    ++count;
    n -= take;
    ++i;
    within = 0;
  }
  return count;
}

uint8_t* SliceWriter::Contiguous(size_t pos, size_t n) const {
  size_t end = 0;
  if (__builtin_add_overflow(pos, n, &end) || end > capacity_ || n == 0) return nullptr;
  size_t i = 0;
  size_t within = 0;
  if (!Locate(pos, &i, &within)) return nullptr;
  return slices_[i].len - within >= n ? slices_[i].base + within : nullptr;
}

}  // namespace nydus::fuse
