// One FUSE connection's server state: the consumer of transport requests (FuseRequestSink) for a
// /dev/fuse mount or a virtio-fs device, and the producer of upcalls to the filesystem handler.
//
// Pipeline per request (style rule 1): Decode() copies and checks syntax; the session checks
// semantics (INIT done, handler present); the opcode table routes it:
//   - natively, inline on the transport thread: INIT, DESTROY, FORGET/BATCH_FORGET (no reply,
//     also queued for the handler), INTERRUPT, every mutating op (EROFS), locks/ioctl/DAX
//     (ENOSYS), READ on a file handle with an extent table (the cache-hit fast path);
//   - to the handler: everything else, as an upcall the owner drains in batches
//     (DrainUpcalls) and answers through Reply*(token, ...). A READ whose chunks are missing is
//     parked and handed to the handler as a read miss; it completes natively when the handler
//     reports the chunks ready (ChunksReady) or resolves the miss (ResolveMiss).
// Every request is completed exactly once: inline, by the one Claim() of its token, or by
// Shutdown()/reset with EIO.
//
// The session's state is in classes with one lock each: the pending tokens (pending.h), the
// upcall queue and its arena encoding (upcall_queue.h), the open handles with their extent
// tables and cached OPENs (handle_table.h), the parked READs with their retry thread
// (readpath/parked_reads.h), plus the LOOKUP/GETATTR reply cache (reply_cache.h), the blob
// registry (readpath/blob_registry.h) and the per-mount operation counters (fop_counters.h,
// per-thread, no lock). The session itself keeps decode, dispatch, INIT (init_mu_) and the
// handler's replies; files: session.cc (dispatch, INIT, upcalls, mount-range changes),
// session_reply.cc (Reply*), session_read.cc (the READ fast path, parking and retries).
//
// Threading: OnRequest may run on several transport threads at once. DrainUpcalls, Reply*,
// ResolveMiss, ChunksReady, SetExtents and Shutdown run on the owner's thread (the JS thread),
// though each is also safe from other threads. A miss-retry thread, started on the first parked
// READ, re-runs parked READs off the owner's thread.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "abi/js_abi.h"
#include "fuse/abi.h"
#include "fuse/decode.h"
#include "fuse/fop_counters.h"
#include "fuse/handle_table.h"
#include "fuse/native_fs.h"
#include "fuse/native_mounts.h"
#include "fuse/pending.h"
#include "fuse/reply_cache.h"
#include "fuse/upcall.h"
#include "fuse/upcall_queue.h"
#include "fuse/writable_ranges.h"
#include "readpath/blob_registry.h"
#include "readpath/extent_table.h"
#include "readpath/parked_reads.h"
#include "readpath/reader.h"
#include "transport/request.h"

namespace nydus::fuse {

struct SessionOptions {
  // Bit `op` set: the handler answers opcode `op`. Clear: the native default (ENOSYS; success
  // for RELEASE/RELEASEDIR; FORGETs are then not queued).
  std::bitset<kOpcodeTableSize> handler_ops;
  // INIT max_write. /dev/fuse lowers it to fit its read buffers.
  uint32_t max_write = kMaxWrite;
  // Requests waiting for the handler at once; beyond this new ones fail with EAGAIN.
  size_t max_pending = 1u << 16;
  // Outside its writable ranges (SetWritable) the handler's LOOKUP and GETATTR answers never
  // change and it keeps no lookup counts: the session answers repeats there natively from a
  // ReplyCache (reply_cache.h), and a FORGET handler hears only of nodes in writable ranges.
  bool immutable = false;
};

struct SessionStats {
  NYDUS_ABI_SESSION_COUNTERS(NYDUS_ABI_STAT_FIELD)
  NYDUS_ABI_SESSION_GAUGES(NYDUS_ABI_STAT_FIELD)
  uint64_t ops[kOpcodeTableSize] = {};
  readpath::ReadStats read;
  bool initialized = false;
};

class FuseSession final : public transport::FuseRequestSink, private readpath::RetryHandler {
 public:
  FuseSession(SessionOptions options, UpcallListener* listener);
  ~FuseSession() override;
  FuseSession(const FuseSession&) = delete;
  FuseSession& operator=(const FuseSession&) = delete;

