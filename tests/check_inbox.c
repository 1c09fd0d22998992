/*
 * Inboxes: many connections into one queue, a pool of workers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The server side of most tests is a listener feeding an inbox and a pool
 * of worker threads that echo every datagram (struct srv); the clients
 * are ordinary connections on the test's thread, with sequence numbers in
 * every datagram.  Workers never assert: they record the first thing that
 * went wrong, and the test checks it after joining them.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

#define MAX_WORKERS 8
#define MAX_SESSIONS 512

/* ---------------------------------------------------------------------- */
/* A worker-pool echo server                                               */
/* ---------------------------------------------------------------------- */

struct session {
	struct srv *srv;
	uint32_t expect;     /* strand mode: the next sequence number */
	_Atomic uint64_t got; /* datagrams handed out */
	_Atomic int end;     /* the END item's code, or 0 */
	_Atomic int attached;
};

struct srv {
	connect_listener *l;
	connect_inbox *ib;
	int port;
	bool strand, echo;
	int nworkers;
	pthread_t th[MAX_WORKERS];
	struct session sess[MAX_SESSIONS];
	_Atomic int nsess;
	_Atomic int attached, ended, ended_eof;
	_Atomic uint64_t dgrams;
	_Atomic int hold_ms; /* each worker sleeps this long per datagram */
	pthread_mutex_t lock;
	char err[256]; /* the first error, under lock */
};

static void srv_fail(struct srv *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void srv_fail(struct srv *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!s->err[0]) {
		va_start(ap, fmt);
		vsnprintf(s->err, sizeof(s->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->lock);
}

static void worker_item(struct srv *s, connect_item *it)
{
	struct session *ss = it->user;

	switch (it->kind) {
	case CONNECT_ITEM_ATTACHED: {
		int i = atomic_fetch_add(&s->nsess, 1);

		if (ss)
			srv_fail(s, "ATTACHED with a user pointer already");
		if (i >= MAX_SESSIONS) {
			srv_fail(s, "too many sessions");
			break;
		}
		s->sess[i].srv = s;
		atomic_store(&s->sess[i].attached, 1);
		connect_conn_set_user(it->conn, &s->sess[i]);
		atomic_fetch_add(&s->attached, 1);
		break;
	}
	case CONNECT_ITEM_DATAGRAM:
		if (!ss || ss->srv != s) {
			srv_fail(s, "a datagram without its session");
			connect_datagram_free(it->dg);
			break;
		}
		if (s->strand) {
			uint32_t seq = dg_seq(it->dg);

			if (seq != ss->expect)
				srv_fail(s, "strand: seq %u, expected %u", seq,
					 ss->expect);
			ss->expect = seq + 1;
		}
		if (atomic_load(&ss->end))
			srv_fail(s, "a datagram after the END item");
		atomic_fetch_add(&ss->got, 1);
		atomic_fetch_add(&s->dgrams, 1);
		if (atomic_load(&s->hold_ms))
			sleep_ms(atomic_load(&s->hold_ms));
		if (s->echo) {
			int rc = connect_send(it->conn, it->dg);

			if (rc != CONNECT_OK) {
				connect_datagram_free(it->dg);
				if (rc != CONNECT_ECLOSED &&
				    rc != CONNECT_ECONNRESET && rc != CONNECT_EIO)
					srv_fail(s, "echo: %s",
						 connect_err_name(rc));
			}
		} else {
			connect_datagram_free(it->dg);
		}
		break;
	case CONNECT_ITEM_END:
		if (!ss) {
			srv_fail(s, "END without its session");
			break;
		}
		if (it->code == 0)
			srv_fail(s, "END with code 0");
		atomic_store(&ss->end, it->code);
		atomic_fetch_add(&s->ended, 1);
		if (it->code == CONNECT_EEOF)
			atomic_fetch_add(&s->ended_eof, 1);
		break;
	default:
		srv_fail(s, "unknown item kind %d", it->kind);
	}
	if (it->dg && it->kind != CONNECT_ITEM_DATAGRAM)
		srv_fail(s, "an event with a datagram");
}

static void *worker_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		connect_item it;
		int rc = connect_inbox_pop_wait(s->ib, &it, scaled_ms(60000));

		if (rc == CONNECT_ECLOSED)
			break;
		if (rc != CONNECT_OK) {
			srv_fail(s, "pop: %s", connect_err_name(rc));
			break;
		}
		if (!it.conn)
			srv_fail(s, "an item without its connection");
		worker_item(s, &it);
		connect_item_done(&it);
		if (it.conn)
			srv_fail(s, "connect_item_done left the item set");
	}
	return NULL;
}

static struct srv *srv_start(int t, unsigned flags, int nworkers,
			     const connect_opts *iopts,
			     const connect_opts *lopts)
{
	struct srv *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	pthread_mutex_init(&s->lock, NULL);
	s->strand = flags & CONNECT_INBOX_STRAND;
	s->echo = true;
	s->nworkers = nworkers;
	ck_assert_int_eq(connect_inbox_new(&s->ib, flags, iopts), CONNECT_OK);
	s->l = t_listen_ok(t, lopts);
	s->port = connect_listener_port(s->l);
	ck_assert_int_eq(connect_listener_set_inbox(s->l, s->ib), CONNECT_OK);
	for (int i = 0; i < nworkers; i++)
		ck_assert_int_eq(
			pthread_create(&s->th[i], NULL, worker_main, s), 0);
	return s;
}

