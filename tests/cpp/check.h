// A minimal test harness for the framework-free C++ tests (opus style): CHECK records a
// failure with file:line and goes on; main returns report().
#pragma once

#include <cstdio>

namespace soundspring_test {

inline int& passed() { static int n = 0; return n; }
inline int& failed() { static int n = 0; return n; }

inline int report(const char* suite) {
  std::printf("%s: %d passed, %d failed\n", suite, passed(), failed());
  return failed() == 0 ? 0 : 1;
}

}  // namespace soundspring_test

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) {                                                                  \
      ++soundspring_test::passed();                                              \
    } else {                                                                     \
      ++soundspring_test::failed();                                              \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
    }                                                                            \
  } while (0)
