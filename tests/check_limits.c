/*
 * Resource limits and failures: the process-wide receive memory bound,
 * memory given back after large datagrams, allocation failing at every
 * point of a connection's life, and running out of descriptors.  Linked
 * against the internal library for the allocation hook (src/alloc.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <check.h>

#include "connect.h"
#include "helpers.h"
#include "alloc.h"

#define KiB (1024u)
#define MiB (1024u * 1024u)

/* ---------------------------------------------------------------------- */
/* The process-wide receive memory bound                                   */
/* ---------------------------------------------------------------------- */

struct flood {
	pthread_t th;
	connect_conn *c;
	uint32_t n;
	size_t len;
	int rc;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;

	f->rc = CONNECT_OK;
	for (uint32_t i = 0; i < f->n && f->rc == CONNECT_OK; i++) {
		connect_datagram *dg = dg_make_nocheck(1, i, f->len);

		f->rc = dg ? connect_send_wait(f->c, dg, scaled_ms(30000))
			   : CONNECT_ENOMEM;
		if (f->rc != CONNECT_OK)
			connect_datagram_free(dg);
	}
	return NULL;
}

/*
 * Three connections whose application does not read: together they hold
 * no more than the bound (plus one read's worth each), although each one's
 * own queue would take far more; once the application reads, everything
 * arrives in order and the count goes back to 0.
 */
START_TEST(recv_memory_bound)
{
	enum { NC = 3, N = 400, LEN = 16 * KiB };
	const uint64_t limit = 1 * MiB;
	connect_conn *c[NC], *s[NC];
	struct flood f[NC];
	uint64_t used, peak = 0;

	ck_assert_int_eq(connect_set_recv_memory_limit(limit), CONNECT_OK);
	for (int k = 0; k < NC; k++) {
		t_pair(T_TCP4, NULL, NULL, &c[k], &s[k]);
		f[k] = (struct flood){ .c = c[k], .n = N, .len = LEN };
		t_thread_start(&f[k].th, flood_main, &f[k]);
	}
	for (int i = 0; i < 50; i++) {
		used = connect_recv_memory_used();
		if (used > peak)
			peak = used;
		sleep_ms(10);
	}
	/* Each reader may finish the 64 KiB read under way past the bound. */
	ck_assert_msg(peak <= limit + NC * (64 * KiB + LEN),
		      "%llu bytes held, bound %llu", (unsigned long long)peak,
		      (unsigned long long)limit);
	ck_assert_msg(peak >= limit / 2, "only %llu bytes held: the test "
		      "did not reach the bound", (unsigned long long)peak);
	for (uint32_t i = 0; i < N; i++)
		for (int k = 0; k < NC; k++) {
			connect_datagram *dg;
			char why[200];

			ck_assert_int_eq(connect_recv_wait(s[k], &dg,
							   scaled_ms(20000)),
					 CONNECT_OK);
			ck_assert_msg(dg_check(dg, 1, i, LEN, why,
					       sizeof(why)),
				      "%s", why);
			connect_datagram_free(dg);
		}
	for (int k = 0; k < NC; k++) {
		t_thread_join(f[k].th, 20000, "flood");
		ck_assert_int_eq(f[k].rc, CONNECT_OK);
		connect_close(c[k], scaled_ms(5000), NULL);
		connect_close(s[k], 0, NULL);
	}
	ck_assert_uint_eq(connect_recv_memory_used(), 0);
	connect_set_recv_memory_limit(0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Memory goes back after large datagrams                                  */
/* ---------------------------------------------------------------------- */

/*
 * Receiving 50 MB datagrams whose peers vanish half-way, and then whole
 * ones, leaves the resident size where it was: large buffers are returned
 * to the system when freed.
 */
START_TEST(rss_returns_after_bursts)
{
	enum { BIG = 50 * 1000 * 1000 };
	connect_listener *l;
	connect_conn *c, *s;
	connect_datagram *dg;
	size_t rss0, rss1;
	uint8_t hdr[8];

	if (under_asan() || under_tsan() || test_light()) {
		fprintf(stderr, "rss_returns_after_bursts: sanitizers keep "
				"freed memory; skipped\n");
		return;
	}
	l = t_listen_ok(T_TCP4, NULL);
	rss0 = rss_bytes();
	for (int round = 0; round < 3; round++) {
		static uint8_t junk[1 << 20];
		int fd = raw_dial(T_TCP4, connect_listener_port(l));

		s = t_accept_ok(l, scaled_ms(10000));
		ck_assert(raw_send_all(fd, hdr,
				       frame_put(hdr, 4 + BIG, 1, 1, NULL, 0)));
		for (int i = 0; i < 25; i++)
			ck_assert(raw_send_all(fd, junk, sizeof(junk)));
		sleep_ms(100);
		close(fd); /* killed half-way */
		ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(20000)),
				 CONNECT_ETRUNCATED);
		connect_close(s, 0, NULL);
	}
	rss1 = rss_bytes();
	ck_assert_msg(rss1 < rss0 + 10 * MiB,
		      "resident memory grew by %zu MiB after the kills",
		      (rss1 - rss0) / MiB);
	c = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	s = t_accept_ok(l, scaled_ms(10000));
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_int_eq(connect_send_wait(c, dg_make(2, i, BIG),
						   scaled_ms(20000)),
				 CONNECT_OK);
		ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(30000)),
				 CONNECT_OK);
		ck_assert_uint_eq(connect_datagram_size(dg), BIG);
		connect_datagram_free(dg);
	}
	connect_close(c, scaled_ms(5000), NULL);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
	rss1 = rss_bytes();
	ck_assert_msg(rss1 < rss0 + 20 * MiB,
		      "resident memory grew by %zu MiB and stayed",
		      (rss1 - rss0) / MiB);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Allocation failing at every point                                       */
