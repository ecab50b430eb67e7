#include "fuse/session.h"

#include <fcntl.h>

#include <cstring>

#include "common/log.h"
#include "fuse/ops.h"
#include "fuse/reply.h"
#include "transport/slices.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";

// Rate limit for warnings about requests the peer got wrong: the first ten, then every 1000th.
bool ShouldWarn(uint64_t n) { return n <= 10 || n % 1000 == 0; }

bool NoReplyRoute(Route r) {
  return r == Route::kForget || r == Route::kBatchForget || r == Route::kInterrupt ||
         r == Route::kNoReply;
}

}  // namespace

// Indexed by Route (ops.h).
const FuseSession::Handler FuseSession::kRouteHandlers[] = {
    &FuseSession::HandleNativeDefault,  // kEnosys
    &FuseSession::HandleWritable,       // kWritable
    &FuseSession::HandleInit,           // kInit
    &FuseSession::HandleDestroy,        // kDestroy
    &FuseSession::HandleForget,         // kForget
    &FuseSession::HandleBatchForget,    // kBatchForget
    &FuseSession::HandleInterrupt,      // kInterrupt
    &FuseSession::HandleNoReply,        // kNoReply
    &FuseSession::HandleSyncfs,         // kSyncfs
    &FuseSession::HandleOpen,           // kOpen
    &FuseSession::HandleRead,           // kRead
    &FuseSession::HandleRelease,        // kRelease
    &FuseSession::HandleUpcall,         // kUpcall
};

FuseSession::FuseSession(SessionOptions options, UpcallListener* listener)
    : options_(options),
      pending_(options.max_pending),
      upcalls_(listener, &pending_),
      // A handler that counts lookups must see every LOOKUP.
      cache_replies_(options.immutable && !options.handler_ops[FUSE_FORGET]),
      parked_(this) {}

FuseSession::~FuseSession() { Shutdown(); }

void FuseSession::Finish(transport::FuseRequest* req, uint32_t written, bool error) {
  if (error) counters_.errors_returned.fetch_add(1, std::memory_order_relaxed);
  req->Complete(written);
}

void FuseSession::FinishPending(Pending* p, uint32_t written, bool error) {
  const uint64_t lat = p->start_us != 0 ? NowMicros() - p->start_us : 0;
  if (p->opcode == FUSE_READ) {
    const uint64_t data =
        !error && written > sizeof(fuse_out_header) ? written - sizeof(fuse_out_header) : 0;
    fops_.CountRead(p->nodeid, error, data, lat);
  } else {
    fops_.Count(p->nodeid, p->opcode, error, lat);
  }
  Finish(p->req, written, error);
}

void FuseSession::ReplyErrorInline(Request& r, int err) {
  fops_.Count(r.d.in.nodeid, r.d.in.opcode, true, 0);
  counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
  Finish(r.req, WriteError(*r.req, r.d.in.unique, err), true);
}

void FuseSession::OnRequest(transport::FuseRequest* request) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  Request r;
  r.req = request;
  r.info = nullptr;
  const DecodeStatus st = Decode(*request, &r.d);
  if (st == DecodeStatus::kNoHeader) {
    uint64_t n = counters_.bad_requests.fetch_add(1, std::memory_order_relaxed) + 1;
    if (ShouldWarn(n))
      NLOG_WARN(kLog, "request shorter than fuse_in_header dropped (%llu)",
                static_cast<unsigned long long>(n));
    request->Complete(0);
    return;
  }
  r.info = OpInfoOf(r.d.in.opcode);
  if (r.info != nullptr) {
    counters_.ops[r.d.in.opcode].fetch_add(1, std::memory_order_relaxed);
  }
  if (!native_.empty() && RouteNative(r, st)) return;
  if (st != DecodeStatus::kOk) {
    if (st == DecodeStatus::kUnknownOpcode) {
      NLOG_DEBUG(kLog, "opcode %u unknown: ENOSYS", r.d.in.opcode);
      ReplyErrorInline(r, ENOSYS);
      return;
    }
    uint64_t n = counters_.bad_requests.fetch_add(1, std::memory_order_relaxed) + 1;
    if (ShouldWarn(n)) {
      NLOG_WARN(kLog, "malformed %s request (len %u, %zu readable bytes, status %d)",
                OpName(r.d.in.opcode), r.d.in.len, request->in_bytes(), static_cast<int>(st));
    }
    if (r.info != nullptr && NoReplyRoute(r.info->route)) {
      request->Complete(0);
      return;
    }
    ReplyErrorInline(r, st == DecodeStatus::kNameTooLong ? ENAMETOOLONG : EINVAL);
    return;
  }
  Dispatch(r);
}

