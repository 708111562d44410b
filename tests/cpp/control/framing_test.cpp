// FrameReader: frames come out whole however the stream is split; a bad stream is reported.
#include "control/framing.h"

#include <gtest/gtest.h>

namespace hl::control {
namespace {

const net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};

std::vector<uint8_t> stream_of(const std::vector<Message>& messages) {
  std::vector<uint8_t> out;
  for (const auto& m : messages) {
    auto f = encode(m);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

std::vector<Message> drain(FrameReader& r) {
  std::vector<Message> out;
  std::vector<uint8_t> frame;
  while (r.next(frame) == FrameStatus::kFrame) {
    auto m = decode(frame);
    EXPECT_TRUE(m.ok());
    if (m.ok()) out.push_back(*m);
  }
  return out;
}

const std::vector<Message> kMessages = {
    HandoffAck{kClient, 1},
    Keepalive{"be2", 3},
    Relay{kClient, std::vector<uint8_t>(300, 7)},
    Termination{kClient, TerminationReason::kRst},
};

TEST(FrameReaderTest, SplitAtEveryByte) {
  const auto stream = stream_of(kMessages);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameReader r;
    r.feed(std::span(stream).subspan(0, cut));
    auto got = drain(r);
    r.feed(std::span(stream).subspan(cut));
    auto rest = drain(r);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, kMessages) << "cut at " << cut;
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(FrameReaderTest, OneByteAtATime) {
  const auto stream = stream_of(kMessages);
  FrameReader r;
  std::vector<Message> got;
  for (uint8_t b : stream) {
    r.feed(std::span(&b, 1));
    auto more = drain(r);
    got.insert(got.end(), more.begin(), more.end());
    EXPECT_LE(r.buffered(), kHeaderLen + 306);  // never more than one partial frame
  }
  EXPECT_EQ(got, kMessages);
}

TEST(FrameReaderTest, BadStreamsAreReportedAndStayBad) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Case> cases = {
      {"bad magic", {0x47, 0x45, 0x54, 0x20}},
      {"bad version", {0x48, 0x4C, 9}},
      {"body over the limit", {0x48, 0x4C, 1, 1, 0x7f, 0, 0, 0}},
  };
  for (const auto& c : cases) {
    FrameReader r;
    auto good = encode(HandoffAck{kClient, 1});
    r.feed(good);
    r.feed(c.bytes);
    std::vector<uint8_t> frame;
    EXPECT_EQ(r.next(frame), FrameStatus::kFrame) << c.what;  // what came before still counts
    EXPECT_EQ(r.next(frame), FrameStatus::kBad) << c.what;
    r.feed(good);
    EXPECT_EQ(r.next(frame), FrameStatus::kBad) << c.what;
  }
}

TEST(FrameReaderTest, UnknownTypeIsAFrameTheDecoderRefuses) {
  FrameReader r;
  const std::vector<uint8_t> bytes = {0x48, 0x4C, 1, 42, 0, 0, 0, 1, 0xaa};
  r.feed(bytes);
  std::vector<uint8_t> frame;
  ASSERT_EQ(r.next(frame), FrameStatus::kFrame);
  EXPECT_EQ(decode(frame).error(), DecodeError::UnknownType);
}

}  // namespace
}  // namespace hl::control
