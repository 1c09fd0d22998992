/*
 * Fault injection: a transport failing at a chosen byte either way, a
 * reset or a killed peer in the middle of a frame, a half-closed peer, a
 * close with a million datagrams queued, and thread creation failing at
 * every place the library starts one.  Each is a clear error; nothing
 * leaks, and the process and its other connections go on.  Linked against
 * the internal library (the fault layer and the thread hook).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "connect.h"
#include "helpers.h"
#include "connect_int.h"
#include "fault.h"

/* Each test starts with a plan that injects nothing. */
static void plan_reset(void)
{
	struct cn_fault_plan p;

	cn_fault_plan_init(&p);
	cn_fault_set(&p);
}

/* A pair over "fault+tcp" with the given plan. */
static void fault_pair(const struct cn_fault_plan *p, connect_conn **c,
		       connect_conn **s)
{
	connect_listener *l;
	char url[64];

	cn_fault_set(p);
	ck_assert_int_eq(connect_listen(&l, "fault+tcp://127.0.0.1:0", NULL),
			 CONNECT_OK);
	snprintf(url, sizeof(url), "fault+tcp://127.0.0.1:%d",
		 connect_listener_port(l));
	ck_assert_int_eq(connect_dial(c, url, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_accept_wait(l, s, scaled_ms(5000)),
			 CONNECT_OK);
	connect_listener_close(l);
}

/* Receive datagrams of tag 1 in sequence until an error; returns how many
 * arrived and the error in *err. */
static uint32_t recv_until_error(connect_conn *s, size_t len, int *err)
{
	connect_datagram *dg;
	uint32_t got = 0;
	char why[200];
	int rc;

	while ((rc = connect_recv_wait(s, &dg, scaled_ms(5000))) ==
	       CONNECT_OK) {
		ck_assert_msg(dg_check(dg, 1, got, len, why, sizeof(why)),
			      "%s", why);
		connect_datagram_free(dg);
		got++;
	}
	*err = rc;
	return got;
}

/* ---------------------------------------------------------------------- */
/* An error at byte N                                                      */
/* ---------------------------------------------------------------------- */

enum { LEN = 100, FRAME = 8 + LEN, N = 50, FAIL_AT = 20 * FRAME + 37 };

/*
 * The client's transport fails when it would send byte FAIL_AT: exactly
 * the 20 frames before it arrive, whole and in order; the client reports
 * the failure (sends, connect_conn_error, close) and counts the other 30
 * datagrams as not written; the server sees an error, never a clean end.
 */
START_TEST(send_fails_at_byte)
{
	struct cn_fault_plan p;
	connect_conn *c, *s;
	size_t unsent = 0;
	char why[256] = "";
	uint32_t got, accepted;
	int rc, err;

	cn_fault_plan_init(&p);
	p.side = CN_FAULT_CLIENT;
	p.fail_send_at = FAIL_AT;
	fault_pair(&p, &c, &s);
	/* The writer may fail while these are queued (once the 21st is):
	 * from then on sends say so. */
	for (accepted = 0; accepted < N; accepted++) {
		connect_datagram *dg = dg_make(1, accepted, LEN);

		rc = connect_send(c, dg);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			ck_assert_int_eq(rc, CONNECT_EIO);
			break;
		}
	}
	ck_assert_uint_gt(accepted, FAIL_AT / FRAME);
	/* The writer fails: sends say so. */
	for (int i = 0; i < 500; i++) {
		connect_datagram *dg = dg_make(1, 999, LEN);

		rc = connect_send(c, dg);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			break;
		}
		sleep_ms(10);
	}
	ck_assert_int_eq(rc, CONNECT_EIO);
	ck_assert_int_eq(connect_conn_error(c, why, sizeof(why)), CONNECT_EIO);
	ck_assert_msg(strstr(why, "injected") != NULL, "reason: %s", why);
	rc = connect_close(c, scaled_ms(2000), &unsent);
	ck_assert_int_eq(rc, CONNECT_EIO);
	got = recv_until_error(s, LEN, &err);
	ck_assert_uint_eq(got, FAIL_AT / FRAME);
	/* What the client's writer had accepted but never wrote whole: the
	 * rest of those accepted, and any sent before the failure showed. */
	ck_assert_uint_ge(unsent, accepted - got);
	ck_assert_msg(err == CONNECT_ETRUNCATED || err == CONNECT_ECONNRESET,
		      "server: %s", connect_err_name(err));
	connect_close(s, 0, NULL);
}
END_TEST

