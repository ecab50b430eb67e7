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
// Threading: OnRequest may run on several transport threads at once. DrainUpcalls, Reply*,
// ResolveMiss, ChunksReady, SetExtents and Shutdown run on the owner's thread (the JS thread),
// though each is also safe from other threads. A miss-retry thread, started on the first parked
// READ, re-runs parked READs off the owner's thread.
#pragma once

#include <atomic>
#include <bitset>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fuse/abi.h"
#include "fuse/decode.h"
#include "fuse/fop_counters.h"
#include "fuse/pending.h"
#include "fuse/reply_cache.h"
#include "fuse/upcall.h"
#include "readpath/blob_registry.h"
#include "readpath/extent_table.h"
#include "readpath/reader.h"
#include "transport/request.h"

namespace nydus::fuse {

// Steady-clock microseconds (latency metrics).
uint64_t NowMicros();

struct SessionOptions {
  // Bit `op` set: the handler answers opcode `op`. Clear: the native default (ENOSYS; success
  // for RELEASE/RELEASEDIR; FORGETs are then not queued).
  std::bitset<kOpcodeTableSize> handler_ops;
  // INIT max_write. /dev/fuse lowers it to fit its read buffers.
  uint32_t max_write = kMaxWrite;
  // Requests waiting for the handler at once; beyond this new ones fail with EAGAIN.
  size_t max_pending = 1u << 16;
  // The handler's LOOKUP and GETATTR answers never change and it keeps no lookup counts (no
  // FORGET handler): the session answers repeats natively from a ReplyCache (reply_cache.h).
  // Ignored when the handler takes FORGET.
  bool immutable = false;
};

struct SessionStats {
  uint64_t requests = 0;
  uint64_t ops[kOpcodeTableSize] = {};
  uint64_t native_replies = 0;
  uint64_t upcalls = 0;
  uint64_t handler_replies = 0;
  uint64_t errors_returned = 0;  // replies with error != 0
  uint64_t bad_requests = 0;     // malformed requests (guest/kernel at fault)
  uint64_t garbage_replies = 0;  // invalid handler answers (completed EIO)
  uint64_t stale_replies = 0;    // answers to tokens no longer live
  uint64_t reply_overflows = 0;  // replies larger than the writable space
  uint64_t forgets = 0;          // FORGET entries (single and batched)
  uint64_t fast_reads = 0;       // READs completed natively
  uint64_t fast_read_bytes = 0;
  uint64_t read_misses = 0;  // READs parked on missing chunks
  uint64_t miss_retries = 0;
  uint64_t parked_now = 0;
  uint64_t pending_now = 0;
  uint64_t extent_tables = 0;
  uint64_t cached_replies = 0;  // LOOKUP/GETATTR answered from the reply cache
  uint64_t native_opens = 0;    // OPENs answered from the reply cache
  readpath::ReadStats read;
  uint32_t negotiated_minor = 0;
  bool initialized = false;
};

class FuseSession final : public transport::FuseRequestSink {
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
  // A read miss was handled: err == 0 retries the READ now (still-missing chunks then fail it
  // with EIO, logged); err > 0 fails it with that errno.
  int ResolveMiss(uint64_t token, int err);

  // READ fast path. Tables are keyed by the file handle OPEN returned and dropped at RELEASE,
  // DESTROY, reset and reinit.
  void SetExtents(uint64_t fh, std::shared_ptr<const readpath::ExtentTable> table);
  bool RemoveExtents(uint64_t fh);
  readpath::BlobRegistry& blobs() { return blobs_; }
  // Chunks of blob `slot` became ready: every parked READ whose chunks are now all present is
  // completed natively (on the retry thread). Returns how many READs were woken.
  size_t ChunksReady(uint32_t slot, std::span<const uint32_t> indices);

  // Mount-table changes (a handler that serves several filesystems, each owning a range of node
  // ids and a set of blob slots). InvalidateNodes forgets the reply-cache answers that name a
  // node in [lo, hi) and drops the extent table of every handle that reads from one of
  // `blob_slots`, so that neither a cached answer nor a READ on an old handle can reach those
  // blobs after their slots are given to another filesystem (a dropped handle's READs go to the
  // handler, which answers with an errno). Returns the number of extent tables dropped.
  size_t InvalidateNodes(uint64_t lo, uint64_t hi, std::span<const uint32_t> blob_slots);
  // Completes with `err` every READ still parked on a node in [lo, hi) (waiting for its miss to
  // be answered, or woken and not yet retried). Call after the filesystem's own requests have
  // settled and before its blob slots are unregistered; on the owner's thread only (it relies on
  // ChunksReady/ResolveMiss not running meanwhile). Returns how many were failed.
  size_t FailParked(uint64_t lo, uint64_t hi, int err);

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

