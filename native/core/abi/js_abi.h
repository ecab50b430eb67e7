// Every number the TypeScript side and the core share, defined once: the slots of the numeric
// records that cross the binding (Float64Array layouts), the limits both sides enforce, the codes
// of upcall kinds and flags, and the names of every statistic.
//
// Each list below is an X-macro. This header turns the lists into the C++ constants the core
// uses (abi::UpcallRecord::kNodeid, abi::kMaxBlobSlots, ...); native/binding/abi_binding.cc
// turns the same lists into abiInfo(), which TypeScript reads once at load
// (src/native/abi.ts), and into the stats objects. TypeScript spells only the names (to type
// them); test/unit/native-abi.test.ts fails when a name or a value differs between the two.
//
// To add a field, limit, code or statistic: add it to its list here and its name to
// src/native/abi.ts. Records are positional: a field's slot is its place in the list.
//
// Leaf folder: includes nothing from the rest of the core.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

// clang-format off
// ---- Records: F(CppName, "jsName"), one Float64Array slot each, in slot order.

// An upcall (FuseSession::DrainUpcalls -> the handler). a0..a3 depend on the kind; see
// fuse/upcall.h for the table.
#define NYDUS_ABI_UPCALL_FIELDS(F) \
  F(Token, "token")                \
  F(Opcode, "opcode")              \
  F(Nodeid, "nodeid")              \
  F(Uid, "uid")                    \
  F(Gid, "gid")                    \
  F(Pid, "pid")                    \
  F(A0, "a0")                      \
  F(A1, "a1")                      \
  F(A2, "a2")                      \
  F(A3, "a3")                      \
  F(ByteOffset, "byteOffset")      \
  F(ByteLength, "byteLength")

// The attributes part of an entry (struct fuse_attr).
#define NYDUS_ABI_ATTR_FIELDS(F) \
  F(Ino, "ino")                  \
  F(Size, "size")                \
  F(Blocks, "blocks")            \
  F(Atime, "atime")              \
  F(AtimeNsec, "atimeNsec")      \
  F(Mtime, "mtime")              \
  F(MtimeNsec, "mtimeNsec")      \
  F(Ctime, "ctime")              \
  F(CtimeNsec, "ctimeNsec")      \
  F(Mode, "mode")                \
  F(Nlink, "nlink")              \
  F(Uid, "uid")                  \
  F(Gid, "gid")                  \
  F(Rdev, "rdev")                \
  F(Blksize, "blksize")          \
  F(Flags, "flags")

// LOOKUP answers and READDIRPLUS entries; GETATTR answers use the same record (only attrValid
// and the attributes are read). Valid times are seconds, possibly fractional.
#define NYDUS_ABI_ENTRY_FIELDS(F) \
  F(Nodeid, "nodeid")             \
  F(Generation, "generation")     \
  F(EntryValid, "entryValid")     \
  F(AttrValid, "attrValid")       \
  NYDUS_ABI_ATTR_FIELDS(F)

// READDIR(PLUS) records: the entry (plain READDIR reads only ino and mode), then the cookie of
// the next entry, the name's place in the names buffer, and d_type (-1: derive from mode).
#define NYDUS_ABI_DIRENT_FIELDS(F) \
  NYDUS_ABI_ENTRY_FIELDS(F)        \
  F(Off, "off")                    \
  F(NameOffset, "nameOffset")      \
  F(NameLength, "nameLength")      \
  F(Type, "type")

#define NYDUS_ABI_STATFS_FIELDS(F) \
  F(Blocks, "blocks")              \
  F(Bfree, "bfree")                \
  F(Bavail, "bavail")              \
  F(Files, "files")                \
  F(Ffree, "ffree")                \
  F(Bsize, "bsize")                \
  F(Namelen, "namelen")            \
  F(Frsize, "frsize")

// One extent of a READ fast-path table (readpath/extent_table.h).
#define NYDUS_ABI_EXTENT_FIELDS(F) \
  F(FileOffset, "fileOffset")      \
  F(Length, "length")              \
  F(BlobSlot, "blobSlot")          \
  F(ChunkIndex, "chunkIndex")      \
  F(SourceOffset, "sourceOffset")  \
  F(SourceSize, "sourceSize")      \
  F(Flags, "flags")

