/*
 * posixsuite: a POSIX/Linux behaviour suite for a writable filesystem (issue 12). Built static so
 * the same binary runs inside the busybox guest on a virtio-fs share (ours and QEMU's virtiofsd).
 *
 *   posixsuite run DIR            runs every case in DIR/ps (made fresh) and prints one line per
 *                                 case: "PS <tab> name <tab> got <tab> want <tab> ok|FAIL",
 *                                 then "PS-END <cases> <failures>"; exit 0 even with failures
 *                                 (the test decides what a failure means per daemon).
 *   posixsuite escape DIR N       escape attempts through DIR (symlinks out, `..` chains, renames
 *                                 across the root, N creates in DIR/race/d while the host swaps
 *                                 that directory for a symlink pointing out); prints "ESC-DONE".
 *   posixsuite setx FILE NAME VAL sets an xattr (busybox has no setfattr); exit 1 on failure.
 *   posixsuite mkfiles DIR N SIZE creates DIR/f0..f<N-1>, SIZE bytes each (create, write, close);
 *   posixsuite statfiles DIR N    stats them (the bench's create and stat rows); exit 1 on error.
 *   posixsuite fill FILE MIB      writes 64 KiB blocks until an error or MIB MiB (with a writeback
 *                                 cache write() may keep succeeding and the error come at fsync),
 *                                 then fsyncs; prints "FILL write=<errno|none> bytes=N fsync=<errno|0>".
 *
 * "got" is "0" (success), a value the case reads back, or the errno's name; "want" lists the
 * answers Linux gives, separated by '|' (more than one only where Linux itself allows more, each
 * commented). Callers that must drop privileges do so in a forked child (uid/gid 1000).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <grp.h>
#include <stdarg.h>
#include <unistd.h>

static int cases, failures;

static const char* ename(int e) {
  switch (e) {
#define N(x) case x: return #x;
    N(EPERM) N(ENOENT) N(EIO) N(EBADF) N(EAGAIN) N(EACCES) N(EEXIST) N(EXDEV) N(ENOTDIR) N(EISDIR)
    N(EINVAL) N(ENOSPC) N(ESPIPE) N(EROFS) N(EMLINK) N(ERANGE) N(ENAMETOOLONG) N(ENOSYS)
    N(ENOTEMPTY) N(ELOOP) N(ENODATA) N(EOPNOTSUPP) N(ENXIO) N(EFBIG) N(ETXTBSY) N(EBUSY)
    N(EFAULT) N(E2BIG) N(EDQUOT) N(ESTALE)
#undef N
    default: return "E?";
  }
}

/* "0" for r >= 0, else the errno's name (callers pass the libc return, errno still set). */
static const char* rc(long r) { return r < 0 ? ename(errno) : "0"; }

static int matches(const char* got, const char* want) {
  size_t n = strlen(got);
  for (const char* p = want; *p;) {
    const char* bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && memcmp(p, got, n) == 0) return 1;
    if (!bar) break;
    p = bar + 1;
  }
  return 0;
}

static int check(const char* name, const char* got, const char* want) {
  int ok = matches(got, want);
  cases++;
  if (!ok) failures++;
  printf("PS\t%s\t%s\t%s\t%s\n", name, got, want, ok ? "ok" : "FAIL");
  fflush(stdout);
  return ok;
}

static char vbuf[64];
static const char* num(long long v) {
  snprintf(vbuf, sizeof vbuf, "%lld", v);
  return vbuf;
}
static const char* oct(unsigned v) {
  snprintf(vbuf, sizeof vbuf, "%o", v);
  return vbuf;
}

