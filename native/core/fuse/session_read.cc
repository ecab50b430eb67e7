// The READ fast path of FuseSession: serving READs from extent tables inline, parking READs on
// missing chunks, and completing them when the handler has filled the cache.
#include <bitset>
#include <cstring>

#include "common/log.h"
#include "fuse/reply.h"
#include "fuse/session.h"
#include "fuse/slices.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";

uint64_t KeyOf(const readpath::ChunkRef& c) {
  return (static_cast<uint64_t>(c.slot) << 32) | c.index;
}

// Reused by every READ on this thread: a miss list without an allocation per request.
thread_local std::vector<readpath::ChunkRef> t_missing;

}  // namespace

void FuseSession::AddReadStats(const readpath::ReadStats& s) {
  auto add = [](std::atomic<uint64_t>& a, uint64_t v) {
    if (v != 0) a.fetch_add(v, std::memory_order_relaxed);
  };
  add(counters_.preadv_calls, s.preadv_calls);
  add(counters_.bytes_from_cache, s.bytes_from_cache);
  add(counters_.bytes_decompressed, s.bytes_decompressed);
  add(counters_.bytes_zero, s.bytes_zero);
  add(counters_.chunk_cache_hits, s.chunk_cache_hits);
}

void FuseSession::SetExtents(uint64_t fh, std::shared_ptr<const readpath::ExtentTable> table) {
  std::shared_ptr<const readpath::ExtentTable> old;
  std::unique_lock lock(extents_mu_);
  auto& slot = extents_[fh];
  old.swap(slot);
  slot = std::move(table);
}

bool FuseSession::RemoveExtents(uint64_t fh) {
  std::shared_ptr<const readpath::ExtentTable> old;
  std::unique_lock lock(extents_mu_);
  auto it = extents_.find(fh);
  if (it == extents_.end()) return false;
  old.swap(it->second);
  extents_.erase(it);
  return true;
}