// One chunk of a cache fill plan (fill; cache/fill.h): where its stored bytes are in the
// fetched range, where it goes in the cache file, its size there, whether it is compressed, its
// chunk index (ready bit), whether its digest (32 bytes at i*32 of the digests) is checked, and
// its compressed offset in the blob (where a compressed cache keeps it).
#define NYDUS_ABI_FILL_FIELDS(F)          \
  F(SrcOffset, "srcOffset")               \
  F(StoredSize, "storedSize")             \
  F(FileOffset, "fileOffset")             \
  F(Size, "size")                         \
  F(Compressed, "compressed")             \
  F(Index, "index")                       \
  F(HasDigest, "hasDigest")               \
  F(CompressedOffset, "compressedOffset")

// Where one chunk is in a compressed or encrypted cache file (learnChunks; cache/cache_layout.h);
// its digest travels beside the records (32 bytes per record).
#define NYDUS_ABI_LAYOUT_CHUNK_FIELDS(F)      \
  F(Index, "index")                           \
  F(UncompressedOffset, "uncompressedOffset") \
  F(CompressedOffset, "compressedOffset")     \
  F(UncompressedSize, "uncompressedSize")     \
  F(CompressedSize, "compressedSize")         \
  F(Compressed, "compressed")

// R(CppName, "jsName", FIELD_LIST): abi::<CppName>Record::k<Field> is a slot,
// abi::<CppName>Record::kStride the record size.
#define NYDUS_ABI_RECORDS(R)                   \
  R(Upcall, "upcall", NYDUS_ABI_UPCALL_FIELDS) \
  R(Entry, "entry", NYDUS_ABI_ENTRY_FIELDS)    \
  R(Dirent, "dirent", NYDUS_ABI_DIRENT_FIELDS) \
  R(Statfs, "statfs", NYDUS_ABI_STATFS_FIELDS) \
  R(Extent, "extent", NYDUS_ABI_EXTENT_FIELDS) \
  R(Fill, "fill", NYDUS_ABI_FILL_FIELDS)                       \
  R(LayoutChunk, "layoutChunk", NYDUS_ABI_LAYOUT_CHUNK_FIELDS)

// ---- The operations the per-mount counters count (upstream FsIoStats StatsFop, in its order):
// O(FUSE opcode, "name"). A counter array of kFopKinds entries is indexed by place in this list.
#define NYDUS_ABI_FOP_KINDS(O)         \
  O(FUSE_GETATTR, "getattr")           \
  O(FUSE_READLINK, "readlink")         \
  O(FUSE_OPEN, "open")                 \
  O(FUSE_RELEASE, "release")           \
  O(FUSE_READ, "read")                 \
  O(FUSE_STATFS, "statfs")             \
  O(FUSE_GETXATTR, "getxattr")         \
  O(FUSE_LISTXATTR, "listxattr")       \
  O(FUSE_OPENDIR, "opendir")           \
  O(FUSE_LOOKUP, "lookup")             \
  O(FUSE_READDIR, "readdir")           \
  O(FUSE_READDIRPLUS, "readdirplus")   \
  O(FUSE_ACCESS, "access")             \
  O(FUSE_FORGET, "forget")             \
  O(FUSE_BATCH_FORGET, "batch_forget")
#define NYDUS_ABI_COUNT_ONE_(op, js) +1

