#include "readpath/parked_reads.h"

#include <algorithm>

namespace nydus::readpath {

ParkedReads::~ParkedReads() { Stop(); }

void ParkedReads::AddWaiters(uint64_t token, std::span<const ChunkRef> missing) {
  std::lock_guard lock(mu_);
  for (const auto& c : missing) waiters_[KeyOf(c.slot, c.index)].push_back(token);
}

void ParkedReads::RemoveWaiters(uint64_t token, std::span<const ChunkRef> missing) {
  std::lock_guard lock(mu_);
  for (const auto& c : missing) {
    auto it = waiters_.find(KeyOf(c.slot, c.index));
    if (it == waiters_.end()) continue;
    auto& v = it->second;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == token) {
        v[i] = v.back();
        v.pop_back();
        break;
      }
    }
    if (v.empty()) waiters_.erase(it);
  }
}

std::vector<uint64_t> ParkedReads::TakeWaiters(uint32_t slot, std::span<const uint32_t> indices) {
  return Collect(slot, indices, true);
}

std::vector<uint64_t> ParkedReads::Waiters(uint32_t slot, std::span<const uint32_t> indices) {
  return Collect(slot, indices, false);
}

std::vector<uint64_t> ParkedReads::Collect(uint32_t slot, std::span<const uint32_t> indices,
                                           bool take) {
  std::vector<uint64_t> tokens;
  std::lock_guard lock(mu_);
  for (uint32_t index : indices) {
    auto it = waiters_.find(KeyOf(slot, index));
    if (it == waiters_.end()) continue;
    if (take) {
      tokens.insert(tokens.end(), it->second.begin(), it->second.end());
      waiters_.erase(it);
      continue;
    }
    for (uint64_t t : it->second) {
      if (std::find(tokens.begin(), tokens.end(), t) == tokens.end()) tokens.push_back(t);
    }
  }
  return tokens;
}

void ParkedReads::ClearWaiters() {
  std::lock_guard lock(mu_);
  waiters_.clear();
}

bool ParkedReads::Schedule(Retry retry) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return false;
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    retries_.push_back(retry);
  }
  cv_.notify_one();
  return true;
}

std::deque<Retry> ParkedReads::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  // Joined outside the lock: the thread takes it to leave its wait.
  if (thread_.joinable()) thread_.join();
  std::deque<Retry> left;
  std::lock_guard lock(mu_);
  left.swap(retries_);
  return left;
}

void ParkedReads::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopped_ || !retries_.empty(); });
    if (stopped_) return;  // Stop() hands what is left to the owner
    const Retry retry = retries_.front();
    retries_.pop_front();
    running_ = true;
    current_ = retry.token;
    lock.unlock();
    handler_->RunRetry(retry);
    lock.lock();
    running_ = false;
    idle_cv_.notify_all();
  }
}

}  // namespace nydus::readpath