  // The transport this session serves (reported to the handler at INIT).
  void set_transport_kind(transport::TransportKind kind) { transport_kind_ = kind; }

  void OnRequest(transport::FuseRequest* request) override;
  void OnSessionReset() override;

  // Encodes queued upcalls and notifications into `arena` (see upcall.h). Returns the number of
  // records written (also in arena->count); 0 when nothing is queued.
  size_t DrainUpcalls(UpcallArena* arena);

  // Answers to upcalls. Each returns 0 when the request was completed with this answer;
  // -ESTALE when the token is not live (answered before, reset, or stopped: ignored);
  // -EINVAL when the answer is invalid or does not fit the opcode (the request was completed
  // with EIO and the problem logged).
  int ReplyError(uint64_t token, int err);
  int ReplyOk(uint64_t token);                        // RELEASE(DIR) FLUSH FSYNC(DIR) ACCESS
  int ReplyEntry(uint64_t token, const double* rec);  // LOOKUP
  int ReplyAttr(uint64_t token, const double* rec);   // GETATTR
  // OPEN / OPENDIR. A non-null table (OPEN only) is installed for `fh` before the reply is
  // sent, so the kernel can never READ the handle before its extents exist.
  int ReplyOpen(uint64_t token, uint64_t fh, uint32_t open_flags,
                std::shared_ptr<const readpath::ExtentTable> table);
  int ReplyStatfs(uint64_t token, const double* rec);              // STATFS
  int ReplyData(uint64_t token, const uint8_t* data, size_t len);  // READ, READLINK
  // GETXATTR (the value) / LISTXATTR (NUL-terminated names, concatenated). The session answers
  // the size probe (request size 0) and ERANGE (value larger than the request size) itself.
  int ReplyXattr(uint64_t token, const uint8_t* data, size_t len);
  // READDIR / READDIRPLUS. Returns how many records were sent (>= 0): the rest did not fit.
  long ReplyReaddir(uint64_t token, const double* recs, size_t n, const uint8_t* names,
                    size_t names_len);
  int ReplyLseek(uint64_t token, uint64_t offset);  // LSEEK
  // CREATE: the new entry (abi::EntryRecord) and its open handle.
  int ReplyCreate(uint64_t token, const double* rec, uint64_t fh, uint32_t open_flags);
  int ReplyWrite(uint64_t token, uint64_t size);  // WRITE: bytes written (<= the request's)
  // A read miss was handled: err == 0 retries the READ now (still-missing chunks then fail it
  // with EIO, logged); err > 0 fails it with that errno.
  int ResolveMiss(uint64_t token, int err);

  // READ fast path. Tables are keyed by the file handle OPEN returned and dropped at RELEASE,
  // DESTROY, reset and reinit.
  void SetExtents(uint64_t fh, std::shared_ptr<const readpath::ExtentTable> table) {
    handles_.Set(fh, std::move(table));
  }
  bool RemoveExtents(uint64_t fh) { return handles_.Remove(fh); }
  readpath::BlobRegistry& blobs() { return blobs_; }
  // Chunks of blob `slot` became ready: every parked READ whose chunks are now all present is
  // completed natively (on the retry thread). Returns how many READs were woken.
  size_t ChunksReady(uint32_t slot, std::span<const uint32_t> indices);
  // A fill decoded `run` of blob `slot` and has not stored it yet: every parked READ whose
  // chunks are all in `run` or present is answered now, on the calling (fill) thread, copying
  // from `run`; the others keep waiting for ChunksReady. Returns how many READs were answered.
  // Same exclusion as ChunksReady (not interleaved with FailParked or Shutdown).
  size_t ChunksDecoded(uint32_t slot, const cache::DecodedRun& run);

  // Mount-table changes (a handler that serves several filesystems, each owning a range of node
  // ids and a set of blob slots). InvalidateNodes forgets the reply-cache answers and cached
  // OPENs that name a node in [lo, hi) and drops the extent table of every handle that reads
  // from one of `blob_slots`, so that neither a cached answer nor a READ on an old handle can
  // reach those blobs after their slots are given to another filesystem (a dropped handle's
  // READs go to the handler, which answers with an errno). Returns the extent tables dropped.
  size_t InvalidateNodes(uint64_t lo, uint64_t hi, std::span<const uint32_t> blob_slots);
  // Completes with `err` every READ still parked on a node in [lo, hi) (waiting for its miss to
  // be answered, or woken and not yet retried; one being retried right now finishes first).
  // Call after the filesystem's own requests have settled and before its blob slots are
  // unregistered; on the owner's thread only (it relies on ChunksReady/ResolveMiss not running
  // meanwhile). Returns how many were failed.
  size_t FailParked(uint64_t lo, uint64_t hi, int err);

