/*
 * Endpoints: what a connection and a listener say about themselves, and
 * how they end.
 *
 *   race      introspection calls racing the library threads, a peer that
 *             ends, and connect_close() / connect_listener_close() with
 *             blocking calls in flight (the protocol is described at
 *             "Calls in flight at close"), and with calls held inside
 *             the library across close ("Calls parked inside...");
 *   url       connect_dial() / connect_listen() by URL, their errors, and
 *             the reference counting of options and TLS configurations;
 *   user      the application's pointer;
 *   identity  the TLS peer identity (enum connect_peer_info) on both sides
 *             of a mutual-TLS connection, against values computed here;
 *   flood     a TLS listener under a flood of silent TCP clients;
 *   reset     a peer's reset is never reported as a clean end of stream.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only the public API (connect.h) is used, plus GnuTLS to compute the
 * expected certificate fingerprints independently of the library.  Worker
 * threads never assert: they record the first thing that went wrong, and
 * the test checks after joining them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <linux/futex.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h> /* TCP_NODELAY */
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <check.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "connect.h"
#include "helpers.h"

#define CERT(name) CERTDIR "/" name ".pem"
#define KEY(name) CERTDIR "/" name "-key.pem"

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

/* Record the first anomaly a worker thread meets (it must not assert). */
static void note(char *bad, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(char *bad, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (bad[0])
		return;
	va_start(ap, fmt);
	vsnprintf(bad, len, fmt, ap);
	va_end(ap);
}

/* Under a sanitizer everything is several times slower: fewer rounds. */
static bool sanitized(void)
{
	return under_tsan() || under_asan() || test_light();
}

/* ---------------------------------------------------------------------- */
/* TLS configurations                                                      */
/* ---------------------------------------------------------------------- */

static connect_tls_config *cfg_server(void)
{
	connect_tls_config *cfg = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_cert_file(cfg, CERT("server"),
						    KEY("server")),
		       CONNECT_OK);
	return cfg;
}

/* A server that asks for client certificates issued by ca.pem. */
static connect_tls_config *cfg_server_auth(int mode)
{
	connect_tls_config *cfg = cfg_server();

	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_client_auth(cfg, mode), CONNECT_OK);
	return cfg;
}

