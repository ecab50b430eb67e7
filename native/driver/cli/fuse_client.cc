#include "driver/cli/fuse_client.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <cstdio>

namespace nydus::driver {

using driver::frontend::DriverQueue;

uint64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

namespace {
constexpr uint32_t kInArea = 8192;
constexpr uint32_t kOutArgsOffset = 64;
constexpr uint32_t kOutArea = 8192;
}  // namespace

FuseClient::FuseClient(driver::frontend::FsFrontendSession* session, uint32_t slots,
                       uint32_t data_cap)
    : session_(session), slots_(slots), data_cap_(data_cap) {}

int FuseClient::Init(std::string* error) {
  auto& ram = session_->ram();
  for (auto& s : slots_) {
    s.in_gpa = ram.Alloc(kInArea, 4096);
    s.out_gpa = ram.Alloc(kOutArea, 4096);
    s.data_gpa = data_cap_ > 0 ? ram.Alloc(data_cap_, 4096) : 0;
    if (s.in_gpa == 0 || s.out_gpa == 0 || (data_cap_ > 0 && s.data_gpa == 0)) {
      *error = "guest RAM too small for " + std::to_string(slots_.size()) + " requests of " +
               std::to_string(data_cap_) + " bytes (raise --ram-mib)";
      return -ENOMEM;
    }
  }
  head_to_slot_.assign(session_->num_queues(),
                       std::vector<int>(session_->options().queue_size, -1));
  return 0;
}

void FuseClient::Violation(const std::string& what) {
  if (violations_.size() < 100) violations_.push_back(what);
}

const uint8_t* FuseClient::SlotData(int slot) const {
  return session_->ram().Host(slots_[slot].data_gpa, data_cap_);
}

int FuseClient::Submit(const RequestSpec& spec, bool kick) {
  int slot = -1;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].busy) {
      slot = static_cast<int>(i);
      break;
    }
  }
  if (slot < 0) return -EBUSY;
  Slot& s = slots_[slot];
  auto& ram = session_->ram();
  if (spec.args_len + spec.args2_len + sizeof(fuse_in_header) > kInArea ||
      spec.out_args_len + kOutArgsOffset > kOutArea || spec.out_pages > data_cap_) {
    return -E2BIG;
  }
  const uint64_t unique = spec.unique != 0 ? spec.unique : next_unique_;
  next_unique_ += 2;
  const uint32_t args_total = spec.args_len + spec.args2_len;
  fuse_in_header ih{};
  ih.len = spec.in_len_override != 0 ? spec.in_len_override
                                     : static_cast<uint32_t>(sizeof(ih) + args_total);
  ih.opcode = spec.opcode;
  ih.unique = unique;
  ih.nodeid = spec.nodeid;
  ih.pid = 1;
  uint8_t* in = ram.Host(s.in_gpa, kInArea);
  memcpy(in, &ih, sizeof(ih));
  if (spec.args_len > 0) memcpy(in + sizeof(ih), spec.args, spec.args_len);
  if (spec.args2_len > 0) memcpy(in + sizeof(ih) + spec.args_len, spec.args2, spec.args2_len);
  // Fresh out header bytes, so a reply that writes nothing is visible as such.
  memset(ram.Host(s.out_gpa, 16), 0xee, 16);

  DriverQueue::Buffer bufs[3 + 300];
  size_t n = 0;
  if (spec.forget_style) {
    bufs[n++] = {s.in_gpa, static_cast<uint32_t>(sizeof(ih) + args_total), false};
  } else {
    bufs[n++] = {s.in_gpa, static_cast<uint32_t>(sizeof(ih)), false};
    if (args_total > 0) bufs[n++] = {s.in_gpa + sizeof(ih), args_total, false};
    bufs[n++] = {s.out_gpa, 16, true};
    if (spec.out_args_len > 0) bufs[n++] = {s.out_gpa + kOutArgsOffset, spec.out_args_len, true};
    for (uint32_t off = 0; off < spec.out_pages && n < 3 + 300; off += kPageSize) {
      uint32_t len = spec.out_pages - off < kPageSize ? spec.out_pages - off : kPageSize;
      bufs[n++] = {s.data_gpa + off, len, true};
    }
  }
  DriverQueue& q = session_->queue(spec.queue);
  int head = q.Add(bufs, n, !spec.direct);
  if (head < 0) return head;
  s.busy = true;
  s.queue = spec.queue;
  s.opcode = spec.opcode;
  s.unique = unique;
  s.out_args_len = spec.out_args_len;
  s.out_pages = spec.out_pages;
  s.out_cap = spec.forget_style ? 0 : 16 + spec.out_args_len + spec.out_pages;
  s.expects_reply = !spec.forget_style;
  s.head = head;
  s.start_ns = MonoNs();
  head_to_slot_[spec.queue][static_cast<size_t>(head)] = slot;
  ++in_flight_;
  if (kick) session_->Kick(spec.queue);
  return slot;
}

