// libFuzzer target: descriptor chains and split rings over fuzzed guest memory.
//
// Guest memory is 96 KiB of one memfd in three regions: two adjacent ones (gpa 0x0-0x8000 and
// 0x8000-0x10000, mapped from distant file offsets so buffers crossing them are split) and a
// distant one at gpa 0x100000. The input bytes are copied over all of it, so descriptors,
// indirect tables, ring indices and heads are all fuzzed.
//
// Input header: u8 mode; u8 log2 queue size; u16 head / avail base; u16 desc, avail and used
// offsets (guest-physical, inside the first 64 KiB). Mode bit 0 walks one chain with
// WalkChain; bit 0 clear runs a whole Vring drain (pop, walk, sink, EIO answers, completion,
// used-ring publication and notification) with EVENT_IDX from bit 1.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "common/log.h"
#include "vhost/desc_chain.h"
#include "vhost/vring.h"

using namespace nydus::vhost;
using nydus::UniqueFd;

namespace {

constexpr size_t kFileSize = 0x40000;
constexpr uint64_t kUva = 0x7f0000000000;  // frontend addresses of the regions (any value works)

class Sink : public nydus::transport::FuseRequestSink {
 public:
  void OnRequest(nydus::transport::FuseRequest* r) override {
    // Touch the first and last byte of every slice: a slice outside the mapping faults. (Not
    // every byte: a chain may legally repeat the same 32 KiB buffer hundreds of times.)
    uint8_t sum = 0;
    for (const auto& s : r->in()) sum = static_cast<uint8_t>(sum + s.base[0] + s.base[s.len - 1]);
    for (const auto& s : r->out()) {
      s.base[0] = sum;
      s.base[s.len - 1] = sum;
    }
    r->Complete(static_cast<uint32_t>(r->out_bytes() > 16 ? 16 : r->out_bytes()));
  }
};

struct Fixture {
  Fixture() {
    fd = ::memfd_create("fuzz-guest", MFD_CLOEXEC);
    (void)!::ftruncate(fd, kFileSize);
    writable = static_cast<uint8_t*>(
        ::mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    std::string err;
    auto a = MappedRegion::Map(fd, {0x0, 0x8000, kUva, 0x20000}, &err);
    auto b = MappedRegion::Map(fd, {0x8000, 0x8000, kUva + 0x8000, 0x0}, &err);
    auto c = MappedRegion::Map(fd, {0x100000, 0x8000, kUva + 0x100000, 0x10000}, &err);
    memory = std::make_shared<const GuestMemory>(
        std::vector<std::shared_ptr<const MappedRegion>>{a, b, c});
    table.Replace(memory);
    counters = std::make_shared<BackendCounters>();
    VringOptions o;
    o.index = 1;
    o.max_queue_size = 256;
    o.sink = &sink;
    o.memory = &table;
    o.counters = counters;
    o.spawn_worker = false;
    o.max_rounds_per_drain = 2;
    vring = std::make_shared<Vring>(o);
    vring->SetCallFd(UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
    vring->SetErrFd(UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
  }
  // Input bytes land in guest order: gpa 0..0x10000 then 0x100000..
  void Load(const uint8_t* data, size_t size) {
    memset(writable, 0, kFileSize);
    auto put = [&](size_t file_off, size_t from, size_t n) {
      if (from < size) memcpy(writable + file_off, data + from, std::min(n, size - from));
    };
    put(0x20000, 0, 0x8000);
    put(0x0, 0x8000, 0x8000);
    put(0x10000, 0x10000, 0x8000);
  }
  int fd;
  uint8_t* writable;
  std::shared_ptr<const GuestMemory> memory;
  MemoryTable table;
  Sink sink;
  std::shared_ptr<BackendCounters> counters;
  std::shared_ptr<Vring> vring;
  ChainScratch scratch{SliceCapacityFor(256)};
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  nydus::SetLogLevel(nydus::LogLevel::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size < 10) return 0;
  const uint8_t mode = data[0];
  const uint32_t qsz = 1u << (data[1] % 9);  // 1..256
  uint16_t head, desc_off, avail_off, used_off;
  memcpy(&head, data + 2, 2);
  memcpy(&desc_off, data + 4, 2);
  memcpy(&avail_off, data + 6, 2);
  memcpy(&used_off, data + 8, 2);
  f.Load(data, size);
  if ((mode & 1) != 0) {
    const uint8_t* table = f.memory->GpaToHost(desc_off & ~0xfu, DescTableBytes(qsz));
    if (table == nullptr) return 0;
    WalkChain(*f.memory, table, qsz, static_cast<uint16_t>(head % qsz), &f.scratch);
    return 0;
  }
  Vring::Config& c = f.vring->config();
  c.num = qsz;
  c.addr_set = true;
  c.desc_uva = kUva + (desc_off & ~0xfu);
  c.avail_uva = kUva + (avail_off & ~0x1u);
  c.used_uva = kUva + (used_off & ~0x3u);
  c.base = head;
  std::string err;
  if (f.vring->Start(f.memory, (mode & 2) != 0, &err) != 0) return 0;
  f.vring->SetEnabled(true);
  f.vring->DrainForTest();
  f.vring->Stop(std::chrono::milliseconds(0));
  return 0;
}
