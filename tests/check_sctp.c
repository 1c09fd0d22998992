/*
 * What only SCTP has (the connection battery of check_conn runs over SCTP
 * too): the process-wide stack and its UDP port, two processes on
 * different UDP ports, dead peers found by heartbeats, and closes that
 * must never hang.
 *
 *   ports      a UDP port taken by another program, or another port while
 *              the stack runs: CONNECT_EADDRINUSE at once, never a hang;
 *              the stack stops with its last user and starts again,
 *              also while a program started meanwhile still runs (it
 *              inherits none of the stack's sockets);
 *   dial       nobody at the UDP port: CONNECT_ETIMEDOUT within the
 *              connect timeout; nobody on the SCTP port: refused; a
 *              peer that sends and closes before the dialer looks: the
 *              dial succeeds, the data arrives, then the end;
 *   procs      a client and an echo server in two processes, each on a
 *              UDP port of its own;
 *   dead       a killed peer is reported (CONNECT_EDEADPEER) within the
 *              heartbeat time;
 *   close      the peer's shutdown wakes a blocked reader, and sends
 *              then fail; closes from two sides at once, with data in
 *              flight both ways, never deadlock; a close whose data the
 *              peer aborted says so; a listener's unaccepted
 *              connections end when it closes;
 *   many       many associations with large messages in flight, all cut
 *              at once: the last close hands the stack's stop (seconds
 *              when usrsctp leaked references) to a thread of its own,
 *              and the stack serves the next listen and dial;
 *   dtls       DTLS over SCTP refuses what TLS refuses (an unknown CA, a
 *              name mismatch, a missing client certificate), works with a
 *              client certificate, authenticates SCTP DATA (SCTP-AUTH,
 *              RFC 6083), and is refused over a stream transport.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only loopback addresses.  Child processes use the public API alone and
 * never Check's assertions; they report through their exit status and a
 * pipe, and are killed if they outlive their time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

/* The library and the test share the process's usrsctp: the test reads
 * its counters and looks at the library's sockets (see the hooks below). */
#include <usrsctp.h>

#define CERT(name) CERTDIR "/" name ".pem"
#define KEY(name) CERTDIR "/" name "-key.pem"

#define ck_assert_code(expr, want)                                            \
	do {                                                                  \
		int rc_ = (expr), want_ = (want);                             \
		ck_assert_msg(rc_ == want_, "%s: %s, expected %s", #expr,     \
			      connect_err_name(rc_), connect_err_name(want_)); \
	} while (0)

static int g_threads;

static void fixture_setup(void)
{
	g_threads = thread_baseline();
}

/* Every test ends with the stack stopped: no thread of it left. */
static void fixture_teardown(void)
{
	int n = threads_settle(g_threads, scaled_ms(10000));

	ck_assert_msg(n == g_threads, "%d threads left, %d at the start", n,
		      g_threads);
}

/* A UDP port that was free a moment ago (IPv4, any address). */
static int free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* A UDP socket holding `port` (any address), as another program would. */
static int hold_udp_port(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static connect_opts *sctp_opts(int udp, int peer_udp)
{
	connect_opts *o = opts_make(CONNECT_OPT_SCTP_UDP_PORT, udp,
				    CONNECT_OPT_SCTP_PEER_UDP_PORT, peer_udp,
				    0, 0);

	return o;
}

static connect_listener *listen_ok(const connect_opts *o)
{
	connect_listener *l = NULL;

	ck_assert_code(connect_listen(&l, "sctp://127.0.0.1:0", o),
		       CONNECT_OK);
	ck_assert_int_gt(connect_listener_port(l), 0);
	return l;
}

static connect_conn *dial_ok(int port, const connect_opts *o)
{
	connect_conn *c = NULL;
	char url[64];

	snprintf(url, sizeof(url), "sctp://127.0.0.1:%d", port);
	ck_assert_code(connect_dial(&c, url, o), CONNECT_OK);
	return c;
}

static void echo_once(connect_conn *c, connect_conn *s, uint32_t seq,
		      size_t len)
{
	connect_datagram *dg = NULL;
	char why[200];
	bool ok;

	ck_assert_code(connect_send(c, dg_make(9, seq, len)), CONNECT_OK);
	ck_assert_code(connect_recv_wait(s, &dg, scaled_ms(10000)),
		       CONNECT_OK);
	ok = dg_check(dg, 9, seq, len, why, sizeof(why));
	connect_datagram_free(dg);
	ck_assert_msg(ok, "%s", why);
}

/* ---------------------------------------------------------------------- */
/* Hooks into the library's calls to usrsctp                               */
/* ---------------------------------------------------------------------- */

/*
 * The library calls usrsctp through the dynamic linker, and a program's
 * own definitions come first: these two see every usrsctp_getsockopt and
 * usrsctp_setsockopt of the library (and of this file), and pass them on
 * to usrsctp's (dlsym RTLD_NEXT).
 *
 *   - setsockopt records the sockets that got an SCTP-AUTH key (DTLS over
 *     SCTP), so that a test can ask usrsctp which keys they hold;
 *   - getsockopt can hold a dial: armed by a thread, the first time that
 *     thread sees its association established (SCTP_STATUS) it waits
 *     until the test releases it, as a dialer the scheduler left behind
 *     would.
 */
static struct {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool hold;           /* armed */
	bool held;           /* the dialer is waiting */
	bool release;
	pthread_t dialer;
	int timeout_ms;
	struct socket *auth[8]; /* sockets given an SCTP-AUTH key */
	int nauth;
	bool outq_seen;      /* a shutdown waited with bytes unacknowledged */
	bool slow_reset;     /* armed: a recv meeting ECONNRESET waits */
	unsigned so_error_reads; /* SO_ERROR asked for */
} hook = { .m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* As the library's: usrsctp's count of unacknowledged bytes. */
#define T_SCTP_GET_SNDBUF_USE 0x00001101
struct t_sctp_sockstat {
	sctp_assoc_t ss_assoc_id;
	uint32_t ss_total_sndbuf;
	uint32_t ss_total_recv_buf;
};

typedef int (*getsockopt_fn)(struct socket *, int, int, void *,
			     socklen_t *);
typedef int (*setsockopt_fn)(struct socket *, int, int, const void *,
			     socklen_t);

static void *real_fn(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL)
		abort(); /* not Check's: this may run on any thread */
	return f;
}

int usrsctp_setsockopt(struct socket *so, int level, int name,
		       const void *val, socklen_t len)
{
	static _Atomic(setsockopt_fn) real;
	setsockopt_fn f = atomic_load(&real);
	int rc;

	if (f == NULL) {
		f = (setsockopt_fn)real_fn("usrsctp_setsockopt");
		atomic_store(&real, f);
	}
	rc = f(so, level, name, val, len);
	if (rc == 0 && level == IPPROTO_SCTP && name == SCTP_AUTH_KEY) {
		pthread_mutex_lock(&hook.m);
		if (hook.nauth < (int)(sizeof(hook.auth) / sizeof(hook.auth[0])))
			hook.auth[hook.nauth++] = so;
		pthread_mutex_unlock(&hook.m);
	}
	return rc;
}

int usrsctp_getsockopt(struct socket *so, int level, int name, void *val,
		       socklen_t *len)
{
	static _Atomic(getsockopt_fn) real;
	getsockopt_fn f = atomic_load(&real);
	socklen_t len0 = len ? *len : 0;
	int rc;

	if (f == NULL) {
		f = (getsockopt_fn)real_fn("usrsctp_getsockopt");
		atomic_store(&real, f);
	}
	rc = f(so, level, name, val, len);
	if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR) {
		pthread_mutex_lock(&hook.m);
		hook.so_error_reads++;
		pthread_mutex_unlock(&hook.m);
	}
	if (rc == 0 && level == IPPROTO_SCTP &&
	    name == T_SCTP_GET_SNDBUF_USE &&
	    ((struct t_sctp_sockstat *)val)->ss_total_sndbuf > 0) {
		pthread_mutex_lock(&hook.m);
		hook.outq_seen = true;
		pthread_mutex_unlock(&hook.m);
	}
	if (rc != 0 || level != IPPROTO_SCTP || name != SCTP_STATUS ||
	    ((struct sctp_status *)val)->sstat_state != SCTP_ESTABLISHED)
		return rc;
	pthread_mutex_lock(&hook.m);
	if (hook.hold && pthread_equal(hook.dialer, pthread_self())) {
		int64_t deadline = now_ms() + hook.timeout_ms;

		hook.hold = false;
		hook.held = true;
		pthread_cond_broadcast(&hook.cv);
		while (!hook.release && now_ms() < deadline) {
			pthread_mutex_unlock(&hook.m);
			sleep_ms(2);
			pthread_mutex_lock(&hook.m);
		}
		pthread_mutex_unlock(&hook.m);
		*len = len0;
		return f(so, level, name, val, len);
	}
	pthread_mutex_unlock(&hook.m);
	return rc;
}

