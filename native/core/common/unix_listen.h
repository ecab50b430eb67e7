// A listening AF_UNIX stream socket bound to a path: the vhost-user backend's own socket, and the
// one nydusd opens early at start (listening before the image is mounted; accept() comes once the
// backend runs, so a frontend that connects early waits in the backlog, as with a slow accept).
#pragma once

#include <string>

#include "common/unique_fd.h"

namespace nydus {

// socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC), bind(path), listen(backlog) into *out. A socket
// file already at `path` is taken as stale and removed (callers that must not replace a live
// listener probe it first); anything else there is an error. On failure returns -errno with the
// reason in *error, and a file the bind created is removed again.
int ListenUnixSocket(const std::string& path, int backlog, UniqueFd* out, std::string* error);

}  // namespace nydus
