// Reply encoding: turning answers into `fuse_out_header` + payload inside a request's writable
// slices, and turning the handler's numeric records (upcall.h) into FUSE structs.
//
// Rules (vhost-user-fs.md §4.2): out_header.len is exactly the bytes written; an error reply is
// the header alone with error = -errno, errno in [1, 511]; fixed-size replies are exact; nothing
// is written past the writable space. A reply that does not fit becomes -EIO when at least the
// header fits, and no reply at all (0 bytes) when even the header does not.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fuse/abi.h"
#include "transport/request.h"

namespace nydus::fuse {

// Writes a header-only error reply. Returns bytes written (16, or 0 without room).
uint32_t WriteError(const transport::FuseRequest& req, uint64_t unique, int err);
// Writes header + payload (payload may be null when len == 0). Falls back to WriteError(EIO)
// when the payload does not fit; *overflow (if given) is set in that case.
uint32_t WriteReply(const transport::FuseRequest& req, uint64_t unique, const void* payload,
                    size_t len, bool* overflow = nullptr);
// Writes only the header of a success reply whose payload the caller already placed at byte 16.
uint32_t WriteHeader(const transport::FuseRequest& req, uint64_t unique, size_t payload_len);

// Record validation. Each returns false and sets *why (a static string) on a bad value.
bool AttrFromRecord(const double* rec, fuse_attr* out, const char** why);
bool EntryFromRecord(const double* rec, bool allow_negative, fuse_entry_out* out, const char** why);
bool AttrOutFromRecord(const double* rec, fuse_attr_out* out, const char** why);
bool StatfsFromRecord(const double* rec, fuse_statfs_out* out, const char** why);
// Seconds (possibly fractional) to sec + nsec; negative or NaN is invalid, huge is clamped.
bool TimeoutFromSeconds(double s, uint64_t* sec, uint32_t* nsec);

// Packs dirent records (upcall.h kDirentStride) into dst as fuse_dirent / fuse_direntplus, never
// a partial record. Stops at the first record that does not fit in cap. Returns the number of
// records packed (*used = bytes) or -1 with *why when a record is invalid (a name that is empty,
// longer than 1024, contains '/' or NUL, or lies outside `names`; a zero or non-integer cookie;
// an invalid entry for plus).
long PackDirents(const double* recs, size_t n, const uint8_t* names, size_t names_len, bool plus,
                 uint8_t* dst, size_t cap, size_t* used, const char** why);

}  // namespace nydus::fuse