/* Close listener and inbox, join the workers; fail on a worker's error. */
static void srv_stop(struct srv *s, size_t *dropped)
{
	int rc;

	connect_listener_close(s->l);
	rc = connect_inbox_close(s->ib, scaled_ms(2000), dropped);
	ck_assert_msg(rc != CONNECT_EINVAL, "inbox close: %s",
		      connect_err_name(rc));
	for (int i = 0; i < s->nworkers; i++)
		ck_assert_msg(join_timeout(s->th[i], NULL, scaled_ms(10000)) ==
				      0,
			      "worker %d did not end after the inbox closed",
			      i);
	ck_assert_msg(!s->err[0], "worker: %s", s->err);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static bool srv_attached(void *arg)
{
	struct srv *s = ((void **)arg)[0];
	int want = (int)(intptr_t)((void **)arg)[1];

	return atomic_load(&s->attached) >= want;
}

static bool srv_ended(void *arg)
{
	struct srv *s = ((void **)arg)[0];
	int want = (int)(intptr_t)((void **)arg)[1];

	return atomic_load(&s->ended) >= want;
}

static void wait_attached(struct srv *s, int n)
{
	void *a[2] = { s, (void *)(intptr_t)n };

	ck_assert_msg(wait_for(srv_attached, a, scaled_ms(10000)),
		      "%d of %d connections attached",
		      atomic_load(&s->attached), n);
}

static void wait_ended(struct srv *s, int n)
{
	void *a[2] = { s, (void *)(intptr_t)n };

	ck_assert_msg(wait_for(srv_ended, a, scaled_ms(10000)),
		      "%d of %d connections ended", atomic_load(&s->ended),
		      n);
}

static uint64_t inbox_stat(connect_inbox *ib, int stat)
{
	uint64_t v = 0;

	ck_assert_int_eq(connect_inbox_stat(ib, stat, &v), CONNECT_OK);
	return v;
}

/* ---------------------------------------------------------------------- */
/* Many connections, several workers                                       */
/* ---------------------------------------------------------------------- */

/*
 * N clients each send M numbered datagrams of varied sizes through one
 * inbox and several workers, and get every one back: exactly once each,
 * and in strand mode in order (the workers check the order they are
 * handed; the clients check the order of the echoes).  Every connection
 * gets one ATTACHED and, after its client closed, one END (CONNECT_EEOF),
 * after all its datagrams; then the inbox closes them and the threads go.
 */
static void many(int t, unsigned flags, int nworkers, int n, uint32_t m)
{
	struct srv *s = srv_start(t, flags, nworkers, NULL, NULL);
	connect_conn **c = calloc((size_t)n, sizeof(*c));
	uint8_t *seen = calloc((size_t)n * m, 1);
	size_t dropped = 99;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(seen);
	for (int i = 0; i < n; i++)
		c[i] = t_dial_ok(t, s->port, NULL);
	wait_attached(s, n);
	ck_assert_uint_eq(inbox_stat(s->ib, CONNECT_INBOX_STAT_CONNS),
			  (uint64_t)n);
	/* Interleave the clients so that the inbox sees them all at once. */
	for (uint32_t k = 0; k < m; k++)
		for (int i = 0; i < n; i++) {
			connect_datagram *dg =
				dg_make((uint16_t)i, k, 4 + (k * 37 + i) % 600);

			ck_assert_int_eq(connect_send(c[i], dg), CONNECT_OK);
		}
	for (int i = 0; i < n; i++)
		for (uint32_t k = 0; k < m; k++) {
			connect_datagram *dg = NULL;
			char why[128];
			int rc = connect_recv_wait(c[i], &dg, scaled_ms(20000));
			uint32_t seq;

			ck_assert_msg(rc == CONNECT_OK,
				      "client %d: echo %u of %u: %s", i, k, m,
				      connect_err_name(rc));
			seq = dg_seq(dg);
			ck_assert_msg(seq < m, "client %d: seq %u", i, seq);
			if (flags & CONNECT_INBOX_STRAND)
				ck_assert_msg(seq == k,
					      "client %d: echo %u is seq %u",
					      i, k, seq);
			ck_assert_msg(dg_check(dg, (uint16_t)i, seq,
					       4 + (seq * 37 + i) % 600, why,
					       sizeof(why)),
				      "client %d: %s", i, why);
			ck_assert_msg(!seen[(size_t)i * m + seq],
				      "client %d: seq %u twice", i, seq);
			seen[(size_t)i * m + seq] = 1;
			connect_datagram_free(dg);
		}
	ck_assert_uint_eq(atomic_load(&s->dgrams), (uint64_t)n * m);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(connect_close(c[i], scaled_ms(5000), NULL),
				 CONNECT_OK);
	wait_ended(s, n);
	ck_assert_int_eq(atomic_load(&s->ended_eof), n);
	ck_assert_int_eq(atomic_load(&s->attached), n);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(atomic_load(&s->sess[i].end), CONNECT_EEOF);
		ck_assert_uint_eq(atomic_load(&s->sess[i].got), m);
	}
	ck_assert_uint_eq(inbox_stat(s->ib, CONNECT_INBOX_STAT_ENDED),
			  (uint64_t)n);
	ck_assert_uint_eq(inbox_stat(s->ib, CONNECT_INBOX_STAT_ATTACHED),
			  (uint64_t)n);
	ck_assert_uint_eq(inbox_stat(s->ib, CONNECT_INBOX_STAT_QUEUED), 0);
	srv_stop(s, &dropped);
	ck_assert_uint_eq(dropped, 0);
	free(seen);
	free(c);
}

