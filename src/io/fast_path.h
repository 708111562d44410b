// FastPath: client packets of handed-off connections forwarded by the kernel, not
// through the queue. NftFastPath keeps an nf_tables map (client address . port ->
// node address) and one rule at PREROUTING, ahead of the capture chain, that
// rewrites the destination of a mapped client's packets: the kernel then routes
// them to that node with no user-space crossing (the front-end's forwarding is a
// stateless destination rewrite, the same as FrontendEngine::forward's).
// SYN, FIN and RST segments never take it: the engine sees every state change.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/io_status.h"
#include "io/process.h"

namespace hl::io {

inline constexpr const char* kNft = "/usr/sbin/nft";
inline constexpr std::string_view kNftTablePrefix = "handoff_";  // every nf_tables table the engine owns

// Registers client -> node mappings; changes take effect at flush().
class FastPath {
 public:
  virtual ~FastPath() = default;
  // Packets of client addr:port (host order) go to node `to` (host order).
  virtual void add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) = 0;
  // The same, for all but the segments with payload (they still come to the
  // engine: it reads every request of the connection); false if this path
  // cannot tell them apart (then nothing was mapped).
  virtual bool add_without_payload(std::uint32_t /*client_addr*/, std::uint16_t /*client_port*/,
                                   std::uint32_t /*to*/) {
    return false;
  }
  // Removes a mapping made by add_without_payload.
  virtual void remove_without_payload(std::uint32_t client_addr, std::uint16_t client_port) {
    remove(client_addr, client_port);
  }
  // The client's packets come to the queue again (no error if not mapped).
  virtual void remove(std::uint32_t client_addr, std::uint16_t client_port) = 0;
  // Sends the changes made since the last flush.
  virtual IoStatus flush() = 0;
};

struct NftFastPathConfig {
  std::string tag;            // the table is kNftTablePrefix + tag (letters, digits, _)
  std::uint32_t vip = 0;      // host order: the service address whose packets are rewritten
  std::uint16_t port = 80;    // the service port
  // Mappings expire after this long unless added again: a crashed engine's
  // leftovers die on their own, and a live connection whose mapping expired
  // comes back to the queue, where the engine adds it again (it stays well
  // under the engine's idle timeout, so the engine keeps seeing live connections).
  std::uint32_t timeout_s = 60;
};

// The nft command lines that create and delete the table (pure; for tests and --print-rules).
std::vector<std::string> nft_fast_path_install(const NftFastPathConfig& config);
std::vector<std::string> nft_fast_path_uninstall(const NftFastPathConfig& config);
std::string nft_table_name(const NftFastPathConfig& config);  // throws std::invalid_argument on a bad tag

// Builds nf_tables batches of set-element changes (pure; no socket): one
// NEWSETELEM or DESTROYSETELEM message per change, in order.
class NftElementBatch {
 public:
  NftElementBatch(std::string table, std::string set);
  void add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to);
  void remove(std::uint32_t client_addr, std::uint16_t client_port);
  std::size_t changes() const { return changes_; }
  std::size_t bytes() const { return messages_.size(); }
  // The batch (BEGIN, the changes, END), numbered from `seq`, which is advanced
  // past them; empty if no change. Forgets the changes.
  std::vector<std::uint8_t> finish(std::uint32_t& seq);
  void clear();

 private:
  void element(std::uint16_t type, std::uint16_t flags, std::uint32_t addr, std::uint16_t port,
               const std::uint32_t* to);
  std::string table_;
  std::string set_;
  std::vector<std::uint8_t> messages_;  // the change messages, sequence numbers filled in by finish()
  std::size_t changes_ = 0;
};

struct FastPathCounters {
  std::uint64_t adds = 0;      // mappings sent
  std::uint64_t removes = 0;   // removals sent
  std::uint64_t batches = 0;   // netlink batches sent
  std::uint64_t errors = 0;    // batches the kernel refused (their changes are lost; the engine re-adds)
};

class NftFastPath final : public FastPath {
 public:
  // Creates the table (nft), then opens the netlink socket. Throws std::runtime_error.
  explicit NftFastPath(NftFastPathConfig config);
  // Deletes the table.
  ~NftFastPath() override;
  NftFastPath(const NftFastPath&) = delete;
  NftFastPath& operator=(const NftFastPath&) = delete;

  void add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) override;
  // Into the second map (acks), whose rules match segments without payload only.
  bool add_without_payload(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) override;
  void remove(std::uint32_t client_addr, std::uint16_t client_port) override;
  void remove_without_payload(std::uint32_t client_addr, std::uint16_t client_port) override;
  IoStatus flush() override;
  // Deletes the table now (idempotent); false if nft failed.
  bool uninstall();

  const FastPathCounters& counters() const { return counters_; }
  const NftFastPathConfig& config() const { return config_; }

 private:
  void drain_errors();
  IoStatus send(NftElementBatch& batch);
  NftFastPathConfig config_;
  NftElementBatch batch_;       // the conns map: every segment but SYN, FIN, RST
  NftElementBatch acks_batch_;  // the acks map: the same, without payload
  FastPathCounters counters_;
  int fd_ = -1;
  std::uint32_t seq_ = 1;
  bool installed_ = false;
};

// Deletes every nf_tables table named kNftTablePrefix* in this network
// namespace (leftovers of a crashed run); returns how many. Throws on failure.
int nft_cleanup_all(std::string_view prefix = kNftTablePrefix);

}  // namespace hl::io
