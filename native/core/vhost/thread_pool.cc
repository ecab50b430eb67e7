#include "vhost/thread_pool.h"

namespace nydus::vhost {

RequestThreadPool::RequestThreadPool(uint32_t threads, transport::FuseRequestSink* sink)
    : sink_(sink) {
  threads_.reserve(threads);
  for (uint32_t i = 0; i < threads; ++i) threads_.emplace_back(&RequestThreadPool::Main, this);
}

RequestThreadPool::~RequestThreadPool() { Stop(); }

void RequestThreadPool::Submit(transport::FuseRequest* request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(request);
      request = nullptr;
    }
  }
  if (request == nullptr) {
    cv_.notify_one();
  } else {
    sink_->OnRequest(request);  // pool already stopped: run inline rather than lose it
  }
}

void RequestThreadPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void RequestThreadPool::Main() {
  for (;;) {
    transport::FuseRequest* r = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      r = queue_.front();
      queue_.pop_front();
    }
    sink_->OnRequest(r);
  }
}

}  // namespace nydus::vhost
