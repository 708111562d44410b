// EventLoop: a single-threaded epoll loop with signal (signalfd) and periodic timer (timerfd) sources.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

namespace hl::io {

// Dispatches readiness of registered fds to callbacks until stop(). Setup
// (constructor, add_*) throws std::system_error; callbacks run on run()'s thread.
class EventLoop {
 public:
  using Callback = std::function<void()>;
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Calls `on_readable` whenever `fd` is readable (level-triggered). The
  // caller keeps owning `fd` and must keep it open while the loop runs.
  void add_fd(int fd, Callback on_readable);
  // Blocks `signals` for the whole process (call before starting threads) and
  // calls `on_signal(signo)` when one arrives.
  void add_signals(std::initializer_list<int> signals, std::function<void(int)> on_signal);
  // Calls `on_tick` every `period` (first after one period).
  void add_timer(std::chrono::milliseconds period, Callback on_tick);
  // Runs until stop(); returns immediately if stop() was already called.
  void run();
  // Makes run() return after the current callback.
  void stop() { stopping_ = true; }

 private:
  struct Source;
  void add(int fd, std::unique_ptr<Source> source);

  int epoll_fd_ = -1;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Source>> sources_;
};

}  // namespace hl::io
