// A minimal unit-test harness for the C++ core (no Node, no third-party framework), so the same
// tests build plainly, under ASan/UBSan/TSan, and under valgrind.
//
//   NTEST(Suite, Name) { NEXPECT_EQ(a, b); NASSERT_TRUE(c); }
//
// NEXPECT_* records a failure and continues; NASSERT_* records and returns from the test.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace nydus::testing {

struct TestCase {
  const char* suite;
  const char* name;
  std::function<void()> body;
};

std::vector<TestCase>& Registry();
void RecordFailure(const char* file, int line, const std::string& what);
bool CurrentFailed();

struct Registrar {
  Registrar(const char* suite, const char* name, std::function<void()> body) {
    Registry().push_back({suite, name, std::move(body)});
  }
};

template <typename T>
std::string Show(const T& v) {
  if constexpr (requires(std::ostream & os, const T& x) { os << x; }) {
    std::ostringstream os;
    if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
      os << static_cast<int>(v);
    } else {
      os << v;
    }
    return os.str();
  } else {
    return "<value>";
  }
}

// A temporary directory removed (recursively) at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace nydus::testing

#define NTEST_CONCAT2(a, b) a##b
#define NTEST_CONCAT(a, b) NTEST_CONCAT2(a, b)
#define NTEST(suite, name)                                                     \
  static void NTEST_CONCAT(ntest_##suite##_, name)();                          \
  static ::nydus::testing::Registrar NTEST_CONCAT(ntest_reg_##suite##_, name)( \
      #suite, #name, NTEST_CONCAT(ntest_##suite##_, name));                    \
  static void NTEST_CONCAT(ntest_##suite##_, name)()

#define NTEST_CHECK_OP(a, b, op, on_fail)                                            \
  do {                                                                               \
    const auto& ntest_a = (a);                                                       \
    const auto& ntest_b = (b);                                                       \
    if (!(ntest_a op ntest_b)) {                                                     \
      ::nydus::testing::RecordFailure(__FILE__, __LINE__,                            \
                                      std::string(#a " " #op " " #b ": ") +          \
                                          ::nydus::testing::Show(ntest_a) + " vs " + \
                                          ::nydus::testing::Show(ntest_b));          \
      on_fail;                                                                       \
    }                                                                                \
  } while (0)

#define NEXPECT_EQ(a, b) NTEST_CHECK_OP(a, b, ==, (void)0)
#define NEXPECT_NE(a, b) NTEST_CHECK_OP(a, b, !=, (void)0)
#define NEXPECT_LT(a, b) NTEST_CHECK_OP(a, b, <, (void)0)
#define NEXPECT_LE(a, b) NTEST_CHECK_OP(a, b, <=, (void)0)
#define NEXPECT_GT(a, b) NTEST_CHECK_OP(a, b, >, (void)0)
#define NEXPECT_GE(a, b) NTEST_CHECK_OP(a, b, >=, (void)0)
#define NASSERT_EQ(a, b) NTEST_CHECK_OP(a, b, ==, return )
#define NASSERT_NE(a, b) NTEST_CHECK_OP(a, b, !=, return )
#define NASSERT_GE(a, b) NTEST_CHECK_OP(a, b, >=, return )
#define NEXPECT_TRUE(c) NTEST_CHECK_OP(static_cast<bool>(c), true, ==, (void)0)
#define NEXPECT_FALSE(c) NTEST_CHECK_OP(static_cast<bool>(c), false, ==, (void)0)
#define NASSERT_TRUE(c) NTEST_CHECK_OP(static_cast<bool>(c), true, ==, return )
