// The long-lived threads cache fills run on (fill.h RunFill): created once per process on first
// use, never one thread per fill. Concurrent misses' fills proceed in parallel.
//
// Two classes of work: on-demand fills (a guest READ is parked on them) and speculative ones
// (readahead, prefetch: nobody waits yet). A free thread takes the oldest on-demand task first,
// so a miss never queues behind speculative work, only behind what already runs. Speculative
// tasks run in submission order among themselves and are never starved: after kMaxPassOver
// on-demand tasks taken while one waited, the oldest speculative task goes next.
//
// Every submitted task runs, whatever its class: the destructor drains both queues before it
// joins (a submitted fill always completes).
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

enum class FillPriority { kOnDemand, kSpeculative };

class FillPool {
 public:
  // On-demand tasks taken in a row while a speculative one waits before that one goes first.
  static constexpr size_t kMaxPassOver = 8;

  // The process-wide pool: min(max(cores, 2), 4) threads.
  static FillPool& Shared();

  explicit FillPool(size_t threads);
  ~FillPool();  // drains both queues, stops and joins (tests' own pools)
  FillPool(const FillPool&) = delete;
  FillPool& operator=(const FillPool&) = delete;

  void Submit(std::function<void()> task, FillPriority priority = FillPriority::kOnDemand);
  size_t threads() const { return threads_.size(); }

 private:
  void Loop();
  // The next task to run (mu_ held, some queue not empty).
  std::function<void()> Take();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> urgent_;       // on-demand; guarded by mu_
  std::deque<std::function<void()>> speculative_;  // guarded by mu_
  size_t passed_over_ = 0;  // on-demand tasks taken since a speculative one waits; mu_
  bool stopping_ = false;   // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace nydus::cache