/*
 * usrsctp_recvv: armed (slow_reset), a recv that meets the peer's ABORT
 * (ECONNRESET: usrsctp hands the socket's error over and clears it)
 * returns only once another thread has read SO_ERROR, or after
 * hook.timeout_ms: a reader the scheduler left behind between taking the
 * error and recording it.
 */
ssize_t usrsctp_recvv(struct socket *so, void *dbuf, size_t len,
		      struct sockaddr *from, socklen_t *fromlen, void *info,
		      socklen_t *infolen, unsigned int *infotype,
		      int *msg_flags)
{
	typedef ssize_t (*recvv_fn)(struct socket *, void *, size_t,
				    struct sockaddr *, socklen_t *, void *,
				    socklen_t *, unsigned int *, int *);
	static _Atomic(recvv_fn) real;
	recvv_fn f = atomic_load(&real);
	ssize_t n;
	int e;

	if (f == NULL) {
		f = (recvv_fn)real_fn("usrsctp_recvv");
		atomic_store(&real, f);
	}
	n = f(so, dbuf, len, from, fromlen, info, infolen, infotype,
	      msg_flags);
	if (n >= 0 || errno != ECONNRESET)
		return n;
	e = errno;
	pthread_mutex_lock(&hook.m);
	if (hook.slow_reset) {
		unsigned reads = hook.so_error_reads;
		int64_t deadline = now_ms() + hook.timeout_ms;

		hook.slow_reset = false;
		while (hook.so_error_reads == reads && now_ms() < deadline) {
			pthread_mutex_unlock(&hook.m);
			sleep_ms(2);
			pthread_mutex_lock(&hook.m);
		}
	}
	pthread_mutex_unlock(&hook.m);
	errno = e;
	return n;
}

static bool hook_outq_seen(void *arg)
{
	bool seen;

	(void)arg;
	pthread_mutex_lock(&hook.m);
	seen = hook.outq_seen;
	pthread_mutex_unlock(&hook.m);
	return seen;
}

/* The calling thread's next dial waits once established (at most
 * timeout_ms) until hook_release(). */
static void hook_hold_dial(int timeout_ms)
{
	pthread_mutex_lock(&hook.m);
	hook.hold = true;
	hook.held = false;
	hook.release = false;
	hook.dialer = pthread_self();
	hook.timeout_ms = timeout_ms;
	pthread_mutex_unlock(&hook.m);
}

static bool hook_dial_held(void *arg)
{
	bool held;

	(void)arg;
	pthread_mutex_lock(&hook.m);
	held = hook.held;
	pthread_mutex_unlock(&hook.m);
	return held;
}

static void hook_release(void)
{
	pthread_mutex_lock(&hook.m);
	hook.release = true;
	hook.hold = false;
	pthread_mutex_unlock(&hook.m);
}

/* ---------------------------------------------------------------------- */
/* The stack's UDP port                                                    */
/* ---------------------------------------------------------------------- */

/* usrsctp binds a taken port without a word, and associations then hang:
 * the library must say so at once. */
struct taken {
	const connect_opts *o;
	connect_listener *l;
	connect_conn *c;
	int listen_rc, dial_rc;
};

