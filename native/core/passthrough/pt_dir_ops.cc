// Directories: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR. Entries come from getdents64
// on the handle's own descriptor; the FUSE offset of an entry is the host's d_off cookie, so a
// reader can resume anywhere the host file system can.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fuse/reply.h"
#include "passthrough/pt_call.h"
#include "transport/slices.h"

namespace nydus::passthrough {
namespace {

// One getdents64 batch per directory handle: enough for a page-sized READDIR reply and more.
constexpr size_t kDirentBatch = 16384;

// The fixed part of the kernel's linux_dirent64 (d_name follows).
struct HostDirent {
  uint64_t d_ino;
  int64_t d_off;
  uint16_t d_reclen;
  uint8_t d_type;
};
constexpr size_t kHostDirentName = 19;

bool IsDotOrDotDot(const char* name, size_t len) {
  return name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'));
}

}  // namespace

int PassthroughFs::DirOf(uint64_t nodeid, uint64_t fh, std::shared_ptr<OpenFile>* out) {
  if (fh != 0) return FileOf(fh, nodeid, out);
  // fh 0: zero-message opendir; a fresh stream per request, positioned by its offset.
  auto node = NodeOf(nodeid);
  if (node == nullptr) return -ESTALE;
  if (!node->is_dir()) return -ENOTDIR;
  int fd = ReopenInode(node->fd(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  *out = std::make_shared<OpenFile>(node, Fd(fd), O_RDONLY | O_DIRECTORY);
  return 0;
}

// OPENDIR: a directory stream for the caller (EACCES without read permission). ENOSYS under
// zero-message opendir.
int PassthroughFs::DoOpendir(Call& c) {
  if (no_opendir_.load(std::memory_order_relaxed)) return -ENOSYS;
  auto node = NodeOf(c.in.nodeid);
  if (node == nullptr) return -ESTALE;
  if (!node->is_dir()) return -ENOTDIR;
  int fd = ReopenInode(node->fd(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fd;
  fuse_open_out out{};
  out.fh = handles_.Insert(std::make_shared<OpenFile>(node, Fd(fd), O_RDONLY | O_DIRECTORY));
  out.open_flags = OpenReplyFlags(true);
  return Reply(c, &out, sizeof(out));
}

// READDIR: fuse_dirent records, never a partial one; an empty reply at the end.
int PassthroughFs::DoReaddir(Call& c) { return ReaddirCommon(c, false); }

// READDIRPLUS: fuse_direntplus records. Each entry but "." and ".." is looked up (one lookup
// reference each, taken only for entries that fit the reply); "." and ".." carry node id 0,
// which tells the kernel to list the name without creating or counting anything. An entry that
// vanished between getdents64 and the lookup is skipped.
int PassthroughFs::DoReaddirplus(Call& c) { return ReaddirCommon(c, true); }

int PassthroughFs::ReaddirCommon(Call& c, bool plus) {
  const fuse_read_in& r = c.a.a.read;
  std::shared_ptr<OpenFile> dir;
  int rc = DirOf(c.in.nodeid, r.fh, &dir);
  if (rc != 0) return rc;
  if (!dir->inode()->is_dir()) return -ENOTDIR;
  const size_t out_cap = c.req.out_bytes();
  if (out_cap < sizeof(fuse_out_header)) return -EIO;
  const size_t room =
      r.size < out_cap - sizeof(fuse_out_header) ? r.size : out_cap - sizeof(fuse_out_header);
  const transport::SliceWriter w(c.req.out());
  const std::shared_ptr<Inode>& node = dir->inode();
  const bool at_root = node->nodeid() == inodes_.root_id();

  std::lock_guard lock(dir->dir_mu);
  if (dir->dir_pos != r.offset) {
    if (r.offset > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
    if (lseek(dir->fd(), static_cast<off_t>(r.offset), SEEK_SET) < 0) return -errno;
    dir->dirents_pos = dir->dirents_len = 0;
    dir->dir_pos = r.offset;
  }
  size_t used = 0;
  while (true) {
    if (dir->dirents_pos >= dir->dirents_len) {
      dir->dirents.resize(kDirentBatch);
      ssize_t n = getdents64(dir->fd(), dir->dirents.data(), dir->dirents.size());
      if (n < 0) {
        if (used == 0) return -errno;
        break;
      }
      dir->dirents_pos = 0;
      dir->dirents_len = static_cast<size_t>(n);
      if (n == 0) break;
    }
    HostDirent d;
    const uint8_t* raw = dir->dirents.data() + dir->dirents_pos;
    std::memcpy(&d, raw, sizeof(d));
    const char* name = reinterpret_cast<const char*>(raw + kHostDirentName);
    const size_t name_len = strnlen(name, d.d_reclen - kHostDirentName);
    const size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    const size_t rec = FUSE_DIRENT_ALIGN(head + name_len);
    if (rec > room - used) break;

    fuse_entry_out e{};
    uint64_t ino = d.d_ino;
    if (at_root && name_len == 2 && IsDotOrDotDot(name, name_len)) ino = node->key().ino;
    if (plus && !IsDotOrDotDot(name, name_len)) {
      std::shared_ptr<Inode> child;
      struct statx st;
      rc = LookupChild(node, name, &child, &st);
      if (rc == -ENOENT) {
        dir->dirents_pos += d.d_reclen;
        dir->dir_pos = static_cast<uint64_t>(d.d_off);
        continue;
      }
      if (rc != 0) {
        if (used == 0) return rc;
        break;
      }
      FillEntry(child, st, &e);
      ino = e.attr.ino;
    } else if (plus) {
      e.attr.ino = ino;
      e.attr.mode = static_cast<uint32_t>(DTTOIF(d.d_type));
    }
    fuse_dirent fd{ino, static_cast<uint64_t>(d.d_off), static_cast<uint32_t>(name_len), d.d_type};
    size_t pos = sizeof(fuse_out_header) + used;
    if (plus) {
      w.Write(pos, &e, sizeof(e));
      pos += sizeof(e);
    }
    w.Write(pos, &fd, FUSE_NAME_OFFSET);
    w.Write(pos + FUSE_NAME_OFFSET, name, name_len);
    w.Zero(pos + FUSE_NAME_OFFSET + name_len, rec - head - name_len);
    used += rec;
    dir->dirents_pos += d.d_reclen;
    dir->dir_pos = static_cast<uint64_t>(d.d_off);
  }
  c.written = fuse::WriteHeader(c.req, c.in.unique, used);
  return 0;
}

// RELEASEDIR: the stream goes. Unknown handles are not an error (see RELEASE).
int PassthroughFs::DoReleasedir(Call& c) {
  std::shared_ptr<OpenFile> dir;
  if (c.a.a.release.fh != 0 && FileOf(c.a.a.release.fh, c.in.nodeid, &dir) == 0) {
    handles_.Remove(c.a.a.release.fh);
  }
  return ReplyOk(c);
}

// FSYNCDIR: fsync / fdatasync of the directory.
int PassthroughFs::DoFsyncdir(Call& c) {
  std::shared_ptr<OpenFile> dir;
  int rc = DirOf(c.in.nodeid, c.a.a.fsync.fh, &dir);
  if (rc != 0) return rc;
  const bool data_only = (c.a.a.fsync.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0;
  if ((data_only ? fdatasync(dir->fd()) : fsync(dir->fd())) != 0) return -errno;
  return ReplyOk(c);
}

}  // namespace nydus::passthrough
