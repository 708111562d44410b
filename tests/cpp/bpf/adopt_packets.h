// Helpers of the adopt program's tests: Ethernet framing for BPF_PROG_TEST_RUN
// and counter differences.
#pragma once

#include <bpf/bpf.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf/adopter.h"

namespace hl::bpf::testing {

inline constexpr int kTcActOk = 0;    // TC_ACT_OK: the program rewrote or assigned the segment; the filter chain ends
inline constexpr int kTcPass = -1;     // TC_ACT_UNSPEC: not consumed; the next filter, then the stack
inline constexpr int kTcActShot = 2;  // TC_ACT_SHOT

// `ip_packet` behind an Ethernet header (IPv4 ethertype), as tc ingress sees it.
inline std::vector<uint8_t> ethernet(const std::vector<uint8_t>& ip_packet) {
  static constexpr std::array<uint8_t, 14> kHeader = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  std::vector<uint8_t> frame(kHeader.begin(), kHeader.end());
  frame.reserve(kHeader.size() + ip_packet.size());
  for (uint8_t byte : ip_packet) frame.push_back(byte);
  return frame;
}

// Runs program `prog_fd` once on `frame` (BPF_PROG_TEST_RUN); its return code.
inline int test_run(int prog_fd, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> out(frame.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = 1;
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0) {
    throw std::runtime_error("bpf_prog_test_run_opts: " + std::to_string(err));
  }
  return static_cast<int>(opts.retval);
}

// Runs program `prog_fd` once on `frame` with skb context (BPF_PROG_TEST_RUN);
// its return code, the frame as the program left it and the skb's mark.
struct RunResult {
  int verdict = 0;
  std::vector<uint8_t> frame;
  uint32_t mark = 0;
};
inline RunResult test_run_ctx(int prog_fd, const std::vector<uint8_t>& frame) {
  RunResult r;
  r.frame.resize(frame.size() + 256);
  __sk_buff ctx_in{};
  __sk_buff ctx_out{};
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = r.frame.data();
  opts.data_size_out = static_cast<uint32_t>(r.frame.size());
  opts.ctx_in = &ctx_in;
  opts.ctx_size_in = sizeof ctx_in;
  opts.ctx_out = &ctx_out;
  opts.ctx_size_out = sizeof ctx_out;
  opts.repeat = 1;
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0) {
    throw std::runtime_error("bpf_prog_test_run_opts: " + std::to_string(err));
  }
  r.frame.resize(opts.data_size_out);
  r.verdict = static_cast<int>(opts.retval);
  r.mark = ctx_out.mark;
  return r;
}

// a - b (after - before), field by field.
inline AdoptCounters delta(const AdoptCounters& a, const AdoptCounters& b) {
  AdoptCounters d;
  d.seen = a.seen - b.seen;
  d.adopted = a.adopted - b.adopted;
  d.no_entry = a.no_entry - b.no_entry;
  d.mismatch = a.mismatch - b.mismatch;
  d.assign_error = a.assign_error - b.assign_error;
  d.established = a.established - b.established;
  d.retired = a.retired - b.retired;
  d.no_socket = a.no_socket - b.no_socket;
  d.malformed = a.malformed - b.malformed;
  d.time_wait = a.time_wait - b.time_wait;
  d.undnat = a.undnat - b.undnat;
  return d;
}

// "seen=1 adopted=0 ..." for failure messages and comparisons.
inline std::string to_string(const AdoptCounters& c) {
  return "seen=" + std::to_string(c.seen) + " adopted=" + std::to_string(c.adopted) +
         " no_entry=" + std::to_string(c.no_entry) + " mismatch=" + std::to_string(c.mismatch) +
         " assign_error=" + std::to_string(c.assign_error) +
         " established=" + std::to_string(c.established) + " retired=" + std::to_string(c.retired) +
         " no_socket=" + std::to_string(c.no_socket) + " malformed=" + std::to_string(c.malformed) +
         " time_wait=" + std::to_string(c.time_wait) + " undnat=" + std::to_string(c.undnat);
}

}  // namespace hl::bpf::testing