static void *taken_main(void *arg)
{
	struct taken *t = arg;

	t->listen_rc = connect_listen(&t->l, "sctp://127.0.0.1:0", t->o);
	t->dial_rc = connect_dial(&t->c, "sctp://127.0.0.1:7", t->o);
	return NULL;
}

START_TEST(port_taken)
{
	int port, fd = hold_udp_port(&port);
	connect_opts *o = sctp_opts(port, 0);
	struct taken t = { .o = o };
	connect_listener *l;
	pthread_t th;

	/* In a thread, so that a hang is a failure of its own (the join's
	 * timeout) and not the suite's timeout; how fast it returns is not
	 * the point. */
	t_thread_start(&th, taken_main, &t);
	t_thread_join(th, scaled_ms(60000), "listen and dial on a taken port");
	ck_assert_code(t.listen_rc, CONNECT_EADDRINUSE);
	ck_assert_code(t.dial_rc, CONNECT_EADDRINUSE);
	ck_assert_ptr_null(t.l);
	ck_assert_ptr_null(t.c);
	close(fd);
	/* Freed by the other program: it works. */
	l = listen_ok(o);
	connect_listener_close(l);
	connect_opts_free(o);
}
END_TEST

/* One stack per process, one UDP port: another port is refused while it
 * runs, and accepted once the last user is gone and it stopped. */
START_TEST(port_per_process)
{
	int p1 = free_udp_port(), p2 = free_udp_port();
	connect_opts *o1 = sctp_opts(p1, 0), *o2 = sctp_opts(p2, 0);
	connect_opts *any = sctp_opts(0, 0);
	connect_listener *l1, *l2 = NULL, *l3;
	connect_conn *c, *s;

	ck_assert_int_ne(p1, p2);
	l1 = listen_ok(o1);
	ck_assert_code(connect_listen(&l2, "sctp://127.0.0.1:0", o2),
		       CONNECT_EADDRINUSE);
	/* 0: whatever the stack uses. */
	l3 = listen_ok(any);
	c = dial_ok(connect_listener_port(l3), any);
	s = t_accept_ok(l3, scaled_ms(10000));
	echo_once(c, s, 1, 100);
	connect_listener_close(l1);
	connect_listener_close(l3);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, 0, NULL);
	/* All gone: the stack stopped, and starts again on another port. */
	l2 = listen_ok(o2);
	c = dial_ok(connect_listener_port(l2), o2);
	s = t_accept_ok(l2, scaled_ms(10000));
	echo_once(s, c, 2, 70000);
	connect_listener_close(l2);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, 0, NULL);
	connect_opts_free(o1);
	connect_opts_free(o2);
	connect_opts_free(any);
}
END_TEST

static int reap(pid_t pid, int timeout_ms);

/* usrsctp's UDP sockets are close-on-exec: a program the application
 * starts does not inherit them, so it does not keep the port once the
 * stack stopped (the next start on that port would fail). */
START_TEST(port_not_inherited)
{
	int port = free_udp_port(), in[2];
	connect_opts *o = sctp_opts(port, 0);
	connect_listener *l = listen_ok(o);
	pid_t pid;

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Lives until the test closes the pipe (or is killed). */
		if (dup2(in[0], 0) == 0)
			execl("/bin/sh", "sh", "-c", "read x; exit 0",
			      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	connect_listener_close(l);
	/* The stack stopped with its last user; the child still runs. */
	l = NULL;
	ck_assert_code(connect_listen(&l, "sctp://127.0.0.1:0", o),
		       CONNECT_OK);
	connect_listener_close(l);
	close(in[1]);
	ck_assert_int_eq(reap(pid, scaled_ms(10000)), 0);
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Dialing nobody                                                          */
/* ---------------------------------------------------------------------- */

static void *nobody_main(void *arg)
{
	struct taken *t = arg;

	t->dial_rc = connect_dial(&t->c, "sctp://127.0.0.1:7878", t->o);
	return NULL;
}

/* No SCTP stack at the peer's UDP port: the INITs go unanswered, and the
 * connect timeout ends the dial. */
START_TEST(dial_nobody_times_out)
{
	int nobody = free_udp_port();
	connect_opts *o = sctp_opts(0, nobody);
	struct taken t = { .o = o };
	pthread_t th;

	ck_assert_code(connect_opts_set(o, CONNECT_OPT_CONNECT_TIMEOUT_MS,
					300),
		       CONNECT_OK);
	/* Returns at all (the join's timeout, far above the connect
	 * timeout, only catches a hang). */
	t_thread_start(&th, nobody_main, &t);
	t_thread_join(th, scaled_ms(60000), "dial of nobody");
	ck_assert_code(t.dial_rc, CONNECT_ETIMEDOUT);
	ck_assert_ptr_null(t.c);
	connect_opts_free(o);
}
END_TEST

/* The server side of dial_peer_closes_at_once: accept, send one
 * datagram, close with linger, then let the held dial go on. */
struct quick_server {
	pthread_t th;
	connect_listener *l;
	int accept_rc, send_rc, close_rc;
};

static void *quick_server_main(void *arg)
{
	struct quick_server *q = arg;
	connect_conn *s = NULL;

	q->send_rc = q->close_rc = CONNECT_EINVAL;
	q->accept_rc = connect_accept_wait(q->l, &s, scaled_ms(10000));
	if (q->accept_rc == CONNECT_OK) {
		/* The dialer sits in its dial: its association is up. */
		if (!wait_for(hook_dial_held, NULL, scaled_ms(10000)))
			q->accept_rc = CONNECT_ETIMEDOUT;
		q->send_rc = connect_send(s, dg_make_nocheck(4, 1, 300));
		q->close_rc = connect_close(s, scaled_ms(5000), NULL);
	}
	hook_release();
	return NULL;
}

/*
 * A server that accepts, sends and shuts down before the dialer looks at
 * its association again (held by the hook): the dial succeeds, the data
 * arrives, then the end of the stream.
 */
START_TEST(dial_peer_closes_at_once)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);
	struct quick_server q = { .l = l };
	connect_datagram *dg = NULL;
	connect_conn *c = NULL;
	char url[64], why[200];
	bool ok;
	int rc;

	t_thread_start(&q.th, quick_server_main, &q);
	hook_hold_dial(scaled_ms(20000));
	snprintf(url, sizeof(url), "sctp://127.0.0.1:%d",
		 connect_listener_port(l));
	rc = connect_dial(&c, url, o);
	hook_release();
	t_thread_join(q.th, scaled_ms(30000), "server");
	ck_assert_code(q.accept_rc, CONNECT_OK);
	ck_assert_code(q.send_rc, CONNECT_OK);
	ck_assert_code(q.close_rc, CONNECT_OK);
	ck_assert_code(rc, CONNECT_OK);
	ck_assert_code(connect_recv_wait(c, &dg, scaled_ms(10000)),
		       CONNECT_OK);
	ok = dg_check(dg, 4, 1, 300, why, sizeof(why));
	connect_datagram_free(dg);
	ck_assert_msg(ok, "%s", why);
	ck_assert_code(connect_recv_wait(c, &dg, scaled_ms(10000)),
		       CONNECT_EEOF);
	connect_close(c, 0, NULL);
	connect_listener_close(l);
	connect_opts_free(o);
}
END_TEST

