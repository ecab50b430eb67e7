// nydus_vu_testd: the vhost-user-fs backend (native/core/vhost) serving a test-only in-memory
// FUSE responder. Used by the driver integration tests and the transport benchmark; not a
// product (the daemon is nydusd).
//
//   nydus_vu_testd (--socket PATH | --fd N) [--source DIR] [--synthetic NAME:SIZE]...
//                  [--request-queues N]
//                  [--log-level trace|debug|info|warn|error]
//
// Prints {"ready":...} on stdout once listening; stops on SIGTERM/SIGINT and prints its
// statistics as one JSON line.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"
#include "driver/fuse_wire.h"
#include "driver/testd/responder.h"
#include "vhost/backend.h"

namespace {

int Usage(const char* why) {
  std::fprintf(stderr,
               "nydus_vu_testd: %s\nusage: nydus_vu_testd (--socket PATH | --fd N) [--source DIR] "
               "[--synthetic NAME:SIZE]... [--request-queues N] [--log-level LEVEL]\n",
               why);
  return 2;
}

uint64_t ParseSize(const std::string& s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s.c_str(), &end, 10);
  if (end != nullptr && (*end == 'K' || *end == 'k')) v <<= 10;
  if (end != nullptr && (*end == 'M' || *end == 'm')) v <<= 20;
  if (end != nullptr && (*end == 'G' || *end == 'g')) v <<= 30;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  nydus::vhost::BackendOptions opts;
  nydus::driver::TestResponder responder;
  std::string source;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--socket") {
      opts.socket_path = v;
    } else if (a == "--fd") {
      opts.listen_fd = std::atoi(v.c_str());
    } else if (a == "--source") {
      source = v;
    } else if (a == "--synthetic") {
      size_t colon = v.find(':');
      if (colon == std::string::npos || colon == 0) return Usage("--synthetic wants NAME:SIZE");
      responder.AddSynthetic(v.substr(0, colon), ParseSize(v.substr(colon + 1)));
    } else if (a == "--request-queues") {
      opts.num_request_queues = static_cast<uint32_t>(std::atoi(v.c_str()));
    } else if (a == "--log-level") {
      static const char* const kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
      int level = -1;
      for (int k = 0; k < 6; ++k) level = v == kLevels[k] ? k : level;
      if (level < 0) return Usage("bad --log-level");
      nydus::SetLogLevel(static_cast<nydus::LogLevel>(level));
    } else {
      return Usage(("unknown option " + a).c_str());
    }
  }
  if (opts.socket_path.empty() && opts.listen_fd < 0) return Usage("--socket or --fd is required");
  std::string error;
  if (!source.empty() && responder.LoadDir(source, &error) != 0) {
    std::fprintf(stderr, "nydus_vu_testd: %s\n", error.c_str());
    return 1;
  }
  responder.Seal();
  // Signals are taken synchronously by this thread; block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  nydus::vhost::VhostUserFsBackend backend(opts, &responder);
  if (backend.Start(&error) != 0) {
    std::fprintf(stderr, "nydus_vu_testd: %s\n", error.c_str());
    return 1;
  }
  std::printf("{\"ready\":true,\"pid\":%d,\"nodes\":%zu}\n", ::getpid(), responder.num_nodes());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  backend.Stop();
  auto s = backend.GetStats();
  std::printf(
      "{\"stopped\":true,\"signal\":%d,\"requests\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
      "\"bad_chains\":%llu,\"broken_queues\":%llu,\"connections\":%llu,\"messages\":%llu,"
      "\"protocol_errors\":%llu,\"refused_messages\":%llu,\"stale_completions\":%llu,"
      "\"notifications\":%llu,\"fuse_requests\":%llu,\"fuse_inits\":%llu}\n",
      sig, (unsigned long long)s.requests, (unsigned long long)s.bytes_in,
      (unsigned long long)s.bytes_out, (unsigned long long)s.bad_chains,
      (unsigned long long)s.broken_queues, (unsigned long long)s.connections,
      (unsigned long long)s.messages, (unsigned long long)s.protocol_errors,
      (unsigned long long)s.refused_messages, (unsigned long long)s.stale_completions,
      (unsigned long long)s.notifications, (unsigned long long)responder.requests(),
      (unsigned long long)responder.inits());
  return 0;
}