void FuseClient::CopyPayload(const Slot& s, uint32_t len, std::vector<uint8_t>* dst) const {
  auto& ram = session_->ram();
  dst->clear();
  uint32_t from_args = len < s.out_args_len ? len : s.out_args_len;
  const uint8_t* a = ram.Host(s.out_gpa + kOutArgsOffset, from_args);
  dst->insert(dst->end(), a, a + from_args);
  uint32_t rest = len - from_args;
  if (rest > s.out_pages) rest = s.out_pages;
  if (rest > 0) {
    const uint8_t* d = ram.Host(s.data_gpa, rest);
    dst->insert(dst->end(), d, d + rest);
  }
}

int FuseClient::Poll(uint32_t queue, std::vector<Completion>* out, int timeout_ms,
                     bool copy_payload) {
  std::vector<vhost::VirtqUsedElem> used;
  int rc = session_->Wait(queue, &used, timeout_ms);
  if (rc != 0) return rc;
  const uint64_t now = MonoNs();
  auto& ram = session_->ram();
  char buf[256];
  for (const auto& e : used) {
    if (e.id >= head_to_slot_[queue].size() || head_to_slot_[queue][e.id] < 0) {
      std::snprintf(buf, sizeof(buf), "used id %u on queue %u is not an outstanding request", e.id,
                    queue);
      Violation(buf);
      continue;
    }
    int slot = head_to_slot_[queue][e.id];
    head_to_slot_[queue][e.id] = -1;
    Slot& s = slots_[slot];
    s.busy = false;
    --in_flight_;
    Completion c;
    c.slot = slot;
    c.opcode = s.opcode;
    c.used_len = e.len;
    c.latency_ns = now - s.start_ns;
    if (s.expects_reply && e.len >= sizeof(fuse_out_header)) {
      memcpy(&c.out, ram.Host(s.out_gpa, 16), 16);
      c.has_header = true;
      if (c.out.unique != s.unique) {
        std::snprintf(buf, sizeof(buf), "opcode %u: reply unique %llu, expected %llu", s.opcode,
                      static_cast<unsigned long long>(c.out.unique),
                      static_cast<unsigned long long>(s.unique));
        Violation(buf);
      }
      if (c.out.error > 0 || c.out.error <= -512 || (c.out.error != 0 && c.out.len != 16)) {
        std::snprintf(buf, sizeof(buf), "opcode %u: bad error reply (error %d, len %u)", s.opcode,
                      c.out.error, c.out.len);
        Violation(buf);
      }
      if (c.out.len < 16 || c.out.len > s.out_cap) {
        std::snprintf(buf, sizeof(buf), "opcode %u: out header len %u outside 16..%u", s.opcode,
                      c.out.len, s.out_cap);
        Violation(buf);
      } else if (copy_payload && c.out.error == 0) {
        CopyPayload(s, c.out.len - 16, &c.payload);
      }
      if (c.out.len != e.len) ++used_len_mismatches_;
    } else if (s.expects_reply) {
      std::snprintf(buf, sizeof(buf), "opcode %u: completed with used length %u, no reply header",
                    s.opcode, e.len);
      Violation(buf);
    }
    out->push_back(std::move(c));
  }
  return 0;
}

