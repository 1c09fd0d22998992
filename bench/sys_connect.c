/*
 * connect-bench: libconnect over TCP, TLS and (when the library has them)
 * SCTP and DTLS over SCTP, through the public API only (connect_listen /
 * connect_dial, as an application would).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Throughput: a sender thread allocates each datagram, stamps it and hands
 * it to connect_send_wait(); the receiving thread takes them with
 * connect_recv_wait(), checks and frees them.  Round trip: an echo thread
 * sends every datagram it receives straight back (the same datagram), the
 * measuring thread sends one, waits for it, and sends the next.  Many
 * connections: N clients, their sends spread over up to 16 threads that
 * never block on one connection (connect_send, then poll on the send
 * descriptors when all are full), into one receiving thread that drains
 * every accepted connection in turn and polls their descriptors when all
 * are empty; or (connect-inbox) that pops them all from one inbox.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <connect.h>

#define SEND_SLICE_MS 50 /* a blocked sender looks at the stop flag */
#define RECV_SLICE_MS 100
#define LAT_TIMEOUT_MS 10000
#define MANY_THREADS 16

/* The transports measured. */
enum lc_tr { LC_TCP, LC_TLS, LC_SCTP, LC_DTLS_SCTP };

static const struct {
	const char *scheme;
	bool tls;  /* a TLS configuration on both ends */
	bool sctp; /* the options of the SCTP stack */
} lc_tr[] = {
	[LC_TCP] = { "tcp", false, false },
	[LC_TLS] = { "tls+tcp", true, false },
	[LC_SCTP] = { "sctp", false, true },
	[LC_DTLS_SCTP] = { "dtls+sctp", true, true },
};

static int lc_fail(struct bench_result *r, const char *what, int rc)
{
	bench_fail(r, "%s: %s (%s)", what, connect_err_name(rc),
		   connect_strerror(rc));
	return -1;
}

/*
 * Options for one side: the TLS configuration for the role and the name the
 * client verifies, plus the queue limits of the many-connection measure
 * (queue_bytes 0: the defaults).
 *
 * SCTP: both ends are in this process, and usrsctp is one stack per
 * process, so they share it: it starts on any free UDP port (0, not the
 * default 9899, which another program may hold), and the dialer sends to
 * the stack's own port (a peer UDP port of 0 means "the same as ours").
 */
static int lc_opts(struct bench_result *r, const struct bench_cell *c,
		   int tr, int role, int64_t queue_bytes, connect_opts **op)
{
	bool tls = lc_tr[tr].tls;
	connect_opts *o;
	connect_tls_config *cfg = NULL;
	char path[1024], key[1024];
	int rc;

	rc = connect_opts_new(&o);
	if (rc)
		return lc_fail(r, "connect_opts_new", rc);
	if (queue_bytes) {
		connect_opts_set(o, CONNECT_OPT_SEND_QUEUE_BYTES, queue_bytes);
		connect_opts_set(o, CONNECT_OPT_RECV_QUEUE_BYTES, queue_bytes);
	}
	if (lc_tr[tr].sctp) {
		rc = connect_opts_set(o, CONNECT_OPT_SCTP_UDP_PORT, 0);
		if (!rc)
			rc = connect_opts_set(o, CONNECT_OPT_SCTP_PEER_UDP_PORT,
					      0);
		if (rc) {
			connect_opts_free(o);
			return lc_fail(r, "SCTP options", rc);
		}
	}
	if (tls) {
		rc = connect_tls_config_new(&cfg, role);
		if (rc)
			goto fail;
		if (role == CONNECT_TLS_SERVER) {
			snprintf(path, sizeof(path), "%s/server.pem",
				 c->certdir);
			snprintf(key, sizeof(key), "%s/server-key.pem",
				 c->certdir);
			rc = connect_tls_config_cert_file(cfg, path, key);
		} else {
			snprintf(path, sizeof(path), "%s/ca.pem", c->certdir);
			rc = connect_tls_config_ca_file(cfg, path);
			if (!rc)
				rc = connect_opts_set_server_name(o,
								  "localhost");
		}
		if (!rc)
			rc = connect_opts_set_tls(o, cfg);
		connect_tls_config_free(cfg);
		if (rc)
			goto fail;
	}
	*op = o;
	return 0;
fail:
	connect_opts_free(o);
	bench_fail(r, "TLS configuration (certificates in %s): %s",
		   c->certdir, connect_strerror(rc));
	return -1;
}

