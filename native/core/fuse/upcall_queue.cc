#include "fuse/upcall_queue.h"

#include <cstring>

#include "common/log.h"

namespace nydus::fuse {
namespace {

constexpr const char* kLog = "fuse";
// Pairs per coalesced forget item.
constexpr size_t kMaxForgetPairs = 65536;

}  // namespace

template <typename Fn>
void UpcallQueue::Push(Fn&& append) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    append();
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  if (wake && listener_ != nullptr) listener_->OnUpcallsPending();
}

void UpcallQueue::PushToken(uint32_t kind, uint64_t token) {
  Push([&] {
    items_.emplace_back(kind);
    items_.back().token = token;
  });
}

void UpcallQueue::PushNotice(uint32_t kind, double a0, double a1, double a2, double a3) {
  Push([&] {
    Item& item = items_.emplace_back(kind);
    item.a[0] = a0;
    item.a[1] = a1;
    item.a[2] = a2;
    item.a[3] = a3;
  });
}

void UpcallQueue::PushForgets(const double* pairs, size_t n) {
  Push([&] {
    if (items_.empty() || items_.back().kind != kUpcallForget ||
        items_.back().forgets.size() + 2 * n > 2 * kMaxForgetPairs) {
      items_.emplace_back(kUpcallForget);
    }
    auto& f = items_.back().forgets;
    f.insert(f.end(), pairs, pairs + 2 * n);
  });
}

size_t UpcallQueue::Drain(UpcallArena* arena) {
  using U = abi::UpcallRecord;
  arena->count = 0;
  arena->bytes_used = 0;
  std::lock_guard lock(mu_);
  while (!items_.empty() && arena->count < arena->max_records) {
    Item& item = items_.front();
    double* rec = arena->records + arena->count * U::kStride;
    std::memset(rec, 0, U::kStride * sizeof(double));
    rec[U::kOpcode] = item.kind;
    if (item.kind == kUpcallForget) {
      const size_t at = (arena->bytes_used + 7) & ~size_t{7};
      const size_t room = at <= arena->bytes_cap ? (arena->bytes_cap - at) / 16 : 0;
      const size_t pairs = item.forgets.size() / 2;
      const size_t take = pairs < room ? pairs : room;
      if (take == 0) break;
      std::memcpy(arena->bytes + at, item.forgets.data(), take * 16);
      rec[U::kA0] = static_cast<double>(take);
      rec[U::kByteOffset] = static_cast<double>(at);
      rec[U::kByteLength] = static_cast<double>(take * 16);
      arena->bytes_used = at + take * 16;
      ++arena->count;
      if (take == pairs) {
        items_.pop_front();
      } else {
        item.forgets.erase(item.forgets.begin(), item.forgets.begin() + 2 * take);
      }
      continue;
    }
    if (item.kind == kUpcallInit || item.kind == kUpcallDestroy || item.kind == kUpcallClosed) {
      static_assert(U::kA1 == U::kA0 + 1 && U::kA2 == U::kA0 + 2 && U::kA3 == U::kA0 + 3);
      std::memcpy(rec + U::kA0, item.a, sizeof(item.a));
      ++arena->count;
      items_.pop_front();
      continue;
    }
    // A request (or read miss) by token: encode from its pending slot, if still live.
    bool fits = true;
    bool live = pending_->Peek(item.token, [&](Pending& p) {
      const bool miss = p.kind == PendingKind::kParkedRead;
      const bool payload = !p.payload.empty();
      const size_t at = miss || payload ? (arena->bytes_used + 7) & ~size_t{7} : arena->bytes_used;
      const size_t need = miss ? p.missing.size() * 8 : payload ? p.payload.size() : p.name_len;
      if (at > arena->bytes_cap || need > arena->bytes_cap - at) {
        fits = false;
        return;
      }
      rec[U::kToken] = static_cast<double>(item.token);
      rec[U::kOpcode] = miss ? kUpcallReadMiss : p.opcode;
      rec[U::kNodeid] = RecordNumber(p.nodeid);
      rec[U::kUid] = p.uid;
      rec[U::kGid] = p.gid;
      rec[U::kPid] = p.pid;
      if (p.opcode == FUSE_GETATTR && p.args[0] == UINT64_MAX) {
        rec[U::kA0] = abi::kNoFh;
      } else {
        rec[U::kA0] = RecordNumber(p.args[0]);
      }
      rec[U::kA1] = RecordNumber(p.args[1]);
      rec[U::kA2] = RecordNumber(p.args[2]);
      rec[U::kA3] = RecordNumber(p.args[3]);
      if (miss) {
        rec[U::kA3] = static_cast<double>(p.missing.size());
        for (size_t i = 0; i < p.missing.size(); ++i) {
          const uint32_t pair[2] = {p.missing[i].slot, p.missing[i].index};
          std::memcpy(arena->bytes + at + i * 8, pair, 8);
        }
      } else if (payload) {
        std::memcpy(arena->bytes + at, p.payload.data(), need);
      } else if (p.name_len > 0) {
        std::memcpy(arena->bytes + at, p.name, p.name_len);
      }
      rec[U::kByteOffset] = static_cast<double>(at);
      rec[U::kByteLength] = static_cast<double>(need);
      arena->bytes_used = at + need;
    });
    if (!fits) {
      if (arena->count > 0) break;
      // Cannot fit even into an empty arena: the arena is misconfigured; do not spin.
      NLOG_ERROR(kLog, "upcall arena too small (%zu bytes); request dropped", arena->bytes_cap);
      live = false;
    }
    if (live) ++arena->count;
    items_.pop_front();
  }
  if (items_.empty()) wake_pending_ = false;
  return arena->count;
}

}  // namespace nydus::fuse