START_TEST(many_free)
{
	many(_i, 0, 4, 40, test_light() ? 50 : 300);
}
END_TEST

START_TEST(many_strand)
{
	many(_i, CONNECT_INBOX_STRAND, 4, 40, test_light() ? 50 : 300);
}
END_TEST

/* One worker, no strand: the hand-out order is the arrival order. */
START_TEST(one_worker_in_order)
{
	struct srv *s = srv_start(_i, 0, 1, NULL, NULL);
	const uint32_t m = test_light() ? 200 : 2000;
	connect_conn *c = t_dial_ok(_i, s->port, NULL);

	for (uint32_t k = 0; k < m; k++)
		ck_assert_int_eq(connect_send(c, dg_make(7, k, 16)),
				 CONNECT_OK);
	for (uint32_t k = 0; k < m; k++) {
		connect_datagram *dg = NULL;

		ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(10000)),
				 CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), k);
		connect_datagram_free(dg);
	}
	connect_close(c, scaled_ms(2000), NULL);
	wait_ended(s, 1);
	srv_stop(s, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Ends                                                                    */
/* ---------------------------------------------------------------------- */

/*
 * A client cut without a clean end (linger 0 with data in flight, which
 * resets) gives an END item with an error, never CONNECT_EEOF; the server
 * side is closed and its threads go.
 */
START_TEST(end_with_error)
{
	struct srv *s = srv_start(T_TCP4, 0, 2, NULL, NULL);
	connect_conn *c = t_dial_ok(T_TCP4, s->port, NULL);
	int fd = raw_dial(T_TCP4, s->port);
	uint8_t f[16];

	wait_attached(s, 2);
	/* The raw peer sends half a frame, then resets. */
	ck_assert(raw_send_all(fd, f, frame_put(f, 12, 1, 1, "abcdefgh", 8) -
					      3));
	{
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	wait_ended(s, 1);
	ck_assert_int_eq(atomic_load(&s->ended_eof), 0);
	/* The other connection is unharmed. */
	ck_assert_int_eq(connect_send(c, dg_make(1, 5, 10)), CONNECT_OK);
	{
		connect_datagram *dg = NULL;

		ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(5000)),
				 CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), 5);
		connect_datagram_free(dg);
	}
	for (int i = 0; i < 2; i++)
		if (atomic_load(&s->sess[i].end))
			ck_assert_msg(atomic_load(&s->sess[i].end) !=
					      CONNECT_EEOF,
				      "a reset reported as a clean end");
	connect_close(c, 0, NULL);
	wait_ended(s, 2);
	srv_stop(s, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Handles                                                                 */
/* ---------------------------------------------------------------------- */

struct closer_race {
	connect_conn *conn;
	_Atomic int go;
	int rc;
};

static void *close_main(void *arg)
{
	struct closer_race *r = arg;

	while (!atomic_load(&r->go))
		sched_yield();
	r->rc = connect_close(r->conn, 0, NULL);
	return NULL;
}

/*
 * A worker holds items of a connection and sends on it while another
 * thread closes it: the sends succeed, then say CONNECT_ECLOSED; nothing
 * touches freed memory (ASan, TSan in CI); a second close says
 * CONNECT_ECLOSED; the END item still comes.
 */
START_TEST(send_while_closed)
{
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(_i, NULL);
	connect_conn *c = t_dial_ok(_i, connect_listener_port(l), NULL);
	connect_item a, b, e;
	struct closer_race r = { 0 };
	pthread_t th;
	int rc = CONNECT_OK, sends = 0, end_seen = 0;

	ck_assert_int_eq(connect_inbox_new(&ib, 0, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &a, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(a.kind, CONNECT_ITEM_ATTACHED);
	ck_assert_int_eq(connect_send(c, dg_make(1, 0, 8)), CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &b, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(b.kind, CONNECT_ITEM_DATAGRAM);
	ck_assert_ptr_eq(a.conn, b.conn);
	connect_datagram_free(b.dg);
	r.conn = b.conn;
	ck_assert_int_eq(pthread_create(&th, NULL, close_main, &r), 0);
	atomic_store(&r.go, 1);
	for (int64_t end = now_ms() + scaled_ms(5000);
	     rc == CONNECT_OK && now_ms() < end; sends++) {
		connect_datagram *dg = dg_make(2, (uint32_t)sends, 64);

		rc = connect_send(b.conn, dg);
		if (rc != CONNECT_OK)
			connect_datagram_free(dg);
		if (rc == CONNECT_EAGAIN)
			rc = CONNECT_OK;
	}
	ck_assert_int_eq(join_timeout(th, NULL, scaled_ms(5000)), 0);
	ck_assert_msg(rc == CONNECT_ECLOSED, "send after close: %s",
		      connect_err_name(rc));
	/* The handle is still good memory: more calls say ECLOSED. */
	ck_assert_int_eq(connect_close(b.conn, 0, NULL), CONNECT_ECLOSED);
	{
		connect_datagram *dg = dg_make(3, 0, 8);

		ck_assert_int_eq(connect_send(a.conn, dg), CONNECT_ECLOSED);
		connect_datagram_free(dg);
	}
	connect_item_done(&a);
	connect_item_done(&b);
	connect_item_done(&b); /* done twice: ignored */
	/* The END item (CONNECT_ECLOSED: closed on this side). */
	while (!end_seen &&
	       connect_inbox_pop_wait(ib, &e, scaled_ms(5000)) == CONNECT_OK) {
		if (e.kind == CONNECT_ITEM_END) {
			end_seen = 1;
			ck_assert_int_eq(e.code, CONNECT_ECLOSED);
		} else if (e.dg) {
			connect_datagram_free(e.dg);
		}
		connect_item_done(&e);
	}
	ck_assert(end_seen);
	connect_close(c, 0, NULL);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Closing the inbox                                                       */
/* ---------------------------------------------------------------------- */

struct waiter {
	connect_inbox *ib;
	pthread_t th;
	_Atomic int in;
	int rc;
	int64_t t;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;
	connect_item it;

	atomic_store(&w->in, 1);
	w->rc = connect_inbox_pop_wait(w->ib, &it, -1);
	w->t = now_ms();
	if (w->rc == CONNECT_OK)
		connect_item_done(&it);
	return NULL;
}

static bool waiters_in(void *arg)
{
	struct waiter *w = arg;

	for (int i = 0; i < 4; i++)
		if (!atomic_load(&w[i].in))
			return false;
	return true;
}

/* Workers waiting without a time limit all wake when the inbox closes,
 * with CONNECT_ECLOSED; the clients' connections are closed by it. */
START_TEST(close_wakes_workers)
{
	struct waiter w[4];
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c;
	connect_datagram *dg = NULL;
	connect_item it;
	int64_t t0;

	ck_assert_int_eq(connect_inbox_new(&ib, CONNECT_INBOX_STRAND, NULL),
			 CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	c = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
	connect_item_done(&it);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 4; i++) {
		w[i].ib = ib;
		ck_assert_int_eq(pthread_create(&w[i].th, NULL, wait_main,
						&w[i]),
				 0);
	}
	ck_assert(wait_for(waiters_in, w, scaled_ms(5000)));
	sleep_ms(100);
	connect_listener_close(l);
	t0 = now_ms();
	ck_assert_int_eq(connect_inbox_close(ib, scaled_ms(1000), NULL),
			 CONNECT_OK);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(join_timeout(w[i].th, NULL, scaled_ms(5000)),
				 0);
		ck_assert_int_eq(w[i].rc, CONNECT_ECLOSED);
		ck_assert_int_lt(w[i].t - t0, scaled_ms(2000));
	}
	/* The server side was closed cleanly: the client sees the end. */
	ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(5000)),
			 CONNECT_EEOF);
	connect_close(c, 0, NULL);
}
END_TEST

/*
 * Closing the inbox with datagrams never popped: they are counted, not
 * silently lost; connections are closed all at once.
 */
START_TEST(close_counts_undelivered)
{
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c[3];
	connect_item it;
	size_t dropped = 0;

	ck_assert_int_eq(connect_inbox_new(&ib, 0, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	for (int i = 0; i < 3; i++) {
		c[i] = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
		for (uint32_t k = 0; k < 10; k++)
			ck_assert_int_eq(connect_send(c[i], dg_make(1, k, 32)),
					 CONNECT_OK);
	}
	for (int64_t end = now_ms() + scaled_ms(5000);
	     inbox_stat(ib, CONNECT_INBOX_STAT_QUEUED) < 30 && now_ms() < end;)
		sleep_ms(5);
	ck_assert_uint_eq(inbox_stat(ib, CONNECT_INBOX_STAT_QUEUED), 30);
	ck_assert_uint_eq(inbox_stat(ib, CONNECT_INBOX_STAT_QUEUED_BYTES),
			  30 * 32);
	/* Take one datagram; 29 stay. */
	do {
		ck_assert_int_eq(connect_inbox_pop(ib, &it), CONNECT_OK);
		if (it.dg)
			connect_datagram_free(it.dg);
		connect_item_done(&it);
	} while (inbox_stat(ib, CONNECT_INBOX_STAT_QUEUED) == 30);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, &dropped), CONNECT_OK);
	ck_assert_uint_eq(dropped, 29);
	for (int i = 0; i < 3; i++)
		connect_close(c[i], 0, NULL);
}
END_TEST

/*
 * The documented shutdown with a worker still holding an item (strand
 * mode) while other connections' tokens wait on the ready queue: the
 * inbox closes them all, and the held item, given back afterwards, touches
 * nothing freed (ASan in CI).
 */
START_TEST(close_while_held)
{
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c[3];
	connect_item held, it;
	int got = 0;

	ck_assert_int_eq(connect_inbox_new(&ib, CONNECT_INBOX_STRAND, NULL),
			 CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	for (int i = 0; i < 3; i++)
		c[i] = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	/* Take the three ATTACHED items. */
	while (got < 3 &&
	       connect_inbox_pop_wait(ib, &it, scaled_ms(5000)) == CONNECT_OK) {
		ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
		connect_item_done(&it);
		got++;
	}
	ck_assert_int_eq(got, 3);
	for (int i = 0; i < 3; i++)
		for (uint32_t k = 0; k < 3; k++)
			ck_assert_int_eq(connect_send(c[i], dg_make(1, k, 8)),
					 CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &held, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(held.kind, CONNECT_ITEM_DATAGRAM);
	for (int64_t end = now_ms() + scaled_ms(5000);
	     inbox_stat(ib, CONNECT_INBOX_STAT_QUEUED) < 8 && now_ms() < end;)
		sleep_ms(2);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
	/* After the close: the held item still names good memory. */
	ck_assert_int_eq(connect_send(held.conn, held.dg), CONNECT_ECLOSED);
	connect_datagram_free(held.dg);
	connect_item_done(&held);
	for (int i = 0; i < 3; i++)
		connect_close(c[i], 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Flow control                                                            */
/* ---------------------------------------------------------------------- */

/*
 * Strand mode with a small inbox bound: a worker holds an item of X while
 * X's backlog fills the inbox; Y's datagram must still come (a reader
 * whose own queue is empty never waits for the inbox's room).
 */
START_TEST(full_inbox_no_deadlock)
{
	connect_opts *io = opts_make(CONNECT_OPT_INBOX_MSGS, 4, 0, 0, 0, 0);
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *x, *y;
	connect_item it, held;
	int rc;

	ck_assert_int_eq(connect_inbox_new(&ib, CONNECT_INBOX_STRAND, io),
			 CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	x = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
	connect_item_done(&it);
	y = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
	connect_item_done(&it);
	for (uint32_t k = 0; k < 50; k++)
		ck_assert_int_eq(connect_send(x, dg_make(1, k, 16)),
				 CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &held, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(held.kind, CONNECT_ITEM_DATAGRAM);
	sleep_ms(scaled_ms(200)); /* X's backlog fills the inbox */
	ck_assert_int_eq(connect_send(y, dg_make(2, 7, 16)), CONNECT_OK);
	rc = connect_inbox_pop_wait(ib, &it, scaled_ms(5000));
	ck_assert_msg(rc == CONNECT_OK, "Y's datagram: %s",
		      connect_err_name(rc));
	ck_assert_int_eq(it.kind, CONNECT_ITEM_DATAGRAM);
	ck_assert_uint_eq(connect_datagram_tag(it.dg), 2);
	connect_datagram_free(it.dg);
	connect_item_done(&it);
	connect_datagram_free(held.dg);
	connect_item_done(&held);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
	connect_close(x, 0, NULL);
	connect_close(y, 0, NULL);
	connect_opts_free(io);
}
END_TEST

/*
 * A TLS listener feeding an inbox of one connection: the next clients
 * wait (their handshakes too: no place reserved, no handshake) and are
 * served in turn once the first leaves, none dropped.
 */
struct late_client {
	int port;
	pthread_t th;
	int rc;
};

static void *late_main(void *arg)
{
	struct late_client *lc = arg;
	connect_conn *c = NULL;
	connect_datagram *dg = NULL;

	lc->rc = t_dial(T_TLS, lc->port, NULL, &c);
	if (lc->rc != CONNECT_OK)
		return NULL;
	dg = dg_make_nocheck(1, 77, 9);
	lc->rc = dg ? connect_send(c, dg) : CONNECT_ENOMEM;
	if (lc->rc == CONNECT_OK) {
		lc->rc = connect_recv_wait(c, &dg, scaled_ms(20000));
		if (lc->rc == CONNECT_OK) {
			if (dg_seq(dg) != 77)
				lc->rc = -1000;
			connect_datagram_free(dg);
		}
	}
	connect_close(c, scaled_ms(1000), NULL);
	return NULL;
}

START_TEST(tls_connection_limit)
{
	connect_opts *io =
		opts_make(CONNECT_OPT_INBOX_MAX_CONNS, 1, 0, 0, 0, 0);
	struct srv *s = srv_start(T_TLS, 0, 2, io, NULL);
	struct late_client lc[2];
	connect_conn *c = t_dial_ok(T_TLS, s->port, NULL);
	connect_datagram *dg = NULL;

	wait_attached(s, 1);
	for (int i = 0; i < 2; i++) {
		lc[i] = (struct late_client){ .port = s->port };
		ck_assert_int_eq(pthread_create(&lc[i].th, NULL, late_main,
						&lc[i]),
				 0);
	}
	sleep_ms(scaled_ms(300));
	ck_assert_int_eq(atomic_load(&s->attached), 1);
	ck_assert_int_eq(connect_send(c, dg_make(1, 5, 9)), CONNECT_OK);
	ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(5000)),
			 CONNECT_OK);
	connect_datagram_free(dg);
	connect_close(c, scaled_ms(1000), NULL);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(join_timeout(lc[i].th, NULL, scaled_ms(30000)),
				 0);
		ck_assert_msg(lc[i].rc == CONNECT_OK, "late client %d: %s", i,
			      connect_err_name(lc[i].rc));
	}
	wait_ended(s, 3);
	ck_assert_int_eq(connect_listener_tls_failures(s->l, NULL, NULL, 0),
			 0);
	srv_stop(s, NULL);
	connect_opts_free(io);
}
END_TEST

/*
 * An inbox bounded to 100 datagrams: with no worker, the readers stop
 * (the inbox holds at most the bound plus one read), the client's data
 * waits in the socket buffers and its queue; with the worker started,
 * everything arrives, in order.
 */
START_TEST(full_inbox_stops_readers)
{
	connect_opts *io = opts_make(CONNECT_OPT_INBOX_MSGS, 100, 0, 0, 0, 0);
	struct srv *s;
	connect_conn *c;
	const uint32_t m = test_light() ? 2000 : 10000;
	uint64_t q1, q2;

	s = srv_start(T_TCP4, CONNECT_INBOX_STRAND, 0, io, NULL);
	c = t_dial_ok(T_TCP4, s->port, NULL);
	for (uint32_t k = 0; k < m; k++)
		ck_assert_int_eq(connect_send(c, dg_make(3, k, 1000)),
				 CONNECT_OK);
	sleep_ms(scaled_ms(300));
	q1 = inbox_stat(s->ib, CONNECT_INBOX_STAT_QUEUED);
	sleep_ms(scaled_ms(200));
	q2 = inbox_stat(s->ib, CONNECT_INBOX_STAT_QUEUED);
	/* One read is at most 64 KiB: 65 frames of 1008 bytes. */
	ck_assert_msg(q2 >= 100 && q2 <= 100 + 66,
		      "%llu datagrams in an inbox bounded to 100",
		      (unsigned long long)q2);
	ck_assert_uint_eq(q1, q2);
	/* Start the workers: everything comes, in order. */
	s->nworkers = 2;
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
			pthread_create(&s->th[i], NULL, worker_main, s), 0);
	for (uint32_t k = 0; k < m; k++) {
		connect_datagram *dg = NULL;

		ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(20000)),
				 CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), k);
		connect_datagram_free(dg);
	}
	connect_close(c, scaled_ms(2000), NULL);
	wait_ended(s, 1);
	srv_stop(s, NULL);
	connect_opts_free(io);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Limits                                                                  */
/* ---------------------------------------------------------------------- */

/*
 * CONNECT_OPT_INBOX_MAX_CONNS 3: of five clients, three are attached; the
 * others wait in the backlog and are attached as the first ones end.
 * connect_conn_attach() past the limit says CONNECT_ELIMIT.
 */
START_TEST(connection_limit)
{
	connect_opts *io =
		opts_make(CONNECT_OPT_INBOX_MAX_CONNS, 3, 0, 0, 0, 0);
	struct srv *s = srv_start(T_TCP4, 0, 2, io, NULL);
	connect_conn *c[5], *x, *y;
	connect_listener *l2;

	for (int i = 0; i < 5; i++)
		c[i] = t_dial_ok(T_TCP4, s->port, NULL);
	wait_attached(s, 3);
	sleep_ms(scaled_ms(200));
	ck_assert_int_eq(atomic_load(&s->attached), 3);
	ck_assert_uint_eq(inbox_stat(s->ib, CONNECT_INBOX_STAT_CONNS), 3);
	/* An attach by hand is refused too. */
	l2 = t_listen_ok(T_TCP4, NULL);
	x = t_dial_ok(T_TCP4, connect_listener_port(l2), NULL);
	y = t_accept_ok(l2, scaled_ms(5000));
	ck_assert_int_eq(connect_conn_attach(y, s->ib), CONNECT_ELIMIT);
	/* Two clients leave: the two waiting ones come in. */
	connect_close(c[0], 0, NULL);
	connect_close(c[1], 0, NULL);
	wait_attached(s, 5);
	/* Echo works on the late ones. */
	for (int i = 3; i < 5; i++) {
		connect_datagram *dg = NULL;

		ck_assert_int_eq(connect_send(c[i], dg_make(1, 9, 9)),
				 CONNECT_OK);
		ck_assert_int_eq(connect_recv_wait(c[i], &dg, scaled_ms(5000)),
				 CONNECT_OK);
		connect_datagram_free(dg);
	}
	for (int i = 2; i < 5; i++)
		connect_close(c[i], 0, NULL);
	wait_ended(s, 5);
	connect_close(x, 0, NULL);
	connect_close(y, 0, NULL);
	connect_listener_close(l2);
	srv_stop(s, NULL);
	connect_opts_free(io);
}
END_TEST

/*
 * Out of descriptors: the listener feeding the inbox cannot accept; it
 * keeps running, and attaches again once descriptors are free; the
 * attached connection is unharmed.
 */
START_TEST(out_of_descriptors)
{
	struct srv *s = srv_start(T_TCP4, 0, 2, NULL, NULL);
	struct rlimit old, low;
	connect_conn *c, *c2 = NULL;
	connect_datagram *dg = NULL;
	int fds[64], n = 0, rc, raw;

	c = t_dial_ok(T_TCP4, s->port, NULL);
	wait_attached(s, 1);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Room for one raw client socket, none for the accept. */
	low = old;
	low.rlim_cur = (rlim_t)dup(0) + 2;
	close((int)low.rlim_cur - 2);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fds[n] = dup(0)) >= 0)
		n++;
	close(fds[--n]);
	raw = raw_dial(T_TCP4, s->port); /* the kernel completes it */
	sleep_ms(scaled_ms(300));
	ck_assert_int_eq(atomic_load(&s->attached), 1);
	while (n > 0)
		close(fds[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* The waiting client is attached now (or, where the accept got the
	 * last descriptor and the connection could not be set up, dropped:
	 * valgrind keeps descriptors of its own), and a new one too. */
	for (int64_t end = now_ms() + scaled_ms(10000);
	     atomic_load(&s->attached) < 2 && now_ms() < end;) {
		struct pollfd p = { raw, POLLIN, 0 };
		char b;

		if (poll(&p, 1, 20) == 1 && recv(raw, &b, 1, MSG_DONTWAIT) <= 0)
			break; /* dropped */
	}
	n = atomic_load(&s->attached);
	ck_assert_msg(n >= 1 && n <= 2, "%d attached", n);
	c2 = t_dial_ok(T_TCP4, s->port, NULL);
	wait_attached(s, n + 1);
	rc = connect_send(c, dg_make(1, 1, 1));
	ck_assert_int_eq(rc, CONNECT_OK);
	ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(5000)),
			 CONNECT_OK);
	connect_datagram_free(dg);
	close(raw);
	connect_close(c, 0, NULL);
	connect_close(c2, 0, NULL);
	wait_ended(s, n + 1);
	srv_stop(s, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Attaching a running connection                                          */
/* ---------------------------------------------------------------------- */

/*
 * A connection that received ten datagrams, three of them taken by
 * connect_recv, is attached: the inbox hands ATTACHED, then the seven
 * others, then what comes later, in order; connect_recv* and
 * connect_conn_fd now say CONNECT_EATTACHED; the connection is the
 * inbox's now, which closes it after its END item.
 */
START_TEST(attach_running)
{
	connect_inbox *ib;
	connect_conn *c, *s;
	connect_item it;
	connect_datagram *dg = NULL;
	uint64_t q = 0;
	uint32_t k;
	int sentinel = 42;

	t_pair(_i, NULL, NULL, &c, &s);
	for (k = 0; k < 10; k++)
		ck_assert_int_eq(connect_send(c, dg_make(1, k, 20)),
				 CONNECT_OK);
	for (int64_t end = now_ms() + scaled_ms(5000); q < 10 &&
						       now_ms() < end;) {
		ck_assert_int_eq(connect_conn_stat(s, CONNECT_STAT_RECV_QUEUED,
						   &q),
				 CONNECT_OK);
		sleep_ms(2);
	}
	for (k = 0; k < 3; k++) {
		ck_assert_int_eq(connect_recv(s, &dg), CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), k);
		connect_datagram_free(dg);
	}
	connect_conn_set_user(s, &sentinel);
	ck_assert_int_eq(connect_inbox_new(&ib, CONNECT_INBOX_STRAND, NULL),
			 CONNECT_OK);
	ck_assert_int_eq(connect_conn_attach(s, ib), CONNECT_OK);
	ck_assert_int_eq(connect_conn_attach(s, ib), CONNECT_EINVAL);
	ck_assert_int_eq(connect_recv(s, &dg), CONNECT_EATTACHED);
	ck_assert_int_eq(connect_recv_wait(s, &dg, 10), CONNECT_EATTACHED);
	ck_assert_int_eq(connect_conn_fd(s), CONNECT_EATTACHED);
	for (k = 10; k < 20; k++)
		ck_assert_int_eq(connect_send(c, dg_make(1, k, 20)),
				 CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
	ck_assert_ptr_eq(it.conn, s);
	ck_assert_ptr_eq(it.user, &sentinel);
	connect_item_done(&it);
	for (k = 3; k < 20; k++) {
		ck_assert_int_eq(connect_inbox_pop_wait(ib, &it,
							scaled_ms(5000)),
				 CONNECT_OK);
		ck_assert_int_eq(it.kind, CONNECT_ITEM_DATAGRAM);
		ck_assert_uint_eq(dg_seq(it.dg), k);
		ck_assert_ptr_eq(it.user, &sentinel);
		/* Strand: the next one waits for this one. */
		ck_assert_int_eq(connect_inbox_pop(ib, &(connect_item){ 0 }),
				 CONNECT_EAGAIN);
		connect_datagram_free(it.dg);
		connect_item_done(&it);
	}
	ck_assert_int_eq(connect_close(c, scaled_ms(2000), NULL), CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, scaled_ms(5000)),
			 CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_END);
	ck_assert_int_eq(it.code, CONNECT_EEOF);
	connect_item_done(&it);
	ck_assert_int_eq(connect_inbox_pop_wait(ib, &it, 50),
			 CONNECT_ETIMEDOUT);
	/* The inbox closes it on its own thread (s may be gone now: it is
	 * not ours since the attach). */
	for (int64_t end = now_ms() + scaled_ms(5000);
	     inbox_stat(ib, CONNECT_INBOX_STAT_CONNS) +
			     inbox_stat(ib, CONNECT_INBOX_STAT_CLOSING) >
		     0 &&
	     now_ms() < end;)
		sleep_ms(2);
	ck_assert_uint_eq(inbox_stat(ib, CONNECT_INBOX_STAT_CONNS), 0);
	ck_assert_uint_eq(inbox_stat(ib, CONNECT_INBOX_STAT_CLOSING), 0);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The descriptor, the API's edges                                         */
/* ---------------------------------------------------------------------- */

START_TEST(inbox_fd)
{
	struct srv *s = srv_start(T_TCP4, 0, 0, NULL, NULL);
	connect_conn *c;
	connect_item it;
	int fd = connect_inbox_fd(s->ib);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect_inbox_fd(s->ib), fd);
	ck_assert_int_eq(fd_readable(fd, 50), 0);
	c = t_dial_ok(T_TCP4, s->port, NULL);
	ck_assert_int_eq(fd_readable(fd, scaled_ms(5000)), 1);
	ck_assert_int_eq(connect_inbox_pop(s->ib, &it), CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
	connect_item_done(&it);
	ck_assert_int_eq(fd_readable(fd, 50), 0);
	ck_assert_int_eq(connect_send(c, dg_make(1, 1, 100)), CONNECT_OK);
	ck_assert_int_eq(fd_readable(fd, scaled_ms(5000)), 1);
	ck_assert_int_eq(connect_inbox_pop(s->ib, &it), CONNECT_OK);
	ck_assert_int_eq(it.kind, CONNECT_ITEM_DATAGRAM);
	connect_datagram_free(it.dg);
	connect_item_done(&it);
	ck_assert_int_eq(fd_readable(fd, 50), 0);
	ck_assert_int_eq(connect_inbox_pop(s->ib, &it), CONNECT_EAGAIN);
	ck_assert_int_eq(connect_inbox_pop_wait(s->ib, &it, 30),
			 CONNECT_ETIMEDOUT);
	connect_close(c, 0, NULL);
	srv_stop(s, NULL);
}
END_TEST

START_TEST(api_edges)
{
	connect_inbox *ib = (connect_inbox *)0x1;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c;
	connect_item it = { 0 };
	uint64_t v;

	ck_assert_int_eq(connect_inbox_new(NULL, 0, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_new(&ib, 0x80, NULL), CONNECT_EINVAL);
	ck_assert_ptr_eq(ib, (connect_inbox *)0x1);
	ck_assert_int_eq(connect_inbox_new(&ib, 0, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_inbox_pop(NULL, &it), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_pop(ib, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_pop_wait(NULL, &it, 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_fd(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_stat(NULL, 1, &v), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_stat(ib, 99, &v), CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_stat(ib, 1, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_attach(NULL, ib), CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_set_inbox(NULL, ib),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_set_inbox(l, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_inbox_close(NULL, 0, NULL), CONNECT_EINVAL);
	connect_item_done(NULL);
	connect_item_done(&it);
	ck_assert_str_ne(connect_strerror(CONNECT_EATTACHED), "");
	ck_assert_str_eq(connect_err_name(CONNECT_ELIMIT), "CONNECT_ELIMIT");
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_EINVAL);
	ck_assert_int_eq(connect_accept(l, &c), CONNECT_EATTACHED);
	ck_assert_int_eq(connect_accept_wait(l, &c, 10), CONNECT_EATTACHED);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
}
END_TEST

/*
 * Connections accepted before the listener was given the inbox, waiting
 * for connect_accept(), go to the inbox too.
 */
START_TEST(accept_queue_moves)
{
	connect_inbox *ib;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c[2];
	connect_item it;
	int attached = 0;

	for (int i = 0; i < 2; i++)
		c[i] = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	ck_assert(fd_readable(connect_listener_fd(l), scaled_ms(5000)) == 1);
	sleep_ms(scaled_ms(100));
	ck_assert_int_eq(connect_inbox_new(&ib, 0, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_listener_set_inbox(l, ib), CONNECT_OK);
	while (attached < 2 &&
	       connect_inbox_pop_wait(ib, &it, scaled_ms(5000)) == CONNECT_OK) {
		ck_assert_int_eq(it.kind, CONNECT_ITEM_ATTACHED);
		attached++;
		connect_item_done(&it);
	}
	ck_assert_int_eq(attached, 2);
	connect_listener_close(l);
	ck_assert_int_eq(connect_inbox_close(ib, 0, NULL), CONNECT_OK);
	for (int i = 0; i < 2; i++)
		connect_close(c[i], 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */

static Suite *inbox_suite(void)
{
	Suite *s = suite_create("inbox");
	TCase *tc;

	/* Over TCP/IPv4, TCP/IPv6 and TLS: the rows of t_table. */
	tc = t_tcase(s, "many", 300);
	tcase_add_loop_test(tc, many_free, T_TCP4, T_TLS + 1);
	tcase_add_loop_test(tc, many_strand, T_TCP4, T_TLS + 1);
	tcase_add_loop_test(tc, one_worker_in_order, T_TCP4, T_TLS + 1);
	tc = t_tcase(s, "handles", 300);
	tcase_add_loop_test(tc, send_while_closed, T_TCP4, T_TLS + 1);
	tcase_add_loop_test(tc, attach_running, T_TCP4, T_TLS + 1);
	tc = t_tcase(s, "ends", 300);
	tcase_add_test(tc, end_with_error);
	tcase_add_test(tc, close_wakes_workers);
	tcase_add_test(tc, close_counts_undelivered);
	tcase_add_test(tc, close_while_held);
	tc = t_tcase(s, "limits", 300);
	tcase_add_test(tc, full_inbox_stops_readers);
	tcase_add_test(tc, full_inbox_no_deadlock);
	tcase_add_test(tc, tls_connection_limit);
	tcase_add_test(tc, connection_limit);
	tcase_add_test(tc, out_of_descriptors);
	tc = t_tcase(s, "api", 300);
	tcase_add_test(tc, inbox_fd);
	tcase_add_test(tc, api_edges);
	tcase_add_test(tc, accept_queue_moves);
	return s;
}

int main(void)
{
	return t_run(inbox_suite(), 0);
}