// ---- Limits both sides enforce: L(CppName, "jsName", type, value).
#define NYDUS_ABI_LIMITS(L)                                                                      \
  /* FUSE protocol minor we speak (kernel protocol 7.x). */                                      \
  L(ProtocolMinor, "protocolMinor", uint32_t, FUSE_KERNEL_MINOR_VERSION)                         \
  /* Opcodes below this have a row in the opcode table (handler op bitmaps have this length). */ \
  L(OpcodeTableSize, "opcodeTableSize", uint32_t, FUSE_TMPFILE + 1)                              \
  /* INIT max_pages, and the biggest READ / READDIR / xattr payload a reply carries. */          \
  L(MaxPages, "maxPages", uint32_t, 256)                                                         \
  L(MaxReplyPayload, "maxReplyPayload", size_t, size_t{256} * 4096)                              \
  /* fuse_out_header.error is 0 or -errno with errno in [1, 511]. */                             \
  L(MaxErrno, "maxErrno", int, 511)                                                              \
  /* Bytes of a READDIR / READDIRPLUS record before its name (records are 8-byte aligned). */    \
  L(DirentHeader, "direntHeader", size_t, FUSE_NAME_OFFSET)                                      \
  L(DirentPlusHeader, "direntPlusHeader", size_t, FUSE_NAME_OFFSET_DIRENTPLUS)                   \
  /* Extent tables: chunks are at most 16 MiB; blob slots and extents per table are bounded. */  \
  L(MaxChunk, "maxChunk", uint32_t, 16u << 20)                                                   \
  L(MaxBlobSlots, "maxBlobSlots", uint32_t, 4096)                                                \
  L(MaxExtents, "maxExtents", size_t, size_t{1} << 24)                                           \
  /* Upcall arena and reply scratch lent at session construction: at least this big. */          \
  L(MinUpcallRecords, "minUpcallRecords", size_t, 16)                                            \
  L(MinUpcallBytes, "minUpcallBytes", size_t, 65536)                                             \
  /* Transports: /dev/fuse worker threads, vhost-user queues, loopback reply space. */           \
  L(MaxFuseThreads, "maxFuseThreads", uint32_t, 64)                                              \
  L(MaxRequestQueues, "maxRequestQueues", uint32_t, 254)                                         \
  L(MaxQueueSize, "maxQueueSize", uint32_t, 32768)                                               \
  L(MaxInjectReply, "maxInjectReply", uint32_t, 8u << 20)                                        \
  /* The chunk-ready map file's header (cache/chunk_map.h). */                                   \
  L(ChunkMapHeaderSize, "chunkMapHeaderSize", size_t, 4096)                                      \
  /* Per-mount operation counters (fuse/fop_counters.h): the operations counted, upstream's    \
     READ size and latency buckets, and the node-id slots counted apart (mounts + the root). */ \
  L(FopKinds, "fopKinds", size_t, 0 NYDUS_ABI_FOP_KINDS(NYDUS_ABI_COUNT_ONE_))                   \
  L(ReadSizeBuckets, "readSizeBuckets", size_t, 8)                                               \
  L(ReadLatencyBuckets, "readLatencyBuckets", size_t, 8)                                         \
  L(MaxFopSlots, "maxFopSlots", uint32_t, 256)

// ---- Codes: C(CppName, "jsName", value). Upcall kinds sit above every FUSE opcode (and
// CUSE_INIT) so they never collide with one.
#define NYDUS_ABI_CODES(C)                                                                    \
  C(UpcallReadMiss, "upcallReadMiss", 4097)                                                   \
  C(UpcallForget, "upcallForget", 4098)                                                       \
  C(UpcallInit, "upcallInit", 4099)                                                           \
  C(UpcallDestroy, "upcallDestroy", 4100)                                                     \
  C(UpcallClosed, "upcallClosed", 4101)                                                       \
  /* kUpcallDestroy a0: the kernel sent DESTROY, or the transport reset. */                   \
  C(DestroyRequest, "destroyRequest", 0)                                                      \
  C(DestroyReset, "destroyReset", 1)                                                          \
  /* kUpcallInit a3 (transport::TransportKind). */                                            \
  C(TransportVirtio, "transportVirtio", 0)                                                    \
  C(TransportFuseDev, "transportFuseDev", 1)                                                  \
  /* GETATTR a0 without FUSE_GETATTR_FH. */                                                   \
  C(NoFh, "noFh", -1)                                                                         \
  /* Dispatcher call kinds: (kind, count) for an upcall batch, (kind, id, reply) loopback. */ \
  C(DispatchBatch, "dispatchBatch", 0)                                                        \
  C(DispatchLoopback, "dispatchLoopback", 1)                                                  \
  /* Session construction flags. */                                                           \
  C(SessionImmutable, "sessionImmutable", 1)                                                  \
  /* Extent flags. */                                                                         \
  C(ExtentHole, "extentHole", 1)                                                              \
  /* Kernel flags the handler's answers and arguments carry (linux/fuse.h). */                \
  C(FsyncFdatasync, "fsyncFdatasync", FUSE_FSYNC_FDATASYNC)                                   \
  C(FopenDirectIo, "fopenDirectIo", FOPEN_DIRECT_IO)                                          \
  C(FopenKeepCache, "fopenKeepCache", FOPEN_KEEP_CACHE)                                       \
  C(FopenNonseekable, "fopenNonseekable", FOPEN_NONSEEKABLE)                                  \
  C(FopenCacheDir, "fopenCacheDir", FOPEN_CACHE_DIR)                                          \
  C(FopenStream, "fopenStream", FOPEN_STREAM)                                                 \
  C(FopenNoflush, "fopenNoflush", FOPEN_NOFLUSH)