/*
 * The server's transport fails when it would read byte FAIL_AT: the 20
 * whole frames before it are delivered, then the error, and it is sticky.
 */
START_TEST(recv_fails_at_byte)
{
	struct cn_fault_plan p;
	connect_conn *c, *s;
	connect_datagram *dg;
	uint32_t got;
	int err;

	cn_fault_plan_init(&p);
	p.side = CN_FAULT_SERVER;
	p.fail_recv_at = FAIL_AT;
	p.fail_code = CONNECT_ECONNRESET;
	fault_pair(&p, &c, &s);
	for (uint32_t i = 0; i < N; i++)
		ck_assert_int_eq(connect_send(c, dg_make(1, i, LEN)),
				 CONNECT_OK);
	got = recv_until_error(s, LEN, &err);
	ck_assert_uint_eq(got, FAIL_AT / FRAME);
	ck_assert_int_eq(err, CONNECT_ECONNRESET);
	ck_assert_int_eq(connect_recv(s, &dg), CONNECT_ECONNRESET);
	connect_close(s, 0, NULL);
	connect_close(c, 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* TLS over a message transport                                            */
/* ---------------------------------------------------------------------- */

/*
 * Over a message transport (the fault layer in message mode, standing in
 * for SCTP) TLS sends every record as a message of its own, in the
 * handshake and after it, both ways; datagrams of every size arrive
 * intact and in order, and close works.
 */
/* Server and client options with the test certificates (the client
 * verifies "localhost"). */
static void tls_opts(connect_opts **sop, connect_opts **cop)
{
	connect_tls_config *sc, *cc;

	ck_assert_int_eq(connect_opts_new(sop), CONNECT_OK);
	ck_assert_int_eq(connect_opts_new(cop), CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_new(&sc, CONNECT_TLS_SERVER),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_cert_file(sc,
						      CERTDIR "/server.pem",
						      CERTDIR "/server-key.pem"),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_new(&cc, CONNECT_TLS_CLIENT),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_ca_file(cc, CERTDIR "/ca.pem"),
			 CONNECT_OK);
	connect_opts_set_tls(*sop, sc);
	connect_opts_set_tls(*cop, cc);
	connect_opts_set_server_name(*cop, "localhost");
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}

START_TEST(tls_records_whole)
{
	static const size_t sizes[] = { 1, 100, 16000, 16384, 70000, 300000 };
	struct cn_fault_plan p;
	connect_listener *l;
	connect_conn *c, *s;
	char port[16];
	uint32_t seq = 0;

	cn_fault_plan_init(&p);
	p.messages = true;
	cn_fault_set(&p);
	/* t_listen / t_dial of the TLS row, with the fault layer below TLS:
	 * both sides' TLS writes go through it. */
	{
		connect_opts *so, *co;
		char url[96];

		tls_opts(&so, &co);
		ck_assert_int_eq(connect_listen(&l, "tls+fault+tcp://127.0.0.1:0",
						so),
				 CONNECT_OK);
		snprintf(port, sizeof(port), "%d", connect_listener_port(l));
		snprintf(url, sizeof(url), "tls+fault+tcp://127.0.0.1:%s", port);
		ck_assert_int_eq(connect_dial(&c, url, co), CONNECT_OK);
		ck_assert_int_eq(connect_accept_wait(l, &s, scaled_ms(5000)),
				 CONNECT_OK);
		connect_opts_free(so);
		connect_opts_free(co);
	}
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			connect_datagram *dg;
			char why[200];

			ck_assert_int_eq(connect_send(c, dg_make(1, seq,
								 sizes[i])),
					 CONNECT_OK);
			ck_assert_int_eq(connect_recv_wait(s, &dg,
							   scaled_ms(5000)),
					 CONNECT_OK);
			ck_assert_msg(dg_check(dg, 1, seq, sizes[i], why,
					       sizeof(why)),
				      "%s", why);
			/* and back */
			ck_assert_int_eq(connect_send(s, dg), CONNECT_OK);
			ck_assert_int_eq(connect_recv_wait(c, &dg,
							   scaled_ms(5000)),
					 CONNECT_OK);
			connect_datagram_free(dg);
			seq++;
		}
	ck_assert_int_eq(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
	ck_assert_uint_gt(cn_fault_messages(), 20);
	ck_assert_msg(cn_fault_bad_records() == 0,
		      "%llu of %llu messages were not one whole TLS record",
		      (unsigned long long)cn_fault_bad_records(),
		      (unsigned long long)cn_fault_messages());
}
END_TEST

#ifdef CONNECT_TEST_SCTP
/*
 * DTLS over SCTP: a record that fails its check below DTLS (a byte
 * flipped between DTLS and SCTP, past SCTP-AUTH's reach) is dropped by
 * GnuTLS without a word; the library must make it an error, never a
 * silent gap.  The receiver gets every datagram up to the bad record, in
 * order, then CONNECT_ETLS.
 */
START_TEST(dtls_bad_record_fails)
{
	struct cn_fault_plan p;
	connect_opts *so, *co;
	connect_listener *l;
	connect_conn *c, *s;
	connect_datagram *dg;
	char url[96], why[256] = "";
	uint32_t got = 0;
	int rc = CONNECT_OK;

	cn_fault_plan_init(&p);
	p.side = CN_FAULT_CLIENT;
	p.messages = true;
	p.corrupt_send_at = 200000; /* far past the handshake */
	cn_fault_set(&p);
	tls_opts(&so, &co);
	connect_opts_set(so, CONNECT_OPT_SCTP_UDP_PORT, 0);
	connect_opts_set(co, CONNECT_OPT_SCTP_UDP_PORT, 0);
	ck_assert_int_eq(connect_listen(&l, "dtls+fault+sctp://127.0.0.1:0",
					so),
			 CONNECT_OK);
	snprintf(url, sizeof(url), "dtls+fault+sctp://127.0.0.1:%d",
		 connect_listener_port(l));
	ck_assert_int_eq(connect_dial(&c, url, co), CONNECT_OK);
	ck_assert_int_eq(connect_accept_wait(l, &s, scaled_ms(10000)),
			 CONNECT_OK);
	connect_opts_free(so);
	connect_opts_free(co);
	/* 400 datagrams of 1,000 bytes: the bad byte is in the 200th. */
	for (uint32_t i = 0; i < 400; i++)
		ck_assert_int_eq(connect_send_wait(c, dg_make(1, i, 1000),
						   scaled_ms(10000)),
				 CONNECT_OK);
	for (;;) {
		rc = connect_recv_wait(s, &dg, scaled_ms(10000));
		if (rc != CONNECT_OK)
			break;
		ck_assert_msg(dg_check(dg, 1, got, 1000, why, sizeof(why)),
			      "datagram %u: %s", got, why);
		connect_datagram_free(dg);
		got++;
	}
	connect_conn_error(s, why, sizeof(why));
	ck_assert_msg(rc == CONNECT_ETLS, "after %u datagrams: %s (%s)", got,
		      connect_err_name(rc), why);
	ck_assert_msg(strstr(why, "dropped") != NULL, "reason: %s", why);
	ck_assert_uint_lt(got, 400);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST
#endif

/* ---------------------------------------------------------------------- */
/* Peers that vanish mid-frame                                             */
/* ---------------------------------------------------------------------- */

/* Two whole frames and half of a third, by a raw peer; then `end`. */
static void two_and_a_half(int fd)
{
	uint8_t buf[64];

	ck_assert(raw_send_all(fd, buf, frame_put(buf, 4 + 4, 1, 1,
						  "\0\0\0\0", 4)));
	ck_assert(raw_send_all(fd, buf, frame_put(buf, 4 + 4, 1, 1,
						  "\0\0\0\1", 4)));
	ck_assert(raw_send_all(fd, buf, frame_put(buf, 4 + 100, 1, 1,
						  "0123456789", 10)));
}

static void expect_two_then(connect_conn *s, int want1, int want2)
{
	connect_datagram *dg;
	int rc;

	for (uint32_t i = 0; i < 2; i++) {
		ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(5000)),
				 CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), i);
		connect_datagram_free(dg);
	}
	rc = connect_recv_wait(s, &dg, scaled_ms(5000));
	ck_assert_msg(rc == want1 || rc == want2, "then: %s",
		      connect_err_name(rc));
}

