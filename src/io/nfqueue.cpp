#include "io/nfqueue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
}

namespace hl::io {
namespace {

constexpr std::size_t kRecvBufferBytes = 256u * 1024u;  // > one 64 KiB packet + attributes
constexpr std::size_t kNetlinkAlign = 4;                 // NFA_ALIGNTO

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), "nfqueue: " + what);
}

Hook hook_from(std::uint8_t raw) {
  switch (raw) {
    case 0: return Hook::kPreRouting;
    case 1: return Hook::kLocalIn;
    case 2: return Hook::kForward;
    case 3: return Hook::kLocalOut;
    default: return Hook::kPostRouting;
  }
}

}  // namespace

std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view proc_text,
                                                          std::uint16_t queue_num) {
  std::istringstream in{std::string(proc_text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    unsigned long num = 0, portid = 0, total = 0, mode = 0, range = 0, dropped = 0, user = 0, seq = 0;
    if (!(fields >> num >> portid >> total >> mode >> range >> dropped >> user >> seq)) continue;
    if (num != queue_num) continue;
    KernelQueueStats s;
    s.queue_total = static_cast<std::uint32_t>(total);
    s.queue_dropped = static_cast<std::uint32_t>(dropped);
    s.user_dropped = static_cast<std::uint32_t>(user);
    s.id_sequence = static_cast<std::uint32_t>(seq);
    return s;
  }
  return std::nullopt;
}

std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue_num) {
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return parse_kernel_queue_stats(text.str(), queue_num);
}

NfQueue::NfQueue(const NfQueueConfig& config) : config_(config), buffer_(kRecvBufferBytes) {
  handle_ = nfq_open();
  if (handle_ == nullptr) throw_errno("nfq_open");
  queue_ = nfq_create_queue(handle_, config.queue_num, &NfQueue::on_packet, this);
  if (queue_ == nullptr) {
    nfq_close(handle_);
    throw_errno("cannot bind queue " + std::to_string(config.queue_num) +
                " (needs CAP_NET_ADMIN; is another process bound to it?)");
  }
  auto fail = [this](const std::string& what) {
    int saved = errno;
    nfq_destroy_queue(queue_);
    nfq_close(handle_);
    errno = saved;
    throw_errno(what);
  };
  if (nfq_set_mode(queue_, NFQNL_COPY_PACKET, config.copy_range) < 0) fail("nfq_set_mode");
  if (nfq_set_queue_maxlen(queue_, config.max_len) < 0) fail("nfq_set_queue_maxlen");
  std::uint32_t flags = (config.fail_open ? NFQA_CFG_F_FAIL_OPEN : 0u) |
                        (config.gso ? NFQA_CFG_F_GSO : 0u);
  if (nfq_set_queue_flags(queue_, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO, flags) < 0) {
    fail("nfq_set_queue_flags (FAIL_OPEN/GSO)");
  }
  fd_ = nfq_fd(handle_);
  rcvbuf_ = nfnl_rcvbufsiz(nfq_nfnlh(handle_), config.rcvbuf_bytes);
  int on = config.no_enobufs ? 1 : 0;
  if (setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on) < 0) fail("NETLINK_NO_ENOBUFS");
  int fl = fcntl(fd_, F_GETFL);
  if (fl < 0 || fcntl(fd_, F_SETFL, fl | O_NONBLOCK) < 0) fail("O_NONBLOCK");
}

NfQueue::~NfQueue() {
  (void)flush();
  nfq_destroy_queue(queue_);
  nfq_close(handle_);
}

