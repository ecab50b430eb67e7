// Checked arithmetic for numbers that come from outside the process (guest, frontend, image
// files). Style rule 2: every such addition or multiplication goes through these helpers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nydus {

// True when [off, off+len) lies inside [0, size) without overflow.
constexpr bool RangeWithin(uint64_t off, uint64_t len, uint64_t size) {
  uint64_t end = 0;
  if (__builtin_add_overflow(off, len, &end)) return false;
  return end <= size;
}

template <typename T>
constexpr bool CheckedAdd(T a, T b, T* out) {
  return !__builtin_add_overflow(a, b, out);
}

template <typename T>
constexpr bool CheckedMul(T a, T b, T* out) {
  return !__builtin_mul_overflow(a, b, out);
}

constexpr uint64_t DivRoundUp(uint64_t n, uint64_t d) { return n / d + (n % d != 0 ? 1 : 0); }

}  // namespace nydus
