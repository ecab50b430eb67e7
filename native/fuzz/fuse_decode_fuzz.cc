// libFuzzer target: random FUSE requests (after a valid INIT, or not) through the decoder and the
// session's dispatch, with an in-memory transport and a handler whose answers are also drawn
// from the input (valid, garbage, mismatched, missing). Checks the invariants every transport
// relies on: each request completed exactly once, never more bytes than the writable space, and
// every reply a well-formed fuse_out_header (len == bytes written, echoed unique, error 0 or
// -errno with errno < 512, error replies header-only).
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cache/chunk_map.h"
#include "common/log.h"
#include "fuse/session.h"
#include "fuse/upcall.h"

namespace {

using nydus::transport::FuseRequest;
using nydus::transport::IoSlice;

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

class Input {
 public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return pos_ >= n_; }
  uint8_t U8() { return pos_ < n_ ? d_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return U16() | (static_cast<uint32_t>(U16()) << 16); }
  std::vector<uint8_t> Bytes(size_t n) {
    size_t take = n < n_ - pos_ ? n : n_ - pos_;
    std::vector<uint8_t> v(d_ + pos_, d_ + pos_ + take);
    pos_ += take;
    return v;
  }
  double Num() {
    switch (U8() % 8) {
      case 0:
        return 0;
      case 1:
        return U8();
      case 2:
        return U32();
      case 3:
        return -1;
      case 4:
        return 0.5 * U16();
      case 5:
        return 9007199254740992.0;
      case 6:
        return static_cast<double>(U32()) * 65536.0;
      default:
        return 0100644;
    }
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

class FuzzRequest final : public FuseRequest {
 public:
  FuzzRequest(std::vector<uint8_t> in, size_t out_cap, size_t in_piece, size_t out_piece)
      : FuseRequest(nydus::transport::TransportKind::kVirtio), in_buf_(std::move(in)) {
    out_buf_ = std::make_unique<uint8_t[]>(out_cap + 1);
    out_cap_ = out_cap;
    Cut(in_buf_.data(), in_buf_.size(), in_piece, &in_slices_);
    Cut(out_buf_.get(), out_cap, out_piece, &out_slices_);
    in_ = in_slices_;
    out_ = out_slices_;
    in_bytes_ = in_buf_.size();
    out_bytes_ = out_cap;
    out_buf_[out_cap] = 0x5C;  // canary just past the writable space
  }
  ~FuzzRequest() override = default;

  void Complete(uint32_t written) override {
    FUZZ_CHECK(completions_.fetch_add(1) == 0);
    written_ = written;
  }

  void Check() const {
    FUZZ_CHECK(completions_.load() == 1);
    FUZZ_CHECK(written_ <= out_cap_);
    FUZZ_CHECK(out_buf_[out_cap_] == 0x5C);
    if (written_ == 0) return;
    FUZZ_CHECK(written_ >= sizeof(fuse_out_header));
    fuse_out_header h;
    std::memcpy(&h, out_buf_.get(), sizeof(h));
    FUZZ_CHECK(h.len == written_);
    FUZZ_CHECK(h.error <= 0 && h.error > -512);
    if (h.error != 0) FUZZ_CHECK(h.len == sizeof(fuse_out_header));
    if (in_buf_.size() >= sizeof(fuse_in_header)) {
      fuse_in_header ih;
      std::memcpy(&ih, in_buf_.data(), sizeof(ih));
      FUZZ_CHECK(h.unique == ih.unique);
    }
  }

 private:
  static void Cut(uint8_t* base, size_t len, size_t piece, std::vector<IoSlice>* out) {
    if (len == 0) return;
    if (piece == 0) piece = len;
    for (size_t off = 0; off < len; off += piece) {
      out->push_back({base + off, len - off < piece ? len - off : piece});
    }
  }

  std::vector<uint8_t> in_buf_;
  std::unique_ptr<uint8_t[]> out_buf_;
  size_t out_cap_ = 0;
  std::vector<IoSlice> in_slices_, out_slices_;
  std::atomic<int> completions_{0};
  uint32_t written_ = 0;
};

class NullListener final : public nydus::fuse::UpcallListener {
 public:
  void OnUpcallsPending() override {}
};

// A cache file (memfd) of 16 chunks of 4 KiB and a chunk map with every other bit set.
struct Blobs {
  int fd = -1;
  std::shared_ptr<nydus::cache::ChunkMap> map = std::make_shared<nydus::cache::ChunkMap>();
  Blobs() {
    fd = memfd_create("fuse-fuzz-cache", MFD_CLOEXEC);
    std::vector<uint8_t> data(16 * 4096);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
    if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) std::abort();
    std::string err;
    std::string path = "/tmp/fuse-fuzz-" + std::to_string(getpid()) + ".chunk_map";
    if (map->Open(path, 16, &err) != 0) std::abort();
    ::unlink(path.c_str());
    for (uint32_t i = 0; i < 16; i += 2) map->SetReady(i);
  }
};

Blobs& SharedBlobs() {
  static Blobs* b = new Blobs();
  return *b;
}

void Answer(nydus::fuse::FuseSession& s, Input& in, const double* rec, const uint8_t* bytes) {
  const uint64_t token = static_cast<uint64_t>(rec[nydus::abi::UpcallRecord::kToken]);
  if (token == 0) return;  // a notification
  double vals[nydus::abi::DirentRecord::kStride * 4];
  for (double& v : vals) v = in.Num();
  std::vector<uint8_t> data = in.Bytes(in.U8());
  std::string err;
  switch (in.U8() % 13) {
    case 0:
      s.ReplyError(token, static_cast<int>(in.U16()) - 100);
      break;
    case 1:
      s.ReplyOk(token);
      break;
    case 2:
      s.ReplyEntry(token, vals);
      break;
    case 3:
      s.ReplyAttr(token, vals);
      break;
    case 4: {
      std::shared_ptr<const nydus::readpath::ExtentTable> table;
      if (in.U8() & 1) {
        double ext[7 * 3];
        for (int i = 0; i < 21; ++i) ext[i] = i % 7 == 0 ? (i / 7) * 4096.0 : in.Num();
        table = nydus::readpath::ExtentTable::FromValues(in.U16() * 4, ext, in.U8() % 4, &err);
      }
      s.ReplyOpen(token, in.U8(), in.U8(), table);
      break;
    }
    case 5:
      s.ReplyStatfs(token, vals);
      break;
    case 6:
      s.ReplyData(token, data.data(), data.size());
      break;
    case 7:
      s.ReplyXattr(token, data.data(), data.size());
      break;
    case 8:
      s.ReplyReaddir(token, vals, in.U8() % 5, data.data(), data.size());
      break;
    case 9:
      s.ReplyLseek(token, in.U32());
      break;
    case 10:
      s.ResolveMiss(token, in.U8() % 3 == 0 ? 5 : 0);
      break;
    case 11: {
      const uint32_t idx[2] = {in.U8() % 20u, in.U8() % 20u};
      s.ChunksReady(in.U8() % 3, idx);
      break;
    }
    default:
      break;  // never answered: Shutdown must complete it
  }
  (void)bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nydus::SetLogLevel(nydus::LogLevel::kOff);
  Input in(data, size);
  const uint8_t cfg = in.U8();
  NullListener listener;
  nydus::fuse::SessionOptions opts;
  for (uint32_t op = 0; op < nydus::fuse::kOpcodeTableSize; ++op) {
    if (((op * 7 + cfg) % 11) != 0) opts.handler_ops.set(op);
  }
  auto session = std::make_unique<nydus::fuse::FuseSession>(opts, &listener);
  Blobs& blobs = SharedBlobs();
  std::string err;
  session->blobs().RegisterFd(0, fcntl(blobs.fd, F_DUPFD_CLOEXEC, 0), nullptr, &err);
  session->blobs().RegisterFd(1, fcntl(blobs.fd, F_DUPFD_CLOEXEC, 0), blobs.map, &err);
  std::vector<double> ext;
  for (uint32_t c = 0; c < 16; ++c) {
    ext.insert(ext.end(), {c * 4096.0, 4096, static_cast<double>(c % 2), static_cast<double>(c),
                           c * 4096.0, 4096, c == 5 ? 1.0 : 0.0});
  }
  session->SetExtents(
      1, nydus::readpath::ExtentTable::FromValues(16 * 4096 - 100, ext.data(), 15, &err));

  std::vector<std::unique_ptr<FuzzRequest>> reqs;
  if ((cfg & 1) == 0) {
    fuse_in_header h{};
    h.opcode = FUSE_INIT;
    h.unique = 1;
    fuse_init_in init{};
    init.major = 7;
    init.minor = 38;
    init.flags = 0x7bfffffb;
    init.flags2 = 0xb;
    h.len = sizeof(h) + sizeof(init);
    std::vector<uint8_t> b(h.len);
    std::memcpy(b.data(), &h, sizeof(h));
    std::memcpy(b.data() + sizeof(h), &init, sizeof(init));
    reqs.push_back(std::make_unique<FuzzRequest>(std::move(b), 80, 0, 0));
    session->OnRequest(reqs.back().get());
  }
  std::vector<double> recs(16 * nydus::abi::UpcallRecord::kStride);
  std::vector<uint8_t> arena_bytes(1 << 16);
  while (!in.empty() && reqs.size() < 64) {
    // Request: a header with fuzzed fields, a fuzzed body; len mostly honest.
    fuse_in_header h{};
    h.opcode = in.U8() % 4 == 0 ? in.U32() : in.U8() % 56;
    h.unique = in.U16();
    h.nodeid = in.U8();
    h.total_extlen = in.U8() % 8 == 0 ? in.U8() : 0;
    std::vector<uint8_t> body = in.Bytes(in.U16() % 2200);
    if (h.opcode == FUSE_READ && body.size() >= 16) body[0] = body[0] % 3;  // fh 0..2
    h.len = static_cast<uint32_t>(sizeof(h) + body.size());
    if (in.U8() % 16 == 0) h.len = in.U32();
    std::vector<uint8_t> b(sizeof(h));
    std::memcpy(b.data(), &h, sizeof(h));
    b.insert(b.end(), body.begin(), body.end());
    if (in.U8() % 32 == 0) b.resize(in.U8() % 48);
    const size_t out_cap = in.U8() % 4 == 0 ? in.U8() : 16 + in.U16() % 9000;
    reqs.push_back(
        std::make_unique<FuzzRequest>(std::move(b), out_cap, in.U8() % 64, in.U8() % 64));
    session->OnRequest(reqs.back().get());
    nydus::fuse::UpcallArena arena;
    arena.records = recs.data();
    arena.max_records = 16;
    arena.bytes = arena_bytes.data();
    arena.bytes_cap = arena_bytes.size();
    while (session->DrainUpcalls(&arena) > 0) {
      for (size_t i = 0; i < arena.count; ++i) {
        const double* rec = &recs[i * nydus::abi::UpcallRecord::kStride];
        Answer(*session, in, rec, arena_bytes.data());
      }
    }
  }
  session->Shutdown();
  for (const auto& r : reqs) r->Check();
  session.reset();
  return 0;
}