void FuseSession::Dispatch(Request& r) {
  static_assert(sizeof(kRouteHandlers) / sizeof(kRouteHandlers[0]) ==
                static_cast<size_t>(Route::kUpcall) + 1);
  const Route route = r.info->route;
  if (route != Route::kInit && (!initialized() || shut_down_.load(std::memory_order_acquire))) {
    // Before INIT (and after DESTROY) nothing but INIT is meaningful (§4.1).
    if (NoReplyRoute(route)) {
      r.req->Complete(0);
    } else {
      ReplyErrorInline(r, EIO);
    }
    return;
  }
  (this->*kRouteHandlers[static_cast<size_t>(route)])(r);
}

void FuseSession::HandleNativeDefault(Request& r) {
  const uint32_t op = r.d.in.opcode;
  switch (r.info->route) {
    case Route::kWritable:
      NLOG_DEBUG(kLog, "%s on a read-only filesystem: EROFS", r.info->name);
      ReplyErrorInline(r, EROFS);
      return;
    case Route::kUpcall:
    case Route::kRelease:
      // No handler for it: releasing needs no work; everything else is not implemented.
      if (op == FUSE_RELEASE || op == FUSE_RELEASEDIR) {
        fops_.Count(r.d.in.nodeid, op, false, 0);
        counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
        Finish(r.req, WriteReply(*r.req, r.d.in.unique, nullptr, 0), false);
        return;
      }
      [[fallthrough]];
    default:
      ReplyErrorInline(r, ENOSYS);
      return;
  }
}

void FuseSession::HandleInit(Request& r) {
  const fuse_init_in& in = r.d.arg.init;
  fuse_init_out out{};
  out.major = kOurMajor;
  out.minor = kOurMinor;
  if (in.major > kOurMajor) {
    // The kernel speaks a newer major: answer with ours and it retries INIT with it.
    counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
    Finish(r.req, WriteReply(*r.req, r.d.in.unique, &out, sizeof(out)), false);
    return;
  }
  if (in.major < kOurMajor || in.minor < kOldestMinor) {
    NLOG_ERROR(kLog, "kernel FUSE protocol %u.%u is too old (need 7.%u or later)", in.major,
               in.minor, kOldestMinor);
    ReplyErrorInline(r, EPROTO);
    return;
  }
  bool reinit = false;
  {
    std::lock_guard lock(init_mu_);
    if (initialized()) {
      // INIT without DESTROY: the guest rebooted (or remounted after a crash). Everything it
      // knew is gone, so every handle and parked request of the old session is void (§4.1).
      reinit = true;
      NLOG_INFO(kLog, "FUSE INIT on an initialized session: resetting (guest reboot)");
      ResetState("FUSE re-INIT");
    }
    uint64_t kernel_flags = in.flags;
    if ((in.flags & FUSE_INIT_EXT) != 0) kernel_flags |= static_cast<uint64_t>(in.flags2) << 32;
    uint64_t want = kWantedInitFlags;
    const std::vector<NativeMounts::Mount> natives = native_.All();
    for (const NativeMounts::Mount& m : natives) want |= m.fs->WantedInitFlags();
    const bool plus = options_.handler_ops[FUSE_READDIRPLUS];
    const bool plain = options_.handler_ops[FUSE_READDIR];
    if (!plus) want &= ~static_cast<uint64_t>(FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO);
    // AUTO lets the kernel pick plain READDIR; without a plain handler it must always use plus.
    if (plus && !plain) want &= ~static_cast<uint64_t>(FUSE_READDIRPLUS_AUTO);
    const uint64_t flags = kernel_flags & want;
    out.minor = in.minor < kOurMinor ? in.minor : kOurMinor;
    out.max_readahead = in.max_readahead;
    out.flags = static_cast<uint32_t>(flags);
    if ((flags & FUSE_INIT_EXT) != 0) out.flags2 = static_cast<uint32_t>(flags >> 32);
    out.max_background = kMaxBackground;
    out.congestion_threshold = kCongestionThreshold;
    out.max_write = options_.max_write;
    out.time_gran = kTimeGranNs;
    out.max_pages = (flags & FUSE_MAX_PAGES) != 0 ? kMaxPages : 0;
    negotiated_minor_ = out.minor;
    kernel_flags_ = kernel_flags;
    granted_flags_ = flags;
    for (const NativeMounts::Mount& m : natives) InitNative(m);
    // ORDERING: release publishes negotiated_minor_ to requests that acquire initialized_.
    initialized_.store(true, std::memory_order_release);
  }
  const size_t len = out.minor < kInitOutCompat22Minor ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out);
  NLOG_INFO(kLog, "FUSE INIT: kernel %u.%u, negotiated 7.%u, flags 0x%x flags2 0x%x", in.major,
            in.minor, out.minor, out.flags, out.flags2);
  upcalls_.PushNotice(kUpcallInit, out.minor, in.minor, reinit ? 1 : 0,
                      static_cast<double>(transport_kind_));
  counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
  Finish(r.req, WriteReply(*r.req, r.d.in.unique, &out, len), false);
}