int FuseClient::Call(const RequestSpec& spec, Completion* c, int timeout_ms) {
  if (timeout_ms < 0) timeout_ms = timeout_ms_;
  int slot = Submit(spec);
  if (slot < 0) return slot;
  const uint64_t deadline = MonoNs() + uint64_t(timeout_ms) * 1000000ull;
  std::vector<Completion> got;
  for (;;) {
    uint64_t now = MonoNs();
    if (now >= deadline) return -ETIMEDOUT;
    int rc = Poll(spec.queue, &got, static_cast<int>((deadline - now) / 1000000ull) + 1, true);
    if (rc != 0) return rc;
    for (auto& g : got) {
      if (g.slot == slot) {
        *c = std::move(g);
        return 0;
      }
    }
    got.clear();
  }
}

int FuseClient::CheckFixed(const Completion& c, size_t size, const char* op) {
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  if (c.out.len != 16 + size) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%s reply len %u, expected exactly %zu", op, c.out.len,
                  16 + size);
    Violation(buf);
    return -EPROTO;
  }
  return 0;
}

int FuseClient::InitFuse(fuse_init_out* out) {
  fuse_init_in in{};
  in.major = FUSE_KERNEL_VERSION;
  in.minor = kGuestInitMinor;
  in.max_readahead = kGuestMaxReadahead;
  in.flags = kGuestInitFlags;
  in.flags2 = kGuestInitFlags2;
  RequestSpec r;
  r.opcode = FUSE_INIT;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_args_len = sizeof(fuse_init_out);
  Completion c;
  int rc = Call(r, &c);
  if (rc != 0) return rc;
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  // The kernel accepts shorter (compat) INIT replies: out_argvar.
  *out = fuse_init_out{};
  memcpy(out, c.payload.data(), std::min(c.payload.size(), sizeof(*out)));
  return out->major == FUSE_KERNEL_VERSION ? 0 : -EPROTO;
}

int FuseClient::Lookup(uint64_t parent, const std::string& name, fuse_entry_out* out) {
  RequestSpec r;
  r.opcode = FUSE_LOOKUP;
  r.nodeid = parent;
  r.args = name.c_str();
  r.args_len = static_cast<uint32_t>(name.size() + 1);
  r.out_args_len = sizeof(fuse_entry_out);
  Completion c;
  int rc = Call(r, &c);
  if (rc == 0) rc = CheckFixed(c, sizeof(*out), "LOOKUP");
  if (rc == 0) memcpy(out, c.payload.data(), sizeof(*out));
  return rc;
}

int FuseClient::Getattr(uint64_t node, fuse_attr_out* out) {
  fuse_getattr_in in{};
  RequestSpec r;
  r.opcode = FUSE_GETATTR;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_args_len = sizeof(fuse_attr_out);
  Completion c;
  int rc = Call(r, &c);
  if (rc == 0) rc = CheckFixed(c, sizeof(*out), "GETATTR");
  if (rc == 0) memcpy(out, c.payload.data(), sizeof(*out));
  return rc;
}

int FuseClient::Open(uint64_t node, bool dir, fuse_open_out* out) {
  fuse_open_in in{};
  in.flags = dir ? 0200000 /* O_DIRECTORY */ : 0100000 /* O_LARGEFILE */;
  RequestSpec r;
  r.opcode = dir ? FUSE_OPENDIR : FUSE_OPEN;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_args_len = sizeof(fuse_open_out);
  Completion c;
  int rc = Call(r, &c);
  if (rc == 0) rc = CheckFixed(c, sizeof(*out), dir ? "OPENDIR" : "OPEN");
  if (rc == 0) memcpy(out, c.payload.data(), sizeof(*out));
  return rc;
}

