#include "io/event_loop.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

namespace hl::io {
namespace {

TEST(EventLoop, DispatchesReadableFdAndTimer) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EventLoop loop;
  std::string got;
  int ticks = 0;
  loop.add_fd(fds[0], [&] {
    char buf[16];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
  });
  loop.add_timer(std::chrono::milliseconds(5), [&] {
    if (++ticks == 1) {
      ASSERT_EQ(write(fds[1], "ab", 2), 2);
    }
    if (ticks == 3) loop.stop();
  });
  loop.run();
  EXPECT_EQ(got, "ab");
  EXPECT_EQ(ticks, 3);
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoop, DeliversSignalsThroughSignalfd) {
  EventLoop loop;
  int seen = 0;
  loop.add_signals({SIGUSR1}, [&](int sig) {
    seen = sig;
    loop.stop();
  });
  ASSERT_EQ(raise(SIGUSR1), 0);  // blocked, so it waits in the signalfd instead of killing us
  loop.run();
  EXPECT_EQ(seen, SIGUSR1);
}

TEST(EventLoop, StopBeforeRunReturnsAtOnce) {
  EventLoop loop;
  loop.stop();
  loop.run();
  SUCCEED();
}

}  // namespace
}  // namespace hl::io