void FuseSession::HandleDestroy(Request& r) {
  {
    std::lock_guard lock(init_mu_);
    initialized_.store(false, std::memory_order_release);
    ResetState("FUSE DESTROY");
  }
  upcalls_.PushNotice(kUpcallDestroy, abi::kDestroyRequest);
  counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
  Finish(r.req, WriteReply(*r.req, r.d.in.unique, nullptr, 0), false);
}

void FuseSession::OnSessionReset() {
  bool was = false;
  {
    std::lock_guard lock(init_mu_);
    was = initialized_.exchange(false, std::memory_order_acq_rel);
    ResetState("transport reset");
  }
  if (was) upcalls_.PushNotice(kUpcallDestroy, abi::kDestroyReset);
}

void FuseSession::ResetState(const char* why) {
  for (const NativeMounts::Mount& m : native_.All()) m.fs->Reset();
  handles_.DropHandles();
  parked_.ClearWaiters();
  std::vector<Pending*> all;
  pending_.ClaimAll(&all);
  for (Pending* p : all) {
    if (p->kind == PendingKind::kParkedRead) {
      counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
    }
    // The request belongs to a session that no longer exists; if its transport is gone the
    // completion is a no-op (transport/request.h), otherwise the old caller gets EIO.
    Finish(p->req, WriteError(*p->req, p->unique, EIO), true);
    pending_.Release(p);
  }
  if (!all.empty()) {
    NLOG_INFO(kLog, "%s: failed %zu pending requests with EIO", why, all.size());
  }
  // After the pending requests are void: the next session starts with no remembered answers
  // (its guest may have been given another image, or the handler reinitialised its state).
  reply_cache_.Clear();
  handles_.ForgetOpens();
}

size_t FuseSession::InvalidateNodes(uint64_t lo, uint64_t hi,
                                    std::span<const uint32_t> blob_slots) {
  // The two caches are independent: a cached OPEN never consults the reply cache.
  reply_cache_.InvalidateNodes(lo, hi);
  return handles_.Invalidate(lo, hi, blob_slots);
}

void FuseSession::HandleForget(Request& r) {
  r.req->Complete(0);
  fops_.Count(r.d.in.nodeid, FUSE_FORGET, false, 0);
  counters_.forgets.fetch_add(1, std::memory_order_relaxed);
  if (ForgetNative(r.d.in.nodeid, r.d.arg.forget.nlookup)) return;
  if (!options_.handler_ops[FUSE_FORGET] || r.d.in.nodeid >= (1ull << 53)) return;
  const double pair[2] = {RecordNumber(r.d.in.nodeid), RecordNumber(r.d.arg.forget.nlookup)};
  upcalls_.PushForgets(pair, 1);
}

