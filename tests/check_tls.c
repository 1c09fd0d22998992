/*
 * The TLS transport: configuration errors, verified handshakes (DNS names,
 * IP addresses, IPv6, mutual TLS), the specific code of every handshake
 * failure on either side, handshake timeouts that stall nobody, close
 * semantics (close_notify versus truncation), TLS 1.3 key updates under
 * load with a raw GnuTLS peer, and interoperability with independent TLS
 * stacks (Python's ssl module through tests/peers/tls_peer.py, and
 * gnutls-cli when it is installed).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The raw GnuTLS peers run in threads of this process and never assert:
 * they record what went wrong, and the test checks after joining them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <gnutls/gnutls.h>

#include "connect.h"
#include "helpers.h"

#ifndef PEERDIR
#define PEERDIR "tests/peers"
#endif

extern char **environ;

#define CERT(name) CERTDIR "/" name ".pem"
#define KEY(name) CERTDIR "/" name "-key.pem"
#define MISSING CERTDIR "/no-such-file.pem"

/* The rows of a table (tcase_add_loop_test). */
#define N_ROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define TLS13_ONLY "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define TLS12_ONLY "NORMAL:-VERS-ALL:+VERS-TLS1.2"

/* Assert a library code, naming both codes when it differs. */
#define ck_assert_code(expr, want)                                            \
	do {                                                                  \
		int got_ = (expr), want_ = (want);                            \
		ck_assert_msg(got_ == want_, "%s: got %s (%d), want %s",      \
			      #expr, connect_err_name(got_), got_,            \
			      connect_err_name(want_));                       \
	} while (0)

/* Payload length of numbered datagram `seq` (>= 4: carries the number). */
static size_t len_of(uint32_t seq)
{
	return 4 + seq % 500;
}

/* ---------------------------------------------------------------------- */
/* Configurations, listeners, dialing                                      */
/* ---------------------------------------------------------------------- */

static connect_tls_config *cfg_server(const char *cert, const char *key)
{
	connect_tls_config *cfg = NULL;
	int rc;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	rc = connect_tls_config_cert_file(cfg, cert, key);
	ck_assert_msg(rc == CONNECT_OK, "cert_file %s: %s", cert,
		      connect_err_name(rc));
	return cfg;
}

/* A server asking for client certificates issued by ca.pem. */
static connect_tls_config *cfg_server_auth(int mode)
{
	connect_tls_config *cfg = cfg_server(CERT("server"), KEY("server"));

	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_client_auth(cfg, mode), CONNECT_OK);
	return cfg;
}

/* A client trusting ca.pem, with a certificate of its own if cert != NULL. */
static connect_tls_config *cfg_client(const char *cert, const char *key)
{
	connect_tls_config *cfg = NULL;
	int rc;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
		       CONNECT_OK);
	if (cert) {
		rc = connect_tls_config_cert_file(cfg, cert, key);
		ck_assert_msg(rc == CONNECT_OK, "cert_file %s: %s", cert,
			      connect_err_name(rc));
	}
	return cfg;
}

static connect_listener *listen_ok(connect_tls_config *cfg, const char *addr)
{
	connect_listener *l = NULL;
	int rc = connect_tls_listen(&l, addr, cfg, NULL);

	ck_assert_msg(rc == CONNECT_OK, "tls listen %s: %s", addr,
		      connect_err_name(rc));
	ck_assert_int_gt(connect_listener_port(l), 0);
	return l;
}

/* Listen on 127.0.0.1 with a server certificate; the config is released. */
static connect_listener *listen_with(const char *cert, const char *key)
{
	connect_tls_config *cfg = cfg_server(cert, key);
	connect_listener *l = listen_ok(cfg, "127.0.0.1:0");

	connect_tls_config_free(cfg); /* the listener holds a reference */
	return l;
}

/* connect_tls_client to host (an IPv4 or IPv6 literal) and port. */
static int dial(const char *host, int port, const char *name,
		connect_tls_config *cfg, connect_conn **cp)
{
	char addr[96];

	if (strchr(host, ':'))
		snprintf(addr, sizeof(addr), "[%s]:%d", host, port);
	else
		snprintf(addr, sizeof(addr), "%s:%d", host, port);
	return connect_tls_client(cp, addr, name, cfg, NULL);
}

/* A raw listening socket on the loopback address of `family`, port 0. */
static int raw_listen(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*s4);
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	ck_assert_msg(bind(fd, (struct sockaddr *)&ss, sl) == 0, "bind: %s",
		      strerror(errno));
	ck_assert_msg(listen(fd, 8) == 0, "listen: %s", strerror(errno));
	sl = sizeof(ss);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	*port = ntohs(family == AF_INET6 ?
			      ((struct sockaddr_in6 *)&ss)->sin6_port :
			      ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Accept on a raw listening socket within timeout_ms; -1 if none came. */
static int raw_accept(int lfd, int timeout_ms)
{
	if (fd_readable(lfd, timeout_ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* A TCP connection to 127.0.0.1:port for a peer thread (no asserts). */
static int tcp_connect4(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Bound every blocking read and write on a raw socket. */
static void sock_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
			      .tv_usec = (ms % 1000) * 1000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The listener's handshake failure count (wait_for predicates). */
struct fail_wait {
	connect_listener *l;
	int min;
};

static bool failures_reached(void *arg)
{
	struct fail_wait *w = arg;

	return connect_listener_tls_failures(w->l, NULL, NULL, 0) >= w->min;
}

/*
 * Wait until the listener counted `min` failed handshakes; return the
 * count, the last code and its reason.
 */
static int wait_failures(connect_listener *l, int min, int timeout_ms,
			 int *last, char *why, size_t len)
{
	struct fail_wait w = { l, min };

	(void)wait_for(failures_reached, &w, timeout_ms);
	*last = CONNECT_OK;
	return connect_listener_tls_failures(l, last, why, len);
}

/* ---------------------------------------------------------------------- */
/* Datagram exchanges                                                      */
/* ---------------------------------------------------------------------- */

/* Send n numbered datagrams and read back n echoes, checking each. */
static void exchange(connect_conn *c, uint32_t n, uint16_t tag)
{
	connect_datagram *dg;
	char why[200];

	for (uint32_t i = 0; i < n; i++) {
		dg = dg_make(tag, i, len_of(i));
		ck_assert_code(connect_send_wait(c, dg, scaled_ms(5000)),
			       CONNECT_OK);
	}
	for (uint32_t i = 0; i < n; i++) {
		int rc = connect_recv_wait(c, &dg, scaled_ms(5000));

		ck_assert_msg(rc == CONNECT_OK, "echo %u of %u: %s", i, n,
			      connect_err_name(rc));
		ck_assert_msg(dg_check(dg, tag, i, len_of(i), why,
				       sizeof(why)),
			      "echo %u: %s", i, why);
		connect_datagram_free(dg);
	}
}

/*
 * Dial the echo listener l on host with server_name and client config
 * ccfg, echo 100 datagrams, close cleanly, and check that the echo side
 * saw a clean end of stream (our close_notify).
 */
static void echo_through(connect_listener *l, const char *host,
			 const char *name, connect_tls_config *ccfg)
{
	struct echo_server *e = echo_start(l, scaled_ms(10000));
	connect_conn *c = NULL;
	uint64_t echoed = 0;
	size_t unsent = 99;
	int rc;

	rc = dial(host, connect_listener_port(l), name, ccfg, &c);
	if (rc != CONNECT_OK) {
		char why[256] = "";
		int last;

		echo_stop(e, 0, NULL);
		connect_listener_tls_failures(l, &last, why, sizeof(why));
		ck_abort_msg("dial %s name %s: %s (server: %s)", host,
			     name ? name : "(null)", connect_err_name(rc),
			     why);
	}
	exchange(c, 100, 7);
	ck_assert_code(connect_close(c, scaled_ms(5000), &unsent), CONNECT_OK);
	ck_assert_uint_eq(unsent, 0);
	ck_assert_code(echo_stop(e, scaled_ms(5000), &echoed), CONNECT_EEOF);
	ck_assert_uint_eq(echoed, 100);
}

/* ---------------------------------------------------------------------- */
/* 1. Configuration errors                                                 */
/* ---------------------------------------------------------------------- */

START_TEST(config_new_errors)
{
	connect_tls_config *cfg = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, 2), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_new(&cfg, -1), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_new(&cfg, 1000), CONNECT_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_code(connect_tls_config_new(NULL, CONNECT_TLS_CLIENT),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_ptr_nonnull(cfg);
	connect_tls_config_free(cfg);
	connect_tls_config_free(NULL);
}
END_TEST

START_TEST(config_cert_errors)
{
	connect_tls_config *cfg = NULL;
	connect_listener *l;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_cert_file(cfg, MISSING,
						    KEY("server")),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("server"),
						    MISSING),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("garbled"),
						    KEY("server")),
		       CONNECT_ETLSCONFIG);
	/* The key of another certificate. */
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("server"),
						    KEY("client")),
		       CONNECT_ETLSCONFIG);
	/* A certificate where the key should be. */
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("server"),
						    CERT("server")),
		       CONNECT_ETLSCONFIG);
	/* Every failure left no certificate behind: still unusable. */
	l = NULL;
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", cfg, NULL),
		       CONNECT_ETLSCONFIG);
	ck_assert_ptr_null(l);
	connect_tls_config_free(cfg);
}
END_TEST

/*
 * A failed cert_file call must leave the configuration as it was: after
 * each kind of failure, loading the right pair gives a working server.
 */
START_TEST(failed_cert_load_leaves_no_trace)
{
	static const char *const bad[][2] = {
		{ MISSING, KEY("server") },
		{ CERT("server"), MISSING },
		{ CERT("garbled"), KEY("server") },
		{ CERT("server"), CERT("server") },
		{ CERT("server"), KEY("client") },   /* key of another cert */
		{ CERT("client"), KEY("server") },   /* the other way round */
	};
	connect_tls_config *cc = cfg_client(NULL, NULL);
	char failed[512] = "";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		connect_tls_config *sc = NULL;
		connect_listener *l;
		struct echo_server *e;
		connect_conn *c = NULL;
		char why[256] = "";
		int last, rc;

		ck_assert_code(connect_tls_config_new(&sc, CONNECT_TLS_SERVER),
			       CONNECT_OK);
		ck_assert_code(connect_tls_config_cert_file(sc, bad[i][0],
							    bad[i][1]),
			       CONNECT_ETLSCONFIG);
		ck_assert_code(connect_tls_config_cert_file(sc, CERT("server"),
							    KEY("server")),
			       CONNECT_OK);
		l = listen_ok(sc, "127.0.0.1:0");
		connect_tls_config_free(sc);
		e = echo_start(l, scaled_ms(5000));
		rc = dial("127.0.0.1", connect_listener_port(l), "localhost",
			  cc, &c);
		if (rc == CONNECT_OK)
			connect_close(c, 0, NULL);
		echo_stop(e, rc == CONNECT_OK ? scaled_ms(5000) : 0, NULL);
		if (rc != CONNECT_OK) {
			(void)wait_failures(l, 1, scaled_ms(2000), &last, why,
					    sizeof(why));
			snprintf(failed + strlen(failed),
				 sizeof(failed) - strlen(failed),
				 "[after cert_file(%s, %s) failed: dial %s, "
				 "server: %s] ",
				 strrchr(bad[i][0], '/') + 1,
				 strrchr(bad[i][1], '/') + 1,
				 connect_err_name(rc), why);
		}
		connect_listener_close(l);
	}
	connect_tls_config_free(cc);
	ck_assert_msg(failed[0] == '\0', "%s", failed);
}
END_TEST