/* A reset in the middle of a frame: the whole frames, then the reset. */
START_TEST(reset_mid_frame)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	struct linger lg = { 1, 0 };
	connect_conn *s;
	int fd;

	fd = raw_dial(T_TCP4, connect_listener_port(l));
	s = t_accept_ok(l, scaled_ms(5000));
	two_and_a_half(fd);
	sleep_ms(50);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	expect_two_then(s, CONNECT_ECONNRESET, CONNECT_ECONNRESET);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST

/* A peer process killed with SIGKILL in the middle of a datagram. */
START_TEST(peer_killed_mid_datagram)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	int port = connect_listener_port(l), status;
	connect_conn *s;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = raw_dial(T_TCP4, port);

		two_and_a_half(fd);
		pause(); /* until killed */
		_exit(0);
	}
	s = t_accept_ok(l, scaled_ms(5000));
	sleep_ms(100);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	expect_two_then(s, CONNECT_ETRUNCATED, CONNECT_ECONNRESET);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST

/*
 * A peer that sends and then ends its side (half-close) still gets the
 * echo of everything it sent, then the end of the stream.
 */
START_TEST(half_close_gets_echoes)
{
	enum { K = 200 };
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	struct echo_server *e = echo_start(l, scaled_ms(5000));
	uint8_t buf[64], in[K * 12];
	size_t have = 0;
	uint64_t echoed = 0;
	ssize_t n;
	int fd;

	fd = raw_dial(T_TCP4, connect_listener_port(l));
	for (uint32_t i = 0; i < K; i++) {
		uint8_t seq[4] = { 0, 0, (uint8_t)(i >> 8), (uint8_t)i };

		ck_assert(raw_send_all(fd, buf,
				       frame_put(buf, 8, 1, 3, seq, 4)));
	}
	shutdown(fd, SHUT_WR);
	while ((n = recv(fd, in + have, sizeof(in) - have, 0)) > 0)
		have += (size_t)n;
	ck_assert_int_eq(n, 0); /* a clean end after the echoes */
	ck_assert_uint_eq(have, sizeof(in));
	for (uint32_t i = 0; i < K; i++)
		ck_assert_uint_eq(in[i * 12 + 11], (uint8_t)i);
	close(fd);
	ck_assert_int_eq(echo_stop(e, scaled_ms(5000), &echoed), CONNECT_EEOF);
	ck_assert_uint_eq(echoed, K);
	connect_listener_close(l);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* A million datagrams queued at close                                     */
/* ---------------------------------------------------------------------- */

struct counter {
	pthread_t th;
	connect_conn *s;
	uint32_t got;
	int end;
};

static void *count_main(void *arg)
{
	struct counter *k = arg;
	connect_datagram *dg;
	int rc;

	while ((rc = connect_recv_wait(k->s, &dg, scaled_ms(30000))) ==
	       CONNECT_OK) {
		if (dg_seq(dg) != k->got) {
			connect_datagram_free(dg);
			rc = -1000;
			break;
		}
		connect_datagram_free(dg);
		k->got++;
	}
	k->end = rc;
	return NULL;
}

/*
 * With a linger long enough, all of a million queued datagrams are
 * delivered and close says so; cut at once (linger 0), close reports
 * failure and counts the datagrams never handed to the network, none of
 * which arrives: nothing is lost without close saying so.
 */
static void million(int linger_ms, bool all)
{
	const uint32_t M = test_light() ? 100000 : 1000000;
	connect_opts *o = opts_make(CONNECT_OPT_SEND_QUEUE_MSGS, M,
				    CONNECT_OPT_SEND_QUEUE_BYTES, 256 << 20, 0,
				    0);
	/*
	 * For the cut, the receiver takes in at most 64 datagrams until the
	 * counter starts, and the datagrams are big enough (27 MB light, 30
	 * MB otherwise) that the kernel's buffers cannot hold the rest, however
	 * slowly this runs (valgrind): some must still be queued at close.
	 */
	connect_opts *so = all ? NULL
			       : opts_make(CONNECT_OPT_RECV_QUEUE_MSGS, 64, 0,
					   0, 0, 0);
	const size_t size = all ? 4 : test_light() ? 256 : 16;
	connect_conn *c, *s;
	struct counter k = { 0 };
	size_t unsent = 99;
	int rc;

	t_pair(T_TCP4, o, so, &c, &s);
	for (uint32_t i = 0; i < M; i++) {
		connect_datagram *dg = dg_make(1, i, size);

		rc = connect_send(c, dg);
		ck_assert_msg(rc == CONNECT_OK, "send %u: %s", i,
			      connect_err_name(rc));
	}
	k.s = s;
	t_thread_start(&k.th, count_main, &k);
	rc = connect_close(c, linger_ms, &unsent);
	t_thread_join(k.th, 60000, "counter");
	ck_assert_msg(k.end != -1000, "out of order after %u", k.got);
	if (all) {
		ck_assert_msg(rc == CONNECT_OK, "close: %s",
			      connect_err_name(rc));
		ck_assert_uint_eq(unsent, 0);
		ck_assert_uint_eq(k.got, M);
		ck_assert_int_eq(k.end, CONNECT_EEOF);
	} else {
		/* Cut at once: what was never handed to the network is
		 * counted; what was handed over may be lost in flight too,
		 * so close must not say OK, and the peer sees no clean end.
		 * Nothing counted unsent arrived. */
		ck_assert_msg(rc != CONNECT_OK, "close said OK with %zu unsent",
			      unsent);
		ck_assert_uint_gt(unsent, 0);
		ck_assert_uint_le(k.got + unsent, M);
		ck_assert_int_ne(k.end, CONNECT_EEOF);
	}
	connect_close(s, 0, NULL);
	connect_opts_free(o);
	connect_opts_free(so);
}

START_TEST(close_million_delivered)
{
	million(scaled_ms(60000), true);
}
END_TEST

START_TEST(close_million_counted)
{
	million(0, false);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Thread creation failing                                                 */
/* ---------------------------------------------------------------------- */

static _Atomic int thr_count, thr_fail_at;

static int failing_create(pthread_t *th, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	if (atomic_fetch_add(&thr_count, 1) + 1 == atomic_load(&thr_fail_at))
		return EAGAIN;
	return pthread_create(th, attr, fn, arg);
}

/* One life with the nth thread failing (0: none); the count of threads
 * the library asked for. */
static int thread_life(int n)
{
	connect_listener *l = NULL;
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg;
	int rc, asked;

	atomic_store(&thr_count, 0);
	atomic_store(&thr_fail_at, n);
	cn_pthread_create = failing_create;
	rc = t_listen(T_TLS, NULL, &l);
	if (rc == CONNECT_OK) {
		rc = t_dial(T_TLS, connect_listener_port(l), NULL, &c);
		ck_assert_msg(rc == CONNECT_OK || rc == CONNECT_ETHREAD ||
				      rc == CONNECT_ECONNRESET ||
				      rc == CONNECT_ETLSNOTTLS,
			      "fail #%d: dial: %s", n, connect_err_name(rc));
	} else {
		ck_assert_int_eq(rc, CONNECT_ETHREAD);
	}
	if (c) {
		rc = connect_accept_wait(l, &s, scaled_ms(1000));
		ck_assert_msg(rc == CONNECT_OK || rc == CONNECT_ETIMEDOUT,
			      "fail #%d: accept: %s", n, connect_err_name(rc));
	}
	if (s) {
		ck_assert_int_eq(connect_send(c, dg_make(1, 0, 10)),
				 CONNECT_OK);
		ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(5000)),
				 CONNECT_OK);
		connect_datagram_free(dg);
	}
	ck_assert_msg(n > 0 || s, "a life without failures failed");
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	asked = atomic_load(&thr_count);
	/* The listener, if any, serves the next client.  (The hook is
	 * changed only while no library thread runs; until then it fails
	 * nothing more.) */
	atomic_store(&thr_fail_at, 0);
	if (l) {
		c = t_dial_ok(T_TLS, connect_listener_port(l), NULL);
		s = t_accept_ok(l, scaled_ms(5000));
		connect_close(c, 0, NULL);
		connect_close(s, 0, NULL);
	}
	connect_listener_close(l);
	/* Changed only while no library thread that starts threads runs. */
	cn_pthread_create = pthread_create;
	return asked;
}