static void die(const char* what) {
  fprintf(stderr, "posixsuite: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void put(const char* path, const char* data, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data)) die(path);
  close(fd);
  chmod(path, mode);
}

static long long fsize(const char* path) {
  struct stat st;
  return lstat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

static unsigned fmode(const char* path) {
  struct stat st;
  return lstat(path, &st) < 0 ? 0 : (unsigned)(st.st_mode & 07777);
}

static const char* content(const char* path) {
  static char buf[256];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return ename(errno);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n < 0 ? 0 : n] = 0;
  return buf;
}

/* Runs fn as uid/gid 1000 (no supplementary groups) in a child; the child's checks count there
 * and its exit status carries them back. */
static void as_user(void (*fn)(void)) {
  fflush(stdout);
  pid_t p = fork();
  if (p < 0) die("fork");
  if (p == 0) {
    cases = failures = 0;
    if (setgroups(0, NULL) < 0 || setgid(1000) < 0 || setuid(1000) < 0) die("drop privileges");
    fn();
    fflush(stdout);
    _exit(cases * 16 + (failures > 15 ? 15 : failures));
  }
  int st = 0;
  waitpid(p, &st, 0);
  if (!WIFEXITED(st)) {
    check("as_user_child_exit", "crashed", "0");
    return;
  }
  cases += WEXITSTATUS(st) / 16;
  failures += WEXITSTATUS(st) % 16;
}

/* ---------- names: lookup, create, mkdir, unlink, rmdir, symlink, link, mknod ---------- */
static void names(void) {
  put("f", "data", 0644);
  mkdir("d", 0755);
  struct stat st;
  check("lookup_missing", rc(stat("nope", &st)), "ENOENT");
  check("lookup_through_file", rc(stat("f/x", &st)), "ENOTDIR");
  char longname[300];
  memset(longname, 'n', 256);
  longname[256] = 0;
  check("create_name_too_long", rc(open(longname, O_CREAT | O_WRONLY, 0644)), "ENAMETOOLONG");
  check("open_missing", rc(open("nope", O_RDONLY)), "ENOENT");
  check("open_excl_existing", rc(open("f", O_CREAT | O_EXCL | O_WRONLY, 0644)), "EEXIST");
  int fd = open("new", O_CREAT | O_EXCL | O_WRONLY, 0640);
  check("open_excl_new", rc(fd), "0");
  close(fd);
  check("open_excl_new_mode", oct(fmode("new")), "640");
  check("open_dir_for_write", rc(open("d", O_WRONLY)), "EISDIR");
  check("open_file_as_directory", rc(open("f", O_RDONLY | O_DIRECTORY)), "ENOTDIR");
  check("open_excl_on_symlink", (symlink("nope-target", "dangling"), rc(open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644))), "EEXIST");
  fd = open("dangling", O_CREAT | O_WRONLY, 0644);  /* follows the link and creates its target */
  check("open_creat_through_dangling_symlink", rc(fd), "0");
  close(fd);
  check("dangling_target_created", rc(lstat("nope-target", &st)), "0");
  check("mkdir_existing", rc(mkdir("d", 0755)), "EEXIST");
  check("mkdir_over_file", rc(mkdir("f", 0755)), "EEXIST");
  check("mkdir_missing_parent", rc(mkdir("no/d", 0755)), "ENOENT");
  check("mkdir_mode", (mkdir("m", 0750), oct(fmode("m"))), "750");
  check("unlink_dir", rc(unlink("d")), "EISDIR");
  check("unlink_missing", rc(unlink("nope")), "ENOENT");
  put("d/in", "x", 0644);
  check("rmdir_not_empty", rc(rmdir("d")), "ENOTEMPTY");
  check("rmdir_file", rc(rmdir("f")), "ENOTDIR");
  check("rmdir_dot", rc(rmdir("d/.")), "EINVAL");
  check("rmdir_empty", rc(rmdir("m")), "0");
  check("symlink_existing", rc(symlink("x", "f")), "EEXIST");
  check("symlink_create", rc(symlink("some/where/../t", "sl")), "0");
  char tgt[64] = {0};
  check("readlink_target", readlink("sl", tgt, sizeof tgt - 1) < 0 ? ename(errno) : tgt, "some/where/../t");
  check("readlink_on_file", rc(readlink("f", tgt, sizeof tgt)), "EINVAL");
  check("link_create", rc(link("f", "f2")), "0");
  check("link_nlink", (stat("f", &st), num(st.st_nlink)), "2");
  check("link_existing", rc(link("f", "d/in")), "EEXIST");
  check("link_dir", rc(link("d", "d2")), "EPERM");
  check("link_missing", rc(link("nope", "n2")), "ENOENT");
  check("link_to_symlink_is_symlink", (link("sl", "sl2"), lstat("sl2", &st), S_ISLNK(st.st_mode) ? "symlink" : "other"), "symlink");
  check("mknod_fifo", rc(mknod("fifo", S_IFIFO | 0600, 0)), "0");
  check("mknod_chr", rc(mknod("chr", S_IFCHR | 0600, makedev(1, 3))), "0");
  check("mknod_chr_rdev", (lstat("chr", &st), num(major(st.st_rdev) * 1000 + minor(st.st_rdev))), "1003");
  check("mknod_sock", rc(mknod("sock", S_IFSOCK | 0600, 0)), "0");
  check("mknod_existing", rc(mknod("fifo", S_IFIFO | 0600, 0)), "EEXIST");
  check("open_fifo_nonblock_write_no_reader", rc(open("fifo", O_WRONLY | O_NONBLOCK)), "ENXIO");
}