/* A client trusting ca.pem, with the client certificate if `mutual`. */
static connect_tls_config *cfg_client(bool mutual)
{
	connect_tls_config *cfg = NULL;

	ck_assert_code(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	ck_assert_code(connect_tls_config_ca_file(cfg, CERT("ca")),
		       CONNECT_OK);
	if (mutual)
		ck_assert_code(connect_tls_config_cert_file(cfg,
							    CERT("client"),
							    KEY("client")),
			       CONNECT_OK);
	return cfg;
}

/* An options object holding cfg (its own reference) and a server name. */
static connect_opts *opts_tls(connect_tls_config *cfg, const char *name)
{
	connect_opts *o = NULL;

	ck_assert_code(connect_opts_new(&o), CONNECT_OK);
	ck_assert_code(connect_opts_set_tls(o, cfg), CONNECT_OK);
	if (name)
		ck_assert_code(connect_opts_set_server_name(o, name),
			       CONNECT_OK);
	return o;
}

/* ---------------------------------------------------------------------- */
/* Expected certificate identities                                         */
/* ---------------------------------------------------------------------- */

/*
 * Subject and issuer as `certtool -i --infile tests/certs/X.pem` prints them
 * (RFC 4514 order), the SANs in the library's documented format, and the
 * SHA-256 of the certificate's DER, computed here from the PEM file with
 * GnuTLS's base64 decoder and hash (not its X.509 fingerprint code, which
 * the library itself uses).
 */
#define CA_DN "CN=libconnect test CA,O=libconnect tests"
#define SERVER_DN "CN=localhost,O=libconnect tests"
#define CLIENT_DN "CN=libconnect test client,O=libconnect tests"
#define SERVER_SANS "DNS:localhost,IP:127.0.0.1,IP:::1"
#define CLIENT_SANS ""

static void der_sha256_hex(const char *pem_path, char out[65])
{
	gnutls_datum_t pem = { NULL, 0 }, der = { NULL, 0 };
	unsigned char md[32];
	FILE *f = fopen(pem_path, "rb");
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", pem_path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	pem.data = malloc((size_t)n);
	ck_assert_ptr_nonnull(pem.data);
	ck_assert_uint_eq(fread(pem.data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	pem.size = (unsigned)n;
	ck_assert_int_eq(gnutls_pem_base64_decode2("CERTIFICATE", &pem, &der),
			 0);
	ck_assert_int_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data,
					  der.size, md),
			 0);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	gnutls_free(der.data);
	free(pem.data);
}

/* ---------------------------------------------------------------------- */
/* Small exchanges                                                         */
/* ---------------------------------------------------------------------- */

/* a sends one datagram to b and b sends it back: both directions work. */
static void bounce(connect_conn *a, connect_conn *b, uint32_t seq)
{
	connect_datagram *dg = NULL;
	char why[200];
	int rc;

	ck_assert_code(connect_send_wait(a, dg_make(11, seq, 100),
					 scaled_ms(5000)),
		       CONNECT_OK);
	rc = connect_recv_wait(b, &dg, scaled_ms(10000));
	ck_assert_msg(rc == CONNECT_OK, "bounce: %s", connect_err_name(rc));
	ck_assert_msg(dg_check(dg, 11, seq, 100, why, sizeof(why)), "%s",
		      why);
	rc = connect_send_wait(b, dg, scaled_ms(5000));
	if (rc != CONNECT_OK)
		connect_datagram_free(dg);
	ck_assert_code(rc, CONNECT_OK);
	dg = NULL;
	rc = connect_recv_wait(a, &dg, scaled_ms(10000));
	ck_assert_msg(rc == CONNECT_OK, "bounce back: %s",
		      connect_err_name(rc));
	ck_assert_msg(dg_check(dg, 11, seq, 100, why, sizeof(why)), "%s",
		      why);
	connect_datagram_free(dg);
}

/* Accept the connection just dialed as c, bounce a datagram, close both. */
static void accept_bounce_close(connect_listener *l, connect_conn *c)
{
	connect_conn *s = t_accept_ok(l, scaled_ms(10000));

	bounce(c, s, 1);
	bounce(s, c, 2);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
}

/* ---------------------------------------------------------------------- */
/* Calls in flight at close                                                */
/* ---------------------------------------------------------------------- */

/*
 * connect.h: connect_close() (connect_listener_close()) makes the calls
 * already running on the object return and waits for them; a call that
 * STARTS after close was called may touch freed memory.  So a test that
 * races calls against close must prove that every call it makes started
 * before close.  A non-blocking call cannot be proven to be "inside" from
 * another thread through the API, so the protocol is:
 *
 *   1. Hammer.  Worker threads loop over every introspection call (and
 *      non-blocking recv/send or accept), checking a `stop` flag before
 *      each call.  Meanwhile the library's own threads work and, in some
 *      rounds, the peer ends the connection: the calls race all of that.
 *   2. Park.  The main thread sets `stop`.  Each worker finishes the call
 *      it is in, publishes state PARKING (a release store; every call it
 *      made so far happens-before the main thread's acquire load of it),
 *      and then makes exactly ONE blocking call with a long timeout
 *      (connect_recv_wait, connect_send_wait or connect_accept_wait), then
 *      publishes DONE.  It makes no call after that one, whatever it
 *      returned.
 *   3. Prove.  The main thread waits, for each worker, until it is DONE,
 *      or until the kernel shows the worker thread asleep in a
 *      condition-variable wait: /proc/self/task/TID/syscall reads
 *      "futex(addr, FUTEX_WAIT_BITSET...)".  glibc's condition variables
 *      sleep with FUTEX_WAIT_BITSET; its mutexes (and the sanitizers'
 *      internal locks) with FUTEX_WAIT.  Between publishing PARKING and
 *      calling, the worker makes no system call, so a WAIT_BITSET sleep
 *      after PARKING can only be inside the library call, after it
 *      registered itself: the call provably started before close.
 *   4. Close.  Only now does the main thread call close.  Every parked
 *      call must return promptly with CONNECT_ECLOSED (in the rounds where
 *      nothing else could wake it, nothing else is accepted).
 *
 * Where /proc/self/task/TID/syscall cannot be read, step 3 falls back to a
 * grace period after PARKING (said on stderr): no longer a proof.
 */
enum { P_HAMMER = 0, P_PARKING = 1, P_DONE = 2 };

struct park {
	pid_t tid;
	atomic_int state;
};

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static atomic_bool g_no_probe_said;

/* 1: asleep in a condition wait; 0: not; -1: cannot tell. */
static int in_cond_wait(pid_t tid)
{
	char path[64], line[256];
	unsigned long a1, op;
	long nr;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	/* "running", "-1 sp pc" (blocked outside a system call), or
	 * "nr arg1 ... arg6 sp pc". */
	if (sscanf(line, "%ld %lx %lx", &nr, &a1, &op) != 3)
		return 0;
	return nr == SYS_futex && (op & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET;
}

/*
 * Step 3 for one worker: true when its one blocking call is provably in
 * flight, false when it is DONE already.  Fails the test if neither comes.
 */
static bool park_prove(struct park *p)
{
	int64_t deadline = now_ms() + scaled_ms(20000);
	int probe;

	while (atomic_load_explicit(&p->state, memory_order_acquire) ==
	       P_HAMMER) {
		ck_assert_msg(now_ms() < deadline, "worker never parked");
		sleep_ms(1);
	}
	for (;;) {
		if (atomic_load_explicit(&p->state, memory_order_acquire) ==
		    P_DONE)
			return false;
		probe = in_cond_wait(p->tid);
		if (probe == 1)
			return true;
		if (probe < 0) {
			if (!atomic_exchange(&g_no_probe_said, true))
				fprintf(stderr,
					"check_endpoints: cannot read "
					"/proc/self/task/N/syscall: parked "
					"calls get a grace period instead "
					"of a proof\n");
			sleep_ms(scaled_ms(200));
			return atomic_load(&p->state) != P_DONE;
		}
		ck_assert_msg(now_ms() < deadline,
			      "worker parked but never slept in its call");
		sleep_ms(1);
	}
}

/* ---------------------------------------------------------------------- */
/* 1a. Connection introspection racing the end and close                  */
/* ---------------------------------------------------------------------- */

enum { CR_WORKERS = 4, CR_BURST = 64, CR_LINGER_OPT = 1234 };

enum cr_mode {
	CR_QUIET,      /* the peer stays, sends nothing after the burst */
	CR_PEER_EOF,   /* the peer closes cleanly during the hammering */
	CR_PEER_RESET, /* the peer aborts (reset) during the hammering */
	CR_FULL,       /* outbound pipe full: half the workers park in send */
};

static const char *cr_mode_name(int m)
{
	static const char *const names[] = { "quiet", "peer-eof",
					     "peer-reset", "full" };

	return names[m];
}

struct cr_shared {
	connect_conn *c;
	int mode;
	bool tls;
	char local[64], peer[64];
	char fpr[65]; /* the peer's certificate (TLS) */
	atomic_bool stop;
	pthread_barrier_t gate; /* the workers start together */
	int tokens[CR_WORKERS];
	atomic_uchar seen[CR_BURST]; /* burst datagrams received */
};

struct cr_worker {
	pthread_t th;
	struct cr_shared *sh;
	int idx;
	bool park_send; /* park in connect_send_wait, else recv_wait */
	struct park park;
	atomic_int iters;
	int fd;      /* connect_conn_fd, the first answer */
	int park_rc; /* the parked call's code */
	int64_t park_ms;
	uint64_t last[5]; /* counters as last read (never go back) */
	char bad[256];
};

/* The stream may have ended: codes a receive may then give. */
static bool cr_end_ok(int mode, int rc)
{
	if (mode == CR_PEER_EOF)
		return rc == CONNECT_EEOF;
	if (mode == CR_PEER_RESET)
		return rc == CONNECT_ECONNRESET || rc == CONNECT_ETRUNCATED;
	return false;
}

static void cr_check_dg(struct cr_worker *w, connect_datagram *dg)
{
	uint32_t seq = dg_seq(dg);

	if (connect_datagram_tag(dg) != 7 || seq >= CR_BURST ||
	    connect_datagram_size(dg) != 32 || !dg_check_pattern(dg))
		note(w->bad, sizeof(w->bad),
		     "received a datagram not sent: tag %u seq %u size %zu",
		     connect_datagram_tag(dg), seq,
		     connect_datagram_size(dg));
	else if (atomic_exchange(&w->sh->seen[seq], 1))
		note(w->bad, sizeof(w->bad), "datagram %u received twice",
		     seq);
	connect_datagram_free(dg);
}

/* One introspection call, number `op`.  Never called once `stop` is seen. */
static void cr_call(struct cr_worker *w, int op)
{
	struct cr_shared *sh = w->sh;
	connect_conn *c = sh->c;
	connect_datagram *dg = NULL;
	char buf[300];
	uint64_t v;
	int64_t o;
	void *u;
	int rc;

	switch (op) {
	case 0:
		memset(buf, 'x', sizeof(buf));
		rc = connect_conn_error(c, buf, sizeof(buf));
		if (!memchr(buf, '\0', sizeof(buf)))
			note(w->bad, sizeof(w->bad),
			     "conn_error: reason not terminated");
		else if (rc == CONNECT_OK && buf[0])
			note(w->bad, sizeof(w->bad),
			     "conn_error: OK with reason \"%s\"", buf);
		else if (rc != CONNECT_OK &&
			 (sh->mode == CR_QUIET || sh->mode == CR_FULL ||
			  rc > 0 || rc == CONNECT_EINVAL ||
			  rc == CONNECT_ECLOSED || rc == CONNECT_EEOF))
			note(w->bad, sizeof(w->bad),
			     "conn_error: %s (%s) in a %s round",
			     connect_err_name(rc), buf, cr_mode_name(sh->mode));
		break;
	case 1:
		rc = connect_conn_local_addr(c, buf, sizeof(buf));
		if (rc != CONNECT_OK || strcmp(buf, sh->local) != 0)
			note(w->bad, sizeof(w->bad), "local_addr: %s \"%s\"",
			     connect_err_name(rc), buf);
		/* One byte short of the terminator. */
		rc = connect_conn_local_addr(c, buf, strlen(sh->local));
		if (rc != CONNECT_EINVAL)
			note(w->bad, sizeof(w->bad),
			     "local_addr, short buffer: %s",
			     connect_err_name(rc));
		break;
	case 2:
		rc = connect_conn_peer_addr(c, buf, sizeof(buf));
		if (rc != CONNECT_OK || strcmp(buf, sh->peer) != 0)
			note(w->bad, sizeof(w->bad), "peer_addr: %s \"%s\"",
			     connect_err_name(rc), buf);
		break;
	case 3:
		for (int s = CONNECT_STAT_MSGS_SENT;
		     s <= CONNECT_STAT_RECV_QUEUED_BYTES; s++) {
			rc = connect_conn_stat(c, s, &v);
			if (rc != CONNECT_OK) {
				note(w->bad, sizeof(w->bad), "stat %d: %s", s,
				     connect_err_name(rc));
				continue;
			}
			/* The four totals only grow. */
			if (s <= CONNECT_STAT_BYTES_RECV) {
				if (v < w->last[s])
					note(w->bad, sizeof(w->bad),
					     "stat %d went back: %llu < %llu",
					     s, (unsigned long long)v,
					     (unsigned long long)w->last[s]);
				w->last[s] = v;
			}
		}
		if (connect_conn_stat(c, 0, &v) != CONNECT_EINVAL ||
		    connect_conn_stat(c, 9, &v) != CONNECT_EINVAL)
			note(w->bad, sizeof(w->bad), "stat: unknown accepted");
		break;
	case 4:
		rc = connect_conn_opt(c, CONNECT_OPT_LINGER_MS, &o);
		if (rc != CONNECT_OK || o != CR_LINGER_OPT)
			note(w->bad, sizeof(w->bad), "opt linger: %s %lld",
			     connect_err_name(rc), (long long)o);
		rc = connect_conn_opt(c, CONNECT_OPT_TCP_NODELAY, &o);
		if (rc != CONNECT_OK || o != 1)
			note(w->bad, sizeof(w->bad), "opt nodelay: %s %lld",
			     connect_err_name(rc), (long long)o);
		if (connect_conn_opt(c, 999, &o) != CONNECT_EINVAL)
			note(w->bad, sizeof(w->bad), "opt: unknown accepted");
		break;
	case 5:
		connect_conn_set_user(c, &sh->tokens[w->idx]);
		u = connect_conn_user(c);
		if (u < (void *)&sh->tokens[0] ||
		    u > (void *)&sh->tokens[CR_WORKERS - 1])
			note(w->bad, sizeof(w->bad),
			     "user pointer %p was never set", u);
		break;
	case 6:
		memset(buf, 'x', sizeof(buf));
		rc = connect_conn_peer_identity(c, CONNECT_PEER_FINGERPRINT,
						buf, sizeof(buf));
		if (sh->tls ? rc != CONNECT_OK || strcmp(buf, sh->fpr) != 0
			    : rc != CONNECT_ENOTSUP)
			note(w->bad, sizeof(w->bad),
			     "peer fingerprint: %s \"%.64s\"",
			     connect_err_name(rc), buf);
		if (sh->tls) {
			rc = connect_conn_peer_identity(
				c, CONNECT_PEER_SUBJECT, buf, sizeof(buf));
			if (rc != CONNECT_OK || strcmp(buf, SERVER_DN) != 0)
				note(w->bad, sizeof(w->bad),
				     "peer subject: %s \"%s\"",
				     connect_err_name(rc), buf);
		}
		break;
	case 7:
		rc = connect_conn_fd(c);
		if (rc < 0)
			note(w->bad, sizeof(w->bad), "conn_fd: %s",
			     connect_err_name(rc));
		else if (w->fd < 0)
			w->fd = rc;
		else if (rc != w->fd)
			note(w->bad, sizeof(w->bad), "conn_fd: %d, then %d",
			     w->fd, rc);
		break;
	case 8:
		rc = connect_recv(c, &dg);
		if (rc == CONNECT_OK)
			cr_check_dg(w, dg);
		else if (rc != CONNECT_EAGAIN && !cr_end_ok(sh->mode, rc))
			note(w->bad, sizeof(w->bad), "recv: %s in a %s round",
			     connect_err_name(rc), cr_mode_name(sh->mode));
		break;
	case 9:
		dg = dg_make_nocheck(9, (uint32_t)w->idx, 16);
		if (!dg) {
			note(w->bad, sizeof(w->bad), "out of memory");
			break;
		}
		rc = connect_send(c, dg);
		if (rc != CONNECT_OK)
			connect_datagram_free(dg);
		/* Once the peer is gone (closed: our data then meets its
		 * reset; or reset), sending fails with the reset, EIO or a
		 * TLS code; never ECLOSED (close has not begun), EINVAL or
		 * EEOF (not a sending code). */
		if (rc != CONNECT_OK && rc != CONNECT_EAGAIN &&
		    (sh->mode == CR_QUIET || sh->mode == CR_FULL ||
		     rc == CONNECT_ECLOSED || rc == CONNECT_EINVAL ||
		     rc == CONNECT_EEOF))
			note(w->bad, sizeof(w->bad), "send: %s in a %s round",
			     connect_err_name(rc), cr_mode_name(sh->mode));
		break;
	}
}

enum { CR_OPS = 10 };

static void *cr_worker_main(void *arg)
{
	struct cr_worker *w = arg;
	struct cr_shared *sh = w->sh;
	connect_datagram *dg = NULL;
	int64_t t0;
	int rc;

	w->park.tid = my_tid();
	/* All at once into the first connect_conn_fd, which creates the
	 * descriptor: one descriptor, whoever wins. */
	pthread_barrier_wait(&sh->gate);
	cr_call(w, 7);
	/* 1. Hammer, starting at a different call in each worker. */
	for (int op = w->idx * 3;; op++) {
		if (atomic_load(&sh->stop))
			break;
		cr_call(w, op % CR_OPS);
		if (op % CR_OPS == CR_OPS - 1)
			atomic_fetch_add(&w->iters, 1);
	}
	/* Take what is left, so that the parked receive has to sleep. */
	while ((rc = connect_recv(sh->c, &dg)) == CONNECT_OK)
		cr_check_dg(w, dg);
	/* 2. Park: one blocking call, and nothing after it. */
	if (w->park_send)
		dg = dg_make_nocheck(9, 1000u + (uint32_t)w->idx, 64);
	atomic_store_explicit(&w->park.state, P_PARKING, memory_order_release);
	t0 = now_ms();
	if (w->park_send) {
		rc = connect_send_wait(sh->c, dg, scaled_ms(30000));
		if (rc != CONNECT_OK)
			connect_datagram_free(dg);
	} else {
		rc = connect_recv_wait(sh->c, &dg, scaled_ms(30000));
		if (rc == CONNECT_OK)
			cr_check_dg(w, dg);
	}
	w->park_ms = now_ms() - t0;
	w->park_rc = rc;
	atomic_store_explicit(&w->park.state, P_DONE, memory_order_release);
	return NULL;
}

struct iters_wait {
	struct cr_worker *w;
	int n;
	int min;
};

static bool iters_reached(void *arg)
{
	struct iters_wait *iw = arg;

	for (int k = 0; k < iw->n; k++)
		if (atomic_load(&iw->w[k].iters) < iw->min)
			return false;
	return true;
}

struct stat_wait {
	connect_conn *c;
	int stat;
	uint64_t min;
};

static bool stat_reached(void *arg)
{
	struct stat_wait *sw = arg;
	uint64_t v = 0;

	return connect_conn_stat(sw->c, sw->stat, &v) == CONNECT_OK &&
	       v >= sw->min;
}

/* Push 64 KiB datagrams until the pipe refuses more for 50 ms. */
static void fill_pipe(connect_conn *c)
{
	int64_t deadline = now_ms() + scaled_ms(30000), since = -1;
	connect_datagram *dg = NULL;
	uint32_t n = 0;
	int rc;

	for (;;) {
		if (!dg)
			dg = dg_make(8, n, 64 * 1024);
		rc = connect_send(c, dg);
		if (rc == CONNECT_OK) {
			dg = NULL;
			n++;
			since = -1;
			continue;
		}
		ck_assert_code(rc, CONNECT_EAGAIN);
		if (since < 0)
			since = now_ms();
		else if (now_ms() - since >= 50)
			break;
		ck_assert_msg(now_ms() < deadline, "the pipe never filled");
		sleep_ms(2);
	}
	connect_datagram_free(dg);
}

/* Totals over all rounds. */
struct cr_totals {
	int parked;   /* calls proven in flight at close */
	int eclosed;  /* parked calls that returned CONNECT_ECLOSED */
	int rounds[4];
};

static void cr_round(int round, int t, int mode, struct cr_totals *tot)
{
	struct cr_shared *sh = calloc(1, sizeof(*sh));
	struct cr_worker w[CR_WORKERS];
	connect_opts *copts, *sopts = NULL;
	connect_conn *c, *s;
	bool inflight[CR_WORKERS];
	int linger, rc, fd = -1;
	int64_t t0, el;

	ck_assert_ptr_nonnull(sh);
	copts = opts_make(CONNECT_OPT_LINGER_MS, CR_LINGER_OPT,
			  mode == CR_FULL ? CONNECT_OPT_SEND_QUEUE_MSGS : 0, 2,
			  0, 0);
	if (mode == CR_FULL) /* the peer's reader stops at once */
		sopts = opts_make(CONNECT_OPT_RECV_QUEUE_MSGS, 1,
				  CONNECT_OPT_RECV_QUEUE_BYTES, 1, 0, 0);
	t_pair(t, copts, sopts, &c, &s);
	connect_opts_free(copts);
	connect_opts_free(sopts);

	sh->c = c;
	sh->mode = mode;
	sh->tls = t_table[t].tls;
	if (sh->tls)
		der_sha256_hex(CERT("server"), sh->fpr);
	ck_assert_code(connect_conn_local_addr(c, sh->local,
					       sizeof(sh->local)),
		       CONNECT_OK);
	ck_assert_code(connect_conn_peer_addr(c, sh->peer, sizeof(sh->peer)),
		       CONNECT_OK);
	connect_conn_set_user(c, &sh->tokens[0]);
	ck_assert_int_eq(pthread_barrier_init(&sh->gate, NULL, CR_WORKERS), 0);

	/* A burst for the workers' receives, all of it in c's inbound queue
	 * before they start: nothing arrives after it. */
	for (uint32_t i = 0; i < CR_BURST; i++)
		ck_assert_code(connect_send(s, dg_make(7, i, 32)), CONNECT_OK);
	{
		struct stat_wait sw = { c, CONNECT_STAT_MSGS_RECV, CR_BURST };

		ck_assert_msg(wait_for(stat_reached, &sw, scaled_ms(10000)),
			      "the burst did not arrive");
	}
	if (mode == CR_FULL)
		fill_pipe(c);

	for (int k = 0; k < CR_WORKERS; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].sh = sh;
		w[k].idx = k;
		w[k].fd = -1;
		w[k].park_rc = 1;
		w[k].park_send = mode == CR_FULL && (k & 1);
		atomic_init(&w[k].park.state, P_HAMMER);
		t_thread_start(&w[k].th, cr_worker_main, &w[k]);
	}
	{
		struct iters_wait iw = { w, CR_WORKERS, 2 };

		ck_assert_msg(wait_for(iters_reached, &iw, scaled_ms(20000)),
			      "round %d: the workers do not get going",
			      round);
		if (mode == CR_PEER_EOF || mode == CR_PEER_RESET) {
			connect_close(s, mode == CR_PEER_EOF ? scaled_ms(5000)
							     : 0,
				      NULL);
			s = NULL;
			iw.min = 6;
			ck_assert(wait_for(iters_reached, &iw,
					   scaled_ms(20000)));
		}
	}

	/* Steps 2 to 4 of the protocol above. */
	atomic_store(&sh->stop, true);
	for (int k = 0; k < CR_WORKERS; k++)
		inflight[k] = park_prove(&w[k].park);
	linger = mode == CR_QUIET && (round & 2) ? scaled_ms(2000) : 0;
	t0 = now_ms();
	rc = connect_close(c, linger, NULL);
	el = now_ms() - t0;

	for (int k = 0; k < CR_WORKERS; k++) {
		t_thread_join(w[k].th, 20000, "round %d: worker %d", round,
			      k);
	}
	for (int k = 0; k < CR_WORKERS; k++) {
		int prc = w[k].park_rc;
		bool ok;

		ck_assert_msg(!w[k].bad[0], "round %d (%s, %s), worker %d: %s",
			      round, t_name(t), cr_mode_name(mode), k,
			      w[k].bad);
		if (w[k].fd >= 0) {
			if (fd < 0)
				fd = w[k].fd;
			ck_assert_msg(w[k].fd == fd,
				      "two descriptors for one connection: "
				      "%d and %d",
				      fd, w[k].fd);
		}
		/* What the one parked call may return. */
		if (mode == CR_QUIET)
			ok = prc == CONNECT_ECLOSED; /* nothing else wakes it */
		else if (mode == CR_FULL)
			ok = prc == CONNECT_ECLOSED ||
			     (w[k].park_send && prc == CONNECT_OK);
		else
			ok = prc == CONNECT_ECLOSED || cr_end_ok(mode, prc);
		ck_assert_msg(ok,
			      "round %d (%s, %s): parked %s returned %s "
			      "after %lld ms",
			      round, t_name(t), cr_mode_name(mode),
			      w[k].park_send ? "send_wait" : "recv_wait",
			      connect_err_name(prc), (long long)w[k].park_ms);
		if (inflight[k]) {
			tot->parked++;
			if (prc == CONNECT_ECLOSED)
				tot->eclosed++;
			/* Woken by close, not by its 30 s timeout. */
			ck_assert_int_lt(w[k].park_ms, scaled_ms(15000));
		}
	}
	ck_assert_msg(el < scaled_ms(linger + 5000),
		      "round %d: close (linger %d) took %lld ms (%s)", round,
		      linger, (long long)el, connect_err_name(rc));
	tot->rounds[mode]++;
	if (s)
		connect_close(s, 0, NULL);
	pthread_barrier_destroy(&sh->gate);
	free(sh);
}

START_TEST(conn_calls_race_close)
{
	int rounds = sanitized() ? 48 : 200;
	bool v6 = have_ipv6_loopback();
	struct cr_totals tot = { 0 };

	for (int r = 0; r < rounds; r++) {
		int t = r % 3 == 0 ? T_TLS : r % 3 == 1 ? T_TCP4 : T_TCP6;
		int mode;

		if (t == T_TCP6 && !v6)
			t = T_TCP4;
		switch (r % 8) {
		case 0:
			mode = CR_FULL;
			break;
		case 3:
			mode = CR_PEER_EOF;
			break;
		case 6:
			mode = CR_PEER_RESET;
			break;
		default:
			mode = CR_QUIET;
		}
		cr_round(r, t, mode, &tot);
	}
	/* The race really had calls in flight: every quiet round parks
	 * all its workers in recv_wait with nothing that could wake them
	 * but close. */
	ck_assert_msg(tot.parked >= tot.rounds[CR_QUIET] * CR_WORKERS,
		      "only %d calls in flight at close over %d quiet rounds",
		      tot.parked, tot.rounds[CR_QUIET]);
	ck_assert_int_ge(tot.eclosed, tot.rounds[CR_QUIET] * CR_WORKERS);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 1b. Listener calls racing connect_listener_close                       */
/* ---------------------------------------------------------------------- */

enum { LR_WORKERS = 4, LR_DIALS = 3 };

struct lr_shared {
	connect_listener *l;
	bool tls;
	int port;
	char addr[64];
	atomic_bool stop;
	atomic_int accepted;
};

struct lr_worker {
	pthread_t th;
	struct lr_shared *sh;
	struct park park;
	atomic_int iters;
	int fd;
	int failures; /* the highest count seen */
	connect_conn *conns[LR_DIALS + 1];
	int nconns;
	int park_rc;
	int64_t park_ms;
	char bad[256];
};

static void lr_took(struct lr_worker *w, connect_conn *c)
{
	if (w->nconns < LR_DIALS + 1) {
		w->conns[w->nconns++] = c;
	} else {
		note(w->bad, sizeof(w->bad), "more connections than dialed");
		connect_close(c, 0, NULL);
	}
	atomic_fetch_add(&w->sh->accepted, 1);
}

static void lr_call(struct lr_worker *w, int op)
{
	struct lr_shared *sh = w->sh;
	connect_listener *l = sh->l;
	connect_conn *c = NULL;
	char buf[300];
	int rc, last;

	switch (op) {
	case 0:
		rc = connect_listener_fd(l);
		if (rc < 0)
			note(w->bad, sizeof(w->bad), "listener_fd: %s",
			     connect_err_name(rc));
		else if (w->fd < 0)
			w->fd = rc;
		else if (rc != w->fd)
			note(w->bad, sizeof(w->bad),
			     "listener_fd: %d, then %d", w->fd, rc);
		break;
	case 1:
		rc = connect_listener_port(l);
		if (rc != sh->port)
			note(w->bad, sizeof(w->bad), "listener_port: %d, not %d",
			     rc, sh->port);
		break;
	case 2:
		rc = connect_listener_addr(l, buf, sizeof(buf));
		if (rc != CONNECT_OK || strcmp(buf, sh->addr) != 0)
			note(w->bad, sizeof(w->bad), "listener_addr: %s \"%s\"",
			     connect_err_name(rc), buf);
		rc = connect_listener_addr(l, buf, strlen(sh->addr));
		if (rc != CONNECT_EINVAL)
			note(w->bad, sizeof(w->bad),
			     "listener_addr, short buffer: %s",
			     connect_err_name(rc));
		break;
	case 3:
		memset(buf, 'x', sizeof(buf));
		last = 12345;
		rc = connect_listener_tls_failures(l, &last, buf, sizeof(buf));
		if (rc < 0 || rc < w->failures || rc > 1 ||
		    !memchr(buf, '\0', sizeof(buf)))
			note(w->bad, sizeof(w->bad),
			     "tls_failures: %d after %d", rc, w->failures);
		else if (rc > 0 && (last == CONNECT_OK || !buf[0]))
			note(w->bad, sizeof(w->bad),
			     "tls_failures: %d with code %s, reason \"%s\"",
			     rc, connect_err_name(last), buf);
		else if (rc == 0 && last != CONNECT_OK)
			note(w->bad, sizeof(w->bad),
			     "tls_failures: none, yet code %s",
			     connect_err_name(last));
		if (rc > w->failures)
			w->failures = rc;
		break;
	case 4:
		rc = connect_accept(l, &c);
		if (rc == CONNECT_OK)
			lr_took(w, c);
		else if (rc != CONNECT_EAGAIN)
			note(w->bad, sizeof(w->bad), "accept: %s",
			     connect_err_name(rc));
		break;
	}
}

enum { LR_OPS = 5 };

static void *lr_worker_main(void *arg)
{
	struct lr_worker *w = arg;
	struct lr_shared *sh = w->sh;
	connect_conn *c = NULL;
	int64_t t0;
	int rc;

	w->park.tid = my_tid();
	for (int op = 0;; op++) {
		if (atomic_load(&sh->stop))
			break;
		lr_call(w, op % LR_OPS);
		if (op % LR_OPS == LR_OPS - 1)
			atomic_fetch_add(&w->iters, 1);
	}
	atomic_store_explicit(&w->park.state, P_PARKING, memory_order_release);
	t0 = now_ms();
	rc = connect_accept_wait(sh->l, &c, scaled_ms(30000));
	w->park_ms = now_ms() - t0;
	w->park_rc = rc;
	if (rc == CONNECT_OK)
		lr_took(w, c);
	atomic_store_explicit(&w->park.state, P_DONE, memory_order_release);
	return NULL;
}

struct lr_iters_wait {
	struct lr_worker *w;
	int min;
};

static bool lr_iters_reached(void *arg)
{
	struct lr_iters_wait *iw = arg;

	for (int k = 0; k < LR_WORKERS; k++)
		if (atomic_load(&iw->w[k].iters) < iw->min)
			return false;
	return true;
}

static bool accepted_all(void *arg)
{
	struct lr_shared *sh = arg;

	return atomic_load(&sh->accepted) >= LR_DIALS;
}

static bool one_failure(void *arg)
{
	struct lr_shared *sh = arg;

	return connect_listener_tls_failures(sh->l, NULL, NULL, 0) >= 1;
}

static int lr_round(int round, int t)
{
	struct lr_shared *sh = calloc(1, sizeof(*sh));
	struct lr_worker w[LR_WORKERS];
	connect_conn *dialed[LR_DIALS], *taken[LR_WORKERS * (LR_DIALS + 1)];
	int ntaken = 0, parked = 0, fd = -1;
	bool inflight[LR_WORKERS];
	struct lr_iters_wait iw = { w, 2 };
	int64_t t0, el;

	ck_assert_ptr_nonnull(sh);
	sh->l = t_listen_ok(t, NULL);
	sh->tls = t_table[t].tls;
	sh->port = connect_listener_port(sh->l);
	ck_assert_code(connect_listener_addr(sh->l, sh->addr,
					     sizeof(sh->addr)),
		       CONNECT_OK);
	for (int i = 0; i < LR_DIALS; i++)
		dialed[i] = t_dial_ok(t, sh->port, NULL);

	for (int k = 0; k < LR_WORKERS; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].sh = sh;
		w[k].fd = -1;
		w[k].park_rc = 1;
		atomic_init(&w[k].park.state, P_HAMMER);
		t_thread_start(&w[k].th, lr_worker_main, &w[k]);
	}
	ck_assert(wait_for(lr_iters_reached, &iw, scaled_ms(20000)));
	if (sh->tls) {
		/* A failed handshake while the workers read the count. */
		static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
		int raw = raw_dial(T_TCP4, sh->port);

		ck_assert(raw_send_all(raw, junk, sizeof(junk) - 1));
		ck_assert_msg(wait_for(one_failure, sh, scaled_ms(10000)),
			      "the junk handshake was not counted");
		close(raw);
	}
	/* Every dialed connection taken before the park: nothing more
	 * can arrive, so only close can wake the parked accepts. */
	ck_assert_msg(wait_for(accepted_all, sh, scaled_ms(10000)),
		      "round %d: %d of %d connections accepted", round,
		      atomic_load(&sh->accepted), LR_DIALS);
	iw.min += 2;
	ck_assert(wait_for(lr_iters_reached, &iw, scaled_ms(20000)));

	atomic_store(&sh->stop, true);
	for (int k = 0; k < LR_WORKERS; k++)
		inflight[k] = park_prove(&w[k].park);
	t0 = now_ms();
	connect_listener_close(sh->l);
	el = now_ms() - t0;
	for (int k = 0; k < LR_WORKERS; k++)
		t_thread_join(w[k].th, 20000, "round %d: worker %d", round,
			      k);
	ck_assert_msg(el < scaled_ms(5000), "listener close took %lld ms",
		      (long long)el);
	for (int k = 0; k < LR_WORKERS; k++) {
		ck_assert_msg(!w[k].bad[0], "round %d (%s), worker %d: %s",
			      round, t_name(t), k, w[k].bad);
		ck_assert_msg(w[k].park_rc == CONNECT_ECLOSED,
			      "round %d: parked accept_wait returned %s "
			      "after %lld ms",
			      round, connect_err_name(w[k].park_rc),
			      (long long)w[k].park_ms);
		ck_assert_int_lt(w[k].park_ms, scaled_ms(15000));
		if (inflight[k])
			parked++;
		if (w[k].fd >= 0) {
			if (fd < 0)
				fd = w[k].fd;
			ck_assert_int_eq(w[k].fd, fd);
		}
		ck_assert_int_le(w[k].failures, sh->tls ? 1 : 0);
		for (int i = 0; i < w[k].nconns; i++)
			taken[ntaken++] = w[k].conns[i];
	}
	/* Each connection to exactly one caller. */
	ck_assert_int_eq(ntaken, LR_DIALS);
	for (int i = 0; i < ntaken; i++)
		for (int j = i + 1; j < ntaken; j++)
			ck_assert_ptr_ne(taken[i], taken[j]);
	for (int i = 0; i < ntaken; i++)
		connect_close(taken[i], 0, NULL);
	for (int i = 0; i < LR_DIALS; i++)
		connect_close(dialed[i], 0, NULL);
	free(sh);
	return parked;
}

START_TEST(listener_calls_race_close)
{
	int rounds = sanitized() ? 30 : 120;
	bool v6 = have_ipv6_loopback();
	int parked = 0;

	for (int r = 0; r < rounds; r++) {
		int t = r % 3 == 0 ? T_TLS : r % 3 == 1 ? T_TCP4 : T_TCP6;

		if (t == T_TCP6 && !v6)
			t = T_TCP4;
		parked += lr_round(r, t);
	}
	ck_assert_msg(parked == rounds * LR_WORKERS,
		      "%d of %d accept_wait calls in flight at close", parked,
		      rounds * LR_WORKERS);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. Dialing and listening by URL                                         */
/* ---------------------------------------------------------------------- */

static connect_listener *listen_url_ok(const char *url,
				       const connect_opts *o)
{
	connect_listener *l = NULL;
	int rc = connect_listen(&l, url, o);

	ck_assert_msg(rc == CONNECT_OK, "listen %s: %s", url,
		      connect_err_name(rc));
	ck_assert_int_gt(connect_listener_port(l), 0);
	return l;
}

static connect_conn *dial_url_ok(const char *url, const connect_opts *o)
{
	connect_conn *c = NULL;
	int rc = connect_dial(&c, url, o);

	ck_assert_msg(rc == CONNECT_OK, "dial %s: %s", url,
		      connect_err_name(rc));
	ck_assert_ptr_nonnull(c);
	return c;
}

/* The listener's address is `host`:its port. */
static void assert_listener_addr(connect_listener *l, const char *host)
{
	char want[96], got[96];

	snprintf(want, sizeof(want), "%s:%d", host, connect_listener_port(l));
	ck_assert_code(connect_listener_addr(l, got, sizeof(got)), CONNECT_OK);
	ck_assert_str_eq(got, want);
}

START_TEST(url_tcp_forms)
{
	connect_tls_config *cc = cfg_client(false);
	connect_opts *with_tls = opts_tls(cc, "localhost");
	connect_listener *l;
	connect_conn *c;
	char url[96], buf[96];
	int port;

	/* "tcp://" and a bare "host:port", both ways round. */
	l = listen_url_ok("tcp://127.0.0.1:0", NULL);
	assert_listener_addr(l, "127.0.0.1");
	port = connect_listener_port(l);
	snprintf(url, sizeof(url), "127.0.0.1:%d", port);
	c = dial_url_ok(url, NULL);
	snprintf(url, sizeof(url), "127.0.0.1:%d", port);
	ck_assert_code(connect_conn_peer_addr(c, buf, sizeof(buf)), CONNECT_OK);
	ck_assert_str_eq(buf, url);
	accept_bounce_close(l, c);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	accept_bounce_close(l, dial_url_ok(url, NULL));

	/* A TLS configuration in the options does not make "tcp://" TLS:
	 * the plain listener gets a plain stream that works. */
	c = dial_url_ok(url, with_tls);
	ck_assert_code(connect_conn_peer_identity(c, CONNECT_PEER_SUBJECT, buf,
						  sizeof(buf)),
		       CONNECT_ENOTSUP);
	accept_bounce_close(l, c);
	connect_listener_close(l);

	l = listen_url_ok("127.0.0.1:0", NULL);
	assert_listener_addr(l, "127.0.0.1");
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d",
		 connect_listener_port(l));
	accept_bounce_close(l, dial_url_ok(url, NULL));
	connect_listener_close(l);

	if (have_ipv6_loopback()) {
		l = listen_url_ok("tcp://[::1]:0", NULL);
		assert_listener_addr(l, "[::1]");
		snprintf(url, sizeof(url), "tcp://[::1]:%d",
			 connect_listener_port(l));
		c = dial_url_ok(url, NULL);
		snprintf(url, sizeof(url), "[::1]:%d",
			 connect_listener_port(l));
		ck_assert_code(connect_conn_peer_addr(c, buf, sizeof(buf)),
			       CONNECT_OK);
		ck_assert_str_eq(buf, url);
		accept_bounce_close(l, c);
		/* Bare. */
		accept_bounce_close(l, dial_url_ok(url, NULL));
		connect_listener_close(l);
	}
	connect_opts_free(with_tls);
	connect_tls_config_free(cc);
}
END_TEST

START_TEST(url_tls_forms)
{
	connect_tls_config *sc = cfg_server(), *cc = cfg_client(false);
	connect_opts *so = opts_tls(sc, NULL), *co = opts_tls(cc, NULL);
	connect_listener *l;
	connect_conn *c = NULL;
	char url[96];
	int port;

	/* The options keep their own references. */
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);

	l = listen_url_ok("tls://127.0.0.1:0", so);
	assert_listener_addr(l, "127.0.0.1");
	port = connect_listener_port(l);

	/* No server name: the host, 127.0.0.1, is verified against the
	 * certificate's IP addresses. */
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", port);
	accept_bounce_close(l, dial_url_ok(url, co));
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	accept_bounce_close(l, dial_url_ok(url, co));

	/* A DNS name. */
	ck_assert_code(connect_opts_set_server_name(co, "localhost"),
		       CONNECT_OK);
	accept_bounce_close(l, dial_url_ok(url, co));

	/* A name the certificate does not have. */
	ck_assert_code(connect_opts_set_server_name(co,
						    "not-localhost.example"),
		       CONNECT_OK);
	ck_assert_code(connect_dial(&c, url, co), CONNECT_ETLSNAMEMISMATCH);
	ck_assert_ptr_null(c);
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", port);
	ck_assert_code(connect_dial(&c, url, co), CONNECT_ETLSNAMEMISMATCH);
	ck_assert_ptr_null(c);
	/* NULL clears it: back to the host. */
	ck_assert_code(connect_opts_set_server_name(co, NULL), CONNECT_OK);
	accept_bounce_close(l, dial_url_ok(url, co));
	connect_listener_close(l);

	if (have_ipv6_loopback()) {
		/* "[::1]" is verified as the address ::1, brackets off. */
		l = listen_url_ok("tls+tcp://[::1]:0", so);
		assert_listener_addr(l, "[::1]");
		snprintf(url, sizeof(url), "tls://[::1]:%d",
			 connect_listener_port(l));
		accept_bounce_close(l, dial_url_ok(url, co));
		snprintf(url, sizeof(url), "tls+tcp://[::1]:%d",
			 connect_listener_port(l));
		accept_bounce_close(l, dial_url_ok(url, co));
		connect_listener_close(l);
	}
	connect_opts_free(so);
	connect_opts_free(co);
}
END_TEST

