#include "fs/xattr.h"

#include <sys/types.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

namespace nydus::fs {
namespace {

// Bounded retries for the size-query/read race (ERANGE when the list or value grew).
constexpr int kMaxRetries = 8;

int ListNames(const std::string& path, std::vector<char>* names) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    ssize_t need = llistxattr(path.c_str(), nullptr, 0);
    if (need < 0) return errno == ENOTSUP ? 0 : -errno;
    names->resize(static_cast<size_t>(need));
    if (need == 0) return 0;
    ssize_t got = llistxattr(path.c_str(), names->data(), names->size());
    if (got >= 0) {
      names->resize(static_cast<size_t>(got));
      return 0;
    }
    if (errno != ERANGE) return -errno;
  }
  return -ERANGE;
}

// Returns 1 with the value, 0 when the attribute disappeared, or -errno.
int GetValue(const std::string& path, const char* name, std::vector<uint8_t>* value) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    ssize_t need = lgetxattr(path.c_str(), name, nullptr, 0);
    if (need < 0) return errno == ENODATA ? 0 : -errno;
    value->resize(static_cast<size_t>(need));
    if (need == 0) return 1;
    ssize_t got = lgetxattr(path.c_str(), name, value->data(), value->size());
    if (got >= 0) {
      value->resize(static_cast<size_t>(got));
      return 1;
    }
    if (errno == ENODATA) return 0;
    if (errno != ERANGE) return -errno;
  }
  return -ERANGE;
}

}  // namespace

int ReadXattrs(const std::string& path, std::vector<XattrPair>* out) {
  out->clear();
  std::vector<char> names;
  int rc = ListNames(path, &names);
  if (rc < 0) return rc;
  size_t pos = 0;
  while (pos < names.size()) {
    // The list is a sequence of NUL-terminated names; a missing final NUL ends it.
    const char* start = names.data() + pos;
    size_t len = strnlen(start, names.size() - pos);
    if (pos + len >= names.size()) break;
    std::string name(start, len);
    pos += len + 1;
    if (name.empty()) continue;
    std::vector<uint8_t> value;
    rc = GetValue(path, name.c_str(), &value);
    if (rc < 0) return rc;
    if (rc == 0) continue;
    out->emplace_back(std::move(name), std::move(value));
  }
  return 0;
}

int SetXattr(const std::string& path, const std::string& name, const std::vector<uint8_t>& value) {
  if (lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) return -errno;
  return 0;
}

}  // namespace nydus::fs
