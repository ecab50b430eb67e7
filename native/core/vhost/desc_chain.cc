#include "vhost/desc_chain.h"

#include <errno.h>
#include <string.h>

#include "transport/slices.h"

namespace nydus::vhost {
namespace {

// Reads descriptors of one table (the queue's own, or an indirect table that may straddle
// adjacent memory regions). Each Read copies the 16 bytes once into a local.
class DescTable {
 public:
  static constexpr size_t kMaxParts = 4;

  void SetContiguous(const uint8_t* base, uint32_t entries) {
    parts_[0] = {const_cast<uint8_t*>(base), size_t{entries} * sizeof(VirtqDesc)};
    num_parts_ = 1;
    entries_ = entries;
  }
  // Maps an indirect table; false if any byte is unmapped or it needs too many pieces.
  bool SetIndirect(const GuestMemory& mem, uint64_t gpa, uint32_t len) {
    num_parts_ = 0;
    if (mem.TranslateGpa(gpa, len, parts_, kMaxParts, &num_parts_) != 0) return false;
    entries_ = len / sizeof(VirtqDesc);
    return true;
  }
  uint32_t entries() const { return entries_; }

  VirtqDesc Read(uint32_t i) const {
    VirtqDesc d;
    // SAFETY: i < entries_ (checked by the walker), so the 16 bytes lie inside the parts, which
    // are mapped guest memory. The guest may be writing the table concurrently; the copy takes
    // one snapshot and every field is validated after it (reference §2.4 TOCTOU).
    transport::CopyOut(std::span<const transport::IoSlice>(parts_, num_parts_),
                       size_t{i} * sizeof(VirtqDesc), &d, sizeof(d));
    return d;
  }

 private:
  transport::IoSlice parts_[kMaxParts];
  size_t num_parts_ = 0;
  uint32_t entries_ = 0;
};

}  // namespace

const char* ChainErrorName(ChainError e) {
  switch (e) {
    case ChainError::kNone:
      return "none";
    case ChainError::kZeroLength:
      return "zero-length descriptor";
    case ChainError::kUnmapped:
      return "buffer outside guest memory";
    case ChainError::kWriteBeforeRead:
      return "readable descriptor after a writable one";
    case ChainError::kTooManySlices:
      return "too many buffer pieces";
    case ChainError::kNextOutOfRange:
      return "next index out of range";
    case ChainError::kTooLong:
      return "chain longer than its table (loop?)";
    case ChainError::kNestedIndirect:
      return "nested indirect table";
    case ChainError::kIndirectWithNext:
      return "indirect descriptor with NEXT";
    case ChainError::kBadIndirectTable:
      return "malformed indirect table";
    case ChainError::kTooLarge:
      return "chain larger than 4 GiB";
  }
  return "?";
}

ChainError WalkChain(const GuestMemory& mem, const uint8_t* desc_table, uint32_t queue_size,
                     uint16_t head, ChainScratch* s) {
  s->num_in = s->num_out = 0;
  s->in_bytes = s->out_bytes = 0;
  s->descriptors = 0;
  s->used_indirect = false;
  ChainError first = ChainError::kNone;
  auto soft = [&first](ChainError e) {
    if (first == ChainError::kNone) first = e;
  };
  // A structural error wins over an earlier buffer error: it says more about the chain.
  auto hard = [](ChainError e) { return e; };

  DescTable table;
  table.SetContiguous(desc_table, queue_size);
  bool in_indirect = false;
  bool seen_writable = false;
  uint32_t index = head;
  // TTL (rust-vmm DescriptorChain, VIRTIO 1.2 §2.7.5.2): a chain visits at most as many
  // descriptors as its table holds; more means a loop. Reset when entering an indirect table.
  uint32_t ttl = queue_size;
  uint64_t total_len = 0;  // every data descriptor's length, mapped or not (§2.7.5.2)
  for (;;) {
    if (ttl == 0) return hard(ChainError::kTooLong);
    --ttl;
    const VirtqDesc d = table.Read(index);
    if ((d.flags & VIRTQ_DESC_F_INDIRECT) != 0) {
      if (in_indirect) return hard(ChainError::kNestedIndirect);
      if ((d.flags & VIRTQ_DESC_F_NEXT) != 0) return hard(ChainError::kIndirectWithNext);
      // §2.7.5.3.1: len is a multiple of 16; the table is part of the chain, so it cannot hold
      // more than queue_size descriptors.
      if (d.len == 0 || d.len % sizeof(VirtqDesc) != 0 || d.len / sizeof(VirtqDesc) > queue_size ||
          !table.SetIndirect(mem, d.addr, d.len)) {
        return hard(ChainError::kBadIndirectTable);
      }
      in_indirect = true;
      s->used_indirect = true;
      ttl = table.entries();
      index = 0;
      continue;
    }
    ++s->descriptors;
    const bool writable = (d.flags & VIRTQ_DESC_F_WRITE) != 0;
    total_len += d.len;  // at most 2 * 32768 additions of u32: cannot overflow u64
    if (total_len > UINT32_MAX) return hard(ChainError::kTooLarge);
    if (d.len == 0) {
      soft(ChainError::kZeroLength);
    } else if (!writable && seen_writable) {
      soft(ChainError::kWriteBeforeRead);
    } else {
      std::vector<transport::IoSlice>& v = writable ? s->out : s->in;
      size_t& n = writable ? s->num_out : s->num_in;
      size_t before = n;
      int rc = mem.TranslateGpa(d.addr, d.len, v.data(), v.size(), &n);
      if (rc == 0) {
        (writable ? s->out_bytes : s->in_bytes) += d.len;
      } else {
        n = before;  // drop the partial pieces of this buffer
        soft(rc == -E2BIG ? ChainError::kTooManySlices : ChainError::kUnmapped);
      }
      if (writable) seen_writable = true;
    }
    if ((d.flags & VIRTQ_DESC_F_NEXT) == 0) return first;
    if (d.next >= table.entries()) return hard(ChainError::kNextOutOfRange);
    index = d.next;
  }
}

}  // namespace nydus::vhost
