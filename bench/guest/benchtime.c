/*
 * benchtime CMD [ARGS...]: runs CMD, waits for it, prints the elapsed CLOCK_MONOTONIC time in
 * nanoseconds on stdout. The guest benchmark wraps each step in it: the guest's own clock, one
 * fork+exec of overhead on both sides alike, no boot time. (busybox `date` has no %N.)
 * Exits with the command's status (128+signal when it was killed).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: benchtime CMD [ARGS...]\n");
    return 2;
  }
  long long t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) {
    perror("benchtime: fork");
    return 2;
  }
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    perror("benchtime: exec");
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("benchtime: waitpid");
      return 2;
    }
  }
  long long t1 = now_ns();
  printf("%lld\n", t1 - t0);
  fflush(stdout);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