/* Our stack answers, but nobody listens on that SCTP port: an ABORT. */
START_TEST(dial_refused)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);
	int port = connect_listener_port(l);
	connect_conn *c = NULL;

	connect_listener_close(l);
	l = listen_ok(o); /* keeps the stack up, on another SCTP port */
	ck_assert_int_ne(connect_listener_port(l), port);
	ck_assert_code(connect_dial(&c, "sctp://127.0.0.1:1", o),
		       CONNECT_ECONNREFUSED);
	ck_assert_ptr_null(c);
	connect_listener_close(l);
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Two processes                                                           */
/* ---------------------------------------------------------------------- */

/*
 * The child: listen on UDP port `udp`, write the SCTP port to fd, echo
 * every datagram of one connection until the end of the stream, close.
 * Exit status 0 when it all went as it should.
 */
static void child_echo_server(int udp, int fd, int heartbeat_ms)
{
	connect_opts *o = NULL;
	connect_listener *l = NULL;
	connect_conn *c = NULL;
	connect_datagram *dg;
	int port, rc;

	alarm(60); /* whatever happens, the child ends */
	if (connect_opts_new(&o) != CONNECT_OK ||
	    connect_opts_set(o, CONNECT_OPT_SCTP_UDP_PORT, udp) ||
	    (heartbeat_ms &&
	     connect_opts_set(o, CONNECT_OPT_SCTP_HEARTBEAT_MS, heartbeat_ms)) ||
	    connect_listen(&l, "sctp://127.0.0.1:0", o) != CONNECT_OK)
		_exit(2);
	port = connect_listener_port(l);
	if (write(fd, &port, sizeof(port)) != sizeof(port))
		_exit(3);
	if (connect_accept_wait(l, &c, 30000) != CONNECT_OK)
		_exit(4);
	connect_listener_close(l);
	for (;;) {
		rc = connect_recv_wait(c, &dg, 30000);
		if (rc != CONNECT_OK)
			break;
		rc = connect_send_wait(c, dg, 30000);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			break;
		}
	}
	connect_close(c, 5000, NULL);
	connect_opts_free(o);
	_exit(rc == CONNECT_EEOF ? 0 : 5);
}

/* Fork an echo server on UDP port udp; *port gets its SCTP port. */
static pid_t spawn_echo_server(int udp, int heartbeat_ms, int *port)
{
	int fds[2];
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		child_echo_server(udp, fds[1], heartbeat_ms);
	}
	close(fds[1]);
	ck_assert_msg(fd_readable(fds[0], scaled_ms(10000)) == 1,
		      "the child never listened");
	ck_assert_int_eq(read(fds[0], port, sizeof(*port)),
			 (ssize_t)sizeof(*port));
	close(fds[0]);
	return pid;
}

/* Wait for the child's exit status (killed after timeout_ms). */
static int reap(pid_t pid, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int status = 0;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		sleep_ms(10);
	}
	return status;
}

START_TEST(two_processes)
{
	static const size_t sizes[] = { 1, 100, 65536, 65537, 300000 };
	int udp_server = free_udp_port(), udp_client = free_udp_port();
	int port, status;
	connect_opts *o;
	connect_conn *c;
	pid_t pid;

	ck_assert_int_ne(udp_server, udp_client);
	pid = spawn_echo_server(udp_server, 0, &port);
	o = sctp_opts(udp_client, udp_server);
	c = dial_ok(port, o);
	for (uint32_t i = 0; i < 200; i++) {
		size_t len = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		connect_datagram *dg = NULL;
		char why[200];
		bool ok;

		ck_assert_code(connect_send_wait(c, dg_make(5, i, len),
						 scaled_ms(10000)),
			       CONNECT_OK);
		ck_assert_code(connect_recv_wait(c, &dg, scaled_ms(10000)),
			       CONNECT_OK);
		ok = dg_check(dg, 5, i, len, why, sizeof(why));
		connect_datagram_free(dg);
		ck_assert_msg(ok, "#%u: %s", i, why);
	}
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	status = reap(pid, scaled_ms(20000));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "echo server: status %d", status);
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Dead peers                                                              */
/* ---------------------------------------------------------------------- */

