// Descriptor-chain walking against chains built by the driver-side mock queue the way Linux 6.1
// builds them (reference §2.5), plus the malicious variants of reference §7.3 item 2.
#include <errno.h>

#include <cstring>
#include <memory>

#include "driver/frontend/driver_queue.h"
#include "driver/frontend/guest_ram.h"
#include "testing.h"
#include "vhost/desc_chain.h"
#include "vhost/split_ring.h"

using namespace nydus::vhost;
namespace frontend = nydus::driver::frontend;
using frontend::DriverQueue;
using frontend::GuestRam;
using frontend::RamLayout;

namespace {

struct Fixture {
  explicit Fixture(uint16_t qsz = 256, RamLayout layout = RamLayout::kQemuSplit) {
    std::string err;
    ram = GuestRam::Create(16 << 20, layout, &err);
    q.Init(ram.get(), qsz, true, 64, &err);
    std::vector<std::shared_ptr<const MappedRegion>> maps;
    for (const auto& r : ram->Regions()) maps.push_back(MappedRegion::Map(ram->fd(), r, &err));
    mem = GuestMemory(maps);
  }
  ChainError Walk(uint16_t head) {
    return WalkChain(mem, ram->Host(q.desc_gpa(), DescTableBytes(q.size())), q.size(), head, &s);
  }
  std::unique_ptr<GuestRam> ram;
  DriverQueue q;
  GuestMemory mem;
  ChainScratch s{SliceCapacityFor(256)};
};

using B = DriverQueue::Buffer;

}  // namespace

NTEST(VirtqueueChain, LinuxGetattrInIndirectTable) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  memcpy(f.ram->Host(buf, 4), "FUSE", 4);
  B bufs[] = {{buf, 40, false}, {buf + 40, 16, false}, {buf + 64, 16, true}, {buf + 80, 104, true}};
  int head = f.q.Add(bufs, 4, true);
  NASSERT_GE(head, 0);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(head)), ChainError::kNone);
  NEXPECT_TRUE(f.s.used_indirect);
  NEXPECT_EQ(f.s.num_in, size_t{2});
  NEXPECT_EQ(f.s.num_out, size_t{2});
  NEXPECT_EQ(f.s.in_bytes, 56u);
  NEXPECT_EQ(f.s.out_bytes, 120u);
  NEXPECT_EQ(memcmp(f.s.in[0].base, "FUSE", 4), 0);  // the device's own mapping of the bytes
  NEXPECT_EQ(f.s.descriptors, 4u);
}

NTEST(VirtqueueChain, DirectForgetAndDirectMulti) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  B forget[] = {{buf, 48, false}};
  int h1 = f.q.Add(forget, 1, true);  // single buffer: direct even with indirect on
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h1)), ChainError::kNone);
  NEXPECT_FALSE(f.s.used_indirect);
  NEXPECT_EQ(f.s.num_out, size_t{0});
  B multi[] = {{buf, 40, false}, {buf + 64, 16, true}, {buf + 128, 4096 - 128, true}};
  int h2 = f.q.Add(multi, 3, false);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h2)), ChainError::kNone);
  NEXPECT_EQ(f.s.num_out, size_t{2});
}

NTEST(VirtqueueChain, ReadOf1MiBFits) {
  Fixture f(1024);
  uint64_t hdr = f.ram->Alloc(4096, 4096);
  uint64_t pages = f.ram->Alloc(1 << 20, 4096);
  std::vector<B> bufs = {{hdr, 40, false}, {hdr + 40, 40, false}, {hdr + 128, 16, true}};
  for (int i = 0; i < 256; ++i) bufs.push_back({pages + uint64_t(i) * 4096, 4096, true});
  DriverQueue big;
  std::string err;
  NASSERT_EQ(big.Init(f.ram.get(), 1024, true, 272, &err), 0);
  int head = big.Add(bufs.data(), bufs.size(), true);
  NASSERT_GE(head, 0);
  ChainScratch s(SliceCapacityFor(1024));
  NEXPECT_EQ(WalkChain(f.mem, f.ram->Host(big.desc_gpa(), DescTableBytes(1024)), 1024,
                       static_cast<uint16_t>(head), &s),
             ChainError::kNone);
  NEXPECT_EQ(s.out_bytes, uint64_t{16 + (1 << 20)});
}

