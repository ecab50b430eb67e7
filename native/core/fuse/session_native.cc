// FuseSession: native filesystems (native_fs.h) served inline, next to the handler's upcalls.
#include <vector>

#include "common/log.h"
#include "fuse/reply.h"
#include "fuse/session.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";

// Routes a native filesystem never sees as requests: session business, or no reply expected
// (FORGETs and INTERRUPT reach it through Forget()/Interrupt()).
bool SessionRoute(Route r) {
  return r == Route::kInit || r == Route::kDestroy || r == Route::kForget ||
         r == Route::kBatchForget || r == Route::kInterrupt || r == Route::kNoReply;
}

}  // namespace

bool FuseSession::AttachNative(NativeMounts::Mount m) {
  if (m.fs == nullptr) return false;
  const uint64_t count_node = m.count_node;
  // A deferred reply (a SETLKW granted later) completes on the filesystem's waiter thread.
  m.fs->SetCompletion(
      [this, count_node](transport::FuseRequest* req, uint32_t written, bool error) {
        fops_.Count(count_node, FUSE_SETLKW, error, 0);
        Finish(req, written, error);
      });
  // init_mu_: an INIT running now either lists it (and passes the flags on) or has stored the
  // flags it negotiated before this reads them.
  std::lock_guard lock(init_mu_);
  if (initialized()) InitNative(m);
  return native_.Attach(std::move(m));
}

void FuseSession::InitNative(const NativeMounts::Mount& m) {
  uint64_t offered = kernel_flags_;
  // FUSE_NO_OPEN(DIR)_SUPPORT is taken up by the kernel for the whole connection after one
  // ENOSYS: a filesystem sharing the connection must not use it (RAFS needs its OPENs).
  if (!m.whole_connection) {
    offered &= ~static_cast<uint64_t>(FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT);
  }
  m.fs->OnInit(offered, granted_flags_);
}

void FuseSession::CountNative(uint64_t count_node, uint32_t opcode, bool error, uint32_t written,
                              uint64_t latency_us) {
  if (opcode == FUSE_READ) {
    const uint64_t data =
        !error && written > sizeof(fuse_out_header) ? written - sizeof(fuse_out_header) : 0;
    fops_.CountRead(count_node, error, data, latency_us);
  } else {
    fops_.Count(count_node, opcode, error, latency_us);
  }
}

bool FuseSession::RouteNative(Request& r, DecodeStatus st) {
  // The filesystem decodes its own arguments; it needs a validated header (len within the
  // readable bytes) and a known opcode.
  if (st != DecodeStatus::kOk && st != DecodeStatus::kShortArgs && st != DecodeStatus::kBadName &&
      st != DecodeStatus::kNameTooLong) {
    return false;
  }
  if (r.info == nullptr || SessionRoute(r.info->route)) return false;
  // Before INIT and after shutdown the session answers (EIO) as for any other request.
  if (!initialized() || shut_down_.load(std::memory_order_acquire)) return false;
  NativeMounts::Mount m;
  const std::shared_ptr<NativeFs> fs = native_.Find(r.d.in.nodeid, &m);
  if (fs == nullptr) return false;
  const uint64_t start = NowMicros();
  const NativeFs::Outcome o = fs->Handle(r.d, *r.req);
  if (o.deferred) return true;
  CountNative(m.count_node, r.d.in.opcode, o.error, o.written, NowMicros() - start);
  counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
  if (o.written == 0 && !o.error) {
    // A request that expects a reply always gets one; a handler that wrote none is a bug.
    NLOG_WARN(kLog, "%s: native filesystem wrote no reply; EIO", r.info->name);
    Finish(r.req, WriteError(*r.req, r.d.in.unique, EIO), true);
    return true;
  }
  Finish(r.req, o.written, o.error);
  return true;
}

bool FuseSession::ForgetNative(uint64_t nodeid, uint64_t nlookup) {
  if (native_.empty()) return false;
  const std::shared_ptr<NativeFs> fs = native_.Find(nodeid);
  if (fs == nullptr) return false;
  fs->Forget(nodeid, nlookup);
  return true;
}

void FuseSession::HandleInterrupt(Request& r) {
  r.req->Complete(0);
  if (native_.empty()) return;
  // Only a native filesystem ever parks a request it can end early (SETLKW).
  for (const NativeMounts::Mount& m : native_.All()) {
    if (m.fs->Interrupt(r.d.arg.interrupt.unique)) return;
  }
}

void FuseSession::HandleSyncfs(Request& r) {
  // SYNCFS of a node no native filesystem owns (the pseudo root): sync every writable one.
  const std::vector<NativeMounts::Mount> all = native_.All();
  if (all.empty()) {
    HandleNativeDefault(r);  // ENOSYS: the kernel stops sending it
    return;
  }
  int err = 0;
  for (const NativeMounts::Mount& m : all) {
    const int rc = m.fs->Syncfs();
    if (rc < 0 && err == 0) err = -rc;
  }
  if (err != 0) {
    ReplyErrorInline(r, err);
    return;
  }
  FinishInline(r, nullptr, 0);
}

}  // namespace nydus::fuse