  struct QueueItem {
    explicit QueueItem(uint32_t k) : kind(k) {}
    uint32_t kind;  // an opcode (request by token), or kUpcall{Forget,Init,Destroy,Closed}
    uint64_t token = 0;
    double a[4] = {};
    std::vector<double> forgets;  // kUpcallForget: nodeid, nlookup pairs
  };

  struct RetryItem {
    Pending* p;
    bool final;  // the handler said the chunks are there: still missing is an error
  };

  // Dispatch (session.cc).
  void Dispatch(Request& r);
  void HandleInit(Request& r);
  void HandleDestroy(Request& r);
  void HandleForget(Request& r);
  void HandleBatchForget(Request& r);
  void HandleNoReply(Request& r);
  void HandleOpen(Request& r);
  void HandleRead(Request& r);
  void HandleRelease(Request& r);
  void HandleUpcall(Request& r);
  // Answers a LOOKUP/GETATTR from the reply cache; false when it is not there.
  bool ReplyFromCache(Request& r);
  // Answers an OPEN from the reply cache with a session-made file handle; false when the node's
  // first OPEN has not been answered by the handler yet.
  bool OpenFromCache(Request& r);
  void HandleNativeDefault(Request& r);
  void ResetState(const char* why);
  void Enqueue(QueueItem item);
  void QueueForgets(const double* pairs, size_t n);
  void Finish(transport::FuseRequest* req, uint32_t written, bool error);
  // Finish() for a request that waited (upcall or parked READ): counts it in the operation
  // metrics with its latency. The caller still releases the slot.
  void FinishPending(Pending* p, uint32_t written, bool error);
  void ReplyErrorInline(Request& r, int err);

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

  // Parked READs (session_read.cc).
  void ServeFastRead(Request& r, std::shared_ptr<const readpath::ExtentTable> table);
  void Park(Request& r, std::shared_ptr<const readpath::ExtentTable> table,
            std::vector<readpath::ChunkRef>& missing);
  void RunRetry(RetryItem item);
  void RetryLoop();
  void EnsureRetryThread();
  void UnregisterWaiters(uint64_t token, const std::vector<readpath::ChunkRef>& missing);
  void RegisterWaiters(uint64_t token, const std::vector<readpath::ChunkRef>& missing);
  std::shared_ptr<const readpath::ExtentTable> TableFor(uint64_t fh) const;

  const SessionOptions options_;
  UpcallListener* const listener_;
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

  PendingTable pending_;

  std::mutex queue_mu_;
  std::deque<QueueItem> queue_;  // guarded by queue_mu_
  bool wake_pending_ = false;    // guarded by queue_mu_: the listener was told, not yet drained

  // ORDERING: extents_mu_ is taken before the reply cache's lock (OpenFromCache, InvalidateNodes)
  // so that a handle made from a cached OPEN answer is either dropped by InvalidateNodes or
  // made from an answer that survived it.
  mutable std::shared_mutex extents_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<const readpath::ExtentTable>> extents_;  // ^
  readpath::BlobRegistry blobs_;
  const bool cache_replies_;  // options_.immutable and no FORGET handler
  ReplyCache reply_cache_;
  // Handles of OPENs answered from the reply cache count up from kNativeFhBase: the handler's
  // handles are below 2^53 (ReplyOpen enforces it), so the two never meet, and RELEASE of a
  // session-made handle is answered here without an upcall (the handler never saw it).
  static constexpr uint64_t kNativeFhBase = 1ull << 53;
  std::atomic<uint64_t> next_native_fh_{0};

  std::mutex miss_mu_;
  // (slot << 32 | chunk index) -> tokens of parked READs waiting for that chunk.
  std::unordered_map<uint64_t, std::vector<uint64_t>> waiters_;  // guarded by miss_mu_
  std::deque<RetryItem> retries_;                                // guarded by miss_mu_
  std::condition_variable retry_cv_;
  std::condition_variable retry_idle_cv_;  // retry_current_ went back to null
  Pending* retry_current_ = nullptr;       // guarded by miss_mu_: the READ being retried
  bool retry_stop_ = false;                // guarded by miss_mu_
  std::thread retry_thread_;               // started under miss_mu_, joined by Shutdown

  // Counters: relaxed atomics, read together only for Stats().
  struct Counters {
    std::atomic<uint64_t> requests{0}, native_replies{0}, upcalls{0}, handler_replies{0},
        errors_returned{0}, bad_requests{0}, garbage_replies{0}, stale_replies{0},
        reply_overflows{0}, forgets{0}, fast_reads{0}, fast_read_bytes{0}, read_misses{0},
        miss_retries{0}, parked_now{0}, preadv_calls{0}, bytes_from_cache{0}, bytes_decompressed{0},
        bytes_zero{0}, chunk_cache_hits{0}, cached_replies{0}, native_opens{0};
    std::atomic<uint64_t> ops[kOpcodeTableSize] = {};
  };
  mutable Counters counters_;
  FopCounters fops_;
  void AddReadStats(const readpath::ReadStats& s);
};

}  // namespace nydus::fuse
