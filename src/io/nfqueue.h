// NfQueue: an iptables NFQUEUE queue through libnetfilter_queue, as PacketSource + Verdicts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "io/packet_io.h"
#include "io/verdict_batcher.h"

struct nfq_handle;
struct nfq_q_handle;
struct nfq_data;
struct nfgenmsg;

namespace hl::io {

// Setup of one queue. Defaults follow DESIGN.md §3 (defaults of the kernel
// overflowed under a 1 MB transfer).
struct NfQueueConfig {
  static constexpr std::uint32_t kDefaultCopyRange = 0xffff;            // bytes
  static constexpr std::uint32_t kDefaultMaxLen = 8192;                 // packets
  static constexpr std::uint32_t kDefaultRcvBuf = 16u * 1024u * 1024u;  // bytes

  std::uint16_t queue_num = 0;
  std::uint32_t copy_range = kDefaultCopyRange;  // bytes of each packet copied to user space
  std::uint32_t max_len = kDefaultMaxLen;        // packets the kernel may hold for this queue
  std::uint32_t rcvbuf_bytes = kDefaultRcvBuf;   // netlink socket receive buffer
  bool fail_open = false;  // NFQA_CFG_F_FAIL_OPEN: accept (unseen!) when the queue is full
  bool gso = true;         // NFQA_CFG_F_GSO: deliver GSO super-packets (checksum may be partial)
  bool no_enobufs = true;  // NETLINK_NO_ENOBUFS: overruns are not reported to the socket
  std::size_t max_batch = 256;  // packets poll_once() dispatches before returning
};

// Monotonic counters of one queue (packets unless noted).
struct NfQueueCounters {
  std::uint64_t received = 0;   // packets delivered to the handler
  std::uint64_t accepted = 0;   // accept verdicts (batched ones counted per packet)
  std::uint64_t dropped = 0;    // drop verdicts
  std::uint64_t modified = 0;   // accept verdicts carrying new bytes
  std::uint64_t batches = 0;    // batch verdict messages sent
  std::uint64_t enobufs = 0;    // ENOBUFS seen on receive (socket overrun: packets lost)
  std::uint64_t errors = 0;     // other failed receives, parses or verdict sends
};

// The kernel's view of a queue (/proc/net/netfilter/nfnetlink_queue of the
// current network namespace).
struct KernelQueueStats {
  std::uint32_t queue_total = 0;   // packets waiting for a verdict now
  std::uint32_t queue_dropped = 0; // dropped: queue full (max_len)
  std::uint32_t user_dropped = 0;  // dropped: netlink socket full
  std::uint32_t id_sequence = 0;   // last packet id
};

// Parses the text of /proc/net/netfilter/nfnetlink_queue for queue `queue_num`.
std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view proc_text,
                                                          std::uint16_t queue_num);
// Reads and parses the proc file of the current namespace.
std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue_num);

// One bound NFQUEUE queue. Setup throws std::system_error; the data path
// returns IoStatus. The fd is non-blocking, for an epoll loop.
class NfQueue final : public PacketSource, public Verdicts {
 public:
  // Binds queue `config.queue_num` (needs CAP_NET_ADMIN).
  explicit NfQueue(const NfQueueConfig& config);
  ~NfQueue() override;
  NfQueue(const NfQueue&) = delete;
  NfQueue& operator=(const NfQueue&) = delete;

  // The netlink socket, readable when packets wait.
  int fd() const { return fd_; }
  // Receive buffer size the kernel granted (bytes).
  std::uint32_t rcvbuf_bytes() const { return rcvbuf_; }
  const NfQueueCounters& counters() const { return counters_; }
  // Packets delivered that have no verdict yet.
  std::size_t held() const { return batcher_.held(); }

  void set_handler(Handler handler) override { handler_ = std::move(handler); }
  Result<std::size_t, IoError> poll_once() override;
  IoStatus accept(std::uint32_t id) override;
  IoStatus accept_modified(std::uint32_t id, std::span<const std::uint8_t> packet) override;
  IoStatus drop(std::uint32_t id) override;
  void accept_deferred(std::uint32_t id) override;
  IoStatus flush() override;
  // Accepts packet `id` and sets its skb mark to `mark`.
  IoStatus accept_with_mark(std::uint32_t id, std::uint32_t mark) override;

 private:
  static int on_packet(nfq_q_handle* qh, struct nfgenmsg* msg, nfq_data* nfad, void* self);
  IoStatus verdict(std::uint32_t id, std::uint32_t verdict, std::span<const std::uint8_t> packet);

  NfQueueConfig config_;
  nfq_handle* handle_ = nullptr;
  nfq_q_handle* queue_ = nullptr;
  int fd_ = -1;
  std::uint32_t rcvbuf_ = 0;
  Handler handler_;
  VerdictBatcher batcher_;
  NfQueueCounters counters_;
  std::size_t dispatched_ = 0;       // packets dispatched by the current poll_once()
  std::vector<std::uint8_t> buffer_; // receive buffer: one netlink message
  std::vector<std::uint8_t> padded_; // modified packets padded to 4 bytes for the library
};

}  // namespace hl::io
