// The READ fast path of FuseSession: serving READs from extent tables inline, parking READs on
// missing chunks, and completing them when the handler has filled the cache. The waiters and
// the retry thread are readpath::ParkedReads; this file decides what a READ gets.
#include <cstring>

#include "common/log.h"
#include "fuse/reply.h"
#include "fuse/session.h"
#include "transport/slices.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";

// Reused by every READ on this thread: a miss list without an allocation per request.
thread_local std::vector<readpath::ChunkRef> t_missing;

}  // namespace

void FuseSession::AddReadStats(const readpath::ReadStats& s) {
  auto add = [](std::atomic<uint64_t>& a, uint64_t v) {
    if (v != 0) a.fetch_add(v, std::memory_order_relaxed);
  };
#define NYDUS_ADD_(name, js) add(counters_.name, s.name);
  NYDUS_ABI_READ_STATS(NYDUS_ADD_)
#undef NYDUS_ADD_
}

void FuseSession::HandleRead(Request& r) {
  auto table = handles_.Find(r.d.arg.read.fh);
  if (table != nullptr) {
    ServeFastRead(r, std::move(table));
    return;
  }
  HandleUpcall(r);
}

void FuseSession::ServeFastRead(Request& r, std::shared_ptr<const readpath::ExtentTable> table) {
  transport::SliceWriter out(r.req->out());
  if (out.capacity() < sizeof(fuse_out_header)) {
    r.req->Complete(0);
    return;
  }
  t_missing.clear();
  const uint64_t t0 = NowMicros();
  readpath::ReadStats stats;
  const auto res = readpath::ServeRead(*table, blobs_, r.d.arg.read.offset, r.d.arg.read.size, out,
                                       sizeof(fuse_out_header), &t_missing, &stats);
  AddReadStats(stats);
  switch (res.status) {
    case readpath::ReadStatus::kDone:
      counters_.fast_reads.fetch_add(1, std::memory_order_relaxed);
      counters_.fast_read_bytes.fetch_add(res.bytes, std::memory_order_relaxed);
      counters_.native_replies.fetch_add(1, std::memory_order_relaxed);
      fops_.CountRead(r.d.in.nodeid, false, res.bytes, NowMicros() - t0);
      Finish(r.req, WriteHeader(*r.req, r.d.in.unique, res.bytes), false);
      return;
    case readpath::ReadStatus::kError:
      ReplyErrorInline(r, res.err);
      return;
    case readpath::ReadStatus::kMissing:
      Park(r, std::move(table), t_missing);
      return;
  }
}

void FuseSession::Park(Request& r, std::shared_ptr<const readpath::ExtentTable> table,
                       std::vector<readpath::ChunkRef>& missing) {
  Pending* p = pending_.Acquire();
  if (p == nullptr) {
    NLOG_WARN(kLog, "too many parked requests; READ fails with EAGAIN");
    ReplyErrorInline(r, EAGAIN);
    return;
  }
  p->req = r.req;
  p->start_us = NowMicros();
  p->kind = PendingKind::kParkedRead;
  p->opcode = FUSE_READ;
  p->unique = r.d.in.unique;
  p->nodeid = r.d.in.nodeid;
  p->uid = r.d.in.uid;
  p->gid = r.d.in.gid;
  p->pid = r.d.in.pid;
  p->args[0] = r.d.arg.read.fh;
  p->args[1] = r.d.arg.read.offset;
  p->args[2] = r.d.arg.read.size;
  p->args[3] = 0;
  p->name_len = 0;
  p->table = std::move(table);
  p->missing.assign(missing.begin(), missing.end());
  counters_.read_misses.fetch_add(1, std::memory_order_relaxed);
  counters_.parked_now.fetch_add(1, std::memory_order_relaxed);
  // A ChunksReady between publication and registration misses this READ; it then completes
  // when the handler answers its miss, which every miss gets.
  const uint64_t token = pending_.Publish(p);
  parked_.AddWaiters(token, p->missing);
  upcalls_.PushToken(kUpcallReadMiss, token);
}

void FuseSession::Unpark(Pending* p, uint64_t token) {
  parked_.RemoveWaiters(token, p->missing);
  counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
}

void FuseSession::ScheduleRetry(Pending* p, uint64_t token, bool final) {
  if (parked_.Schedule({token, final})) return;
  // The session is shutting down: no retry thread will run it.
  Unpark(p, token);
  FinishPending(p, WriteError(*p->req, p->unique, EIO), true);
  pending_.Release(p);
}

bool FuseSession::Servable(uint64_t token, uint32_t slot, const cache::DecodedRun* run) {
  bool ready = false;
  const bool live = pending_.Peek(token, [&](Pending& p) {
    if (p.kind != PendingKind::kParkedRead) return;
    ready = true;
    for (const auto& c : p.missing) {
      if (run != nullptr && c.slot == slot && run->Contains(c.index)) continue;
      auto blob = blobs_.Get(c.slot);
      if (blob == nullptr || !blob->ChunkReady(c.index)) {
        ready = false;
        break;
      }
    }
  });
  return live && ready;
}

size_t FuseSession::ChunksReady(uint32_t slot, std::span<const uint32_t> indices) {
  size_t woken = 0;
  for (uint64_t token : parked_.TakeWaiters(slot, indices)) {
    if (!Servable(token, slot, nullptr)) continue;
    Pending* p = pending_.Claim(token);
    if (p == nullptr) continue;  // answered meanwhile (ResolveMiss on another thread)
    ScheduleRetry(p, token, false);
    ++woken;
  }
  return woken;
}

