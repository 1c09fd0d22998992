/*
 * Shared helpers of the tests: the suite runner every test program's main()
 * calls, test cases that must leave no thread behind, threads joined with
 * a timeout, a transport abstraction so one conformance suite (check_conn)
 * runs over TCP/IPv4, TCP/IPv6 and TLS, an echo-server thread, waits with
 * timeouts, datagrams with sequence numbers, and process probes (RSS,
 * thread count).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only the public API (connect.h) and POSIX are used.  The functions that
 * set up state (t_listen_ok, t_pair...) fail the current Check test with
 * ck_assert when something goes wrong, so call them from the test's own
 * thread only; the worker-thread helpers never assert: they record what
 * went wrong and the test checks it after joining.
 */
#ifndef CONNECT_TESTS_HELPERS_H
#define CONNECT_TESTS_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "connect.h"

#ifndef CERTDIR
#define CERTDIR "tests/certs"
#endif

/* ---------------------------------------------------------------------- */
/* Running a suite                                                         */
/* ---------------------------------------------------------------------- */

/* What t_run does besides running the suite (flags, or'ed). */
enum {
	/* Ignore SIGPIPE: a raw peer may write to a socket the other side
	 * closed.  Not for the tests that check the library never raises
	 * it (check_api). */
	T_RUN_NO_SIGPIPE = 1 << 0,
};

/*
 * The body of every test program's main(): run every test of s (freed
 * here) in Check's fork mode (CK_FORK=no runs them in this process, to
 * debug; CK_RUN_SUITE / CK_RUN_CASE pick some; CK_VERBOSITY says how much
 * to print), then kill and reap any process the tests left behind (a test
 * process that failed a check ends at once, before its teardown, and its
 * children come to us).  Returns the exit status for main: EXIT_SUCCESS,
 * EXIT_FAILURE if a test failed, 99 (a hard error) if s is NULL.
 */
int t_run(Suite *s, unsigned flags);

/*
 * A test case `name` added to s, with a timeout of timeout_s seconds
 * (Check multiplies it by CK_TIMEOUT_MULTIPLIER), whose every test must
 * end with as many threads in its process as it started with (the checked
 * fixture t_threads_setup / t_threads_teardown).
 */
TCase *t_tcase(Suite *s, const char *name, int timeout_s);
void t_threads_setup(void);
void t_threads_teardown(void);

/* ---------------------------------------------------------------------- */
/* Transports                                                              */
/* ---------------------------------------------------------------------- */

/*
 * The transports of the conformance suite: one row each.  A transport
 * joins the battery by getting a row here (and an index below) and a
 * test program in Makefile.am (check_conn_NAME, built from check_conn.c
 * with -DCONN_ROW=T_NAME); the tests only read the row.
 */
struct t_transport {
	const char *name;   /* "tcp4": the TCase name */
	const char *scheme; /* URL scheme for connect_dial / connect_listen */
	const char *host;   /* loopback host as written in a URL */
	bool tls;           /* needs the test certificates */
	bool raw;           /* a raw TCP socket can speak its stream */
	bool handshake;     /* handshakes run on listener threads */
	int family;         /* address family of a raw socket */
	bool sctp;          /* SCTP: the process's stack on any free UDP
			     * port (CONNECT_OPT_SCTP_UDP_PORT 0) */
};

enum {
	T_TCP4 = 0, /* TCP over 127.0.0.1 */
	T_TCP6 = 1, /* TCP over [::1] */
	T_TLS = 2,  /* TLS over 127.0.0.1, certificate for "localhost" */
#ifdef CONNECT_TEST_SCTP
	T_SCTP,     /* SCTP (usrsctp, UDP encapsulation) over 127.0.0.1 */
	T_DTLS,     /* DTLS 1.2 over SCTP, certificate for "localhost" */
#endif
#ifdef CONNECT_TEST_FAULT
	/* The test builds with the fault layer (check_conn_fault_*). */
	T_FAULT,     /* fault+tcp: short transfers, EINTR */
	T_TLS_FAULT, /* tls+fault+tcp: TLS over the same */
#endif
	T_COUNT
};

extern const struct t_transport t_table[T_COUNT];

/* "tcp4", "tcp6", "tls". */
const char *t_name(int t);
/* True for the transports whose stream a raw socket can speak (TCP). */
bool t_is_raw(int t);
/* The address family a raw socket must use for transport t. */
int t_family(int t);

/*
 * Start a listener for transport t on the loopback address with port 0,
 * through connect_listen("SCHEME://HOST:0").  Returns its code.
 */
int t_listen(int t, const connect_opts *opts, connect_listener **lp);
/* As t_listen; fails the test unless it worked. */
connect_listener *t_listen_ok(int t, const connect_opts *opts);

/* "127.0.0.1:PORT" or "[::1]:PORT" into buf. */
void t_addr(int t, int port, char *buf, size_t len);

/* Dial the listener of transport t on `port` with connect_dial() (TLS:
 * verifying the name "localhost").  Returns the library code. */
int t_dial(int t, int port, const connect_opts *opts, connect_conn **cp);
/* As t_dial; fails the test unless it worked. */
connect_conn *t_dial_ok(int t, int port, const connect_opts *opts);

/* connect_accept_wait with a timeout; fails the test on anything but OK. */
connect_conn *t_accept_ok(connect_listener *l, int timeout_ms);

/*
 * A connected pair: dial a fresh listener of transport t, accept, close the
 * listener.  copts/sopts (NULL: defaults) apply to the client and server
 * side.  Fails the test if anything goes wrong.
 */
void t_pair(int t, const connect_opts *copts, const connect_opts *sopts,
	    connect_conn **client, connect_conn **server);

