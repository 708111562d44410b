#include "io/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <system_error>

namespace hl::io {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("event loop: ") + what);
}

}  // namespace

// One registered fd; `owned` fds (signalfd, timerfd) are closed with the source.
struct EventLoop::Source {
  int fd = -1;
  bool owned = false;
  Callback on_readable;
  ~Source() {
    if (owned) close(fd);
  }
};

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
}

EventLoop::~EventLoop() {
  sources_.clear();
  close(epoll_fd_);
}

void EventLoop::add(int fd, std::unique_ptr<Source> source) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = source.get();
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) throw_errno("epoll_ctl(ADD)");
  sources_.push_back(std::move(source));
}

void EventLoop::add_fd(int fd, Callback on_readable) {
  auto s = std::make_unique<Source>();
  s->fd = fd;
  s->on_readable = std::move(on_readable);
  add(fd, std::move(s));
}

void EventLoop::add_signals(std::initializer_list<int> signals, std::function<void(int)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0) throw_errno("sigprocmask");
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw_errno("signalfd");
  auto s = std::make_unique<Source>();
  s->fd = fd;
  s->owned = true;
  s->on_readable = [fd, cb = std::move(on_signal)] {
    signalfd_siginfo info{};
    while (read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      cb(static_cast<int>(info.ssi_signo));
    }
  };
  add(fd, std::move(s));
}

void EventLoop::add_timer(std::chrono::milliseconds period, Callback on_tick) {
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throw_errno("timerfd_create");
  itimerspec spec{};
  auto ms = period.count() > 0 ? period.count() : 1;
  spec.it_interval.tv_sec = static_cast<time_t>(ms / 1000);
  spec.it_interval.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
  spec.it_value = spec.it_interval;
  if (timerfd_settime(fd, 0, &spec, nullptr) < 0) {
    close(fd);
    throw_errno("timerfd_settime");
  }
  auto s = std::make_unique<Source>();
  s->fd = fd;
  s->owned = true;
  s->on_readable = [fd, cb = std::move(on_tick)] {
    std::uint64_t expirations = 0;
    if (read(fd, &expirations, sizeof expirations) == static_cast<ssize_t>(sizeof expirations)) cb();
  };
  add(fd, std::move(s));
}

void EventLoop::run() {
  std::array<epoll_event, 16> events{};
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("epoll_wait");
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      static_cast<Source*>(events[static_cast<std::size_t>(i)].data.ptr)->on_readable();
    }
  }
}

}  // namespace hl::io
