// DeadlineTimer: a one-shot timerfd armed at an absolute CLOCK_MONOTONIC time (µs),
// for stages that must act at precise moments (finer than the loop's periodic timers).
#pragma once

#include <cstdint>

namespace hl::io {

// Now on CLOCK_MONOTONIC, in microseconds: the time base of DeadlineTimer.
std::uint64_t monotonic_us();

// Owns one non-blocking timerfd; add fd() to an EventLoop. Setup throws
// std::system_error; arm()/consume() never throw.
class DeadlineTimer {
 public:
  DeadlineTimer();
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Makes fd() readable once monotonic_us() reaches `at_us` (at once if it has
  // passed); 0 disarms. Re-arming replaces the previous time. False if the
  // kernel refused.
  bool arm(std::uint64_t at_us);
  // Reads the expiration (so the fd is no longer readable).
  void consume();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::uint64_t armed_us_ = 0;  // the time armed now, 0: none
};

}  // namespace hl::io
