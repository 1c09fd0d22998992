/*
 * connect-bench: ZeroMQ, PUSH/PULL for throughput and PAIR for the round
 * trip, over TCP.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The two ends have a context each (as two processes would), with ZeroMQ's
 * default of one I/O thread.  The high-water marks are ZeroMQ's default
 * (1000 messages) lowered for large messages to the bytes libconnect may
 * queue (see bench_queue_msgs()), so that both hold about as much.  Messages are made with zmq_msg_init_size() and
 * stamped in place, as libconnect's with connect_datagram_alloc().
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <zmq.h>

#define SLICE_MS 100
#define LAT_TIMEOUT_MS 10000
#define MANY_THREADS 16

const char *bench_zmq_version(void)
{
	static char buf[32];
	int a, b, c;

	zmq_version(&a, &b, &c);
	snprintf(buf, sizeof(buf), "%d.%d.%d", a, b, c);
	return buf;
}

static int zfail(struct bench_result *r, const char *what)
{
	bench_fail(r, "%s: %s", what, zmq_strerror(zmq_errno()));
	return -1;
}

static void *zsock(void *ctx, int type, int timeout_opt, int ms, int hwm)
{
	void *s = zmq_socket(ctx, type);
	int zero = 0;

	if (!s)
		return NULL;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	if (timeout_opt)
		zmq_setsockopt(s, timeout_opt, &ms, sizeof(ms));
	if (hwm) {
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	}
	return s;
}

/* Bind s to 127.0.0.1 on a free port; its endpoint into ep. */
static int zbind(struct bench_result *r, void *s, char *ep, size_t len)
{
	if (zmq_bind(s, "tcp://127.0.0.1:*"))
		return zfail(r, "zmq_bind");
	if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len))
		return zfail(r, "ZMQ_LAST_ENDPOINT");
	return 0;
}

/* ---- throughput ---------------------------------------------------------- */

struct zsender {
	void **socks;
	int first, n;
	size_t size;
	bool many; /* stamp the sender's index */
	atomic_bool *stop;
	atomic_bool failed;
	char why[128];
};

static void *zsend_main(void *arg)
{
	struct zsender *s = arg;
	zmq_msg_t *pend = calloc((size_t)s->n, sizeof(*pend));
	bool *have = calloc((size_t)s->n, sizeof(*have));
	uint64_t *seq = calloc((size_t)s->n, sizeof(*seq));
	zmq_pollitem_t *pi = calloc((size_t)s->n, sizeof(*pi));
	int i;

	if (!pend || !have || !seq || !pi) {
		snprintf(s->why, sizeof(s->why), "out of memory");
		atomic_store(&s->failed, true);
		goto out;
	}
	for (i = 0; i < s->n; i++) {
		pi[i].socket = s->socks[s->first + i];
		pi[i].events = ZMQ_POLLOUT;
	}
	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		int progress = 0;

		for (i = 0; i < s->n; i++) {
			for (int k = 0; k < 64; k++) {
				if (!have[i]) {
					uint8_t *p;

					zmq_msg_init_size(&pend[i], s->size);
					p = zmq_msg_data(&pend[i]);
					bench_stamp(p, s->size, seq[i]);
					if (s->many)
						bench_stamp_id(p, (uint32_t)(s->first +
									     i));
					have[i] = true;
				}
				/* One socket: wait (a while) for room;
				 * several: never wait on one. */
				if (zmq_msg_send(&pend[i], s->socks[s->first + i],
						 s->n > 1 ? ZMQ_DONTWAIT : 0) < 0) {
					if (zmq_errno() == EAGAIN)
						break;
					if (!atomic_load(s->stop)) {
						snprintf(s->why, sizeof(s->why),
							 "zmq_msg_send: %s",
							 zmq_strerror(
								 zmq_errno()));
						atomic_store(&s->failed, true);
					}
					goto out;
				}
				have[i] = false;
				seq[i]++;
				progress++;
			}
		}
		if (!progress && s->n > 1)
			zmq_poll(pi, s->n, 10);
	}
