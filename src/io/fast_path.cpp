#include "io/fast_path.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace hl::io {
namespace {

constexpr const char* kMapName = "conns";
constexpr const char* kAcksMapName = "acks";  // mapped for all but the segments with payload
constexpr const char* kChainName = "pre";
// Ahead of iptables' mangle PREROUTING (-150), where the capture chain queues:
// a rewritten packet no longer matches the capture rule (its destination is not the VIP).
constexpr int kPriority = -250;
// NFT_MSG_DESTROYSETELEM (Linux 6.3): a removal that is not an error when the
// element is gone (expired). Not in older uapi headers, hence the number.
constexpr std::uint16_t kMsgDestroySetElem = 30;
constexpr std::size_t kFlushBytes = 32 * 1024;  // a batch is sent early past this size

std::string addr_text(std::uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// --- netlink encoding (native byte order headers, as the kernel expects) ----------

void put_bytes(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  if (n != 0) std::memcpy(out.data() + at, p, n);
}

void pad4(std::vector<std::uint8_t>& out) {
  while (out.size() % 4 != 0) out.push_back(0);
}

void put_attr(std::vector<std::uint8_t>& out, std::uint16_t type, const void* data, std::size_t len) {
  nlattr a{static_cast<std::uint16_t>(sizeof(nlattr) + len), type};
  put_bytes(out, &a, sizeof a);
  put_bytes(out, data, len);
  pad4(out);
}

// Starts a nested attribute; returns its offset for nest_end().
std::size_t nest_start(std::vector<std::uint8_t>& out, std::uint16_t type) {
  const std::size_t at = out.size();
  nlattr a{0, static_cast<std::uint16_t>(type | NLA_F_NESTED)};
  put_bytes(out, &a, sizeof a);
  return at;
}

void nest_end(std::vector<std::uint8_t>& out, std::size_t at) {
  const auto len = static_cast<std::uint16_t>(out.size() - at);
  std::memcpy(out.data() + at, &len, sizeof len);
}

// A message header + nfgenmsg; returns the message's offset for msg_end().
std::size_t msg_start(std::vector<std::uint8_t>& out, std::uint16_t type, std::uint16_t flags,
                      std::uint8_t family, std::uint16_t res_id) {
  const std::size_t at = out.size();
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  put_bytes(out, &h, sizeof h);
  nfgenmsg g{};
  g.nfgen_family = family;
  g.version = NFNETLINK_V0;
  g.res_id = htons(res_id);
  put_bytes(out, &g, sizeof g);
  return at;
}

void msg_end(std::vector<std::uint8_t>& out, std::size_t at) {
  const auto len = static_cast<std::uint32_t>(out.size() - at);
  std::memcpy(out.data() + at, &len, sizeof len);
}

void valid_tag(const std::string& tag) {
  if (tag.empty()) throw std::invalid_argument("fast path: the tag is empty");
  for (char ch : tag) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
      throw std::invalid_argument("fast path: tag '" + tag + "' may hold only letters, digits and _");
    }
  }
}

CommandResult nft(const std::string& commands) { return run_command({kNft, commands}); }

}  // namespace

std::string nft_table_name(const NftFastPathConfig& config) {
  valid_tag(config.tag);
  return std::string(kNftTablePrefix) + config.tag;
}

std::vector<std::string> nft_fast_path_install(const NftFastPathConfig& config) {
  const std::string t = "ip " + nft_table_name(config);
  std::ostringstream rule;
  rule << "add rule " << t << ' ' << kChainName << " ip daddr " << addr_text(config.vip) << " tcp dport "
       << config.port << " tcp flags & (syn|fin|rst) == 0 ip daddr set ip saddr . tcp sport map @" << kMapName
       << " counter";
  std::ostringstream map;
  map << "add map " << t << ' ' << kMapName
      << " { type ipv4_addr . inet_service : ipv4_addr; flags timeout; timeout " << config.timeout_s << "s; }";
  std::ostringstream acks_map;
  acks_map << "add map " << t << ' ' << kAcksMapName
           << " { type ipv4_addr . inet_service : ipv4_addr; flags timeout; timeout " << config.timeout_s << "s; }";
  std::ostringstream chain;
  chain << "add chain " << t << ' ' << kChainName << " { type filter hook prerouting priority " << kPriority
        << "; policy accept; }";
  // "add; delete; add" replaces a leftover of the same name in one transaction.
  std::vector<std::string> lines = {"add table " + t, "delete table " + t, "add table " + t, map.str(),
                                    acks_map.str(), chain.str(),       rule.str()};
  // The acks map: segments without payload only (a persistent connection whose
  // requests the engine reads). nf_tables cannot compare two fields, so one rule
  // per TCP header length: IP length == 20 + the TCP header (no IP options).
  for (unsigned doff = 5; doff <= 15; ++doff) {
    std::ostringstream acks;
    acks << "add rule " << t << ' ' << kChainName << " ip daddr " << addr_text(config.vip) << " tcp dport "
         << config.port << " tcp flags & (syn|fin|rst) == 0 ip hdrlength 5 tcp doff " << doff << " ip length "
         << 20 + 4 * doff << " ip daddr set ip saddr . tcp sport map @" << kAcksMapName << " counter";
    lines.push_back(acks.str());
  }
  return lines;
}

