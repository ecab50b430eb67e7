#include "cache/fill_pool.h"

#include <pthread.h>

#include <algorithm>

#include "common/thread_sched.h"

namespace nydus::cache {

FillPool& FillPool::Shared() {
  // Never destroyed (see the header): no static destructor joins threads at exit.
  static FillPool* pool =
      new FillPool(std::clamp<size_t>(std::thread::hardware_concurrency(), 2, 4));
  return *pool;
}

FillPool::FillPool(size_t threads) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

FillPool::~FillPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void FillPool::Submit(std::function<void()> task, FillPriority priority) {
  {
    std::lock_guard lock(mu_);
    (priority == FillPriority::kOnDemand ? urgent_ : speculative_).push_back(std::move(task));
  }
  cv_.notify_one();
}

std::function<void()> FillPool::Take() {
  const bool starved = !speculative_.empty() && passed_over_ >= kMaxPassOver;
  auto& q = urgent_.empty() || starved ? speculative_ : urgent_;
  if (&q == &speculative_) {
    passed_over_ = 0;
  } else if (!speculative_.empty()) {
    ++passed_over_;
  }
  auto task = std::move(q.front());
  q.pop_front();
  return task;
}

void FillPool::Loop() {
  // Named so that top -H, perf and /proc tell fills from Node's own threads.
  pthread_setname_np(pthread_self(), "nydus-fill");
  // Bulk work: a woken event loop goes first (thread_sched.h). Without custom slices the thread
  // runs as every other, so a refusal changes nothing and is not an error.
  (void)SetBulkThreadSched();
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !urgent_.empty() || !speculative_.empty(); });
    // Drains both queues before stopping: a submitted fill always completes.
    if (urgent_.empty() && speculative_.empty()) return;
    auto task = Take();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace nydus::cache
