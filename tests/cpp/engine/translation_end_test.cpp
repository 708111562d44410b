// The end of a translated connection on the kernel's word (TranslationCarrier
// with a ServerSockets, socket_end.h): its socket destroyed with no FIN or RST
// seen, a notification of another socket of the tuple, missed notifications,
// and moved connections, whose socket is reset here on purpose.
#include <gtest/gtest.h>

#include <variant>
#include <vector>

#include "engine/carried.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing::carried;

// The Termination messages sent since the last call, by reason.
std::vector<control::TerminationReason> terminations(Carried& c) {
  std::vector<control::TerminationReason> out;
  for (const SentMessage& m : c.messages.take()) {
    EXPECT_EQ(m.to, kOrigin);
    if (const auto* t = std::get_if<control::Termination>(&m.message)) out.push_back(t->reason);
  }
  return out;
}

// A carried connection whose socket the kernel has (seen alive at the first tick).
struct Watched {
  FakeSockets sockets;
  Carried c;

  Watched() : c(true, 100, &sockets) {
    sockets.live.insert(conn_key(kClient));
    c.tick(100);
  }
};

TEST(TranslationEndTest, ItsSocketDestroyedEndsTheConnectionWithNoFinSeen) {
  Watched w;
  Carried& c = w.c;
  EXPECT_EQ(w.sockets.lookups, 1) << "looked up until seen alive";
  c.server_sends(kResponse);
  c.client_sends(c.server_next());
  c.tick(100);
  EXPECT_EQ(w.sockets.lookups, 1) << "a live socket is not looked up every tick";
  EXPECT_TRUE(c.messages.take().empty());

  // The FINs went by unseen here (lost on the way): the kernel freed the socket.
  w.sockets.live.clear();
  w.sockets.destroyed.push_back(kClient);
  c.tick(100);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin}) << "the origin frees its state";
  EXPECT_EQ(c.counters.kernel_ends, 1u);
  EXPECT_EQ(c.carrier.open(), 0u);
  EXPECT_EQ(c.carrier.active(), 1u) << "lingers for late segments";
  c.tick(100);
  EXPECT_EQ(c.carrier.active(), 0u);
  EXPECT_EQ(c.counters.freed, 1u);
  EXPECT_EQ(c.counters.timeouts, 0u);
}

TEST(TranslationEndTest, ASocketThatSentASegmentNeedsNoLookupUntilNamed) {
  FakeSockets sockets;
  Carried c(true, 100, &sockets);
  c.server_sends(kResponse);
  c.tick(100);
  c.tick(100);
  EXPECT_EQ(sockets.lookups, 0);
  sockets.destroyed.push_back(kClient);
  c.tick(100);
  EXPECT_EQ(sockets.lookups, 1);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
}

// A notification names the tuple while a socket of it lives: the server's
// FIN_WAIT2 minisock, or a new socket of the tuple after an old one's end.
TEST(TranslationEndTest, ANotificationWhileItsSocketLivesIsNotItsEnd) {
  Watched w;
  Carried& c = w.c;
  w.sockets.destroyed.push_back(kClient);
  c.tick(100);
  EXPECT_TRUE(c.messages.take().empty());
  const int lookups = w.sockets.lookups;
  c.tick(100);
  EXPECT_EQ(w.sockets.lookups, lookups + 1) << "looked up every tick since";
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.carrier.open(), 1u);

  w.sockets.live.clear();  // the client's FIN came: TIME_WAIT is no live connection
  c.tick(100);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
  EXPECT_EQ(c.counters.kernel_ends, 1u);
}

TEST(TranslationEndTest, MissedNotificationsHaveEveryConnectionLookedUp) {
  Watched w;
  Carried& c = w.c;
  w.sockets.live.clear();  // gone, its notification lost
  c.tick(100);
  EXPECT_TRUE(c.messages.take().empty()) << "not looked up: nothing named it";
  w.sockets.missed = true;  // ENOBUFS
  c.tick(100);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
  EXPECT_EQ(c.counters.kernel_ends, 1u);
}

TEST(TranslationEndTest, ALiveSocketIsLookedUpAgainEveryCheckMs) {
  Watched w;
  Carried& c = w.c;
  w.sockets.live.clear();
  c.tick(SocketEnds::kDefaultCheckMs - 1);
  EXPECT_TRUE(c.messages.take().empty());
  c.tick(1);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
}