/* ---------------------------------------------------------------------- */

static _Atomic long alloc_count;
static _Atomic long alloc_fail_at; /* fail the allocation with this number */
static _Atomic long alloc_failed;

static void *fail_malloc(size_t n)
{
	if (atomic_fetch_add(&alloc_count, 1) + 1 ==
	    atomic_load(&alloc_fail_at)) {
		atomic_fetch_add(&alloc_failed, 1);
		return NULL;
	}
	return malloc(n);
}

static void *fail_realloc(void *p, size_t n)
{
	if (atomic_fetch_add(&alloc_count, 1) + 1 ==
	    atomic_load(&alloc_fail_at)) {
		atomic_fetch_add(&alloc_failed, 1);
		return NULL;
	}
	return realloc(p, n);
}

static bool known_code(int rc)
{
	return strcmp(connect_err_name(rc), "CONNECT_EUNKNOWN") != 0;
}

/*
 * One life of a connection pair: listen, dial, accept, a few datagrams
 * each way (one large), close both.  Any step may fail with a clear code
 * when an allocation fails; nothing may crash, hang or leak.  Returns true
 * when every step succeeded.
 */
static bool one_life(int row)
{
	connect_listener *l = NULL;
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg;
	bool ok = false;
	int rc;

	rc = t_listen(row, NULL, &l);
	ck_assert(known_code(rc));
	if (rc)
		return false;
	rc = t_dial(row, connect_listener_port(l), NULL, &c);
	ck_assert(known_code(rc));
	if (rc)
		goto out;
	rc = connect_accept_wait(l, &s, scaled_ms(2000));
	ck_assert_msg(rc == CONNECT_OK || rc == CONNECT_ETIMEDOUT,
		      "accept: %s", connect_err_name(rc));
	if (rc)
		goto out;
	for (uint32_t i = 0; i < 3; i++) {
		size_t len = i == 2 ? 300 * KiB : 100;

		rc = connect_datagram_new(&dg, 1, "x", 1);
		if (rc) {
			ck_assert_int_eq(rc, CONNECT_ENOMEM);
			goto out;
		}
		connect_datagram_free(dg);
		dg = dg_make_nocheck(1, i, len);
		if (!dg)
			goto out;
		rc = connect_send(c, dg);
		ck_assert(known_code(rc));
		if (rc) {
			connect_datagram_free(dg);
			goto out;
		}
		rc = connect_recv_wait(s, &dg, scaled_ms(2000));
		ck_assert(known_code(rc));
		if (rc)
			goto out;
		ck_assert(dg_check(dg, 1, i, len, NULL, 0));
		connect_datagram_free(dg);
	}
	ok = true;
out:
	if (c)
		connect_close(c, ok ? scaled_ms(2000) : 0, NULL);
	if (s)
		connect_close(s, 0, NULL);
	connect_listener_close(l);
	return ok;
}