/* A listener on 127.0.0.1:0 and n clients dialed to it, with the server
 * end of client i in server[i]. */
static int lc_connect(struct bench_result *r, const struct bench_cell *c,
		      int tr, int n, int64_t queue_bytes,
		      connect_conn **client, connect_conn **server)
{
	connect_opts *so = NULL, *co = NULL;
	connect_listener *l = NULL;
	const char *scheme = lc_tr[tr].scheme;
	char url[128];
	int rc, i, ret = -1;

	for (i = 0; i < n; i++)
		client[i] = server[i] = NULL;
	if (lc_opts(r, c, tr, CONNECT_TLS_SERVER, queue_bytes, &so) ||
	    lc_opts(r, c, tr, CONNECT_TLS_CLIENT, queue_bytes, &co))
		goto out;
	snprintf(url, sizeof(url), "%s://127.0.0.1:0", scheme);
	rc = connect_listen(&l, url, so);
	if (rc) {
		lc_fail(r, "connect_listen", rc);
		goto out;
	}
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme,
		 connect_listener_port(l));
	for (i = 0; i < n; i++) {
		rc = connect_dial(&client[i], url, co);
		if (rc) {
			lc_fail(r, "connect_dial", rc);
			goto out;
		}
		rc = connect_accept_wait(l, &server[i], 10000);
		if (rc) {
			lc_fail(r, "connect_accept_wait", rc);
			goto out;
		}
	}
	ret = 0;
out:
	connect_listener_close(l);
	connect_opts_free(so);
	connect_opts_free(co);
	return ret;
}

static void lc_close_all(connect_conn **conns, int n)
{
	for (int i = 0; i < n; i++)
		if (conns[i])
			connect_close(conns[i], 0, NULL);
}

/*
 * After the teardown of an SCTP cell: the library stops usrsctp when its
 * last SCTP connection or listener is gone, so no thread of the stack may
 * be left (the next cell starts it anew, and limit-sctp forks a process
 * that starts its own).
 */
static void lc_sctp_stopped(struct bench_result *r, int tr)
{
	/* The last close may leave the stop to a thread of its own (it
	 * waits a second for references usrsctp leaked): give it time. */
	if (lc_tr[tr].sctp && bench_threads_gone(BENCH_SCTP_THREADS, 5000) > 0)
		bench_fail(r, "the SCTP stack still runs after the last SCTP "
			   "connection was closed");
}

/* ---- throughput ---------------------------------------------------------- */

struct lc_sender {
	connect_conn *conn;
	size_t size;
	atomic_bool *stop;
	atomic_bool failed;      /* then err.err says why */
	struct bench_result err; /* err only */
};

static void *lc_send_main(void *arg)
{
	struct lc_sender *s = arg;
	connect_datagram *dg = NULL;
	uint64_t seq = 0;
	int rc;

	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		if (!dg) {
			rc = connect_datagram_alloc(&dg, 1, s->size);
			if (rc) {
				lc_fail(&s->err, "connect_datagram_alloc", rc);
				break;
			}
			bench_stamp(connect_datagram_data(dg), s->size, seq);
		}
		rc = connect_send_wait(s->conn, dg, SEND_SLICE_MS);
		if (rc == CONNECT_OK) {
			dg = NULL;
			seq++;
		} else if (rc != CONNECT_ETIMEDOUT) {
			if (!atomic_load(s->stop))
				lc_fail(&s->err, "connect_send_wait", rc);
			break;
		}
	}
	connect_datagram_free(dg);
	if (s->err.err[0])
		atomic_store(&s->failed, true);
	return NULL;
}

