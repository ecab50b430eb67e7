// The long-lived threads cache fills run on (fill.h RunFill): created once per process on first
// use, never one thread per fill. Tasks run in submission order across the threads, so fills of
// concurrent misses proceed in parallel.
//
// The pool lives until the process exits (a function-local static that is never destroyed):
// a fill still running at exit must not find its threads joined under it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nydus::cache {

class FillPool {
 public:
  // The process-wide pool: min(max(cores, 2), 4) threads.
  static FillPool& Shared();

  explicit FillPool(size_t threads);
  ~FillPool();  // stops and joins (tests' own pools)
  FillPool(const FillPool&) = delete;
  FillPool& operator=(const FillPool&) = delete;

  void Submit(std::function<void()> task);
  size_t threads() const { return threads_.size(); }

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace nydus::cache