int FuseClient::Release(uint64_t node, uint64_t fh, bool dir) {
  fuse_release_in in{};
  in.fh = fh;
  RequestSpec r;
  r.opcode = dir ? FUSE_RELEASEDIR : FUSE_RELEASE;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  Completion c;
  int rc = Call(r, &c);
  return rc == 0 ? CheckFixed(c, 0, "RELEASE") : rc;
}

int FuseClient::Read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size,
                     std::vector<uint8_t>* data) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  RequestSpec r;
  r.opcode = FUSE_READ;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_pages = size;
  Completion c;
  int rc = Call(r, &c);
  if (rc != 0) return rc;
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  *data = std::move(c.payload);
  return 0;
}

int FuseClient::ReadDirPlus(uint64_t node, uint64_t fh, uint64_t off, std::vector<uint8_t>* data) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = kPageSize;  // what a Linux 6.1 guest asks for
  RequestSpec r;
  r.opcode = FUSE_READDIRPLUS;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  r.out_pages = kPageSize;
  Completion c;
  int rc = Call(r, &c);
  if (rc != 0) return rc;
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  *data = std::move(c.payload);
  return 0;
}

int FuseClient::Readlink(uint64_t node, std::string* target) {
  RequestSpec r;
  r.opcode = FUSE_READLINK;
  r.nodeid = node;
  r.out_args_len = kPageSize - 1;
  Completion c;
  int rc = Call(r, &c);
  if (rc != 0) return rc;
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  target->assign(c.payload.begin(), c.payload.end());
  return 0;
}

int FuseClient::Statfs(uint64_t node, fuse_statfs_out* out) {
  RequestSpec r;
  r.opcode = FUSE_STATFS;
  r.nodeid = node;
  r.out_args_len = sizeof(fuse_statfs_out);
  Completion c;
  int rc = Call(r, &c);
  if (rc == 0) rc = CheckFixed(c, sizeof(*out), "STATFS");
  if (rc == 0) memcpy(out, c.payload.data(), sizeof(*out));
  return rc;
}

int FuseClient::Getxattr(uint64_t node, const std::string& name, uint32_t size,
                         std::vector<uint8_t>* v) {
  fuse_getxattr_in in{};
  in.size = size;
  RequestSpec r;
  r.opcode = FUSE_GETXATTR;
  r.nodeid = node;
  r.args = &in;
  r.args_len = sizeof(in);
  r.args2 = name.c_str();
  r.args2_len = static_cast<uint32_t>(name.size() + 1);
  r.out_args_len = size == 0 ? sizeof(fuse_getxattr_out) : size;
  Completion c;
  int rc = Call(r, &c);
  if (rc != 0) return rc;
  if (!c.has_header) return -EPROTO;
  if (c.out.error != 0) return c.out.error;
  *v = std::move(c.payload);
  return 0;
}

int FuseClient::Forget(uint64_t node, uint64_t nlookup) {
  fuse_forget_in in{};
  in.nlookup = nlookup;
  RequestSpec r;
  r.opcode = FUSE_FORGET;
  r.nodeid = node;
  r.queue = 0;
  r.args = &in;
  r.args_len = sizeof(in);
  r.forget_style = true;
  Completion c;
  int rc = Call(r, &c);
  if (rc == 0 && c.used_len != 0) {
    Violation("FORGET completed with used length " + std::to_string(c.used_len));
  }
  return rc;
}

int FuseClient::Destroy() {
  RequestSpec r;
  r.opcode = FUSE_DESTROY;
  r.nodeid = 0;
  Completion c;
  int rc = Call(r, &c);
  return rc == 0 ? CheckFixed(c, 0, "DESTROY") : rc;
}

}  // namespace nydus::driver