/* ---------- renames ---------- */
static void renames(void) {
  mkdir("r", 0755);
  if (chdir("r") < 0) die("chdir r");
  put("a", "A", 0644);
  put("b", "B", 0644);
  mkdir("da", 0755);
  mkdir("db", 0755);
  mkdir("full", 0755);
  put("full/x", "x", 0644);
  check("rename_file_over_dir", rc(rename("a", "da")), "EISDIR");
  check("rename_dir_over_file", rc(rename("da", "a")), "ENOTDIR");
  check("rename_dir_over_nonempty", rc(rename("da", "full")), "ENOTEMPTY|EEXIST"); /* POSIX allows either; Linux: ENOTEMPTY */
  check("rename_dir_into_itself", rc(rename("da", "da/sub")), "EINVAL");
  check("rename_missing", rc(rename("nope", "x")), "ENOENT");
  check("rename_dir_over_empty", rc(rename("da", "db")), "0");
  check("rename_dir_over_empty_gone", rc(access("da", F_OK)), "ENOENT");
  check("rename_noreplace_existing", rc(renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE)), "EEXIST");
  check("rename_noreplace_new", rc(renameat2(AT_FDCWD, "a", AT_FDCWD, "c", RENAME_NOREPLACE)), "0");
  check("rename_exchange", rc(renameat2(AT_FDCWD, "b", AT_FDCWD, "c", RENAME_EXCHANGE)), "0");
  check("rename_exchange_swapped", content("b"), "A");
  check("rename_exchange_missing", rc(renameat2(AT_FDCWD, "b", AT_FDCWD, "nope", RENAME_EXCHANGE)), "ENOENT");
  check("rename_exchange_file_dir", rc(renameat2(AT_FDCWD, "b", AT_FDCWD, "db", RENAME_EXCHANGE)), "0");
  struct stat st;
  check("rename_exchange_file_dir_types", (lstat("b", &st), S_ISDIR(st.st_mode) ? "dir" : "other"), "dir");
  check("rename_noreplace_exchange_both", rc(renameat2(AT_FDCWD, "b", AT_FDCWD, "c", RENAME_NOREPLACE | RENAME_EXCHANGE)), "EINVAL");
  put("w", "W", 0644);
  /* RENAME_WHITEOUT leaves a 0/0 character device at the old name (root has CAP_MKNOD). A
   * filesystem that does not offer it answers EINVAL. */
  int r = renameat2(AT_FDCWD, "w", AT_FDCWD, "w2", RENAME_WHITEOUT);
  check("rename_whiteout", rc(r), "0|EINVAL");
  if (r == 0) check("rename_whiteout_leaves_0_0_chr", (lstat("w", &st), S_ISCHR(st.st_mode) && st.st_rdev == 0 ? "chr0" : "other"), "chr0");
  put("h", "H", 0644);
  link("h", "h2");
  check("rename_onto_own_hardlink", rc(rename("h", "h2")), "0");
  check("rename_onto_own_hardlink_both_stay", rc(access("h", F_OK)), "0");
  put("full/y", "y", 0644);
  check("rename_across_dirs", rc(rename("full/y", "y")), "0");
  check("rename_across_dirs_content", content("y"), "y");
  check("rename_over_file_replaces", (put("o", "old", 0644), put("n", "new", 0644), rename("n", "o"), content("o")), "new");
  if (chdir("..") < 0) die("chdir ..");
}