/*
 * Reference counting: the caller's references go right after handing them
 * over; the options go right after listening and dialing; the connection
 * and the listener keep working on their own references.  (Under ASan a
 * reference dropped once too often is a use after free, one kept too long
 * a leak.)
 */
START_TEST(opts_tls_refcount)
{
	connect_tls_config *sc = cfg_server(), *cc = cfg_client(false);
	connect_tls_config *other = cfg_server();
	connect_opts *so = NULL, *co1 = NULL, *co2 = NULL;
	connect_listener *l = NULL;
	connect_conn *c = NULL, *s;
	char url[96];

	ck_assert_code(connect_opts_new(&so), CONNECT_OK);
	ck_assert_code(connect_opts_set_tls(so, sc), CONNECT_OK);
	connect_tls_config_free(sc);
	ck_assert_code(connect_listen(&l, "tls://127.0.0.1:0", so),
		       CONNECT_OK);
	connect_opts_free(so);

	/* Two options objects share cc; a third config is set and replaced
	 * (its last reference goes with the replacement). */
	ck_assert_code(connect_opts_new(&co1), CONNECT_OK);
	ck_assert_code(connect_opts_new(&co2), CONNECT_OK);
	ck_assert_code(connect_opts_set_tls(co1, cc), CONNECT_OK);
	ck_assert_code(connect_opts_set_tls(co2, other), CONNECT_OK);
	connect_tls_config_free(other);
	ck_assert_code(connect_opts_set_tls(co2, cc), CONNECT_OK);
	connect_tls_config_free(cc);
	ck_assert_code(connect_opts_set_server_name(co2, "localhost"),
		       CONNECT_OK);
	connect_opts_free(co1);

	snprintf(url, sizeof(url), "tls://127.0.0.1:%d",
		 connect_listener_port(l));
	ck_assert_code(connect_dial(&c, url, co2), CONNECT_OK);
	connect_opts_free(co2);
	s = t_accept_ok(l, scaled_ms(10000));
	/* Nothing of the set-up is left but the listener's and the
	 * connections' own references. */
	for (uint32_t i = 0; i < 20; i++)
		bounce(c, s, i);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	connect_close(s, 0, NULL);
	connect_listener_close(l);

	/* Setting NULL clears: a TLS scheme then has no configuration. */
	cc = cfg_client(false);
	co1 = opts_tls(cc, NULL);
	connect_tls_config_free(cc);
	ck_assert_code(connect_opts_set_tls(co1, NULL), CONNECT_OK);
	c = NULL;
	ck_assert_code(connect_dial(&c, "tls://127.0.0.1:1", co1),
		       CONNECT_ETLSCONFIG);
	ck_assert_ptr_null(c);
	connect_opts_free(co1);
}
END_TEST