/* A peer killed outright sends nothing more: the heartbeats find it. */
START_TEST(killed_peer_found)
{
	enum { HB = 200, RTX = 2 };
	int udp_server = free_udp_port(), udp_client = free_udp_port();
	connect_datagram *dg = NULL;
	connect_opts *o;
	connect_conn *c;
	char why[256];
	int port, rc;
	pid_t pid;

	pid = spawn_echo_server(udp_server, 0, &port);
	o = sctp_opts(udp_client, udp_server);
	ck_assert_code(connect_opts_set(o, CONNECT_OPT_SCTP_HEARTBEAT_MS, HB),
		       CONNECT_OK);
	ck_assert_code(connect_opts_set(o, CONNECT_OPT_SCTP_MAX_RETRANS, RTX),
		       CONNECT_OK);
	c = dial_ok(port, o);
	ck_assert_code(connect_send(c, dg_make(1, 1, 10)), CONNECT_OK);
	ck_assert_code(connect_recv_wait(c, &dg, scaled_ms(10000)),
		       CONNECT_OK);
	connect_datagram_free(dg);
	kill(pid, SIGKILL);
	reap(pid, scaled_ms(10000));
	/* About (RTX + 2) heartbeat intervals; far less than this wait,
	 * which only keeps a broken library from hanging the test. */
	rc = connect_recv_wait(c, &dg, scaled_ms(20 * (RTX + 2) * HB));
	ck_assert_code(rc, CONNECT_EDEADPEER);
	ck_assert_code(connect_conn_error(c, why, sizeof(why)),
		       CONNECT_EDEADPEER);
	ck_assert_msg(strstr(why, "heartbeat") != NULL, "reason: %s", why);
	/* Sending is over too (a refused datagram stays ours). */
	dg = dg_make(1, 2, 10);
	rc = connect_send(c, dg);
	if (rc != CONNECT_OK)
		connect_datagram_free(dg);
	ck_assert_int_ne(rc, CONNECT_OK);
	connect_close(c, 0, NULL);
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Closing                                                                 */
/* ---------------------------------------------------------------------- */

struct blocked {
	pthread_t th;
	connect_conn *c;
	atomic_bool entered;
	int rc;
};

static void *blocked_recv_main(void *arg)
{
	struct blocked *b = arg;
	connect_datagram *dg = NULL;

	atomic_store(&b->entered, true);
	b->rc = connect_recv_wait(b->c, &dg, scaled_ms(30000));
	if (b->rc == CONNECT_OK)
		connect_datagram_free(dg);
	return NULL;
}

static bool blocked_entered(void *arg)
{
	return atomic_load(&((struct blocked *)arg)->entered);
}

/*
 * A thread receiving on c.  The API cannot tell when a call is inside
 * its wait, so the pause only makes it likely that the thread sleeps
 * there before the test goes on; no result depends on it, and c is
 * never closed before the thread has returned.
 */
static void blocked_start(struct blocked *b, connect_conn *c)
{
	b->c = c;
	b->rc = CONNECT_EINVAL;
	atomic_init(&b->entered, false);
	ck_assert_int_eq(pthread_create(&b->th, NULL, blocked_recv_main, b),
			 0);
	ck_assert(wait_for(blocked_entered, b, scaled_ms(5000)));
	sleep_ms(50);
}

/* The peer's SHUTDOWN reaches a reader asleep in the stack's wait: it
 * wakes with the end of the stream, not the timeout. */
START_TEST(shutdown_wakes_reader)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);
	connect_conn *c = dial_ok(connect_listener_port(l), o);
	connect_conn *s = t_accept_ok(l, scaled_ms(10000));
	struct blocked b;
	int64_t deadline;
	char why[256];
	int rc;

	connect_listener_close(l);
	echo_once(c, s, 1, 10);
	blocked_start(&b, s);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	ck_assert_int_eq(join_timeout(b.th, NULL, scaled_ms(10000)), 0);
	ck_assert_code(b.rc, CONNECT_EEOF);
	/* The end is sticky, and sending to a peer that shut down fails
	 * (SCTP has no half-close) without hanging: the writer's send is
	 * refused, later sends return its error. */
	blocked_start(&b, s);
	ck_assert_int_eq(join_timeout(b.th, NULL, scaled_ms(10000)), 0);
	ck_assert_code(b.rc, CONNECT_EEOF);
	deadline = now_ms() + scaled_ms(10000);
	do {
		connect_datagram *dg = dg_make(1, 2, 10);

		rc = connect_send_wait(s, dg, scaled_ms(1000));
		if (rc != CONNECT_OK)
			connect_datagram_free(dg);
		else
			sleep_ms(5);
	} while (rc == CONNECT_OK && now_ms() < deadline);
	ck_assert_code(rc, CONNECT_ECONNRESET);
	ck_assert_code(connect_conn_error(s, why, sizeof(why)),
		       CONNECT_ECONNRESET);
	ck_assert_msg(strstr(why, "shut") != NULL, "reason: %s", why);
	ck_assert_int_ne(connect_close(s, scaled_ms(5000), NULL), CONNECT_OK);
	connect_opts_free(o);
}
END_TEST

struct closer {
	pthread_t th;
	connect_conn *c;
	int linger;
	int rc;
};

static void *closer_main(void *arg)
{
	struct closer *k = arg;

	k->rc = connect_close(k->c, k->linger, NULL);
	return NULL;
}

/*
 * A close waiting for its data to be acknowledged when the peer aborts:
 * data was lost, and the close must say so, even when the reader took
 * the socket's error (usrsctp clears it) and has not recorded it yet
 * (the hook holds it there until the closing side has looked at
 * SO_ERROR).  The server reads nothing (a queue of one datagram), so its
 * window closes with our data unacknowledged.
 */
START_TEST(close_sees_peer_abort)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_opts *so = sctp_opts(0, 0);
	connect_listener *l;
	connect_conn *c, *s;
	struct closer kc = { .linger = scaled_ms(20000) };

	ck_assert_code(connect_opts_set(so, CONNECT_OPT_RECV_QUEUE_MSGS, 1),
		       CONNECT_OK);
	l = listen_ok(so);
	c = dial_ok(connect_listener_port(l), o);
	s = t_accept_ok(l, scaled_ms(10000));
	connect_listener_close(l);
	for (uint32_t i = 0; i < 24; i++)
		ck_assert_code(connect_send_wait(c, dg_make(3, i, 8192),
						 scaled_ms(10000)),
			       CONNECT_OK);
	pthread_mutex_lock(&hook.m);
	hook.outq_seen = false;
	hook.slow_reset = true;
	hook.timeout_ms = scaled_ms(2000);
	pthread_mutex_unlock(&hook.m);
	kc.c = c;
	t_thread_start(&kc.th, closer_main, &kc);
	/* 192 KiB: more than the server's window, less than that and our
	 * send buffer, so the close waits in its shutdown for
	 * acknowledgements that never come: the peer aborts. */
	ck_assert_msg(wait_for(hook_outq_seen, NULL, scaled_ms(10000)),
		      "the close never waited with data unacknowledged");
	connect_close(s, 0, NULL);
	t_thread_join(kc.th, scaled_ms(30000), "close");
	pthread_mutex_lock(&hook.m);
	hook.slow_reset = false;
	pthread_mutex_unlock(&hook.m);
	ck_assert_msg(kc.rc != CONNECT_OK,
		      "a close whose data the peer never acknowledged "
		      "(it aborted) returned CONNECT_OK");
	connect_opts_free(o);
	connect_opts_free(so);
}
END_TEST