/* ---------- data: open flags, read/write, truncate, fallocate, lseek, copy_file_range ---------- */
static void data(void) {
  put("t", "0123456789", 0644);
  int fd = open("t", O_WRONLY | O_TRUNC);
  check("open_trunc_size", (close(fd), num(fsize("t"))), "0");
  put("ap", "first,", 0644);
  fd = open("ap", O_WRONLY | O_APPEND);
  lseek(fd, 0, SEEK_SET);
  ssize_t w = write(fd, "second.", 7);
  check("append_write", num(w), "7");
  check("append_position", num(lseek(fd, 0, SEEK_CUR)), "13");
  close(fd);
  check("append_content", content("ap"), "first,second.");
  fd = open("ap", O_RDONLY);
  check("write_on_rdonly_fd", rc(write(fd, "x", 1)), "EBADF");
  check("ftruncate_on_rdonly_fd", rc(ftruncate(fd, 0)), "EINVAL|EBADF"); /* Linux: EINVAL */
  close(fd);
  check("truncate_dir", rc(truncate("d", 0)), "EISDIR");
  check("truncate_grow", (truncate("t", 100000), num(fsize("t"))), "100000");
  check("truncate_shrink", (truncate("t", 3), num(fsize("t"))), "3");
  check("truncate_negative", rc(truncate("t", -1)), "EINVAL");
  /* 1 MiB of a pattern at an odd offset, read back. */
  static char big[1 << 20], back[1 << 20];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7 + i / 4096);
  fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
  check("pwrite_1m", num(pwrite(fd, big, sizeof big, 12345)), "1048576");
  check("fsync", rc(fsync(fd)), "0");
  check("fdatasync", rc(fdatasync(fd)), "0");
  close(fd);
  fd = open("big", O_RDONLY);
  check("pread_1m", num(pread(fd, back, sizeof back, 12345)), "1048576");
  check("pread_1m_same", memcmp(big, back, sizeof big) == 0 ? "same" : "differs", "same");
  check("pread_at_eof", num(pread(fd, back, 10, 12345 + (1 << 20))), "0");
  close(fd);
  /* fallocate */
  fd = open("fa", O_RDWR | O_CREAT | O_TRUNC, 0644);
  int r = fallocate(fd, 0, 0, 65536);
  check("fallocate_extend", r < 0 ? ename(errno) : num(fsize("fa")), "65536");
  r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536);
  check("fallocate_keep_size", r < 0 ? ename(errno) : num(fsize("fa")), "65536");
  pwrite(fd, big, 65536, 0);
  fsync(fd);
  r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192);
  check("fallocate_punch_hole", rc(r), "0");
  pread(fd, back, 8192, 4096);
  char zero[8192] = {0};
  check("fallocate_punched_reads_zero", memcmp(back, zero, 8192) == 0 ? "zero" : "data", "zero");
  check("fallocate_punch_without_keep_size", rc(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)), "EOPNOTSUPP");
  check("fallocate_bad_len", rc(fallocate(fd, 0, 0, 0)), "EINVAL");
  close(fd);
  fd = open("fa", O_RDONLY);
  check("fallocate_on_rdonly_fd", rc(fallocate(fd, 0, 0, 4096)), "EBADF");
  close(fd);
  /* lseek: data at [0, 4 KiB) and [1 MiB, 1 MiB + 4 KiB), a hole between. */
  fd = open("sparse", O_RDWR | O_CREAT | O_TRUNC, 0644);
  pwrite(fd, big, 4096, 0);
  pwrite(fd, big, 4096, 1 << 20);
  fsync(fd);
  off_t h = lseek(fd, 0, SEEK_HOLE);
  /* A filesystem may report a hole only at EOF (Linux's generic fallback); the host fs here
   * reports the real one. */
  check("lseek_hole", h < 0 ? ename(errno) : num(h), "4096|1052672");
  off_t dt = lseek(fd, 8192, SEEK_DATA);
  check("lseek_data", dt < 0 ? ename(errno) : num(dt), "1048576|8192");
  check("lseek_data_past_eof", rc(lseek(fd, 2 << 20, SEEK_DATA)), "ENXIO");
  check("lseek_hole_past_eof", rc(lseek(fd, 2 << 20, SEEK_HOLE)), "ENXIO");
  check("lseek_end", num(lseek(fd, 0, SEEK_END)), "1052672");
  check("lseek_negative", rc(lseek(fd, -1, SEEK_SET)), "EINVAL");
  close(fd);
  /* copy_file_range */
  int in = open("big", O_RDONLY), out = open("copy", O_RDWR | O_CREAT | O_TRUNC, 0644);
  loff_t io = 12345, oo = 0;
  ssize_t c = copy_file_range(in, &io, out, &oo, 100000, 0);
  check("copy_file_range", c < 0 ? ename(errno) : num(c), "100000");
  pread(out, back, 100000, 0);
  check("copy_file_range_content", memcmp(back, big, 100000) == 0 ? "same" : "differs", "same");
  check("copy_file_range_bad_flags", rc(copy_file_range(in, &io, out, &oo, 10, 1)), "EINVAL");
  close(in);
  check("copy_file_range_closed_fd", rc(copy_file_range(in, &io, out, &oo, 10, 0)), "EBADF");
  close(out);
}

