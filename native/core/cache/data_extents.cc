#include "cache/data_extents.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace nydus::cache {

int DataExtents(int fd, std::vector<std::pair<uint64_t, uint64_t>>* out) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return -errno;
  const off_t size = st.st_size;
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole up to the end
      return -errno;
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return -errno;
    if (hole <= data) return -EIO;  // cannot happen: guards the loop
    out->emplace_back(static_cast<uint64_t>(data), static_cast<uint64_t>(hole));
    pos = hole;
  }
  return 0;
}

}  // namespace nydus::cache