static int lc_tput(const struct bench_cell *c, struct bench_result *r,
		   int tr)
{
	connect_conn *client, *server;
	struct lc_sender s = { 0 };
	struct bench_meter m;
	atomic_bool stop = false;
	pthread_t tid;
	uint64_t expect = 0;

	if (lc_connect(r, c, tr, 1, 0, &client, &server))
		goto out;
	s.conn = client;
	s.size = c->size;
	s.stop = &stop;
	atomic_init(&s.failed, false);
	if (bench_thread(lc_send_main, &s, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	bench_meter_init(&m, c);
	for (;;) {
		connect_datagram *dg;
		int rc = connect_recv_wait(server, &dg, RECV_SLICE_MS);

		if (rc == CONNECT_ETIMEDOUT) {
			if (atomic_load(&s.failed) || bench_meter_idle(&m, r))
				break;
			continue;
		}
		if (rc) {
			lc_fail(r, "connect_recv_wait", rc);
			break;
		}
		rc = bench_check(r, connect_datagram_data(dg),
				 connect_datagram_size(dg), c->size, expect++);
		connect_datagram_free(dg);
		if (rc || bench_meter_tick(&m, c->size))
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	if (s.err.err[0])
		bench_fail(r, "sender: %s", s.err.err);
	bench_meter_result(&m, r);
out:
	lc_close_all(&client, 1);
	lc_close_all(&server, 1);
	lc_sctp_stopped(r, tr);
	return r->err[0] ? -1 : 0;
}

/* ---- round trip ----------------------------------------------------------- */

struct lc_echo {
	connect_conn *conn;
	atomic_bool *stop;
	struct bench_result err;
};

static void *lc_echo_main(void *arg)
{
	struct lc_echo *e = arg;

	while (!atomic_load_explicit(e->stop, memory_order_relaxed)) {
		connect_datagram *dg;
		int rc = connect_recv_wait(e->conn, &dg, RECV_SLICE_MS);

		if (rc == CONNECT_ETIMEDOUT)
			continue;
		if (rc == CONNECT_OK)
			rc = connect_send(e->conn, dg);
		if (rc) {
			if (!atomic_load(e->stop))
				lc_fail(&e->err, "echo", rc);
			break;
		}
	}
	return NULL;
}

static int lc_lat(const struct bench_cell *c, struct bench_result *r,
		  int tr)
{
	connect_conn *client, *server;
	struct lc_echo e = { 0 };
	struct bench_lat l;
	atomic_bool stop = false;
	pthread_t tid;
	uint64_t seq = 0;

	bench_lat_init(&l, c);
	if (lc_connect(r, c, tr, 1, 0, &client, &server))
		goto out;
	e.conn = server;
	e.stop = &stop;
	if (bench_thread(lc_echo_main, &e, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	for (;; seq++) {
		connect_datagram *dg, *back;
		uint64_t t0, t1;
		int rc = connect_datagram_alloc(&dg, 1, c->size);

		if (rc) {
			lc_fail(r, "connect_datagram_alloc", rc);
			break;
		}
		bench_stamp(connect_datagram_data(dg), c->size, seq);
		t0 = bench_now();
		rc = connect_send(client, dg);
		if (rc) {
			connect_datagram_free(dg);
			lc_fail(r, "connect_send", rc);
			break;
		}
		rc = connect_recv_wait(client, &back, LAT_TIMEOUT_MS);
		t1 = bench_now();
		if (rc) {
			lc_fail(r, "connect_recv_wait", rc);
			break;
		}
		rc = bench_check(r, connect_datagram_data(back),
				 connect_datagram_size(back), c->size, seq);
		connect_datagram_free(back);
		if (rc || bench_lat_add(&l, t1 - t0, t1))
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	if (e.err.err[0])
		bench_fail(r, "echo thread: %s", e.err.err);
	bench_lat_result(&l, r);
out:
	free(l.v);
	lc_close_all(&client, 1);
	lc_close_all(&server, 1);
	lc_sctp_stopped(r, tr);
	return r->err[0] ? -1 : 0;
}

/* ---- many connections --------------------------------------------------------- */

struct lc_msender {
	connect_conn **conns;
	int first, n; /* conns[first .. first+n) */
	size_t size;
	atomic_bool *stop;
	atomic_bool failed;
	struct bench_result err;
};

static void *lc_msend_main(void *arg)
{
	struct lc_msender *s = arg;
	connect_datagram **pend = calloc((size_t)s->n, sizeof(*pend));
	uint64_t *seq = calloc((size_t)s->n, sizeof(*seq));
	struct pollfd *pfd = calloc((size_t)s->n, sizeof(*pfd));
	int i, rc;

	if (!pend || !seq || !pfd) {
		bench_fail(&s->err, "out of memory");
		goto out;
	}
	for (i = 0; i < s->n; i++) {
		pfd[i].fd = connect_conn_send_fd(s->conns[s->first + i]);
		pfd[i].events = POLLIN;
	}
	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		int progress = 0;

		for (i = 0; i < s->n; i++) {
			connect_conn *conn = s->conns[s->first + i];

			/* Up to 64 per connection per pass, fair to all. */
			for (int k = 0; k < 64; k++) {
				if (!pend[i]) {
					rc = connect_datagram_alloc(&pend[i], 1,
								    s->size);
					if (rc) {
						lc_fail(&s->err, "alloc", rc);
						goto out;
					}
					uint8_t *p =
						connect_datagram_data(pend[i]);
					bench_stamp(p, s->size, seq[i]);
					bench_stamp_id(p, (uint32_t)(s->first +
								     i));
				}
				rc = connect_send(conn, pend[i]);
				if (rc == CONNECT_EAGAIN)
					break;
				if (rc) {
					if (!atomic_load(s->stop))
						lc_fail(&s->err, "connect_send",
							rc);
					goto out;
				}
				pend[i] = NULL;
				seq[i]++;
				progress++;
			}
		}
		if (!progress)
			poll(pfd, (nfds_t)s->n, 10);
	}
out:
	if (pend)
		for (i = 0; i < s->n; i++)
			connect_datagram_free(pend[i]);
	free(pend);
	free(seq);
	free(pfd);
	if (s->err.err[0])
		atomic_store(&s->failed, true);
	return NULL;
}

static int lc_many(const struct bench_cell *c, struct bench_result *r,
		   int tr)
{
	int n = c->conns, nt = n < MANY_THREADS ? n : MANY_THREADS;
	connect_conn **client = calloc((size_t)n, sizeof(*client));
	connect_conn **server = calloc((size_t)n, sizeof(*server));
	uint64_t *expect = calloc((size_t)n, sizeof(*expect));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	struct lc_msender s[MANY_THREADS];
	pthread_t tid[MANY_THREADS];
	int started = 0, i;
	atomic_bool stop = false;
	struct bench_meter m;
	int64_t q = bench_many_queue_bytes(n);

	if (!client || !server || !expect || !pfd) {
		bench_fail(r, "out of memory");
		goto out;
	}
	if (lc_connect(r, c, tr, n, q, client, server))
		goto out;
	for (i = 0; i < n; i++) {
		pfd[i].fd = connect_conn_fd(server[i]);
		pfd[i].events = POLLIN;
	}
	for (i = 0; i < nt; i++) {
		s[i] = (struct lc_msender){ .conns = client,
					    .first = i * n / nt,
					    .n = (i + 1) * n / nt - i * n / nt,
					    .size = c->size,
					    .stop = &stop };
		atomic_init(&s[i].failed, false);
		if (bench_thread(lc_msend_main, &s[i], &tid[i])) {
			bench_fail(r, "pthread_create");
			break;
		}
		started++;
	}
	bench_meter_init(&m, c);
	while (!r->err[0]) {
		int got = 0;

		for (i = 0; i < n; i++) {
			for (int k = 0; k < 256; k++) {
				connect_datagram *dg;
				const uint8_t *p;
				int rc = connect_recv(server[i], &dg);

				if (rc == CONNECT_EAGAIN)
					break;
				if (rc) {
					lc_fail(r, "connect_recv", rc);
					goto done;
				}
				p = connect_datagram_data(dg);
				rc = bench_check(r, p, connect_datagram_size(dg),
						 c->size, expect[i]++);
				if (!rc && bench_id(p) != (uint32_t)i)
					bench_fail(r, "connection %d: a "
						   "message of sender %u", i,
						   bench_id(p));
				connect_datagram_free(dg);
				got++;
				if (r->err[0])
					goto done;
				if (bench_meter_tick(&m, c->size))
					goto done;
			}
		}
		if (!got) {
			for (i = 0; i < started; i++)
				if (atomic_load(&s[i].failed))
					goto done;
			poll(pfd, (nfds_t)n, RECV_SLICE_MS);
			if (bench_meter_idle(&m, r))
				goto done;
		}
	}
done:
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	for (i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		if (s[i].err.err[0])
			bench_fail(r, "sender %d: %s", i, s[i].err.err);
	}
	bench_meter_result(&m, r);
out:
	if (client)
		lc_close_all(client, n);
	if (server)
		lc_close_all(server, n);
	lc_sctp_stopped(r, tr);
	free(client);
	free(server);
	free(expect);
	free(pfd);
	return r->err[0] ? -1 : 0;
}

/*
 * The same senders into an inbox (connect_inbox_new), the library's own way
 * of receiving from many connections in one place: the accepted
 * connections are attached to it, and the receiving thread pops their
 * datagrams with connect_inbox_pop_wait().  The inbox may hold as much as
 * all the connections' queues of lc_many() together.
 */
static int lc_inbox(const struct bench_cell *c, struct bench_result *r)
{
	int n = c->conns, nt = n < MANY_THREADS ? n : MANY_THREADS;
	connect_conn **client = calloc((size_t)n, sizeof(*client));
	connect_conn **server = calloc((size_t)n, sizeof(*server));
	uint64_t *expect = calloc((size_t)n, sizeof(*expect));
	struct lc_msender s[MANY_THREADS];
	pthread_t tid[MANY_THREADS];
	int started = 0, i, rc;
	atomic_bool stop = false;
	struct bench_meter m;
	connect_inbox *ib = NULL;
	connect_opts *io = NULL;
	int64_t q = bench_many_queue_bytes(n);

	if (!client || !server || !expect) {
		bench_fail(r, "out of memory");
		goto out;
	}
	if (lc_connect(r, c, LC_TCP, n, q, client, server))
		goto out;
	rc = connect_opts_new(&io);
	if (!rc)
		rc = connect_opts_set(io, CONNECT_OPT_INBOX_BYTES, q * n);
	if (!rc)
		rc = connect_inbox_new(&ib, 0, io);
	if (rc) {
		lc_fail(r, "connect_inbox_new", rc);
		goto out;
	}
	for (i = 0; i < n; i++) {
		/* The user pointer says which connection an item is from. */
		connect_conn_set_user(server[i], &expect[i]);
		rc = connect_conn_attach(server[i], ib);
		if (rc) {
			lc_fail(r, "connect_conn_attach", rc);
			goto out;
		}
		/* It belongs to the inbox now, which closes it. */
		server[i] = NULL;
	}
	for (i = 0; i < nt; i++) {
		s[i] = (struct lc_msender){ .conns = client,
					    .first = i * n / nt,
					    .n = (i + 1) * n / nt - i * n / nt,
					    .size = c->size,
					    .stop = &stop };
		atomic_init(&s[i].failed, false);
		if (bench_thread(lc_msend_main, &s[i], &tid[i])) {
			bench_fail(r, "pthread_create");
			break;
		}
		started++;
	}
	bench_meter_init(&m, c);
	while (!r->err[0]) {
		connect_item it;
		uint64_t *e;
		const uint8_t *p;

		rc = connect_inbox_pop_wait(ib, &it, RECV_SLICE_MS);
		if (rc == CONNECT_ETIMEDOUT) {
			for (i = 0; i < started; i++)
				if (atomic_load(&s[i].failed))
					goto done;
			if (bench_meter_idle(&m, r))
				break;
			continue;
		}
		if (rc) {
			lc_fail(r, "connect_inbox_pop_wait", rc);
			break;
		}
		e = it.user;
		if (it.kind == CONNECT_ITEM_END) {
			lc_fail(r, "a connection ended", it.code);
		} else if (it.kind == CONNECT_ITEM_DATAGRAM) {
			p = connect_datagram_data(it.dg);
			if (!bench_check(r, p, connect_datagram_size(it.dg),
					 c->size, (*e)++) &&
			    bench_id(p) != (uint32_t)(e - expect))
				bench_fail(r, "connection %d: a message of "
					   "sender %u", (int)(e - expect),
					   bench_id(p));
			connect_datagram_free(it.dg);
			if (!r->err[0] && bench_meter_tick(&m, c->size)) {
				connect_item_done(&it);
				break;
			}
		}
		connect_item_done(&it);
	}
done:
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	for (i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		if (atomic_load(&s[i].failed))
			bench_fail(r, "sender %d: %s", i, s[i].err.err);
	}
	bench_meter_result(&m, r);
out:
	if (client)
		lc_close_all(client, n);
	if (ib)
		connect_inbox_close(ib, 0, NULL);
	/* The ones never attached (a failure on the way) are still ours. */
	if (server)
		lc_close_all(server, n);
	connect_opts_free(io);
	free(client);
	free(server);
	free(expect);
	return r->err[0] ? -1 : 0;
}

/* One function per system and measure. */
#define LC_FN(name, fn, tr)                                             \
	static int name(const struct bench_cell *c, struct bench_result *r) \
	{                                                               \
		return fn(c, r, tr);                                    \
	}

LC_FN(lc_tcp_tput, lc_tput, LC_TCP)
LC_FN(lc_tcp_lat, lc_lat, LC_TCP)
LC_FN(lc_tcp_many, lc_many, LC_TCP)
LC_FN(lc_tls_tput, lc_tput, LC_TLS)
LC_FN(lc_tls_lat, lc_lat, LC_TLS)
#ifdef HAVE_USRSCTP
LC_FN(lc_sctp_tput, lc_tput, LC_SCTP)
LC_FN(lc_sctp_lat, lc_lat, LC_SCTP)
LC_FN(lc_sctp_many, lc_many, LC_SCTP)
LC_FN(lc_dtls_tput, lc_tput, LC_DTLS_SCTP)
LC_FN(lc_dtls_lat, lc_lat, LC_DTLS_SCTP)
#endif

static const struct bench_system lc_systems[] = {
	{ "connect-tcp", "libconnect TCP", BS_CONNECT_TCP,
	  { lc_tcp_tput, lc_tcp_lat, lc_tcp_many }, NULL, 0 },
	{ "connect-tls", "libconnect TLS", BS_CONNECT_TLS,
	  { lc_tls_tput, lc_tls_lat, NULL }, NULL, 0 },
	{ "connect-inbox", "libconnect TCP inbox", BS_CONNECT_INBOX,
	  { NULL, NULL, lc_inbox },
	  "many: the receiver pops from one inbox", 0 },
#ifdef HAVE_USRSCTP
	/* Short cells (0.3 of --duration and --warmup): the SCTP rows
	 * would add 6 minutes to a full run at full length (each cell also
	 * stops the stack, 0.1-0.4 s in usrsctp_finish), about 3 so. */
	{ "connect-sctp", "libconnect SCTP", BS_CONNECT_SCTP,
	  { lc_sctp_tput, lc_sctp_lat, lc_sctp_many },
	  "cells of 0.3 x the duration", 0.3 },
	{ "connect-dtls-sctp", "libconnect DTLS-SCTP", BS_CONNECT_DTLS_SCTP,
	  { lc_dtls_tput, lc_dtls_lat, NULL },
	  "DTLS 1.2; cells of 0.3 x the duration", 0.3 },
#endif
};

const struct bench_system *bench_connect_systems(size_t *n)
{
	*n = sizeof(lc_systems) / sizeof(lc_systems[0]);
	return lc_systems;
}