/* ---------- attributes: chmod, chown, utimes, kill-suid ---------- */
static void user_attr_cases(void) {
  /* Owned by 1000, 06775 with group 1000 executable: any write by the owner (no CAP_FSETID)
   * clears setuid and setgid. */
  int fd = open("suid", O_WRONLY);
  check("user_write_kills_suid_sgid", (write(fd, "z", 1), close(fd), oct(fmode("suid"))), "775");
  check("user_truncate_kills_suid", (truncate("suid2", 1), oct(fmode("suid2"))), "755");
  check("user_chmod_other_owner", rc(chmod("ro", 0777)), "EPERM");
  check("user_chown_own_file", rc(chown("suid", 0, 0)), "EPERM");
  check("user_open_write_readonly_file", rc(open("ro", O_WRONLY)), "EACCES");
  check("user_access_w_readonly_file", rc(access("ro", W_OK)), "EACCES");
  check("user_create_in_root_dir", rc(open("rootdir/x", O_CREAT | O_WRONLY, 0644)), "EACCES");
  check("user_unlink_sticky_other", rc(unlink("sticky/rootfile")), "EPERM");
  check("user_utimes_now_own_file", rc(utimensat(AT_FDCWD, "suid", NULL, 0)), "0");
  check("user_utimes_now_writable_file", rc(utimensat(AT_FDCWD, "rw", NULL, 0)), "0");
  struct timespec ts[2] = {{1, 0}, {1, 0}};
  check("user_utimes_explicit_not_owner", rc(utimensat(AT_FDCWD, "rw", ts, 0)), "EPERM");
  check("user_utimes_now_readonly_file", rc(utimensat(AT_FDCWD, "ro", NULL, 0)), "EACCES");
  check("user_setxattr_trusted", rc(setxattr("suid", "trusted.x", "1", 1, 0)), "EPERM");
}