/* What a close may return: anything but CONNECT_OK when something it had
 * accepted was not handed over. */
static void close_rc_ok(int rc, size_t unsent, const char *who, int round)
{
	ck_assert_msg(rc == CONNECT_OK || rc == CONNECT_ECONNRESET ||
			      rc == CONNECT_ETIMEDOUT,
		      "round %d: %s close: %s", round, who,
		      connect_err_name(rc));
	ck_assert_msg(rc != CONNECT_OK || unsent == 0,
		      "round %d: %s close: CONNECT_OK with %zu unsent", round,
		      who, unsent);
}

struct closer2 {
	pthread_t th;
	connect_conn *c;
	int linger;
	int rc;
	size_t unsent;
};

static void *closer2_main(void *arg)
{
	struct closer2 *k = arg;

	k->rc = connect_close(k->c, k->linger, &k->unsent);
	return NULL;
}

/*
 * usrsctp_close() with a thread inside a call on the socket deadlocks;
 * the library joins its threads first.  Many times over: both ends close
 * at once, with data in flight both ways (the library's readers and
 * writers inside usrsctp), with and without linger; every close returns,
 * with a code that follows the rule of connect_close.  A thread of ours
 * waits on each side first and is woken by the data: a connection is
 * never closed before that thread has returned.
 */
START_TEST(close_never_deadlocks)
{
	enum { ROUNDS = 12 };
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);

	for (int r = 0; r < ROUNDS; r++) {
		connect_conn *c = dial_ok(connect_listener_port(l), o);
		connect_conn *s = t_accept_ok(l, scaled_ms(10000));
		struct blocked bc, bs;
		struct closer2 kc = { .c = c, .linger = r % 3 ? 0 : 2000 };
		struct closer2 ks = { .c = s, .linger = r % 2 ? 0 : 2000 };

		echo_once(c, s, (uint32_t)r, 100);
		blocked_start(&bc, c);
		blocked_start(&bs, s);
		/* Data both ways while the closes begin. */
		for (uint32_t i = 0; i < 50; i++) {
			ck_assert_code(connect_send(c, dg_make(2, i, 2000)),
				       CONNECT_OK);
			ck_assert_code(connect_send(s, dg_make(2, i, 2000)),
				       CONNECT_OK);
		}
		t_thread_join(bc.th, scaled_ms(10000), "round %d: client "
			      "reader", r);
		t_thread_join(bs.th, scaled_ms(10000), "round %d: server "
			      "reader", r);
		ck_assert_code(bc.rc, CONNECT_OK);
		ck_assert_code(bs.rc, CONNECT_OK);
		t_thread_start(&kc.th, closer2_main, &kc);
		t_thread_start(&ks.th, closer2_main, &ks);
		t_thread_join(kc.th, scaled_ms(20000),
			      "round %d: client close", r);
		t_thread_join(ks.th, scaled_ms(20000),
			      "round %d: server close", r);
		close_rc_ok(kc.rc, kc.unsent, "client", r);
		close_rc_ok(ks.rc, ks.unsent, "server", r);
	}
	connect_listener_close(l);
	connect_opts_free(o);
}
END_TEST

/*
 * A listener closed with connections in its accept queue (the library
 * accepted them, the application never took them): they are closed, and
 * each client sees its connection end (the end of the stream or a
 * reset), not a silent hang.
 */
START_TEST(listener_close_with_queue)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);
	connect_conn *c[3];

	for (int k = 0; k < 3; k++)
		c[k] = dial_ok(connect_listener_port(l), o);
	connect_listener_close(l);
	for (int k = 0; k < 3; k++) {
		connect_datagram *dg = NULL;
		int rc = connect_recv_wait(c[k], &dg, scaled_ms(20000));

		if (rc == CONNECT_OK)
			connect_datagram_free(dg);
		ck_assert_msg(rc == CONNECT_EEOF || rc == CONNECT_ECONNRESET,
			      "client %d: %s", k, connect_err_name(rc));
		connect_close(c[k], 0, NULL);
	}
	connect_opts_free(o);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* DTLS over SCTP                                                          */
/* ---------------------------------------------------------------------- */

static connect_tls_config *dtls_server_cfg(const char *cert, const char *key,
					   int client_auth)
{
	connect_tls_config *cfg = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_cert_file(cfg, cert, key),
		       CONNECT_OK);
	if (client_auth != CONNECT_TLS_AUTH_NONE) {
		ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
			       CONNECT_OK);
		ck_assert_code(connect_tls_config_client_auth(cfg, client_auth),
			       CONNECT_OK);
	}
	return cfg;
}

static connect_tls_config *dtls_client_cfg(const char *cert, const char *key)
{
	connect_tls_config *cfg = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
		       CONNECT_OK);
	if (cert)
		ck_assert_code(connect_tls_config_cert_file(cfg, cert, key),
			       CONNECT_OK);
	return cfg;
}

/* A DTLS-over-SCTP listener with cfg (the stack on any free UDP port). */
static connect_listener *dtls_listen(connect_tls_config *cfg)
{
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = NULL;

	ck_assert_code(connect_opts_set_tls(o, cfg), CONNECT_OK);
	ck_assert_code(connect_listen(&l, "dtls+sctp://127.0.0.1:0", o),
		       CONNECT_OK);
	connect_opts_free(o);
	return l;
}

