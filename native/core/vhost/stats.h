// Counters of the vhost-user backend. Updated with relaxed atomics from the control thread, the
// queue workers and completing threads; read as a snapshot (BackendStats) by GetStats().
#pragma once

#include <atomic>
#include <cstdint>

namespace nydus::vhost {

struct BackendStats {
  uint64_t requests = 0;           // chains handed to the sink
  uint64_t bytes_in = 0;           // readable bytes of those chains
  uint64_t bytes_out = 0;          // bytes reported written at completion
  uint64_t bad_chains = 0;         // chains refused by the descriptor walk
  uint64_t broken_queues = 0;      // rings stopped because the driver broke the ring protocol
  uint64_t connections = 0;        // frontends accepted
  uint64_t messages = 0;           // vhost-user messages handled
  uint64_t protocol_errors = 0;    // malformed messages (each closed a connection)
  uint64_t refused_messages = 0;   // well-formed but unsupported or invalid messages
  uint64_t stale_completions = 0;  // completions after their ring stopped (dropped)
  uint64_t notifications = 0;      // call eventfd signals
};

struct BackendCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> bad_chains{0};
  std::atomic<uint64_t> broken_queues{0};
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> refused_messages{0};
  std::atomic<uint64_t> stale_completions{0};
  std::atomic<uint64_t> notifications{0};

  // ORDERING: statistics only; no other memory is published through these counters.
  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  BackendStats Snapshot() const {
    auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    BackendStats s;
    s.requests = r(requests);
    s.bytes_in = r(bytes_in);
    s.bytes_out = r(bytes_out);
    s.bad_chains = r(bad_chains);
    s.broken_queues = r(broken_queues);
    s.connections = r(connections);
    s.messages = r(messages);
    s.protocol_errors = r(protocol_errors);
    s.refused_messages = r(refused_messages);
    s.stale_completions = r(stale_completions);
    s.notifications = r(notifications);
    return s;
  }
};

}  // namespace nydus::vhost
