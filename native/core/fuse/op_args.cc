#include "fuse/op_args.h"

#include <cerrno>
#include <cstring>

#include "transport/slices.h"

namespace nydus::fuse {
namespace {

// Bytes of trailing data worth copying per tail kind; the kernel never sends more, and a longer
// request is not refused (trailing bytes are ignored) but not copied either.
constexpr size_t kStringsCap = (kMaxNameBytes + 1) + (kMaxTargetBytes + 1);
constexpr size_t kXattrCap = (kMaxNameBytes + 1) + kMaxXattrValue;
// BATCH_FORGET: the kernel fills at most one request buffer (max_write) with entries.
constexpr size_t kForgetsCap = (1u << 20) + 4096;

// Finds a NUL-terminated string at [*pos, end) of buf. Returns 0 and advances *pos past the NUL,
// or an errno: EINVAL when there is no NUL or the string is empty, ENAMETOOLONG past max.
int TakeString(const uint8_t* buf, size_t end, size_t* pos, size_t max, const char** s,
               size_t* len) {
  const size_t start = *pos;
  const void* nul = std::memchr(buf + start, 0, end - start);
  if (nul == nullptr) return end - start > max ? ENAMETOOLONG : EINVAL;
  const size_t n = static_cast<size_t>(static_cast<const uint8_t*>(nul) - (buf + start));
  if (n == 0) return EINVAL;
  if (n > max) return ENAMETOOLONG;
  *s = reinterpret_cast<const char*>(buf + start);
  *len = n;
  *pos = start + n + 1;
  return 0;
}

}  // namespace

int DecodeArgs(const fuse_in_header& in, const transport::FuseRequest& request, ArgSyntax syntax,
               OpArgs* out) {
  std::memset(&out->a, 0, sizeof(out->a));
  out->name = out->name2 = nullptr;
  out->name_len = out->name2_len = 0;
  out->value = nullptr;
  out->value_len = out->payload_off = out->payload_len = 0;
  out->forgets = nullptr;
  out->forgets_count = 0;

  if (in.len < sizeof(fuse_in_header)) return EINVAL;
  const size_t body = in.len - sizeof(fuse_in_header);
  const size_t ext = static_cast<size_t>(in.total_extlen) * 8;
  if (ext > body) return EINVAL;
  const size_t args = body - ext;
  if (args < syntax.fixed || syntax.fixed > sizeof(out->a)) return EINVAL;

  transport::SliceReader r(request.in(), sizeof(fuse_in_header) + args);
  if (!r.Skip(sizeof(fuse_in_header)) || !r.Copy(&out->a, syntax.fixed)) return EINVAL;
  const size_t rest = args - syntax.fixed;

  size_t cap = 0;
  switch (syntax.tail) {
    case Tail::kNone:
      return 0;
    case Tail::kPayload:
      // WRITE: the data stays in the guest's buffers; only its place is recorded. A size larger
      // than what the request carries is malformed.
      if (out->a.write.size > rest) return EINVAL;
      out->payload_off = sizeof(fuse_in_header) + syntax.fixed;
      out->payload_len = out->a.write.size;
      return 0;
    case Tail::kName:
      cap = kMaxNameBytes + 1;
      break;
    case Tail::kTwoNames:
      cap = kStringsCap;
      break;
    case Tail::kNameValue:
      cap = kXattrCap;
      break;
    case Tail::kForgets:
      cap = kForgetsCap;
      break;
  }
  const size_t take = rest < cap ? rest : cap;
  out->storage_.resize(take + 1);
  if (!r.Copy(out->storage_.data(), take)) return EINVAL;
  out->storage_[take] = 0xff;  // never a NUL: a string must end inside what was sent
  const uint8_t* buf = out->storage_.data();
  size_t pos = 0;

  switch (syntax.tail) {
    case Tail::kName:
      return TakeString(buf, take, &pos, kMaxNameBytes, &out->name, &out->name_len);
    case Tail::kTwoNames: {
      // Both RENAME names are entry names; SYMLINK's second string is a target (up to PATH_MAX).
      int err = TakeString(buf, take, &pos, kMaxNameBytes, &out->name, &out->name_len);
      if (err != 0) return err;
      return TakeString(buf, take, &pos, kMaxTargetBytes, &out->name2, &out->name2_len);
    }
    case Tail::kNameValue: {
      int err = TakeString(buf, take, &pos, kMaxNameBytes, &out->name, &out->name_len);
      if (err != 0) return err == ENAMETOOLONG ? ERANGE : err;
      if (out->name_len > kMaxXattrName) return ERANGE;
      const size_t size = out->a.setxattr.size;
      if (size > kMaxXattrValue) return E2BIG;
      if (size > take - pos) return EINVAL;
      out->value = buf + pos;
      out->value_len = size;
      return 0;
    }
    case Tail::kForgets: {
      // A count beyond what the request carries is clamped: forgets only lower counts, so acting
      // on the entries present is the safe reading of a short request.
      const size_t present = take / sizeof(fuse_forget_one);
      const size_t count = out->a.batch_forget.count;
      out->forgets = reinterpret_cast<const fuse_forget_one*>(buf);
      out->forgets_count = count < present ? count : present;
      return 0;
    }
    case Tail::kNone:
    case Tail::kPayload:
      break;
  }
  return 0;
}

int SliceIovecs(std::span<const transport::IoSlice> slices, size_t pos, size_t n, struct iovec* iov,
                int max, size_t* covered) {
  size_t i = 0;
  while (i < slices.size() && pos >= slices[i].len) {
    pos -= slices[i].len;
    ++i;
  }
  int count = 0;
  size_t done = 0;
  while (done < n) {
    if (i >= slices.size()) return -1;
    if (count == max) break;
    size_t take = slices[i].len - pos;
    if (take > n - done) take = n - done;
    iov[count].iov_base = slices[i].base + pos;
    iov[count].iov_len = take;
    ++count;
    done += take;
    pos = 0;
    ++i;
  }
  *covered = done;
  return count;
}

}  // namespace nydus::fuse