std::vector<std::string> nft_fast_path_uninstall(const NftFastPathConfig& config) {
  return {"delete table ip " + nft_table_name(config)};
}

// --- NftElementBatch ----------------------------------------------------------------

NftElementBatch::NftElementBatch(std::string table, std::string set)
    : table_(std::move(table)), set_(std::move(set)) {}

void NftElementBatch::element(std::uint16_t type, std::uint16_t flags, std::uint32_t addr,
                              std::uint16_t port, const std::uint32_t* to) {
  const std::size_t msg = msg_start(messages_, static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type),
                                    static_cast<std::uint16_t>(NLM_F_REQUEST | flags), NFPROTO_IPV4, 0);
  put_attr(messages_, NFTA_SET_ELEM_LIST_TABLE, table_.c_str(), table_.size() + 1);
  put_attr(messages_, NFTA_SET_ELEM_LIST_SET, set_.c_str(), set_.size() + 1);
  const std::size_t list = nest_start(messages_, NFTA_SET_ELEM_LIST_ELEMENTS);
  const std::size_t elem = nest_start(messages_, NFTA_LIST_ELEM);
  // The key is the concatenation as nf_tables holds it in registers: the
  // address, then the port zero-padded to 4 bytes; both in network order.
  std::uint8_t key[8] = {};
  const std::uint32_t a = htonl(addr);
  const std::uint16_t p = htons(port);
  std::memcpy(key, &a, 4);
  std::memcpy(key + 4, &p, 2);
  const std::size_t k = nest_start(messages_, NFTA_SET_ELEM_KEY);
  put_attr(messages_, NFTA_DATA_VALUE, key, sizeof key);
  nest_end(messages_, k);
  if (to != nullptr) {
    const std::uint32_t v = htonl(*to);
    const std::size_t d = nest_start(messages_, NFTA_SET_ELEM_DATA);
    put_attr(messages_, NFTA_DATA_VALUE, &v, sizeof v);
    nest_end(messages_, d);
  }
  nest_end(messages_, elem);
  nest_end(messages_, list);
  msg_end(messages_, msg);
  ++changes_;
}

void NftElementBatch::add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) {
  // No NLM_F_EXCL: adding a mapping again (after it expired, or twice) is not an error.
  element(NFT_MSG_NEWSETELEM, NLM_F_CREATE, client_addr, client_port, &to);
}

void NftElementBatch::remove(std::uint32_t client_addr, std::uint16_t client_port) {
  element(kMsgDestroySetElem, 0, client_addr, client_port, nullptr);
}