static void attrs(void) {
  struct stat st;
  check("chmod", (chmod("f", 0604), oct(fmode("f"))), "604");
  check("chmod_setuid", (chmod("f", 04755), oct(fmode("f"))), "4755");
  check("chown", rc(chown("f", 1000, 1001)), "0");
  check("chown_values", (stat("f", &st), num(st.st_uid * 10000 + st.st_gid)), "10001001");
  check("chown_kills_suid", oct(fmode("f")), "755");
  check("lchown_symlink", (lchown("sl", 1002, 1002), lstat("sl", &st), num(st.st_uid)), "1002");
  struct timespec ts[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  utimensat(AT_FDCWD, "f", ts, 0);
  stat("f", &st);
  check("utimes_explicit_atime", num((long long)st.st_atim.tv_sec * 1000000000LL + st.st_atim.tv_nsec), "1000000000123456789");
  check("utimes_explicit_mtime", num((long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec), "1500000000987654321");
  struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  utimensat(AT_FDCWD, "f", now, 0);
  stat("f", &st);
  check("utimes_now_sets_atime", st.st_atim.tv_sec > 1600000000 ? "now" : num(st.st_atim.tv_sec), "now");
  check("utimes_omit_keeps_mtime", num(st.st_mtim.tv_sec), "1500000000");
  int fd = open("f", O_RDONLY);
  struct timespec fts[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
  check("futimens_by_fd", rc(futimens(fd, fts)), "0");
  close(fd);
  check("futimens_mtime", (stat("f", &st), num(st.st_mtim.tv_sec)), "1234567890");
  check("utimes_nofollow_symlink", (utimensat(AT_FDCWD, "sl", ts, AT_SYMLINK_NOFOLLOW), lstat("sl", &st), num(st.st_mtim.tv_sec)), "1500000000");
  /* As uid 1000: kill-suid on write/truncate, EPERM/EACCES checks. */
  put("suid", "s", 0644);
  chown("suid", 1000, 1000);
  chmod("suid", 06775);
  put("suid2", "ss", 0644);
  chown("suid2", 1000, 1000);
  chmod("suid2", 04755);
  put("ro", "r", 0444);
  put("rw", "w", 0666);
  mkdir("rootdir", 0755);
  mkdir("sticky", 0755);
  chmod("sticky", 01777);
  put("sticky/rootfile", "x", 0666);
  chmod(".", 0755);
  as_user(user_attr_cases);
  put("root_suid", "s", 04755);
  fd = open("root_suid", O_WRONLY);
  check("root_write_keeps_suid", (write(fd, "z", 1), close(fd), oct(fmode("root_suid"))), "4755");
}

/* ---------- xattrs, ACLs, security.* ---------- */
static void xattrs(void) {
  char v[64];
  check("setxattr_user", rc(setxattr("f", "user.a", "va", 2, 0)), "0");
  ssize_t n = getxattr("f", "user.a", v, sizeof v);
  check("getxattr_user", n < 0 ? ename(errno) : (v[n] = 0, v), "va");
  check("getxattr_size_probe", num(getxattr("f", "user.a", NULL, 0)), "2");
  check("getxattr_too_small", rc(getxattr("f", "user.a", v, 1)), "ERANGE");
  check("getxattr_missing", rc(getxattr("f", "user.none", v, sizeof v)), "ENODATA");
  check("setxattr_create_existing", rc(setxattr("f", "user.a", "x", 1, XATTR_CREATE)), "EEXIST");
  check("setxattr_replace_missing", rc(setxattr("f", "user.b", "x", 1, XATTR_REPLACE)), "ENODATA");
  check("setxattr_replace", rc(setxattr("f", "user.a", "vb", 2, XATTR_REPLACE)), "0");
  check("setxattr_empty_value", rc(setxattr("f", "user.empty", "", 0, 0)), "0");
  check("getxattr_empty_value", num(getxattr("f", "user.empty", v, sizeof v)), "0");
  char list[1024];
  n = listxattr("f", list, sizeof list);
  int has_a = 0, has_empty = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
    has_a |= strcmp(list + i, "user.a") == 0;
    has_empty |= strcmp(list + i, "user.empty") == 0;
  }
  check("listxattr", has_a && has_empty ? "both" : "missing", "both");
  check("listxattr_too_small", rc(listxattr("f", list, 3)), "ERANGE");
  check("removexattr", rc(removexattr("f", "user.a")), "0");
  check("removexattr_missing", rc(removexattr("f", "user.a")), "ENODATA");
  check("setxattr_user_on_symlink", rc(lsetxattr("sl", "user.a", "x", 1, 0)), "EPERM");
  check("setxattr_user_on_fifo", rc(lsetxattr("fifo", "user.a", "x", 1, 0)), "EPERM");
  check("setxattr_bad_namespace", rc(setxattr("f", "bogus.a", "x", 1, 0)), "EOPNOTSUPP");
  check("setxattr_trusted_as_root", rc(setxattr("f", "trusted.t", "tv", 2, 0)), "0");
  check("setxattr_security", rc(setxattr("f", "security.test", "sv", 2, 0)), "0");
  n = getxattr("f", "security.test", v, sizeof v);
  check("getxattr_security", n < 0 ? ename(errno) : (v[n] = 0, v), "sv");
  int fd = open("f", O_RDONLY);
  check("fsetxattr_by_fd", rc(fsetxattr(fd, "user.fd", "1", 1, 0)), "0");
  check("fgetxattr_by_fd", num(fgetxattr(fd, "user.fd", v, sizeof v)), "1");
  close(fd);
  check("setxattr_on_dir", rc(setxattr("d", "user.dir", "1", 1, 0)), "0");
  /* POSIX ACL (version 2): user::rw- user:1000:r-- group::r-- mask::r-- other::---. Linux with
   * ACLs answers 0; a FUSE server that does not negotiate FUSE_POSIX_ACL leaves the 6.1 guest
   * kernel answering EOPNOTSUPP itself (Kata's options: no posix_acl). */
  struct { uint32_t version; struct { uint16_t tag, perm; uint32_t id; } e[5]; } acl = {
      2, {{0x01, 6, 0xffffffffu}, {0x02, 4, 1000}, {0x04, 4, 0xffffffffu}, {0x10, 4, 0xffffffffu}, {0x20, 0, 0xffffffffu}}};
  put("acl", "a", 0640);
  int r = setxattr("acl", "system.posix_acl_access", &acl, sizeof acl, 0);
  check("acl_set_access", rc(r), "0|EOPNOTSUPP");
  if (r == 0) {
    check("acl_get_access_size", num(getxattr("acl", "system.posix_acl_access", NULL, 0)), num(sizeof acl));
    check("acl_mode_group_is_mask", oct(fmode("acl")), "640");
  }
  check("acl_set_default_on_file", rc(setxattr("acl", "system.posix_acl_default", &acl, sizeof acl, 0)), "EACCES|EOPNOTSUPP");
  r = setxattr("d", "system.posix_acl_default", &acl, sizeof acl, 0);
  check("acl_set_default_on_dir", rc(r), "0|EOPNOTSUPP");
}

/* ---------- directories, statfs, sync, locks ---------- */
static void dirs_and_misc(void) {
  mkdir("many", 0755);
  char name[64];
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "many/file-with-a-longish-name-%04d", i);
    put(name, "", 0644);
  }
  DIR* dir = opendir("many");
  int count = 0;
  struct dirent* de;
  while ((de = readdir(dir)) != NULL) count++;
  check("readdir_count", num(count), "302");
  rewinddir(dir);
  count = 0;
  while ((de = readdir(dir)) != NULL) count++;
  check("readdir_after_rewind", num(count), "302");
  check("fsyncdir", rc(fsync(dirfd(dir))), "0");
  closedir(dir);
  check("opendir_file", opendir("f") ? "0" : ename(errno), "ENOTDIR");
  struct statfs sf;
  check("statfs", rc(statfs(".", &sf)), "0");
  check("statfs_sane", sf.f_blocks > 0 && sf.f_bsize > 0 && sf.f_bfree <= sf.f_blocks ? "sane" : "insane", "sane");
  check("statfs_namelen", num(sf.f_namelen), "255");
  int fd = open("f", O_RDONLY);
  check("syncfs", rc(syncfs(fd)), "0");
  close(fd);
  sync();
  /* fcntl locks: the parent holds a write lock on [0, 10); a child sees it and is refused. */
  fd = open("lk", O_RDWR | O_CREAT, 0644);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
  check("fcntl_setlk", rc(fcntl(fd, F_SETLK, &fl)), "0");
  check("flock_ex", rc(flock(fd, LOCK_EX | LOCK_NB)), "0");
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) {
    int cfd = open("lk", O_RDWR);
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
    int ok = fcntl(cfd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_pid == getppid();
    struct flock s = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int e1 = fcntl(cfd, F_SETLK, &s) < 0 ? errno : 0;
    s.l_start = 10;
    int e2 = fcntl(cfd, F_SETLK, &s) < 0 ? errno : 0;
    int e3 = flock(cfd, LOCK_SH | LOCK_NB) < 0 ? errno : 0;
    _exit((ok ? 1 : 0) | (e1 == EAGAIN || e1 == EACCES ? 2 : 0) | (e2 == 0 ? 4 : 0) | (e3 == EWOULDBLOCK ? 8 : 0));
  }
  int st = 0;
  waitpid(p, &st, 0);
  int bits = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  check("fcntl_getlk_sees_holder", bits & 1 ? "held" : "free", "held");
  check("fcntl_setlk_conflict", bits & 2 ? "EAGAIN" : "granted", "EAGAIN");
  check("fcntl_setlk_disjoint", bits & 4 ? "0" : "refused", "0");
  check("flock_conflict", bits & 8 ? "EWOULDBLOCK" : "granted", "EWOULDBLOCK");
  fl.l_type = F_UNLCK;
  check("fcntl_unlock", rc(fcntl(fd, F_SETLK, &fl)), "0");
  check("flock_unlock", rc(flock(fd, LOCK_UN)), "0");
  close(fd);
  /* Unlinked but open: the data stays readable through the descriptor. */
  put("ul", "still here", 0644);
  fd = open("ul", O_RDONLY);
  unlink("ul");
  char buf[32] = {0};
  check("read_after_unlink", (pread(fd, buf, sizeof buf - 1, 0), buf), "still here");
  struct stat s2;
  check("fstat_after_unlink_nlink", (fstat(fd, &s2), num(s2.st_nlink)), "0");
  close(fd);
}

