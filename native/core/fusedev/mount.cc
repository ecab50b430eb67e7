#include "fusedev/mount.h"

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/log.h"

extern char** environ;

namespace nydus::fusedev {
namespace {

constexpr const char* kLog = "fusedev";

std::string Errno(int err) { return std::strerror(err < 0 ? -err : err); }

// Runs fusermount3 with `args`; when `comm_fd` >= 0 it is passed as _FUSE_COMMFD. Returns the
// exit status (0 = success) or -errno when it could not be started.
int RunFusermount(const std::vector<std::string>& args, int comm_fd, std::string* error) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>("fusermount3"));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "_FUSE_COMMFD=", 13) != 0) env_store.emplace_back(*e);
  }
  if (comm_fd >= 0) env_store.push_back("_FUSE_COMMFD=" + std::to_string(comm_fd));
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // dup2 onto itself clears FD_CLOEXEC in the child only (glibc >= 2.29), so no other process
  // the parent spawns concurrently inherits the socket.
  if (comm_fd >= 0) posix_spawn_file_actions_adddup2(&fa, comm_fd, comm_fd);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "fusermount3", &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *error = "cannot run fusermount3: " + Errno(rc);
    return -rc;
  }
  if (comm_fd >= 0) return static_cast<int>(pid);  // caller receives the fd, then reaps
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int ReceiveFd(int sock) {
  char byte;
  struct iovec iov {
    &byte, 1
  };
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return n < 0 ? -errno : -ECONNRESET;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
      return fd;
    }
  }
  return -EPROTO;
}

int MountWithFusermount(const MountOptions& o, MountResult* result, std::string* error) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = "socketpair for fusermount3: " + Errno(errno);
    return -errno;
  }
  std::string opts = std::string(o.read_only ? "ro" : "rw") + ",fsname=" + o.fsname +
                     ",subtype=" + o.subtype + ",max_read=" + std::to_string(o.max_read);
  if (o.allow_other) opts += ",allow_other";
  if (o.default_permissions) opts += ",default_permissions";
  int pid = RunFusermount({"-o", opts, "--", o.mountpoint}, sv[1], error);
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    return pid;
  }
  int fd = ReceiveFd(sv[0]);
  ::close(sv[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (fd < 0) {
    *error = "fusermount3 did not mount " + o.mountpoint + " (exit status " +
             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")";
    return -EPERM;
  }
  result->fd = fd;
  result->via_fusermount = true;
  return 0;
}

}  // namespace

int Mount(const MountOptions& o, MountResult* result, std::string* error) {
  struct stat st {};
  if (o.mountpoint.empty() || ::stat(o.mountpoint.c_str(), &st) != 0) {
    int err = o.mountpoint.empty() ? ENOENT : errno;
    *error = "mountpoint " + o.mountpoint + ": " + Errno(err);
    return -err;
  }
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
    *error = "mountpoint " + o.mountpoint + " is neither a directory nor a regular file";
    return -ENOTDIR;
  }
  if (o.force_fusermount) return MountWithFusermount(o, result, error);
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    *error = "cannot open /dev/fuse: " + Errno(err) + " (is the fuse module loaded?)";
    return -err;
  }
  char data[512];
  std::snprintf(data, sizeof(data), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,max_read=%u%s%s", fd,
                st.st_mode & S_IFMT, getuid(), getgid(), o.max_read,
                o.allow_other ? ",allow_other" : "",
                o.default_permissions ? ",default_permissions" : "");
  const std::string type = o.subtype.empty() ? "fuse" : "fuse." + o.subtype;
  unsigned long flags = MS_NOSUID | MS_NODEV | (o.read_only ? MS_RDONLY : 0);
  if (::mount(o.fsname.c_str(), o.mountpoint.c_str(), type.c_str(), flags, data) == 0) {
    result->fd = fd;
    result->via_fusermount = false;
    return 0;
  }
  int err = errno;
  ::close(fd);
  if ((err == EPERM || err == EACCES) && o.allow_fusermount) {
    NLOG_INFO(kLog, "mount(2) of %s not permitted; trying fusermount3", o.mountpoint.c_str());
    return MountWithFusermount(o, result, error);
  }
  *error = "mount " + o.mountpoint + ": " + Errno(err);
  return -err;
}

int Unmount(const std::string& mountpoint, bool via_fusermount, std::string* error) {
  if (::umount2(mountpoint.c_str(), MNT_DETACH) == 0) return 0;
  int err = errno;
  if (err == EINVAL || err == ENOENT) return 0;  // not (or no longer) mounted
  if (err == EPERM || via_fusermount) {
    int rc = RunFusermount({"-u", "-z", "--", mountpoint}, -1, error);
    if (rc == 0) return 0;
    if (rc > 0)
      *error =
          "fusermount3 -u -z " + mountpoint + " failed (exit status " + std::to_string(rc) + ")";
    return rc < 0 ? rc : -EPERM;
  }
  *error = "umount " + mountpoint + ": " + Errno(err);
  return -err;
}

bool IsFuseMountPoint(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return false;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // Fields: id parent major:minor root mountpoint options ... - fstype source superopts
    std::istringstream ls(line);
    std::string id, parent, dev, root, mnt;
    ls >> id >> parent >> dev >> root >> mnt;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype;
    tail >> fstype;
    if (mnt == real && fstype.rfind("fuse", 0) == 0) return true;
  }
  return false;
}

}  // namespace nydus::fusedev
