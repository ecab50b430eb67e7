#include "transport/slices.h"

#include <cstring>

namespace nydus::transport {

SliceReader::SliceReader(std::span<const IoSlice> slices, size_t limit) : slices_(slices) {
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
  Walk(slices_, &pos_, n, [&out](const uint8_t* p, size_t len) {
    if (out != nullptr) {
      std::memcpy(out, p, len);
      out += len;
    }
  });
  consumed_ += n;
  return true;
}

long SliceReader::CopyCString(char* dst, size_t max_len) {
  // Each byte is read from the (possibly shared) source once, into dst; the NUL search runs on
  // that private copy, and only then is the position advanced through the NUL.
  const size_t scan = remaining() < max_len + 1 ? remaining() : max_len + 1;
  SlicePos peek = pos_;
  char* d = dst;
  Walk(slices_, &peek, scan, [&d](const uint8_t* p, size_t len) {
    std::memcpy(d, p, len);
    d += len;
  });
  const void* nul = std::memchr(dst, 0, scan);
  if (nul == nullptr) return -1;
  const size_t len = static_cast<size_t>(static_cast<const char*>(nul) - dst);
  Skip(len + 1);
  return static_cast<long>(len);
}

SliceWriter::SliceWriter(std::span<const IoSlice> slices) : slices_(slices) {
  for (const auto& s : slices) {
    if (__builtin_add_overflow(capacity_, s.len, &capacity_)) capacity_ = SIZE_MAX;
  }
}

bool SliceWriter::Write(size_t pos, const void* src, size_t n) const {
  if (!Inside(pos, n)) return false;
  return CopyIn(slices_, pos, src, n);
}

bool SliceWriter::Zero(size_t pos, size_t n) const {
  if (!Inside(pos, n)) return false;
  if (n == 0) return true;
  SlicePos at;
  if (!Locate(slices_, pos, &at)) return false;
  return Walk(slices_, &at, n, [](uint8_t* p, size_t len) { std::memset(p, 0, len); });
}

int SliceWriter::IovecsFor(size_t pos, size_t n, struct iovec* iov, int max) const {
  if (!Inside(pos, n)) return -1;
  if (n == 0) return 0;
  SlicePos at;
  if (!Locate(slices_, pos, &at)) return -1;
  int count = 0;
  Walk(slices_, &at, n, [&](uint8_t* p, size_t len) {
    if (count < max) iov[count] = {p, len};
    ++count;
  });
  return count <= max ? count : -1;
}

uint8_t* SliceWriter::Contiguous(size_t pos, size_t n) const {
  if (n == 0 || !Inside(pos, n)) return nullptr;
  SlicePos at;
  if (!Locate(slices_, pos, &at)) return nullptr;
  const IoSlice& s = slices_[at.slice];
  return s.len - at.within >= n ? s.base + at.within : nullptr;
}

}  // namespace nydus::transport