out:
	if (have)
		for (i = 0; i < s->n; i++)
			if (have[i])
				zmq_msg_close(&pend[i]);
	free(pend);
	free(have);
	free(seq);
	free(pi);
	return NULL;
}

static int z_tput_n(const struct bench_cell *c, struct bench_result *r,
		    int n)
{
	void *rctx = zmq_ctx_new(), *sctx = zmq_ctx_new();
	void *pull = NULL, **push = calloc((size_t)n, sizeof(*push));
	uint64_t *expect = calloc((size_t)n, sizeof(*expect));
	int nt = n < MANY_THREADS ? n : MANY_THREADS, started = 0, i;
	int hwm = bench_queue_msgs(n, c->size);
	struct zsender s[MANY_THREADS];
	pthread_t tid[MANY_THREADS];
	atomic_bool stop = false;
	struct bench_meter m;
	zmq_msg_t msg;
	char ep[256];

	if (!rctx || !sctx || !push || !expect) {
		bench_fail(r, "zmq_ctx_new or out of memory");
		goto out;
	}
	pull = zsock(rctx, ZMQ_PULL, ZMQ_RCVTIMEO, SLICE_MS, hwm);
	if (!pull) {
		zfail(r, "zmq_socket");
		goto out;
	}
	if (zbind(r, pull, ep, sizeof(ep)))
		goto out;
	for (i = 0; i < n; i++) {
		push[i] = zsock(sctx, ZMQ_PUSH, ZMQ_SNDTIMEO, 50, hwm);
		if (!push[i] || zmq_connect(push[i], ep)) {
			zfail(r, "PUSH socket");
			goto out;
		}
	}
	for (i = 0; i < nt; i++) {
		s[i] = (struct zsender){ .socks = push,
					 .first = i * n / nt,
					 .n = (i + 1) * n / nt - i * n / nt,
					 .size = c->size,
					 .many = c->measure == BM_MANY,
					 .stop = &stop };
		atomic_init(&s[i].failed, false);
		if (bench_thread(zsend_main, &s[i], &tid[i])) {
			bench_fail(r, "pthread_create");
			break;
		}
		started++;
	}
	bench_meter_init(&m, c);
	zmq_msg_init(&msg);
	while (!r->err[0]) {
		const uint8_t *p;
		uint32_t id = 0;

		if (zmq_msg_recv(&msg, pull, 0) < 0) {
			if (zmq_errno() != EAGAIN) {
				zfail(r, "zmq_msg_recv");
				break;
			}
			for (i = 0; i < started; i++)
				if (atomic_load(&s[i].failed))
					goto done;
			if (bench_meter_idle(&m, r))
				break;
			continue;
		}
		p = zmq_msg_data(&msg);
		if (c->measure == BM_MANY && zmq_msg_size(&msg) >= 12) {
			id = bench_id(p);
			if (id >= (uint32_t)n) {
				bench_fail(r, "sender index %u", id);
				break;
			}
		}
		if (bench_check(r, p, zmq_msg_size(&msg), c->size,
				expect[id]++) ||
		    bench_meter_tick(&m, c->size))
			break;
	}
done:
	zmq_msg_close(&msg);
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	for (i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		if (atomic_load(&s[i].failed))
			bench_fail(r, "sender %d: %s", i, s[i].why);
	}
	bench_meter_result(&m, r);
out:
	if (push)
		for (i = 0; i < n; i++)
			if (push[i])
				zmq_close(push[i]);
	if (pull)
		zmq_close(pull);
	if (sctx)
		zmq_ctx_term(sctx);
	if (rctx)
		zmq_ctx_term(rctx);
	free(push);
	free(expect);
	return r->err[0] ? -1 : 0;
}

static int z_tput(const struct bench_cell *c, struct bench_result *r)
{
	return z_tput_n(c, r, 1);
}

