#include "cache/fill.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace nydus::cache {
namespace {

constexpr uint64_t kMaxSafe = uint64_t{1} << 53;

// Writes [buf, buf+len) at `offset`, retrying short writes and EINTR. 0 or -errno.
int WriteAll(int fd, const uint8_t* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

std::string ValidatePlan(const std::vector<FillChunk>& chunks, size_t src_len) {
  if (chunks.size() > kMaxFillChunks) return "too many chunks in one fill";
  for (size_t i = 0; i < chunks.size(); ++i) {
    const FillChunk& c = chunks[i];
    const std::string at = "chunk " + std::to_string(i) + ": ";
    if (c.size == 0 || c.size > kMaxFillChunk) return at + "invalid uncompressed size";
    if (c.src_size == 0 || c.src_size > kMaxFillChunk + (1u << 16))
      return at + "invalid stored size";
    if (!c.compressed && c.src_size != c.size) return at + "stored and uncompressed sizes differ";
    if (c.src_offset > src_len || c.src_size > src_len - c.src_offset) {
      return at + "stored range is outside the fetched bytes";
    }
    if (c.file_offset >= kMaxSafe || c.size > kMaxSafe - c.file_offset) {
      return at + "file offset out of range";
    }
  }
  return {};
}

std::vector<int> DecodeAndWrite(codec::Algo algo, const uint8_t* src, size_t src_len,
                                const std::vector<FillChunk>& chunks, int fd) {
  std::vector<int> status(chunks.size(), 0);
  size_t i = 0;
  while (i < chunks.size()) {
    // A run: chunks whose file ranges follow each other in plan order.
    size_t j = i + 1;
    uint64_t end = chunks[i].file_offset + chunks[i].size;
    while (j < chunks.size() && chunks[j].file_offset == end &&
           end - chunks[i].file_offset < (uint64_t{64} << 20)) {
      end += chunks[j].size;
      ++j;
    }
    const uint64_t base = chunks[i].file_offset;
    std::unique_ptr<uint8_t[]> run(new uint8_t[end - base]);
    for (size_t k = i; k < j; ++k) {
      const FillChunk& c = chunks[k];
      uint8_t* dst = run.get() + (c.file_offset - base);
      if (c.src_offset > src_len || c.src_size > src_len - c.src_offset) {
        status[k] = -EINVAL;  // ValidatePlan was skipped: refuse rather than read outside
        continue;
      }
      if (!c.compressed) {
        std::memcpy(dst, src + c.src_offset, c.size);
      } else if (codec::Decompress(algo, src + c.src_offset, c.src_size, dst, c.size) !=
                 static_cast<ssize_t>(c.size)) {
        status[k] = -EBADMSG;
      }
    }
    // One pwrite per stretch of good chunks: a bad chunk is never written.
    size_t k = i;
    while (k < j) {
      if (status[k] != 0) {
        ++k;
        continue;
      }
      size_t m = k + 1;
      while (m < j && status[m] == 0) ++m;
      const uint64_t from = chunks[k].file_offset;
      const uint64_t to = chunks[m - 1].file_offset + chunks[m - 1].size;
      const int rc = WriteAll(fd, run.get() + (from - base), to - from, from);
      if (rc != 0) {
        for (size_t q = k; q < m; ++q) status[q] = rc;
      }
      k = m;
    }
    i = j;
  }
  return status;
}

}  // namespace nydus::cache
