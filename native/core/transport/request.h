// The seam between transports and the FUSE session.
//
// A transport (the vhost-user virtqueue workers, or a /dev/fuse reader thread) turns whatever it
// received into a FuseRequest: the readable bytes that hold `fuse_in_header` + arguments, and the
// writable bytes that will hold `fuse_out_header` + reply. The FUSE session (codec, dispatch,
// upcalls to TypeScript, the READ fast path) consumes requests through FuseRequestSink and ends
// each one with exactly one Complete() call. Neither side knows how the other works: the session
// never sees descriptors or file descriptors, the transport never parses FUSE.
//
// Threading: OnRequest runs on the transport's thread. Complete() may be called on that thread
// before OnRequest returns (inline completion; virtio batches those into one used-ring
// publication per drain) or later from any other thread (a request parked for a cache miss, or
// answered by JavaScript).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace nydus::transport {

struct IoSlice {
  uint8_t* base;
  size_t len;
};

enum class TransportKind : uint8_t { kVirtio = 0, kFuseDev = 1 };

class FuseRequest {
 public:
  // Readable bytes. For virtio this is guest memory: the guest can change it at any time, so the
  // session copies header, fixed args and names into private memory before validating them.
  std::span<const IoSlice> in() const { return in_; }
  // Writable bytes for the reply. Never write past them. May be empty (FORGET on hiprio).
  std::span<const IoSlice> out() const { return out_; }
  size_t in_bytes() const { return in_bytes_; }
  size_t out_bytes() const { return out_bytes_; }
  TransportKind kind() const { return kind_; }

  // Ends the request: the first `written` bytes of out() hold the reply (0 for requests that get
  // no reply, such as FORGET). Must be called exactly once; the object is invalid afterwards.
  // Safe to call after the transport lost its peer (the transport then just drops it).
  virtual void Complete(uint32_t written) = 0;

 protected:
  FuseRequest(TransportKind kind) : kind_(kind) {}
  virtual ~FuseRequest() = default;

  std::span<const IoSlice> in_;
  std::span<const IoSlice> out_;
  size_t in_bytes_ = 0;
  size_t out_bytes_ = 0;
  TransportKind kind_;
};

class FuseRequestSink {
 public:
  virtual ~FuseRequestSink() = default;
  // A new request. Ownership of the request's lifetime passes to the sink until Complete().
  virtual void OnRequest(FuseRequest* request) = 0;
  // The frontend went away (vhost-user disconnect) or the /dev/fuse session ended: every
  // inode reference and handle of that session is void. Requests already handed out may still
  // be completed; the transport discards them.
  virtual void OnSessionReset() {}
};

}  // namespace nydus::transport
