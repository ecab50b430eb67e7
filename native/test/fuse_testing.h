// Test doubles for the FUSE session: an in-memory transport request with configurable slice
// layouts, a builder for request bytes, and little-endian readers for golden reply checks.
#pragma once

#include <linux/fuse.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "abi/js_abi.h"
#include "fuse/session.h"
#include "fuse/upcall.h"
#include "transport/request.h"

namespace nydus::testing {

// A request over private buffers. `in_split`/`out_split` cut the bytes into slices of those sizes
// (the last slice takes the rest) to exercise scattered guest buffers.
class MemRequest final : public transport::FuseRequest {
 public:
  MemRequest(std::vector<uint8_t> in, size_t out_cap, size_t in_split = 0, size_t out_split = 0)
      : transport::FuseRequest(transport::TransportKind::kVirtio),
        in_buf_(std::move(in)),
        out_buf_(out_cap, 0xEE) {
    Cut(in_buf_, in_split, &in_slices_);
    Cut(out_buf_, out_split, &out_slices_);
    in_ = in_slices_;
    out_ = out_slices_;
    in_bytes_ = in_buf_.size();
    out_bytes_ = out_buf_.size();
  }
  ~MemRequest() override = default;

  void Complete(uint32_t written) override {
    std::lock_guard lock(mu_);
    ++completions_;
    written_ = written;
  }

  int completions() const {
    std::lock_guard lock(mu_);
    return completions_;
  }
  uint32_t written() const {
    std::lock_guard lock(mu_);
    return written_;
  }
  const std::vector<uint8_t>& out_bytes_buf() const { return out_buf_; }
  std::vector<uint8_t> reply() const {
    std::lock_guard lock(mu_);
    return std::vector<uint8_t>(out_buf_.begin(), out_buf_.begin() + written_);
  }
  fuse_out_header header() const {
    fuse_out_header h{};
    std::memcpy(&h, out_buf_.data(), sizeof(h) <= out_buf_.size() ? sizeof(h) : 0);
    return h;
  }

 private:
  static void Cut(std::vector<uint8_t>& buf, size_t piece, std::vector<transport::IoSlice>* out) {
    if (buf.empty()) return;
    if (piece == 0) piece = buf.size();
    for (size_t off = 0; off < buf.size(); off += piece) {
      size_t n = buf.size() - off < piece ? buf.size() - off : piece;
      out->push_back({buf.data() + off, n});
    }
  }

