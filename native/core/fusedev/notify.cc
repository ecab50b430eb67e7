#include "fusedev/notify.h"

#include <linux/fuse.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "common/log.h"

namespace nydus::fusedev {
namespace {

constexpr const char* kLog = "fusedev";
constexpr size_t kMaxName = 255;

static_assert(sizeof(fuse_out_header) == 16);
static_assert(sizeof(fuse_notify_inval_entry_out) == 16);
static_assert(sizeof(fuse_notify_inval_inode_out) == 24);

template <typename T>
std::vector<uint8_t> Message(int code, const T& body, std::string_view tail) {
  // The kernel requires the name's NUL terminator inside the message (fuse_notify_inval_entry).
  const size_t extra = tail.empty() ? 0 : tail.size() + 1;
  std::vector<uint8_t> m(sizeof(fuse_out_header) + sizeof(T) + extra, 0);
  fuse_out_header h{};
  h.len = static_cast<uint32_t>(m.size());
  h.error = code;
  h.unique = 0;
  std::memcpy(m.data(), &h, sizeof(h));
  std::memcpy(m.data() + sizeof(h), &body, sizeof(T));
  if (!tail.empty()) std::memcpy(m.data() + sizeof(h) + sizeof(T), tail.data(), tail.size());
  return m;
}

}  // namespace

std::vector<uint8_t> InvalEntryMessage(uint64_t parent, std::string_view name) {
  if (name.empty() || name.size() > kMaxName) return {};
  fuse_notify_inval_entry_out o{};
  o.parent = parent;
  o.namelen = static_cast<uint32_t>(name.size());
  return Message(FUSE_NOTIFY_INVAL_ENTRY, o, name);
}

std::vector<uint8_t> InvalInodeMessage(uint64_t ino, int64_t offset, int64_t length) {
  fuse_notify_inval_inode_out o{};
  o.ino = ino;
  o.off = offset;
  o.len = length;
  return Message(FUSE_NOTIFY_INVAL_INODE, o, {});
}

int WriteNotify(int fd, const std::vector<uint8_t>& message) {
  if (message.empty()) return -EINVAL;
  ssize_t n;
  do {
    n = ::write(fd, message.data(), message.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  return static_cast<size_t>(n) == message.size() ? 0 : -EIO;
}

void SendNotifyDetached(int fd, std::vector<uint8_t> message, std::string_view what) {
  std::thread([fd, m = std::move(message), w = std::string(what)] {
    const int rc = WriteNotify(fd, m);
    ::close(fd);
    if (rc != 0 && rc != -ENOENT) {
      NLOG_WARN(kLog, "FUSE notification %s failed: %s", w.c_str(), std::strerror(-rc));
    } else {
      NLOG_DEBUG(kLog, "FUSE notification %s sent", w.c_str());
    }
  }).detach();
}

}  // namespace nydus::fusedev