/* An options object with up to three (option, value) pairs; opt 0 ends. */
connect_opts *opts_make(int o1, int64_t v1, int o2, int64_t v2, int o3,
			int64_t v3);

/* ---------------------------------------------------------------------- */
/* Echo server                                                             */
/* ---------------------------------------------------------------------- */

/*
 * A thread that accepts one connection on `l`, sends every datagram it
 * receives straight back (same tag, same bytes) and, at the end of the
 * stream or on an error, closes the connection and ends.
 */
struct echo_server;

struct echo_server *echo_start(connect_listener *l, int accept_timeout_ms);
/*
 * Wait up to timeout_ms for the echo thread to end on its own (the client
 * must have closed), forcing it to stop if it does not, join it and free it.
 * Returns the code that ended the echo loop (CONNECT_EEOF after a clean
 * close by the peer), or CONNECT_ETIMEDOUT if it had to be forced.
 * *echoed (may be NULL) receives the number of datagrams echoed.
 */
int echo_stop(struct echo_server *e, int timeout_ms, uint64_t *echoed);

/* ---------------------------------------------------------------------- */
/* Time and waiting                                                        */
/* ---------------------------------------------------------------------- */

/* Monotonic time in milliseconds. */
int64_t now_ms(void);
void sleep_ms(int ms);
/* Poll pred(arg) every few milliseconds until it holds or timeout_ms pass. */
bool wait_for(bool (*pred)(void *arg), void *arg, int timeout_ms);
/* poll() one descriptor for POLLIN: 1 readable, 0 not within timeout_ms. */
int fd_readable(int fd, int timeout_ms);
/* pthread_timedjoin_np with a relative timeout in ms; 0 when joined. */
int join_timeout(pthread_t th, void **ret, int timeout_ms);
/*
 * Run fn(arg) in a new thread *th (a test's helper thread, which must not
 * assert: it records its results for the test to check after joining);
 * fails the test if the thread cannot start.
 */
void t_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);
/*
 * Join th, waiting at most timeout_ms (scaled by CK_TIMEOUT_MULTIPLIER);
 * fails the test if it has not ended by then, naming the thread with the
 * printf-style what, ....
 */
void t_thread_join(pthread_t th, int timeout_ms, const char *what, ...)
	__attribute__((format(printf, 3, 4)));
/* ms times CK_TIMEOUT_MULTIPLIER (sanitizer runs are slower). */
int scaled_ms(int ms);

/* ---------------------------------------------------------------------- */
/* Raw sockets (TCP transports only)                                       */
/* ---------------------------------------------------------------------- */

/* A blocking TCP socket connected to the loopback port of transport t
 * (127.0.0.1 or ::1); fails the test if it cannot connect. */
int raw_dial(int t, int port);
/* Write all len bytes (MSG_NOSIGNAL); false on error. */
bool raw_send_all(int fd, const void *buf, size_t len);
/*
 * Write a wire frame header (size, version, tag) and plen payload bytes into
 * buf; `size` is written as given (normally 4 + plen).  Returns the bytes
 * written (8 + plen).
 */
size_t frame_put(uint8_t *buf, uint32_t size, uint16_t version, uint16_t tag,
		 const void *payload, size_t plen);

/* ---------------------------------------------------------------------- */
/* Datagrams with sequence numbers                                         */
/* ---------------------------------------------------------------------- */

/*
 * A datagram of `len` bytes (>= 1) carrying `seq`: the first four bytes are
 * seq big-endian (when len >= 4), the rest a pattern derived from seq and
 * the position.  Fails the test if allocation fails (main thread only); see
 * dg_make_nocheck for threads.
 */
connect_datagram *dg_make(uint16_t tag, uint32_t seq, size_t len);
/* As dg_make; NULL on failure. */
connect_datagram *dg_make_nocheck(uint16_t tag, uint32_t seq, size_t len);
/* The sequence number carried by a dg_make datagram of 4 bytes or more. */
uint32_t dg_seq(connect_datagram *dg);
/*
 * Check a datagram against dg_make(tag, seq, len).  Returns true when it
 * matches; otherwise writes why into why (if not NULL).
 */
bool dg_check(connect_datagram *dg, uint16_t tag, uint32_t seq, size_t len,
	      char *why, size_t whylen);
/* Check only the pattern of a datagram made by dg_make, whatever its seq. */
bool dg_check_pattern(connect_datagram *dg);

/* ---------------------------------------------------------------------- */
/* Process probes                                                          */
/* ---------------------------------------------------------------------- */

/* Resident set size of this process in bytes (/proc/self/statm). */
size_t rss_bytes(void);
/* Threads in this process (/proc/self/status, "Threads:"); -1 on error. */
int thread_count(void);
/*
 * The thread count to come back to after a test.  ThreadSanitizer starts a
 * background thread of its own at the first pthread_create() of a process
 * (also of a forked test process): start and join a thread first so that
 * it is already there.
 */
int thread_baseline(void);
/* Wait until the thread count is back to `baseline` (threads are reaped a
 * moment after being joined).  Returns the last count seen. */
int threads_settle(int baseline, int timeout_ms);

/* Running under AddressSanitizer (memory figures are then inflated). */
bool under_asan(void);
/* Built with ThreadSanitizer: UNDER_TSAN for #if, under_tsan() for code. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
bool under_tsan(void);
/* This machine can bind TCP sockets to ::1. */
bool have_ipv6_loopback(void);
/*
 * A slow build (valgrind: tests/valgrind.sh sets CONNECT_TEST_LIGHT):
 * the tests that move large volumes move less, with the same checks.
 */
bool test_light(void);

#endif /* CONNECT_TESTS_HELPERS_H */