START_TEST(url_errors)
{
	static const char *const bad[] = {
		"udp://127.0.0.1:1",
		"tls+udp://127.0.0.1:1",
		"://127.0.0.1:1",
		"tcp:/127.0.0.1:1",
		"tcp+tls://127.0.0.1:1", /* the base goes last */
		"tcp+tcp://127.0.0.1:1",
		"+tcp://127.0.0.1:1",
		"tls++tcp://127.0.0.1:1",
		"fault+tcp://127.0.0.1:1", /* the tests' layer, not public */
		"tcp://",
		"tcp://127.0.0.1",
		"tcp://127.0.0.1:65536",
		"tcp://::1:80", /* IPv6 needs brackets */
	};
	connect_tls_config *sc = cfg_server(), *cc = cfg_client(false);
	connect_tls_config *noca = NULL, *nocert = NULL;
	connect_opts *co = opts_tls(cc, "localhost"), *so = opts_tls(sc, NULL);
	connect_opts *plain = NULL, *o = NULL;
	connect_conn *c, *const sentinel = (connect_conn *)&c;
	connect_listener *l, *tl, *const lsent = (connect_listener *)&l;
	char url[96], name[300];

	ck_assert_code(connect_opts_new(&plain), CONNECT_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = sentinel;
		l = lsent;
		ck_assert_msg(connect_dial(&c, bad[i], co) == CONNECT_EADDR,
			      "dial \"%s\": %s", bad[i],
			      connect_err_name(connect_dial(&c, bad[i], co)));
		ck_assert_ptr_eq(c, sentinel);
		ck_assert_msg(connect_listen(&l, bad[i], so) == CONNECT_EADDR,
			      "listen \"%s\": %s", bad[i],
			      connect_err_name(connect_listen(&l, bad[i], so)));
		ck_assert_ptr_eq(l, lsent);
	}

	/* A live TLS listener to dial. */
	tl = listen_url_ok("tls://127.0.0.1:0", so);
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d",
		 connect_listener_port(tl));

	/* TLS without a client configuration. */
	c = sentinel;
	ck_assert_code(connect_dial(&c, url, NULL), CONNECT_ETLSCONFIG);
	ck_assert_code(connect_dial(&c, url, plain), CONNECT_ETLSCONFIG);
	ck_assert_code(connect_dial(&c, url, so), CONNECT_ETLSCONFIG);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d",
		 connect_listener_port(tl));
	ck_assert_code(connect_dial(&c, url, so), CONNECT_ETLSCONFIG);
	/* A client configuration trusting no CA. */
	ck_assert_code(connect_tls_config_new(&noca, CONNECT_TLS_CLIENT),
		       CONNECT_OK);
	o = opts_tls(noca, "localhost");
	ck_assert_code(connect_dial(&c, url, o), CONNECT_ETLSCONFIG);
	connect_opts_free(o);
	ck_assert_ptr_eq(c, sentinel);

	/* Listening: no configuration, a client one, one without a
	 * certificate. */
	l = lsent;
	ck_assert_code(connect_listen(&l, "tls://127.0.0.1:0", NULL),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_listen(&l, "tls+tcp://127.0.0.1:0", plain),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_listen(&l, "tls://127.0.0.1:0", co),
		       CONNECT_ETLSCONFIG);
	ck_assert_code(connect_tls_config_new(&nocert, CONNECT_TLS_SERVER),
		       CONNECT_OK);
	o = opts_tls(nocert, NULL);
	ck_assert_code(connect_listen(&l, "tls://127.0.0.1:0", o),
		       CONNECT_ETLSCONFIG);
	connect_opts_free(o);
	ck_assert_ptr_eq(l, lsent);

	/* The listener is still fine. */
	accept_bounce_close(tl, dial_url_ok(url, co));
	connect_listener_close(tl);

	/* NULL arguments. */
	ck_assert_code(connect_dial(NULL, "tcp://127.0.0.1:1", NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_dial(&c, NULL, NULL), CONNECT_EINVAL);
	ck_assert_code(connect_listen(NULL, "tcp://127.0.0.1:0", NULL),
		       CONNECT_EINVAL);
	ck_assert_code(connect_listen(&l, NULL, NULL), CONNECT_EINVAL);
	ck_assert_ptr_eq(c, sentinel);
	ck_assert_ptr_eq(l, lsent);

	/* Server names. */
	ck_assert_code(connect_opts_set_server_name(NULL, "localhost"),
		       CONNECT_EINVAL);
	ck_assert_code(connect_opts_set_server_name(plain, ""),
		       CONNECT_EINVAL);
	memset(name, 'a', sizeof(name));
	name[256] = '\0';
	ck_assert_code(connect_opts_set_server_name(plain, name),
		       CONNECT_EINVAL);
	name[255] = '\0';
	ck_assert_code(connect_opts_set_server_name(plain, name), CONNECT_OK);
	ck_assert_code(connect_opts_set_server_name(plain, NULL), CONNECT_OK);
	ck_assert_code(connect_opts_set_tls(NULL, cc), CONNECT_EINVAL);

	/* A refused empty name left the previous one in place: dialing
	 * with "localhost" still verifies against localhost. */
	l = listen_url_ok("tls://127.0.0.1:0", so);
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d",
		 connect_listener_port(l));
	ck_assert_code(connect_opts_set_server_name(co, "wrong.example"),
		       CONNECT_OK);
	ck_assert_code(connect_opts_set_server_name(co, ""), CONNECT_EINVAL);
	c = sentinel;
	ck_assert_code(connect_dial(&c, url, co), CONNECT_ETLSNAMEMISMATCH);
	ck_assert_ptr_eq(c, sentinel);
	/* The name is copied: the caller's buffer may change. */
	snprintf(name, sizeof(name), "localhost");
	ck_assert_code(connect_opts_set_server_name(co, name), CONNECT_OK);
	snprintf(name, sizeof(name), "wrong.example");
	accept_bounce_close(l, dial_url_ok(url, co));
	connect_listener_close(l);

	connect_opts_free(plain);
	connect_opts_free(co);
	connect_opts_free(so);
	connect_tls_config_free(noca);
	connect_tls_config_free(nocert);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/*
 * LIBRARY BUG (found by this test, not fixed here): a scheme ending in '+'
 * ("tls+://", "tls+tcp+://") has an empty transport name, yet the library
 * ignores the empty word and dials "tls://" ("tcp+://" dials TCP) instead
 * of answering CONNECT_EADDR, as it does for "+tcp://" and "tls++tcp://".
 * No listener on port 1: a dial that gets that far says
 * CONNECT_ECONNREFUSED.
 */
