// Extended attributes of a host path, read without following symlinks.
//
// The image builder needs every xattr of every source file with exact, binary-safe names and
// values (Node has no xattr API). Names come back in the kernel's listxattr order; callers sort
// them if they need a stable order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nydus::fs {

using XattrPair = std::pair<std::string, std::vector<uint8_t>>;

// Reads all extended attributes of `path` (lstat semantics: a symlink's own attributes).
// Returns 0 and fills `out`, or -errno. A filesystem without xattr support (ENOTSUP) yields 0
// with an empty list. Attributes that vanish between list and get are skipped, and a list or
// value that grows meanwhile is re-read, so concurrent changes never produce a torn result.
int ReadXattrs(const std::string& path, std::vector<XattrPair>* out);

// Sets one attribute on `path` itself (not a symlink's target). Returns 0 or -errno. Used to
// build test trees; the daemon never writes xattrs on the host.
int SetXattr(const std::string& path, const std::string& name, const std::vector<uint8_t>& value);

}  // namespace nydus::fs
