// PcapCapture: libpcap capture of one interface (BPF filter, immediate mode)
// into a pcap file, on its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

struct pcap;
struct pcap_dumper;
struct pcap_pkthdr;

namespace hl::io {

// What to capture and where to write it.
struct PcapConfig {
  std::string interface;        // e.g. "eth0", "lo"
  std::string filter;           // BPF expression; empty: everything
  std::string output_path;      // pcap file (overwritten)
  int snaplen = 262144;         // bytes kept per packet
  std::uint64_t max_bytes = 0;  // the file's size cap: packets past it are counted, not written (0: none)
};

// A running capture. The constructor opens, compiles the filter and starts the
// thread (throws std::runtime_error with libpcap's message on failure); stop()
// or the destructor ends it and closes the file.
class PcapCapture {
 public:
  explicit PcapCapture(PcapConfig config);
  ~PcapCapture();
  PcapCapture(const PcapCapture&) = delete;
  PcapCapture& operator=(const PcapCapture&) = delete;

  // Stops the thread, drains what is buffered, closes the file. Idempotent.
  void stop();
  // Packets written so far.
  std::uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
  // Bytes written so far (the file's size, its 24-byte header included).
  std::uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Packets not written because the file reached max_bytes.
  std::uint64_t over_cap() const { return over_cap_.load(std::memory_order_relaxed); }
  // What the kernel dropped before libpcap read it (pcap_stats' ps_drop), at stop().
  std::uint64_t kernel_dropped() const { return kernel_dropped_.load(std::memory_order_relaxed); }

 private:
  void loop();
  static void on_packet(unsigned char* self, const struct pcap_pkthdr* header, const unsigned char* bytes);

  PcapConfig config_;
  pcap* handle_ = nullptr;
  pcap_dumper* dumper_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> packets_{0};
  std::atomic<std::uint64_t> bytes_{24};  // pcap's global header
  std::atomic<std::uint64_t> over_cap_{0};
  std::atomic<std::uint64_t> kernel_dropped_{0};
  std::thread thread_;
};

}  // namespace hl::io