START_TEST(url_empty_last_word)
{
	static const char *const bad[] = {
		"tls+://127.0.0.1:1",
		"tls+tcp+://127.0.0.1:1",
		"tcp+://127.0.0.1:1",
	};
	connect_tls_config *cc = cfg_client(false), *sc = cfg_server();
	connect_opts *co = opts_tls(cc, "localhost"), *so = opts_tls(sc, NULL);
	connect_conn *c = NULL;
	connect_listener *l = NULL;
	char why[512] = "";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int d = connect_dial(&c, bad[i], co);
		int n = connect_listen(&l, bad[i], so);

		if (d == CONNECT_OK)
			connect_close(c, 0, NULL);
		if (n == CONNECT_OK)
			connect_listener_close(l);
		if ((d != CONNECT_EADDR || n != CONNECT_EADDR) && !why[0])
			snprintf(why, sizeof(why),
				 "\"%s\": dial %s, listen %s", bad[i],
				 connect_err_name(d), connect_err_name(n));
	}
	connect_opts_free(co);
	connect_opts_free(so);
	connect_tls_config_free(cc);
	connect_tls_config_free(sc);
	ck_assert_msg(!why[0], "%s (want CONNECT_EADDR)", why);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. The user pointer                                                     */
/* ---------------------------------------------------------------------- */

START_TEST(user_pointer_basics)
{
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_conn *c, *s, *c2, *s2;
	connect_datagram *dg = NULL;
	int a, b;

	/* NULL connection: ignored, and NULL. */
	connect_conn_set_user(NULL, &a);
	ck_assert_ptr_null(connect_conn_user(NULL));

	c = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	s = t_accept_ok(l, scaled_ms(10000));
	ck_assert_ptr_null(connect_conn_user(c));
	ck_assert_ptr_null(connect_conn_user(s));
	connect_conn_set_user(c, &a);
	connect_conn_set_user(s, &b);
	ck_assert_ptr_eq(connect_conn_user(c), &a);
	ck_assert_ptr_eq(connect_conn_user(s), &b);

	/* A connection accepted later starts with NULL, not with what the
	 * listener's earlier connections hold. */
	c2 = t_dial_ok(T_TCP4, connect_listener_port(l), NULL);
	s2 = t_accept_ok(l, scaled_ms(10000));
	ck_assert_ptr_null(connect_conn_user(c2));
	ck_assert_ptr_null(connect_conn_user(s2));
	ck_assert_ptr_eq(connect_conn_user(s), &b);

	/* Set back to NULL. */
	connect_conn_set_user(c2, &a);
	connect_conn_set_user(c2, NULL);
	ck_assert_ptr_null(connect_conn_user(c2));

	/* The pointer outlives the end of the stream. */
	bounce(c, s, 1);
	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	ck_assert_code(connect_recv_wait(s, &dg, scaled_ms(10000)),
		       CONNECT_EEOF);
	ck_assert_ptr_eq(connect_conn_user(s), &b);

	/* The library never looks at it: a pointer to nothing is fine,
	 * also while closing. */
	connect_conn_set_user(s2, (void *)(uintptr_t)1);
	ck_assert_ptr_eq(connect_conn_user(s2), (void *)(uintptr_t)1);
	connect_close(s2, 0, NULL);
	connect_close(c2, 0, NULL);
	connect_close(s, 0, NULL);
	connect_listener_close(l);
}
END_TEST

enum { UP_THREADS = 4, UP_ITERS = 20000 };

struct up_worker {
	pthread_t th;
	connect_conn *c;
	void **tokens; /* UP_THREADS * 2 distinct pointers */
	int idx;
	char bad[200];
};

static void *up_main(void *arg)
{
	struct up_worker *w = arg;

	for (int i = 0; i < UP_ITERS; i++) {
		void *mine = w->tokens[2 * w->idx + (i & 1)];
		void *u;
		bool known = false;

		connect_conn_set_user(w->c, mine);
		u = connect_conn_user(w->c);
		for (int k = 0; k < 2 * UP_THREADS; k++)
			known |= u == w->tokens[k];
		if (!known) {
			note(w->bad, sizeof(w->bad),
			     "iteration %d: user pointer %p never set", i, u);
			break;
		}
	}
	return NULL;
}

/*
 * Several threads set and read one connection's pointer: each read gives
 * a value some thread set (never a mix, never NULL once set), and the
 * other connection's pointer is not touched.
 */
START_TEST(user_pointer_threads)
{
	static int store[2 * UP_THREADS];
	void *tokens[2 * UP_THREADS];
	struct up_worker w[UP_THREADS];
	connect_conn *c, *s;
	int other;
	void *u;
	bool known = false;

	for (int k = 0; k < 2 * UP_THREADS; k++)
		tokens[k] = &store[k];
	t_pair(T_TCP4, NULL, NULL, &c, &s);
	connect_conn_set_user(s, &other);
	connect_conn_set_user(c, tokens[0]);
	for (int k = 0; k < UP_THREADS; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].c = c;
		w[k].tokens = tokens;
		w[k].idx = k;
		t_thread_start(&w[k].th, up_main, &w[k]);
	}
	/* Traffic meanwhile: the library threads leave it alone. */
	for (uint32_t i = 0; i < 50; i++) {
		bounce(c, s, i);
		ck_assert_ptr_eq(connect_conn_user(s), &other);
	}
	for (int k = 0; k < UP_THREADS; k++) {
		t_thread_join(w[k].th, 60000, "thread %d", k);
		ck_assert_msg(!w[k].bad[0], "thread %d: %s", k, w[k].bad);
	}
	u = connect_conn_user(c);
	for (int k = 0; k < 2 * UP_THREADS; k++)
		known |= u == tokens[k];
	ck_assert_msg(known, "final user pointer %p never set", u);
	ck_assert_ptr_eq(connect_conn_user(s), &other);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 4. TLS peer identity                                                    */
/* ---------------------------------------------------------------------- */

struct ident {
	const char *subject, *issuer, *sans;
	char fpr[65];
};

static const char *peer_what_name(int what)
{
	static const char *const n[] = { "?", "subject", "issuer", "sans",
					 "fingerprint" };

	return what >= 1 && what <= 4 ? n[what] : "?";
}

static const char *ident_field(const struct ident *id, int what)
{
	switch (what) {
	case CONNECT_PEER_SUBJECT:
		return id->subject;
	case CONNECT_PEER_ISSUER:
		return id->issuer;
	case CONNECT_PEER_SANS:
		return id->sans;
	default:
		return id->fpr;
	}
}

/*
 * Every field of c's peer against `want`, with a buffer of exactly the
 * right size, and one byte short (CONNECT_EINVAL, and nothing written past
 * the length given).
 */
