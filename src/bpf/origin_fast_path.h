// OriginFastPath: io::FastPath over OriginPath's forwarding map (issue 13
// item 5): what io::NftFastPath does with an nf_tables set, at one bpf()
// syscall per change instead of a netlink transaction, for the engines that
// already drive a FastPath. Same contract: SYN, FIN and RST never take it
// (origin.bpf.c sends them to user space). Changes apply at once; flush()
// reports the first failure since the previous flush. Unlike the nft set,
// entries do not expire: the engine removes them (connection end, idle).
#pragma once

#include <cstdint>

#include "bpf/origin_path.h"
#include "io/fast_path.h"
#include "io/io_status.h"
#include "net/ipv4_addr.h"

namespace hl::bpf {

class OriginFastPath final : public io::FastPath {
 public:
  // `path` must outlive this; `vip` is the service the mapped clients talk to.
  OriginFastPath(OriginPath& path, net::Endpoint vip) : path_(path), vip_(vip) {}

  void add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) override;
  bool add_without_payload(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) override;
  void remove(std::uint32_t client_addr, std::uint16_t client_port) override;
  io::IoStatus flush() override;

 private:
  OriginPath& path_;
  net::Endpoint vip_;
  io::IoStatus pending_ = io::io_ok();
};

}  // namespace hl::bpf
