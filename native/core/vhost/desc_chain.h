// Walking one descriptor chain of a split virtqueue into host iovecs (VIRTIO 1.2 §2.7.5,
// §2.7.5.3 indirect descriptors; reference §2.3, §2.4).
//
// Everything here is guest-controlled. Each descriptor is copied out of guest memory exactly once
// before it is looked at (TOCTOU), every address goes through the memory table with overflow
// checks, and the walk is bounded: at most `queue_size` descriptors in the descriptor table
// (VIRTIO 1.2 §2.7.5.2: "driver MUST NOT create a descriptor chain longer than the Queue Size")
// and at most `table length` in an indirect table, which itself holds at most queue_size entries.
//
// Errors come in two kinds. Structural ones (next out of range, loop, nested or malformed
// indirect table, chain over 4 GiB) stop the walk. Buffer ones (zero length, unmapped address,
// readable after writable, too many pieces) skip that descriptor and continue, so the caller can
// still find the writable space and answer the request with an error instead of dropping it.
#pragma once

#include <cstdint>
#include <vector>

#include "transport/request.h"
#include "vhost/guest_memory.h"
#include "vhost/virtq.h"

namespace nydus::vhost {

enum class ChainError : uint8_t {
  kNone = 0,
  // Buffer errors (walk continues).
  kZeroLength,       // a data descriptor of length 0 (libvhost-user refuses these too)
  kUnmapped,         // some byte of a buffer is outside every memory region, or addr+len wraps
  kWriteBeforeRead,  // a device-readable descriptor after a device-writable one (§2.7.4.2)
  kTooManySlices,    // more host pieces than the per-worker iovec arrays hold
  // Structural errors (walk stops).
  kNextOutOfRange,    // next >= table size
  kTooLong,           // more descriptors than the table allows: a loop or an over-long chain
  kNestedIndirect,    // INDIRECT inside an indirect table (§2.7.5.3.1)
  kIndirectWithNext,  // INDIRECT together with NEXT (§2.7.5.3.1)
  kBadIndirectTable,  // length 0, not a multiple of 16, over queue_size entries, or unmapped
  kTooLarge,          // total length over 2^32 - 1 (§2.7.5.2)
};

const char* ChainErrorName(ChainError e);
constexpr bool IsStructural(ChainError e) { return e >= ChainError::kNextOutOfRange; }

// Per-worker scratch for one chain; the vectors are sized once (style rule 11) and never grow.
struct ChainScratch {
  explicit ChainScratch(size_t slice_capacity) : in(slice_capacity), out(slice_capacity) {}
  std::vector<transport::IoSlice> in;
  std::vector<transport::IoSlice> out;
  size_t num_in = 0;
  size_t num_out = 0;
  uint64_t in_bytes = 0;
  uint64_t out_bytes = 0;
  uint32_t descriptors = 0;  // data descriptors visited (indirect table pointers not counted)
  bool used_indirect = false;
};

// How many iovecs a worker needs so that a legal chain always fits: every descriptor of a chain
// of queue_size entries may be split once at a region boundary, plus slack for more regions.
constexpr size_t SliceCapacityFor(uint32_t queue_size) { return size_t{queue_size} * 2 + 64; }

// Walks the chain starting at `head` of the descriptor table `desc_table` (queue_size entries,
// in guest memory). head must be < queue_size (the caller checks; it is the queue's business).
// Fills `s` and returns the first error seen, or kNone.
ChainError WalkChain(const GuestMemory& mem, const uint8_t* desc_table, uint32_t queue_size,
                     uint16_t head, ChainScratch* s);

}  // namespace nydus::vhost