int NfQueue::on_packet(nfq_q_handle* /*qh*/, struct nfgenmsg* /*msg*/, nfq_data* nfad, void* self_ptr) {
  auto* self = static_cast<NfQueue*>(self_ptr);
  nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfad);
  unsigned char* payload = nullptr;
  int len = nfq_get_payload(nfad, &payload);
  if (ph == nullptr || len < 0 || payload == nullptr) {
    ++self->counters_.errors;  // no id to give a verdict to: the kernel keeps it until we close
    return 0;
  }
  QueuedPacket pkt;
  pkt.id = ntohl(ph->packet_id);
  pkt.data = std::span<std::uint8_t>(payload, static_cast<std::size_t>(len));
  std::uint32_t info = nfq_get_skbinfo(nfad);
  pkt.checksum_partial = (info & NFQA_SKB_CSUMNOTREADY) != 0;
  pkt.is_gso = (info & NFQA_SKB_GSO) != 0;
  pkt.mark = nfq_get_nfmark(nfad);
  pkt.hook = hook_from(ph->hook);
  pkt.indev = nfq_get_indev(nfad);
  pkt.outdev = nfq_get_outdev(nfad);
  ++self->counters_.received;
  ++self->dispatched_;
  self->batcher_.on_delivered(pkt.id);
  if (self->handler_) {
    self->handler_(pkt);
  } else {
    (void)self->accept(pkt.id);  // nobody listens: never strand a packet
  }
  return 0;
}

Result<std::size_t, IoError> NfQueue::poll_once() {
  dispatched_ = 0;
  while (dispatched_ < config_.max_batch) {
    ssize_t n = recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // overrun: the kernel lost packets, keep going
        ++counters_.enobufs;
        continue;
      }
      ++counters_.errors;
      return Err(IoError{errno, "recv(nfqueue)"});
    }
    if (nfq_handle_packet(handle_, reinterpret_cast<char*>(buffer_.data()), static_cast<int>(n)) < 0) {
      ++counters_.errors;
    }
  }
  return dispatched_;
}

IoStatus NfQueue::verdict(std::uint32_t id, std::uint32_t v, std::span<const std::uint8_t> packet) {
  batcher_.on_verdict(id);
  const std::uint8_t* bytes = packet.empty() ? nullptr : packet.data();
  if (packet.size() % kNetlinkAlign != 0) {
    // libnetfilter_queue sends the payload attribute padded to 4 bytes and
    // reads the padding from our buffer: give it a buffer that has it.
    padded_.assign(packet.begin(), packet.end());
    padded_.resize(packet.size() + kNetlinkAlign - packet.size() % kNetlinkAlign, 0);
    bytes = padded_.data();
  }
  int rc = nfq_set_verdict(queue_, id, v, static_cast<std::uint32_t>(packet.size()), bytes);
  if (rc < 0) {
    ++counters_.errors;
    return io_fail(errno, "nfq_set_verdict");
  }
  return io_ok();
}

IoStatus NfQueue::accept(std::uint32_t id) {
  ++counters_.accepted;
  return verdict(id, NF_ACCEPT, {});
}

IoStatus NfQueue::accept_modified(std::uint32_t id, std::span<const std::uint8_t> packet) {
  ++counters_.accepted;
  ++counters_.modified;
  return verdict(id, NF_ACCEPT, packet);
}

IoStatus NfQueue::drop(std::uint32_t id) {
  ++counters_.dropped;
  return verdict(id, NF_DROP, {});
}

IoStatus NfQueue::accept_with_mark(std::uint32_t id, std::uint32_t mark) {
  ++counters_.accepted;
  batcher_.on_verdict(id);
  if (nfq_set_verdict2(queue_, id, NF_ACCEPT, mark, 0, nullptr) < 0) {
    ++counters_.errors;
    return io_fail(errno, "nfq_set_verdict2");
  }
  return io_ok();
}

void NfQueue::accept_deferred(std::uint32_t id) { batcher_.defer(id); }

IoStatus NfQueue::flush() {
  counters_.accepted += batcher_.deferred();
  FlushPlan plan = batcher_.plan();
  IoStatus status = io_ok();
  if (plan.batch_upto) {
    ++counters_.batches;
    if (nfq_set_verdict_batch(queue_, *plan.batch_upto, NF_ACCEPT) < 0) {
      ++counters_.errors;
      status = io_fail(errno, "nfq_set_verdict_batch");
    }
  }
  for (std::uint32_t id : plan.singles) {
    if (nfq_set_verdict(queue_, id, NF_ACCEPT, 0, nullptr) < 0) {
      ++counters_.errors;
      status = io_fail(errno, "nfq_set_verdict");
    }
  }
  return status;
}

}  // namespace hl::io