START_TEST(config_ca_errors)
{
	connect_tls_config *cfg = NULL;
	connect_conn *c = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_file(cfg, MISSING),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("garbled")),
		       CONNECT_ETLSCONFIG);
	/* A PEM file without any certificate. */
	ck_assert_code(connect_tls_config_ca_file(cfg, KEY("ca")),
		       CONNECT_ETLSCONFIG);
	/* None of that counts as a trusted CA: dialing is refused before any
	 * connection is attempted (port 1 on loopback is never ours). */
	ck_assert_code(connect_tls_client(&c, "127.0.0.1:1", "localhost", cfg,
					  NULL),
		       CONNECT_ETLSCONFIG);
	ck_assert_ptr_null(c);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")), CONNECT_OK);
	/* Several calls add up. */
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("other-ca")),
		       CONNECT_OK);
	connect_tls_config_free(cfg);
}
END_TEST

START_TEST(config_priority_errors)
{
	connect_tls_config *cfg = NULL;
	connect_listener *l;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_priority(cfg, "NOT-A-PRIORITY"),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_priority(cfg, "NORMAL:+NO-SUCH-X"),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_priority(cfg, ""),
		       CONNECT_ETLSCONFIG);
	/* Parses, but enables no protocol version at all. */
	ck_assert_code(connect_tls_config_priority(cfg, "NORMAL:-VERS-ALL"),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_priority(cfg, TLS13_ONLY),
		       CONNECT_OK);
	/* A failed call keeps the previous, working priorities. */
	ck_assert_code(connect_tls_config_priority(cfg, "BOGUS"),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("server"),
						    KEY("server")),
		       CONNECT_OK);
	l = listen_ok(cfg, "127.0.0.1:0");
	connect_tls_config_free(cfg);
	cfg = cfg_client(NULL, NULL);
	echo_through(l, "127.0.0.1", "localhost", cfg);
	connect_tls_config_free(cfg);
	connect_listener_close(l);
}
END_TEST

START_TEST(config_client_auth_errors)
{
	connect_tls_config *cc = NULL, *sc = NULL;

	ck_assert_code(connect_tls_config_new(&cc, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_new(&sc, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_client_auth(cc,
						      CONNECT_TLS_AUTH_NONE),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_client_auth(
			       cc, CONNECT_TLS_AUTH_REQUIRED),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_client_auth(sc, 3), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_client_auth(sc, -1), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_client_auth(NULL,
						      CONNECT_TLS_AUTH_NONE),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_client_auth(
			       sc, CONNECT_TLS_AUTH_OPTIONAL),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_handshake_timeout(sc, 0),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_handshake_timeout(sc, -5),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_handshake_timeout(NULL, 100),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_handshake_timeout(sc, 1),
		       CONNECT_OK);
	connect_tls_config_free(cc);
	connect_tls_config_free(sc);
}
END_TEST

START_TEST(listen_config_errors)
{
	connect_tls_config *cfg;
	connect_listener *l = NULL;

	/* A client configuration, even with a certificate. */
	cfg = cfg_client(CERT("client"), KEY("client"));
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", cfg, NULL),
		       CONNECT_ETLSCONFIG);
	connect_tls_config_free(cfg);
	/* A server configuration without a certificate. */
	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")), CONNECT_OK);
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", cfg, NULL),
		       CONNECT_ETLSCONFIG);
	connect_tls_config_free(cfg);
	/* Client certificates required, but no CA to verify them with. */
	cfg = cfg_server(CERT("server"), KEY("server"));
	ck_assert_code(connect_tls_config_client_auth(
			       cfg, CONNECT_TLS_AUTH_REQUIRED),
		       CONNECT_OK);
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", cfg, NULL),
		       CONNECT_ETLSCONFIG);
	ck_assert_ptr_null(l);
	connect_tls_config_free(cfg);
}
END_TEST

START_TEST(dial_config_errors)
{
	connect_tls_config *cfg = NULL, *scfg;
	connect_listener *l = listen_with(CERT("server"), KEY("server"));
	int port = connect_listener_port(l);
	connect_conn *c = NULL;

	/* A client configuration trusting nobody. */
	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(dial("127.0.0.1", port, "localhost", cfg, &c),
		       CONNECT_ETLSCONFIG);
	/* A client certificate is no substitute for trust. */
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("client"),
						    KEY("client")),
		       CONNECT_OK);
	ck_assert_code(dial("127.0.0.1", port, "localhost", cfg, &c),
		       CONNECT_ETLSCONFIG);
	connect_tls_config_free(cfg);
	/* A server configuration. */
	scfg = cfg_server(CERT("server"), KEY("server"));
	ck_assert_code(connect_tls_config_ca_file(scfg, CERT("ca")),
		       CONNECT_OK);
	ck_assert_code(dial("127.0.0.1", port, "localhost", scfg, &c),
		       CONNECT_ETLSCONFIG);
	connect_tls_config_free(scfg);
	ck_assert_ptr_null(c);
	/* None of these reached the listener. */
	ck_assert_int_eq(connect_listener_tls_failures(l, NULL, NULL, 0), 0);
	connect_listener_close(l);
}
END_TEST

