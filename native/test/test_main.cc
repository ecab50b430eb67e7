// Runs every NTEST; `nydus_core_tests [substring]` runs the tests whose "Suite.Name" contains
// the substring. Exit status 0 only when every selected test passed.
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "testing.h"

namespace nydus::testing {
namespace {
bool g_failed = false;
}

std::vector<TestCase>& Registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void RecordFailure(const char* file, int line, const std::string& what) {
  g_failed = true;
  std::cerr << "    " << file << ":" << line << ": " << what << "\n";
}

bool CurrentFailed() { return g_failed; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/nydus-core-test-XXXXXX";
  const char* p = mkdtemp(tmpl);
  path_ = p != nullptr ? p : "/tmp";
}

TempDir::~TempDir() {
  if (path_ == "/tmp") return;
  nftw(
      path_.c_str(),
      [](const char* fpath, const struct stat*, int, struct FTW*) { return ::remove(fpath); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

}  // namespace nydus::testing

int main(int argc, char** argv) {
  using nydus::testing::Registry;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0;
  int failed = 0;
  for (const auto& t : Registry()) {
    std::string full = std::string(t.suite) + "." + t.name;
    if (filter != nullptr && full.find(filter) == std::string::npos) continue;
    nydus::testing::g_failed = false;
    t.body();
    if (nydus::testing::g_failed) {
      ++failed;
      std::cout << "FAIL " << full << std::endl;
    } else {
      ++passed;
      std::cout << "ok   " << full << std::endl;
    }
  }
  std::cout << "core tests: " << passed << " passed, " << failed << " failed" << std::endl;
  return failed == 0 && passed > 0 ? 0 : 1;
}