static int run(const char* dir) {
  char ps[4096];
  snprintf(ps, sizeof ps, "%s/ps", dir);
  if (mkdir(ps, 0755) < 0 || chdir(ps) < 0) die(ps);
  umask(022);
  names();
  renames();
  data();
  attrs();
  xattrs();
  dirs_and_misc();
  printf("PS-END %d %d\n", cases, failures);
  return 0;
}

/* ---------- escape attempts ---------- */
static void escape(const char* dir, int n) {
  char p[4096];
  if (chdir(dir) < 0) die(dir);
  mkdir("esc", 0755);
  if (chdir("esc") < 0) die("esc");
  /* Symlinks pointing out (resolved by the guest kernel in the guest's namespace, never by the
   * server on the host), written through, renamed, linked. */
  symlink("/host-outside", "abs");
  symlink("../../../../../../../../host-outside", "rel");
  symlink("/", "root");
  int fd = open("abs/created", O_CREAT | O_WRONLY, 0644);
  printf("ESC abs_create %s\n", rc(fd));
  if (fd >= 0) close(fd);
  fd = open("rel/created", O_CREAT | O_WRONLY, 0644);
  printf("ESC rel_create %s\n", rc(fd));
  if (fd >= 0) close(fd);
  printf("ESC chmod_through_root_link %s\n", rc(fchmodat(AT_FDCWD, "root", 0777, AT_SYMLINK_NOFOLLOW)));
  printf("ESC rename_link_up %s\n", rc(rename("abs", "../abs-moved")));
  printf("ESC rename_up_past_root %s\n", rc(rename("rel", "../../../../../rel-moved")));
  printf("ESC link_of_link %s\n", rc(link("root", "root2")));
  printf("ESC dotdot_chain_mkdir %s\n", rc(mkdir("../../../../../../../dotdot-made", 0755)));
  /* The host swaps race/d for a symlink to its outside directory and back while this loops. */
  int made = 0;
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s/race/d/f%d", dir, i);
    fd = open(p, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) {
      made++;
      close(fd);
      unlink(p);
    }
    snprintf(p, sizeof p, "%s/race/d/sub%d", dir, i);
    if (mkdir(p, 0755) == 0) rmdir(p);
  }
  printf("ESC race_creates %d/%d\nESC-DONE\n", made, n);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "run") == 0) return run(argv[2]);
  if (argc == 4 && strcmp(argv[1], "escape") == 0) {
    escape(argv[2], atoi(argv[3]));
    return 0;
  }
  if (argc == 5 && strcmp(argv[1], "setx") == 0) {
    if (lsetxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) == 0) return 0;
    fprintf(stderr, "setx %s %s: %s\n", argv[2], argv[3], strerror(errno));
    return 1;
  }
  if (argc == 5 && strcmp(argv[1], "mkfiles") == 0) {
    static char block[1 << 16];
    size_t size = (size_t)atol(argv[4]);
    if (size > sizeof block) size = sizeof block;
    memset(block, 'w', size);
    for (int i = 0, n = atoi(argv[3]); i < n; i++) {
      char p[4096];
      snprintf(p, sizeof p, "%s/f%d", argv[2], i);
      int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || write(fd, block, size) != (ssize_t)size || close(fd) < 0) die(p);
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "statfiles") == 0) {
    for (int i = 0, n = atoi(argv[3]); i < n; i++) {
      char p[4096];
      struct stat st;
      snprintf(p, sizeof p, "%s/f%d", argv[2], i);
      if (stat(p, &st) < 0) die(p);
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "fill") == 0) {
    long long limit = atoll(argv[3]) << 20;
    static char block[65536];
    memset(block, 'f', sizeof block);
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die(argv[2]);
    long long total = 0;
    int e = 0;
    while (total < limit) {
      ssize_t w = write(fd, block, sizeof block);
      if (w <= 0) {
        e = w < 0 ? errno : ENOSPC;
        break;
      }
      total += w;
    }
    int f = fsync(fd) < 0 ? errno : 0;
    int c = close(fd) < 0 ? errno : 0;
    printf("FILL write=%s bytes=%lld fsync=%s close=%s\n", e ? ename(e) : "none", total, f ? ename(f) : "0", c ? ename(c) : "0");
    return 0;
  }
  fprintf(stderr, "usage: posixsuite run DIR | escape DIR N | setx FILE NAME VALUE | fill FILE MIB | mkfiles DIR N SIZE | statfiles DIR N\n");
  return 2;
}