// ---- Statistics: S(cpp_name, "jsName"), each a uint64 counter.

// FuseSession counters (relaxed atomics, summed by Stats()).
#define NYDUS_ABI_SESSION_COUNTERS(S)                                                    \
  S(requests, "requests")                                                                \
  S(native_replies, "nativeReplies")                                                     \
  S(upcalls, "upcalls")                                                                  \
  S(handler_replies, "handlerReplies")                                                   \
  S(errors_returned, "errorsReturned")  /* replies with error != 0 */                    \
  S(bad_requests, "badRequests")  /* malformed requests (guest/kernel at fault) */       \
  S(garbage_replies, "garbageReplies")  /* invalid handler answers (completed EIO) */    \
  S(stale_replies, "staleReplies")  /* answers to tokens no longer live */               \
  S(reply_overflows, "replyOverflows")  /* replies larger than the writable space */     \
  S(forgets, "forgets")  /* FORGET entries (single and batched) */                       \
  S(fast_reads, "fastReads")  /* READs completed natively */                             \
  S(fast_read_bytes, "fastReadBytes")                                                    \
  S(read_misses, "readMisses")  /* READs parked on missing chunks */                     \
  S(miss_retries, "missRetries")                                                         \
  S(fill_served, "fillServed")  /* parked READs answered from a fill's decoded memory */  \
  S(parked_now, "parkedNow")                                                             \
  S(cached_replies, "cachedReplies")  /* LOOKUP/GETATTR answered from the reply cache */ \
  S(native_opens, "nativeOpens")  /* OPENs answered from the cached OPEN of the node */

// FuseSession values read at Stats() time.
#define NYDUS_ABI_SESSION_GAUGES(S)      \
  S(pending_now, "pendingNow")           \
  S(extent_tables, "extentTables")       \
  S(negotiated_minor, "negotiatedMinor")

// The READ fast path (readpath::ReadStats), reported with the session's.
#define NYDUS_ABI_READ_STATS(S)         \
  S(preadv_calls, "preadvCalls")        \
  S(bytes_from_cache, "bytesFromCache") \
  S(bytes_from_fill, "bytesFromFill")   \
  S(bytes_zero, "bytesZero")

// The /dev/fuse transport (fusedev::FuseDevStats).
#define NYDUS_ABI_FUSEDEV_STATS(S)                                              \
  S(requests, "requests")                                                       \
  S(replies, "replies")                                                         \
  S(bytes_read, "bytesRead")                                                    \
  S(bytes_written, "bytesWritten")                                              \
  S(write_errors, "writeErrors")  /* other than ENOENT (interrupted request) */ \
  S(threads, "threads")

// Per-mount operation counters (fuse::FopSnapshot; upstream FsIoStats), summed over the threads
// that completed requests. Single counters: S(cpp_name, "jsName"); arrays: A(cpp_name, "jsName",
// LengthLimit), of abi::k<LengthLimit> counters (a number[] in TypeScript).
#define NYDUS_ABI_FOP_COUNTERS(S) \
  S(data_read, "dataRead")  /* bytes of successful READs */
#define NYDUS_ABI_FOP_ARRAYS(A)                                                                \
  A(hits, "hits", FopKinds)  /* successful requests, by NYDUS_ABI_FOP_KINDS place */           \
  A(errors, "errors", FopKinds)  /* requests answered with an errno */                        \
  A(latency_us, "latencyUs", FopKinds)  /* cumulative us (inline answers but READ: 0) */     \
  A(block_count_read, "blockCountRead", ReadSizeBuckets)  /* READs by size (failed: first) */ \
  A(read_latency_dist, "readLatencyDist", ReadLatencyBuckets)  /* READs by latency */

