#include "readpath/extent_table.h"

#include <algorithm>
#include <cmath>

namespace nydus::readpath {
namespace {

bool SafeInteger(double v, uint64_t max, uint64_t* out) {
  if (!(v >= 0) || v > static_cast<double>(max) || std::floor(v) != v) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

std::string Where(size_t i, const char* field) {
  return "extent " + std::to_string(i) + ": " + field;
}

}  // namespace

std::shared_ptr<const ExtentTable> ExtentTable::FromValues(uint64_t file_size, const double* values,
                                                           size_t count, std::string* error) {
  if (count > kMaxExtents) {
    *error = "too many extents (" + std::to_string(count) + ")";
    return nullptr;
  }
  std::vector<Extent> extents(count);
  using X = abi::ExtentRecord;
  for (size_t i = 0; i < count; ++i) {
    const double* v = values + i * X::kStride;
    uint64_t file_offset, length, slot, index, src_off, src_size, flags;
    if (!SafeInteger(v[X::kFileOffset], kMaxSafeInteger, &file_offset)) {
      *error = Where(i, "fileOffset is not an integer in [0, 2^53)");
      return nullptr;
    }
    if (!SafeInteger(v[X::kLength], kMaxChunk, &length) || length == 0) {
      *error = Where(i, "length must be an integer in [1, 16 MiB]");
      return nullptr;
    }
    if (!SafeInteger(v[X::kBlobSlot], kMaxBlobSlots - 1, &slot)) {
      *error = Where(i, "blobSlot must be an integer in [0, 4096)");
      return nullptr;
    }
    if (!SafeInteger(v[X::kChunkIndex], UINT32_MAX, &index)) {
      *error = Where(i, "chunkIndex must be a uint32");
      return nullptr;
    }
    if (!SafeInteger(v[X::kSourceOffset], kMaxSafeInteger, &src_off)) {
      *error = Where(i, "sourceOffset is not an integer in [0, 2^53)");
      return nullptr;
    }
    if (!SafeInteger(v[X::kSourceSize], UINT32_MAX, &src_size)) {
      *error = Where(i, "sourceSize must be a uint32");
      return nullptr;
    }
    if (!SafeInteger(v[X::kFlags], kExtentKnownFlags, &flags) ||
        (flags & ~kExtentKnownFlags) != 0) {
      *error = Where(i, "flags has unknown bits");
      return nullptr;
    }
    extents[i] = Extent{file_offset,
                        src_off,
                        static_cast<uint32_t>(length),
                        static_cast<uint32_t>(src_size),
                        static_cast<uint32_t>(slot),
                        static_cast<uint32_t>(index),
                        static_cast<uint32_t>(flags)};
  }
  return FromExtents(file_size, std::move(extents), error);
}

std::shared_ptr<const ExtentTable> ExtentTable::FromExtents(uint64_t file_size,
                                                            std::vector<Extent> extents,
                                                            std::string* error) {
  if (file_size > kMaxSafeInteger) {
    *error = "fileSize must be below 2^53";
    return nullptr;
  }
  uint64_t prev_end = 0;
  for (size_t i = 0; i < extents.size(); ++i) {
    const Extent& e = extents[i];
    if (e.length == 0 || e.length > kMaxChunk) {
      *error = Where(i, "length must be in [1, 16 MiB]");
      return nullptr;
    }
    if ((e.flags & ~kExtentKnownFlags) != 0) {
      *error = Where(i, "flags has unknown bits");
      return nullptr;
    }
    if (e.blob_slot >= kMaxBlobSlots) {
      *error = Where(i, "blobSlot out of range");
      return nullptr;
    }
    const uint64_t end = e.file_offset + e.length;  // both < 2^53 + 2^24: no overflow
    if (e.file_offset < prev_end) {
      *error = Where(i, "extents must be sorted by fileOffset and must not overlap");
      return nullptr;
    }
    if (end > file_size) {
      *error = Where(i, "extends past fileSize");
      return nullptr;
    }
    if ((e.flags & kExtentHole) == 0) {
      if (e.source_size != e.length) {
        *error = Where(i, "sourceSize must equal length");
        return nullptr;
      }
      if (e.source_offset + e.source_size > kMaxSafeInteger) {
        *error = Where(i, "source range ends past 2^53");
        return nullptr;
      }
    }
    prev_end = end;
  }
  auto table = std::shared_ptr<ExtentTable>(new ExtentTable());
  table->file_size_ = file_size;
  table->extents_ = std::move(extents);
  return table;
}

size_t ExtentTable::FirstEndingAfter(uint64_t offset) const {
  auto it = std::upper_bound(
      extents_.begin(), extents_.end(), offset,
      [](uint64_t off, const Extent& e) { return off < e.file_offset + e.length; });
  return static_cast<size_t>(it - extents_.begin());
}

}  // namespace nydus::readpath