void FuseSession::HandleBatchForget(Request& r) {
  const uint32_t count = r.d.forgets_count;
  counters_.forgets.fetch_add(count, std::memory_order_relaxed);
  fops_.Count(r.d.in.nodeid, FUSE_BATCH_FORGET, false, 0);
  if ((options_.handler_ops[FUSE_FORGET] || !native_.empty()) && count > 0) {
    // Read the entries in chunks; they are only forwarded, never trusted (unknown nodeids and
    // huge counts are the handler's to ignore, ids beyond 2^53 cannot be ours and are dropped).
    transport::SliceReader reader(r.req->in(), r.d.in.len);
    reader.Skip(r.d.forgets_offset);
    fuse_forget_one chunk[64];
    double pairs[2 * 64];
    for (uint32_t done = 0; done < count;) {
      uint32_t n = count - done < 64 ? count - done : 64;
      if (!reader.Copy(chunk, n * sizeof(fuse_forget_one))) break;
      size_t k = 0;
      for (uint32_t i = 0; i < n; ++i) {
        if (ForgetNative(chunk[i].nodeid, chunk[i].nlookup)) continue;
        if (!options_.handler_ops[FUSE_FORGET] || chunk[i].nodeid >= (1ull << 53)) continue;
        pairs[2 * k] = RecordNumber(chunk[i].nodeid);
        pairs[2 * k + 1] = RecordNumber(chunk[i].nlookup);
        ++k;
      }
      if (k > 0) upcalls_.PushForgets(pairs, k);
      done += n;
    }
  }
  r.req->Complete(0);
}

void FuseSession::HandleNoReply(Request& r) { r.req->Complete(0); }

void FuseSession::HandleOpen(Request& r) {
  const uint32_t flags = r.d.arg.open.flags;
  if (writable_.Contains(r.d.in.nodeid)) {
    // A writable filesystem's files change: no remembered OPEN, and write intents are its own.
    HandleUpcall(r);
    return;
  }
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0) {
    NLOG_DEBUG(kLog, "OPEN for writing on a read-only filesystem: EROFS");
    ReplyErrorInline(r, EROFS);
    return;
  }
  if (cache_replies_ && OpenFromCache(r)) return;
  HandleUpcall(r);
}

bool FuseSession::OpenFromCache(Request& r) {
  fuse_open_out o{};
  // The handle's table is installed before the reply is sent: the kernel may READ it at once.
  if (!handles_.OpenFromCache(r.d.in.nodeid, &o.fh, &o.open_flags)) return false;
  counters_.native_opens.fetch_add(1, std::memory_order_relaxed);
  // An OPEN whose reply did not fit never reaches the kernel: its handle would never be released.
  if (!FinishInline(r, &o, sizeof(o))) handles_.Remove(o.fh);
  return true;
}

void FuseSession::HandleRelease(Request& r) {
  const uint64_t fh = r.d.arg.release.fh;
  handles_.Remove(fh);
  if (HandleTable::IsNative(fh)) {
    // A handle this session made (OpenFromCache): the handler has nothing to release.
    FinishInline(r, nullptr, 0);
    return;
  }
  HandleUpcall(r);
}

bool FuseSession::ReplyFromCache(Request& r) {
  const uint32_t op = r.d.in.opcode;
  if (op == FUSE_LOOKUP) {
    fuse_entry_out e;
    if (!reply_cache_.GetEntry(r.d.in.nodeid, r.d.name, r.d.name_len, &e)) return false;
    counters_.cached_replies.fetch_add(1, std::memory_order_relaxed);
    FinishInline(r, &e, sizeof(e));
    return true;
  }
  if (op == FUSE_GETATTR) {
    fuse_attr_out a;
    if (!reply_cache_.GetAttr(r.d.in.nodeid, &a)) return false;
    counters_.cached_replies.fetch_add(1, std::memory_order_relaxed);
    FinishInline(r, &a, sizeof(a));
    return true;
  }
  return false;
}

bool FuseSession::FinishInline(Request& r, const void* body, size_t len) {
  counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
  bool overflow = false;
  const uint32_t n = WriteCounted(*r.req, r.d.in.unique, body, len, &overflow);
  fops_.Count(r.d.in.nodeid, r.d.in.opcode, overflow, 0);
  Finish(r.req, n, overflow);
  return !overflow;
}

