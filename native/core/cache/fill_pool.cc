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

void FillPool::Submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void FillPool::Loop() {
  // Named so that top -H, perf and /proc tell fills from Node's own threads.
  pthread_setname_np(pthread_self(), "nydus-fill");
  // Bulk work: a woken event loop goes first (thread_sched.h). Without custom slices the thread
  // runs as every other, so a refusal changes nothing and is not an error.
  (void)SetBulkThreadSched();
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    // Drains what was queued before stopping: a submitted fill always completes.
    if (tasks_.empty()) return;
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace nydus::cache