static int dtls_dial(connect_listener *l, connect_tls_config *cfg,
		     const char *name, connect_conn **cp)
{
	connect_opts *o = sctp_opts(0, 0);
	char url[64];
	int rc;

	ck_assert_code(connect_opts_set_tls(o, cfg), CONNECT_OK);
	if (name)
		ck_assert_code(connect_opts_set_server_name(o, name),
			       CONNECT_OK);
	snprintf(url, sizeof(url), "dtls+sctp://127.0.0.1:%d",
		 connect_listener_port(l));
	rc = connect_dial(cp, url, o);
	connect_opts_free(o);
	return rc;
}

/* Wait until the listener counted n failed handshakes. */
static int dtls_failures(connect_listener *l, int n, int *last, char *why,
			 size_t len)
{
	int64_t deadline = now_ms() + scaled_ms(10000);
	int got;

	while ((got = connect_listener_tls_failures(l, last, why, len)) < n &&
	       now_ms() < deadline)
		sleep_ms(10);
	return got;
}

/* The client refuses the server's certificate, with the reason TLS
 * gives, and tells the server why (an alert). */
static void dtls_client_rejects(const char *cert, const char *key,
				const char *name, int want)
{
	connect_tls_config *sc = dtls_server_cfg(cert, key,
						 CONNECT_TLS_AUTH_NONE);
	connect_tls_config *cc = dtls_client_cfg(NULL, NULL);
	connect_listener *l = dtls_listen(sc);
	connect_conn *c = NULL;
	char why[256] = "";
	int n, last = 0;

	ck_assert_code(dtls_dial(l, cc, name, &c), want);
	ck_assert_ptr_null(c);
	n = dtls_failures(l, 1, &last, why, sizeof(why));
	ck_assert_msg(n == 1 && last == CONNECT_ETLSALERT,
		      "server side: %d failures, last %s (%s)", n,
		      connect_err_name(last), why);
	ck_assert_code(connect_accept(l, &c), CONNECT_EAGAIN);
	connect_listener_close(l);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}

START_TEST(dtls_unknown_issuer)
{
	dtls_client_rejects(CERT("other-server"), KEY("other-server"),
			    "localhost", CONNECT_ETLSUNKNOWNISSUER);
}
END_TEST

START_TEST(dtls_name_mismatch)
{
	dtls_client_rejects(CERT("server"), KEY("server"), "wrong.example",
			    CONNECT_ETLSNAMEMISMATCH);
}
END_TEST

/* A server that requires a client certificate: refused without one (the
 * server says why: no certificate), accepted with one, and both sides
 * know who the other is. */
START_TEST(dtls_client_cert_required)
{
	connect_tls_config *sc = dtls_server_cfg(CERT("server"), KEY("server"),
						 CONNECT_TLS_AUTH_REQUIRED);
	connect_tls_config *anon = dtls_client_cfg(NULL, NULL);
	connect_tls_config *cc = dtls_client_cfg(CERT("client"),
						 KEY("client"));
	connect_listener *l = dtls_listen(sc);
	connect_conn *c = NULL, *s = NULL;
	char why[256] = "", subject[256] = "";
	int n, last = 0, rc;

	rc = dtls_dial(l, anon, "localhost", &c);
	ck_assert_msg(rc != CONNECT_OK, "a client without a certificate got "
		      "in");
	ck_assert_msg(rc == CONNECT_ETLSALERT, "client: %s",
		      connect_err_name(rc));
	n = dtls_failures(l, 1, &last, why, sizeof(why));
	ck_assert_msg(n == 1 && last == CONNECT_ETLSNOCERT,
		      "server side: %d failures, last %s (%s)", n,
		      connect_err_name(last), why);

	ck_assert_code(dtls_dial(l, cc, "localhost", &c), CONNECT_OK);
	s = t_accept_ok(l, scaled_ms(10000));
	ck_assert_code(connect_conn_peer_identity(s, CONNECT_PEER_SUBJECT,
						  subject, sizeof(subject)),
		       CONNECT_OK);
	ck_assert_msg(strstr(subject, "CN=") != NULL, "subject %s", subject);
	echo_once(c, s, 1, 100000);
	echo_once(s, c, 2, 3);
	connect_listener_close(l);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, scaled_ms(5000), NULL);
	connect_tls_config_free(sc);
	connect_tls_config_free(anon);
	connect_tls_config_free(cc);
}
END_TEST

/* Each socket given an SCTP-AUTH key sends with key 1 and no longer
 * holds key 0 (deactivating a key that is not there fails). */
static bool auth_switched(void *arg)
{
	int want = *(int *)arg, n = 0;

	pthread_mutex_lock(&hook.m);
	for (int i = 0; i < hook.nauth; i++) {
		struct sctp_authkeyid id;
		socklen_t len = sizeof(id);

		memset(&id, 0, sizeof(id));
		if (usrsctp_getsockopt(hook.auth[i], IPPROTO_SCTP,
				       SCTP_AUTH_ACTIVE_KEY, &id, &len) != 0 ||
		    id.scact_keynumber != 1)
			continue;
		memset(&id, 0, sizeof(id));
		if (usrsctp_setsockopt(hook.auth[i], IPPROTO_SCTP,
				       SCTP_AUTH_DEACTIVATE_KEY, &id,
				       sizeof(id)) != 0)
			n++;
	}
	pthread_mutex_unlock(&hook.m);
	return n == want;
}

/*
 * RFC 6083: DATA chunks carry SCTP-AUTH, keyed from the DTLS exporter once
 * the handshake is done, and the null key (0) is removed.  Both ends are
 * in this process: the stack counts the AUTH chunks it received and those
 * that failed, and the hook found both sockets, whose keys usrsctp shows.
 */