  // Native filesystems (native_fs.h, native_mounts.h): every request naming a node in [m.lo,
  // m.hi) is served by m.fs inline, FORGETs are split by owner, INTERRUPT and a pseudo root's
  // SYNCFS reach them, and INIT asks for the flags they want (a filesystem attached after INIT
  // gets what was negotiated then). Attach is false when the range overlaps another; Detach
  // lets requests already inside finish (native_mounts.h). session_native.cc.
  bool AttachNative(NativeMounts::Mount m);
  std::shared_ptr<NativeFs> DetachNative(uint64_t lo) { return native_.Detach(lo); }
  std::shared_ptr<NativeFs> NativeAt(uint64_t lo) const { return native_.AtStart(lo); }

  // Writable ranges (writable_ranges.h): node ids [lo, hi) whose mutating requests go to the
  // handler (decoded, session_writable.cc) instead of being answered EROFS, and whose answers are
  // never remembered. Turning a range on forgets what the reply cache holds for it.
  void SetWritable(uint64_t lo, uint64_t hi, bool on);
  // Whether a FORGET of `nodeid` (not owned natively) goes to the handler: it has a FORGET
  // handler and counts that node's lookups (every node, or for an immutable handler the nodes
  // of its writable ranges); ids beyond 2^53 cannot be the handler's.
  bool ForwardsForget(uint64_t nodeid) const;

  // The transport ended (err 0: stopped; ENODEV: unmounted): queues a kUpcallClosed
  // notification for the handler.
  void NotifyClosed(int err);
  // Fails every pending and parked request with EIO, joins the retry thread, drops extent
  // tables. Requests arriving afterwards fail with EIO. Call after the transport stopped.
  void Shutdown();

  SessionStats Stats() const;
  // Per-filesystem operation counters (fop_counters.h): slot layout and per-slot snapshots.
  FopCounters& fops() { return fops_; }
  bool initialized() const { return initialized_.load(std::memory_order_acquire); }

 private:
  // Inline dispatch context: the request and its private decoded copy.
  struct Request {
    transport::FuseRequest* req;
    const OpInfo* info;
    DecodedRequest d;
  };
  using Handler = void (FuseSession::*)(Request&);

  // Dispatch (session.cc).
  void Dispatch(Request& r);
  void HandleInit(Request& r);
  void HandleDestroy(Request& r);
  void HandleForget(Request& r);
  void HandleBatchForget(Request& r);
  void HandleNoReply(Request& r);
  void HandleInterrupt(Request& r);
  void HandleSyncfs(Request& r);
  void HandleOpen(Request& r);
  void HandleRead(Request& r);
  void HandleRelease(Request& r);
  void HandleUpcall(Request& r);
  // A pending slot for r with its header facts filled in (no args, name or payload); null when
  // the table is full (r was answered EAGAIN). PublishUpcall makes it live and tells the handler.
  Pending* NewPending(Request& r);
  void PublishUpcall(Pending* p);
  // A mutating request (session_writable.cc): EROFS outside the writable ranges, otherwise its
  // arguments decoded into the pending slot's payload and sent to the handler.
  void HandleWritable(Request& r);
  // Answers a LOOKUP/GETATTR from the reply cache; false when it is not there.
  bool ReplyFromCache(Request& r);
  // Answers an OPEN from the reply cache with a session-made file handle; false when the node's
  // first OPEN has not been answered by the handler yet.
  bool OpenFromCache(Request& r);
  void HandleNativeDefault(Request& r);
  void ResetState(const char* why);
  void Finish(transport::FuseRequest* req, uint32_t written, bool error);
  // Finish() for a request that waited (upcall or parked READ): counts it in the operation
  // counters with its latency. The caller still releases the slot.
  void FinishPending(Pending* p, uint32_t written, bool error);
  void ReplyErrorInline(Request& r, int err);

