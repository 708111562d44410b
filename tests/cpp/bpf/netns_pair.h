// Two private network namespaces joined by a veth pair, for the adopt live
// test: the test process lives in the "serving" one and switches its thread
// into the "client" one (setns) to make the client's sockets there.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "io/private_netns.h"
#include "io/process.h"

namespace hl::bpf::testing {

class NetnsPair {
 public:
  // Enters a new "serving" namespace and makes the "client" one; veth-s here,
  // veth-c there, both up. error() says why not ("" on success).
  NetnsPair() {
    error_ = io::testing::enter_private_netns();
    if (!error_.empty()) return;
    serving_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (!run({"/usr/sbin/ip", "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c"})) {
      error_ = "cannot create a veth pair";
      return;
    }
    // A child holds the client namespace until its fd is open here; it is
    // ended (by its pid) right after.
    int ready[2];
    if (pipe(ready) != 0) {
      error_ = "pipe";
      return;
    }
    const pid_t child = fork();
    if (child == 0) {
      char byte = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
      (void)!write(ready[1], &byte, 1);
      pause();
      _exit(0);
    }
    char byte = 0;
    (void)!read(ready[0], &byte, 1);
    close(ready[0]);
    close(ready[1]);
    if (byte == 1) {
      client_ = open(("/proc/" + std::to_string(child) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
      if (!run({"/usr/sbin/ip", "link", "set", "veth-c", "netns", std::to_string(child)})) {
        error_ = "cannot move veth-c";
      }
    } else {
      error_ = "unshare in the child failed";
    }
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    if (!error_.empty()) return;
    if (!run({"/usr/sbin/ip", "link", "set", "veth-s", "up"})) error_ = "veth-s up";
    enter_client();
    if (!run({"/usr/sbin/ip", "link", "set", "lo", "up"}) ||
        !run({"/usr/sbin/ip", "link", "set", "veth-c", "up"})) {
      error_ = "veth-c up";
    }
    enter_serving();
  }
  ~NetnsPair() {
    if (client_ >= 0) close(client_);
    if (serving_ >= 0) close(serving_);
  }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  const std::string& error() const { return error_; }
  // Moves this thread (and what it starts or opens from now on) into one side.
  void enter_client() { setns(client_, CLONE_NEWNET); }
  void enter_serving() { setns(serving_, CLONE_NEWNET); }

  // Runs a command in the current side; true on exit status 0.
  static bool run(const std::vector<std::string>& argv) {
    return io::run_command(argv).exit_code == 0;
  }

 private:
  std::string error_;
  int serving_ = -1;
  int client_ = -1;
};

}  // namespace hl::bpf::testing
