/*
 * treedump: prints one JSON object per line for every entry under a directory, with everything
 * the image tests compare: type, mode, owner, size, nlink, mtime (ns), rdev, symlink target,
 * xattrs and the sha256 of regular files. Built static so the same binary runs on the host and
 * inside the busybox guest, which makes host, FUSE-mount and guest views directly comparable.
 *
 *   treedump DIR          entries sorted bytewise by path, DIR itself as "/"
 *
 * Names are printed as JSON strings with every byte outside printable ASCII escaped as \u00XX
 * (bytes, not code points), so non-UTF-8 names survive.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) ---- */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

struct sha256 {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t used;
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
           g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
  s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_init(struct sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof(iv));
  s->len = 0;
  s->used = 0;
}

static void sha256_update(struct sha256 *s, const uint8_t *p, size_t n) {
  s->len += n;
  while (n > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->buf + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      sha256_block(s, s->buf);
      s->used = 0;
    }
  }
}

static void sha256_final(struct sha256 *s, char hex[65]) {
  uint64_t bits = s->len * 8;
  uint8_t pad = 0x80;
  sha256_update(s, &pad, 1);
  uint8_t zero = 0;
  while (s->used != 56) sha256_update(s, &zero, 1);
  uint8_t lenbuf[8];
  for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(s, lenbuf, 8);
  for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", s->h[i]);
}

/* ---- output ---- */
static void put_json_bytes(const char *p, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') {
      putchar('\\');
      putchar(c);
    } else if (c < 0x20 || c >= 0x7f) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static int file_sha256(const char *path, char hex[65]) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  if (fd < 0) return -errno;
  struct sha256 s;
  sha256_init(&s);
  static uint8_t buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return -err;
    }
    if (n == 0) break;
    sha256_update(&s, buf, (size_t)n);
  }
  close(fd);
  sha256_final(&s, hex);
  return 0;
}

static const char *type_name(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
  }
  return "unknown";
}

static void dump_xattrs(const char *path) {
  char names[65536];
  ssize_t n = llistxattr(path, names, sizeof(names));
  printf(",\"xattrs\":{");
  if (n > 0) {
    /* names are NUL-separated; print them sorted so output is order-independent */
    const char *list[1024];
    int count = 0;
    for (ssize_t off = 0; off < n && count < 1024; off += (ssize_t)strlen(names + off) + 1) list[count++] = names + off;
    for (int i = 1; i < count; i++)
      for (int j = i; j > 0 && strcmp(list[j - 1], list[j]) > 0; j--) {
        const char *t = list[j]; list[j] = list[j - 1]; list[j - 1] = t;
      }
    for (int i = 0; i < count; i++) {
      static unsigned char val[65536];
      ssize_t vn = lgetxattr(path, list[i], val, sizeof(val));
      if (i > 0) putchar(',');
      put_json_bytes(list[i], strlen(list[i]));
      printf(":\"");
      for (ssize_t k = 0; k < vn; k++) printf("%02x", val[k]);
      putchar('"');
    }
  } else if (n < 0 && errno != ENOTSUP && errno != ENODATA) {
    printf("\"!error\":\"%s\"", strerror(errno));
  }
  putchar('}');
}

struct entry {
  char *rel;
};

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const struct entry *)a)->rel, ((const struct entry *)b)->rel);
}

static struct entry *entries;
static size_t n_entries, cap_entries;

static void add_entry(const char *rel) {
  if (n_entries == cap_entries) {
    cap_entries = cap_entries ? cap_entries * 2 : 1024;
    entries = realloc(entries, cap_entries * sizeof(*entries));
    if (!entries) { perror("realloc"); exit(2); }
  }
  entries[n_entries++].rel = strdup(rel);
}

static void walk(const char *root, const char *rel) {
  char path[8192];
  snprintf(path, sizeof(path), "%s%s", root, rel);
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "treedump: opendir %s: %s\n", path, strerror(errno));
    return;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char child[8192];
    snprintf(child, sizeof(child), "%s/%s", strcmp(rel, "/") == 0 ? "" : rel, de->d_name);
    add_entry(child);
    char cpath[8192];
    snprintf(cpath, sizeof(cpath), "%s%s", root, child);
    struct stat st;
    if (lstat(cpath, &st) == 0 && S_ISDIR(st.st_mode)) walk(root, child);
  }
  closedir(d);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: treedump DIR\n");
    return 2;
  }
  const char *root = argv[1];
  size_t rl = strlen(root);
  char rootbuf[4096];
  snprintf(rootbuf, sizeof(rootbuf), "%.*s", (int)(rl > 1 && root[rl - 1] == '/' ? rl - 1 : rl), root);
  add_entry("/");
  walk(rootbuf, "/");
  qsort(entries, n_entries, sizeof(*entries), cmp_entry);
  int status = 0;
  for (size_t i = 0; i < n_entries; i++) {
    char path[8192];
    const char *rel = entries[i].rel;
    snprintf(path, sizeof(path), "%s%s", rootbuf, strcmp(rel, "/") == 0 ? "" : rel);
    if (path[0] == 0) strcpy(path, "/");
    struct stat st;
    if (lstat(path, &st) != 0) {
      fprintf(stderr, "treedump: lstat %s: %s\n", path, strerror(errno));
      status = 1;
      continue;
    }
    printf("{\"path\":");
    put_json_bytes(rel, strlen(rel));
    printf(",\"type\":\"%s\",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"size\":%lld,\"nlink\":%lu", type_name(st.st_mode),
           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid, (long long)st.st_size,
           (unsigned long)st.st_nlink);
    printf(",\"mtime\":%lld,\"mtime_nsec\":%ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    printf(",\"ino\":%llu", (unsigned long long)st.st_ino);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
      printf(",\"rdev_major\":%u,\"rdev_minor\":%u", major(st.st_rdev), minor(st.st_rdev));
    if (S_ISLNK(st.st_mode)) {
      char target[8192];
      ssize_t n = readlink(path, target, sizeof(target));
      printf(",\"target\":");
      if (n >= 0) put_json_bytes(target, (size_t)n);
      else printf("null");
    }
    if (S_ISREG(st.st_mode)) {
      char hex[65];
      int rc = file_sha256(path, hex);
      if (rc == 0) printf(",\"sha256\":\"%s\"", hex);
      else { printf(",\"sha256\":null,\"read_error\":\"%s\"", strerror(-rc)); status = 1; }
    }
    dump_xattrs(path);
    printf("}\n");
  }
  return status;
}