static int z_many(const struct bench_cell *c, struct bench_result *r)
{
	return z_tput_n(c, r, c->conns);
}

/* ---- round trip ----------------------------------------------------------- */

struct zecho {
	void *sock;
	atomic_bool *stop;
	atomic_bool failed;
};

static void *zecho_main(void *arg)
{
	struct zecho *e = arg;
	zmq_msg_t msg;

	zmq_msg_init(&msg);
	while (!atomic_load_explicit(e->stop, memory_order_relaxed)) {
		if (zmq_msg_recv(&msg, e->sock, 0) < 0) {
			if (zmq_errno() == EAGAIN)
				continue;
			break;
		}
		/* On success the message is sent and msg left empty. */
		if (zmq_msg_send(&msg, e->sock, 0) < 0) {
			atomic_store(&e->failed, true);
			break;
		}
	}
	zmq_msg_close(&msg);
	return NULL;
}

static int z_lat(const struct bench_cell *c, struct bench_result *r)
{
	void *actx = zmq_ctx_new(), *bctx = zmq_ctx_new();
	void *a = NULL, *b = NULL;
	struct zecho e;
	struct bench_lat l;
	atomic_bool stop = false;
	pthread_t tid;
	bool started = false;
	char ep[256];

	bench_lat_init(&l, c);
	if (!actx || !bctx) {
		bench_fail(r, "zmq_ctx_new");
		goto out;
	}
	a = zsock(actx, ZMQ_PAIR, ZMQ_RCVTIMEO, SLICE_MS, 0);
	b = zsock(bctx, ZMQ_PAIR, ZMQ_RCVTIMEO, LAT_TIMEOUT_MS, 0);
	if (!a || !b) {
		zfail(r, "zmq_socket");
		goto out;
	}
	if (zbind(r, a, ep, sizeof(ep)))
		goto out;
	if (zmq_connect(b, ep)) {
		zfail(r, "zmq_connect");
		goto out;
	}
	e.sock = a;
	e.stop = &stop;
	atomic_init(&e.failed, false);
	if (bench_thread(zecho_main, &e, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	started = true;
	for (uint64_t seq = 0;; seq++) {
		zmq_msg_t out, in;
		uint64_t t0, t1;
		int rc;

		zmq_msg_init_size(&out, c->size);
		bench_stamp(zmq_msg_data(&out), c->size, seq);
		t0 = bench_now();
		if (zmq_msg_send(&out, b, 0) < 0) {
			zmq_msg_close(&out);
			zfail(r, "zmq_msg_send");
			break;
		}
		zmq_msg_init(&in);
		rc = zmq_msg_recv(&in, b, 0);
		t1 = bench_now();
		if (rc < 0) {
			zmq_msg_close(&in);
			zfail(r, "zmq_msg_recv");
			break;
		}
		rc = bench_check(r, zmq_msg_data(&in), zmq_msg_size(&in),
				 c->size, seq);
		zmq_msg_close(&in);
		if (rc || bench_lat_add(&l, t1 - t0, t1))
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	bench_lat_result(&l, r);
out:
	atomic_store(&stop, true);
	if (started) {
		pthread_join(tid, NULL);
		if (atomic_load(&e.failed))
			bench_fail(r, "the echo thread failed");
	}
	free(l.v);
	if (a)
		zmq_close(a);
	if (b)
		zmq_close(b);
	if (actx)
		zmq_ctx_term(actx);
	if (bctx)
		zmq_ctx_term(bctx);
	return r->err[0] ? -1 : 0;
}

static const struct bench_system z_systems[] = {
	{ "zmq", "ZeroMQ TCP", BS_ZMQ, { z_tput, z_lat, z_many },
	  "PUSH/PULL (throughput), PAIR (round trip)", 0 },
};

const struct bench_system *bench_zmq_systems(size_t *n)
{
	*n = sizeof(z_systems) / sizeof(z_systems[0]);
	return z_systems;
}