  std::vector<uint8_t> in_buf_;
  std::vector<uint8_t> out_buf_;
  std::vector<transport::IoSlice> in_slices_, out_slices_;
  mutable std::mutex mu_;
  int completions_ = 0;
  uint32_t written_ = 0;
};

// Builds `fuse_in_header` + args; len is filled in by Bytes() unless overridden.
class ReqBuilder {
 public:
  ReqBuilder(uint32_t opcode, uint64_t unique, uint64_t nodeid = 1) {
    h_.opcode = opcode;
    h_.unique = unique;
    h_.nodeid = nodeid;
    h_.uid = 1000;
    h_.gid = 100;
    h_.pid = 42;
  }
  template <typename T>
  ReqBuilder& Arg(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    body_.insert(body_.end(), p, p + sizeof(T));
    return *this;
  }
  ReqBuilder& Raw(const std::string& s) {
    body_.insert(body_.end(), s.begin(), s.end());
    return *this;
  }
  ReqBuilder& Name(const std::string& s) {
    Raw(s);
    body_.push_back(0);
    return *this;
  }
  ReqBuilder& Len(uint32_t len) {
    len_override_ = len;
    return *this;
  }
  ReqBuilder& Extlen(uint16_t units) {
    h_.total_extlen = units;
    return *this;
  }
  std::vector<uint8_t> Bytes() const {
    fuse_in_header h = h_;
    h.len = len_override_ != 0 ? len_override_ : static_cast<uint32_t>(40 + body_.size());
    std::vector<uint8_t> out(sizeof(h));
    std::memcpy(out.data(), &h, sizeof(h));
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  fuse_in_header h_{};
  std::vector<uint8_t> body_;
  uint32_t len_override_ = 0;
};

inline uint32_t U32At(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}
inline uint64_t U64At(const std::vector<uint8_t>& b, size_t off) {
  uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
}
inline int32_t I32At(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<int32_t>(U32At(b, off));
}

// Slots of the numeric records (abi/js_abi.h).
using UpcallSlot = abi::UpcallRecord;
using EntrySlot = abi::EntryRecord;
using DirentSlot = abi::DirentRecord;

// An entry record (also a valid dirent record's entry part) for a node of `mode` and `size`, with
// fixed generation, timeouts, times and owner (fuse_session_test.cc ExpectAttr checks them).
inline std::vector<double> EntryRecord(double nodeid, double mode, double size) {
  std::vector<double> r(DirentSlot::kStride, 0);
  r[EntrySlot::kNodeid] = nodeid;
  r[EntrySlot::kGeneration] = 7;
  r[EntrySlot::kEntryValid] = 1.5;
  r[EntrySlot::kAttrValid] = 2.25;
  r[EntrySlot::kIno] = nodeid;
  r[EntrySlot::kSize] = size;
  r[EntrySlot::kBlocks] = 8;
  r[EntrySlot::kAtime] = 1700000000;
  r[EntrySlot::kAtimeNsec] = 5;
  r[EntrySlot::kMtime] = 1700000001;
  r[EntrySlot::kMtimeNsec] = 6;
  r[EntrySlot::kCtime] = 1700000002;
  r[EntrySlot::kCtimeNsec] = 7;
  r[EntrySlot::kMode] = mode;
  r[EntrySlot::kNlink] = 1;
  r[EntrySlot::kUid] = 1000;
  r[EntrySlot::kGid] = 100;
  r[EntrySlot::kRdev] = 0;
  r[EntrySlot::kBlksize] = 4096;
  r[EntrySlot::kFlags] = 0;
  return r;
}

class CountingListener final : public fuse::UpcallListener {
 public:
  void OnUpcallsPending() override { wakes.fetch_add(1); }
  std::atomic<int> wakes{0};
};

// One drained upcall record plus its bytes.
struct Upcall {
  double rec[UpcallSlot::kStride];
  std::vector<uint8_t> bytes;
  uint64_t token() const { return static_cast<uint64_t>(rec[UpcallSlot::kToken]); }
  uint32_t opcode() const { return static_cast<uint32_t>(rec[UpcallSlot::kOpcode]); }
};

inline std::vector<Upcall> DrainAll(fuse::FuseSession& s, size_t max_records = 64) {
  std::vector<double> recs(max_records * UpcallSlot::kStride);
  std::vector<uint8_t> bytes(1 << 20);
  std::vector<Upcall> out;
  fuse::UpcallArena a;
  a.records = recs.data();
  a.max_records = max_records;
  a.bytes = bytes.data();
  a.bytes_cap = bytes.size();
  while (s.DrainUpcalls(&a) > 0) {
    for (size_t i = 0; i < a.count; ++i) {
      Upcall u;
      std::memcpy(u.rec, &recs[i * UpcallSlot::kStride], sizeof(u.rec));
      size_t off = static_cast<size_t>(u.rec[UpcallSlot::kByteOffset]);
      size_t len = static_cast<size_t>(u.rec[UpcallSlot::kByteLength]);
      u.bytes.assign(bytes.begin() + off, bytes.begin() + off + len);
      out.push_back(std::move(u));
    }
  }
  return out;
}

// Owns a session and the requests sent to it, destroying the session first so that requests
// it still holds (after a failed expectation) are completed while they exist.
class Harness {
 public:
  explicit Harness(fuse::SessionOptions options)
      : s(std::make_unique<fuse::FuseSession>(options, &l)) {}
  ~Harness() { s.reset(); }
  template <typename... Args>
  MemRequest& Req(Args&&... args) {
    reqs_.push_back(std::make_unique<MemRequest>(std::forward<Args>(args)...));
    return *reqs_.back();
  }

  CountingListener l;
  std::unique_ptr<fuse::FuseSession> s;

 private:
  std::vector<std::unique_ptr<MemRequest>> reqs_;
};

// A session options set with every handler op enabled.
inline fuse::SessionOptions AllOps() {
  fuse::SessionOptions o;
  o.handler_ops.set();
  return o;
}

// Every handler op but FORGET, for an immutable handler: the session may answer repeats from
// its reply cache.
inline fuse::SessionOptions ImmutableOps() {
  fuse::SessionOptions o = AllOps();
  o.handler_ops.reset(FUSE_FORGET);
  o.immutable = true;
  return o;
}

// Sends INIT (kernel 7.38 with the Linux 6.1 guest flags) and returns the reply.
inline std::vector<uint8_t> InitSession(fuse::FuseSession& s, uint32_t minor = 38) {
  fuse_init_in in{};
  in.major = 7;
  in.minor = minor;
  in.max_readahead = 0x20000;
  in.flags = 0x7bfffffb;
  in.flags2 = 0xb;
  MemRequest r(ReqBuilder(FUSE_INIT, 1, 0).Arg(in).Bytes(), 16 + 64);
  s.OnRequest(&r);
  return r.reply();
}

}  // namespace nydus::testing
