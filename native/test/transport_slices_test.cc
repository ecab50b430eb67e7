// The one slice walker (transport/slices.h) over scattered and empty slices: sequential reads
// with names split across slices, random-access writes, iovec mapping and the bounds of each.
#include <cstring>
#include <string>
#include <vector>

#include "testing.h"
#include "transport/slices.h"

namespace nydus::testing {
namespace {

using transport::IoSlice;

// `text` cut into slices of the given sizes (0 makes an empty slice).
struct Cut {
  Cut(const std::string& text, std::vector<size_t> sizes) : buf(text.begin(), text.end()) {
    size_t at = 0;
    for (size_t n : sizes) {
      slices.push_back({buf.data() + at, n});
      at += n;
    }
  }
  std::vector<uint8_t> buf;
  std::vector<IoSlice> slices;
};

NTEST(TransportSlices, WalkVisitsPiecesAndStepsOverEmptySlices) {
  Cut c("abcdefghij", {3, 0, 4, 0, 0, 3});
  transport::SlicePos at;
  NASSERT_TRUE(transport::Locate(c.slices, 2, &at));
  NEXPECT_EQ(at.slice, 0u);
  NEXPECT_EQ(at.within, 2u);
  std::string seen;
  std::vector<size_t> pieces;
  NEXPECT_TRUE(transport::Walk(c.slices, &at, 7, [&](const uint8_t* p, size_t n) {
    seen.append(reinterpret_cast<const char*>(p), n);
    pieces.push_back(n);
  }));
  NEXPECT_EQ(seen, std::string("cdefghi"));
  NEXPECT_TRUE(pieces == (std::vector<size_t>{1, 4, 2}));
  // One byte is left; asking for two walks it and reports the end.
  size_t got = 0;
  NEXPECT_FALSE(transport::Walk(c.slices, &at, 2, [&](const uint8_t*, size_t n) { got += n; }));
  NEXPECT_EQ(got, 1u);
  NEXPECT_FALSE(transport::Locate(c.slices, 10, &at));
}

NTEST(TransportSlices, CopyOutAndCopyInStayInside) {
  Cut c("0123456789", {2, 5, 3});
  char out[6] = {};
  NEXPECT_TRUE(transport::CopyOut(c.slices, 1, out, 5));
  NEXPECT_EQ(std::string(out, 5), std::string("12345"));
  NEXPECT_FALSE(transport::CopyOut(c.slices, 8, out, 3));  // past the end
  NEXPECT_TRUE(transport::CopyIn(c.slices, 6, "XYZ", 3));
  NEXPECT_EQ(std::string(c.buf.begin(), c.buf.end()), std::string("012345XYZ9"));
  NEXPECT_TRUE(transport::CopyOut(c.slices, 10, out, 0));  // empty copies always succeed
}

NTEST(TransportSlices, ReaderCopiesNamesAcrossSlicesOnce) {
  Cut c(std::string("hdr!name\0tail", 13), {2, 3, 1, 7});
  transport::SliceReader r(c.slices, 12);  // the declared length cuts the last byte
  char hdr[4];
  NASSERT_TRUE(r.Copy(hdr, 4));
  char name[8];
  NEXPECT_EQ(r.CopyCString(name, 7), 4);
  NEXPECT_EQ(std::string(name), std::string("name"));
  NEXPECT_EQ(r.remaining(), 3u);
  char rest[4];
  NEXPECT_FALSE(r.Copy(rest, 4));  // only 3 left: nothing consumed
  NEXPECT_EQ(r.remaining(), 3u);
  NEXPECT_TRUE(r.Skip(3));
  NEXPECT_EQ(r.CopyCString(name, 7), -1);  // nothing left
  // No NUL within max_len + 1 bytes.
  Cut d("abcdefgh", {5, 3});
  transport::SliceReader r2(d.slices, 8);
  char small[4];
  NEXPECT_EQ(r2.CopyCString(small, 3), -1);
}

NTEST(TransportSlices, WriterMapsRangesToIovecsAndRefusesOverflow) {
  Cut c(std::string(16, '.'), {4, 0, 8, 4});
  transport::SliceWriter w(c.slices);
  NEXPECT_EQ(w.capacity(), 16u);
  NEXPECT_TRUE(w.Write(2, "abcd", 4));
  NEXPECT_TRUE(w.Zero(10, 3));
  NEXPECT_EQ(std::string(c.buf.begin(), c.buf.end()), std::string("..abcd....\0\0\0...", 16));
  NEXPECT_FALSE(w.Write(14, "abc", 3));
  NEXPECT_FALSE(w.Zero(SIZE_MAX, 2));  // overflowing ranges are outside too
  struct iovec iov[3];
  NEXPECT_EQ(w.IovecsFor(3, 12, iov, 3), 3);
  NEXPECT_EQ(iov[0].iov_len, 1u);
  NEXPECT_EQ(iov[1].iov_len, 8u);
  NEXPECT_EQ(iov[2].iov_len, 3u);
  NEXPECT_EQ(w.IovecsFor(3, 12, iov, 2), -1);  // needs more entries than given
  NEXPECT_EQ(w.IovecsFor(3, 14, iov, 3), -1);  // past the capacity
  NEXPECT_TRUE(w.Contiguous(4, 8) == c.buf.data() + 4);
  NEXPECT_TRUE(w.Contiguous(3, 2) == nullptr);  // spans two slices
}

}  // namespace
}  // namespace nydus::testing