std::vector<std::uint8_t> NftElementBatch::finish(std::uint32_t& seq) {
  std::vector<std::uint8_t> out;
  if (changes_ == 0) return out;
  out.reserve(messages_.size() + 2 * (sizeof(nlmsghdr) + sizeof(nfgenmsg)));
  // A batch is one transaction: if any change fails, none is applied.
  std::size_t at = msg_start(out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(out, at);
  put_bytes(out, messages_.data(), messages_.size());
  at = msg_start(out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(out, at);
  // Sequence numbers: BEGIN, each change, END.
  std::size_t off = 0;
  while (off + sizeof(nlmsghdr) <= out.size()) {
    nlmsghdr h;
    std::memcpy(&h, out.data() + off, sizeof h);
    h.nlmsg_seq = seq++;
    std::memcpy(out.data() + off, &h, sizeof h);
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  clear();
  return out;
}

void NftElementBatch::clear() {
  messages_.clear();
  changes_ = 0;
}

// --- NftFastPath ----------------------------------------------------------------------

NftFastPath::NftFastPath(NftFastPathConfig config)
    : config_(std::move(config)), batch_(nft_table_name(config_), kMapName),
      acks_batch_(nft_table_name(config_), kAcksMapName) {
  std::string script;
  for (const auto& line : nft_fast_path_install(config_)) script += line + ";\n";
  const CommandResult r = nft(script);
  if (r.exit_code != 0) {
    throw std::runtime_error("fast path: nft failed (" + std::to_string(r.exit_code) + "): " + r.err);
  }
  installed_ = true;
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) < 0) {
    const int err = errno;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    (void)uninstall();
    throw std::system_error(err, std::generic_category(), "fast path: netlink socket");
  }
}

NftFastPath::~NftFastPath() {
  if (fd_ >= 0) ::close(fd_);
  (void)uninstall();
}

bool NftFastPath::uninstall() {
  if (!installed_) return true;
  installed_ = false;
  batch_.clear();
  acks_batch_.clear();
  bool ok = true;
  for (const auto& line : nft_fast_path_uninstall(config_)) {
    const CommandResult r = nft(line);
    if (r.exit_code != 0) {
      std::cerr << "handoffd: fast path: '" << line << "' failed: " << r.err;
      ok = false;
    }
  }
  return ok;
}

void NftFastPath::add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) {
  if (!installed_) return;
  batch_.add(client_addr, client_port, to);
  ++counters_.adds;
  if (batch_.bytes() >= kFlushBytes) (void)flush();
}

bool NftFastPath::add_without_payload(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) {
  if (!installed_) return false;
  acks_batch_.add(client_addr, client_port, to);
  ++counters_.adds;
  if (acks_batch_.bytes() >= kFlushBytes) (void)flush();
  return true;
}

void NftFastPath::remove(std::uint32_t client_addr, std::uint16_t client_port) {
  if (!installed_) return;
  batch_.remove(client_addr, client_port);
  ++counters_.removes;
  if (batch_.bytes() >= kFlushBytes) (void)flush();
}

void NftFastPath::remove_without_payload(std::uint32_t client_addr, std::uint16_t client_port) {
  if (!installed_) return;
  acks_batch_.remove(client_addr, client_port);
  ++counters_.removes;
  if (acks_batch_.bytes() >= kFlushBytes) (void)flush();
}

IoStatus NftFastPath::flush() {
  IoStatus first = send(batch_);
  IoStatus acks = send(acks_batch_);
  return first.ok() ? acks : first;
}

IoStatus NftFastPath::send(NftElementBatch& batch) {
  if (batch.changes() == 0 || fd_ < 0) return io_ok();
  const std::vector<std::uint8_t> bytes = batch.finish(seq_);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ++counters_.batches;
  ssize_t n;
  do {
    n = ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ++counters_.errors;
    return io_fail(errno, "sendto(nf_tables)");
  }
  drain_errors();
  return io_ok();
}

// The kernel answers a batch only with the errors of its failed messages
// (no NLM_F_ACK), synchronously: they are queued when sendto returns.
void NftFastPath::drain_errors() {
  alignas(nlmsghdr) std::uint8_t buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return;
    std::size_t off = 0;
    while (off + sizeof(nlmsghdr) <= static_cast<std::size_t>(n)) {
      nlmsghdr h;
      std::memcpy(&h, buf + off, sizeof h);
      if (h.nlmsg_len < sizeof h) break;
      if (h.nlmsg_type == NLMSG_ERROR && off + sizeof h + sizeof(int) <= static_cast<std::size_t>(n)) {
        int err = 0;
        std::memcpy(&err, buf + off + sizeof h, sizeof err);
        if (err != 0) ++counters_.errors;
      }
      off += NLMSG_ALIGN(h.nlmsg_len);
    }
  }
}

int nft_cleanup_all(std::string_view prefix) {
  const CommandResult list = run_command({kNft, "list tables ip"});
  if (list.exit_code != 0) return 0;  // no nf_tables here: nothing of ours either
  std::istringstream in(list.out);
  std::string word, family, name;
  int n = 0;
  while (in >> word >> family >> name) {  // "table ip NAME"
    if (word != "table" || name.substr(0, prefix.size()) != prefix) continue;
    const CommandResult r = run_command({kNft, "delete table " + family + " " + name});
    if (r.exit_code != 0) throw std::runtime_error("cleanup: nft delete table " + name + ": " + r.err);
    ++n;
  }
  return n;
}

}  // namespace hl::io
