/*
 * libFuzzer target: a live connection fed by a hostile peer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One TCP listener on 127.0.0.1:0 lives for the whole run, with a small
 * payload limit and a receive queue of two datagrams (so the reader stops
 * and starts again), and one good connection through it that stays open.
 * For each input:
 *   1. a raw TCP client connects, writes the input (in two parts, the
 *      listener taking the connection between them) and ends with a FIN
 *      (shutdown, then close) or, for half of the inputs, a reset
 *      (SO_LINGER 0);
 *   2. the server side of that connection echoes every datagram it
 *      receives (as an echo server would) until the stream ends: after a
 *      FIN it must have delivered exactly the datagrams a reference decoder
 *      finds in the input and ended as the reference says (CONNECT_EEOF,
 *      CONNECT_ETRUNCATED or CONNECT_EPROTO), even when the raw client's
 *      close then resets the connection for the unread echoes; after a
 *      reset it must have delivered a prefix of them and ended with
 *      CONNECT_ECONNRESET (or CONNECT_EPROTO after all of them, when the
 *      input has a malformed frame), never with an end of stream;
 *   3. a new good client connects through the same listener and a datagram
 *      makes the round trip (client, server, echo, client); so does one on
 *      the connection that stays open.
 * A process-wide receive memory bound (connect_set_recv_memory_limit) of
 * RECV_MEMORY bytes is set before any connection: readers pause and resume
 * around it, and after each input, with every datagram taken and every
 * connection of the input closed, connect_recv_memory_used() must be 0.
 * Every wait is bounded (WAIT_MS): a wait that runs out is reported as a
 * hang.  Every connection of the input is closed before the next, so
 * LeakSanitizer checks each input.
 */
#include "connect_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"

/* Payload limit and receive queue of the listener's connections. */
#define SERVER_MAX_PAYLOAD 1000u
#define SERVER_RECV_MSGS 2
/* The process-wide bound on received datagrams waiting (payload bytes). */
#define RECV_MEMORY 2048u
/* Longest wait for anything that should happen at once on loopback. */
#define WAIT_MS 5000

static connect_listener *listener;
static char addr[64];
static connect_conn *keep_client, *keep_server;

static const char *name(int rc)
{
	return connect_err_name(rc);
}

/* Is rc one of the codes connect.h defines? */
static bool known_code(int rc)
{
	return strcmp(connect_err_name(rc), "CONNECT_EUNKNOWN") != 0;
}

static connect_conn *accept_one(const char *what)
{
	connect_conn *c = NULL;
	int rc = connect_accept_wait(listener, &c, WAIT_MS);

	FUZZ_CHECK(rc == CONNECT_OK, "the listener did not accept %s: %s",
		   what, name(rc));
	return c;
}

/* A datagram from `from` reaches `to` and comes back whole. */
static void round_trip(connect_conn *from, connect_conn *to,
		       const uint8_t *p, size_t n, uint16_t tag,
		       const char *what)
{
	connect_datagram *dg = NULL, *got = NULL, *back = NULL;
	int rc;

	rc = connect_datagram_new(&dg, tag, p, n);
	FUZZ_CHECK(rc == CONNECT_OK, "connect_datagram_new: %s", name(rc));
	rc = connect_send_wait(from, dg, WAIT_MS);
	FUZZ_CHECK(rc == CONNECT_OK, "%s: send: %s", what, name(rc));
	rc = connect_recv_wait(to, &got, WAIT_MS);
	FUZZ_CHECK(rc == CONNECT_OK, "%s: the server did not receive: %s",
		   what, name(rc));
	FUZZ_CHECK(connect_datagram_size(got) == n &&
		   connect_datagram_tag(got) == tag &&
		   memcmp(connect_datagram_data(got), p, n) == 0,
		   "%s: the server received another datagram", what);
	rc = connect_send_wait(to, got, WAIT_MS);
	FUZZ_CHECK(rc == CONNECT_OK, "%s: echo: %s", what, name(rc));
	rc = connect_recv_wait(from, &back, WAIT_MS);
	FUZZ_CHECK(rc == CONNECT_OK, "%s: the echo did not come back: %s",
		   what, name(rc));
	FUZZ_CHECK(connect_datagram_size(back) == n &&
		   connect_datagram_tag(back) == tag &&
		   memcmp(connect_datagram_data(back), p, n) == 0,
		   "%s: the echo differs", what);
	connect_datagram_free(back);
}