/* Over TCP, and over TLS (handshake, records, close_notify). */
START_TEST(alloc_fails_everywhere)
{
	static const int rows[] = { T_TCP4, T_TLS };
	int row = rows[_i];
	long n, total, failures = 0;
	int64_t t0 = now_ms();

	/* How many allocations one life makes. */
	atomic_store(&alloc_count, 0);
	atomic_store(&alloc_fail_at, 0);
	cn_allocator.malloc = fail_malloc;
	cn_allocator.realloc = fail_realloc;
	ck_assert(one_life(row));
	total = atomic_load(&alloc_count);
	ck_assert_int_gt(total, 5);
	/* Fail the 1st, the 2nd, ... each in a fresh life.  Threads race, so
	 * the allocation numbered n is not always the same one: go a little
	 * past the count. */
	for (n = 1; n <= total + 10; n++) {
		atomic_store(&alloc_count, 0);
		atomic_store(&alloc_failed, 0);
		atomic_store(&alloc_fail_at, n);
		if (!one_life(row))
			failures++;
		ck_assert_int_le(now_ms() - t0, scaled_ms(120000));
	}
	cn_allocator.malloc = malloc;
	cn_allocator.realloc = realloc;
	ck_assert_msg(failures > 0, "no injected failure was ever seen");
	fprintf(stderr, "alloc_fails_everywhere %s: %ld allocations per "
			"life, %ld lives failed cleanly\n",
		t_name(row), total, failures);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Out of descriptors                                                      */
/* ---------------------------------------------------------------------- */

static void pair_works(connect_conn *c, connect_conn *s)
{
	connect_datagram *dg;

	ck_assert_int_eq(connect_send(c, dg_make(1, 0, 10)), CONNECT_OK);
	ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(5000)),
			 CONNECT_OK);
	connect_datagram_free(dg);
}

/*
 * With the descriptor limit reached, dialing fails with a clear error,
 * the listener keeps running (it logs and retries) and serves again once
 * descriptors are free; an existing connection is unharmed.
 */
START_TEST(out_of_descriptors)
{
	struct rlimit old, low;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c, *s, *c2 = NULL, *s2;
	int fds[64], n = 0, rc;

	t_pair(T_TCP4, NULL, NULL, &c, &s);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Use up everything below a limit just above what is open now. */
	low = old;
	low.rlim_cur = (rlim_t)dup(0) + 4;
	close((int)low.rlim_cur - 4);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fds[n] = dup(0)) >= 0)
		n++;
	rc = t_dial(T_TCP4, connect_listener_port(l), NULL, &c2);
	ck_assert_msg(rc != CONNECT_OK && known_code(rc), "dial: %s",
		      connect_err_name(rc));
	/* The existing pair still works, without a descriptor to spare.
	 * (Not under ThreadSanitizer: it reports liburcu's queue, which
	 * tests/tsan.supp suppresses by name, and needs descriptors to
	 * find the names.) */
	if (!under_tsan())
		pair_works(c, s);
	while (n > 0)
		close(fds[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	pair_works(c, s);
	/* And the listener serves again. */
	c2 = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	s2 = t_accept_ok(l, scaled_ms(5000));
	connect_close(c2, 0, NULL);
	connect_close(s2, 0, NULL);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST

/* A test case of its own for each test. */
static void add_case(Suite *s, const char *name, const TTest *test)
{
	tcase_add_test(t_tcase(s, name, 300), test);
}

static Suite *limits_suite(void)
{
	Suite *s = suite_create("limits");

	add_case(s, "recv_memory_bound", recv_memory_bound);
	add_case(s, "rss_returns", rss_returns_after_bursts);
	tcase_add_loop_test(t_tcase(s, "alloc_fails", 300),
			    alloc_fails_everywhere, 0, 2);
	add_case(s, "out_of_descriptors", out_of_descriptors);
	return s;
}

int main(void)
{
	return t_run(limits_suite(), 0);
}
