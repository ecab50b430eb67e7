// Mounting and unmounting a FUSE filesystem without libfuse (vhost-user-fs.md §5.1).
//
// Mount() opens /dev/fuse and mounts it with mount(2) (`fd=`, `rootmode=`, `user_id=`,
// `group_id=`, optional `allow_other` and `default_permissions`, `max_read=`; MS_NOSUID |
// MS_NODEV, plus MS_RDONLY for the read-only image). When the kernel refuses (EPERM: not root)
// it runs `fusermount3`, which mounts for us and passes the /dev/fuse fd back over a socket
// (the `_FUSE_COMMFD` protocol). Unmount() detaches lazily (umount2 MNT_DETACH), falling back to
// `fusermount3 -u -z`; callers close the session fd first so the kernel has aborted the
// connection and no request can wait on us while the mount goes away.
#pragma once

#include <cstdint>
#include <string>

namespace nydus::fusedev {

struct MountOptions {
  std::string mountpoint;
  std::string fsname = "nydus";   // shown as the source in /proc/mounts
  std::string subtype = "nydus";  // filesystem type "fuse.<subtype>"
  bool allow_other = false;
  bool default_permissions = true;
  bool read_only = true;
  uint32_t max_read = 1u << 20;
  // Try fusermount3 when mount(2) is not permitted.
  bool allow_fusermount = true;
  // Use fusermount3 even when mount(2) would work (tests; setuid-helper deployments).
  bool force_fusermount = false;
};

struct MountResult {
  int fd = -1;                  // the session's /dev/fuse fd (O_CLOEXEC)
  bool via_fusermount = false;  // unmount through fusermount3 too
};

// Returns 0 or -errno with a one-line *error naming the mountpoint and the failing step.
int Mount(const MountOptions& options, MountResult* result, std::string* error);
// Lazily unmounts. Not mounted (EINVAL/ENOENT) counts as success.
int Unmount(const std::string& mountpoint, bool via_fusermount, std::string* error);
// True when `path` is currently a mount point of a FUSE filesystem (reads /proc/self/mountinfo).
bool IsFuseMountPoint(const std::string& path);

}  // namespace nydus::fusedev
