// Counters of the vhost-user backend. Updated with relaxed atomics from the control thread, the
// queue workers and completing threads; read as a snapshot (BackendStats) by GetStats(). The
// list of counters is NYDUS_ABI_VIRTIO_STATS (abi/js_abi.h), which also names them for
// TypeScript.
#pragma once

#include <atomic>
#include <cstdint>

#include "abi/js_abi.h"

namespace nydus::vhost {

struct BackendStats {
  NYDUS_ABI_VIRTIO_STATS(NYDUS_ABI_STAT_FIELD)
};

struct BackendCounters {
  NYDUS_ABI_VIRTIO_STATS(NYDUS_ABI_STAT_ATOMIC)

  // ORDERING: statistics only; no other memory is published through these counters.
  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  BackendStats Snapshot() const {
    BackendStats s;
#define NYDUS_LOAD_(name, js) s.name = name.load(std::memory_order_relaxed);
    NYDUS_ABI_VIRTIO_STATS(NYDUS_LOAD_)
#undef NYDUS_LOAD_
    return s;
  }
};

}  // namespace nydus::vhost