/*
 * Fail the 1st, 2nd, ... thread the library starts during a listen, a
 * dial, an accept and a round trip over TLS, for every thread one such
 * life asks for (counted first): each failure is CONNECT_ETHREAD where a
 * call can report it, or a connection that never arrives; the listener
 * serves the next client, and a connection made before (a bystander)
 * keeps working throughout.
 */
START_TEST(thread_creation_fails)
{
	connect_conn *bc, *bs;
	connect_datagram *dg;
	int total;

	t_pair(T_TCP4, NULL, NULL, &bc, &bs);
	total = thread_life(0);
	ck_assert_int_ge(total, 6);
	for (int n = 1; n <= total + 2; n++) {
		thread_life(n);
		ck_assert_int_eq(connect_send(bc, dg_make(1, (uint32_t)n, 10)),
				 CONNECT_OK);
		ck_assert_int_eq(connect_recv_wait(bs, &dg, scaled_ms(5000)),
				 CONNECT_OK);
		ck_assert_uint_eq(dg_seq(dg), (uint32_t)n);
		connect_datagram_free(dg);
	}
	ck_assert_int_eq(connect_close(bc, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(bs, 0, NULL);
}
END_TEST

/* A test case of its own for each test. */
static void add_case(Suite *s, const char *name, const TTest *test, int to)
{
	TCase *tc = t_tcase(s, name, to);

	tcase_add_checked_fixture(tc, plan_reset, NULL);
	tcase_add_test(tc, test);
}

int main(void)
{
	Suite *s = suite_create("faults");

	if (cn_fault_register() != 0)
		return 99;
	add_case(s, "send_fails_at_byte", send_fails_at_byte, 60);
	add_case(s, "recv_fails_at_byte", recv_fails_at_byte, 60);
	add_case(s, "tls_records_whole", tls_records_whole, 60);
#ifdef CONNECT_TEST_SCTP
	add_case(s, "dtls_bad_record", dtls_bad_record_fails, 60);
#endif
	add_case(s, "reset_mid_frame", reset_mid_frame, 60);
	add_case(s, "peer_killed", peer_killed_mid_datagram, 60);
	add_case(s, "half_close", half_close_gets_echoes, 60);
	add_case(s, "million_delivered", close_million_delivered, 300);
	add_case(s, "million_counted", close_million_counted, 300);
	add_case(s, "thread_creation", thread_creation_fails, 120);
	return t_run(s, 0);
}
