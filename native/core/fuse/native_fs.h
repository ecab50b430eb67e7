// A filesystem served natively inside the FUSE session (no upcall, no JavaScript): it owns a
// range of node ids, and the session hands it every request naming one of them, inline on the
// transport thread (a virtqueue worker or a /dev/fuse reader). The passthrough filesystem
// (passthrough/pt_native.h) is the one implementation; the interface keeps fuse/ free of it.
//
// Threading: every method may run on several threads at once (see the implementation).
#pragma once

#include <cstdint>
#include <functional>

#include "fuse/abi.h"
#include "fuse/decode.h"
#include "transport/request.h"

namespace nydus::fuse {

class NativeFs {
 public:
  struct Outcome {
    uint32_t written = 0;   // reply bytes (0: no reply)
    bool error = false;     // the reply is an error
    bool deferred = false;  // completed later through the completion function
  };
  // Completes a deferred request (its reply is already in the request's writable bytes).
  using CompleteFn = std::function<void(transport::FuseRequest* req, uint32_t written, bool error)>;

  virtual ~NativeFs() = default;

  // Serves one request whose header (d.in) was validated; its node id is in this filesystem's
  // range. Writes the reply into req; the caller completes it unless deferred.
  virtual Outcome Handle(const DecodedRequest& d, transport::FuseRequest& req) = 0;
  virtual void Forget(uint64_t nodeid, uint64_t nlookup) = 0;
  // True when a request waiting here for `unique` was ended (EINTR).
  virtual bool Interrupt(uint64_t unique) = 0;
  // The connection is gone (DESTROY, re-INIT, transport reset): drop what the kernel knew.
  virtual void Reset() = 0;
  virtual int Syncfs() = 0;  // 0 or -errno
  // INIT flags wanted, and what INIT negotiated (kernel offer, reply).
  virtual uint64_t WantedInitFlags() const = 0;
  virtual void OnInit(uint64_t kernel_flags, uint64_t granted_flags) = 0;
  // The root's entry, for the pseudo parent's LOOKUP of the mount point. 0 or -errno.
  virtual int RootEntry(fuse_entry_out* out) const = 0;
  virtual void SetCompletion(CompleteFn fn) = 0;
};

}  // namespace nydus::fuse