static void setup(void)
{
	connect_opts *o = NULL;
	int rc;

	/* Before any connection: those made earlier are not counted. */
	rc = connect_set_recv_memory_limit(RECV_MEMORY);
	FUZZ_CHECK(rc == CONNECT_OK, "connect_set_recv_memory_limit: %s",
		   name(rc));
	rc = connect_opts_new(&o);
	FUZZ_CHECK(rc == CONNECT_OK, "connect_opts_new: %s", name(rc));
	FUZZ_CHECK(connect_opts_set(o, CONNECT_OPT_RECV_MAX_PAYLOAD,
				    SERVER_MAX_PAYLOAD) == CONNECT_OK &&
		   connect_opts_set(o, CONNECT_OPT_RECV_QUEUE_MSGS,
				    SERVER_RECV_MSGS) == CONNECT_OK,
		   "connect_opts_set");
	rc = connect_tcp_listen(&listener, "127.0.0.1:0", o);
	FUZZ_CHECK(rc == CONNECT_OK, "connect_tcp_listen: %s", name(rc));
	connect_opts_free(o);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d",
		 connect_listener_port(listener));

	rc = connect_tcp_client(&keep_client, addr, NULL);
	FUZZ_CHECK(rc == CONNECT_OK, "the lasting client: %s", name(rc));
	keep_server = accept_one("the lasting client");
	round_trip(keep_client, keep_server, (const uint8_t *)"hello", 5, 1,
		   "the lasting connection");
}

static int raw_connect(uint16_t *local_port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)connect_listener_port(listener));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int err = 0, rc;
		socklen_t elen = sizeof(err);

		/* libFuzzer's timer (SIGALRM, no SA_RESTART) interrupted
		 * it: the connection goes on, wait for it. */
		FUZZ_CHECK(errno == EINTR, "raw connect: %s", strerror(errno));
		do {
			rc = poll(&pfd, 1, WAIT_MS);
		} while (rc < 0 && errno == EINTR);
		FUZZ_CHECK(rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR,
						 &err, &elen) == 0 && err == 0,
			   "raw connect (after EINTR): %s",
			   rc == 1 ? strerror(err) : "timed out");
	}
	FUZZ_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
		   "getsockname: %s", strerror(errno));
	*local_port = ntohs(sa.sin_port);
	return fd;
}

static void raw_write(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		/* The server may cut the connection at a malformed frame
		 * before it has everything. */
		if (k < 0 && (errno == ECONNRESET || errno == EPIPE))
			return;
		FUZZ_CHECK(k > 0, "raw send: %s", strerror(errno));
		p += k;
		n -= (size_t)k;
	}
}

/* The hostile peer: write the input, end with a FIN or a reset; the
 * server side must report exactly what arrived. */
