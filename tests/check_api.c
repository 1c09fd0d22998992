/*
 * The public API's contract at its edges: argument checks, address parsing,
 * error codes of failed connects and listens, non-blocking and timed
 * accepts, options, datagrams, error strings.  Only connect.h is used.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "connect.h"
#include "helpers.h"

/* Distinct non-NULL values to see that failures leave outputs untouched. */
#define SENTINEL_CONN ((connect_conn *)(uintptr_t)0x1234)
#define SENTINEL_LISTENER ((connect_listener *)(uintptr_t)0x5678)
#define SENTINEL_DG ((connect_datagram *)(uintptr_t)0x9abc)

/* ---------------------------------------------------------------------- */
/* NULL arguments                                                          */
/* ---------------------------------------------------------------------- */

START_TEST(null_args_conn)
{
	connect_conn *c, *s, *cp = SENTINEL_CONN;
	connect_datagram *dg = NULL, *dgp = SENTINEL_DG;
	char buf[80];
	uint64_t u;
	int64_t v;

	t_pair(T_TCP4, NULL, NULL, &c, &s);
	dg = dg_make(1, 0, 10);

	ck_assert_int_eq(connect_send(NULL, dg), CONNECT_EINVAL);
	ck_assert_int_eq(connect_send(c, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_send_wait(NULL, dg, 10), CONNECT_EINVAL);
	ck_assert_int_eq(connect_send_wait(c, NULL, 10), CONNECT_EINVAL);
	ck_assert_int_eq(connect_recv(NULL, &dgp), CONNECT_EINVAL);
	ck_assert_int_eq(connect_recv(c, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_recv_wait(NULL, &dgp, 10), CONNECT_EINVAL);
	ck_assert_int_eq(connect_recv_wait(c, NULL, 10), CONNECT_EINVAL);
	ck_assert_ptr_eq(dgp, SENTINEL_DG);
	ck_assert_int_eq(connect_conn_fd(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_close(NULL, 0, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_error(NULL, buf, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_local_addr(NULL, buf, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_local_addr(c, NULL, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_local_addr(c, buf, 0), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_peer_addr(NULL, buf, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_peer_addr(c, NULL, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_stat(NULL, CONNECT_STAT_MSGS_SENT, &u),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_stat(c, CONNECT_STAT_MSGS_SENT, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_stat(c, 0, &u), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_stat(c, 9, &u), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_opt(NULL, CONNECT_OPT_LINGER_MS, &v),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_opt(c, CONNECT_OPT_LINGER_MS, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_opt(c, 0, &v), CONNECT_EINVAL);
	ck_assert_int_eq(connect_conn_opt(c, 27, &v), CONNECT_EINVAL);

	ck_assert_int_eq(connect_tcp_client(NULL, "127.0.0.1:1", NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tcp_client(&cp, NULL, NULL), CONNECT_EINVAL);
	ck_assert_ptr_eq(cp, SENTINEL_CONN);

	/* After all that the connection still works. */
	ck_assert_int_eq(connect_send(c, dg), CONNECT_OK);
	dg = NULL;
	ck_assert_int_eq(connect_recv_wait(s, &dg, scaled_ms(10000)),
			 CONNECT_OK);
	ck_assert(dg_check(dg, 1, 0, 10, NULL, 0));
	connect_datagram_free(dg);
	ck_assert_int_eq(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, 0, NULL);
}
END_TEST

START_TEST(null_args_listener)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_listener *lp = SENTINEL_LISTENER;
	connect_conn *cp = SENTINEL_CONN;
	char buf[80];
	int err;

	ck_assert_int_eq(connect_tcp_listen(NULL, "127.0.0.1:0", NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tcp_listen(&lp, NULL, NULL), CONNECT_EINVAL);
	ck_assert_ptr_eq(lp, SENTINEL_LISTENER);
	ck_assert_int_eq(connect_accept(NULL, &cp), CONNECT_EINVAL);
	ck_assert_int_eq(connect_accept(l, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_accept_wait(NULL, &cp, 10), CONNECT_EINVAL);
	ck_assert_int_eq(connect_accept_wait(l, NULL, 10), CONNECT_EINVAL);
	ck_assert_ptr_eq(cp, SENTINEL_CONN);
	ck_assert_int_eq(connect_listener_fd(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_port(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_addr(NULL, buf, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_addr(l, NULL, sizeof(buf)),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_addr(l, buf, 3), CONNECT_EINVAL);
	ck_assert_int_eq(connect_listener_tls_failures(NULL, &err, buf,
						       sizeof(buf)),
			 CONNECT_EINVAL);
	connect_listener_close(NULL);
	connect_listener_close(l);
}
END_TEST

START_TEST(null_args_objects)
{
	connect_datagram *dg = SENTINEL_DG;
	connect_opts *o = NULL;
	int64_t v;

	/* Destructors accept NULL. */
	connect_datagram_free(NULL);
	connect_opts_free(NULL);
	connect_tls_config_free(NULL);
	connect_set_logger(NULL, NULL, CONNECT_LOG_DEBUG);

	ck_assert_int_eq(connect_datagram_new(NULL, 1, "x", 1), CONNECT_EINVAL);
	ck_assert_int_eq(connect_datagram_new(&dg, 1, NULL, 1), CONNECT_EINVAL);
	ck_assert_int_eq(connect_datagram_alloc(NULL, 1, 1), CONNECT_EINVAL);
	ck_assert_ptr_eq(dg, SENTINEL_DG);

	ck_assert_int_eq(connect_opts_new(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_set(NULL, CONNECT_OPT_LINGER_MS, 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_get(NULL, CONNECT_OPT_LINGER_MS, &v),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	ck_assert_int_eq(connect_opts_get(o, CONNECT_OPT_LINGER_MS, NULL),
			 CONNECT_EINVAL);
	connect_opts_free(o);
}
END_TEST

START_TEST(null_args_tls)
{
	connect_tls_config *cc = NULL, *sc = NULL, *cfg;
	connect_conn *cp = SENTINEL_CONN;
	connect_listener *lp = SENTINEL_LISTENER;

	ck_assert_int_eq(connect_tls_config_new(NULL, CONNECT_TLS_CLIENT),
			 CONNECT_EINVAL);
	cfg = (connect_tls_config *)(uintptr_t)0x42;
	ck_assert_int_eq(connect_tls_config_new(&cfg, 7), CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_new(&cfg, -1), CONNECT_EINVAL);
	ck_assert_ptr_eq(cfg, (connect_tls_config *)(uintptr_t)0x42);
	ck_assert_int_eq(connect_tls_config_new(&cc, CONNECT_TLS_CLIENT),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_new(&sc, CONNECT_TLS_SERVER),
			 CONNECT_OK);

	ck_assert_int_eq(connect_tls_config_cert_file(NULL, "a", "b"),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_cert_file(sc, NULL, "b"),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_cert_file(sc, "a", NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_cert_mem(NULL, "a", 1, "b", 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_cert_mem(sc, NULL, 1, "b", 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_cert_mem(sc, "a", 1, NULL, 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_ca_file(NULL, "a"),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_ca_file(cc, NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_ca_mem(NULL, "a", 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_ca_mem(cc, NULL, 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_ca_system(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_client_auth(NULL,
							CONNECT_TLS_AUTH_NONE),
			 CONNECT_EINVAL);
	/* Client authentication is a server setting. */
	ck_assert_int_eq(connect_tls_config_client_auth(
				 cc, CONNECT_TLS_AUTH_REQUIRED),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_client_auth(sc, 9),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_client_auth(
				 sc, CONNECT_TLS_AUTH_OPTIONAL),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_priority(NULL, "NORMAL"),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_priority(cc, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_handshake_timeout(NULL, 1000),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_handshake_timeout(cc, 0),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_handshake_timeout(cc, -5),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_config_handshake_timeout(cc, 1000),
			 CONNECT_OK);

	ck_assert_int_eq(connect_tls_client(NULL, "127.0.0.1:1", "localhost",
					    cc, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_client(&cp, NULL, "localhost", cc, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_client(&cp, "127.0.0.1:1", "localhost",
					    NULL, NULL),
			 CONNECT_EINVAL);
	ck_assert_ptr_eq(cp, SENTINEL_CONN);
	ck_assert_int_eq(connect_tls_listen(NULL, "127.0.0.1:0", sc, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_listen(&lp, NULL, sc, NULL),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_tls_listen(&lp, "127.0.0.1:0", NULL, NULL),
			 CONNECT_EINVAL);
	ck_assert_ptr_eq(lp, SENTINEL_LISTENER);

	connect_tls_config_free(cc);
	connect_tls_config_free(sc);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Datagrams and options                                                   */
/* ---------------------------------------------------------------------- */

START_TEST(datagram_basics)
{
	connect_datagram *dg = SENTINEL_DG;
	uint8_t *p;

	ck_assert_int_eq(connect_datagram_new(&dg, 1, "x", 0), CONNECT_EEMPTY);
	ck_assert_int_eq(connect_datagram_alloc(&dg, 1, 0), CONNECT_EEMPTY);
	ck_assert_int_eq(connect_datagram_alloc(&dg, 1,
						CONNECT_MAX_PAYLOAD + 1u),
			 CONNECT_ETOOBIG);
	ck_assert_int_eq(connect_datagram_new(&dg, 1, "x",
					      CONNECT_MAX_PAYLOAD + 1u),
			 CONNECT_ETOOBIG);
	ck_assert_int_eq(connect_datagram_alloc(&dg, 1, SIZE_MAX),
			 CONNECT_ETOOBIG);
	ck_assert_ptr_eq(dg, SENTINEL_DG);

	ck_assert_int_eq(connect_datagram_new(&dg, 65535, "Hello world!", 12),
			 CONNECT_OK);
	ck_assert_uint_eq(connect_datagram_tag(dg), 65535);
	ck_assert_uint_eq(connect_datagram_version(dg), CONNECT_WIRE_VERSION);
	ck_assert_uint_eq(connect_datagram_size(dg), 12);
	ck_assert_mem_eq(connect_datagram_data(dg), "Hello world!", 12);
	connect_datagram_set_tag(dg, 7);
	ck_assert_uint_eq(connect_datagram_tag(dg), 7);
	connect_datagram_free(dg);

	ck_assert_int_eq(connect_datagram_alloc(&dg, 0, 3), CONNECT_OK);
	ck_assert_uint_eq(connect_datagram_tag(dg), 0);
	ck_assert_uint_eq(connect_datagram_size(dg), 3);
	p = connect_datagram_data(dg);
	memcpy(p, "xyz", 3);
	ck_assert_mem_eq(connect_datagram_data(dg), "xyz", 3);
	connect_datagram_free(dg);
}
END_TEST

struct opt_range {
	int opt;
	int64_t def, lo, hi;
};

static const struct opt_range opt_ranges[] = {
	{ CONNECT_OPT_SEND_QUEUE_BYTES, 16 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_SEND_QUEUE_MSGS, 65536, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_QUEUE_BYTES, 16 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_QUEUE_MSGS, 65536, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_MAX_PAYLOAD, 100000000, 1, 100000000 },
	{ CONNECT_OPT_THREAD_STACK, 256 << 10, 64 << 10, 64 << 20 },
	{ CONNECT_OPT_LINGER_MS, 5000, 0, INT32_MAX },
	{ CONNECT_OPT_TCP_NODELAY, 1, 0, 1 },
	{ CONNECT_OPT_TCP_KEEPALIVE, 1, 0, 1 },
	{ CONNECT_OPT_CONNECT_TIMEOUT_MS, 10000, 1, INT32_MAX },
	{ CONNECT_OPT_ACCEPT_QUEUE, 128, 1, 65536 },
	{ CONNECT_OPT_INBOX_BYTES, 256 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_INBOX_MSGS, 1 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_INBOX_MAX_CONNS, 0, 0, INT64_C(1) << 62 },
	{ CONNECT_OPT_SCTP_UDP_PORT, 9899, 0, 65535 },
	{ CONNECT_OPT_SCTP_PEER_UDP_PORT, 0, 0, 65535 },
	{ CONNECT_OPT_SCTP_HEARTBEAT_MS, 30000, 0, INT32_MAX },
	{ CONNECT_OPT_SCTP_MAX_RETRANS, 5, 1, 100 },
	{ CONNECT_OPT_RECV_SPIN_US, 50, 0, 1000000 },
};

START_TEST(options)
{
	size_t n = sizeof(opt_ranges) / sizeof(opt_ranges[0]);
	connect_opts *o = NULL;
	int64_t v;

	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	for (size_t k = 0; k < n; k++) {
		const struct opt_range *r = &opt_ranges[k];

		ck_assert_int_eq(connect_opts_get(o, r->opt, &v), CONNECT_OK);
		ck_assert_msg(v == r->def, "option %d: default %lld, not %lld",
			      r->opt, (long long)v, (long long)r->def);
		ck_assert_int_eq(connect_opts_set(o, r->opt, r->lo),
				 CONNECT_OK);
		ck_assert_int_eq(connect_opts_get(o, r->opt, &v), CONNECT_OK);
		ck_assert_int_eq(v, r->lo);
		ck_assert_int_eq(connect_opts_set(o, r->opt, r->hi),
				 CONNECT_OK);
		ck_assert_int_eq(connect_opts_get(o, r->opt, &v), CONNECT_OK);
		ck_assert_int_eq(v, r->hi);
		/* Out of range: refused, value unchanged. */
		ck_assert_msg(connect_opts_set(o, r->opt, r->lo - 1) ==
				      CONNECT_EINVAL,
			      "option %d accepts %lld", r->opt,
			      (long long)(r->lo - 1));
		ck_assert_msg(connect_opts_set(o, r->opt, r->hi + 1) ==
				      CONNECT_EINVAL,
			      "option %d accepts %lld", r->opt,
			      (long long)(r->hi + 1));
		ck_assert_int_eq(connect_opts_set(o, r->opt, INT64_MIN),
				 CONNECT_EINVAL);
		ck_assert_int_eq(connect_opts_get(o, r->opt, &v), CONNECT_OK);
		ck_assert_int_eq(v, r->hi);
	}
	ck_assert_int_eq(connect_opts_set(o, 0, 1), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_set(o, 27, 1), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_set(o, -1, 1), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_get(o, 0, &v), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_get(o, 27, &v), CONNECT_EINVAL);
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Addresses and connection errors                                         */
/* ---------------------------------------------------------------------- */

/* Malformed for connecting.  The IPv4 ones use loopback so that a parser
 * bug could never send a packet anywhere else. */
static const char *const bad_client_addrs[] = {
	"",
	"nocolon",
	"127.0.0.1:",
	"127.0.0.1:99999",
	"127.0.0.1:65536",
	"127.0.0.1:abc",
	"127.0.0.1:80x",
	"[::1:80",
	"::1:80",
	"[::1]",
	"[::1]:",
	"host:-1",
};

/* Malformed for listening (binding sends nothing anywhere). */
static const char *const bad_listen_addrs[] = {
	"",	      "nocolon",	"1.2.3.4:", "1.2.3.4:99999",
	"1.2.3.4:abc", "[::1:80", "::1:80",   "host:-1",
	"[::1]",
};

START_TEST(bad_addresses)
{
	size_t n;

	n = sizeof(bad_client_addrs) / sizeof(bad_client_addrs[0]);
	for (size_t k = 0; k < n; k++) {
		connect_conn *c = SENTINEL_CONN;
		int rc = connect_tcp_client(&c, bad_client_addrs[k], NULL);

		ck_assert_msg(rc == CONNECT_EADDR, "client \"%s\": %s",
			      bad_client_addrs[k], connect_err_name(rc));
		ck_assert_ptr_eq(c, SENTINEL_CONN);
	}
	n = sizeof(bad_listen_addrs) / sizeof(bad_listen_addrs[0]);
	for (size_t k = 0; k < n; k++) {
		connect_listener *l = SENTINEL_LISTENER;
		int rc = connect_tcp_listen(&l, bad_listen_addrs[k], NULL);

		ck_assert_msg(rc == CONNECT_EADDR, "listen \"%s\": %s",
			      bad_listen_addrs[k], connect_err_name(rc));
		ck_assert_ptr_eq(l, SENTINEL_LISTENER);
	}
}
END_TEST

START_TEST(unknown_host)
{
	connect_conn *c = SENTINEL_CONN;
	connect_listener *l = SENTINEL_LISTENER;

	ck_assert_int_eq(connect_tcp_client(&c, "nosuchhost.invalid:80", NULL),
			 CONNECT_ENOHOST);
	ck_assert_ptr_eq(c, SENTINEL_CONN);
	ck_assert_int_eq(connect_tcp_listen(&l, "nosuchhost.invalid:0", NULL),
			 CONNECT_ENOHOST);
	ck_assert_ptr_eq(l, SENTINEL_LISTENER);
}
END_TEST

/* A port on which nobody listens (just freed by a listener of ours). */
static int free_port(int t)
{
	connect_listener *l = t_listen_ok(t, NULL);
	int port = connect_listener_port(l);

	connect_listener_close(l);
	return port;
}

START_TEST(refused)
{
	connect_conn *c = SENTINEL_CONN;
	int port = free_port(T_TCP4);
	char addr[64];

	t_addr(T_TCP4, port, addr, sizeof(addr));
	ck_assert_int_eq(connect_tcp_client(&c, addr, NULL),
			 CONNECT_ECONNREFUSED);
	ck_assert_ptr_eq(c, SENTINEL_CONN);
	/* By name too: "localhost" resolves to loopback. */
	snprintf(addr, sizeof(addr), "localhost:%d", port);
	ck_assert_int_eq(connect_tcp_client(&c, addr, NULL),
			 CONNECT_ECONNREFUSED);
	ck_assert_ptr_eq(c, SENTINEL_CONN);
}
END_TEST

/*
 * A connect timeout needs an address that never answers; the tests may
 * reach loopback only, where a connect is always answered at once, so the
 * CONNECT_ETIMEDOUT path of connect_tcp_client is not tested here.
 */

START_TEST(address_in_use)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_listener *l2 = SENTINEL_LISTENER;
	int port = connect_listener_port(l);
	char addr[64];

	t_addr(T_TCP4, port, addr, sizeof(addr));
	ck_assert_int_eq(connect_tcp_listen(&l2, addr, NULL),
			 CONNECT_EADDRINUSE);
	ck_assert_ptr_eq(l2, SENTINEL_LISTENER);
	connect_listener_close(l);

	/* An explicit free port is bound as asked. */
	ck_assert_int_eq(connect_tcp_listen(&l, addr, NULL), CONNECT_OK);
	ck_assert_int_eq(connect_listener_port(l), port);
	connect_listener_close(l);
}
END_TEST

/*
 * Sending to a peer that has gone fails with an error code: no crash and
 * no SIGPIPE (nothing is installed for it, so a SIGPIPE would kill this
 * test's process and Check would report the signal).
 */
START_TEST(send_after_peer_closed)
{
	connect_conn *c, *s;
	connect_datagram *dg = NULL;
	int64_t deadline;
	int rc = CONNECT_OK;

	t_pair(T_TCP4, NULL, NULL, &c, &s);
	connect_close(s, 0, NULL);
	deadline = now_ms() + scaled_ms(20000);
	while (now_ms() < deadline) {
		if (!dg)
			dg = dg_make(1, 0, 1024);
		rc = connect_send_wait(c, dg, 100);
		if (rc == CONNECT_OK)
			dg = NULL;
		else if (rc != CONNECT_ETIMEDOUT)
			break;
	}
	connect_datagram_free(dg);
	ck_assert_msg(rc != CONNECT_OK && rc != CONNECT_ETIMEDOUT &&
			      rc != CONNECT_EAGAIN && rc != CONNECT_EINVAL,
		      "send after peer closed: %s", connect_err_name(rc));
	/* Failures are sticky. */
	ck_assert_int_eq(connect_send(c, dg = dg_make(1, 1, 10)), rc);
	connect_datagram_free(dg);
	/* The receive side ends too (clean FIN or reset). */
	rc = connect_recv_wait(c, &dg, scaled_ms(10000));
	ck_assert_msg(rc == CONNECT_EEOF || rc == CONNECT_ECONNRESET,
		      "recv: %s", connect_err_name(rc));
	connect_close(c, 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Accepting                                                               */
/* ---------------------------------------------------------------------- */

START_TEST(accept_nonblocking_and_timeout)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c = SENTINEL_CONN;
	int64_t t0, dt;

	ck_assert_int_eq(connect_accept(l, &c), CONNECT_EAGAIN);
	ck_assert_int_eq(connect_accept_wait(l, &c, 0), CONNECT_ETIMEDOUT);
	t0 = now_ms();
	ck_assert_int_eq(connect_accept_wait(l, &c, 300), CONNECT_ETIMEDOUT);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 290 && dt < 300 + scaled_ms(2000),
		      "accept_wait(300 ms) took %lld ms", (long long)dt);
	ck_assert_ptr_eq(c, SENTINEL_CONN);
	connect_listener_close(l);
}
END_TEST

START_TEST(listener_fd_polls)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c, *s;
	int fd = connect_listener_fd(l);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect_listener_fd(l), fd);
	ck_assert_int_eq(fd_readable(fd, 50), 0);
	c = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	ck_assert_int_eq(fd_readable(fd, scaled_ms(5000)), 1);
	ck_assert_int_eq(connect_accept(l, &s), CONNECT_OK);
	ck_assert_int_eq(fd_readable(fd, 50), 0);
	ck_assert_int_eq(connect_accept(l, &s), CONNECT_EAGAIN);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST

struct accept_waiter {
	connect_listener *l;
	atomic_bool entered;
	int rc;
	int64_t elapsed;
};

static void *accept_waiter_main(void *arg)
{
	struct accept_waiter *w = arg;
	connect_conn *c = NULL;
	int64_t t0 = now_ms();

	atomic_store(&w->entered, true);
	w->rc = connect_accept_wait(w->l, &c, scaled_ms(20000));
	w->elapsed = now_ms() - t0;
	if (w->rc == CONNECT_OK)
		connect_close(c, 0, NULL);
	return NULL;
}

static bool accept_waiter_entered(void *arg)
{
	struct accept_waiter *w = arg;

	return atomic_load(&w->entered);
}

START_TEST(listener_close_wakes_accept)
{
	struct accept_waiter w = { .l = t_listen_ok(T_TCP4, NULL) };
	pthread_t th;

	atomic_init(&w.entered, false);
	t_thread_start(&th, accept_waiter_main, &w);
	ck_assert(wait_for(accept_waiter_entered, &w, 5000));
	sleep_ms(300);
	connect_listener_close(w.l);
	t_thread_join(th, 10000, "accept waiter");
	ck_assert_msg(w.rc == CONNECT_ECLOSED, "accept_wait: %s",
		      connect_err_name(w.rc));
	ck_assert_int_lt(w.elapsed, scaled_ms(10000));
}
END_TEST

/* Connections accepted by the library but never taken are closed (and
 * freed: the sanitizer build finds leaks) with the listener. */
START_TEST(listener_close_unaccepted)
{
	enum { N = 3 };
	int base = thread_baseline(), rc;
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c[N];
	connect_datagram *dg;

	for (int k = 0; k < N; k++) {
		c[k] = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
		ck_assert_int_eq(connect_send(c[k], dg_make(1, k, 100)),
				 CONNECT_OK);
	}
	ck_assert_int_eq(fd_readable(connect_listener_fd(l), scaled_ms(5000)),
			 1);
	sleep_ms(200);
	connect_listener_close(l);
	for (int k = 0; k < N; k++) {
		rc = connect_recv_wait(c[k], &dg, scaled_ms(10000));
		ck_assert_msg(rc == CONNECT_EEOF || rc == CONNECT_ECONNRESET,
			      "client %d: %s", k, connect_err_name(rc));
		connect_close(c[k], 0, NULL);
	}
	ck_assert_int_eq(threads_settle(base, scaled_ms(5000)), base);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Errors, version, logger                                                 */
/* ---------------------------------------------------------------------- */

struct err_entry {
	int code;
	const char *name;
	const char *text;
};

static const struct err_entry err_table[] = {
#define ENTRY_(name, val, text) { val, "CONNECT_" #name, text },
	CONNECT_ERRNO_MAP(ENTRY_)
#undef ENTRY_
};

START_TEST(strerror_every_code)
{
	size_t n = sizeof(err_table) / sizeof(err_table[0]);
	const int unknown[] = { 1, 100, -(int)n, -1000, INT_MIN, INT_MAX };

	/* 0, -1, -2...: no gaps, so -n is the first unknown code. */
	for (size_t k = 0; k < n; k++) {
		const struct err_entry *e = &err_table[k];

		ck_assert_int_eq(e->code, -(int)k);
		ck_assert_str_eq(connect_strerror(e->code), e->text);
		ck_assert_str_eq(connect_err_name(e->code), e->name);
		for (size_t j = 0; j < k; j++)
			ck_assert_str_ne(err_table[j].text, e->text);
	}
	for (size_t k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
		ck_assert_ptr_nonnull(connect_strerror(unknown[k]));
		ck_assert_str_eq(connect_err_name(unknown[k]),
				 "CONNECT_EUNKNOWN");
	}
}
END_TEST

START_TEST(version_string)
{
	const char *v = connect_version_string();
	unsigned a, b, c;

	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(sscanf(v, "%u.%u.%u", &a, &b, &c), 3);
	ck_assert_str_eq(v, CONNECT_VERSION);
}
END_TEST

static atomic_int log_calls;
static atomic_int log_bad;

static void count_log(void *arg, int level, const char *id, const char *msg)
{
	atomic_fetch_add(&log_calls, 1);
	if (arg != &log_calls || level < CONNECT_LOG_ERROR ||
	    level > CONNECT_LOG_DEBUG || !id || !msg ||
	    strncmp(id, "CONNECT-", 8) != 0 ||
	    (*msg && msg[strlen(msg) - 1] == '\n'))
		atomic_fetch_add(&log_bad, 1);
}

/* The logger gets well-formed calls; removing it stops them. */
START_TEST(logger)
{
	connect_conn *c, *s;
	int calls;

	connect_set_logger(count_log, &log_calls, CONNECT_LOG_DEBUG);
	t_pair(T_TCP4, NULL, NULL, &c, &s);
	connect_close(c, scaled_ms(5000), NULL);
	connect_close(s, 0, NULL);
	connect_set_logger(NULL, NULL, CONNECT_LOG_DEBUG);
	calls = atomic_load(&log_calls);
	ck_assert_int_eq(atomic_load(&log_bad), 0);
	t_pair(T_TCP4, NULL, NULL, &c, &s);
	connect_close(c, scaled_ms(5000), NULL);
	connect_close(s, 0, NULL);
	ck_assert_int_eq(atomic_load(&log_calls), calls);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc;

	tc = tcase_create("args");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, null_args_conn);
	tcase_add_test(tc, null_args_listener);
	tcase_add_test(tc, null_args_objects);
	tcase_add_test(tc, null_args_tls);
	tcase_add_test(tc, datagram_basics);
	tcase_add_test(tc, options);
	tcase_add_test(tc, strerror_every_code);
	tcase_add_test(tc, version_string);
	suite_add_tcase(s, tc);

	tc = tcase_create("net");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, unknown_host);
	tcase_add_test(tc, refused);
	tcase_add_test(tc, address_in_use);
	tcase_add_test(tc, send_after_peer_closed);
	tcase_add_test(tc, accept_nonblocking_and_timeout);
	tcase_add_test(tc, listener_fd_polls);
	tcase_add_test(tc, listener_close_wakes_accept);
	tcase_add_test(tc, listener_close_unaccepted);
	tcase_add_test(tc, logger);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* SIGPIPE stays at its default action: send_after_peer_closed checks
	 * that the library never raises it. */
	return t_run(api_suite(), 0);
}
