#include "common/unix_listen.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

namespace nydus {
namespace {

std::string Errno(const std::string& what, int err) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s: %s", what.c_str(), strerror(err));
  return buf;
}

}  // namespace

int ListenUnixSocket(const std::string& path, int backlog, UniqueFd* out, std::string* error) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    *error = "vhost-user socket path is empty or longer than " +
             std::to_string(sizeof(addr.sun_path) - 1) + " bytes: " + path;
    return -ENAMETOOLONG;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    // Remove a stale socket from an earlier run, never anything else.
    if (!S_ISSOCK(st.st_mode)) {
      *error = "vhost-user socket path exists and is not a socket: " + path;
      return -EEXIST;
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    int err = errno;
    *error = Errno("socket", err);
    return -err;
  }
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    *error = Errno("bind " + path, err);
    return -err;
  }
  if (::listen(fd.get(), backlog) != 0) {
    int err = errno;
    *error = Errno("listen", err);
    ::unlink(path.c_str());
    return -err;
  }
  *out = std::move(fd);
  return 0;
}

}  // namespace nydus
