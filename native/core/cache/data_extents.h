// Where a (sparse) blob cache file has data: the ranges SEEK_DATA/SEEK_HOLE report. A chunk
// whose ready bit is set but whose range has a hole lost its data (power loss before writeback,
// a truncated or replaced data file), so the bit must not be trusted.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace nydus::cache {

// Appends [start, end) pairs in file order to *out. Returns 0 or -errno.
int DataExtents(int fd, std::vector<std::pair<uint64_t, uint64_t>>* out);

}  // namespace nydus::cache
