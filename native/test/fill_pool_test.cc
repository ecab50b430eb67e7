// cache::FillPool's two classes of work: a free thread takes on-demand fills before speculative
// ones (a guest READ parked on a miss does not queue behind readahead), speculative work is not
// starved by a steady stream of misses, and every submitted task runs, also when the pool is
// destroyed with both queues full.
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/fill_pool.h"
#include "testing.h"

using nydus::cache::FillPool;
using nydus::cache::FillPriority;

namespace {

// Records the order tasks ran in; Block() parks the pool's only thread until Release(), so
// what is submitted meanwhile queues.
class Order {
 public:
  void Block(FillPool& pool) {
    pool.Submit([this] {
      std::unique_lock lock(mu_);
      blocked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return blocked_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::function<void()> Task(std::string name) {
    return [this, name = std::move(name)] {
      std::lock_guard lock(mu_);
      ran_.push_back(name);
      cv_.notify_all();
    };
  }
  // Waits until `n` tasks ran; what ran, in order.
  std::vector<std::string> Wait(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return ran_.size() >= n; });
    return ran_;
  }
  std::vector<std::string> Ran() {
    std::lock_guard lock(mu_);
    return ran_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
  bool released_ = false;
  std::vector<std::string> ran_;
};

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

}  // namespace

NTEST(FillPool, AnOnDemandTaskRunsBeforeQueuedSpeculativeOnes) {
  Order order;
  FillPool pool(1);  // declared after `order`: joined before it goes
  order.Block(pool);
  pool.Submit(order.Task("s0"), FillPriority::kSpeculative);
  pool.Submit(order.Task("s1"), FillPriority::kSpeculative);
  pool.Submit(order.Task("s2"), FillPriority::kSpeculative);
  pool.Submit(order.Task("d0"), FillPriority::kOnDemand);
  pool.Submit(order.Task("d1"));  // on demand by default
  order.Release();
  NEXPECT_EQ(Join(order.Wait(5)), std::string("d0 d1 s0 s1 s2"));
}

NTEST(FillPool, SpeculativeWorkIsNotStarvedByMisses) {
  Order order;
  FillPool pool(1);
  order.Block(pool);
  pool.Submit(order.Task("s0"), FillPriority::kSpeculative);
  pool.Submit(order.Task("s1"), FillPriority::kSpeculative);
  const size_t n = 3 * FillPool::kMaxPassOver;
  for (size_t i = 0; i < n; ++i) pool.Submit(order.Task("d" + std::to_string(i)));
  order.Release();
  const auto ran = order.Wait(n + 2);
  NASSERT_EQ(ran.size(), n + 2);
  // kMaxPassOver misses, then the oldest speculative task, and so on.
  const size_t k = FillPool::kMaxPassOver;
  NEXPECT_EQ(ran[k], std::string("s0"));
  NEXPECT_EQ(ran[2 * k + 1], std::string("s1"));
  size_t misses = 0;
  for (const auto& r : ran) misses += r[0] == 'd' ? 1 : 0;
  NEXPECT_EQ(misses, n);
}

NTEST(FillPool, TheDestructorRunsEveryQueuedTaskOfBothKinds) {
  Order order;
  auto pool = std::make_unique<FillPool>(1);
  order.Block(*pool);
  for (int i = 0; i < 4; ++i) {
    pool->Submit(order.Task("s" + std::to_string(i)), FillPriority::kSpeculative);
    pool->Submit(order.Task("d" + std::to_string(i)), FillPriority::kOnDemand);
  }
  // The destructor stops the pool while its thread is still blocked (or about to be): the queued
  // tasks run all the same before it returns.
  std::thread closer([&] { pool.reset(); });
  order.Release();
  closer.join();
  const auto ran = order.Ran();
  NEXPECT_EQ(ran.size(), size_t{8});
  NEXPECT_EQ(ran.front(), std::string("d0"));
  NEXPECT_EQ(ran.back(), std::string("s3"));
}
