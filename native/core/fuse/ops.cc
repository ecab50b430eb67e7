#include "fuse/ops.h"

#include "fuse/abi.h"

namespace nydus::fuse {
namespace {

constexpr OpSyntax kNoArgs{0, 0, ArgTail::kNone};
constexpr OpSyntax kOpaque{0, 0, ArgTail::kOpaque};

template <typename T>
constexpr OpSyntax Fixed(ArgTail tail = ArgTail::kNone) {
  return OpSyntax{sizeof(T), sizeof(T), tail};
}

struct Table {
  OpInfo rows[kOpcodeTableSize] = {};

  constexpr Table() {
    auto set = [this](uint32_t op, const char* name, OpSyntax syntax, Route route) {
      rows[op] = OpInfo{name, syntax, route};
    };
    set(FUSE_LOOKUP, "LOOKUP", OpSyntax{0, 0, ArgTail::kName}, Route::kUpcall);
    set(FUSE_FORGET, "FORGET", Fixed<fuse_forget_in>(), Route::kForget);
    set(FUSE_GETATTR, "GETATTR", Fixed<fuse_getattr_in>(), Route::kUpcall);
    set(FUSE_SETATTR, "SETATTR", kOpaque, Route::kWritable);
    set(FUSE_READLINK, "READLINK", kNoArgs, Route::kUpcall);
    set(FUSE_SYMLINK, "SYMLINK", kOpaque, Route::kWritable);
    set(FUSE_MKNOD, "MKNOD", kOpaque, Route::kWritable);
    set(FUSE_MKDIR, "MKDIR", kOpaque, Route::kWritable);
    set(FUSE_UNLINK, "UNLINK", kOpaque, Route::kWritable);
    set(FUSE_RMDIR, "RMDIR", kOpaque, Route::kWritable);
    set(FUSE_RENAME, "RENAME", kOpaque, Route::kWritable);
    set(FUSE_LINK, "LINK", kOpaque, Route::kWritable);
    set(FUSE_OPEN, "OPEN", Fixed<fuse_open_in>(), Route::kOpen);
    set(FUSE_READ, "READ", Fixed<fuse_read_in>(), Route::kRead);
    set(FUSE_WRITE, "WRITE", kOpaque, Route::kWritable);
    set(FUSE_STATFS, "STATFS", kNoArgs, Route::kUpcall);
    set(FUSE_RELEASE, "RELEASE", Fixed<fuse_release_in>(), Route::kRelease);
    set(FUSE_FSYNC, "FSYNC", Fixed<fuse_fsync_in>(), Route::kUpcall);
    set(FUSE_SETXATTR, "SETXATTR", kOpaque, Route::kWritable);
    set(FUSE_GETXATTR, "GETXATTR", Fixed<fuse_getxattr_in>(ArgTail::kName), Route::kUpcall);
    set(FUSE_LISTXATTR, "LISTXATTR", Fixed<fuse_getxattr_in>(), Route::kUpcall);
    set(FUSE_REMOVEXATTR, "REMOVEXATTR", kOpaque, Route::kWritable);
    set(FUSE_FLUSH, "FLUSH", Fixed<fuse_flush_in>(), Route::kUpcall);
    // fuse_init_in grew from 16 to 64 bytes in 7.36; older kernels send the short form.
    set(FUSE_INIT, "INIT", OpSyntax{sizeof(fuse_init_in), 16, ArgTail::kNone}, Route::kInit);
    set(FUSE_OPENDIR, "OPENDIR", Fixed<fuse_open_in>(), Route::kUpcall);
    set(FUSE_READDIR, "READDIR", Fixed<fuse_read_in>(), Route::kUpcall);
    set(FUSE_RELEASEDIR, "RELEASEDIR", Fixed<fuse_release_in>(), Route::kUpcall);
    set(FUSE_FSYNCDIR, "FSYNCDIR", Fixed<fuse_fsync_in>(), Route::kUpcall);
    set(FUSE_GETLK, "GETLK", kOpaque, Route::kEnosys);
    set(FUSE_SETLK, "SETLK", kOpaque, Route::kEnosys);
    set(FUSE_SETLKW, "SETLKW", kOpaque, Route::kEnosys);
    set(FUSE_ACCESS, "ACCESS", Fixed<fuse_access_in>(), Route::kUpcall);
    set(FUSE_CREATE, "CREATE", kOpaque, Route::kWritable);
    set(FUSE_INTERRUPT, "INTERRUPT", Fixed<fuse_interrupt_in>(), Route::kInterrupt);
    set(FUSE_BMAP, "BMAP", kOpaque, Route::kEnosys);
    set(FUSE_DESTROY, "DESTROY", kNoArgs, Route::kDestroy);
    set(FUSE_IOCTL, "IOCTL", kOpaque, Route::kEnosys);
    set(FUSE_POLL, "POLL", kOpaque, Route::kEnosys);
    set(FUSE_NOTIFY_REPLY, "NOTIFY_REPLY", kOpaque, Route::kNoReply);
    set(FUSE_BATCH_FORGET, "BATCH_FORGET", Fixed<fuse_batch_forget_in>(ArgTail::kForgets),
        Route::kBatchForget);
    set(FUSE_FALLOCATE, "FALLOCATE", kOpaque, Route::kWritable);
    set(FUSE_READDIRPLUS, "READDIRPLUS", Fixed<fuse_read_in>(), Route::kUpcall);
    set(FUSE_RENAME2, "RENAME2", kOpaque, Route::kWritable);
    set(FUSE_LSEEK, "LSEEK", Fixed<fuse_lseek_in>(), Route::kUpcall);
    set(FUSE_COPY_FILE_RANGE, "COPY_FILE_RANGE", kOpaque, Route::kWritable);
    set(FUSE_SETUPMAPPING, "SETUPMAPPING", kOpaque, Route::kEnosys);
    set(FUSE_REMOVEMAPPING, "REMOVEMAPPING", kOpaque, Route::kEnosys);
    set(FUSE_SYNCFS, "SYNCFS", Fixed<fuse_syncfs_in>(), Route::kSyncfs);
    set(FUSE_TMPFILE, "TMPFILE", kOpaque, Route::kWritable);
  }
};

constexpr Table kTable;

}  // namespace

const OpInfo* OpInfoOf(uint32_t opcode) {
  if (opcode >= kOpcodeTableSize || kTable.rows[opcode].name == nullptr) return nullptr;
  return &kTable.rows[opcode];
}

const char* OpName(uint32_t opcode) {
  const OpInfo* info = OpInfoOf(opcode);
  return info != nullptr ? info->name : "UNKNOWN";
}

}  // namespace nydus::fuse