static void check_identity(connect_conn *c, const char *side,
			   const struct ident *want)
{
	char buf[512];

	for (int what = CONNECT_PEER_SUBJECT; what <= CONNECT_PEER_FINGERPRINT;
	     what++) {
		const char *exp = ident_field(want, what);
		size_t need = strlen(exp) + 1;
		int rc;

		memset(buf, 'Z', sizeof(buf));
		rc = connect_conn_peer_identity(c, what, buf, sizeof(buf));
		ck_assert_msg(rc == CONNECT_OK, "%s: %s: %s", side,
			      peer_what_name(what), connect_err_name(rc));
		ck_assert_msg(strcmp(buf, exp) == 0,
			      "%s: %s is \"%s\", expected \"%s\"", side,
			      peer_what_name(what), buf, exp);

		memset(buf, 'Z', sizeof(buf));
		rc = connect_conn_peer_identity(c, what, buf, need);
		ck_assert_msg(rc == CONNECT_OK && strcmp(buf, exp) == 0,
			      "%s: %s with %zu bytes: %s \"%s\"", side,
			      peer_what_name(what), need, connect_err_name(rc),
			      buf);
		ck_assert_msg(buf[need] == 'Z', "%s: %s wrote past %zu bytes",
			      side, peer_what_name(what), need);

		memset(buf, 'Z', sizeof(buf));
		rc = connect_conn_peer_identity(c, what, buf, need - 1);
		ck_assert_msg(rc == CONNECT_EINVAL,
			      "%s: %s with %zu bytes (one short): %s", side,
			      peer_what_name(what), need - 1,
			      connect_err_name(rc));
		for (size_t i = need - 1; i < sizeof(buf); i++)
			ck_assert_msg(buf[i] == 'Z',
				      "%s: %s with %zu bytes wrote byte %zu",
				      side, peer_what_name(what), need - 1, i);
	}
	/* Bad arguments. */
	ck_assert_code(connect_conn_peer_identity(c, 0, buf, sizeof(buf)),
		       CONNECT_EINVAL);
	ck_assert_code(connect_conn_peer_identity(c, 5, buf, sizeof(buf)),
		       CONNECT_EINVAL);
	ck_assert_code(connect_conn_peer_identity(c, CONNECT_PEER_SUBJECT,
						  NULL, sizeof(buf)),
		       CONNECT_EINVAL);
	ck_assert_code(connect_conn_peer_identity(NULL, CONNECT_PEER_SUBJECT,
						  buf, sizeof(buf)),
		       CONNECT_EINVAL);
}

/* A TLS pair through connect_listen/connect_dial with these configs. */
static void tls_pair(connect_tls_config *sc, connect_tls_config *cc,
		     connect_conn **c, connect_conn **s)
{
	connect_opts *so = opts_tls(sc, NULL), *co = opts_tls(cc, "localhost");
	connect_listener *l = listen_url_ok("tls://127.0.0.1:0", so);
	char url[96];

	snprintf(url, sizeof(url), "tls://127.0.0.1:%d",
		 connect_listener_port(l));
	*c = dial_url_ok(url, co);
	*s = t_accept_ok(l, scaled_ms(10000));
	connect_listener_close(l);
	connect_opts_free(so);
	connect_opts_free(co);
}

static const char *const prios[] = { TLS13_ONLY, TLS12_ONLY };