// Past the server's FIN its socket's end is near, and may come without a
// notification (a minisock's, or one lost): looked up within kClosingCheckMs.
TEST(TranslationEndTest, ASocketThatSentItsFinIsLookedUpSoon) {
  Watched w;
  Carried& c = w.c;
  c.server_sends(kResponse, net::tcp_flag::FIN);
  const int lookups = w.sockets.lookups;
  w.sockets.live.clear();  // gone, its notification lost
  c.tick(SocketEnds::kClosingCheckMs - 1);
  EXPECT_EQ(w.sockets.lookups, lookups);
  EXPECT_TRUE(c.messages.take().empty());
  c.tick(1);
  EXPECT_EQ(w.sockets.lookups, lookups + 1);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
}

// A move retires the connection with an RST that destroys its socket: the
// retired state keeps its own lifetime and nothing ends.
TEST(TranslationEndTest, ARetiredConnectionsSocketEndIsNoEnd) {
  Watched w;
  Carried& c = w.c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  ASSERT_EQ(c.answers().at(0).status, control::ReleaseStatus::kReleased);
  ASSERT_EQ(c.raw.take().size(), 1u);  // the retiring RST
  w.sockets.live.clear();
  w.sockets.destroyed.push_back(kClient);
  c.tick(100);
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.carrier.active(), 1u) << "repeated orders are answered again";
  c.tick(TranslationConfig::kMinRetiredLingerMs);
  EXPECT_EQ(c.carrier.active(), 0u);
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.counters.kernel_ends, 0u);
  EXPECT_EQ(c.counters.terminations_sent, 0u);
}

// Moved away and back: the retired socket's notification may come after the
// new hand-in, before the new socket is seen (its handshake's ACK still to
// come): believed only if no socket shows within SocketEnds::kDeferMs.
TEST(TranslationEndTest, MovedBackTheOldSocketsNotificationWaitsForTheNewSocket) {
  Watched w;
  Carried& c = w.c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  ASSERT_EQ(c.answers().size(), 1u);
  w.sockets.live.clear();
  c.hand_in(c.client_seq - 1);
  c.synack();
  w.sockets.destroyed.push_back(kClient);  // the retired socket's
  c.tick(100);
  EXPECT_TRUE(c.messages.take().empty());
  w.sockets.live.insert(conn_key(kClient));  // the new socket
  c.tick(100);
  c.tick(SocketEnds::kDeferMs);
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.carrier.open(), 1u);
  EXPECT_EQ(c.counters.kernel_ends, 0u);
}

TEST(TranslationEndTest, MovedBackWithNoSocketShowingTheNotificationIsBelieved) {
  Watched w;
  Carried& c = w.c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  ASSERT_EQ(c.answers().size(), 1u);
  w.sockets.live.clear();
  c.hand_in(c.client_seq - 1);
  c.synack();
  w.sockets.destroyed.push_back(kClient);  // the new socket's own (it lived between two ticks)
  c.tick(100);
  EXPECT_TRUE(c.messages.take().empty());
  c.tick(SocketEnds::kDeferMs);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
}

// The new socket answered and was gone within a tick: its segment says it
// lived, not that the waiting notification was the old socket's.
TEST(TranslationEndTest, MovedBackASegmentDoesNotOverruleTheWaitingNotification) {
  Watched w;
  Carried& c = w.c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  ASSERT_EQ(c.answers().size(), 1u);
  w.sockets.live.clear();
  c.hand_in(c.client_seq - 1);
  c.synack();
  w.sockets.destroyed.push_back(kClient);
  c.tick(100);
  c.server_sends(kResponse);
  c.tick(SocketEnds::kDeferMs);
  EXPECT_EQ(terminations(c), std::vector{control::TerminationReason::kFin});
}

// Before the kernel's SYN/ACK no socket of the connection was complete (the
// client's ACK is held until then): a notification is of an earlier one.
TEST(TranslationEndTest, ANotificationBeforeTheSynAckIsOfAnEarlierSocket) {
  Watched w;
  Carried& c = w.c;
  w.sockets.live.clear();
  c.hand_in(kClientIsn + 100000);  // a new connection on the port
  w.sockets.destroyed.push_back(kClient);
  const int lookups = w.sockets.lookups;
  c.tick(100);
  EXPECT_EQ(w.sockets.lookups, lookups) << "not looked up before its SYN/ACK";
  c.synack();
  c.tick(100);  // its socket not there yet (a SYN cookie, the ACK still to come)
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.carrier.open(), 1u);
}

}  // namespace
}  // namespace hl::engine
