#include "io/deadline_timer.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace hl::io {

std::uint64_t monotonic_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

DeadlineTimer::DeadlineTimer() {
  fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "deadline timer: timerfd_create");
}

DeadlineTimer::~DeadlineTimer() { ::close(fd_); }

bool DeadlineTimer::arm(std::uint64_t at_us) {
  if (at_us == armed_us_) return true;  // nothing changes: spare the syscall
  itimerspec spec{};
  if (at_us != 0) {
    spec.it_value.tv_sec = static_cast<time_t>(at_us / 1000000u);
    spec.it_value.tv_nsec = static_cast<long>((at_us % 1000000u) * 1000u);
  }
  if (::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr) < 0) return false;
  armed_us_ = at_us;
  return true;
}

void DeadlineTimer::consume() {
  std::uint64_t expirations = 0;
  (void)::read(fd_, &expirations, sizeof expirations);
  armed_us_ = 0;  // a one-shot timer that fired is disarmed
}

}  // namespace hl::io