size_t FuseSession::InvalidateNodes(uint64_t lo, uint64_t hi,
                                    std::span<const uint32_t> blob_slots) {
  std::bitset<readpath::kMaxBlobSlots> gone;
  for (uint32_t s : blob_slots) {
    if (s < readpath::kMaxBlobSlots) gone.set(s);
  }
  std::vector<std::shared_ptr<const readpath::ExtentTable>> dropped;
  {
    std::unique_lock lock(extents_mu_);
    reply_cache_.InvalidateNodes(lo, hi);
    if (gone.none()) return 0;
    for (auto it = extents_.begin(); it != extents_.end();) {
      bool uses = false;
      for (const auto& e : it->second->extents()) {
        if ((e.flags & readpath::kExtentHole) == 0 && gone.test(e.blob_slot)) {
          uses = true;
          break;
        }
      }
      if (uses) {
        dropped.push_back(std::move(it->second));
        it = extents_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Tables are freed here, outside the lock (a READ in progress may still hold one).
  return dropped.size();
}

size_t FuseSession::FailParked(uint64_t lo, uint64_t hi, int err) {
  auto in = [lo, hi](uint64_t n) { return n >= lo && n < hi; };
  std::vector<Pending*> failed;
  {
    std::unique_lock lock(miss_mu_);
    // A READ of the range being retried right now completes with the blobs it has; woken READs
    // still queued for the retry thread are claimed already: take them off the queue.
    retry_idle_cv_.wait(lock,
                        [&] { return retry_current_ == nullptr || !in(retry_current_->nodeid); });
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (in(it->p->nodeid)) {
        failed.push_back(it->p);
        it = retries_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Parked READs only move to the retry queue through ChunksReady/ResolveMiss, which run on the
  // owner's thread like this call: none can slip past between the two steps.
  pending_.ClaimIf(
      [&](const Pending& p) { return p.kind == PendingKind::kParkedRead && in(p.nodeid); },
      &failed);
  for (Pending* p : failed) {
    UnregisterWaiters(PendingTable::TokenOf(p->index, p->generation), p->missing);
    counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
    FinishPending(p, WriteError(*p->req, p->unique, err > 0 && err <= kMaxErrno ? err : EIO), true);
    pending_.Release(p);
  }
  return failed.size();
}

std::shared_ptr<const readpath::ExtentTable> FuseSession::TableFor(uint64_t fh) const {
  std::shared_lock lock(extents_mu_);
  if (extents_.empty()) return nullptr;
  auto it = extents_.find(fh);
  return it == extents_.end() ? nullptr : it->second;
}

void FuseSession::HandleRead(Request& r) {
  auto table = TableFor(r.d.arg.read.fh);
  if (table != nullptr) {
    ServeFastRead(r, std::move(table));
    return;
  }
  HandleUpcall(r);
}

void FuseSession::ServeFastRead(Request& r, std::shared_ptr<const readpath::ExtentTable> table) {
  SliceWriter out(r.req->out());
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
  RegisterWaiters(token, p->missing);
  QueueItem item{kUpcallReadMiss};
  item.token = token;
  Enqueue(std::move(item));
}

void FuseSession::RegisterWaiters(uint64_t token, const std::vector<readpath::ChunkRef>& missing) {
  std::lock_guard lock(miss_mu_);
  for (const auto& c : missing) waiters_[KeyOf(c)].push_back(token);
}

void FuseSession::UnregisterWaiters(uint64_t token,
                                    const std::vector<readpath::ChunkRef>& missing) {
  std::lock_guard lock(miss_mu_);
  for (const auto& c : missing) {
    auto it = waiters_.find(KeyOf(c));
    if (it == waiters_.end()) continue;
    auto& v = it->second;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == token) {
        v[i] = v.back();
        v.pop_back();
        break;
      }
    }
    if (v.empty()) waiters_.erase(it);
  }
}

size_t FuseSession::ChunksReady(uint32_t slot, std::span<const uint32_t> indices) {
  std::vector<uint64_t> tokens;
  {
    std::lock_guard lock(miss_mu_);
    for (uint32_t index : indices) {
      auto it = waiters_.find(KeyOf({slot, index}));
      if (it == waiters_.end()) continue;
      tokens.insert(tokens.end(), it->second.begin(), it->second.end());
      waiters_.erase(it);
    }
  }
  size_t woken = 0;
  for (uint64_t token : tokens) {
    bool ready = false;
    bool live = pending_.Peek(token, [&](Pending& p) {
      if (p.kind != PendingKind::kParkedRead) return;
      ready = true;
      for (const auto& c : p.missing) {
        auto blob = blobs_.Get(c.slot);
        if (blob == nullptr || !blob->ChunkReady(c.index)) {
          ready = false;
          break;
        }
      }
    });
    if (!live || !ready) continue;
    Pending* p = pending_.Claim(token);
    if (p == nullptr) continue;  // answered meanwhile (ResolveMiss on another thread)
    EnsureRetryThread();
    {
      std::lock_guard lock(miss_mu_);
      retries_.push_back({p, false});
    }
    retry_cv_.notify_one();
    ++woken;
  }
  return woken;
}

int FuseSession::ResolveMiss(uint64_t token, int err) {
  Pending* p = pending_.Claim(token);
  if (p == nullptr) {
    counters_.stale_replies.fetch_add(1, std::memory_order_relaxed);
    return -ESTALE;
  }
  counters_.handler_replies.fetch_add(1, std::memory_order_relaxed);
  if (p->kind != PendingKind::kParkedRead) {
    return Garbage(p, "resolveMiss", "the token is not a read miss");
  }
  if (err != 0) {
    UnregisterWaiters(token, p->missing);
    counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
    FinishPending(p, WriteError(*p->req, p->unique, err > 0 && err <= kMaxErrno ? err : EIO), true);
    pending_.Release(p);
    return 0;
  }
  EnsureRetryThread();
  {
    std::lock_guard lock(miss_mu_);
    retries_.push_back({p, true});
  }
  retry_cv_.notify_one();
  return 0;
}

void FuseSession::EnsureRetryThread() {
  std::lock_guard lock(miss_mu_);
  if (retry_thread_.joinable() || retry_stop_) return;
  retry_thread_ = std::thread([this] { RetryLoop(); });
}

void FuseSession::RetryLoop() {
  std::unique_lock lock(miss_mu_);
  for (;;) {
    retry_cv_.wait(lock, [this] { return retry_stop_ || !retries_.empty(); });
    if (retry_stop_) return;  // Shutdown() fails whatever is left
    RetryItem item = retries_.front();
    retries_.pop_front();
    retry_current_ = item.p;
    lock.unlock();
    RunRetry(item);
    lock.lock();
    retry_current_ = nullptr;
    retry_idle_cv_.notify_all();
  }
}

void FuseSession::RunRetry(RetryItem item) {
  Pending* p = item.p;
  counters_.miss_retries.fetch_add(1, std::memory_order_relaxed);
  const uint64_t token = PendingTable::TokenOf(p->index, p->generation);
  SliceWriter out(p->req->out());
  if (out.capacity() < sizeof(fuse_out_header)) {
    UnregisterWaiters(token, p->missing);
    counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
    p->req->Complete(0);
    pending_.Release(p);
    return;
  }
  std::vector<readpath::ChunkRef> missing;
  readpath::ReadStats stats;
  const auto res =
      readpath::ServeRead(*p->table, blobs_, p->args[1], static_cast<uint32_t>(p->args[2]), out,
                          sizeof(fuse_out_header), &missing, &stats);
  AddReadStats(stats);
  if (res.status == readpath::ReadStatus::kMissing && !item.final) {
    // Woken by ChunksReady but something is missing again (evicted, or another chunk): keep
    // waiting, and ask the handler again since its first miss may already be answered.
    UnregisterWaiters(token, p->missing);
    p->missing = std::move(missing);
    RegisterWaiters(token, p->missing);
    pending_.Unclaim(p);
    QueueItem again{kUpcallReadMiss};
    again.token = token;
    Enqueue(std::move(again));
    return;
  }
  UnregisterWaiters(token, p->missing);
  counters_.parked_now.fetch_sub(1, std::memory_order_relaxed);
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

}  // namespace nydus::fuse