NTEST(VirtqueueChain, BufferSpanningAdjacentRegionsIsSplit) {
  // Device view: the single RAM file split into two adjacent regions at 8 MiB.
  Fixture f(256, RamLayout::kSingle);
  std::string err;
  auto lo = MappedRegion::Map(f.ram->fd(), {0, 8 << 20, f.ram->Uva(0), 0}, &err);
  auto hi = MappedRegion::Map(f.ram->fd(), {8 << 20, 8 << 20, f.ram->Uva(8 << 20), 8 << 20}, &err);
  f.mem = GuestMemory({lo, hi});
  B bufs[] = {{0x100000, 40, false}, {(8 << 20) - 100, 200, true}};
  int head = f.q.Add(bufs, 2, true);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(head)), ChainError::kNone);
  NEXPECT_EQ(f.s.num_out, size_t{2});
  NEXPECT_EQ(f.s.out[0].len, size_t{100});
  NEXPECT_EQ(f.s.out_bytes, 200u);
}

NTEST(VirtqueueChain, LoopIsStoppedByTtl) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  B bufs[] = {{buf, 40, false}, {buf + 64, 16, true}};
  int head = f.q.Add(bufs, 2, false);
  auto chain = f.q.ChainOf(static_cast<uint16_t>(head));
  VirtqDesc* last = f.q.Desc(chain.back());
  last->flags |= VIRTQ_DESC_F_NEXT;
  last->next = chain.front();
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(head)), ChainError::kTooLong);
  // A loop inside an indirect table too.
  B more[] = {{buf, 40, false}, {buf + 64, 16, true}, {buf + 128, 16, true}};
  int h2 = f.q.Add(more, 3, true);
  VirtqDesc* t = f.q.IndirectTable(static_cast<uint16_t>(h2));
  t[2].flags |= VIRTQ_DESC_F_NEXT;
  t[2].next = 1;
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h2)), ChainError::kTooLong);
}

NTEST(VirtqueueChain, StructuralErrors) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  B bufs[] = {{buf, 40, false}, {buf + 64, 16, true}};
  // next out of range in the ring and in a table.
  int h = f.q.Add(bufs, 2, false);
  f.q.Desc(f.q.ChainOf(static_cast<uint16_t>(h)).front())->next = 300;
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kNextOutOfRange);
  h = f.q.Add(bufs, 2, true);
  f.q.IndirectTable(static_cast<uint16_t>(h))[0].next = 2;
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kNextOutOfRange);
  // Nested indirect.
  h = f.q.Add(bufs, 2, true);
  f.q.IndirectTable(static_cast<uint16_t>(h))[1].flags |= VIRTQ_DESC_F_INDIRECT;
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kNestedIndirect);
  // INDIRECT together with NEXT.
  h = f.q.Add(bufs, 2, true);
  f.q.Desc(static_cast<uint16_t>(h))->flags |= VIRTQ_DESC_F_NEXT;
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kIndirectWithNext);
  // Table length not a multiple of 16, zero, too long, unmapped.
  for (uint32_t len : {33u, 0u, 16u * 300}) {
    h = f.q.Add(bufs, 2, true);
    f.q.Desc(static_cast<uint16_t>(h))->len = len;
    NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kBadIndirectTable);
  }
  h = f.q.Add(bufs, 2, true);
  f.q.Desc(static_cast<uint16_t>(h))->addr = 0xa0000;  // the VGA hole
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kBadIndirectTable);
  // Over 4 GiB in total (checked before translation).
  B huge[] = {{buf, 0xc0000000u, false}, {buf, 0xc0000000u, true}};
  h = f.q.Add(huge, 2, true);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kTooLarge);
}

