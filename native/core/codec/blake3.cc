#include "codec/blake3.h"

#include <algorithm>
#include <cstring>

namespace nydus::codec {
namespace {

constexpr uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                             0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};
constexpr uint8_t kPermutation[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};

constexpr uint32_t kChunkStart = 1 << 0;
constexpr uint32_t kChunkEnd = 1 << 1;
constexpr uint32_t kParent = 1 << 2;
constexpr uint32_t kRoot = 1 << 3;

inline uint32_t Rotr(uint32_t w, int c) { return (w >> c) | (w << (32 - c)); }

inline uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

inline void G(uint32_t* s, int a, int b, int c, int d, uint32_t mx, uint32_t my) {
  s[a] = s[a] + s[b] + mx;
  s[d] = Rotr(s[d] ^ s[a], 16);
  s[c] = s[c] + s[d];
  s[b] = Rotr(s[b] ^ s[c], 12);
  s[a] = s[a] + s[b] + my;
  s[d] = Rotr(s[d] ^ s[a], 8);
  s[c] = s[c] + s[d];
  s[b] = Rotr(s[b] ^ s[c], 7);
}

// The compression function: 7 rounds over a 16-word state; only the first 8 output words are
// needed because this implementation never produces extended output.
void Compress(const uint32_t cv[8], const uint8_t block[64], uint64_t counter, uint32_t block_len,
              uint32_t flags, uint32_t out[8]) {
  uint32_t m[16];
  for (int i = 0; i < 16; ++i) m[i] = Load32(block + 4 * i);
  uint32_t s[16] = {cv[0],
                    cv[1],
                    cv[2],
                    cv[3],
                    cv[4],
                    cv[5],
                    cv[6],
                    cv[7],
                    kIv[0],
                    kIv[1],
                    kIv[2],
                    kIv[3],
                    static_cast<uint32_t>(counter),
                    static_cast<uint32_t>(counter >> 32),
                    block_len,
                    flags};
  for (int round = 0; round < 7; ++round) {
    G(s, 0, 4, 8, 12, m[0], m[1]);
    G(s, 1, 5, 9, 13, m[2], m[3]);
    G(s, 2, 6, 10, 14, m[4], m[5]);
    G(s, 3, 7, 11, 15, m[6], m[7]);
    G(s, 0, 5, 10, 15, m[8], m[9]);
    G(s, 1, 6, 11, 12, m[10], m[11]);
    G(s, 2, 7, 8, 13, m[12], m[13]);
    G(s, 3, 4, 9, 14, m[14], m[15]);
    if (round < 6) {
      uint32_t permuted[16];
      for (int i = 0; i < 16; ++i) permuted[i] = m[kPermutation[i]];
      std::memcpy(m, permuted, sizeof(m));
    }
  }
  for (int i = 0; i < 8; ++i) out[i] = s[i] ^ s[i + 8];
}

void ParentCv(const uint32_t left[8], const uint32_t right[8], uint32_t flags, uint32_t out[8]) {
  uint8_t block[64];
  for (int i = 0; i < 8; ++i) {
    for (int b = 0; b < 4; ++b) {
      block[4 * i + b] = static_cast<uint8_t>(left[i] >> (8 * b));
      block[32 + 4 * i + b] = static_cast<uint8_t>(right[i] >> (8 * b));
    }
  }
  Compress(kIv, block, 0, 64, kParent | flags, out);
}

}  // namespace

Blake3::Blake3() : cv_stack_len_(0) { ResetChunk(0); }

void Blake3::ResetChunk(uint64_t counter) {
  std::memcpy(chunk_cv_, kIv, sizeof(chunk_cv_));
  chunk_counter_ = counter;
  std::memset(block_, 0, sizeof(block_));
  block_len_ = 0;
  blocks_compressed_ = 0;
}

size_t Blake3::ChunkLen() const { return kBlockLen * blocks_compressed_ + block_len_; }

// Finishes the current (full) chunk and merges completed subtrees: after pushing the chunk with
// index n, pop and merge once per trailing one bit of n+1, like incrementing a binary counter.
void Blake3::CompleteChunk() {
  uint32_t cv[8];
  uint32_t flags = kChunkEnd | (blocks_compressed_ == 0 ? kChunkStart : 0);
  Compress(chunk_cv_, block_, chunk_counter_, block_len_, flags, cv);
  uint64_t total = chunk_counter_ + 1;
  while ((total & 1) == 0) {
    --cv_stack_len_;
    ParentCv(cv_stack_[cv_stack_len_], cv, 0, cv);
    total >>= 1;
  }
  std::memcpy(cv_stack_[cv_stack_len_], cv, sizeof(cv));
  ++cv_stack_len_;
  ResetChunk(chunk_counter_ + 1);
}

void Blake3::Update(const uint8_t* data, size_t len) {
  while (len > 0) {
    // A chunk is only completed once more input arrives, because the final chunk must be
    // compressed with the ROOT flag when it is the only one.
    if (ChunkLen() == kChunkLen) CompleteChunk();
    if (block_len_ == kBlockLen) {
      uint32_t flags = blocks_compressed_ == 0 ? kChunkStart : 0;
      Compress(chunk_cv_, block_, chunk_counter_, kBlockLen, flags, chunk_cv_);
      ++blocks_compressed_;
      std::memset(block_, 0, sizeof(block_));
      block_len_ = 0;
    }
    size_t want = kBlockLen - block_len_;
    size_t take = std::min(want, len);
    std::memcpy(block_ + block_len_, data, take);
    block_len_ = static_cast<uint8_t>(block_len_ + take);
    data += take;
    len -= take;
  }
}

void Blake3::Finalize(uint8_t out[kOutLen]) const {
  uint32_t chunk_flags = kChunkEnd | (blocks_compressed_ == 0 ? kChunkStart : 0);
  uint32_t words[8];
  if (cv_stack_len_ == 0) {
    Compress(chunk_cv_, block_, chunk_counter_, block_len_, chunk_flags | kRoot, words);
  } else {
    // Fold the stack from the right; only the last parent gets ROOT.
    uint32_t cv[8];
    Compress(chunk_cv_, block_, chunk_counter_, block_len_, chunk_flags, cv);
    for (int i = cv_stack_len_ - 1; i >= 0; --i) {
      ParentCv(cv_stack_[i], cv, i == 0 ? kRoot : 0, cv);
    }
    std::memcpy(words, cv, sizeof(words));
  }
  for (int i = 0; i < 8; ++i) {
    for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<uint8_t>(words[i] >> (8 * b));
  }
}

void Blake3::Hash(const uint8_t* data, size_t len, uint8_t out[kOutLen]) {
  Blake3 h;
  h.Update(data, len);
  h.Finalize(out);
}

}  // namespace nydus::codec