size_t FuseSession::ChunksDecoded(uint32_t slot, const cache::DecodedRun& run) {
  size_t served = 0;
  const readpath::DecodedSource src{slot, run};
  for (uint64_t token : parked_.Waiters(slot, run.Fresh())) {
    if (!Servable(token, slot, &run)) continue;
    Pending* p = pending_.Claim(token);
    if (p == nullptr) continue;  // answered meanwhile
    counters_.fill_served.fetch_add(1, std::memory_order_relaxed);
    ServeParked(p, token, false, &src);
    ++served;
  }
  return served;
}

int FuseSession::ResolveMiss(uint64_t token, int err) {
  Pending* p = pending_.Claim(token);
  if (p == nullptr) {
    // HOOK (miss-native): the cache fill wakes parked READs itself (ChunksReady from the fill
    // thread), so the handler's success answer normally finds its READ answered already. That
    // is the expected order, not a stale reply; a late error answer still counts as one.
    if (err != 0) counters_.stale_replies.fetch_add(1, std::memory_order_relaxed);
    return -ESTALE;
  }
  counters_.handler_replies.fetch_add(1, std::memory_order_relaxed);
  if (p->kind != PendingKind::kParkedRead) {
    return Garbage(p, "resolveMiss", "the token is not a read miss");
  }
  if (err != 0) {
    Unpark(p, token);
    FinishPending(p, WriteError(*p->req, p->unique, err > 0 && err <= kMaxErrno ? err : EIO), true);
    pending_.Release(p);
    return 0;
  }
  ScheduleRetry(p, token, true);
  return 0;
}

void FuseSession::RunRetry(const readpath::Retry& retry) {
  const uint64_t token = retry.token;
  Pending* p = pending_.Claimed(token);
  if (p == nullptr) return;  // cannot happen: the retry queue holds the claim
  counters_.miss_retries.fetch_add(1, std::memory_order_relaxed);
  ServeParked(p, token, retry.final, nullptr);
}

void FuseSession::ServeParked(Pending* p, uint64_t token, bool final,
                              const readpath::DecodedSource* decoded) {
  transport::SliceWriter out(p->req->out());
  if (out.capacity() < sizeof(fuse_out_header)) {
    Unpark(p, token);
    p->req->Complete(0);
    pending_.Release(p);
    return;
  }
  std::vector<readpath::ChunkRef> missing;
  readpath::ReadStats stats;
  const auto res =
      readpath::ServeRead(*p->table, blobs_, p->args[1], static_cast<uint32_t>(p->args[2]), out,
                          sizeof(fuse_out_header), &missing, &stats, decoded);
  AddReadStats(stats);
  if (res.status == readpath::ReadStatus::kMissing && !final) {
    // Woken by ChunksReady but something is missing again (evicted, or another chunk): keep
    // waiting, and ask the handler again since its first miss may already be answered.
    parked_.RemoveWaiters(token, p->missing);
    p->missing = std::move(missing);
    parked_.AddWaiters(token, p->missing);
    pending_.Unclaim(p);
    upcalls_.PushToken(kUpcallReadMiss, token);
    return;
  }
  Unpark(p, token);
  uint32_t written;
  bool error = false;
  switch (res.status) {
    case readpath::ReadStatus::kDone:
      counters_.fast_reads.fetch_add(1, std::memory_order_relaxed);
      counters_.fast_read_bytes.fetch_add(res.bytes, std::memory_order_relaxed);
      written = WriteHeader(*p->req, p->unique, res.bytes);
      break;
    case readpath::ReadStatus::kMissing:
      NLOG_ERROR(kLog,
                 "read miss resolved but %zu chunk(s) still missing (first: blob slot %u chunk "
                 "%u); READ fails with EIO",
                 missing.size(), missing[0].slot, missing[0].index);
      counters_.garbage_replies.fetch_add(1, std::memory_order_relaxed);
      written = WriteError(*p->req, p->unique, EIO);
      error = true;
      break;
    case readpath::ReadStatus::kError:
    default:
      written = WriteError(*p->req, p->unique, res.err);
      error = true;
      break;
  }
  FinishPending(p, written, error);
  pending_.Release(p);
}

size_t FuseSession::FailParked(uint64_t lo, uint64_t hi, int err) {
  auto in = [lo, hi](uint64_t n) { return n >= lo && n < hi; };
  std::vector<Pending*> failed;
  // Woken READs queued for the retry thread hold their claim: take those of the range off the
  // queue (one being retried right now completes, or parks again, first).
  const auto queued = parked_.TakeRetriesIf([&](uint64_t token) {
    const Pending* p = pending_.Claimed(token);
    return p != nullptr && in(p->nodeid);
  });
  for (const readpath::Retry& q : queued) {
    if (Pending* p = pending_.Claimed(q.token)) failed.push_back(p);
  }
  // Parked READs only move to the retry queue through ChunksReady/ResolveMiss, which run on the
  // owner's thread like this call: none can slip past between the two steps.
  pending_.ClaimIf(
      [&](const Pending& p) { return p.kind == PendingKind::kParkedRead && in(p.nodeid); },
      &failed);
  const int e = err > 0 && err <= kMaxErrno ? err : EIO;
  for (Pending* p : failed) {
    Unpark(p, PendingTable::TokenOf(p->index, p->generation));
    FinishPending(p, WriteError(*p->req, p->unique, e), true);
    pending_.Release(p);
  }
  return failed.size();
}

}  // namespace nydus::fuse