START_TEST(null_args)
{
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_tls_config *sc = cfg_server(CERT("server"), KEY("server"));
	connect_conn *c = NULL;
	connect_listener *l = NULL;
	const char pem[] = "x";
	int last = 12345;

	ck_assert_code(connect_tls_config_cert_file(NULL, CERT("server"),
						    KEY("server")),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_cert_file(sc, NULL, KEY("server")),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_cert_file(sc, CERT("server"), NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_cert_mem(NULL, pem, 1, pem, 1),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_cert_mem(sc, NULL, 1, pem, 1),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_cert_mem(sc, pem, 1, NULL, 1),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_ca_file(NULL, CERT("ca")),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_ca_file(cc, NULL), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_ca_mem(NULL, pem, 1),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_ca_mem(cc, NULL, 1), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_ca_system(NULL), CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_priority(NULL, "NORMAL"),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_config_priority(cc, NULL), CONNECT_EINVAL);

	ck_assert_code(connect_tls_client(NULL, "127.0.0.1:1", "localhost", cc,
					  NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_client(&c, NULL, "localhost", cc, NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_client(&c, "127.0.0.1:1", "localhost", NULL,
					  NULL),
		       CONNECT_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_code(connect_tls_listen(NULL, "127.0.0.1:0", sc, NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_tls_listen(&l, NULL, sc, NULL), CONNECT_EINVAL);
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", NULL, NULL),
		       CONNECT_EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_code(connect_listener_tls_failures(NULL, &last, NULL, 0),
		       CONNECT_EINVAL);
	connect_tls_config_free(cc);
	connect_tls_config_free(sc);
}
END_TEST

/* Read a whole (small) file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The _mem variants: same checks, and a working pair end to end. */
START_TEST(config_mem)
{
	size_t cl, kl, gl, al, xl;
	char *cert = slurp(CERT("server"), &cl);
	char *key = slurp(KEY("server"), &kl);
	char *garbled = slurp(CERT("garbled"), &gl);
	char *ca = slurp(CERT("ca"), &al);
	char *ckey = slurp(KEY("client"), &xl);
	connect_tls_config *sc = NULL, *cc = NULL;
	connect_listener *l;

	ck_assert_code(connect_tls_config_new(&sc, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_cert_mem(sc, garbled, gl, key, kl),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_cert_mem(sc, cert, cl, key, kl),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_new(&cc, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_cert_mem(cc, cert, cl, ckey, xl),
		       CONNECT_ETLSCONFIG);
	connect_tls_config_free(cc);
	cc = NULL;
	ck_assert_code(connect_tls_config_new(&cc, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_mem(cc, garbled, gl),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_ca_mem(cc, key, kl),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_ca_mem(cc, ca, al), CONNECT_OK);
	/* The library keeps copies: the buffers may go. */
	free(cert);
	free(key);
	free(garbled);
	free(ca);
	free(ckey);
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);
	echo_through(l, "127.0.0.1", "localhost", cc);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. Verified handshakes that succeed                                     */
/* ---------------------------------------------------------------------- */

START_TEST(echo_dns_name)
{
	connect_listener *l = listen_with(CERT("server"), KEY("server"));
	connect_tls_config *cc = cfg_client(NULL, NULL);

	echo_through(l, "127.0.0.1", "localhost", cc);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* server_name NULL: the IP literal of the address, checked against the
 * certificate's IP addresses. */
START_TEST(echo_ip_literal)
{
	connect_listener *l = listen_with(CERT("server"), KEY("server"));
	connect_tls_config *cc = cfg_client(NULL, NULL);

	echo_through(l, "127.0.0.1", NULL, cc);
	/* The same IP given explicitly as the server name. */
	echo_through(l, "127.0.0.1", "127.0.0.1", cc);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

START_TEST(echo_ipv6)
{
	connect_tls_config *sc, *cc;
	connect_listener *l;

	if (!have_ipv6_loopback()) {
		fprintf(stderr, "check_tls: no ::1 here, IPv6 test skipped\n");
		return;
	}
	sc = cfg_server(CERT("server"), KEY("server"));
	l = listen_ok(sc, "[::1]:0");
	connect_tls_config_free(sc);
	cc = cfg_client(NULL, NULL);
	echo_through(l, "::1", NULL, cc);
	echo_through(l, "::1", "localhost", cc);
	echo_through(l, "::1", "::1", cc);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

START_TEST(echo_tls12_and_tls13)
{
	connect_listener *l = listen_with(CERT("server"), KEY("server"));
	connect_tls_config *cc = cfg_client(NULL, NULL);

	ck_assert_code(connect_tls_config_priority(cc, TLS12_ONLY), CONNECT_OK);
	echo_through(l, "127.0.0.1", "localhost", cc);
	ck_assert_code(connect_tls_config_priority(cc, TLS13_ONLY), CONNECT_OK);
	echo_through(l, "127.0.0.1", "localhost", cc);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

START_TEST(mutual_tls)
{
	connect_tls_config *sc = cfg_server_auth(CONNECT_TLS_AUTH_REQUIRED);
	connect_listener *l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config *cc = cfg_client(CERT("client"), KEY("client"));

	connect_tls_config_free(sc);
	echo_through(l, "127.0.0.1", "localhost", cc);
	ck_assert_code(connect_tls_config_priority(cc, TLS12_ONLY), CONNECT_OK);
	echo_through(l, "127.0.0.1", "localhost", cc);
	ck_assert_int_eq(connect_listener_tls_failures(l, NULL, NULL, 0), 0);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* OPTIONAL: clients with and without a certificate both get in. */
START_TEST(optional_client_auth)
{
	connect_tls_config *sc = cfg_server_auth(CONNECT_TLS_AUTH_OPTIONAL);
	connect_listener *l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config *with = cfg_client(CERT("client"), KEY("client"));
	connect_tls_config *without = cfg_client(NULL, NULL);

	connect_tls_config_free(sc);
	echo_through(l, "127.0.0.1", "localhost", with);
	echo_through(l, "127.0.0.1", "localhost", without);
	ck_assert_int_eq(connect_listener_tls_failures(l, NULL, NULL, 0), 0);
	connect_tls_config_free(with);
	connect_tls_config_free(without);
	connect_listener_close(l);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. Handshake failures seen by the client                                */
/* ---------------------------------------------------------------------- */

/*
 * A server presenting cert/key; a client trusting ca.pem dials it with
 * `name` (NULL: the IP address it dials) and must fail with `want`.
 */
static const struct client_reject {
	const char *cert, *key, *name;
	int want;
} client_rejects[] = {
	{ CERT("other-server"), KEY("other-server"), "localhost",
	  CONNECT_ETLSUNKNOWNISSUER },
	{ CERT("server"), KEY("server"), "wrong.example",
	  CONNECT_ETLSNAMEMISMATCH },
	/* An IP address the certificate does not list. */
	{ CERT("server"), KEY("server"), "127.0.0.2",
	  CONNECT_ETLSNAMEMISMATCH },
	{ CERT("wrongname"), KEY("wrongname"), "localhost",
	  CONNECT_ETLSNAMEMISMATCH },
	/* wrongname.pem has no IP addresses at all. */
	{ CERT("wrongname"), KEY("wrongname"), NULL, CONNECT_ETLSNAMEMISMATCH },
	{ CERT("expired"), KEY("expired"), "localhost", CONNECT_ETLSEXPIRED },
	{ CERT("notyet"), KEY("notyet"), "localhost", CONNECT_ETLSNOTYETVALID },
};

/* Row _i of client_rejects.  The server must then count one failure: the
 * alert our client sent (CONNECT_ETLSALERT). */
START_TEST(client_rejects_cert)
{
	const struct client_reject *r = &client_rejects[_i];
	connect_listener *l = listen_with(r->cert, r->key);
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_conn *c = NULL;
	char why[256] = "";
	int n, last, rc;

	rc = dial("127.0.0.1", connect_listener_port(l), r->name, cc, &c);
	ck_assert_msg(rc == r->want, "%s as \"%s\": got %s, want %s", r->cert,
		      r->name ? r->name : "(null)", connect_err_name(rc),
		      connect_err_name(r->want));
	ck_assert_ptr_null(c);
	n = wait_failures(l, 1, scaled_ms(5000), &last, why, sizeof(why));
	ck_assert_msg(n == 1 && last == CONNECT_ETLSALERT,
		      "server side: %d failures, last %s (%s)", n,
		      connect_err_name(last), why);
	ck_assert_msg(strstr(why, "alert") != NULL, "server reason: %s", why);
	ck_assert_code(connect_accept(l, &c), CONNECT_EAGAIN);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* What the plain side of tls_client_to_plain_listener does. */
struct plain_side {
	pthread_t th;
	connect_listener *l;
	bool talk;    /* send a datagram at once instead of reading */
	int accept_rc;
	int send_rc;
	int recv_rc;
};

static void *plain_side_main(void *arg)
{
	struct plain_side *p = arg;
	connect_datagram *dg = NULL;
	connect_conn *c = NULL;

	p->accept_rc = connect_accept_wait(p->l, &c, scaled_ms(5000));
	if (p->accept_rc != CONNECT_OK)
		return NULL;
	if (p->talk) {
		/* A libconnect frame where a ServerHello should be. */
		dg = dg_make_nocheck(1, 0, 100);
		p->send_rc = dg ? connect_send(c, dg) : CONNECT_ENOMEM;
		if (p->send_rc != CONNECT_OK)
			connect_datagram_free(dg);
		dg = NULL;
		/* Keep the connection until the client gave up. */
		p->recv_rc = connect_recv_wait(c, &dg, scaled_ms(5000));
	} else {
		/* The ClientHello is no frame: a protocol error, then close. */
		p->recv_rc = connect_recv_wait(c, &dg, scaled_ms(5000));
	}
	connect_datagram_free(dg);
	/* With a linger: a FIN.  Without, the library resets the stream. */
	connect_close(c, scaled_ms(2000), NULL);
	return NULL;
}

/*
 * A TLS client dialing a plain TCP libconnect listener must fail within a
 * bounded time.  Three variants: nobody takes the connection from the
 * listener (the plain side holds the socket silently), the plain side
 * reads and closes on the protocol error, the plain side talks first.
 */
START_TEST(tls_client_to_plain_listener)
{
	connect_listener *l = NULL;
	connect_tls_config *cc = cfg_client(NULL, NULL);
	struct plain_side p;
	connect_conn *c = NULL;
	char addr[64];
	int64_t t0, el;
	int rc;

	ck_assert_code(connect_tls_config_handshake_timeout(cc, 2000),
		       CONNECT_OK);
	ck_assert_code(connect_tcp_listen(&l, "127.0.0.1:0", NULL), CONNECT_OK);
	t_addr(T_TCP4, connect_listener_port(l), addr, sizeof(addr));

	t0 = now_ms();
	rc = connect_tls_client(&c, addr, "localhost", cc, NULL);
	el = now_ms() - t0;
	fprintf(stderr,
		"check_tls: TLS client to an idle plain listener: %s after "
		"%lld ms\n",
		connect_err_name(rc), (long long)el);
	/* The plain side's reader cuts the connection on the protocol
	 * error, whether or not the application took it: no timeout. */
	ck_assert_code(rc, CONNECT_ETLSNOTTLS);
	ck_assert_int_lt(el, scaled_ms(1500));

	for (int talk = 0; talk < 2; talk++) {
		memset(&p, 0, sizeof(p));
		p.l = l;
		p.talk = talk;
		/* Drop what the first attempt left in the accept queue. */
		while (connect_accept(l, &c) == CONNECT_OK)
			connect_close(c, 0, NULL);
		c = NULL;
		t_thread_start(&p.th, plain_side_main, &p);
		t0 = now_ms();
		rc = connect_tls_client(&c, addr, "localhost", cc, NULL);
		el = now_ms() - t0;
		t_thread_join(p.th, 15000, "plain side");
		fprintf(stderr,
			"check_tls: TLS client to a plain peer that %s: %s "
			"after %lld ms (plain side: %s)\n",
			talk ? "talks" : "closes on EPROTO",
			connect_err_name(rc), (long long)el,
			connect_err_name(p.recv_rc));
		ck_assert_code(p.accept_rc, CONNECT_OK);
		/* The ClientHello may arrive first: the plain side's reader
		 * then cuts the connection and its send reports why. */
		ck_assert_msg(p.send_rc == CONNECT_OK ||
				      p.send_rc == CONNECT_EPROTO,
			      "plain side send: %s",
			      connect_err_name(p.send_rc));
		if (!talk)
			ck_assert_code(p.recv_rc, CONNECT_EPROTO);
		ck_assert_code(rc, CONNECT_ETLSNOTTLS);
		ck_assert_int_lt(el, scaled_ms(1500));
	}
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* A peer that accepts TCP and never says a word. */
START_TEST(silent_server)
{
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_conn *c = NULL;
	int port, lfd = raw_listen(AF_INET, &port), fd;
	int64_t t0, el;
	int rc;

	ck_assert_code(connect_tls_config_handshake_timeout(cc, 300),
		       CONNECT_OK);
	/* The kernel completes the TCP handshake from the backlog. */
	t0 = now_ms();
	rc = dial("127.0.0.1", port, "localhost", cc, &c);
	el = now_ms() - t0;
	ck_assert_code(rc, CONNECT_ETLSHANDSHAKETIMEOUT);
	ck_assert_ptr_null(c);
	ck_assert_msg(el >= 250 && el < 300 + scaled_ms(700),
		      "handshake timeout of 300 ms took %lld ms",
		      (long long)el);
	fd = raw_accept(lfd, 0);
	ck_assert_int_ge(fd, 0);
	close(fd);
	close(lfd);
	connect_tls_config_free(cc);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 4. Handshake failures seen by the server                                */
/* ---------------------------------------------------------------------- */

/*
 * A client with certificate cert/key (NULL: none) and priorities prio
 * (NULL: the default) dials a listener asking for client certificates
 * (auth), which must refuse it with `want` or `want2`.  The client sees
 * an error: `client_want` from connect_tls_client() when that is not 0,
 * else either from connect_tls_client() or, in TLS 1.3 where the client's
 * handshake ends before the server verified it, from its first recv: an
 * alert or the end of the stream.
 */
static const struct server_reject {
	const char *what;
	int auth;
	const char *prio, *cert, *key;
	int want, want2, client_want;
} server_rejects[] = {
	{ "no client cert, TLS 1.3", CONNECT_TLS_AUTH_REQUIRED, NULL, NULL,
	  NULL, CONNECT_ETLSNOCERT, CONNECT_ETLSNOCERT, 0 },
	/* In TLS 1.2 the client's handshake waits for the server's Finished:
	 * the server's alert fails connect_tls_client() itself. */
	{ "no client cert, TLS 1.2", CONNECT_TLS_AUTH_REQUIRED, TLS12_ONLY,
	  NULL, NULL, CONNECT_ETLSNOCERT, CONNECT_ETLSNOCERT,
	  CONNECT_ETLSALERT },
	/* A GnuTLS client may keep back a certificate whose issuer is not
	 * among the CAs the server asks for: then the server sees none.
	 * (python_client_untrusted_cert always sends it.) */
	{ "untrusted client cert", CONNECT_TLS_AUTH_REQUIRED, NULL,
	  CERT("other-server"), KEY("other-server"),
	  CONNECT_ETLSUNKNOWNISSUER, CONNECT_ETLSNOCERT, 0 },
	{ "expired client cert", CONNECT_TLS_AUTH_REQUIRED, NULL,
	  CERT("expired"), KEY("expired"), CONNECT_ETLSEXPIRED,
	  CONNECT_ETLSEXPIRED, 0 },
	/* A valid certificate meant for servers only (extended key usage
	 * "TLS Web Server Authentication") cannot log in as a client. */
	{ "server-only certificate used by a client",
	  CONNECT_TLS_AUTH_REQUIRED, NULL, CERT("server"), KEY("server"),
	  CONNECT_ETLSBADCERT, CONNECT_ETLSBADCERT, 0 },
	/* OPTIONAL still verifies a certificate that is sent. */
	{ "not yet valid client cert", CONNECT_TLS_AUTH_OPTIONAL, NULL,
	  CERT("notyet"), KEY("notyet"), CONNECT_ETLSNOTYETVALID,
	  CONNECT_ETLSNOTYETVALID, 0 },
};

/* Row _i of server_rejects. */
START_TEST(server_rejects_client)
{
	const struct server_reject *r = &server_rejects[_i];
	connect_tls_config *sc = cfg_server_auth(r->auth);
	connect_listener *l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config *cc = cfg_client(r->cert, r->key);
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg = NULL;
	char why[256] = "", cwhy[256] = "";
	int n, last, rc, rrc = CONNECT_OK;

	connect_tls_config_free(sc);
	if (r->prio)
		ck_assert_code(connect_tls_config_priority(cc, r->prio),
			       CONNECT_OK);
	rc = dial("127.0.0.1", connect_listener_port(l), "localhost", cc, &c);
	if (r->client_want)
		ck_assert_msg(rc == r->client_want,
			      "%s: connect_tls_client: got %s, want %s",
			      r->what, connect_err_name(rc),
			      connect_err_name(r->client_want));
	if (rc == CONNECT_OK) {
		rrc = connect_recv_wait(c, &dg, scaled_ms(5000));
		connect_datagram_free(dg);
		(void)connect_conn_error(c, cwhy, sizeof(cwhy));
		connect_close(c, 0, NULL);
		fprintf(stderr,
			"check_tls: %s: handshake done on the client, first "
			"recv: %s (%s)\n",
			r->what, connect_err_name(rrc), cwhy);
		ck_assert_msg(rrc != CONNECT_OK && rrc != CONNECT_ETIMEDOUT,
			      "%s: the client's first recv gave %s", r->what,
			      connect_err_name(rrc));
		if (rrc == CONNECT_ETLSALERT)
			ck_assert_msg(strstr(cwhy, "alert") != NULL,
				      "%s: alert without a name: \"%s\"",
				      r->what, cwhy);
	} else {
		fprintf(stderr, "check_tls: %s: connect_tls_client: %s\n",
			r->what, connect_err_name(rc));
		ck_assert_ptr_null(c);
	}
	n = wait_failures(l, 1, scaled_ms(5000), &last, why, sizeof(why));
	ck_assert_msg(n == 1 && (last == r->want || last == r->want2),
		      "%s: server side: %d failures, last %s, want %s (%s)",
		      r->what, n, connect_err_name(last),
		      connect_err_name(r->want), why);
	/* The connection is never handed out. */
	ck_assert_code(connect_accept_wait(l, &s, 300), CONNECT_ETIMEDOUT);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/* A plain TCP libconnect client sending a datagram to a TLS listener. */
START_TEST(plain_client_to_tls_listener)
{
	connect_listener *l = listen_with(CERT("server"), KEY("server"));
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg = NULL;
	char addr[64], why[256] = "";
	int n, last, rc;

	t_addr(T_TCP4, connect_listener_port(l), addr, sizeof(addr));
	ck_assert_code(connect_tcp_client(&c, addr, NULL), CONNECT_OK);
	ck_assert_code(connect_send(c, dg_make(1, 0, 100)), CONNECT_OK);
	n = wait_failures(l, 1, scaled_ms(5000), &last, why, sizeof(why));
	ck_assert_msg(n == 1 && last == CONNECT_ETLSNOTTLS,
		      "%d failures, last %s (%s)", n, connect_err_name(last),
		      why);
	/* The server hung up on the client. */
	rc = connect_recv_wait(c, &dg, scaled_ms(5000));
	ck_assert_msg(rc != CONNECT_OK && rc != CONNECT_ETIMEDOUT,
		      "plain client after the refusal: %s",
		      connect_err_name(rc));
	connect_close(c, 0, NULL);
	ck_assert_code(connect_accept_wait(l, &s, 200), CONNECT_ETIMEDOUT);
	connect_listener_close(l);
}
END_TEST

/*
 * A client that sends a byte at a time (the start of a 16 KiB handshake
 * record, then one byte every 50 ms) must not stretch the handshake past
 * its timeout: each byte must not renew the wait.
 */
START_TEST(dribbling_client_times_out)
{
	static const uint8_t head[] = { 0x16, 0x03, 0x01, 0x40, 0x00 };
	connect_tls_config *sc = cfg_server(CERT("server"), KEY("server"));
	connect_listener *l;
	char why[256] = "";
	int64_t t0, el = 0;
	int fd, n = 0, last = 0;
	uint8_t b = 0x01;

	ck_assert_code(connect_tls_config_handshake_timeout(sc, 500),
		       CONNECT_OK);
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);
	fd = raw_dial(T_TCP4, connect_listener_port(l));
	ck_assert_int_ge(fd, 0);
	t0 = now_ms();
	ck_assert(raw_send_all(fd, head, sizeof(head)));
	while (now_ms() - t0 < 500 + scaled_ms(5000)) {
		n = connect_listener_tls_failures(l, &last, why, sizeof(why));
		if (n > 0)
			break;
		if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
			break; /* the server hung up; its count follows */
		sleep_ms(50);
	}
	n = wait_failures(l, 1, scaled_ms(2000), &last, why, sizeof(why));
	el = now_ms() - t0;
	fprintf(stderr, "check_tls: dribbling client: %s after %lld ms\n",
		connect_err_name(last), (long long)el);
	ck_assert_msg(n == 1 && last == CONNECT_ETLSHANDSHAKETIMEOUT,
		      "%d failures, last %s (%s)", n, connect_err_name(last),
		      why);
	ck_assert_int_lt(el, 500 + scaled_ms(1500));
	close(fd);
	connect_listener_close(l);
}
END_TEST

/*
 * A peer whose stream is cut inside a TLS record (it closed with linger 0
 * while its writer was half-way through one) ends in CONNECT_ETRUNCATED,
 * after every whole datagram.
 */
START_TEST(cut_inside_record)
{
	enum { N = 120, LEN = 100000 };
	connect_tls_config *sc = cfg_server(CERT("server"), KEY("server"));
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_opts *o = NULL;
	connect_listener *l = NULL;
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg;
	char why[256] = "";
	int rc, got = 0;

	/* The server reads nothing until the client is gone: the client's
	 * writer blocks in the middle of a record. */
	ck_assert_code(connect_opts_new(&o), CONNECT_OK);
	ck_assert_code(connect_opts_set(o, CONNECT_OPT_RECV_QUEUE_BYTES, 1),
		       CONNECT_OK);
	ck_assert_code(connect_tls_listen(&l, "127.0.0.1:0", sc, o),
		       CONNECT_OK);
	ck_assert_code(dial("127.0.0.1", connect_listener_port(l), "localhost",
			    cc, &c),
		       CONNECT_OK);
	ck_assert_code(connect_accept_wait(l, &s, scaled_ms(5000)),
		       CONNECT_OK);
	for (int i = 0; i < N; i++)
		ck_assert_code(connect_send(c, dg_make(1, (uint32_t)i, LEN)),
			       CONNECT_OK);
	sleep_ms(300);
	connect_close(c, 0, NULL);
	while ((rc = connect_recv_wait(s, &dg, scaled_ms(5000))) ==
	       CONNECT_OK) {
		ck_assert_uint_eq(dg_seq(dg), (uint32_t)got);
		connect_datagram_free(dg);
		got++;
	}
	(void)connect_conn_error(s, why, sizeof(why));
	ck_assert_msg(got < N, "every datagram arrived: nothing was cut");
	/* linger 0 cuts the TCP stream under TLS with a reset: the server
	 * sees the reset, or the end inside a record, never a TLS decoding
	 * error and never a clean end. */
	ck_assert_msg(rc == CONNECT_ETRUNCATED || rc == CONNECT_ECONNRESET,
		      "after %d datagrams: %s (%s)", got, connect_err_name(rc),
		      why);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
	connect_opts_free(o);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/*
 * A raw TCP client that connects and stays silent holds one handshake
 * thread until the handshake timeout; it must not delay anybody else.
 */
START_TEST(silent_client_stalls_nobody)
{
	connect_tls_config *sc = cfg_server(CERT("server"), KEY("server"));
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_listener *l;
	connect_conn *c = NULL, *s = NULL;
	connect_datagram *dg = NULL;
	char why[256] = "";
	int64_t t0, t1, el;
	int raw, n, last, rc;

	/* Scaled: under valgrind the real client's handshake alone may take
	 * a good part of 2 s. */
	const int hs_ms = scaled_ms(2000);

	ck_assert_code(connect_tls_config_handshake_timeout(sc, hs_ms),
		       CONNECT_OK);
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);

	t0 = now_ms();
	raw = raw_dial(T_TCP4, connect_listener_port(l));
	sleep_ms(50); /* let the listener take the silent one first */

	t1 = now_ms();
	rc = dial("127.0.0.1", connect_listener_port(l), "localhost", cc, &c);
	ck_assert_code(rc, CONNECT_OK);
	ck_assert_code(connect_accept_wait(l, &s, scaled_ms(1000)),
		       CONNECT_OK);
	el = now_ms() - t1;
	ck_assert_msg(el < scaled_ms(1000),
		      "a TLS client next to a silent one took %lld ms",
		      (long long)el);
	ck_assert_code(connect_send(c, dg_make(3, 1, 64)), CONNECT_OK);
	ck_assert_code(connect_recv_wait(s, &dg, scaled_ms(2000)), CONNECT_OK);
	ck_assert(dg_check(dg, 3, 1, 64, NULL, 0));
	connect_datagram_free(dg);
	n = connect_listener_tls_failures(l, NULL, NULL, 0);
	if (now_ms() - t0 < hs_ms * 3 / 4)
		ck_assert_int_eq(n, 0);

	/* Then the silent one times out, after about 2 s. */
	n = wait_failures(l, 1, scaled_ms(5000), &last, why, sizeof(why));
	el = now_ms() - t0;
	ck_assert_msg(n == 1 && last == CONNECT_ETLSHANDSHAKETIMEOUT,
		      "%d failures, last %s (%s)", n, connect_err_name(last),
		      why);
	ck_assert_msg(el >= hs_ms - 100, "handshake timeout of %d ms after %lld ms",
		      hs_ms, (long long)el);
	/* The listener closed the silent socket. */
	ck_assert_int_eq(fd_readable(raw, scaled_ms(2000)), 1);
	close(raw);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_tls_config_free(cc);
	connect_listener_close(l);
}
END_TEST

/*
 * Closing a listener while a handshake is stuck must not wait for the
 * handshake timeout.
 */
START_TEST(listener_close_during_handshake)
{
	connect_tls_config *sc = cfg_server(CERT("server"), KEY("server"));
	connect_listener *l;
	int64_t t0;
	int raw;

	ck_assert_code(connect_tls_config_handshake_timeout(sc, 20000),
		       CONNECT_OK);
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);
	raw = raw_dial(T_TCP4, connect_listener_port(l));
	sleep_ms(100);
	t0 = now_ms();
	connect_listener_close(l);
	ck_assert_msg(now_ms() - t0 < scaled_ms(2000),
		      "listener close took %lld ms with a handshake stuck",
		      (long long)(now_ms() - t0));
	close(raw);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Raw GnuTLS peers                                                        */
/* ---------------------------------------------------------------------- */

/* One end of a TLS session driven directly through GnuTLS. */
struct gpeer {
	bool server;      /* server: accept on lfd; client: dial port */
	int lfd;
	int port;
	const char *prio; /* NULL: "NORMAL" */
	int fd;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	char err[256];    /* the first failure, "" if none */
};

static void note_err(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note_err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Open the TCP connection and complete the handshake; false on failure. */
static bool gpeer_open(struct gpeer *p, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int ret;

	p->fd = p->server ? raw_accept(p->lfd, timeout_ms) :
			    tcp_connect4(p->port);
	if (p->fd < 0) {
		note_err(p->err, sizeof(p->err), "no TCP connection: %s",
			 strerror(errno));
		return false;
	}
	sock_timeouts(p->fd, timeout_ms);
	ret = gnutls_certificate_allocate_credentials(&p->cred);
	if (ret < 0) {
		p->cred = NULL;
		goto fail;
	}
	if (p->server)
		ret = gnutls_certificate_set_x509_key_file(
			p->cred, CERT("server"), KEY("server"),
			GNUTLS_X509_FMT_PEM);
	else
		ret = gnutls_certificate_set_x509_trust_file(
			p->cred, CERT("ca"), GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		goto fail;
	ret = gnutls_init(&p->s, (p->server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
					 GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		p->s = NULL;
		goto fail;
	}
	ret = gnutls_priority_set_direct(p->s, p->prio ? p->prio : "NORMAL",
					 NULL);
	if (ret < 0)
		goto fail;
	ret = gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, p->cred);
	if (ret < 0)
		goto fail;
	if (!p->server) {
		ret = gnutls_server_name_set(p->s, GNUTLS_NAME_DNS, "localhost",
					     strlen("localhost"));
		if (ret < 0)
			goto fail;
		gnutls_session_set_verify_cert(p->s, "localhost", 0);
	}
	gnutls_transport_set_int(p->s, p->fd);
	gnutls_handshake_set_timeout(p->s, (unsigned)timeout_ms);
	do
		ret = gnutls_handshake(p->s);
	while (ret < 0 && !gnutls_error_is_fatal(ret) && now_ms() < deadline);
	if (ret < 0)
		goto fail;
	return true;
fail:
	note_err(p->err, sizeof(p->err), "peer setup/handshake: %s",
		 gnutls_strerror(ret));
	return false;
}

static void gpeer_close(struct gpeer *p)
{
	if (p->s)
		gnutls_deinit(p->s);
	if (p->fd >= 0)
		close(p->fd);
	if (p->cred)
		gnutls_certificate_free_credentials(p->cred);
	p->s = NULL;
	p->fd = -1;
	p->cred = NULL;
}

/* gnutls_record_send all of buf; false (and err noted) on failure. */
static bool gpeer_send(struct gpeer *p, const void *buf, size_t len,
		       int64_t deadline, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	ssize_t n;

	while (len > 0) {
		n = gnutls_record_send(p->s, b, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if (now_ms() < deadline)
				continue;
			note_err(err, errlen, "send: timed out");
			return false;
		}
		if (n < 0) {
			note_err(err, errlen, "send: %s",
				 gnutls_strerror((int)n));
			return false;
		}
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* Append wire frame `seq` of tag to buf (which has room); bytes added. */
static size_t put_numbered(uint8_t *buf, uint16_t tag, uint32_t seq)
{
	connect_datagram *dg = dg_make_nocheck(tag, seq, len_of(seq));
	size_t n;

	if (!dg)
		return 0;
	n = frame_put(buf, (uint32_t)(4 + len_of(seq)), 1, tag,
		      connect_datagram_data(dg), len_of(seq));
	connect_datagram_free(dg);
	return n;
}

/* ---------------------------------------------------------------------- */
/* 5. Close semantics                                                      */
/* ---------------------------------------------------------------------- */

/* connect_close sends close_notify after all data: the peer sees EEOF. */
START_TEST(close_notify_after_data)
{
	enum { N = 2000 };
	connect_conn *c, *s, *from, *to;
	connect_datagram *dg;
	size_t unsent = 99;
	char why[200];
	int rc;

	for (int dir = 0; dir < 2; dir++) {
		t_pair(T_TLS, NULL, NULL, &c, &s);
		from = dir ? s : c;
		to = dir ? c : s;
		for (uint32_t i = 0; i < N; i++)
			ck_assert_code(connect_send_wait(from,
							 dg_make(5, i,
								 len_of(i)),
							 scaled_ms(5000)),
				       CONNECT_OK);
		/* Close at once: everything queued still goes first. */
		ck_assert_code(connect_close(from, scaled_ms(5000), &unsent),
			       CONNECT_OK);
		ck_assert_uint_eq(unsent, 0);
		for (uint32_t i = 0; i < N; i++) {
			rc = connect_recv_wait(to, &dg, scaled_ms(5000));
			ck_assert_msg(rc == CONNECT_OK, "datagram %u: %s", i,
				      connect_err_name(rc));
			ck_assert_msg(dg_check(dg, 5, i, len_of(i), why,
					       sizeof(why)),
				      "%s", why);
			connect_datagram_free(dg);
		}
		ck_assert_code(connect_recv_wait(to, &dg, scaled_ms(5000)),
			       CONNECT_EEOF);
		ck_assert_code(connect_recv(to, &dg), CONNECT_EEOF);
		rc = connect_conn_error(to, why, sizeof(why));
		ck_assert_msg(rc == CONNECT_OK || rc == CONNECT_EEOF,
			      "clean end reported as error %s (%s)",
			      connect_err_name(rc), why);
		connect_close(to, scaled_ms(2000), NULL);
	}
}
END_TEST

/* A raw GnuTLS server that sends frames, then ends the stream its way. */
struct trunc_peer {
	struct gpeer g;
	pthread_t th;
	uint32_t frames;
	size_t partial; /* bytes of one more frame's start to send */
	bool bye;       /* gnutls_bye before closing the socket */
};

static void *trunc_peer_main(void *arg)
{
	struct trunc_peer *t = arg;
	int64_t deadline = now_ms() + scaled_ms(10000);
	uint8_t buf[1024];
	size_t n;

	if (!gpeer_open(&t->g, scaled_ms(10000)))
		goto out;
	for (uint32_t i = 0; i < t->frames; i++) {
		n = put_numbered(buf, 4, i);
		if (n == 0 || !gpeer_send(&t->g, buf, n, deadline, t->g.err,
					  sizeof(t->g.err)))
			goto out;
	}
	if (t->partial) {
		n = put_numbered(buf, 4, t->frames);
		if (!gpeer_send(&t->g, buf, t->partial < n ? t->partial : n,
				deadline, t->g.err, sizeof(t->g.err)))
			goto out;
	}
	if (t->bye) {
		int ret;

		do
			ret = gnutls_bye(t->g.s, GNUTLS_SHUT_WR);
		while ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
		       now_ms() < deadline);
		if (ret < 0)
			note_err(t->g.err, sizeof(t->g.err), "bye: %s",
				 gnutls_strerror(ret));
	}
out:
	/* No close_notify unless bye: just the TCP FIN. */
	gpeer_close(&t->g);
	return NULL;
}

/*
 * The library client reads `frames` frames from a raw GnuTLS server that
 * then sends `partial` bytes of one more frame, and ends the stream with
 * close_notify (bye) or without; the end must be reported as `want`.
 */
static const struct stream_end_case {
	uint32_t frames;
	size_t partial;
	bool bye;
	int want;
} stream_ends[] = {
	/* Truncation: no close_notify. */
	{ 50, 0, false, CONNECT_ETRUNCATED },
	{ 50, 0, true, CONNECT_EEOF },
	/* close_notify inside a frame: its header, its payload. */
	{ 50, 6, true, CONNECT_ETRUNCATED },
	{ 50, 20, true, CONNECT_ETRUNCATED },
};

/* Row _i of stream_ends. */
START_TEST(stream_end)
{
	uint32_t frames = stream_ends[_i].frames;
	size_t partial = stream_ends[_i].partial;
	bool bye = stream_ends[_i].bye;
	int want = stream_ends[_i].want;
	struct trunc_peer t;
	connect_tls_config *cc = cfg_client(NULL, NULL);
	connect_conn *c = NULL;
	connect_datagram *dg;
	char why[256];
	int port, rc;

	memset(&t, 0, sizeof(t));
	t.g.server = true;
	t.g.lfd = raw_listen(AF_INET, &port);
	t.g.fd = -1;
	t.frames = frames;
	t.partial = partial;
	t.bye = bye;
	t_thread_start(&t.th, trunc_peer_main, &t);
	rc = dial("127.0.0.1", port, "localhost", cc, &c);
	if (rc == CONNECT_OK) {
		for (uint32_t i = 0; i < frames && rc == CONNECT_OK; i++) {
			rc = connect_recv_wait(c, &dg, scaled_ms(5000));
			if (rc != CONNECT_OK) {
				snprintf(why, sizeof(why), "frame %u: %s", i,
					 connect_err_name(rc));
				break;
			}
			if (!dg_check(dg, 4, i, len_of(i), why, sizeof(why)))
				rc = CONNECT_EPROTO;
			connect_datagram_free(dg);
		}
	} else {
		snprintf(why, sizeof(why), "dial: %s", connect_err_name(rc));
	}
	t_thread_join(t.th, 15000, "raw peer");
	close(t.g.lfd);
	connect_tls_config_free(cc);
	ck_assert_msg(t.g.err[0] == '\0', "raw peer: %s", t.g.err);
	if (rc != CONNECT_OK)
		connect_close(c, 0, NULL);
	ck_assert_msg(rc == CONNECT_OK, "%s", why);

	rc = connect_recv_wait(c, &dg, scaled_ms(5000));
	connect_conn_error(c, why, sizeof(why));
	fprintf(stderr, "check_tls: %u frames%s, %s: %s (%s)\n", frames,
		partial ? " and part of one" : "",
		bye ? "close_notify" : "no close_notify", connect_err_name(rc),
		why);
	ck_assert_msg(rc == want, "end of stream: got %s, want %s (%s)",
		      connect_err_name(rc), connect_err_name(want), why);
	/* Sticky. */
	ck_assert_code(connect_recv(c, &dg), want);
	connect_close(c, 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 6. TLS 1.3 key updates under load                                       */
/* ---------------------------------------------------------------------- */

#define KU_TAG_LIB 1  /* datagrams the library side sends (echoed) */
#define KU_TAG_PEER 2 /* datagrams the raw peer originates */

/*
 * A raw GnuTLS peer driving one session from ONE thread with a
 * non-blocking socket: it checks the library's numbered frames and echoes
 * them, interleaved with numbered frames of its own, and requests key
 * updates (GNUTLS_KU_PEER) along the way, then sends close_notify and
 * reads until the library's.
 *
 * One thread, because GnuTLS 3.7 re-keys both directions of a session at
 * once: gnutls_session_key_update() (and the processing of a received
 * KeyUpdate) copies the current read AND write record state into a new
 * epoch and switches both to it, so a key update running while another
 * thread sends or receives on the session loses that thread's sequence
 * numbers ("Decryption has failed" on the other side).
 */
struct ku_peer {
	struct gpeer g;
	pthread_t th;
	uint32_t n;
	int updates;
	int64_t deadline;
	/* Output not yet handed to GnuTLS: ob[ooff..olen). */
	uint8_t *ob;
	size_t ooff, olen, ocap;
	/* Results, read after joining. */
	uint32_t got, own, echoed;
	int updates_done;
	bool got_close_notify;
	char err[256];
};

static bool ku_out_room(struct ku_peer *k, size_t more)
{
	uint8_t *nb;
	size_t cap;

	if (k->ooff > 0 && k->ooff == k->olen)
		k->ooff = k->olen = 0;
	if (k->olen + more <= k->ocap)
		return true;
	if (k->ooff > 0) {
		memmove(k->ob, k->ob + k->ooff, k->olen - k->ooff);
		k->olen -= k->ooff;
		k->ooff = 0;
		if (k->olen + more <= k->ocap)
			return true;
	}
	cap = k->ocap ? k->ocap : 65536;
	while (cap < k->olen + more)
		cap *= 2;
	nb = realloc(k->ob, cap);
	if (!nb) {
		note_err(k->err, sizeof(k->err), "out of memory");
		return false;
	}
	k->ob = nb;
	k->ocap = cap;
	return true;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Check one frame of the library's and queue its echo. */
static bool ku_take(struct ku_peer *k, const uint8_t *f, size_t flen)
{
	uint16_t tag = (uint16_t)((f[6] << 8) | f[7]);
	connect_datagram *dg = NULL;
	char why[200];
	bool ok;

	if (connect_datagram_new(&dg, tag, f + 8, flen - 8) != CONNECT_OK) {
		note_err(k->err, sizeof(k->err), "datagram_new failed");
		return false;
	}
	ok = k->got < k->n &&
	     dg_check(dg, KU_TAG_LIB, k->got, len_of(k->got), why, sizeof(why));
	connect_datagram_free(dg);
	if (!ok) {
		note_err(k->err, sizeof(k->err), "library frame %u: %s", k->got,
			 k->got < k->n ? why : "one too many");
		return false;
	}
	k->got++;
	if (!ku_out_room(k, flen))
		return false;
	memcpy(k->ob + k->olen, f, flen);
	k->olen += flen;
	k->echoed++;
	return true;
}

/* Cut the frames in buf[0..*have) off; keep the incomplete rest. */
static bool ku_parse(struct ku_peer *k, uint8_t *buf, size_t *have)
{
	size_t off = 0;

	while (*have - off >= 8) {
		uint32_t size = get32(buf + off);

		if (size < 5 || size > 4 + 1024) {
			note_err(k->err, sizeof(k->err),
				 "bad frame size %u after %u frames", size,
				 k->got);
			return false;
		}
		if (*have - off < 4 + (size_t)size)
			break;
		if (!ku_take(k, buf + off, 4 + (size_t)size))
			return false;
		off += 4 + (size_t)size;
	}
	memmove(buf, buf + off, *have - off);
	*have -= off;
	return true;
}

/* Our frame count at which the next key update is due. */
static uint32_t ku_point(const struct ku_peer *k)
{
	uint64_t n = k->n, i = (uint64_t)k->updates_done + 1;

	return (uint32_t)(n * i / ((uint64_t)k->updates + 2));
}

static bool gnutls_again(ssize_t ret)
{
	return ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED;
}

static void ku_loop(struct ku_peer *k)
{
	enum { INCAP = 65536, RECORD = 16384 };
	uint8_t *in = malloc(INCAP);
	size_t have = 0;
	bool send_pending = false, ku_pending = false, bye_sent = false;
	bool ku_due = false;
	ssize_t ret;

	if (!in) {
		note_err(k->err, sizeof(k->err), "out of memory");
		return;
	}
	while (!k->got_close_notify) {
		bool progress = false, want_out = false;

		if (now_ms() > k->deadline) {
			note_err(k->err, sizeof(k->err),
				 "timed out: %u frames in, %u out, %u echoed, "
				 "%d key updates",
				 k->got, k->own, k->echoed, k->updates_done);
			break;
		}
		/* Own frames, a bounded amount ahead; stop at a key update
		 * point until everything before it went out. */
		while (!ku_due && k->own < k->n && k->olen - k->ooff < RECORD) {
			if (!ku_out_room(k, 8 + len_of(k->own)))
				goto out;
			k->olen += put_numbered(k->ob + k->olen, KU_TAG_PEER,
						k->own);
			k->own++;
			/* Spread over the run, while the library still
			 * sends too. */
			if (k->updates_done < k->updates &&
			    k->own == ku_point(k))
				ku_due = true;
		}
		if ((ku_due || ku_pending) && !send_pending &&
		    k->ooff == k->olen) {
			ret = gnutls_session_key_update(k->g.s, GNUTLS_KU_PEER);
			if (ret == 0) {
				k->updates_done++;
				ku_due = ku_pending = false;
				progress = true;
			} else if (gnutls_again(ret)) {
				ku_pending = true;
				ku_due = false;
				want_out = true;
			} else {
				note_err(k->err, sizeof(k->err),
					 "key update %d: %s",
					 k->updates_done + 1,
					 gnutls_strerror((int)ret));
				break;
			}
		}
		if (!ku_pending && (send_pending || k->olen > k->ooff)) {
			const uint8_t *next = k->ob + k->ooff;
			size_t chunk = k->olen - k->ooff;

			if (chunk > RECORD)
				chunk = RECORD;
			/* After AGAIN, GnuTLS wants NULL/0 (or the same
			 * arguments) to finish the record it holds. */
			if (send_pending)
				ret = gnutls_record_send(k->g.s, NULL, 0);
			else
				ret = gnutls_record_send(k->g.s, next, chunk);
			if (ret > 0) {
				k->ooff += (size_t)ret;
				send_pending = false;
				progress = true;
			} else if (gnutls_again(ret)) {
				send_pending = true;
				want_out = true;
			} else {
				note_err(k->err, sizeof(k->err),
					 "send after %u frames: %s", k->own,
					 gnutls_strerror((int)ret));
				break;
			}
		}
		/* Everything sent: close_notify, then read until theirs. */
		if (!bye_sent && k->own == k->n && k->got == k->n &&
		    k->updates_done == k->updates && !ku_due && !ku_pending &&
		    !send_pending && k->ooff == k->olen) {
			ret = gnutls_bye(k->g.s, GNUTLS_SHUT_WR);
			if (ret == 0) {
				bye_sent = true;
				progress = true;
			} else if (gnutls_again(ret)) {
				want_out = true;
			} else {
				note_err(k->err, sizeof(k->err), "bye: %s",
					 gnutls_strerror((int)ret));
				break;
			}
		}
		ret = gnutls_record_recv(k->g.s, in + have, INCAP - have);
		if (ret > 0) {
			have += (size_t)ret;
			if (!ku_parse(k, in, &have))
				break;
			progress = true;
		} else if (ret == 0) {
			k->got_close_notify = true;
			if (have)
				note_err(k->err, sizeof(k->err),
					 "%zu bytes of a frame left", have);
		} else if (!gnutls_again(ret)) {
			note_err(k->err, sizeof(k->err),
				 "recv after %u frames: %s", k->got,
				 gnutls_strerror((int)ret));
			break;
		}
		if (!progress) {
			struct pollfd p = { .fd = k->g.fd, .events = POLLIN };

			if (want_out)
				p.events |= POLLOUT;
			(void)poll(&p, 1, 20);
		}
	}
out:
	free(in);
}

static void *ku_main(void *arg)
{
	struct ku_peer *k = arg;
	int fl;

	if (!gpeer_open(&k->g, scaled_ms(10000))) {
		note_err(k->err, sizeof(k->err), "%s", k->g.err);
		goto out;
	}
	fl = fcntl(k->g.fd, F_GETFL);
	if (fl < 0 || fcntl(k->g.fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		note_err(k->err, sizeof(k->err), "O_NONBLOCK: %s",
			 strerror(errno));
		goto out;
	}
	ku_loop(k);
out:
	gpeer_close(&k->g);
	free(k->ob);
	k->ob = NULL;
	return NULL;
}

/* The library side's sender. */
struct ku_sender {
	pthread_t th;
	connect_conn *c;
	uint32_t n, sent;
	int rc;
};

static void *ku_sender_main(void *arg)
{
	struct ku_sender *s = arg;
	connect_datagram *dg;

	for (uint32_t i = 0; i < s->n; i++) {
		dg = dg_make_nocheck(KU_TAG_LIB, i, len_of(i));
		if (!dg) {
			s->rc = CONNECT_ENOMEM;
			return NULL;
		}
		s->rc = connect_send_wait(s->c, dg, scaled_ms(10000));
		if (s->rc != CONNECT_OK) {
			connect_datagram_free(dg);
			return NULL;
		}
		s->sent++;
	}
	return NULL;
}

/* _i 0: the raw peer is the server, 1: the client. */
START_TEST(key_update_under_load)
{
	enum { N = 20000, UPDATES = 6 };
	bool peer_is_server = _i == 0;
	struct ku_peer k;
	struct ku_sender snd;
	connect_tls_config *cfg;
	connect_listener *l = NULL;
	connect_conn *c = NULL;
	connect_datagram *dg;
	uint32_t got_echo = 0, got_peer = 0;
	char why[256] = "";
	int port, rc, end_rc = CONNECT_OK;
	bool sender = false;

	memset(&k, 0, sizeof(k));
	memset(&snd, 0, sizeof(snd));
	k.n = N;
	k.updates = UPDATES;
	k.deadline = now_ms() + scaled_ms(30000);
	k.g.fd = -1;
	k.g.lfd = -1;
	k.g.prio = TLS13_ONLY;
	k.g.server = peer_is_server;
	if (peer_is_server) {
		cfg = cfg_client(NULL, NULL);
		k.g.lfd = raw_listen(AF_INET, &port);
	} else {
		cfg = cfg_server(CERT("server"), KEY("server"));
		l = listen_ok(cfg, "127.0.0.1:0");
		k.g.port = connect_listener_port(l);
	}
	t_thread_start(&k.th, ku_main, &k);
	if (peer_is_server)
		rc = dial("127.0.0.1", port, "localhost", cfg, &c);
	else
		rc = connect_accept_wait(l, &c, scaled_ms(10000));
	if (rc != CONNECT_OK) {
		snprintf(why, sizeof(why), "connection: %s",
			 connect_err_name(rc));
		goto join;
	}
	snd.c = c;
	snd.n = N;
	if (pthread_create(&snd.th, NULL, ku_sender_main, &snd) != 0) {
		snprintf(why, sizeof(why), "no sender thread");
		goto join;
	}
	sender = true;
	while (got_echo < N || got_peer < N) {
		bool ok;

		rc = connect_recv_wait(c, &dg, scaled_ms(10000));
		if (rc != CONNECT_OK) {
			connect_conn_error(c, why, sizeof(why));
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 " [%s after %u echoes and %u peer frames]",
				 connect_err_name(rc), got_echo, got_peer);
			break;
		}
		if (connect_datagram_tag(dg) == KU_TAG_LIB) {
			ok = dg_check(dg, KU_TAG_LIB, got_echo,
				      len_of(got_echo), why, sizeof(why));
			got_echo++;
		} else {
			ok = dg_check(dg, KU_TAG_PEER, got_peer,
				      len_of(got_peer), why, sizeof(why));
			got_peer++;
		}
		connect_datagram_free(dg);
		if (!ok)
			break;
	}
	if (got_echo == N && got_peer == N) {
		why[0] = '\0';
		/* The peer's close_notify follows everything. */
		end_rc = connect_recv_wait(c, &dg, scaled_ms(5000));
	}
join:
	if (sender)
		t_thread_join(snd.th, 15000, "sender");
	if (c)
		connect_close(c, scaled_ms(5000), NULL);
	t_thread_join(k.th, 40000, "raw peer");
	if (k.g.lfd >= 0)
		close(k.g.lfd);
	connect_listener_close(l);
	connect_tls_config_free(cfg);

	ck_assert_msg(k.err[0] == '\0', "raw peer: %s", k.err);
	ck_assert_msg(why[0] == '\0', "library side: %s", why);
	ck_assert_code(snd.rc, CONNECT_OK);
	ck_assert_uint_eq(snd.sent, N);
	ck_assert_uint_eq(got_echo, N);
	ck_assert_uint_eq(got_peer, N);
	ck_assert_uint_eq(k.got, N);
	ck_assert_uint_eq(k.own, N);
	ck_assert_uint_eq(k.echoed, N);
	ck_assert_int_eq(k.updates_done, UPDATES);
	ck_assert_code(end_rc, CONNECT_EEOF);
	ck_assert(k.got_close_notify);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 7. Independent peers: Python's ssl module, gnutls-cli                   */
/* ---------------------------------------------------------------------- */

struct child {
	pid_t pid;
	int in;  /* write end of its stdin, or -1 (stdin is /dev/null) */
	int out; /* read end of its stdout, or -1 (stdout inherited) */
};

/* An executable: $PYTHON3 (set by make check), configure's, or PATH's. */
static const char *python3_path(void)
{
	static char found[4096];
	const char *p = getenv("PYTHON3");
	const char *path = getenv("PATH");

	if (p && *p && access(p, X_OK) == 0)
		return p;
#ifdef PYTHON3
	if (access(PYTHON3, X_OK) == 0)
		return PYTHON3;
#endif
	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && n < sizeof(found) - 16) {
			snprintf(found, sizeof(found), "%.*s/python3", (int)n,
				 path);
			if (access(found, X_OK) == 0)
				return found;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* Start argv[0] with pipes to its stdin/stdout as asked; false if not. */
static bool child_spawn(struct child *ch, const char *const argv[],
			bool pipe_in, bool pipe_out)
{
	posix_spawn_file_actions_t fa;
	int ip[2] = { -1, -1 }, op[2] = { -1, -1 };
	int rc;

	ch->pid = -1;
	ch->in = ch->out = -1;
	if (pipe_in && pipe2(ip, O_CLOEXEC) != 0)
		return false;
	if (pipe_out && pipe2(op, O_CLOEXEC) != 0) {
		if (pipe_in) {
			close(ip[0]);
			close(ip[1]);
		}
		return false;
	}
	posix_spawn_file_actions_init(&fa);
	if (pipe_in)
		posix_spawn_file_actions_adddup2(&fa, ip[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
						 0);
	if (pipe_out)
		posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	/* posix_spawn's argv is char *const[] for history's sake only. */
	rc = posix_spawn(&ch->pid, argv[0], &fa, NULL,
			 (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (pipe_in)
		close(ip[0]);
	if (pipe_out)
		close(op[1]);
	if (rc != 0) {
		if (pipe_in)
			close(ip[1]);
		if (pipe_out)
			close(op[0]);
		ch->pid = -1;
		return false;
	}
	ch->in = pipe_in ? ip[1] : -1;
	ch->out = pipe_out ? op[0] : -1;
	return true;
}

/* write() all of buf to a pipe; false on error. */
static bool write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* Read exactly len bytes of the child's stdout within timeout_ms. */
static bool child_read(struct child *ch, void *buf, size_t len,
		       int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t *b = buf;
	ssize_t n;

	while (len > 0) {
		int64_t left = deadline - now_ms();

		if (left <= 0 || fd_readable(ch->out, (int)left) != 1)
			return false;
		n = read(ch->out, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* The "PORT n" line a tls_peer.py server prints first; -1 if none. */
static int child_port(struct child *ch, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char line[128];
	size_t n = 0;
	int port;

	while (n < sizeof(line) - 1) {
		int64_t left = deadline - now_ms();

		if (left <= 0 || !child_read(ch, line + n, 1, (int)left))
			return -1;
		if (line[n] == '\n') {
			line[n] = '\0';
			if (sscanf(line, "PORT %d", &port) == 1 && port > 0)
				return port;
			return -1;
		}
		n++;
	}
	return -1;
}

/*
 * Wait up to timeout_ms for the child to exit (then kill it), close our
 * pipe ends.  Returns its exit status, or -1 if it died of a signal or
 * had to be killed.
 */
static int child_wait(struct child *ch, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int st = 0;
	pid_t r;

	if (ch->in >= 0)
		close(ch->in);
	ch->in = -1;
	for (;;) {
		r = waitpid(ch->pid, &st, WNOHANG);
		if (r == ch->pid)
			break;
		if (r < 0 && errno != EINTR) {
			st = -1;
			break;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "check_tls: killing child %d\n",
				(int)ch->pid);
			kill(ch->pid, SIGKILL);
			while (waitpid(ch->pid, &st, 0) < 0 && errno == EINTR)
				;
			st = -1;
			break;
		}
		sleep_ms(5);
	}
	if (ch->out >= 0)
		close(ch->out);
	ch->out = -1;
	ch->pid = -1;
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Python is optional: say so, and pass. */
static const char *python_or_note(const char *test)
{
	const char *py = python3_path();

	if (!py)
		fprintf(stderr, "check_tls: %s: no python3, skipped\n", test);
	return py;
}

/*
 * As exchange() without asserting, for use while a child runs: NULL on
 * success, else what went wrong (in why).
 */
static const char *exchange_try(connect_conn *c, uint32_t n, uint16_t tag,
				char *why, size_t len)
{
	connect_datagram *dg;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		dg = dg_make_nocheck(tag, i, len_of(i));
		rc = dg ? connect_send_wait(c, dg, scaled_ms(5000)) :
			  CONNECT_ENOMEM;
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			snprintf(why, len, "send %u: %s", i,
				 connect_err_name(rc));
			return why;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		bool ok;

		rc = connect_recv_wait(c, &dg, scaled_ms(5000));
		if (rc != CONNECT_OK) {
			snprintf(why, len, "echo %u: %s", i,
				 connect_err_name(rc));
			return why;
		}
		ok = dg_check(dg, tag, i, len_of(i), why, len);
		connect_datagram_free(dg);
		if (!ok)
			return why;
	}
	return NULL;
}

/* The variants of python_server and python_client. */
static const struct py_variant {
	bool mutual;   /* client certificates */
	bool other;    /* server: over ::1; client: with a key update */
} py_variants[] = {
	{ false, false },
	{ true, false },
	{ false, true },
};

/* libconnect client, Python server echoing; row _i of py_variants. */
START_TEST(python_server)
{
	bool mutual = py_variants[_i].mutual, ipv6 = py_variants[_i].other;
	const char *py = python_or_note("python server");
	const char *argv[16];
	struct child ch;
	connect_tls_config *cc;
	connect_conn *c = NULL;
	char why[256] = "";
	const char *bad = NULL;
	size_t unsent = 99;
	int a = 0, port, rc, close_rc = CONNECT_OK, st;

	if (!py)
		return;
	if (ipv6 && !have_ipv6_loopback()) {
		fprintf(stderr, "check_tls: no ::1, skipped\n");
		return;
	}
	argv[a++] = py;
	argv[a++] = PEERDIR "/tls_peer.py";
	argv[a++] = "server";
	argv[a++] = "--cert";
	argv[a++] = CERT("server");
	argv[a++] = "--key";
	argv[a++] = KEY("server");
	if (mutual) {
		argv[a++] = "--ca";
		argv[a++] = CERT("ca");
	}
	if (ipv6)
		argv[a++] = "--ipv6";
	argv[a++] = "--timeout";
	argv[a++] = "10";
	argv[a] = NULL;
	cc = mutual ? cfg_client(CERT("client"), KEY("client")) :
		      cfg_client(NULL, NULL);
	ck_assert_msg(child_spawn(&ch, argv, false, true), "spawn %s: %s",
		      py, strerror(errno));
	port = child_port(&ch, scaled_ms(10000));
	if (port <= 0) {
		snprintf(why, sizeof(why), "no PORT line from tls_peer.py");
		bad = why;
	} else {
		rc = dial(ipv6 ? "::1" : "127.0.0.1", port, "localhost", cc,
			  &c);
		if (rc != CONNECT_OK) {
			snprintf(why, sizeof(why), "dial: %s",
				 connect_err_name(rc));
			bad = why;
		} else {
			bad = exchange_try(c, 100, 9, why, sizeof(why));
			close_rc = connect_close(c, scaled_ms(5000), &unsent);
		}
	}
	/* The peer exits 0 only after our close_notify. */
	st = child_wait(&ch, bad ? 0 : scaled_ms(10000));
	connect_tls_config_free(cc);
	ck_assert_msg(bad == NULL, "%s", why);
	ck_assert_code(close_rc, CONNECT_OK);
	ck_assert_uint_eq(unsent, 0);
	ck_assert_msg(st == 0, "tls_peer.py server exited with %d", st);
}
END_TEST

/* Python client, libconnect echo listener; row _i of py_variants. */
START_TEST(python_client)
{
	bool mutual = py_variants[_i].mutual;
	bool keyupdate = py_variants[_i].other;
	const char *py = python_or_note("python client");
	const char *argv[24];
	char port[16], count[16];
	struct echo_server *e;
	struct child ch;
	connect_tls_config *sc;
	connect_listener *l;
	uint64_t echoed = 0;
	uint32_t n = keyupdate ? 2000 : 100;
	int a = 0, st, rc;

	if (!py)
		return;
	sc = mutual ? cfg_server_auth(CONNECT_TLS_AUTH_REQUIRED) :
		      cfg_server(CERT("server"), KEY("server"));
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);
	snprintf(port, sizeof(port), "%d", connect_listener_port(l));
	snprintf(count, sizeof(count), "%u", n);
	argv[a++] = py;
	argv[a++] = PEERDIR "/tls_peer.py";
	argv[a++] = "client";
	argv[a++] = "--port";
	argv[a++] = port;
	argv[a++] = "--ca";
	argv[a++] = CERT("ca");
	argv[a++] = "--name";
	argv[a++] = "localhost";
	argv[a++] = "--count";
	argv[a++] = count;
	if (mutual) {
		argv[a++] = "--cert";
		argv[a++] = CERT("client");
		argv[a++] = "--key";
		argv[a++] = KEY("client");
	}
	if (keyupdate)
		argv[a++] = "--keyupdate";
	argv[a++] = "--timeout";
	argv[a++] = "10";
	argv[a] = NULL;
	e = echo_start(l, scaled_ms(15000));
	if (!child_spawn(&ch, argv, false, false)) {
		echo_stop(e, 0, NULL);
		connect_listener_close(l);
		ck_abort_msg("spawn %s: %s", py, strerror(errno));
	}
	st = child_wait(&ch, scaled_ms(20000));
	if (st == 77) {
		echo_stop(e, 0, NULL);
		connect_listener_close(l);
		fprintf(stderr, "check_tls: tls_peer.py cannot send a "
				"KeyUpdate here, skipped\n");
		return;
	}
	rc = echo_stop(e, st == 0 ? scaled_ms(5000) : 0, &echoed);
	connect_listener_close(l);
	ck_assert_msg(st == 0, "tls_peer.py client exited with %d", st);
	ck_assert_code(rc, CONNECT_EEOF);
	ck_assert_uint_eq(echoed, n);
}
END_TEST

/*
 * OpenSSL sends its certificate whatever CAs the server lists, so the
 * server's own verification is what refuses it: a Python client with
 * other-server.pem (issued by the untrusted other-ca) against a listener
 * requiring client certificates.
 */
START_TEST(python_client_untrusted_cert)
{
	const char *py = python_or_note("python client, untrusted cert");
	const char *argv[20];
	char port[16];
	connect_tls_config *sc;
	connect_listener *l;
	connect_conn *s = NULL;
	struct child ch;
	char why[256] = "";
	int a = 0, st, n, last;

	if (!py)
		return;
	sc = cfg_server_auth(CONNECT_TLS_AUTH_REQUIRED);
	l = listen_ok(sc, "127.0.0.1:0");
	connect_tls_config_free(sc);
	snprintf(port, sizeof(port), "%d", connect_listener_port(l));
	argv[a++] = py;
	argv[a++] = PEERDIR "/tls_peer.py";
	argv[a++] = "client";
	argv[a++] = "--port";
	argv[a++] = port;
	argv[a++] = "--ca";
	argv[a++] = CERT("ca");
	argv[a++] = "--count";
	argv[a++] = "1";
	argv[a++] = "--cert";
	argv[a++] = CERT("other-server");
	argv[a++] = "--key";
	argv[a++] = KEY("other-server");
	argv[a++] = "--timeout";
	argv[a++] = "5";
	argv[a] = NULL;
	if (!child_spawn(&ch, argv, false, false)) {
		connect_listener_close(l);
		ck_abort_msg("spawn %s: %s", py, strerror(errno));
	}
	st = child_wait(&ch, scaled_ms(15000));
	n = wait_failures(l, 1, scaled_ms(5000), &last, why, sizeof(why));
	ck_assert_code(connect_accept(l, &s), CONNECT_EAGAIN);
	connect_listener_close(l);
	ck_assert_msg(st == 1, "tls_peer.py client exited with %d", st);
	ck_assert_msg(n == 1 && last == CONNECT_ETLSUNKNOWNISSUER,
		      "%d failures, last %s (%s)", n, connect_err_name(last),
		      why);
}
END_TEST

/* gnutls-cli as the client of a libconnect echo listener (optional). */
START_TEST(gnutls_cli_client)
{
#ifdef GNUTLS_CLI
	static const uint8_t hello[] = { 0x00, 0x00, 0x00, 0x10, 0x00, 0x01,
					 0xff, 0xff, 'H',  'e',  'l',  'l',
					 'o',  ' ',  'w',  'o',  'r',  'l',
					 'd',  '!' };
	uint8_t back[sizeof(hello)];
	char port[32], ca[4096];
	const char *argv[] = { GNUTLS_CLI,
			       ca,
			       port,
			       "--verify-hostname=localhost",
			       "--logfile=/dev/null",
			       "127.0.0.1",
			       NULL };
	struct echo_server *e;
	struct child ch;
	connect_listener *l;
	uint64_t echoed = 0;
	bool ok;
	int st, rc;

	if (access(GNUTLS_CLI, X_OK) != 0) {
		fprintf(stderr, "check_tls: no gnutls-cli, skipped\n");
		return;
	}
	l = listen_with(CERT("server"), KEY("server"));
	snprintf(port, sizeof(port), "--port=%d", connect_listener_port(l));
	snprintf(ca, sizeof(ca), "--x509cafile=%s", CERT("ca"));
	e = echo_start(l, scaled_ms(10000));
	if (!child_spawn(&ch, argv, true, true)) {
		echo_stop(e, 0, NULL);
		connect_listener_close(l);
		ck_abort_msg("spawn gnutls-cli: %s", strerror(errno));
	}
	/* "Hello world!" with tag 65535, and its echo. */
	ok = write_all(ch.in, hello, sizeof(hello)) &&
	     child_read(&ch, back, sizeof(back), scaled_ms(10000)) &&
	     memcmp(back, hello, sizeof(hello)) == 0;
	/* End of stdin: gnutls-cli sends close_notify and exits. */
	st = child_wait(&ch, ok ? scaled_ms(10000) : 0);
	rc = echo_stop(e, ok ? scaled_ms(5000) : 0, &echoed);
	connect_listener_close(l);
	ck_assert_msg(ok, "no echo through gnutls-cli");
	ck_assert_msg(st == 0, "gnutls-cli exited with %d", st);
	ck_assert_code(rc, CONNECT_EEOF);
	ck_assert_uint_eq(echoed, 1);
#else
	fprintf(stderr, "check_tls: gnutls-cli not configured, skipped\n");
#endif
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Suite                                                                   */
/* ---------------------------------------------------------------------- */

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc;

	tc = t_tcase(s, "config", 20);
	tcase_add_test(tc, config_new_errors);
	tcase_add_test(tc, config_cert_errors);
	tcase_add_test(tc, failed_cert_load_leaves_no_trace);
	tcase_add_test(tc, config_ca_errors);
	tcase_add_test(tc, config_priority_errors);
	tcase_add_test(tc, config_client_auth_errors);
	tcase_add_test(tc, listen_config_errors);
	tcase_add_test(tc, dial_config_errors);
	tcase_add_test(tc, null_args);
	tcase_add_test(tc, config_mem);

	tc = t_tcase(s, "handshake", 30);
	tcase_add_test(tc, echo_dns_name);
	tcase_add_test(tc, echo_ip_literal);
	tcase_add_test(tc, echo_ipv6);
	tcase_add_test(tc, echo_tls12_and_tls13);
	tcase_add_test(tc, mutual_tls);
	tcase_add_test(tc, optional_client_auth);

	tc = t_tcase(s, "client_failures", 30);
	tcase_add_loop_test(tc, client_rejects_cert, 0, N_ROWS(client_rejects));
	tcase_add_test(tc, tls_client_to_plain_listener);
	tcase_add_test(tc, silent_server);

	tc = t_tcase(s, "server_failures", 30);
	tcase_add_loop_test(tc, server_rejects_client, 0,
			    N_ROWS(server_rejects));
	tcase_add_test(tc, plain_client_to_tls_listener);
	tcase_add_test(tc, silent_client_stalls_nobody);
	tcase_add_test(tc, dribbling_client_times_out);
	tcase_add_test(tc, listener_close_during_handshake);

	tc = t_tcase(s, "close", 30);
	tcase_add_test(tc, close_notify_after_data);
	tcase_add_loop_test(tc, stream_end, 0, N_ROWS(stream_ends));
	tcase_add_test(tc, cut_inside_record);

	tc = t_tcase(s, "key_update", 60);
	tcase_add_loop_test(tc, key_update_under_load, 0, 2);

	tc = t_tcase(s, "interop", 60);
	tcase_add_loop_test(tc, python_server, 0, N_ROWS(py_variants));
	tcase_add_loop_test(tc, python_client, 0, N_ROWS(py_variants));
	tcase_add_test(tc, python_client_untrusted_cert);
	tcase_add_test(tc, gnutls_cli_client);
	return s;
}

int main(void)
{
	/* A peer that vanished must not kill the test with SIGPIPE. */
	return t_run(tls_suite(), T_RUN_NO_SIGPIPE);
}
