#include "fuse/decode.h"

#include <cstring>

#include "transport/slices.h"

namespace nydus::fuse {

DecodeStatus Decode(const transport::FuseRequest& request, DecodedRequest* out) {
  out->arg_len = 0;
  out->name_len = 0;
  out->name[0] = '\0';
  out->forgets_offset = 0;
  out->forgets_count = 0;
  std::memset(&out->arg, 0, sizeof(out->arg));

  transport::SliceReader head(request.in(), request.in_bytes());
  if (!head.Copy(&out->in, sizeof(out->in))) return DecodeStatus::kNoHeader;
  const size_t readable = sizeof(out->in) + head.remaining();
  // The header's len is the whole request; it may not claim more than the transport delivered.
  // Readable bytes beyond len are ignored (§4.2).
  if (out->in.len < sizeof(fuse_in_header) || out->in.len > readable) {
    return DecodeStatus::kBadLength;
  }
  const size_t body = out->in.len - sizeof(fuse_in_header);
  const size_t ext = static_cast<size_t>(out->in.total_extlen) * 8;
  if (ext > body) return DecodeStatus::kBadLength;
  const size_t args = body - ext;

  const OpInfo* info = OpInfoOf(out->in.opcode);
  if (info == nullptr) return DecodeStatus::kUnknownOpcode;
  const OpSyntax& syn = info->syntax;

  transport::SliceReader r(request.in(), sizeof(fuse_in_header) + args);
  r.Skip(sizeof(fuse_in_header));
  if (syn.tail == ArgTail::kOpaque) return DecodeStatus::kOk;

  size_t fixed = syn.fixed < args ? syn.fixed : args;
  if (fixed < syn.min_fixed) return DecodeStatus::kShortArgs;
  static_assert(sizeof(out->arg) == 64);
  if (fixed > sizeof(out->arg.raw) || !r.Copy(out->arg.raw, fixed)) return DecodeStatus::kShortArgs;
  out->arg_len = static_cast<uint32_t>(fixed);

  switch (syn.tail) {
    case ArgTail::kName: {
      const size_t before = r.remaining();
      long n = r.CopyCString(out->name, kMaxName);
      if (n < 0) {
        out->name[0] = '\0';
        return before > kMaxName ? DecodeStatus::kNameTooLong : DecodeStatus::kBadName;
      }
      if (n == 0) return DecodeStatus::kBadName;
      out->name_len = static_cast<uint32_t>(n);
      break;
    }
    case ArgTail::kForgets: {
      // A count beyond what len covers is clamped: forgets only ever lower reference counts,
      // so acting on the entries that are present is the safe reading of a short request.
      const size_t present = r.remaining() / sizeof(fuse_forget_one);
      const size_t count = out->arg.batch_forget.count;
      out->forgets_offset = static_cast<uint32_t>(sizeof(fuse_in_header) + fixed);
      out->forgets_count = static_cast<uint32_t>(count < present ? count : present);
      break;
    }
    case ArgTail::kNone:
    case ArgTail::kOpaque:
      break;
  }
  return DecodeStatus::kOk;
}

}  // namespace nydus::fuse