void FuseSession::HandleUpcall(Request& r) {
  const uint32_t op = r.d.in.opcode;
  if (!options_.handler_ops[op]) {
    HandleNativeDefault(r);
    return;
  }
  if (cache_replies_ && !writable_.Contains(r.d.in.nodeid) && ReplyFromCache(r)) return;
  Pending* p = NewPending(r);
  if (p == nullptr) return;
  const DecodedRequest& d = r.d;
  p->name_len = d.name_len;
  if (d.name_len > 0) std::memcpy(p->name, d.name, d.name_len);
  switch (op) {
    case FUSE_GETATTR:
      p->args[0] =
          (d.arg.getattr.getattr_flags & FUSE_GETATTR_FH) != 0 ? d.arg.getattr.fh : UINT64_MAX;
      break;
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      p->args[0] = d.arg.open.flags;
      p->args[1] = d.arg.open.open_flags;
      break;
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      p->args[0] = d.arg.read.fh;
      p->args[1] = d.arg.read.offset;
      p->args[2] = d.arg.read.size;
      p->args[3] = d.arg.read.read_flags;
      break;
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
      p->args[0] = d.arg.release.fh;
      p->args[1] = d.arg.release.flags;
      p->args[2] = d.arg.release.release_flags;
      break;
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      p->args[0] = d.arg.getxattr.size;
      break;
    case FUSE_ACCESS:
      p->args[0] = d.arg.access.mask;
      break;
    case FUSE_FLUSH:
      p->args[0] = d.arg.flush.fh;
      break;
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
      p->args[0] = d.arg.fsync.fh;
      p->args[1] = d.arg.fsync.fsync_flags;
      break;
    case FUSE_LSEEK:
      p->args[0] = d.arg.lseek.fh;
      p->args[1] = d.arg.lseek.offset;
      p->args[2] = d.arg.lseek.whence;
      break;
    default:
      break;
  }
  PublishUpcall(p);
}

Pending* FuseSession::NewPending(Request& r) {
  Pending* p = pending_.Acquire();
  if (p == nullptr) {
    NLOG_WARN(kLog, "too many requests waiting for the handler; %s fails with EAGAIN",
              r.info->name);
    ReplyErrorInline(r, EAGAIN);
    return nullptr;
  }
  const DecodedRequest& d = r.d;
  p->req = r.req;
  p->start_us = NowMicros();
  p->kind = PendingKind::kUpcall;
  p->opcode = d.in.opcode;
  p->unique = d.in.unique;
  p->nodeid = d.in.nodeid;
  p->uid = d.in.uid;
  p->gid = d.in.gid;
  p->pid = d.in.pid;
  p->args[0] = p->args[1] = p->args[2] = p->args[3] = 0;
  p->name_len = 0;
  // A slot is reused for any request: a large WRITE's buffer is not kept around.
  if (p->payload.capacity() > (64u << 10)) std::vector<uint8_t>().swap(p->payload);
  p->payload.clear();
  return p;
}

void FuseSession::PublishUpcall(Pending* p) {
  const uint32_t op = p->opcode;
  const uint64_t token = pending_.Publish(p);
  counters_.upcalls.fetch_add(1, std::memory_order_relaxed);
  upcalls_.PushToken(op, token);
}

void FuseSession::NotifyClosed(int err) {
  upcalls_.PushNotice(kUpcallClosed, err < 0 ? -err : err);
}

size_t FuseSession::DrainUpcalls(UpcallArena* arena) { return upcalls_.Drain(arena); }

void FuseSession::Shutdown() {
  if (shut_down_.exchange(true, std::memory_order_acq_rel)) return;
  for (const readpath::Retry& left : parked_.Stop()) {
    Pending* p = pending_.Claimed(left.token);
    if (p == nullptr) continue;
    counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
    Finish(p->req, WriteError(*p->req, p->unique, EIO), true);
    pending_.Release(p);
  }
  std::lock_guard lock(init_mu_);
  initialized_.store(false, std::memory_order_release);
  ResetState("session stopped");
}

SessionStats FuseSession::Stats() const {
  SessionStats s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
#define NYDUS_LOAD_(name, js) s.name = ld(counters_.name);
  NYDUS_ABI_SESSION_COUNTERS(NYDUS_LOAD_)
#undef NYDUS_LOAD_
#define NYDUS_LOAD_(name, js) s.read.name = ld(counters_.name);
  NYDUS_ABI_READ_STATS(NYDUS_LOAD_)
#undef NYDUS_LOAD_
  for (size_t i = 0; i < kOpcodeTableSize; ++i) s.ops[i] = ld(counters_.ops[i]);
  s.pending_now = pending_.live();
  s.extent_tables = handles_.size();
  s.initialized = initialized();
  if (s.initialized) {
    std::lock_guard lock(init_mu_);
    s.negotiated_minor = negotiated_minor_;
  }
  return s;
}

}  // namespace nydus::fuse
