// FUSE notifications for /dev/fuse (linux/fuse.h "notify" messages, vhost-user-fs.md §5.5): a
// message the daemon writes unsolicited, with fuse_out_header.unique == 0 and .error == the
// notify code, that tells the kernel to drop what it cached. Used when a filesystem is mounted
// into or unmounted from the pseudo root at run time, so that `ls` and path walks on the host
// see the change instead of dentries the kernel was allowed to keep for hours.
//
// Writing a notification can block: FUSE_NOTIFY_INVAL_ENTRY takes the parent directory's inode
// lock, which a LOOKUP in that directory holds while it waits for our reply. Never write one on
// a thread that replies to requests, nor on the thread that answers upcalls (the JS thread):
// SendNotifyDetached writes on a thread of its own.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace nydus::fusedev {

// FUSE_NOTIFY_INVAL_ENTRY: forget the dentry `name` in directory `parent` (and, for a directory,
// everything below it). Empty when the name is empty or longer than 255 bytes.
std::vector<uint8_t> InvalEntryMessage(uint64_t parent, std::string_view name);
// FUSE_NOTIFY_INVAL_INODE: forget the attributes of `ino` and its cached pages in
// [offset, offset + length) (length 0: to the end; offset < 0: attributes only).
std::vector<uint8_t> InvalInodeMessage(uint64_t ino, int64_t offset, int64_t length);

// Writes one message to a /dev/fuse fd. 0, or -errno (ENOENT: the kernel had nothing cached
// for it, which is not an error for an invalidation).
int WriteNotify(int fd, const std::vector<uint8_t>& message);

// Takes ownership of `fd` (a dup of the session fd), writes `message` on a detached thread and
// closes the fd; failures other than ENOENT are logged. `what` names the notification in logs.
void SendNotifyDetached(int fd, std::vector<uint8_t> message, std::string_view what);

}  // namespace nydus::fusedev
