/*
 * Unit tests: the bounded datagram queue (src/queue.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"
#include "queue.h"
#include "dgpool.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "helpers.h"

#define BIG (UINT64_C(1) << 40)

static connect_datagram *mkdg(uint16_t tag, size_t len)
{
	connect_datagram *dg = NULL;
	uint8_t *p;

	ck_assert_int_eq(connect_datagram_alloc(&dg, tag, len), CONNECT_OK);
	p = connect_datagram_data(dg);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(tag + i);
	return dg;
}

/* Reserve room for dg and push it, as connect_send() does. */
static bool put(struct cn_queue *q, connect_datagram *dg)
{
	ck_assert(cn_queue_reserve(q, connect_datagram_size(dg)));
	return cn_queue_push(q, dg);
}

/* Pop in a single-threaded test: never busy. */
static connect_datagram *take(struct cn_queue *q)
{
	bool busy = false;
	connect_datagram *dg = cn_queue_pop(q, &busy);

	ck_assert_msg(!busy, "pop reported a half-done enqueue with no "
			     "concurrent producer");
	return dg;
}

static void check_counters(struct cn_queue *q, uint64_t msgs, uint64_t bytes)
{
	ck_assert_uint_eq(cn_queue_msgs(q), msgs);
	ck_assert_uint_eq(cn_queue_bytes(q), bytes);
}

START_TEST(test_fifo)
{
	struct cn_queue q;
	uint64_t bytes = 0;

	cn_queue_init(&q, BIG, BIG);
	check_counters(&q, 0, 0);
	ck_assert(cn_queue_empty(&q));
	ck_assert_ptr_null(take(&q));
	for (unsigned i = 0; i < 100; i++) {
		size_t len = 1 + (i * 37) % 500;

		ck_assert(put(&q, mkdg((uint16_t)i, len)) == (i == 0));
		bytes += len;
		check_counters(&q, i + 1, bytes);
		ck_assert(!cn_queue_empty(&q));
	}
	for (unsigned i = 0; i < 100; i++) {
		size_t len = 1 + (i * 37) % 500;
		connect_datagram *dg = take(&q);
		uint8_t *p;

		ck_assert_ptr_nonnull(dg);
		ck_assert_uint_eq(connect_datagram_tag(dg), i);
		ck_assert_uint_eq(connect_datagram_size(dg), len);
		p = connect_datagram_data(dg);
		ck_assert_uint_eq(p[len - 1], (uint8_t)(i + len - 1));
		bytes -= len;
		check_counters(&q, 99 - i, bytes);
		connect_datagram_free(dg);
	}
	ck_assert(cn_queue_empty(&q));
	ck_assert_ptr_null(take(&q));
	ck_assert_ptr_null(take(&q));
	check_counters(&q, 0, 0);
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_push_edge)
{
	struct cn_queue q;
	connect_datagram *dg;

	cn_queue_init(&q, BIG, BIG);
	ck_assert_msg(put(&q, mkdg(1, 1)), "push into an empty queue");
	ck_assert_msg(!put(&q, mkdg(2, 1)), "push into a non-empty queue");
	ck_assert_msg(!put(&q, mkdg(3, 1)), "push into a non-empty queue");
	dg = take(&q);
	ck_assert_uint_eq(connect_datagram_tag(dg), 1);
	connect_datagram_free(dg);
	ck_assert_msg(!put(&q, mkdg(4, 1)), "push behind 2 datagrams");
	for (unsigned t = 2; t <= 4; t++) {
		dg = take(&q);
		ck_assert_ptr_nonnull(dg);
		ck_assert_uint_eq(connect_datagram_tag(dg), t);
		connect_datagram_free(dg);
	}
	ck_assert_ptr_null(take(&q));
	ck_assert_msg(put(&q, mkdg(5, 1)), "push into a drained queue");
	ck_assert_uint_eq(cn_queue_fini(&q), 1);
}
END_TEST