static void hostile(const uint8_t *data, size_t size, uint64_t h)
{
	struct fuzz_rng rng = { h };
	bool reset = fuzz_range(&rng, 0, 1);
	size_t first = size ? fuzz_range(&rng, 0, size) : 0;
	struct fuzz_ref ref;
	connect_conn *bad;
	char peer[CN_ADDRSTRLEN], want[CN_ADDRSTRLEN];
	const char *how = reset ? "ended by a reset" : "ended by a FIN";
	uint16_t port;
	uint64_t msgs = 0, bytes = 0, stat = 0;
	size_t got = 0, nbytes = 0;
	int fd, rc, end;

	fuzz_ref_decode(data, size, SERVER_MAX_PAYLOAD, &ref);
	fd = raw_connect(&port);
	raw_write(fd, data, first);
	bad = accept_one("the raw client");
	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	FUZZ_CHECK(connect_conn_peer_addr(bad, peer, sizeof(peer)) ==
		   CONNECT_OK && strcmp(peer, want) == 0,
		   "accepted %s, the raw client is %s", peer, want);
	raw_write(fd, data + first, size - first);
	if (reset) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else {
		/* The FIN goes out now; close() may still reset the
		 * connection if echoes are waiting unread. */
		shutdown(fd, SHUT_WR);
	}
	close(fd);

	for (;;) {
		connect_datagram *dg = NULL;
		const struct fuzz_ref_dg *e;

		end = connect_recv_wait(bad, &dg, WAIT_MS);
		FUZZ_CHECK(end != CONNECT_ETIMEDOUT,
			   "hang: the connection %s has said nothing for %d ms "
			   "after %zu datagrams", how, WAIT_MS, got);
		if (end != CONNECT_OK)
			break;
		FUZZ_CHECK(got < ref.ndg,
			   "%s: datagram #%zu received, the input holds %zu",
			   how, got + 1, ref.ndg);
		e = &ref.dg[got];
		FUZZ_CHECK(connect_datagram_size(dg) == e->len &&
			   connect_datagram_version(dg) == e->version &&
			   connect_datagram_tag(dg) == e->tag &&
			   memcmp(connect_datagram_data(dg),
				  data + e->off + CN_HDR_LEN, e->len) == 0,
			   "%s: datagram #%zu differs from the input's", how,
			   got + 1);
		got++;
		nbytes += e->len;
		/* Echo it; the raw peer never reads, and may be gone. */
		rc = connect_send(bad, dg);
		if (rc != CONNECT_OK) {
			FUZZ_CHECK(rc != CONNECT_EINVAL && known_code(rc),
				   "%s: echo send returned %s (%d)", how,
				   name(rc), rc);
			connect_datagram_free(dg);
		}
	}

	if (!reset) {
		FUZZ_CHECK(got == ref.ndg && end == ref.end,
			   "%s: %zu datagrams then %s; the input holds %zu "
			   "then %s", how, got, name(end), ref.ndg,
			   name(ref.end));
	} else {
		FUZZ_CHECK(end == CONNECT_ECONNRESET ||
			   (end == CONNECT_EPROTO && got == ref.ndg &&
			    ref.end == CONNECT_EPROTO),
			   "%s: %zu datagrams then %s; the input holds %zu "
			   "then %s", how, got, name(end), ref.ndg,
			   name(ref.end));
	}
	/* Sticky, and the counters agree. */
	{
		connect_datagram *dg = NULL;
		char reason[CN_REASON_LEN];

		rc = connect_recv(bad, &dg);
		FUZZ_CHECK(rc == end && dg == NULL,
			   "%s: after %s, connect_recv says %s", how,
			   name(end), name(rc));
		rc = connect_conn_error(bad, reason, sizeof(reason));
		FUZZ_CHECK(known_code(rc), "connect_conn_error returned %d",
			   rc);
		if (end != CONNECT_EEOF)
			FUZZ_CHECK(rc != CONNECT_OK && reason[0] != '\0',
				   "%s: ended %s, connect_conn_error has no "
				   "error", how, name(end));
	}
	FUZZ_CHECK(connect_conn_stat(bad, CONNECT_STAT_MSGS_RECV, &msgs) ==
		   CONNECT_OK && connect_conn_stat(bad, CONNECT_STAT_BYTES_RECV,
						   &bytes) == CONNECT_OK,
		   "connect_conn_stat");
	FUZZ_CHECK(msgs == got && bytes == nbytes,
		   "%s: %zu datagrams (%zu bytes) received, the counters say "
		   "%llu (%llu bytes)", how, got, nbytes,
		   (unsigned long long)msgs, (unsigned long long)bytes);
	FUZZ_CHECK(connect_conn_stat(bad, CONNECT_STAT_RECV_QUEUED, &stat) ==
		   CONNECT_OK && stat == 0, "%s: datagrams left queued", how);

	rc = connect_close(bad, 0, NULL);
	FUZZ_CHECK(rc != CONNECT_EINVAL && known_code(rc),
		   "connect_close returned %s (%d)", name(rc), rc);
	fuzz_ref_free(&ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size, 0);
	connect_conn *client = NULL, *server;
	size_t n = size < 256 ? size : 256;
	int rc;

	if (!listener)
		setup();

	hostile(data, size, h);

	/* A good client is still served, on a new connection... */
	rc = connect_tcp_client(&client, addr, NULL);
	FUZZ_CHECK(rc == CONNECT_OK, "a good client cannot connect: %s",
		   name(rc));
	server = accept_one("a good client");
	round_trip(client, server, n ? data : (const uint8_t *)"x", n ? n : 1,
		   (uint16_t)h, "a new good connection");
	rc = connect_close(client, 0, NULL);
	FUZZ_CHECK(known_code(rc), "connect_close returned %d", rc);
	rc = connect_close(server, 0, NULL);
	FUZZ_CHECK(known_code(rc), "connect_close returned %d", rc);

	/* ... and on the one that stays open. */
	round_trip(keep_client, keep_server, n ? data : (const uint8_t *)"x",
		   n ? n : 1, (uint16_t)(h >> 16), "the lasting connection");

	/* Everything received was taken, or freed with its connection. */
	FUZZ_CHECK(connect_recv_memory_used() == 0,
		   "%llu bytes counted as waiting for the application after "
		   "the input", (unsigned long long)connect_recv_memory_used());
	return 0;
}