/* Loop index: 0 TLS 1.3, 1 TLS 1.2. */
START_TEST(peer_identity_mutual)
{
	connect_tls_config *sc = cfg_server_auth(CONNECT_TLS_AUTH_REQUIRED);
	connect_tls_config *cc = cfg_client(true);
	struct ident server = { SERVER_DN, CA_DN, SERVER_SANS, "" };
	struct ident client = { CLIENT_DN, CA_DN, CLIENT_SANS, "" };
	connect_conn *c, *s;

	der_sha256_hex(CERT("server"), server.fpr);
	der_sha256_hex(CERT("client"), client.fpr);
	ck_assert_str_ne(server.fpr, client.fpr);
	ck_assert_code(connect_tls_config_priority(cc, prios[_i]), CONNECT_OK);
	tls_pair(sc, cc, &c, &s);
	bounce(c, s, 1);
	/* The client sees the server's certificate, the server the
	 * client's: never its own, never the CA's. */
	check_identity(c, "client", &server);
	check_identity(s, "server", &client);
	/* Still so after traffic both ways. */
	bounce(s, c, 2);
	check_identity(c, "client", &server);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/* Loop index: 0 TLS 1.3, 1 TLS 1.2. */
START_TEST(peer_identity_no_client_cert)
{
	connect_tls_config *sc = cfg_server_auth(CONNECT_TLS_AUTH_OPTIONAL);
	connect_tls_config *cc = cfg_client(false);
	struct ident server = { SERVER_DN, CA_DN, SERVER_SANS, "" };
	connect_conn *c, *s;
	char buf[256];

	der_sha256_hex(CERT("server"), server.fpr);
	ck_assert_code(connect_tls_config_priority(cc, prios[_i]), CONNECT_OK);
	tls_pair(sc, cc, &c, &s);
	bounce(c, s, 1);
	for (int what = CONNECT_PEER_SUBJECT; what <= CONNECT_PEER_FINGERPRINT;
	     what++)
		ck_assert_code(connect_conn_peer_identity(s, what, buf,
							  sizeof(buf)),
			       CONNECT_ETLSNOCERT);
	check_identity(c, "client", &server);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);

	/* Client authentication off: no certificate asked for, none. */
	connect_tls_config_free(sc);
	sc = cfg_server();
	connect_tls_config_free(cc);
	cc = cfg_client(true);
	ck_assert_code(connect_tls_config_priority(cc, prios[_i]), CONNECT_OK);
	tls_pair(sc, cc, &c, &s);
	bounce(c, s, 1);
	ck_assert_code(connect_conn_peer_identity(s, CONNECT_PEER_SUBJECT, buf,
						  sizeof(buf)),
		       CONNECT_ETLSNOCERT);
	check_identity(c, "client", &server);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/* Loop index: a TCP transport (tcp4, tcp6). */
START_TEST(peer_identity_tcp)
{
	int t = _i;
	connect_conn *c, *s;
	char buf[256];

	if (t == T_TCP6 && !have_ipv6_loopback())
		return;
	t_pair(t, NULL, NULL, &c, &s);
	for (int what = CONNECT_PEER_SUBJECT; what <= CONNECT_PEER_FINGERPRINT;
	     what++) {
		ck_assert_code(connect_conn_peer_identity(c, what, buf,
							  sizeof(buf)),
			       CONNECT_ENOTSUP);
		ck_assert_code(connect_conn_peer_identity(s, what, buf,
							  sizeof(buf)),
			       CONNECT_ENOTSUP);
	}
	ck_assert_code(connect_conn_peer_identity(c, CONNECT_PEER_SUBJECT,
						  NULL, sizeof(buf)),
		       CONNECT_EINVAL);
	bounce(c, s, 1);
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
}
END_TEST

/* Identities read from several threads while datagrams flow both ways. */
struct id_reader {
	pthread_t th;
	connect_conn *c;
	const struct ident *want;
	atomic_bool *stop;
	int reads;
	char bad[300];
};

static void *id_reader_main(void *arg)
{
	struct id_reader *r = arg;
	char buf[512];

	while (!atomic_load(r->stop)) {
		for (int what = CONNECT_PEER_SUBJECT;
		     what <= CONNECT_PEER_FINGERPRINT; what++) {
			int rc = connect_conn_peer_identity(r->c, what, buf,
							    sizeof(buf));

			if (rc != CONNECT_OK ||
			    strcmp(buf, ident_field(r->want, what)) != 0)
				note(r->bad, sizeof(r->bad), "%s: %s \"%s\"",
				     peer_what_name(what),
				     connect_err_name(rc), buf);
		}
		r->reads++;
	}
	return NULL;
}

START_TEST(peer_identity_concurrent)
{
	enum { NR = 4, N = 300 };
	connect_tls_config *sc = cfg_server_auth(CONNECT_TLS_AUTH_REQUIRED);
	connect_tls_config *cc = cfg_client(true);
	struct ident server = { SERVER_DN, CA_DN, SERVER_SANS, "" };
	struct ident client = { CLIENT_DN, CA_DN, CLIENT_SANS, "" };
	struct id_reader r[NR];
	atomic_bool stop = false;
	connect_conn *c, *s;

	der_sha256_hex(CERT("server"), server.fpr);
	der_sha256_hex(CERT("client"), client.fpr);
	tls_pair(sc, cc, &c, &s);
	for (int k = 0; k < NR; k++) {
		memset(&r[k], 0, sizeof(r[k]));
		r[k].c = k & 1 ? s : c;
		r[k].want = k & 1 ? &client : &server;
		r[k].stop = &stop;
		t_thread_start(&r[k].th, id_reader_main, &r[k]);
	}
	for (uint32_t i = 0; i < N; i++)
		bounce(i & 1 ? s : c, i & 1 ? c : s, i);
	atomic_store(&stop, true);
	for (int k = 0; k < NR; k++) {
		t_thread_join(r[k].th, 20000, "reader %d", k);
		ck_assert_msg(!r[k].bad[0], "reader %d: %s", k, r[k].bad);
		ck_assert_int_gt(r[k].reads, 0);
	}
	connect_close(c, 0, NULL);
	connect_close(s, 0, NULL);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 5. Handshake flood                                                      */
/* ---------------------------------------------------------------------- */

enum { FLOOD = 200 };

struct fail_wait {
	connect_listener *l;
	int min;
};

static bool failures_reached(void *arg)
{
	struct fail_wait *fw = arg;

	return connect_listener_tls_failures(fw->l, NULL, NULL, 0) >= fw->min;
}

struct readable_wait {
	int *fds;
	int n;
};

static bool all_readable(void *arg)
{
	struct readable_wait *rw = arg;

	for (int i = 0; i < rw->n; i++)
		if (fd_readable(rw->fds[i], 0) != 1)
			return false;
	return true;
}

/*
 * Loop index 0: the default CONNECT_OPT_HANDSHAKE_MAX (64); 1: 8.
 * FLOOD raw TCP clients connect to a TLS listener and say nothing (every
 * fourth sends the first three bytes of a TLS record and stalls).  Then a
 * real TLS client must get through and echo within 2 s (scaled).  With
 * M handshakes allowed, the oldest are cut: FLOOD + 1 - M of them in all,
 * each counted once with CONNECT_ETLSHANDSHAKETIMEOUT, and those are
 * exactly the FLOOD + 1 - M raw clients that connected first.
 */
START_TEST(handshake_flood)
{
	static const uint8_t partial[3] = { 0x16, 0x03, 0x01 };
	int max = _i == 0 ? 64 : 8;
	connect_tls_config *sc = cfg_server(), *cc = cfg_client(false);
	connect_opts *so = opts_tls(sc, NULL), *co = opts_tls(cc, "localhost");
	connect_listener *l;
	struct echo_server *e;
	connect_conn *c = NULL;
	connect_datagram *dg = NULL;
	struct fail_wait fw;
	struct readable_wait rw;
	int64_t v, t0, el;
	int fds[FLOOD], port, n, last = 0, rc, cut = FLOOD + 1 - max;
	char why[512] = "", url[96];
	uint64_t echoed = 0;

	/* Silent clients never time out by themselves during the test. */
	ck_assert_code(connect_tls_config_handshake_timeout(sc, 600000),
		       CONNECT_OK);
	if (_i == 1)
		ck_assert_code(connect_opts_set(so, CONNECT_OPT_HANDSHAKE_MAX,
						max),
			       CONNECT_OK);
	ck_assert_code(connect_opts_get(so, CONNECT_OPT_HANDSHAKE_MAX, &v),
		       CONNECT_OK);
	ck_assert_int_eq(v, max);
	l = listen_url_ok("tls://127.0.0.1:0", so);
	port = connect_listener_port(l);
	snprintf(url, sizeof(url), "tls://127.0.0.1:%d", port);

	for (int i = 0; i < FLOOD; i++) {
		fds[i] = raw_dial(T_TCP4, port);
		if (i % 4 == 3)
			ck_assert(raw_send_all(fds[i], partial,
					       sizeof(partial)));
	}

	/* The real client, while the listener may still be working
	 * through the flood. */
	e = echo_start(l, scaled_ms(10000));
	t0 = now_ms();
	rc = connect_dial(&c, url, co);
	ck_assert_msg(rc == CONNECT_OK, "dial through the flood: %s",
		      connect_err_name(rc));
	ck_assert_code(connect_send(c, dg_make(4, 42, 1000)), CONNECT_OK);
	rc = connect_recv_wait(c, &dg, scaled_ms(10000));
	el = now_ms() - t0;
	ck_assert_msg(rc == CONNECT_OK, "echo through the flood: %s",
		      connect_err_name(rc));
	ck_assert(dg_check(dg, 4, 42, 1000, NULL, 0));
	connect_datagram_free(dg);
	ck_assert_msg(el < scaled_ms(2000),
		      "connect and echo through %d silent clients (max %d) "
		      "took %lld ms",
		      FLOOD, max, (long long)el);

	/* Every cut counted once, with a code and a reason. */
	fw = (struct fail_wait){ l, cut };
	ck_assert_msg(wait_for(failures_reached, &fw, scaled_ms(10000)),
		      "%d handshakes cut, %d expected",
		      connect_listener_tls_failures(l, NULL, NULL, 0), cut);
	sleep_ms(200);
	n = connect_listener_tls_failures(l, &last, why, sizeof(why));
	ck_assert_msg(n == cut, "%d failures counted, %d handshakes cut", n,
		      cut);
	ck_assert_msg(last == CONNECT_ETLSHANDSHAKETIMEOUT,
		      "last failure %s (%s)", connect_err_name(last), why);
	ck_assert_msg(why[0] != '\0', "no reason for the cut");

	/* The oldest went: the first `cut` raw clients see their stream
	 * end, the newest max - 1 are still waiting. */
	rw = (struct readable_wait){ fds, cut };
	ck_assert_msg(wait_for(all_readable, &rw, scaled_ms(10000)),
		      "the cut clients were not disconnected");
	for (int i = cut; i < FLOOD; i++)
		ck_assert_msg(fd_readable(fds[i], 0) == 0,
			      "raw client %d of %d (not among the %d oldest) "
			      "was cut",
			      i, FLOOD, cut);

	ck_assert_code(connect_close(c, scaled_ms(5000), NULL), CONNECT_OK);
	ck_assert_code(echo_stop(e, scaled_ms(10000), &echoed), CONNECT_EEOF);
	ck_assert_uint_eq(echoed, 1);

	/* Closing with max - 1 handshakes stuck is prompt. */
	t0 = now_ms();
	connect_listener_close(l);
	el = now_ms() - t0;
	ck_assert_msg(el < scaled_ms(5000), "listener close took %lld ms",
		      (long long)el);
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	connect_opts_free(so);
	connect_opts_free(co);
	connect_tls_config_free(sc);
	connect_tls_config_free(cc);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 6. A reset is never the end of the stream                               */
/* ---------------------------------------------------------------------- */

/* A thread that keeps the connection's writer busy. */
struct pusher {
	pthread_t th;
	connect_conn *c;
	size_t len;
	atomic_bool stop;
	uint32_t sent;
	int rc; /* the code that stopped it, CONNECT_OK if `stop` did */
};

static void *pusher_main(void *arg)
{
	struct pusher *p = arg;
	connect_datagram *dg = NULL;
	int rc = CONNECT_OK;

	while (!atomic_load(&p->stop)) {
		if (!dg)
			dg = dg_make_nocheck(3, p->sent, p->len);
		if (!dg) {
			rc = CONNECT_ENOMEM;
			break;
		}
		rc = connect_send_wait(p->c, dg, 50);
		if (rc == CONNECT_OK) {
			dg = NULL;
			p->sent++;
		} else if (rc != CONNECT_ETIMEDOUT) {
			break;
		}
		rc = CONNECT_OK;
	}
	connect_datagram_free(dg);
	p->rc = rc;
	return NULL;
}

static void pusher_start(struct pusher *p, connect_conn *c, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->len = len;
	atomic_init(&p->stop, false);
	t_thread_start(&p->th, pusher_main, p);
}

static int pusher_join(struct pusher *p)
{
	atomic_store(&p->stop, true);
	t_thread_join(p->th, 20000, "pusher");
	return p->rc;
}

/* Writer blocked: no datagram written for 50 ms with more waiting. */
static void wait_writer_stalled(connect_conn *s)
{
	int64_t deadline = now_ms() + scaled_ms(20000);
	uint64_t prev = UINT64_MAX, v = 0, q = 0;
	int64_t since = now_ms();

	for (;;) {
		ck_assert_code(connect_conn_stat(s, CONNECT_STAT_MSGS_SENT, &v),
			       CONNECT_OK);
		ck_assert_code(connect_conn_stat(s, CONNECT_STAT_SEND_QUEUED,
						 &q),
			       CONNECT_OK);
		if (v != prev || q == 0) {
			prev = v;
			since = now_ms();
		} else if (now_ms() - since >= 50) {
			return;
		}
		ck_assert_msg(now_ms() < deadline, "the writer never stalled");
		sleep_ms(2);
	}
}

/* Everything written to the raw socket was acknowledged by the other end
 * (SIOCOUTQ: bytes sent but not acknowledged, plus bytes not sent). */
static bool raw_acked(void *arg)
{
	int fd = *(int *)arg, outq = -1;

	return ioctl(fd, SIOCOUTQ, &outq) == 0 && outq == 0;
}

/* At least `min` bytes wait unread on a raw socket. */
struct inq_wait {
	int fd;
	int min;
};

static bool inq_reached(void *arg)
{
	struct inq_wait *iw = arg;
	int n = 0;

	return ioctl(iw->fd, SIOCINQ, &n) == 0 && n >= iw->min;
}

/* Frames "frame N" with tag 5, N = first .. first + k - 1, in one
 * buffer; returns its length. */
static size_t put_frames(uint8_t *buf, uint32_t first, uint32_t k)
{
	size_t off = 0;

	for (uint32_t i = first; i < first + k; i++) {
		char p[32];
		int n = snprintf(p, sizeof(p), "frame %u", i);

		off += frame_put(buf + off, 4 + (uint32_t)n, 1, 5, p,
				 (size_t)n);
	}
	return off;
}

static void recv_frames(connect_conn *s, uint32_t k, int round)
{
	for (uint32_t i = 0; i < k; i++) {
		connect_datagram *dg = NULL;
		char p[32];
		int n = snprintf(p, sizeof(p), "frame %u", i);
		int rc = connect_recv_wait(s, &dg, scaled_ms(10000));

		ck_assert_msg(rc == CONNECT_OK,
			      "round %d: frame %u of %u: %s", round, i, k,
			      connect_err_name(rc));
		ck_assert_uint_eq(connect_datagram_tag(dg), 5);
		ck_assert_uint_eq(connect_datagram_size(dg), (size_t)n);
		ck_assert_mem_eq(connect_datagram_data(dg), p, (size_t)n);
		connect_datagram_free(dg);
	}
}

/*
 * 20 rounds: a raw TCP peer sends K whole frames and resets the connection
 * (SO_LINGER {1, 0}, close) while the library side pushes datagrams at it.
 * Round % 4: the writer blocked in sendmsg on the peer's full window (0, 2)
 * or busy writing (1, 3); the reader free (0, 1) or paused on a full
 * inbound queue (2, 3: CONNECT_OPT_RECV_QUEUE_MSGS 1, the first frame
 * taken alone, the rest left in the kernel when the reset comes).  The
 * frames arrived (the kernel acknowledged them) before the reset, so
 * connect_recv returns all K datagrams, then CONNECT_ECONNRESET, sticky;
 * never CONNECT_EEOF, also when the writer's sendmsg took the socket's
 * reset error first and the reader meets a bare end of stream.
 */
START_TEST(reset_is_not_eof)
{
	connect_opts *one_msg = opts_make(CONNECT_OPT_RECV_QUEUE_MSGS, 1, 0, 0,
					  0, 0);
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	connect_listener *lp = t_listen_ok(T_TCP4, one_msg);
	uint8_t buf[2048];
	char why[256];

	connect_opts_free(one_msg);
	for (int round = 0; round < 20; round++) {
		uint32_t k = 2 + (uint32_t)round % 6, first = 0;
		bool busy = round % 2 == 1, paused = round % 4 >= 2;
		connect_listener *ll = paused ? lp : l;
		struct linger lg = { 1, 0 };
		struct pusher p;
		connect_conn *s;
		connect_datagram *dg = NULL;
		int raw, one = 1, rc;
		size_t len;

		raw = raw_dial(T_TCP4, connect_listener_port(ll));
		ck_assert_int_eq(setsockopt(raw, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one)),
				 0);
		s = t_accept_ok(ll, scaled_ms(10000));
		if (paused) {
			/* One frame fills the inbound queue: the reader
			 * sleeps until the application takes it. */
			struct stat_wait sw = { s, CONNECT_STAT_RECV_QUEUED,
						1 };

			len = put_frames(buf, 0, 1);
			ck_assert(raw_send_all(raw, buf, len));
			ck_assert(wait_for(stat_reached, &sw,
					   scaled_ms(10000)));
			first = 1;
		}
		pusher_start(&p, s, 16 * 1024);
		if (!busy) {
			wait_writer_stalled(s);
		} else {
			/* The writer is at it: 32 KiB reached the peer. */
			struct inq_wait iw = { raw, 32 * 1024 };

			ck_assert(wait_for(inq_reached, &iw,
					   scaled_ms(10000)));
		}

		len = put_frames(buf, first, k - first);
		ck_assert(raw_send_all(raw, buf, len));
		ck_assert_msg(wait_for(raw_acked, &raw, scaled_ms(10000)),
			      "round %d: the frames were not acknowledged",
			      round);
		ck_assert_int_eq(setsockopt(raw, SOL_SOCKET, SO_LINGER, &lg,
					    sizeof(lg)),
				 0);
		close(raw);

		if (paused) /* let the reset land while the reader sleeps */
			sleep_ms(20);
		recv_frames(s, k, round);
		rc = connect_recv_wait(s, &dg, scaled_ms(10000));
		ck_assert_msg(rc == CONNECT_ECONNRESET,
			      "round %d (%s writer, %s reader): after %u "
			      "frames and a reset, recv says %s",
			      round, busy ? "busy" : "blocked",
			      paused ? "paused" : "free", k,
			      connect_err_name(rc));
		ck_assert_code(connect_recv(s, &dg), CONNECT_ECONNRESET);
		ck_assert_code(connect_recv_wait(s, &dg, 10),
			       CONNECT_ECONNRESET);
		rc = connect_conn_error(s, why, sizeof(why));
		ck_assert_msg(rc != CONNECT_OK && rc != CONNECT_EEOF,
			      "conn_error: %s (%s)", connect_err_name(rc),
			      why);
		/* The sender stops by itself: the writer meets the reset
		 * too, and sends then report it. */
		t_thread_join(p.th, 10000,
			      "round %d: sending goes on after the reset",
			      round);
		ck_assert_msg(p.rc == CONNECT_ECONNRESET,
			      "round %d: the sender got %s", round,
			      connect_err_name(p.rc));
		connect_close(s, 0, NULL);
	}
	connect_listener_close(l);
	connect_listener_close(lp);
}
END_TEST

/* Reads and counts everything from a raw socket until its end. */
struct drain {
	pthread_t th;
	int fd;
	_Atomic uint64_t bytes;
	int err; /* errno of a failed recv, 0 at a clean end */
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	uint8_t *buf = malloc(65536);
	ssize_t n;

	if (!buf) {
		d->err = ENOMEM;
		return NULL;
	}
	for (;;) {
		n = recv(d->fd, buf, 65536, 0);
		if (n > 0) {
			atomic_fetch_add(&d->bytes, (uint64_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		d->err = n < 0 ? errno : 0;
		free(buf);
		return NULL;
	}
}

static bool drained_some(void *arg)
{
	struct drain *d = arg;

	return atomic_load(&d->bytes) >= 64 * 1024;
}

/*
 * The contrast: the raw peer sends K frames and shuts its side down
 * cleanly (FIN) while the library side keeps sending and the peer keeps
 * reading.  connect_recv: K datagrams, then CONNECT_EEOF; sending goes on
 * unharmed (the peer only half-closed); a lingering close then delivers
 * everything and ends cleanly.
 */
START_TEST(clean_shutdown_is_eof)
{
	enum { LEN = 16 * 1024 };
	connect_listener *l = t_listen_ok(T_TCP4, NULL);
	int port = connect_listener_port(l);
	uint8_t buf[2048];

	for (int round = 0; round < 6; round++) {
		uint32_t k = 1 + (uint32_t)round * 3;
		struct pusher p;
		struct drain d;
		connect_conn *s;
		connect_datagram *dg = NULL;
		size_t len, unsent = 99;
		uint32_t sent;
		int rc;

		memset(&d, 0, sizeof(d));
		d.fd = raw_dial(T_TCP4, port);
		s = t_accept_ok(l, scaled_ms(10000));
		t_thread_start(&d.th, drain_main, &d);
		pusher_start(&p, s, LEN);
		/* The writer is at it: 64 KiB reached the peer. */
		ck_assert(wait_for(drained_some, &d, scaled_ms(10000)));

		len = put_frames(buf, 0, k);
		ck_assert(raw_send_all(d.fd, buf, len));
		ck_assert_int_eq(shutdown(d.fd, SHUT_WR), 0);

		recv_frames(s, k, round);
		rc = connect_recv_wait(s, &dg, scaled_ms(10000));
		ck_assert_msg(rc == CONNECT_EEOF,
			      "round %d: after %u frames and a FIN, recv "
			      "says %s",
			      round, k, connect_err_name(rc));
		ck_assert_code(connect_recv(s, &dg), CONNECT_EEOF);
		ck_assert_code(connect_conn_error(s, NULL, 0), CONNECT_OK);

		/* The half-closed peer still reads: sending is unharmed. */
		sleep_ms(20);
		ck_assert_code(pusher_join(&p), CONNECT_OK);
		sent = p.sent;
		ck_assert_uint_gt(sent, 0);
		ck_assert_code(connect_close(s, scaled_ms(10000), &unsent),
			       CONNECT_OK);
		ck_assert_uint_eq(unsent, 0);
		t_thread_join(d.th, 10000, "drain");
		ck_assert_int_eq(d.err, 0);
		ck_assert_uint_eq(atomic_load(&d.bytes),
				  (uint64_t)sent * (8 + LEN));
		close(d.fd);
	}
	connect_listener_close(l);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Calls parked inside the library while close runs                        */
/* ---------------------------------------------------------------------- */

/*
 * The thread-safety table promises that connect_close() (and
 * connect_listener_close()) waits for every call already running on the
 * object to leave before it frees it.  To hold a call inside the library
 * for as long as we like, it is given an output buffer on a page without
 * access: its first store there faults, after the call registered, and
 * the SIGSEGV handler blocks that thread until the test lets it go; then
 * it opens the page and returns, and the store is made again.  While the
 * calls are held, another thread closes the object: close must not return
 * before they are let go, and after they are, everything must end cleanly
 * (under ASan and TSan: without a use after free or a race).  A call whose
 * registration was removed is caught by the first check (close returns
 * while the call is still inside), and under ASan by what it reads after.
 *
 * Calls parked this way are the ones with an output: connect_conn_error,
 * _local_addr, _peer_addr, _stat, _opt, _peer_identity (TLS), and
 * connect_listener_addr and _tls_failures.  connect_conn_fd, _send_fd,
 * _user, _set_user, connect_listener_fd and _port have nothing to fault
 * on; conn_calls_race_close runs them up to close.
 */
static struct {
	uint8_t *page;
	size_t size;
	int parked[2]; /* handler -> test: a call is held */
	int go[2];     /* test -> handler: let one go */
} pk;

static void pk_handler(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = si->si_addr;
	char b = 1;

	(void)uc;
	if (a < pk.page || a >= pk.page + pk.size) {
		/* Not ours: die as without the handler. */
		signal(sig, SIG_DFL);
		return;
	}
	while (write(pk.parked[1], &b, 1) < 0 && errno == EINTR)
		;
	while (read(pk.go[0], &b, 1) < 0 && errno == EINTR)
		;
	mprotect(pk.page, pk.size, PROT_READ | PROT_WRITE);
}

static struct sigaction pk_old;

static void pk_setup(void)
{
	struct sigaction sa;

	pk.size = (size_t)sysconf(_SC_PAGESIZE);
	/* A writable page, then the page without access. */
	pk.page = mmap(NULL, 2 * pk.size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(pk.page != MAP_FAILED);
	pk.page += pk.size;
	ck_assert(pipe(pk.parked) == 0 && pipe(pk.go) == 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = pk_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	ck_assert(sigaction(SIGSEGV, &sa, &pk_old) == 0);
}

static void pk_teardown(void)
{
	sigaction(SIGSEGV, &pk_old, NULL);
	munmap(pk.page - pk.size, 2 * pk.size);
	close(pk.parked[0]);
	close(pk.parked[1]);
	close(pk.go[0]);
	close(pk.go[1]);
}

/* Close the page again for the next round (no call is inside). */
static void pk_arm(void)
{
	ck_assert(mprotect(pk.page, pk.size, PROT_NONE) == 0);
}

/* Wait until n calls are held; fails the test after a while. */
static void pk_wait_parked(int n)
{
	for (int i = 0; i < n; i++) {
		char b;

		ck_assert_msg(fd_readable(pk.parked[0], scaled_ms(5000)) == 1,
			      "only %d of %d calls reached their output", i,
			      n);
		ck_assert(read(pk.parked[0], &b, 1) == 1);
	}
}

static void pk_release(int n)
{
	for (int i = 0; i < n; i++)
		ck_assert(write(pk.go[1], "g", 1) == 1);
}

enum {
	PK_ERROR,
	PK_LOCAL,
	PK_PEER,
	PK_STAT,
	PK_OPT,
	PK_IDENT, /* TLS rows only */
	PK_CONN_CALLS,
	PK_L_ADDR = PK_CONN_CALLS,
	PK_L_FAILURES,
	PK_CALLS
};

static const char *const pk_names[PK_CALLS] = {
	"connect_conn_error",	 "connect_conn_local_addr",
	"connect_conn_peer_addr", "connect_conn_stat",
	"connect_conn_opt",	 "connect_conn_peer_identity",
	"connect_listener_addr", "connect_listener_tls_failures",
};

/* Each call writes into its own slice of the page (4 KiB at least). */
#define PK_SLICE 512

struct pk_call {
	int op;
	connect_conn *c;
	connect_listener *l;
	int rc;
	pthread_t th;
};

static void *pk_call_main(void *arg)
{
	struct pk_call *k = arg;
	/* Each call its own slice of the page. */
	uint8_t *out = pk.page + PK_SLICE * (size_t)k->op;

	switch (k->op) {
	case PK_ERROR:
		k->rc = connect_conn_error(k->c, (char *)out, PK_SLICE);
		break;
	case PK_LOCAL:
		k->rc = connect_conn_local_addr(k->c, (char *)out, PK_SLICE);
		break;
	case PK_PEER:
		k->rc = connect_conn_peer_addr(k->c, (char *)out, PK_SLICE);
		break;
	case PK_STAT:
		k->rc = connect_conn_stat(k->c, CONNECT_STAT_MSGS_RECV,
					  (uint64_t *)(void *)out);
		break;
	case PK_OPT:
		k->rc = connect_conn_opt(k->c, CONNECT_OPT_LINGER_MS,
					 (int64_t *)(void *)out);
		break;
	case PK_IDENT:
		/* It writes buf[0] before it registers (conn.c): that byte
		 * is the last of the writable page, and the identity's text
		 * faults on the next one. */
		k->rc = connect_conn_peer_identity(k->c, CONNECT_PEER_SUBJECT,
						   (char *)pk.page - 1,
						   PK_SLICE);
		break;
	case PK_L_ADDR:
		k->rc = connect_listener_addr(k->l, (char *)out, PK_SLICE);
		break;
	case PK_L_FAILURES:
		k->rc = connect_listener_tls_failures(k->l, NULL, (char *)out,
						      PK_SLICE);
		break;
	}
	return NULL;
}

struct pk_closer {
	connect_conn *c;
	connect_listener *l;
	int linger;
	int rc;
	int done[2]; /* written when close returned */
	pthread_t th;
};

static void *pk_closer_main(void *arg)
{
	struct pk_closer *k = arg;

	if (k->c)
		k->rc = connect_close(k->c, k->linger, NULL);
	else
		connect_listener_close(k->l);
	while (write(k->done[1], "d", 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/*
 * Hold calls [from, to) inside the library, close in another thread, check
 * that close waits for them, let them go, join.  Returns the close code.
 */
static int pk_round(connect_conn *c, connect_listener *l, int from, int to,
		    int linger, int round)
{
	struct pk_call calls[PK_CALLS];
	struct pk_closer cl = { .c = c, .l = l, .linger = linger };
	int n = 0;

	pk_arm();
	for (int op = from; op < to; op++) {
		calls[n] = (struct pk_call){ .op = op, .c = c, .l = l };
		t_thread_start(&calls[n].th, pk_call_main, &calls[n]);
		n++;
	}
	pk_wait_parked(n);
	ck_assert(pipe(cl.done) == 0);
	t_thread_start(&cl.th, pk_closer_main, &cl);
	/* Close must wait for the calls held inside.  (Waiting proves no
	 * negative; a close that does not wait returns within this time on
	 * any machine that runs the suite.) */
	ck_assert_msg(fd_readable(cl.done[0], scaled_ms(30)) == 0,
		      "round %d: close returned while %d call(s) (%s) were "
		      "still inside",
		      round, n, pk_names[from]);
	pk_release(n);
	for (int i = 0; i < n; i++) {
		t_thread_join(calls[i].th, 5000, "%s", pk_names[calls[i].op]);
		ck_assert_msg(calls[i].rc >= 0 ||
				      calls[i].rc == CONNECT_ECLOSED,
			      "%s: %s", pk_names[calls[i].op],
			      connect_err_name(calls[i].rc));
	}
	t_thread_join(cl.th, 10000, "the closer");
	close(cl.done[0]);
	close(cl.done[1]);
	return cl.rc;
}

START_TEST(calls_held_across_close)
{
	const int rows[] = { T_TCP4, T_TLS };
	int t = rows[_i % 2];
	/* Every call, one at a time (one holding a lock would hold close
	 * up for the others), with the default linger (a clean end) and 0
	 * (a cut), on either side of the pair. */
	int rounds = 4 * PK_CONN_CALLS * (sanitized() ? 1 : 2);

	pk_setup();
	for (int r = 0; r < rounds; r++) {
		connect_conn *c, *s;
		int linger = (r & 1) ? 0 : -1, rc, op = (r / 4) % PK_CONN_CALLS;

		if (op == PK_IDENT && t != T_TLS)
			op = PK_ERROR; /* TCP has no identity */

		t_pair(t, NULL, NULL, &c, &s);
		/* The client: the server saw no certificate. */
		if ((r & 2) && op != PK_IDENT) {
			connect_conn *x = c;

			c = s;
			s = x;
		}
		rc = pk_round(c, NULL, op, op + 1, linger, r);
		if (linger < 0)
			ck_assert_msg(rc == CONNECT_OK, "%s round %d: close %s",
				      t_name(t), r, connect_err_name(rc));
		(void)connect_close(s, 0, NULL);
	}
	pk_teardown();
}
END_TEST

START_TEST(listener_calls_held_across_close)
{
	const int rows[] = { T_TCP4, T_TLS };
	int t = rows[_i % 2], rounds = sanitized() ? 8 : 20;

	pk_setup();
	for (int r = 0; r < rounds; r++) {
		connect_listener *l = t_listen_ok(t, NULL);
		int op = PK_L_ADDR + r % (PK_CALLS - PK_L_ADDR);

		(void)pk_round(NULL, l, op, op + 1, 0, r);
	}
	pk_teardown();
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Suite                                                                   */
/* ---------------------------------------------------------------------- */

static Suite *endpoints_suite(void)
{
	Suite *s = suite_create("endpoints");
	TCase *tc;

	tc = t_tcase(s, "race", 300);
	tcase_add_test(tc, conn_calls_race_close);
	tcase_add_test(tc, listener_calls_race_close);
	tcase_add_loop_test(tc, calls_held_across_close, 0, 2);
	tcase_add_loop_test(tc, listener_calls_held_across_close, 0, 2);

	tc = t_tcase(s, "url", 60);
	tcase_add_test(tc, url_tcp_forms);
	tcase_add_test(tc, url_tls_forms);
	tcase_add_test(tc, opts_tls_refcount);
	tcase_add_test(tc, url_errors);
	tcase_add_test(tc, url_empty_last_word);

	tc = t_tcase(s, "user", 60);
	tcase_add_test(tc, user_pointer_basics);
	tcase_add_test(tc, user_pointer_threads);

	tc = t_tcase(s, "identity", 60);
	tcase_add_loop_test(tc, peer_identity_mutual, 0, 2);
	tcase_add_loop_test(tc, peer_identity_no_client_cert, 0, 2);
	tcase_add_loop_test(tc, peer_identity_tcp, T_TCP4, T_TCP6 + 1);
	tcase_add_test(tc, peer_identity_concurrent);

	tc = t_tcase(s, "flood", 120);
	tcase_add_loop_test(tc, handshake_flood, 0, 2);

	tc = t_tcase(s, "reset", 120);
	tcase_add_test(tc, reset_is_not_eof);
	tcase_add_test(tc, clean_shutdown_is_eof);
	return s;
}

int main(void)
{
	return t_run(endpoints_suite(), 0);
}