START_TEST(test_reserve_msgs)
{
	struct cn_queue q;

	cn_queue_init(&q, BIG, 3);
	ck_assert(!cn_queue_full(&q));
	for (int i = 0; i < 3; i++)
		ck_assert(cn_queue_reserve(&q, 10));
	check_counters(&q, 3, 30);
	ck_assert(cn_queue_full(&q));
	ck_assert(!cn_queue_reserve(&q, 10));
	ck_assert(!cn_queue_reserve(&q, 1));
	check_counters(&q, 3, 30); /* a refusal changes nothing */
	cn_queue_unreserve(&q, 10);
	check_counters(&q, 2, 20);
	ck_assert(!cn_queue_full(&q));
	ck_assert(cn_queue_reserve(&q, 7));
	check_counters(&q, 3, 27);
	cn_queue_unreserve(&q, 7);
	cn_queue_unreserve(&q, 10);
	cn_queue_unreserve(&q, 10);
	check_counters(&q, 0, 0);
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_reserve_bytes)
{
	struct cn_queue q;

	cn_queue_init(&q, 100, 1000);
	ck_assert(cn_queue_reserve(&q, 60));
	ck_assert_msg(!cn_queue_reserve(&q, 41), "60 + 41 > 100 admitted");
	check_counters(&q, 1, 60);
	ck_assert(!cn_queue_full(&q));
	ck_assert_msg(cn_queue_reserve(&q, 40), "60 + 40 = 100 refused");
	check_counters(&q, 2, 100);
	ck_assert(cn_queue_full(&q));
	ck_assert(!cn_queue_reserve(&q, 1));
	check_counters(&q, 2, 100);
	cn_queue_unreserve(&q, 40);
	cn_queue_unreserve(&q, 60);
	check_counters(&q, 0, 0);
	ck_assert(!cn_queue_full(&q));
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

/* A datagram larger than the byte limit passes into an empty queue only. */
START_TEST(test_reserve_oversize)
{
	struct cn_queue q;
	connect_datagram *dg;

	cn_queue_init(&q, 100, 1000);
	ck_assert_msg(cn_queue_reserve(&q, 1000),
		      "1000 bytes refused by an empty queue (limit 100)");
	check_counters(&q, 1, 1000);
	ck_assert(cn_queue_full(&q));
	ck_assert(!cn_queue_reserve(&q, 1));
	ck_assert(!cn_queue_reserve(&q, 1000));
	cn_queue_unreserve(&q, 1000);
	check_counters(&q, 0, 0);

	/* Not into a queue holding something, however little. */
	ck_assert(put(&q, mkdg(1, 1)));
	ck_assert_msg(!cn_queue_reserve(&q, 1000),
		      "1000 bytes admitted into a non-empty queue (limit 100)");
	ck_assert_msg(!cn_queue_reserve(&q, 100),
		      "1 + 100 bytes admitted (limit 100)");
	check_counters(&q, 1, 1);
	dg = take(&q);
	connect_datagram_free(dg);
	check_counters(&q, 0, 0);

	/* Drained: admitted again, pushed and popped with its counters. */
	dg = mkdg(2, 1000);
	ck_assert(put(&q, dg));
	check_counters(&q, 1, 1000);
	dg = take(&q);
	ck_assert_uint_eq(connect_datagram_size(dg), 1000);
	connect_datagram_free(dg);
	check_counters(&q, 0, 0);
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_account_release)
{
	struct cn_queue q;

	cn_queue_init(&q, 10, 2);
	cn_queue_account(&q, 5, 1000); /* no limit check */
	check_counters(&q, 5, 1000);
	ck_assert(cn_queue_full(&q));
	ck_assert(!cn_queue_reserve(&q, 1));
	cn_queue_release(&q, 3, 990);
	check_counters(&q, 2, 10);
	ck_assert(cn_queue_full(&q));
	cn_queue_release(&q, 1, 10);
	check_counters(&q, 1, 0);
	ck_assert(!cn_queue_full(&q));
	cn_queue_release(&q, 1, 0);
	check_counters(&q, 0, 0);

	/* "At or over a limit": exactly at either limit is full. */
	cn_queue_account(&q, 1, 10);
	ck_assert_msg(cn_queue_full(&q), "bytes at the limit: not full");
	cn_queue_release(&q, 1, 10);
	cn_queue_account(&q, 2, 2);
	ck_assert_msg(cn_queue_full(&q), "msgs at the limit: not full");
	cn_queue_release(&q, 2, 2);
	ck_assert(!cn_queue_full(&q));
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_low)
{
	struct cn_queue q;

	cn_queue_init(&q, 100, 10);
	ck_assert(cn_queue_low(&q));
	cn_queue_account(&q, 1, 40);
	ck_assert(cn_queue_low(&q));
	cn_queue_account(&q, 0, 20); /* 60 bytes: over half */
	ck_assert(!cn_queue_low(&q));
	cn_queue_release(&q, 0, 20);
	cn_queue_account(&q, 5, 0); /* 6 msgs: over half */
	ck_assert(!cn_queue_low(&q));
	cn_queue_release(&q, 6, 40);
	ck_assert(cn_queue_low(&q));
	ck_assert_uint_eq(cn_queue_fini(&q), 0);

	/* With limits of 1 an empty queue must still count as low, or a
	 * reader that stopped on a full queue would never resume. */
	cn_queue_init(&q, 1, 1);
	ck_assert(cn_queue_low(&q));
	cn_queue_account(&q, 1, 1);
	ck_assert(!cn_queue_low(&q));
	cn_queue_release(&q, 1, 1);
	ck_assert(cn_queue_low(&q));
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_splice)
{
	struct cn_queue q;
	struct __cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	struct cds_wfcq_node *node;
	uint64_t bytes = 0;
	unsigned n = 0;

	cn_queue_init(&q, BIG, BIG);
	__cds_wfcq_init(&head, &tail);
	ck_assert(!cn_queue_splice(&q, &head, &tail));
	for (unsigned i = 0; i < 50; i++) {
		put(&q, mkdg((uint16_t)i, 1 + i));
		bytes += 1 + i;
	}
	ck_assert(cn_queue_splice(&q, &head, &tail));
	ck_assert(cn_queue_empty(&q));
	ck_assert_ptr_null(take(&q));
	/* The counters stay until the caller releases them. */
	check_counters(&q, 50, bytes);
	ck_assert(!cn_queue_splice(&q, &head, &tail));

	/* The queue is usable (and empty: edge) while the list is held. */
	ck_assert(put(&q, mkdg(1000, 3)));

	while ((node = __cds_wfcq_dequeue_blocking(&head, &tail))) {
		connect_datagram *dg =
			cn_container_of(node, struct connect_datagram, node);

		ck_assert_uint_eq(connect_datagram_tag(dg), n);
		ck_assert_uint_eq(connect_datagram_size(dg), 1 + n);
		connect_datagram_free(dg);
		n++;
	}
	ck_assert_uint_eq(n, 50);
	check_counters(&q, 51, bytes + 3);
	cn_queue_release(&q, 50, bytes);
	check_counters(&q, 1, 3);

	/* A second splice appends after what the list holds. */
	ck_assert(cn_queue_splice(&q, &head, &tail));
	node = __cds_wfcq_dequeue_blocking(&head, &tail);
	ck_assert_ptr_nonnull(node);
	ck_assert_uint_eq(connect_datagram_tag(cn_container_of(
				  node, struct connect_datagram, node)),
			  1000);
	connect_datagram_free(
		cn_container_of(node, struct connect_datagram, node));
	ck_assert_ptr_null(__cds_wfcq_dequeue_blocking(&head, &tail));
	cn_queue_release(&q, 1, 3);
	check_counters(&q, 0, 0);
	ck_assert_uint_eq(cn_queue_fini(&q), 0);
}
END_TEST

START_TEST(test_fini_leftovers)
{
	struct cn_queue q;
	connect_datagram *dg;

	cn_queue_init(&q, BIG, BIG);
	ck_assert_uint_eq(cn_queue_fini(&q), 0);

	cn_queue_init(&q, BIG, BIG);
	for (unsigned i = 0; i < 7; i++)
		put(&q, mkdg((uint16_t)i, 100000 + i));
	dg = take(&q);
	connect_datagram_free(dg);
	/* Six left: fini frees them (ASan/valgrind would see a leak). */
	ck_assert_uint_eq(cn_queue_fini(&q), 6);

	cn_queue_init(&q, 10, 1);
	cn_queue_account(&q, 1, 5);
	cn_queue_push(&q, mkdg(9, 5));
	ck_assert_uint_eq(cn_queue_fini(&q), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Many producers, one consumer                                              */
/* ------------------------------------------------------------------------ */

#define NPROD 4
#define PER_PROD 25000
#define TOTAL ((size_t)NPROD * PER_PROD)
#define PAYLOAD_LEN 8
/* Give up (and report) well before Check's timeout kills the process. */
#define MP_LIMIT_MS 60000

enum mp_mode { MP_BOUNDED, MP_UNBOUNDED, MP_SPLICE };

struct mp {
	struct cn_queue q;
	enum mp_mode mode;
	int64_t deadline;
	atomic_bool stop;
};

struct producer {
	struct mp *mp;
	unsigned id;
	size_t pushed;
	char err[160];
};

struct consumer {
	struct mp *mp;
	size_t got;
	size_t busy; /* pops that met a half-done enqueue */
	uint32_t next[NPROD];
	char err[200];
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct mp *mp = p->mp;

	for (uint32_t seq = 0; seq < PER_PROD; seq++) {
		connect_datagram *dg = NULL;
		uint8_t buf[PAYLOAD_LEN];

		cn_put32(buf, p->id);
		cn_put32(buf + 4, seq);
		if (connect_datagram_new(&dg, (uint16_t)p->id, buf,
					 sizeof(buf)) != CONNECT_OK) {
			snprintf(p->err, sizeof(p->err),
				 "producer %u: datagram_new failed", p->id);
			atomic_store(&mp->stop, true);
			break;
		}
		while (!cn_queue_reserve(&mp->q, PAYLOAD_LEN)) {
			if (atomic_load(&mp->stop) || now_ms() > mp->deadline)
				break;
			sched_yield();
		}
		if (atomic_load(&mp->stop) || now_ms() > mp->deadline) {
			/* A reservation made just now is abandoned: the
			 * test fails anyway. */
			snprintf(p->err, sizeof(p->err),
				 "producer %u: stopped at %u (queue full?)",
				 p->id, seq);
			atomic_store(&mp->stop, true);
			connect_datagram_free(dg);
			break;
		}
		cn_queue_push(&mp->q, dg);
		p->pushed++;
	}
	return NULL;
}

/* Check one datagram; the first problem is kept in c->err. */
static void consume(struct consumer *c, connect_datagram *dg)
{
	const uint8_t *p = connect_datagram_data(dg);
	uint32_t id, seq;

	c->got++;
	if (c->err[0])
		goto out;
	if (connect_datagram_size(dg) != PAYLOAD_LEN) {
		snprintf(c->err, sizeof(c->err), "datagram %zu: size %zu",
			 c->got, connect_datagram_size(dg));
		goto out;
	}
	id = cn_get32(p);
	seq = cn_get32(p + 4);
	if (id >= NPROD || connect_datagram_tag(dg) != id) {
		snprintf(c->err, sizeof(c->err),
			 "datagram %zu: producer %u, tag %u", c->got, id,
			 connect_datagram_tag(dg));
		goto out;
	}
	if (seq != c->next[id]) {
		snprintf(c->err, sizeof(c->err),
			 "producer %u: got sequence %u, expected %u", id, seq,
			 c->next[id]);
		goto out;
	}
	c->next[id]++;
out:
	connect_datagram_free(dg);
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct mp *mp = c->mp;

	while (c->got < TOTAL) {
		if (mp->mode == MP_SPLICE) {
			struct __cds_wfcq_head head;
			struct cds_wfcq_tail tail;
			struct cds_wfcq_node *node;
			uint64_t n = 0;

			__cds_wfcq_init(&head, &tail);
			if (cn_queue_splice(&mp->q, &head, &tail)) {
				while ((node = __cds_wfcq_dequeue_blocking(
						&head, &tail))) {
					connect_datagram *dg = cn_container_of(
						node, struct connect_datagram,
						node);

					/* As the writer does after a splice. */
					CN_TSAN_ACQUIRE(dg);
					consume(c, dg);
					n++;
				}
				cn_queue_release(&mp->q, n, n * PAYLOAD_LEN);
				continue;
			}
		} else {
			bool busy = false;
			connect_datagram *dg = cn_queue_pop(&mp->q, &busy);

			if (dg) {
				consume(c, dg);
				continue;
			}
			if (busy) {
				/* A producer is mid-enqueue: retry soon. */
				c->busy++;
				continue;
			}
		}
		if (atomic_load(&mp->stop) || now_ms() > mp->deadline) {
			snprintf(c->err, sizeof(c->err),
				 "stopped with %zu of %zu datagrams",
				 c->got, TOTAL);
			atomic_store(&mp->stop, true);
			break;
		}
		sched_yield();
	}
	return NULL;
}

START_TEST(test_multi_producer)
{
	static const char *const names[] = { "bounded", "unbounded", "splice" };
	struct mp *mp;
	struct producer prod[NPROD];
	struct consumer cons;
	pthread_t pth[NPROD], cth;
	size_t nprod = 0;

	/* Heap, with the queue's cache-line alignment. */
	mp = aligned_alloc(CN_CACHELINE,
			   (sizeof(*mp) + CN_CACHELINE - 1) / CN_CACHELINE *
				   CN_CACHELINE);
	ck_assert_ptr_nonnull(mp);
	memset(mp, 0, sizeof(*mp));
	mp->mode = (enum mp_mode)_i;
	mp->deadline = now_ms() + MP_LIMIT_MS;
	atomic_init(&mp->stop, false);
	if (mp->mode == MP_BOUNDED)
		cn_queue_init(&mp->q, 300 * PAYLOAD_LEN, 1000);
	else
		cn_queue_init(&mp->q, BIG, BIG);

	memset(&cons, 0, sizeof(cons));
	cons.mp = mp;
	t_thread_start(&cth, consumer_main, &cons);
	for (unsigned i = 0; i < NPROD; i++) {
		memset(&prod[i], 0, sizeof(prod[i]));
		prod[i].mp = mp;
		prod[i].id = i;
		if (pthread_create(&pth[i], NULL, producer_main, &prod[i]))
			break;
		nprod++;
	}
	/* Short of producers the consumer never sees TOTAL: stop it. */
	if (nprod < NPROD)
		atomic_store(&mp->stop, true);
	/* Join everything before asserting anything. */
	for (size_t i = 0; i < nprod; i++)
		pthread_join(pth[i], NULL);
	pthread_join(cth, NULL);

	ck_assert_msg(nprod == NPROD, "could not start producer %zu", nprod);
	for (unsigned i = 0; i < NPROD; i++)
		ck_assert_msg(!prod[i].err[0], "%s: %s", names[_i],
			      prod[i].err);
	ck_assert_msg(!cons.err[0], "%s: %s", names[_i], cons.err);
	ck_assert_uint_eq(cons.got, TOTAL);
	for (unsigned i = 0; i < NPROD; i++) {
		ck_assert_uint_eq(prod[i].pushed, PER_PROD);
		ck_assert_uint_eq(cons.next[i], PER_PROD);
	}
	ck_assert(cn_queue_empty(&mp->q));
	check_counters(&mp->q, 0, 0);
	ck_assert_uint_eq(cn_queue_fini(&mp->q), 0);
	free(mp);
}
END_TEST

/* ---- the small-datagram pool: made on one thread, freed on another ---- */

enum { POOL_N = 5000, POOL_ROUNDS = 4 };

struct pool_hand {
	struct connect_datagram *dg[POOL_N];
	int bad;
};

static size_t pool_len(size_t i)
{
	/* Up to the largest pooled block (512 bytes with the header), and
	 * past it. */
	return 2 + (i * 37) % 520;
}

static void *pool_taker(void *arg)
{
	struct pool_hand *h = arg;

	for (size_t i = 0; i < POOL_N; i++) {
		struct connect_datagram *dg = h->dg[i];

		if (dg->len != pool_len(i) ||
		    dg->payload[0] != (uint8_t)i ||
		    dg->payload[dg->len - 1] != (uint8_t)(i >> 3))
			h->bad++;
		cn_datagram_free(dg);
	}
	return NULL;
}

/*
 * Blocks freed by another thread come back to the maker, intact and of
 * the right size, with their contents written anew; a thread that exits
 * hands its blocks to the depot, which stays within its bound.
 */
START_TEST(test_pool_across_threads)
{
	struct pool_hand *h = calloc(1, sizeof(*h));
	size_t depot;

	ck_assert_ptr_nonnull(h);
	for (int r = 0; r < POOL_ROUNDS; r++) {
		pthread_t th;

		for (size_t i = 0; i < POOL_N; i++) {
			struct connect_datagram *dg =
				cn_datagram_alloc((uint32_t)pool_len(i), 1, 2);

			ck_assert_ptr_nonnull(dg);
			memset(dg->payload, 0x5a, dg->len);
			dg->payload[0] = (uint8_t)i;
			dg->payload[dg->len - 1] = (uint8_t)(i >> 3);
			h->dg[i] = dg;
		}
		ck_assert_int_eq(pthread_create(&th, NULL, pool_taker, h), 0);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		ck_assert_int_eq(h->bad, 0);
	}
	depot = cn_dgpool_depot_blocks();
#if !defined(__SANITIZE_ADDRESS__)
	/* The taker exited: its blocks went to the depot. */
	ck_assert_uint_gt(depot, 0);
#endif
	ck_assert_uint_le(depot, (2u << 20) / 64 + (2u << 20) / 128 +
					 (2u << 20) / 256 + (2u << 20) / 512);
	cn_dgpool_idle();
	free(h);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_add_test(tc, test_fifo);
	tcase_add_test(tc, test_push_edge);
	tcase_add_test(tc, test_reserve_msgs);
	tcase_add_test(tc, test_reserve_bytes);
	tcase_add_test(tc, test_reserve_oversize);
	tcase_add_test(tc, test_account_release);
	tcase_add_test(tc, test_low);
	tcase_add_test(tc, test_splice);
	tcase_add_test(tc, test_fini_leftovers);
	tcase_add_test(tc, test_pool_across_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	/* Above MP_LIMIT_MS: the test reports its own timeout first. */
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_multi_producer, MP_BOUNDED,
			    MP_SPLICE + 1);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(queue_suite(), 0);
}