// The vhost-user backend (vhost::BackendStats).
#define NYDUS_ABI_VIRTIO_STATS(S)                                                           \
  S(requests, "requests")  /* chains handed to the sink */                                  \
  S(bytes_in, "bytesIn")  /* readable bytes of those chains */                              \
  S(bytes_out, "bytesOut")  /* bytes reported written at completion */                      \
  S(bad_chains, "badChains")  /* chains refused by the descriptor walk */                   \
  S(broken_queues, "brokenQueues")  /* rings stopped: the driver broke the protocol */      \
  S(connections, "connections")  /* frontends accepted */                                   \
  S(messages, "messages")  /* vhost-user messages handled */                                \
  S(protocol_errors, "protocolErrors")  /* malformed messages (each closed a connection) */ \
  S(refused_messages, "refusedMessages")  /* well-formed but unsupported or invalid */      \
  S(stale_completions, "staleCompletions")  /* completions after their ring stopped */      \
  S(notifications, "notifications")  /* call eventfd signals */
// clang-format on

// ---- The C++ side of the lists.
namespace nydus::abi {

#define NYDUS_ABI_SLOT_(Name, js) k##Name,
#define NYDUS_ABI_RECORD_(Rec, js, FIELDS)             \
  struct Rec##Record {                                 \
    enum : size_t { FIELDS(NYDUS_ABI_SLOT_) kStride }; \
  };
NYDUS_ABI_RECORDS(NYDUS_ABI_RECORD_)
#undef NYDUS_ABI_RECORD_
#undef NYDUS_ABI_SLOT_

#define NYDUS_ABI_CONST_(Name, js, type, value) inline constexpr type k##Name = (value);
NYDUS_ABI_LIMITS(NYDUS_ABI_CONST_)
#undef NYDUS_ABI_CONST_

#define NYDUS_ABI_CODE_(Name, js, value) inline constexpr int k##Name = (value);
NYDUS_ABI_CODES(NYDUS_ABI_CODE_)
#undef NYDUS_ABI_CODE_

// Layout invariants the encoders rely on.
static_assert(size_t{DirentRecord::kOff} == size_t{EntryRecord::kStride},
              "a dirent starts with an entry");
static_assert(EntryRecord::kIno == 4, "the attributes follow the four entry numbers");
static_assert(kMaxReplyPayload == size_t{kMaxPages} * 4096);
static_assert(kUpcallReadMiss > CUSE_INIT && kUpcallReadMiss > kOpcodeTableSize);
// Clients index upstream's arrays at these lengths (fop_hits: 15, the READ buckets: 8).
static_assert(kFopKinds == 15 && kReadSizeBuckets == 8 && kReadLatencyBuckets == 8);

// FUSE opcodes of the counted operations, in counter order.
#define NYDUS_ABI_FOP_OPCODE_(op, js) op,
inline constexpr uint32_t kFopOpcodes[] = {NYDUS_ABI_FOP_KINDS(NYDUS_ABI_FOP_OPCODE_)};
#undef NYDUS_ABI_FOP_OPCODE_

}  // namespace nydus::abi

// Members for the statistics lists: NYDUS_ABI_SESSION_COUNTERS(NYDUS_ABI_STAT_FIELD) declares one
// uint64_t per statistic (a snapshot), NYDUS_ABI_STAT_ATOMIC one relaxed atomic (the live
// counter; needs <atomic>).
#define NYDUS_ABI_STAT_FIELD(name, js) uint64_t name = 0;
#define NYDUS_ABI_STAT_ATOMIC(name, js) std::atomic<uint64_t> name{0};
// The same for the arrays of NYDUS_ABI_FOP_ARRAYS.
#define NYDUS_ABI_STAT_ARRAY(name, js, n) uint64_t name[::nydus::abi::k##n] = {};
#define NYDUS_ABI_STAT_ATOMIC_ARRAY(name, js, n) \
  std::atomic<uint64_t> name[::nydus::abi::k##n] = {};
