// vhost-user framing: reading one message (header + SCM_RIGHTS fds + payload) from a stream
// socket, checking it against the per-request rules (payload size, fd count), and writing
// messages and replies. Used by the backend (requests in, replies out) and by the frontend
// library under frontend/ (requests out, replies in).
//
// Everything here is syntax (style rule 1): a message that fails these checks is a protocol
// violation and the backend closes the connection. Whether a well-formed message makes sense
// now (features, ring state) is the device's business.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/unique_fd.h"
#include "vhost/vhost_user.h"

namespace nydus::vhost {

struct Message {
  VhostUserHeader header{};
  alignas(8) std::array<uint8_t, kMaxPayloadSize> payload{};
  std::array<UniqueFd, kMaxFdsPerMessage> fds;
  size_t num_fds = 0;

  // Copies the payload into a wire struct. Only valid after CheckFraming() accepted the size.
  template <typename T>
  T PayloadAs() const {
    static_assert(kIsWireStruct<T> && sizeof(T) <= kMaxPayloadSize);
    T out;
    __builtin_memcpy(&out, payload.data(), sizeof(T));
    return out;
  }
  UniqueFd TakeFd(size_t i) { return i < num_fds ? std::move(fds[i]) : UniqueFd(); }
  void CloseFds() {
    for (size_t i = 0; i < num_fds; ++i) fds[i].reset();
    num_fds = 0;
  }
};

// Reads one message. Returns 0, -ECONNRESET on orderly EOF before a header, -EPROTO on a framing
// violation (partial header or payload then EOF, oversize payload, too many or truncated fds,
// invalid header flags) with *error set, or another -errno from the socket.
int ReadMessage(int sock, Message* msg, std::string* error);

// Checks payload size and attached fds against what `msg.header.request` takes (rust-vmm
// check_request_size / check_attached_files; reference §1.1). Unknown request ids pass if they
// carry no fds; the device refuses them. Returns false with *error naming the problem.
bool CheckFraming(const Message& msg, std::string* error);

// Writes header + payload (+ fds as SCM_RIGHTS) with one sendmsg, looping on short writes.
// Returns 0 or -errno.
int SendMessage(int sock, const VhostUserHeader& header, const void* payload, const int* fds,
                size_t num_fds);

// A reply: flags exactly 0x5, same request id (reference §1.1).
int SendReply(int sock, uint32_t request, const void* payload, uint32_t size);
inline int SendReplyU64(int sock, uint32_t request, uint64_t value) {
  VhostUserU64 body{value};
  return SendReply(sock, request, &body, sizeof(body));
}

}  // namespace nydus::vhost
