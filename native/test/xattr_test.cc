#include "fs/xattr.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "testing.h"

namespace {

bool MakeFile(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  close(fd);
  return true;
}

}  // namespace

NTEST(Xattr, ReadsBinaryValuesOfUserNamespace) {
  nydus::testing::TempDir dir;
  std::string file = dir.File("f");
  NASSERT_TRUE(MakeFile(file));
  const uint8_t binary[] = {0, 1, 2, 0xff, 0};
  if (lsetxattr(file.c_str(), "user.bin", binary, sizeof(binary), 0) != 0) {
    // tmpfs without user xattrs: nothing to check on this machine.
    NASSERT_TRUE(errno == ENOTSUP || errno == EPERM);
    return;
  }
  NASSERT_EQ(lsetxattr(file.c_str(), "user.empty", "", 0, 0), 0);
  std::vector<nydus::fs::XattrPair> pairs;
  NASSERT_EQ(nydus::fs::ReadXattrs(file, &pairs), 0);
  std::sort(pairs.begin(), pairs.end());
  NASSERT_EQ(pairs.size(), size_t{2});
  NEXPECT_EQ(pairs[0].first, std::string("user.bin"));
  NEXPECT_TRUE(pairs[0].second == std::vector<uint8_t>(binary, binary + sizeof(binary)));
  NEXPECT_EQ(pairs[1].first, std::string("user.empty"));
  NEXPECT_TRUE(pairs[1].second.empty());
}

NTEST(Xattr, DoesNotFollowSymlinks) {
  nydus::testing::TempDir dir;
  std::string link = dir.File("l");
  NASSERT_EQ(symlink("/nonexistent-target", link.c_str()), 0);
  std::vector<nydus::fs::XattrPair> pairs;
  // lstat semantics: a dangling symlink still has (no) attributes of its own.
  NEXPECT_EQ(nydus::fs::ReadXattrs(link, &pairs), 0);
}

NTEST(Xattr, MissingPathIsAnError) {
  nydus::testing::TempDir dir;
  std::vector<nydus::fs::XattrPair> pairs;
  NEXPECT_EQ(nydus::fs::ReadXattrs(dir.File("missing"), &pairs), -ENOENT);
}