NTEST(VirtqueueChain, BufferErrorsKeepTheWritableSpace) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  // Zero length: reported, but the rest of the chain is still collected.
  B zero[] = {{buf, 40, false}, {buf + 40, 0, false}, {buf + 64, 16, true}};
  int h = f.q.Add(zero, 3, true);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kZeroLength);
  NEXPECT_EQ(f.s.in_bytes, 40u);
  NEXPECT_EQ(f.s.out_bytes, 16u);
  // Readable after writable.
  B order[] = {{buf, 40, false}, {buf + 64, 16, true}, {buf + 128, 8, false}};
  h = f.q.Add(order, 3, true);
  NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kWriteBeforeRead);
  NEXPECT_EQ(f.s.in_bytes, 40u);
  NEXPECT_EQ(f.s.out_bytes, 16u);
  // Unmapped data buffer (beyond RAM, in the hole, wrapping).
  for (uint64_t bad : {uint64_t{1} << 40, uint64_t{0xa0000}, ~uint64_t{0} - 8}) {
    B unmapped[] = {{buf, 40, false}, {bad, 16, false}, {buf + 64, 16, true}};
    h = f.q.Add(unmapped, 3, true);
    NEXPECT_EQ(f.Walk(static_cast<uint16_t>(h)), ChainError::kUnmapped);
    NEXPECT_EQ(f.s.out_bytes, 16u);
  }
}

NTEST(VirtqueueChain, TooManyPiecesIsABufferError) {
  Fixture f;
  uint64_t buf = f.ram->Alloc(4096, 4096);
  std::vector<B> bufs(40, B{buf, 8, true});
  bufs[0] = {buf, 40, false};
  int h = f.q.Add(bufs.data(), bufs.size(), true);
  ChainScratch tiny(8);
  NEXPECT_EQ(WalkChain(f.mem, f.ram->Host(f.q.desc_gpa(), DescTableBytes(256)), 256,
                       static_cast<uint16_t>(h), &tiny),
             ChainError::kTooManySlices);
}

NTEST(VirtqueueRing, AvailJumpAndNotificationSuppression) {
  Fixture f(8);
  SplitRing ring;
  SplitRing::Layout l{f.ram->Host(f.q.desc_gpa(), DescTableBytes(8)),
                      f.ram->Host(f.q.avail_gpa(), AvailRingBytes(8)),
                      f.ram->Host(f.q.used_gpa(), UsedRingBytes(8))};
  ring.Attach(l, 8, 0, true);
  uint16_t n = 0;
  NEXPECT_TRUE(ring.Pending(&n));
  NEXPECT_EQ(n, 0);
  f.q.SetAvailIdxRaw(9);  // more than the queue size ahead
  f.q.Publish();
  NEXPECT_FALSE(ring.Pending(&n));
  f.q.SetAvailIdxRaw(8);
  f.q.Publish();
  NEXPECT_TRUE(ring.Pending(&n));
  NEXPECT_EQ(n, 8);
  // EVENT_IDX: the first publication always notifies; later ones only when they cross
  // used_event, which the driver sets when it re-arms.
  ring.AddUsed(0, 0);
  NEXPECT_TRUE(ring.Publish());
  NEXPECT_TRUE(ring.NeedsNotify());
  ring.AddUsed(1, 0);
  ring.Publish();
  NEXPECT_FALSE(ring.NeedsNotify());  // used_event is still 0
  std::vector<VirtqUsedElem> got;
  f.q.Collect(&got);
  NEXPECT_EQ(got.size(), size_t{2});
  f.q.ArmInterrupt();  // used_event = 2
  ring.AddUsed(2, 0);
  ring.Publish();
  NEXPECT_TRUE(ring.NeedsNotify());
  NEXPECT_FALSE(ring.Publish());  // nothing new: no second store
  // Kick suppression: avail_event follows last_avail after AllowKicks.
  ring.ConsumeOne();
  ring.ConsumeOne();
  ring.AllowKicks();
  f.q.SetAvailIdxRaw(8);
  NEXPECT_FALSE(f.q.Publish());  // avail_event = 2, index did not cross it
}