START_TEST(dtls_sctp_auth)
{
	connect_tls_config *sc = dtls_server_cfg(CERT("server"), KEY("server"),
						 CONNECT_TLS_AUTH_NONE);
	connect_tls_config *cc = dtls_client_cfg(NULL, NULL);
	connect_listener *l = dtls_listen(sc);
	connect_conn *c = NULL, *s;
	struct sctpstat st0, st1;
	int two = 2, n;

	pthread_mutex_lock(&hook.m);
	hook.nauth = 0;
	pthread_mutex_unlock(&hook.m);
	ck_assert_code(dtls_dial(l, cc, "localhost", &c), CONNECT_OK);
	s = t_accept_ok(l, scaled_ms(10000));
	usrsctp_get_stat(&st0);
	/* Both ways, several rounds: each side switches to the new key when
	 * it sees the other use it. */
	for (uint32_t i = 0; i < 20; i++) {
		echo_once(c, s, i, 1000);
		echo_once(s, c, i, 1000);
	}
	usrsctp_get_stat(&st1);
	ck_assert_uint_gt(st1.sctps_recvauth, st0.sctps_recvauth);
	ck_assert_uint_eq(st1.sctps_recvauthmissing, st0.sctps_recvauthmissing);
	/* The exporter's key in use both ways, the null key gone. */
	pthread_mutex_lock(&hook.m);
	n = hook.nauth;
	pthread_mutex_unlock(&hook.m);
	ck_assert_int_eq(n, 2);
	ck_assert_msg(wait_for(auth_switched, &two, scaled_ms(10000)),
		      "the sides do not both send with key 1 without key 0");
	connect_listener_close(l);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, scaled_ms(5000), NULL);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/* DTLS needs message boundaries: over TCP it is refused, clearly. */
START_TEST(dtls_needs_messages)
{
	connect_tls_config *cc = dtls_client_cfg(NULL, NULL);
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_opts *o = opts_make(0, 0, 0, 0, 0, 0);
	connect_conn *c = NULL;
	char url[64];

	ck_assert_code(connect_opts_set_tls(o, cc), CONNECT_OK);
	snprintf(url, sizeof(url), "dtls+tcp://127.0.0.1:%d",
		 connect_listener_port(l));
	ck_assert_code(connect_dial(&c, url, o), CONNECT_ENOTSUP);
	ck_assert_ptr_null(c);
	connect_opts_free(o);
	connect_listener_close(l);
	connect_tls_config_free(cc);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Many associations cut at once                                           */
/* ---------------------------------------------------------------------- */

/*
 * Many associations with large messages in flight both ways, all cut at
 * once (as a benchmark's teardown does): usrsctp 0.9.5 then leaks
 * references on some sockets, and may keep an association it never
 * frees.  The stack still serves the next listen and dial, and the last
 * close does not wait for the stack's stop: it returns within a bound
 * far below the seconds such a stop takes (the join's timeout), and the
 * stack stops afterwards (the fixture).
 */
START_TEST(many_cut_then_again)
{
	enum { N = 48, MSGS = 2 };
	size_t len = 256u << 10;
	connect_opts *o = sctp_opts(0, 0);
	connect_listener *l = listen_ok(o);
	connect_conn *c[N], *s[N];
	struct closer kc = { .linger = 0 };

	for (int i = 0; i < N; i++) {
		c[i] = dial_ok(connect_listener_port(l), o);
		s[i] = t_accept_ok(l, scaled_ms(10000));
	}
	connect_listener_close(l);
	for (int i = 0; i < N; i++) {
		for (uint32_t k = 0; k < MSGS; k++) {
			connect_datagram *a = dg_make(5, k, len);
			connect_datagram *b = dg_make(6, k, len);

			if (connect_send(c[i], a) != CONNECT_OK)
				connect_datagram_free(a);
			if (connect_send(s[i], b) != CONNECT_OK)
				connect_datagram_free(b);
		}
	}
	/* Let the transfers get going, then cut: one side, then the
	 * other, while the peer's reader and writer are inside the stack. */
	sleep_ms(50);
	for (int i = 0; i < N; i++)
		connect_close(c[i], 0, NULL);
	for (int i = 0; i < N - 1; i++)
		connect_close(s[i], 0, NULL);
	/* The last user: its close hands the stop over (before, it waited
	 * the seconds the stop took, for good when usrsctp held on). */
	kc.c = s[N - 1];
	t_thread_start(&kc.th, closer_main, &kc);
	t_thread_join(kc.th, 2000, "the last close after the cut");
	/* The stack (stopping, stopped or kept up) serves again. */
	l = listen_ok(o);
	c[0] = dial_ok(connect_listener_port(l), o);
	s[0] = t_accept_ok(l, scaled_ms(10000));
	echo_once(c[0], s[0], 1, 100000);
	echo_once(s[0], c[0], 2, 100);
	connect_listener_close(l);
	connect_close(c[0], 0, NULL);
	kc.c = s[0];
	t_thread_start(&kc.th, closer_main, &kc);
	t_thread_join(kc.th, 2000, "the last close");
	connect_opts_free(o);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *sctp_suite(void)
{
	Suite *s = suite_create("sctp");
	TCase *tc;

	tc = tcase(s, "ports");
	tcase_add_test(tc, port_taken);
	tcase_add_test(tc, port_per_process);
	tcase_add_test(tc, port_not_inherited);
	tc = tcase(s, "dial");
	tcase_add_test(tc, dial_nobody_times_out);
	tcase_add_test(tc, dial_refused);
	tcase_add_test(tc, dial_peer_closes_at_once);
	tc = tcase(s, "procs");
	tcase_add_test(tc, two_processes);
	tc = tcase(s, "dead");
	tcase_add_test(tc, killed_peer_found);
	tc = tcase(s, "close");
	tcase_add_test(tc, shutdown_wakes_reader);
	tcase_add_test(tc, close_never_deadlocks);
	tcase_add_test(tc, close_sees_peer_abort);
	tcase_add_test(tc, listener_close_with_queue);
	tc = tcase(s, "many");
	tcase_add_test(tc, many_cut_then_again);
	tc = tcase(s, "dtls");
	tcase_add_test(tc, dtls_unknown_issuer);
	tcase_add_test(tc, dtls_name_mismatch);
	tcase_add_test(tc, dtls_client_cert_required);
	tcase_add_test(tc, dtls_sctp_auth);
	tcase_add_test(tc, dtls_needs_messages);
	return s;
}

int main(void)
{
	return t_run(sctp_suite(), 0);
}
