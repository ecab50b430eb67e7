#include "passthrough/pt_locks.h"

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace nydus::passthrough {

int LockOwners::Get(int opath_fd, uint64_t owner, bool flock, std::shared_ptr<OwnerFd>* out) {
  std::lock_guard lock(mu_);
  auto& map = flock ? flock_ : posix_;
  auto it = map.find(owner);
  if (it != map.end()) {
    *out = it->second;
    return 0;
  }
  int fd = ReopenInode(opath_fd, O_RDWR);
  if (fd == -EACCES || fd == -EROFS || fd == -ETXTBSY || fd == -EPERM) {
    fd = ReopenInode(opath_fd, O_RDONLY);
  }
  if (fd < 0) return fd;
  auto o = std::make_shared<OwnerFd>();
  o->fd = Fd(fd);
  map.emplace(owner, o);
  *out = std::move(o);
  return 0;
}

bool LockOwners::DropPosix(uint64_t owner) { return Drop(&posix_, owner); }

bool LockOwners::DropFlock(uint64_t owner) { return Drop(&flock_, owner); }

bool LockOwners::Drop(Map* map, uint64_t owner) {
  std::shared_ptr<OwnerFd> dropped;  // closed after mu_ is released
  std::lock_guard lock(mu_);
  auto it = map->find(owner);
  if (it == map->end()) return false;
  dropped = std::move(it->second);
  map->erase(it);
  return true;
}

size_t LockOwners::size() const {
  std::lock_guard lock(mu_);
  return posix_.size() + flock_.size();
}

LockWaiter::~LockWaiter() { Stop(); }

void LockWaiter::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  FailAll(EIO);
}

void LockWaiter::Add(uint64_t unique, Attempt attempt, Done done) {
  int err = EIO;
  {
    std::lock_guard lock(mu_);
    auto hit = std::find(interrupted_.begin(), interrupted_.end(), unique);
    if (hit != interrupted_.end()) {
      interrupted_.erase(hit);
      err = EINTR;
    } else if (!stop_) {
      waits_.push_back(Wait{unique, std::move(attempt), std::move(done)});
      poked_ = true;
      if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
      cv_.notify_all();
      return;
    }
  }
  done(err);
}

bool LockWaiter::Interrupt(uint64_t unique) {
  Done done;
  {
    std::lock_guard lock(mu_);
    for (auto it = waits_.begin(); it != waits_.end(); ++it) {
      if (it->unique == unique) {
        done = std::move(it->done);
        waits_.erase(it);
        break;
      }
    }
    if (!done) {
      if (interrupted_.size() >= kMaxInterrupted) interrupted_.erase(interrupted_.begin());
      interrupted_.push_back(unique);
      return false;
    }
  }
  done(EINTR);
  return true;
}

void LockWaiter::Poke() {
  {
    std::lock_guard lock(mu_);
    if (waits_.empty()) return;
    poked_ = true;
  }
  cv_.notify_all();
}

void LockWaiter::FailAll(int err) {
  std::vector<Wait> all;
  {
    std::lock_guard lock(mu_);
    all.swap(waits_);
  }
  for (auto& w : all) w.done(err);
}

size_t LockWaiter::size() const {
  std::lock_guard lock(mu_);
  return waits_.size();
}

void LockWaiter::Loop() {
  // Backoff between rounds: 1 ms doubling to 32 ms while nothing changes; a Poke restarts it.
  auto delay = std::chrono::milliseconds(1);
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (waits_.empty()) {
      cv_.wait(lock, [this] { return stop_ || !waits_.empty(); });
      continue;
    }
    if (!poked_) {
      cv_.wait_for(lock, delay, [this] { return stop_ || poked_; });
      if (stop_) break;
    }
    if (poked_) delay = std::chrono::milliseconds(1);
    poked_ = false;
    // Take the waits out to try them without the lock (an attempt is a syscall); Interrupt
    // cannot find a wait while it is out, so a wait being tried is answered by its attempt.
    std::vector<Wait> round;
    round.swap(waits_);
    lock.unlock();
    std::vector<Wait> keep;
    std::vector<std::pair<Done, int>> finished;
    for (auto& w : round) {
      int rc = w.attempt();
      if (rc == -EAGAIN || rc == -EACCES || rc == -EINTR) {
        keep.push_back(std::move(w));
      } else {
        finished.emplace_back(std::move(w.done), -rc);
      }
    }
    for (auto& [done, err] : finished) done(err);
    lock.lock();
    for (auto& w : keep) {
      auto hit = std::find(interrupted_.begin(), interrupted_.end(), w.unique);
      if (hit == interrupted_.end()) {
        waits_.push_back(std::move(w));
        continue;
      }
      interrupted_.erase(hit);
      lock.unlock();
      w.done(EINTR);
      lock.lock();
    }
    if (delay < std::chrono::milliseconds(32)) delay *= 2;
  }
}

}  // namespace nydus::passthrough