  // Native filesystems (session_native.cc). RouteNative serves r when a native filesystem owns
  // its node (true: r is done). InitNative passes the negotiated flags on (init_mu_ held).
  bool RouteNative(Request& r, DecodeStatus st);
  void InitNative(const NativeMounts::Mount& m);
  void CountNative(uint64_t count_node, uint32_t opcode, bool error, uint32_t written,
                   uint64_t latency_us);
  // FORGET of one node: true when a native filesystem owns it (and was told).
  bool ForgetNative(uint64_t nodeid, uint64_t nlookup);

  // Replies (session_reply.cc).
  Pending* ClaimFor(uint64_t token, const char* what, bool (*accepts)(uint32_t opcode), int* rc);
  int Garbage(Pending* p, const char* what, const char* why);
  void CompleteClaimed(Pending* p, uint32_t written, bool error);
  // WriteReply that counts an overflow (a reply larger than the writable space).
  uint32_t WriteCounted(transport::FuseRequest& req, uint64_t unique, const void* body, size_t len,
                        bool* overflow);
  // A claimed request answered with `body`; returns 0 (the Reply* result).
  int CompleteWith(Pending* p, const void* body, size_t len);
  // An inline request answered natively with `body`; false when the reply did not fit.
  bool FinishInline(Request& r, const void* body, size_t len);

  // The READ fast path and parked READs (session_read.cc).
  void ServeFastRead(Request& r, std::shared_ptr<const readpath::ExtentTable> table);
  void Park(Request& r, std::shared_ptr<const readpath::ExtentTable> table,
            std::vector<readpath::ChunkRef>& missing);
  // Queues a claimed parked READ for the retry thread; fails it with EIO after Shutdown.
  void ScheduleRetry(Pending* p, uint64_t token, bool final);
  void RunRetry(const readpath::Retry& retry) override;
  // Parked READ `token` is live and each chunk it waits for is present (or in `run`, chunks of
  // blob `slot`, when given).
  bool Servable(uint64_t token, uint32_t slot, const cache::DecodedRun* run);
  // Serves claimed parked READ p (chunks from `decoded` too, when given) and completes it; a
  // non-final READ that finds a chunk missing parks again instead.
  void ServeParked(Pending* p, uint64_t token, bool final, const readpath::DecodedSource* decoded);
  // A claimed parked READ leaves the waiters and the parked count.
  void Unpark(Pending* p, uint64_t token);
  void AddReadStats(const readpath::ReadStats& s);

  const SessionOptions options_;
  transport::TransportKind transport_kind_ = transport::TransportKind::kFuseDev;
  static const Handler kRouteHandlers[];

  // ORDERING: release on INIT/DESTROY, acquire on every request, so a request that sees
  // initialized_ also sees the negotiated minor.
  std::atomic<bool> initialized_{false};
  // ORDERING: set once by Shutdown() (acq_rel exchange, so a second call sees it); readers only
  // need to eventually stop dispatching, the pending table decides exactly-once.
  std::atomic<bool> shut_down_{false};
  mutable std::mutex init_mu_;     // serializes INIT / DESTROY / reset
  uint32_t negotiated_minor_ = 0;  // guarded by init_mu_ (read after initialized_ acquire)
  uint64_t kernel_flags_ = 0;      // guarded by init_mu_: what the last INIT offered
  uint64_t granted_flags_ = 0;     // guarded by init_mu_: what its reply granted

  PendingTable pending_;
  UpcallQueue upcalls_;
  HandleTable handles_;
  readpath::BlobRegistry blobs_;
  const bool cache_replies_;  // options_.immutable
  ReplyCache reply_cache_;
  NativeMounts native_;
  WritableRanges writable_;
  readpath::ParkedReads parked_;

  // Counters: relaxed atomics, read together only for Stats().
  struct Counters {
    NYDUS_ABI_SESSION_COUNTERS(NYDUS_ABI_STAT_ATOMIC)
    NYDUS_ABI_READ_STATS(NYDUS_ABI_STAT_ATOMIC)
    std::atomic<uint64_t> ops[kOpcodeTableSize] = {};
  };
  mutable Counters counters_;
  FopCounters fops_;
};

}  // namespace nydus::fuse
