/*
 * connect-load: hold many connections to a libconnect echo server, drive
 * echo traffic through them and check every echo.
 *
 *     connect-load [options] HOST:PORT
 *
 * The server must send every datagram back unchanged (tcp-echo-server,
 * tls-echo-server, mt-echo-server).  See connect-load(1) for the options
 * and the output.
 *
 * How it works.  Thousands of libconnect connections would cost two
 * threads each, so this program does not use the library: it speaks the
 * wire format itself (frame = 4-byte size, 2-byte version, 2-byte tag,
 * payload; see /work/shared/design.md) over non-blocking sockets, a few
 * threads each running epoll over its share of the connections.  TLS is
 * GnuTLS in non-blocking mode.
 *
 * Each datagram carries the connection's number and a sequence number:
 * payload bytes 0-3 are the connection number, 4-11 the sequence number
 * (both big-endian, cut short when the payload is smaller), the rest a
 * byte pattern that depends on both; the tag is derived from them too.
 * Echoes are checked as they stream in, byte for byte, against what must
 * come back next on that connection, without buffering the frame.  A
 * connection whose echo is wrong is counted under the kind of error and
 * closed; the others go on.
 *
 * The run has phases, driven by the main thread: setup (every connection
 * is attempted, at most --parallel at a time, failed attempts retried with
 * a growing pause; a connection is ready when the echo of its first
 * datagram is back, which is what tells that the server serves it: the
 * kernel completes TCP handshakes for clients the server has not accepted
 * yet), run (traffic for --duration seconds, the measured window), drain
 * (no new datagrams; wait up to --drain-timeout for the echoes still due),
 * close.  The main thread prints a progress line every
 * second and the summary at the end.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>

static const char prog[] = "connect-load";

/* ---- the wire format ------------------------------------------------- */

#define HDR_LEN 8                 /* size (4), version (2), tag (2) */
#define WIRE_VERSION 1
#define MAX_PAYLOAD 100000000u    /* the library's largest payload */
#define PAYLOAD_HEAD 12           /* connection (4) + sequence (8) */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The payload after its head is a run of g_pat, starting at an offset that
 * depends on the connection and the sequence number.  g_pat repeats with
 * period 256 and holds PAT_RUN bytes more, so that any run of up to PAT_RUN
 * bytes is one memcpy/memcmp. */
#define PAT_RUN 4096
static uint8_t g_pat[256 + PAT_RUN];

static void pattern_init(void)
{
	size_t i;

	for (i = 0; i < sizeof(g_pat); i++)
		g_pat[i] = (uint8_t)((i & 255) * 167 + 13);
}

static uint16_t frame_tag(uint32_t id, uint64_t seq)
{
	return (uint16_t)(seq * 40503u + id * 7u + 1u);
}

static unsigned pat_off(uint32_t id, uint64_t seq)
{
	return (unsigned)((seq * 13u + id * 101u) & 255u);
}

static void payload_head(uint8_t h[PAYLOAD_HEAD], uint32_t id, uint64_t seq)
{
	put32(h, id);
	put64(h + 4, seq);
}

/* Write the whole frame (header and payload) for (id, seq) at p. */
static void frame_fill(uint8_t *p, uint32_t size, uint32_t id, uint64_t seq)
{
	uint8_t h[PAYLOAD_HEAD];
	unsigned off = pat_off(id, seq);
	size_t i, k;

	put32(p, size + 4);
	put16(p + 4, WIRE_VERSION);
	put16(p + 6, frame_tag(id, seq));
	p += HDR_LEN;
	payload_head(h, id, seq);
	memcpy(p, h, size < PAYLOAD_HEAD ? size : PAYLOAD_HEAD);
	for (i = PAYLOAD_HEAD; i < size; i += k) {
		k = size - i < PAT_RUN ? size - i : PAT_RUN;
		memcpy(p + i, g_pat + ((i - PAYLOAD_HEAD + off) & 255), k);
	}
}

/* ---- errors by kind -------------------------------------------------- */

/* X(id, name, text): name is the short word of the summary and the CSV. */
#define ERROR_KINDS(X)                                                        \
	X(E_REFUSED, "refused", "connect: refused")                          \
	X(E_CONN_TIMEOUT, "connect-timeout", "connect: timed out")           \
	X(E_CONN_RESET, "connect-reset", "connect: reset")                   \
	X(E_ADDRNOTAVAIL, "no-local-port", "connect: no local address/port") \
	X(E_NOFD, "no-descriptors", "socket: out of descriptors")            \
	X(E_CONN_OTHER, "connect-error", "connect: other error")             \
	X(E_TLS_TIMEOUT, "tls-timeout", "TLS handshake: timed out")          \
	X(E_TLS_VERIFY, "tls-verify", "TLS handshake: certificate rejected") \
	X(E_TLS_CLOSED, "tls-closed", "TLS handshake: closed by the server") \
	X(E_TLS_HANDSHAKE, "tls-handshake", "TLS handshake: failed")         \
	X(E_NOT_SERVED, "not-served", "setup: no echo of the first "         \
				      "datagram in time")                     \
	X(E_PEER_CLOSED, "closed", "closed by the server")                   \
	X(E_PEER_RESET, "reset", "reset by the server")                      \
	X(E_IO, "io", "read/write error")                                    \
	X(E_TLS_IO, "tls-io", "TLS record error")                            \
	X(E_BAD_SIZE, "bad-size", "echo: wrong size field")                  \
	X(E_BAD_VERSION, "bad-version", "echo: wrong version")               \
	X(E_BAD_TAG, "bad-tag", "echo: wrong tag")                           \
	X(E_WRONG_CONN, "wrong-conn", "echo: another connection's datagram") \
	X(E_SEQUENCE, "sequence", "echo: out of sequence (lost, duplicated "  \
				  "or reordered)")                            \
	X(E_CORRUPT, "corrupt", "echo: payload bytes differ")                \
	X(E_UNSOLICITED, "unsolicited", "echo: a datagram nobody sent")      \
	X(E_UNANSWERED, "unanswered", "echo: still due at the end (counts "  \
				      "datagrams)")

enum err_kind {
#define X(id, name, text) id,
	ERROR_KINDS(X)
#undef X
	NKINDS
};

static const char *const kind_name[NKINDS] = {
#define X(id, name, text) name,
	ERROR_KINDS(X)
#undef X
};

static const char *const kind_text[NKINDS] = {
#define X(id, name, text) text,
	ERROR_KINDS(X)
#undef X
};

/* Kinds worth another attempt during setup: a busy server's symptoms.
 * Not: a certificate or an echo that is wrong, an unexplained connect
 * error, a server that took the connection but did not serve it. */
static bool kind_retryable(int kind)
{
	return kind != E_TLS_VERIFY && kind != E_CONN_OTHER &&
	       kind != E_NOT_SERVED && (kind < E_BAD_SIZE || kind > E_UNSOLICITED);
}

static int connect_errno_kind(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return E_REFUSED;
	case ETIMEDOUT:
		return E_CONN_TIMEOUT;
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
		return E_CONN_RESET;
	case EADDRNOTAVAIL:
	case EADDRINUSE:
		return E_ADDRNOTAVAIL;
	case EMFILE:
	case ENFILE:
		return E_NOFD;
	default:
		return E_CONN_OTHER;
	}
}

/* ---- statistics ------------------------------------------------------ */

/* Round-trip times in nanoseconds, log-linear buckets: exact below 64,
 * then 32 buckets per power of two (at most 1/32 above the true value). */
#define HIST_SUB 32
#define HIST_MAX_SHIFT 35 /* values up to 2^41 ns, about 36 minutes */
#define NBUCKETS ((HIST_MAX_SHIFT + 1) * HIST_SUB + HIST_SUB)

static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 5u;
	if (shift > HIST_MAX_SHIFT)
		return NBUCKETS - 1;
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket i. */
static uint64_t hist_upper(unsigned i)
{
	unsigned shift, m;

	if (i < 2 * HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	m = i - shift * HIST_SUB;
	return (((uint64_t)m + 1) << shift) - 1;
}

enum stat_id {
	S_ATTEMPTS,    /* connection attempts started */
	S_RETRIES,     /* attempts after a failed one */
	S_CONNECTED,   /* attempts that connected (TLS: handshake done) */
	S_READY,       /* connections whose first echo came back */
	S_GAVEUP,      /* connections given up after their last attempt */
	S_PENDING,     /* gauge: attempts in progress (until the first echo) */
	S_UP,          /* gauge: ready connections open */
	S_LOST,        /* ready connections that failed later */
	S_SENT,        /* datagrams sent */
	S_ECHOES,      /* echoes checked */
	S_ABANDONED,   /* datagrams due on connections that failed */
	S_SKIPPED,     /* rate mode: sends skipped (pipeline full) */
	NSTATS
};

struct stats {
	_Atomic uint64_t v[NSTATS];
	_Atomic uint64_t err[NKINDS];
	_Atomic uint64_t rtt_max;
	_Atomic uint64_t hist[NBUCKETS];  /* round trips of the traffic */
	_Atomic uint64_t ready[NBUCKETS]; /* attempt start to first echo */
};

/* A plain copy, summed over the workers. */
struct snap {
	uint64_t v[NSTATS];
	uint64_t err[NKINDS];
	uint64_t rtt_max;
	uint64_t hist[NBUCKETS];
	uint64_t ready[NBUCKETS];
};

/* Every counter has one writer (its worker); the main thread only reads. */
static void st_add(_Atomic uint64_t *x, uint64_t n)
{
	atomic_fetch_add_explicit(x, n, memory_order_relaxed);
}

static void st_sub(_Atomic uint64_t *x, uint64_t n)
{
	atomic_fetch_sub_explicit(x, n, memory_order_relaxed);
}

static uint64_t st_get(_Atomic uint64_t *x)
{
	return atomic_load_explicit(x, memory_order_relaxed);
}

/* ---- configuration --------------------------------------------------- */

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_CLOSE };

static struct {
	/* target */
	const char *target; /* as given */
	char host[256];
	char port[16];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_text[300];
	/* traffic */
	uint32_t conns;
	double duration;
	double rate; /* per connection; < 0: flat out; 0: one echo then idle */
	uint32_t size;
	uint32_t pipeline;
	uint32_t threads;
	uint64_t interval_ns; /* rate mode */
	/* setup */
	uint32_t parallel;
	double connect_rate; /* attempts per second, all threads; 0: no limit */
	uint64_t connect_timeout_ns;
	uint32_t retries;
	double drain_timeout;
	/* TLS */
	bool tls;
	const char *ca, *name, *cert, *key, *priority;
	bool insecure;
	bool sni;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	/* output */
	bool quiet;
	const char *csv;
	long watch_pid;
} g = {
	.conns = 100,
	.duration = 10,
	.rate = -1,
	.size = 64,
	.pipeline = 1,
	.threads = 2,
	.parallel = 0, /* 256, or 64 with TLS */
	.connect_timeout_ns = 10000000000ull,
	.retries = 5,
	.drain_timeout = 5,
	.watch_pid = 0,
};

static _Atomic int g_phase = PH_SETUP;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- connections and workers ----------------------------------------- */

enum cstate {
	CS_NEW,        /* not attempted yet */
	CS_WAIT,       /* waiting to retry */
	CS_CONNECTING, /* TCP connect in progress */
	CS_HANDSHAKE,  /* TLS handshake in progress */
	CS_PROBING,    /* connected, the first datagram's echo due */
	CS_UP,         /* ready: the first echo came back */
	CS_LOST,       /* failed after setup */
	CS_GAVEUP,     /* no attempt left */
	CS_CLOSED      /* closed at the end */
};

/* Bits of conn.ferr: what is wrong with the frame coming in, the first
 * found of each; the worst is reported when the frame is complete. */
#define F_TAG 1u
#define F_VERSION 2u
#define F_CONN 4u
#define F_SEQ 8u
#define F_CORRUPT 16u

struct conn {
	gnutls_session_t tls;
	uint8_t *out;       /* frames not yet written */
	uint64_t *sent_ns;  /* send times, indexed by seq % pipeline */
	uint64_t next_seq;  /* sequence number of the next datagram sent */
	uint64_t recv_seq;  /* sequence number of the next echo due */
	uint64_t due;       /* rate mode: time of the next send */
	uint64_t t0;        /* start of the current attempt */
	uint32_t id;
	uint32_t out_off, out_len, out_cap;
	uint32_t tls_pend;  /* bytes of a TLS send to repeat after EAGAIN */
	uint32_t body_have; /* payload bytes of the incoming frame so far */
	uint32_t gen;       /* timer generation: older timer entries are void */
	uint32_t events;    /* epoll events registered (0: none) */
	int fd;
	uint8_t state, attempts, hdr_have, ferr;
	uint8_t hdr[HDR_LEN];
};

struct tev {
	uint64_t due;
	uint32_t idx, gen;
};

struct worker {
	pthread_t th;
	unsigned idx;
	int ep, wake;
	struct conn *c;
	uint32_t n;
	uint32_t next_new;  /* next CS_NEW connection to attempt */
	uint32_t *ready;    /* ring of connections whose retry pause ended */
	uint32_t rhead, rcount;
	uint32_t pending, max_pending;
	uint64_t started;   /* attempts started, for the connect rate */
	uint64_t setup_t0;
	double rate;        /* connect attempts per second for this worker */
	struct tev *heap;
	size_t hn, hcap;
	uint64_t *sent_ring;
	int phase;
	_Atomic int phase_seen; /* phase, published for the main thread */
	uint64_t rnd;
	struct stats st;
	/* details for the summary, read by the main thread after the join */
	int last_errno[NKINDS];
	int last_gnutls[NKINDS];
	char verify_why[256];
	uint8_t rbuf[65536];
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	return p;
}

/* -- timers: a binary min-heap; an entry whose gen no longer matches its
 * connection's is ignored when it comes up. */

static void heap_push(struct worker *w, uint64_t due, uint32_t idx,
		      uint32_t gen)
{
	size_t i, p;
	struct tev e = { due, idx, gen };

	if (w->hn == w->hcap) {
		size_t cap = w->hcap ? w->hcap * 2 : 1024;
		struct tev *h = realloc(w->heap, cap * sizeof(*h));

		if (!h) {
			fprintf(stderr, "%s: out of memory\n", prog);
			exit(1);
		}
		w->heap = h;
		w->hcap = cap;
	}
	i = w->hn++;
	while (i > 0) {
		p = (i - 1) / 2;
		if (w->heap[p].due <= due)
			break;
		w->heap[i] = w->heap[p];
		i = p;
	}
	w->heap[i] = e;
}

static struct tev heap_pop(struct worker *w)
{
	struct tev top = w->heap[0], last = w->heap[--w->hn];
	size_t i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= w->hn)
			break;
		if (c + 1 < w->hn && w->heap[c + 1].due < w->heap[c].due)
			c++;
		if (w->heap[c].due >= last.due)
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->hn)
		w->heap[i] = last;
	return top;
}

static void timer_set(struct worker *w, struct conn *c, uint64_t due)
{
	heap_push(w, due, (uint32_t)(c - w->c), ++c->gen);
}

static void timer_cancel(struct conn *c)
{
	c->gen++;
}

/* A random number below n (n > 0): xorshift64, for spreading out. */
static uint64_t rnd_below(struct worker *w, uint64_t n)
{
	w->rnd ^= w->rnd << 13;
	w->rnd ^= w->rnd >> 7;
	w->rnd ^= w->rnd << 17;
	return w->rnd % n;
}

static void set_events(struct worker *w, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (c->events == ev)
		return;
	if (epoll_ctl(w->ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
		      &e) < 0) {
		fprintf(stderr, "%s: epoll_ctl: %s\n", prog, strerror(errno));
		exit(1);
	}
	c->events = ev;
}

static void count_error(struct worker *w, int kind, int sys, int tls)
{
	st_add(&w->st.err[kind], 1);
	if (sys)
		w->last_errno[kind] = sys;
	if (tls)
		w->last_gnutls[kind] = tls;
}

/* Close the socket (and TLS session) without a word to the server. */
static void conn_drop(struct conn *c)
{
	if (c->tls) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->events = 0;
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = c->tls_pend = 0;
	/* A new attempt is a new stream: sequence numbers start again. */
	c->next_seq = c->recv_seq = 0;
	c->hdr_have = 0;
	timer_cancel(c);
}

/* An attempt failed: try again after a pause, or give up. */
static void attempt_failed(struct worker *w, struct conn *c, int kind,
			   int sys, int tls)
{
	uint64_t pause;

	count_error(w, kind, sys, tls);
	if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE ||
	    c->state == CS_PROBING) {
		w->pending--;
		st_sub(&w->st.v[S_PENDING], 1);
	}
	if (c->state == CS_PROBING)
		st_add(&w->st.v[S_ABANDONED], c->next_seq - c->recv_seq);
	conn_drop(c);
	if (w->phase == PH_SETUP && c->attempts <= g.retries &&
	    kind_retryable(kind)) {
		/* 50 ms, doubling up to 2 s, and a random part as long. */
		pause = 50000000ull << (c->attempts < 6 ? c->attempts - 1 : 5);
		if (pause > 2000000000ull)
			pause = 2000000000ull;
		pause += rnd_below(w, pause);
		c->state = CS_WAIT;
		timer_set(w, c, now_ns() + pause);
		return;
	}
	c->state = CS_GAVEUP;
	st_add(&w->st.v[S_GAVEUP], 1);
}

/* A connection failed: before it was ready, the attempt failed. */
static void conn_lost(struct worker *w, struct conn *c, int kind, int sys,
		      int tls)
{
	if (c->state != CS_UP) {
		attempt_failed(w, c, kind, sys, tls);
		return;
	}
	count_error(w, kind, sys, tls);
	st_sub(&w->st.v[S_UP], 1);
	st_add(&w->st.v[S_LOST], 1);
	st_add(&w->st.v[S_ABANDONED], c->next_seq - c->recv_seq);
	conn_drop(c);
	c->state = CS_LOST;
}

static void send_frame(struct worker *w, struct conn *c, uint64_t now);
static int flush_out(struct worker *w, struct conn *c);
static void attempt_failed(struct worker *w, struct conn *c, int kind,
			   int sys, int tls);

static void start_traffic(struct worker *w, struct conn *c, uint64_t now)
{
	uint32_t i;

	if (g.rate < 0) {
		for (i = 0; i < g.pipeline; i++)
			send_frame(w, c, now);
	} else if (g.rate == 0) {
		return; /* idle: the first echo was all */
	} else {
		/* Spread the connections' sends over one interval. */
		c->due = now + rnd_below(w, g.interval_ns);
		timer_set(w, c, c->due);
		return;
	}
	flush_out(w, c);
}

/* Connected (TLS: handshake done): send the first datagram.  The
 * attempt's timer still runs, until its echo is back. */
static void conn_connected(struct worker *w, struct conn *c)
{
	c->state = CS_PROBING;
	st_add(&w->st.v[S_CONNECTED], 1);
	c->sent_ns = w->sent_ring + (size_t)(c - w->c) * g.pipeline;
	set_events(w, c, EPOLLIN);
	send_frame(w, c, now_ns());
	flush_out(w, c);
}

/* The first echo is back: the connection is ready. */
static void conn_ready(struct worker *w, struct conn *c, uint64_t now)
{
	timer_cancel(c);
	c->state = CS_UP;
	w->pending--;
	st_sub(&w->st.v[S_PENDING], 1);
	st_add(&w->st.v[S_READY], 1);
	st_add(&w->st.v[S_UP], 1);
	st_add(&w->st.ready[hist_index(now - c->t0)], 1);
	if (w->phase == PH_RUN)
		start_traffic(w, c, now);
}

static void handshake_step(struct worker *w, struct conn *c)
{
	int r = gnutls_handshake(c->tls), kind;

	if (r == GNUTLS_E_SUCCESS) {
		conn_connected(w, c);
		return;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ||
	    !gnutls_error_is_fatal(r)) {
		set_events(w, c,
			   gnutls_record_get_direction(c->tls) ? EPOLLOUT
								: EPOLLIN);
		return;
	}
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t why = { NULL, 0 };
		unsigned status = gnutls_session_get_verify_cert_status(c->tls);

		kind = E_TLS_VERIFY;
		if (gnutls_certificate_verification_status_print(
			    status, gnutls_certificate_type_get(c->tls), &why,
			    0) == 0) {
			size_t n;

			snprintf(w->verify_why, sizeof(w->verify_why), "%s",
				 (const char *)why.data);
			gnutls_free(why.data);
			n = strlen(w->verify_why);
			while (n && w->verify_why[n - 1] == ' ')
				w->verify_why[--n] = '\0';
		}
	} else if (r == GNUTLS_E_PREMATURE_TERMINATION ||
		   r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_PUSH_ERROR) {
		kind = E_TLS_CLOSED;
	} else {
		kind = E_TLS_HANDSHAKE;
	}
	/* Tell the server why (bad_certificate...), as a TLS client does;
	 * one try, the socket is non-blocking. */
	if (kind != E_TLS_CLOSED)
		(void)gnutls_alert_send_appropriate(c->tls, r);
	attempt_failed(w, c, kind, 0, r);
}

static void tcp_connected(struct worker *w, struct conn *c)
{
	gnutls_session_t s;
	int r;

	if (!g.tls) {
		conn_connected(w, c);
		return;
	}
	r = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (r == 0) {
		r = g.prio ? gnutls_priority_set(s, g.prio)
			   : gnutls_set_default_priority(s);
		if (r == 0)
			r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
						   g.cred);
		if (r == 0 && g.sni)
			r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, g.name,
						   strlen(g.name));
		if (r != 0)
			gnutls_deinit(s);
	}
	if (r != 0) {
		attempt_failed(w, c, E_TLS_HANDSHAKE, 0, r);
		return;
	}
	if (!g.insecure)
		gnutls_session_set_verify_cert(s, g.name, 0);
	gnutls_transport_set_int(s, c->fd);
	c->tls = s;
	c->state = CS_HANDSHAKE;
	handshake_step(w, c);
}

static void start_attempt(struct worker *w, struct conn *c, uint64_t now)
{
	int fd, one = 1;

	if (c->attempts++)
		st_add(&w->st.v[S_RETRIES], 1);
	st_add(&w->st.v[S_ATTEMPTS], 1);
	w->started++;
	fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    IPPROTO_TCP);
	if (fd < 0) {
		attempt_failed(w, c, connect_errno_kind(errno), errno, 0);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->t0 = now;
	c->state = CS_CONNECTING;
	w->pending++;
	st_add(&w->st.v[S_PENDING], 1);
	timer_set(w, c, now + g.connect_timeout_ns);
	if (connect(fd, (const struct sockaddr *)&g.addr, g.addrlen) == 0) {
		tcp_connected(w, c);
		return;
	}
	if (errno != EINPROGRESS) {
		attempt_failed(w, c, connect_errno_kind(errno), errno, 0);
		return;
	}
	set_events(w, c, EPOLLOUT);
}

/* Start attempts while --parallel and --connect-rate allow. */
static void start_more(struct worker *w, uint64_t now)
{
	struct conn *c;

	while (w->pending < w->max_pending) {
		if (w->rate > 0 &&
		    (double)w->started >=
			    (double)(now - w->setup_t0) * 1e-9 * w->rate + 1)
			return;
		if (w->rcount) {
			c = &w->c[w->ready[w->rhead]];
			w->rhead = (w->rhead + 1) % w->n;
			w->rcount--;
		} else if (w->next_new < w->n) {
			c = &w->c[w->next_new++];
		} else {
			return;
		}
		start_attempt(w, c, now);
	}
}

/* When start_more() waits for the connect rate: the next start, or 0. */
static uint64_t next_start_time(struct worker *w)
{
	if (w->rate <= 0 || w->pending >= w->max_pending ||
	    (!w->rcount && w->next_new >= w->n))
		return 0;
	return w->setup_t0 + (uint64_t)((double)w->started / w->rate * 1e9);
}

/* ---- traffic --------------------------------------------------------- */

static void send_frame(struct worker *w, struct conn *c, uint64_t now)
{
	uint32_t need = HDR_LEN + g.size;

	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_cap - c->out_len < need && c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_cap - c->out_len < need) {
		uint64_t cap = (uint64_t)c->out_len + need;
		uint8_t *p;

		if (cap < 4096)
			cap = 4096;
		p = realloc(c->out, cap);
		if (!p) {
			fprintf(stderr, "%s: out of memory\n", prog);
			exit(1);
		}
		c->out = p;
		c->out_cap = (uint32_t)cap;
	}
	frame_fill(c->out + c->out_len, g.size, c->id, c->next_seq);
	c->out_len += need;
	c->sent_ns[c->next_seq % g.pipeline] = now;
	c->next_seq++;
	st_add(&w->st.v[S_SENT], 1);
}

/* Write what is queued.  Returns -1 if the connection was lost. */
static int flush_out(struct worker *w, struct conn *c)
{
	ssize_t r;
	uint32_t len;

	while (c->out_off < c->out_len) {
		if (c->tls) {
			if (c->tls_pend) {
				/* GnuTLS holds the record: NULL, 0 sends it. */
				len = c->tls_pend;
				r = gnutls_record_send(c->tls, NULL, 0);
			} else {
				len = c->out_len - c->out_off;
				if (len > 16384)
					len = 16384;
				r = gnutls_record_send(c->tls,
						       c->out + c->out_off,
						       len);
			}
			if (r == GNUTLS_E_AGAIN ||
			    r == GNUTLS_E_INTERRUPTED) {
				c->tls_pend = len;
				set_events(w, c, EPOLLIN | EPOLLOUT);
				return 0;
			}
			if (r < 0) {
				conn_lost(w, c, E_TLS_IO, 0, (int)r);
				return -1;
			}
			c->tls_pend = 0;
		} else {
			r = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					set_events(w, c, EPOLLIN | EPOLLOUT);
					return 0;
				}
				conn_lost(w, c,
					  errno == ECONNRESET || errno == EPIPE
						  ? E_PEER_RESET
						  : E_IO,
					  errno, 0);
				return -1;
			}
		}
		c->out_off += (uint32_t)r;
	}
	c->out_off = c->out_len = 0;
	set_events(w, c, EPOLLIN);
	return 0;
}

static void echo_done(struct worker *w, struct conn *c, uint64_t now)
{
	uint64_t rtt = now - c->sent_ns[c->recv_seq % g.pipeline];

	c->recv_seq++;
	st_add(&w->st.v[S_ECHOES], 1);
	if (c->state == CS_PROBING) {
		conn_ready(w, c, now);
		return;
	}
	st_add(&w->st.hist[hist_index(rtt)], 1);
	if (rtt > st_get(&w->st.rtt_max))
		atomic_store_explicit(&w->st.rtt_max, rtt,
				      memory_order_relaxed);
	if (g.rate < 0 && w->phase == PH_RUN)
		send_frame(w, c, now);
}

/* Check payload bytes p[0..len), which are at offset pos of the payload
 * of the echo due (c->recv_seq); record what differs in c->ferr. */
static void check_payload(struct conn *c, const uint8_t *p, size_t len,
			  size_t pos)
{
	uint8_t h[PAYLOAD_HEAD];
	unsigned off;
	size_t k;

	if (pos < PAYLOAD_HEAD) {
		payload_head(h, c->id, c->recv_seq);
		for (; len && pos < PAYLOAD_HEAD; len--, pos++, p++)
			if (*p != h[pos])
				c->ferr |= pos < 4 ? F_CONN : F_SEQ;
	}
	if (!len || (c->ferr & F_CORRUPT))
		return;
	off = pat_off(c->id, c->recv_seq);
	for (; len; len -= k, pos += k, p += k) {
		k = len < PAT_RUN ? len : PAT_RUN;
		if (memcmp(p, g_pat + ((pos - PAYLOAD_HEAD + off) & 255), k)) {
			c->ferr |= F_CORRUPT;
			return;
		}
	}
}

/* Take bytes from the server.  Returns -1 if the connection was lost. */
static int feed(struct worker *w, struct conn *c, const uint8_t *p,
		size_t len, uint64_t now)
{
	size_t k;

	while (len) {
		if (c->hdr_have < HDR_LEN) {
			k = HDR_LEN - c->hdr_have;
			if (k > len)
				k = len;
			memcpy(c->hdr + c->hdr_have, p, k);
			c->hdr_have = (uint8_t)(c->hdr_have + k);
			p += k;
			len -= k;
			if (c->hdr_have < HDR_LEN)
				break;
			if (c->recv_seq == c->next_seq) {
				conn_lost(w, c, E_UNSOLICITED, 0, 0);
				return -1;
			}
			if (get32(c->hdr) != g.size + 4) {
				/* The framing cannot be trusted any more. */
				conn_lost(w, c, E_BAD_SIZE, 0, 0);
				return -1;
			}
			c->ferr = 0;
			if (get16(c->hdr + 4) != WIRE_VERSION)
				c->ferr |= F_VERSION;
			if (get16(c->hdr + 6) != frame_tag(c->id, c->recv_seq))
				c->ferr |= F_TAG;
			c->body_have = 0;
			continue;
		}
		k = g.size - c->body_have;
		if (k > len)
			k = len;
		check_payload(c, p, k, c->body_have);
		c->body_have += (uint32_t)k;
		p += k;
		len -= k;
		if (c->body_have < g.size)
			break;
		c->hdr_have = 0;
		if (c->ferr) {
			int kind = c->ferr & F_CONN	 ? E_WRONG_CONN
				   : c->ferr & F_SEQ	 ? E_SEQUENCE
				   : c->ferr & F_TAG	 ? E_BAD_TAG
				   : c->ferr & F_VERSION ? E_BAD_VERSION
							 : E_CORRUPT;

			conn_lost(w, c, kind, 0, 0);
			return -1;
		}
		echo_done(w, c, now);
	}
	return 0;
}

static void conn_read(struct worker *w, struct conn *c)
{
	ssize_t r;
	uint64_t now;

	for (;;) {
		if (c->tls) {
			r = gnutls_record_recv(c->tls, w->rbuf,
					       sizeof(w->rbuf));
			if (r == GNUTLS_E_AGAIN)
				break;
			if (r == GNUTLS_E_INTERRUPTED ||
			    (r < 0 && !gnutls_error_is_fatal((int)r)))
				continue;
			if (r < 0) {
				conn_lost(w, c,
					  r == GNUTLS_E_PREMATURE_TERMINATION
						  ? E_PEER_CLOSED
						  : E_TLS_IO,
					  0, (int)r);
				return;
			}
		} else {
			r = recv(c->fd, w->rbuf, sizeof(w->rbuf), 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				conn_lost(w, c,
					  errno == ECONNRESET ? E_PEER_RESET
							      : E_IO,
					  errno, 0);
				return;
			}
		}
		if (r == 0) {
			conn_lost(w, c, E_PEER_CLOSED, 0, 0);
			return;
		}
		now = now_ns();
		if (feed(w, c, w->rbuf, (size_t)r, now) < 0)
			return;
		/* A short read emptied the socket (TLS: read on to
		 * EAGAIN, GnuTLS may hold more records). */
		if (!c->tls && (size_t)r < sizeof(w->rbuf))
			break;
	}
	flush_out(w, c);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t ev)
{
	int err = 0;
	socklen_t len = sizeof(err);

	switch (c->state) {
	case CS_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			attempt_failed(w, c, connect_errno_kind(err), err, 0);
			return;
		}
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			tcp_connected(w, c);
		return;
	case CS_HANDSHAKE:
		handshake_step(w, c);
		return;
	case CS_PROBING:
	case CS_UP:
		if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_read(w, c);
		if ((c->state == CS_UP || c->state == CS_PROBING) &&
		    (ev & EPOLLOUT))
			flush_out(w, c);
		return;
	default:
		return;
	}
}

static void timer_fire(struct worker *w, struct conn *c, uint64_t now)
{
	uint64_t late;

	switch (c->state) {
	case CS_CONNECTING:
		attempt_failed(w, c, E_CONN_TIMEOUT, 0, 0);
		return;
	case CS_HANDSHAKE:
		attempt_failed(w, c, E_TLS_TIMEOUT, 0, 0);
		return;
	case CS_PROBING:
		attempt_failed(w, c, E_NOT_SERVED, 0, 0);
		return;
	case CS_WAIT:
		w->ready[(w->rhead + w->rcount++) % w->n] =
			(uint32_t)(c - w->c);
		return;
	case CS_UP:
		if (w->phase != PH_RUN)
			return;
		if (c->next_seq - c->recv_seq < g.pipeline) {
			send_frame(w, c, now);
			if (flush_out(w, c) < 0)
				return;
		} else {
			st_add(&w->st.v[S_SKIPPED], 1);
		}
		c->due += g.interval_ns;
		if (c->due <= now) {
			/* This thread fell behind: skip, do not burst. */
			late = (now - c->due) / g.interval_ns + 1;
			st_add(&w->st.v[S_SKIPPED], late);
			c->due += late * g.interval_ns;
		}
		timer_set(w, c, c->due);
		return;
	default:
		return;
	}
}

/* The end: say goodbye (TLS close_notify, one try) and close. */
static void close_all(struct worker *w)
{
	uint32_t i;
	struct conn *c;

	for (i = 0; i < w->n; i++) {
		c = &w->c[i];
		switch (c->state) {
		case CS_UP:
			st_add(&w->st.err[E_UNANSWERED],
			       c->next_seq - c->recv_seq);
			if (c->tls)
				(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
			st_sub(&w->st.v[S_UP], 1);
			break;
		case CS_CONNECTING:
		case CS_HANDSHAKE:
		case CS_PROBING:
			st_sub(&w->st.v[S_PENDING], 1);
			break;
		default:
			break;
		}
		conn_drop(c);
		if (c->state != CS_LOST && c->state != CS_GAVEUP)
			c->state = CS_CLOSED;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[256];
	uint64_t now, t, buf;
	int i, n, timeout;
	struct tev e;
	uint32_t k;

	w->setup_t0 = now_ns();
	for (;;) {
		int ph = atomic_load(&g_phase);

		now = now_ns();
		if (ph != w->phase) {
			w->phase = ph;
			/* After this, no datagram is sent in an older phase. */
			atomic_store(&w->phase_seen, ph);
			if (ph == PH_RUN)
				for (k = 0; k < w->n; k++)
					if (w->c[k].state == CS_UP)
						start_traffic(w, &w->c[k], now);
			if (ph == PH_CLOSE) {
				close_all(w);
				return NULL;
			}
		}
		if (w->phase == PH_SETUP)
			start_more(w, now);

		timeout = -1;
		if (w->hn)
			t = w->heap[0].due;
		else
			t = 0;
		if (w->phase == PH_SETUP) {
			uint64_t s = next_start_time(w);

			if (s && (!t || s < t))
				t = s;
		}
		if (t)
			timeout = t <= now ? 0 : (int)((t - now + 999999) / 1000000);
		if (timeout < 0 || timeout > 1000)
			timeout = 1000;

		n = epoll_wait(w->ep, ev, (int)(sizeof(ev) / sizeof(ev[0])),
			       timeout);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "%s: epoll_wait: %s\n", prog,
				strerror(errno));
			exit(1);
		}
		for (i = 0; i < n; i++) {
			if (!ev[i].data.ptr) {
				if (read(w->wake, &buf, sizeof(buf)) < 0)
					(void)0; /* nothing to do */
				continue;
			}
			conn_event(w, ev[i].data.ptr, ev[i].events);
		}
		now = now_ns();
		while (w->hn && w->heap[0].due <= now) {
			e = heap_pop(w);
			if (e.gen == w->c[e.idx].gen)
				timer_fire(w, &w->c[e.idx], now);
		}
	}
}

/* ---- the main thread ------------------------------------------------- */

static struct worker *workers;

static void take_snap(struct snap *s)
{
	unsigned t, i;

	memset(s, 0, sizeof(*s));
	for (t = 0; t < g.threads; t++) {
		struct stats *st = &workers[t].st;
		uint64_t m;

		for (i = 0; i < NSTATS; i++)
			s->v[i] += st_get(&st->v[i]);
		for (i = 0; i < NKINDS; i++)
			s->err[i] += st_get(&st->err[i]);
		for (i = 0; i < NBUCKETS; i++) {
			s->hist[i] += st_get(&st->hist[i]);
			s->ready[i] += st_get(&st->ready[i]);
		}
		m = st_get(&st->rtt_max);
		if (m > s->rtt_max)
			s->rtt_max = m;
	}
}

static uint64_t errors_total(const struct snap *s)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < NKINDS; i++)
		n += s->err[i];
	return n;
}

/* The q-quantile (0 < q <= 1) of histogram b minus histogram a (NULL:
 * nothing), in ms, at most max (0: no bound); -1 if empty. */
static double quantile_ms(const uint64_t *a, const uint64_t *b,
			  uint64_t max, double q)
{
	uint64_t total = 0, want, sum = 0, v;
	unsigned i;

	for (i = 0; i < NBUCKETS; i++)
		total += b[i] - (a ? a[i] : 0);
	if (!total)
		return -1;
	want = (uint64_t)(q * (double)total);
	if ((double)want < q * (double)total)
		want++;
	if (!want)
		want = 1;
	for (i = 0; i < NBUCKETS && sum < want; i++)
		sum += b[i] - (a ? a[i] : 0);
	/* The bucket's top, but never above the largest value seen. */
	v = hist_upper(i - 1);
	if (max && v > max)
		v = max;
	return (double)v / 1e6;
}

/* The smallest value of b minus a (the bottom of its bucket), in ms. */
static double min_ms(const uint64_t *a, const uint64_t *b)
{
	unsigned i;

	for (i = 0; i < NBUCKETS; i++)
		if (b[i] - (a ? a[i] : 0))
			return (double)(i < 2 * HIST_SUB ? i
				  : hist_upper(i - 1) + 1) / 1e6;
	return -1;
}

/* The largest value of b minus a (the top of its bucket), in ms. */
static double max_ms(const uint64_t *a, const uint64_t *b)
{
	unsigned i = NBUCKETS;

	while (i--)
		if (b[i] - (a ? a[i] : 0))
			return (double)hist_upper(i) / 1e6;
	return -1;
}

/* The watched server process (--watch PID). */
struct proc_info {
	long rss_kb, threads, fds;
	double cpu_s; /* user + system time so far */
};

static bool proc_read(long pid, struct proc_info *pi)
{
	char path[64], line[256];
	FILE *f;
	DIR *d;
	struct dirent *de;

	pi->rss_kb = pi->threads = pi->fds = -1;
	pi->cpu_s = -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (f) {
		char buf[1024], *p;
		unsigned long long ut, st;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
		/* After "(comm)": state is field 3, utime 14, stime 15. */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 1,
				" %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
				"%llu %llu",
				&ut, &st) == 2)
			pi->cpu_s = (double)(ut + st) /
				    (double)sysconf(_SC_CLK_TCK);
	}
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			pi->rss_kb = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "Threads:", 8))
			pi->threads = strtol(line + 8, NULL, 10);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	d = opendir(path);
	if (d) {
		pi->fds = 0;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				pi->fds++;
		closedir(d);
	}
	return true;
}

static double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void fmt_ms(char *buf, size_t len, double ms)
{
	if (ms < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.3f", ms);
}

static void progress(double t, int phase, const struct snap *prev,
		     const struct snap *cur, double dt)
{
	char p50[32], p99[32], p999[32], srv[96] = "";
	struct proc_info pi;

	if (g.watch_pid && proc_read(g.watch_pid, &pi))
		snprintf(srv, sizeof(srv), "; server %ld MB, %ld threads",
			 pi.rss_kb / 1024, pi.threads);
	if (phase == PH_SETUP) {
		fmt_ms(p99, sizeof(p99),
		       quantile_ms(prev->ready, cur->ready, 0, 0.99));
		fprintf(stderr,
			"%s: [%6.1fs] setup: %" PRIu64 "/%" PRIu32
			" ready (%.0f/s, p99 %s ms), %" PRIu64
			" in progress, %" PRIu64 " failed, %" PRIu64
			" retries%s\n",
			prog, t, cur->v[S_READY], g.conns,
			(double)(cur->v[S_READY] - prev->v[S_READY]) / dt, p99,
			cur->v[S_PENDING], cur->v[S_GAVEUP], cur->v[S_RETRIES],
			srv);
		return;
	}
	fmt_ms(p50, sizeof(p50), quantile_ms(prev->hist, cur->hist, 0, 0.5));
	fmt_ms(p99, sizeof(p99), quantile_ms(prev->hist, cur->hist, 0, 0.99));
	fmt_ms(p999, sizeof(p999),
	       quantile_ms(prev->hist, cur->hist, 0, 0.999));
	fprintf(stderr,
		"%s: [%6.1fs] %s: %" PRIu64 " up, %" PRIu64
		" lost; %.0f echoes/s; rtt p50 %s p99 %s p99.9 %s ms; "
		"%" PRIu64 " errors%s\n",
		prog, t, phase == PH_RUN ? "run" : "drain", cur->v[S_UP],
		cur->v[S_LOST],
		(double)(cur->v[S_ECHOES] - prev->v[S_ECHOES]) / dt, p50, p99,
		p999, errors_total(cur), srv);
}

static void wake_workers(void)
{
	uint64_t one = 1;
	unsigned t;

	for (t = 0; t < g.threads; t++)
		if (write(workers[t].wake, &one, sizeof(one)) < 0)
			fprintf(stderr, "%s: wake: %s\n", prog,
				strerror(errno));
}

static void set_phase(int ph)
{
	atomic_store(&g_phase, ph);
	wake_workers();
}

/* Every worker has seen phase ph (and sends accordingly). */
static bool phase_seen(int ph)
{
	unsigned t;

	for (t = 0; t < g.threads; t++)
		if (atomic_load(&workers[t].phase_seen) != ph)
			return false;
	return true;
}

/* ---- options --------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] HOST:PORT\n"
		"  Open many connections to a libconnect echo server, drive echo\n"
		"  traffic, check every echo and report.  HOST:PORT may be\n"
		"  127.0.0.1:7878, [::1]:7878, localhost:7878, or a URL\n"
		"  tcp://... / tls://... (tls:// implies --tls).\n"
		"\n"
		"  -c, --connections N     connections (default 100)\n"
		"  -d, --duration S        seconds of traffic (default 10)\n"
		"  -r, --rate R            datagrams per second per connection;\n"
		"                          0: idle after the first echo\n"
		"                          (default: flat out)\n"
		"  -s, --size N            payload bytes (default 64)\n"
		"  -p, --pipeline N        datagrams in flight per connection\n"
		"                          (default 1)\n"
		"  -t, --threads N         event threads (default 2)\n"
		"      --parallel N        connection attempts in progress at\n"
		"                          once (default 256; TLS: 64)\n"
		"      --connect-rate R    attempts per second (default: no limit)\n"
		"      --connect-timeout S per attempt: connect, TLS handshake\n"
		"                          and first echo (default 10)\n"
		"      --retries N         attempts after a failed one (default 5)\n"
		"      --drain-timeout S   wait for the last echoes (default 5)\n"
		"      --tls               TLS (GnuTLS)\n"
		"      --ca FILE           trusted CAs (PEM; default: the system's)\n"
		"      --name NAME         server name to verify and send as SNI\n"
		"                          (default: HOST)\n"
		"      --cert FILE --key FILE  client certificate (mutual TLS)\n"
		"      --insecure          do not verify the server\n"
		"      --priority STRING   GnuTLS priority string\n"
		"      --watch PID         report the memory, threads and\n"
		"                          descriptors of process PID (the server)\n"
		"  -q, --quiet             no progress lines\n"
		"      --csv FILE          append a CSV line to FILE (- : stdout),\n"
		"                          with a header line if FILE is new\n"
		"  -h, --help              this text\n",
		prog);
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max,
		      uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool parse_num(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= min) || !(v <= max))
		return false;
	*out = v;
	return true;
}

static int bad_option(const char *opt, const char *val)
{
	fprintf(stderr, "%s: bad value for %s: \"%s\"\n", prog, opt, val);
	return 2;
}

/* Split HOST:PORT ([v6]:PORT, or a tcp:// tls:// URL) and resolve it. */
static int parse_target(const char *arg)
{
	const char *hp = arg, *colon;
	struct addrinfo hints = { 0 }, *res = NULL;
	char numeric[INET6_ADDRSTRLEN];
	size_t hl;
	int rc;

	if (!strncmp(hp, "tcp://", 6)) {
		hp += 6;
	} else if (!strncmp(hp, "tls://", 6)) {
		hp += 6;
		g.tls = true;
	} else if (!strncmp(hp, "tls+tcp://", 10)) {
		hp += 10;
		g.tls = true;
	}
	if (*hp == '[') {
		const char *rb = strchr(hp, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - hp - 1);
		if (hl >= sizeof(g.host))
			goto bad;
		memcpy(g.host, hp + 1, hl);
		g.host[hl] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || colon == hp)
			goto bad;
		hl = (size_t)(colon - hp);
		if (hl >= sizeof(g.host))
			goto bad;
		memcpy(g.host, hp, hl);
		g.host[hl] = '\0';
	}
	if (strlen(colon + 1) >= sizeof(g.port) || !colon[1])
		goto bad;
	strcpy(g.port, colon + 1);

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(g.host, g.port, &hints, &res);
	if (rc != 0 || !res) {
		fprintf(stderr, "%s: %s: %s\n", prog, arg,
			rc ? gai_strerror(rc) : "no address");
		return 2;
	}
	memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
	g.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (getnameinfo((struct sockaddr *)&g.addr, g.addrlen, numeric,
			sizeof(numeric), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(numeric, sizeof(numeric), "?");
	snprintf(g.addr_text, sizeof(g.addr_text),
		 g.addr.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", numeric,
		 g.port);
	return 0;
bad:
	fprintf(stderr, "%s: \"%s\" is not HOST:PORT\n", prog, arg);
	return 2;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

static int tls_setup(void)
{
	int r;
	const char *what = "";

	if (!g.name)
		g.name = g.host;
	g.sni = !is_ip_literal(g.name);
	r = gnutls_certificate_allocate_credentials(&g.cred);
	if (r < 0) {
		what = "credentials";
		goto fail;
	}
	if (g.ca) {
		what = g.ca;
		r = gnutls_certificate_set_x509_trust_file(g.cred, g.ca,
							   GNUTLS_X509_FMT_PEM);
		if (r == 0)
			r = GNUTLS_E_NO_CERTIFICATE_FOUND;
	} else if (!g.insecure) {
		what = "the system's trusted CAs";
		r = gnutls_certificate_set_x509_system_trust(g.cred);
		if (r == 0)
			r = GNUTLS_E_NO_CERTIFICATE_FOUND;
	}
	if (r < 0)
		goto fail;
	if (g.cert) {
		what = g.cert;
		r = gnutls_certificate_set_x509_key_file(
			g.cred, g.cert, g.key, GNUTLS_X509_FMT_PEM);
		if (r < 0)
			goto fail;
	}
	if (g.priority) {
		const char *err = NULL;

		r = gnutls_priority_init(&g.prio, g.priority, &err);
		if (r < 0) {
			fprintf(stderr, "%s: --priority: %s at \"%s\"\n", prog,
				gnutls_strerror(r), err ? err : "");
			return 2;
		}
	}
	return 0;
fail:
	fprintf(stderr, "%s: TLS: %s: %s\n", prog, what, gnutls_strerror(r));
	return 1;
}

/* Raise the soft descriptor limit to the hard one (and the hard one too
 * if that is too low and we may), and say if it is still too low. */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)g.conns + 2 * g.threads + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			fprintf(stderr,
				"%s: raised the descriptor limit (hard) from "
				"%llu to %llu\n",
				prog, (unsigned long long)rl.rlim_max,
				(unsigned long long)need);
			return;
		}
	}
	if (rl.rlim_cur != rl.rlim_max) {
		rlim_t old = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && !g.quiet)
			fprintf(stderr,
				"%s: raised the descriptor limit from %llu "
				"to the hard limit %llu\n",
				prog, (unsigned long long)old,
				(unsigned long long)rl.rlim_max);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fprintf(stderr,
			"%s: warning: the descriptor limit %llu is below the "
			"%llu needed for %" PRIu32
			" connections (raise ulimit -Hn): connections past it "
			"fail as %s\n",
			prog, (unsigned long long)rl.rlim_cur,
			(unsigned long long)need, g.conns, kind_name[E_NOFD]);
}

/* ---- the report ------------------------------------------------------ */

static void describe_mode(char *buf, size_t len)
{
	if (g.rate < 0)
		snprintf(buf, len, "flat out");
	else if (g.rate == 0)
		snprintf(buf, len, "idle after the first echo");
	else
		snprintf(buf, len, "%g/s per connection", g.rate);
}

struct result {
	double setup_s, run_s;
	struct snap s0, s1, s2; /* run start, run end, the very end */
	bool have_srv;
	struct proc_info srv0, srv1, srv_run0;
	double cpu0, cpu1; /* this process's CPU time at the run's start, end */
	struct proc_info self1; /* this process at the run's end */
	bool interrupted;
};

static void print_errors(const struct snap *s)
{
	unsigned i, t;
	uint64_t n = errors_total(s);

	if (!n) {
		printf("errors:      none\n");
		return;
	}
	printf("errors:      %" PRIu64 "\n", n);
	for (i = 0; i < NKINDS; i++) {
		int sys = 0, tls = 0;

		if (!s->err[i])
			continue;
		for (t = 0; t < g.threads; t++) {
			if (workers[t].last_errno[i])
				sys = workers[t].last_errno[i];
			if (workers[t].last_gnutls[i])
				tls = workers[t].last_gnutls[i];
		}
		printf("  %-16s %10" PRIu64 "  %s", kind_name[i], s->err[i],
		       kind_text[i]);
		if (sys)
			printf(" (last: %s)", strerror(sys));
		if (tls)
			printf(" (last: %s)", gnutls_strerror(tls));
		if (i == E_TLS_VERIFY)
			for (t = 0; t < g.threads; t++)
				if (workers[t].verify_why[0]) {
					printf(" (%s)", workers[t].verify_why);
					break;
				}
		printf("\n");
	}
}

static void report(const struct result *r)
{
	const struct snap *s0 = &r->s0, *s1 = &r->s1, *s2 = &r->s2;
	char mode[64], a[32], b[32], c[32], d[32], e[32];
	uint64_t echoes = s1->v[S_ECHOES] - s0->v[S_ECHOES];
	double rate = r->run_s > 0 ? (double)echoes / r->run_s : 0;

	describe_mode(mode, sizeof(mode));
	printf("target:      %s (%s%s), %" PRIu32 " connections, %" PRIu32
	       " threads, %s, pipeline %" PRIu32 ", %" PRIu32
	       "-byte payload\n",
	       g.addr_text, g.tls ? "TLS" : "TCP",
	       g.tls && g.insecure ? ", not verified" : "", g.conns, g.threads,
	       mode, g.pipeline, g.size);
	printf("setup:       %" PRIu64 " ready, %" PRIu64
	       " failed in %.2f s (%.0f/s); %" PRIu64 " attempts, %" PRIu64
	       " connected, %" PRIu64 " retries\n",
	       s2->v[S_READY], s2->v[S_GAVEUP], r->setup_s,
	       r->setup_s > 0 ? (double)s2->v[S_READY] / r->setup_s : 0,
	       s2->v[S_ATTEMPTS], s2->v[S_CONNECTED], s2->v[S_RETRIES]);
	fmt_ms(b, sizeof(b), quantile_ms(NULL, s2->ready, 0, 0.5));
	fmt_ms(c, sizeof(c), quantile_ms(NULL, s2->ready, 0, 0.99));
	fmt_ms(e, sizeof(e), max_ms(NULL, s2->ready));
	printf("ready in:    p50 %s p99 %s max %s ms (connect%s, first echo)"
	       "\n",
	       b, c, e, g.tls ? ", TLS handshake" : "");
	printf("held:        %" PRIu64 " open at the end of the run; %" PRIu64
	       " lost\n",
	       s1->v[S_UP], s2->v[S_LOST]);
	printf("echoes:      %" PRIu64 " checked in %.2f s: %.0f/s, %.2f MB/s "
	       "each way; %" PRIu64 " in all\n",
	       echoes, r->run_s, rate,
	       rate * (HDR_LEN + g.size) / 1e6, s2->v[S_ECHOES]);
	if (g.rate > 0)
		printf("offered:     %.0f/s; %" PRIu64
		       " sends skipped (pipeline full or thread late)\n",
		       g.rate * (double)s1->v[S_UP],
		       s1->v[S_SKIPPED] - s0->v[S_SKIPPED]);
	fmt_ms(a, sizeof(a), min_ms(s0->hist, s1->hist));
	fmt_ms(b, sizeof(b), quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.5));
	fmt_ms(c, sizeof(c),
	       quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.99));
	fmt_ms(d, sizeof(d),
	       quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.999));
	fmt_ms(e, sizeof(e), s2->rtt_max ? (double)s2->rtt_max / 1e6 : -1);
	printf("rtt:         min %s p50 %s p99 %s p99.9 %s max %s ms\n", a, b,
	       c, d, e);
	if (r->run_s > 0)
		printf("cpu:         connect-load %.0f%% of one core during the "
		       "run",
		       100 * (r->cpu1 - r->cpu0) / r->run_s);
	if (r->run_s > 0 && r->have_srv && r->srv_run0.cpu_s >= 0 &&
	    r->srv1.cpu_s >= 0)
		printf(", server %.0f%%",
		       100 * (r->srv1.cpu_s - r->srv_run0.cpu_s) / r->run_s);
	if (r->run_s > 0)
		printf(" (%ld cores); connect-load VmRSS %ld kB\n",
		       sysconf(_SC_NPROCESSORS_ONLN), r->self1.rss_kb);
	if (r->have_srv) {
		printf("server:      pid %ld: VmRSS %ld kB before, %ld kB at the "
		       "end of the run",
		       g.watch_pid, r->srv0.rss_kb, r->srv1.rss_kb);
		if (s1->v[S_UP])
			printf(" (%+.1f kB per connection held)",
			       (double)(r->srv1.rss_kb - r->srv0.rss_kb) /
				       (double)s1->v[S_UP]);
		printf("; threads %ld -> %ld; descriptors %ld -> %ld\n",
		       r->srv0.threads, r->srv1.threads, r->srv0.fds,
		       r->srv1.fds);
	}
	print_errors(s2);
	if (r->interrupted)
		printf("interrupted\n");
}

static void write_csv(const struct result *r)
{
	const struct snap *s0 = &r->s0, *s1 = &r->s1, *s2 = &r->s2;
	uint64_t echoes = s1->v[S_ECHOES] - s0->v[S_ECHOES];
	FILE *f = stdout;
	bool header = true;
	struct stat sb;
	unsigned i;
	bool first = true;

	if (strcmp(g.csv, "-")) {
		header = stat(g.csv, &sb) != 0 || sb.st_size == 0;
		f = fopen(g.csv, "a");
		if (!f) {
			fprintf(stderr, "%s: %s: %s\n", prog, g.csv,
				strerror(errno));
			return;
		}
	}
	if (header)
		fprintf(f, "target,transport,connections,threads,rate,size,"
			   "pipeline,ready,failed,retries,setup_s,"
			   "ready_p50_ms,ready_p99_ms,"
			   "held,lost,run_s,echoes,echoes_per_s,"
			   "rtt_p50_ms,rtt_p99_ms,rtt_p999_ms,rtt_max_ms,"
			   "server_rss_kb_before,server_rss_kb,"
			   "server_threads,errors,error_kinds\n");
	fprintf(f,
		"%s,%s,%" PRIu32 ",%" PRIu32 ",%g,%" PRIu32 ",%" PRIu32
		",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.3f,%.4f,%.4f,%" PRIu64
		",%" PRIu64 ",%.3f,%" PRIu64 ",%.1f,%.4f,%.4f,"
		"%.4f,%.4f,%ld,%ld,%ld,%" PRIu64 ",",
		g.addr_text, g.tls ? "tls" : "tcp", g.conns, g.threads, g.rate,
		g.size, g.pipeline, s2->v[S_READY], s2->v[S_GAVEUP],
		s2->v[S_RETRIES], r->setup_s,
		quantile_ms(NULL, s2->ready, 0, 0.5),
		quantile_ms(NULL, s2->ready, 0, 0.99), s1->v[S_UP],
		s2->v[S_LOST], r->run_s, echoes,
		r->run_s > 0 ? (double)echoes / r->run_s : 0,
		quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.5),
		quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.99),
		quantile_ms(s0->hist, s1->hist, s2->rtt_max, 0.999),
		(double)s2->rtt_max / 1e6,
		r->have_srv ? r->srv0.rss_kb : -1,
		r->have_srv ? r->srv1.rss_kb : -1,
		r->have_srv ? r->srv1.threads : -1, errors_total(s2));
	for (i = 0; i < NKINDS; i++)
		if (s2->err[i]) {
			fprintf(f, "%s%s=%" PRIu64, first ? "" : ";",
				kind_name[i], s2->err[i]);
			first = false;
		}
	fprintf(f, "\n");
	if (f != stdout)
		fclose(f);
}

/* ---- main ------------------------------------------------------------ */

enum {
	O_PARALLEL = 256,
	O_CONNECT_RATE,
	O_CONNECT_TIMEOUT,
	O_RETRIES,
	O_DRAIN_TIMEOUT,
	O_TLS,
	O_CA,
	O_NAME,
	O_CERT,
	O_KEY,
	O_INSECURE,
	O_PRIORITY,
	O_WATCH,
	O_CSV
};

static const struct option long_opts[] = {
	{ "connections", required_argument, NULL, 'c' },
	{ "duration", required_argument, NULL, 'd' },
	{ "rate", required_argument, NULL, 'r' },
	{ "size", required_argument, NULL, 's' },
	{ "pipeline", required_argument, NULL, 'p' },
	{ "threads", required_argument, NULL, 't' },
	{ "parallel", required_argument, NULL, O_PARALLEL },
	{ "connect-rate", required_argument, NULL, O_CONNECT_RATE },
	{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
	{ "retries", required_argument, NULL, O_RETRIES },
	{ "drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT },
	{ "tls", no_argument, NULL, O_TLS },
	{ "ca", required_argument, NULL, O_CA },
	{ "name", required_argument, NULL, O_NAME },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "priority", required_argument, NULL, O_PRIORITY },
	{ "watch", required_argument, NULL, O_WATCH },
	{ "quiet", no_argument, NULL, 'q' },
	{ "csv", required_argument, NULL, O_CSV },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static int parse_args(int argc, char **argv)
{
	int o;
	double v;
	uint32_t u;

	while ((o = getopt_long(argc, argv, "c:d:r:s:p:t:qh", long_opts,
				NULL)) != -1) {
		switch (o) {
		case 'c':
			if (!parse_u32(optarg, 1, 10000000, &g.conns))
				return bad_option("-c", optarg);
			break;
		case 'd':
			if (!parse_num(optarg, 0, 1e7, &g.duration))
				return bad_option("-d", optarg);
			break;
		case 'r':
			if (!parse_num(optarg, 0, 1e9, &g.rate))
				return bad_option("-r", optarg);
			break;
		case 's':
			if (!parse_u32(optarg, 1, MAX_PAYLOAD, &g.size))
				return bad_option("-s", optarg);
			break;
		case 'p':
			if (!parse_u32(optarg, 1, 65536, &g.pipeline))
				return bad_option("-p", optarg);
			break;
		case 't':
			if (!parse_u32(optarg, 1, 1024, &g.threads))
				return bad_option("-t", optarg);
			break;
		case O_PARALLEL:
			if (!parse_u32(optarg, 1, 10000000, &g.parallel))
				return bad_option("--parallel", optarg);
			break;
		case O_CONNECT_RATE:
			if (!parse_num(optarg, 0, 1e9, &g.connect_rate))
				return bad_option("--connect-rate", optarg);
			break;
		case O_CONNECT_TIMEOUT:
			if (!parse_num(optarg, 0.001, 1e6, &v))
				return bad_option("--connect-timeout", optarg);
			g.connect_timeout_ns = (uint64_t)(v * 1e9);
			break;
		case O_RETRIES:
			if (!parse_u32(optarg, 0, 100, &g.retries))
				return bad_option("--retries", optarg);
			break;
		case O_DRAIN_TIMEOUT:
			if (!parse_num(optarg, 0, 1e6, &g.drain_timeout))
				return bad_option("--drain-timeout", optarg);
			break;
		case O_TLS:
			g.tls = true;
			break;
		case O_CA:
			g.ca = optarg;
			break;
		case O_NAME:
			g.name = optarg;
			break;
		case O_CERT:
			g.cert = optarg;
			break;
		case O_KEY:
			g.key = optarg;
			break;
		case O_INSECURE:
			g.insecure = true;
			break;
		case O_PRIORITY:
			g.priority = optarg;
			break;
		case O_WATCH:
			if (!parse_u32(optarg, 1, INT32_MAX, &u))
				return bad_option("--watch", optarg);
			g.watch_pid = (long)u;
			break;
		case 'q':
			g.quiet = true;
			break;
		case O_CSV:
			g.csv = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (!g.cert != !g.key) {
		fprintf(stderr, "%s: --cert and --key go together\n", prog);
		return 2;
	}
	o = parse_target(argv[optind]);
	if (o)
		return o;
	if (!g.tls && (g.ca || g.name || g.cert || g.insecure || g.priority)) {
		fprintf(stderr, "%s: TLS options without --tls\n", prog);
		return 2;
	}
	if (g.rate > 0) {
		g.interval_ns = (uint64_t)(1e9 / g.rate);
		if (!g.interval_ns)
			g.interval_ns = 1;
	}
	/* A libconnect listener cuts the oldest handshake when more than
	 * CONNECT_OPT_HANDSHAKE_MAX (64 by default) are in progress. */
	if (!g.parallel)
		g.parallel = g.tls ? 64 : 256;
	if (g.threads > g.conns)
		g.threads = g.conns;
	return -1;
}

static void workers_start(void)
{
	unsigned t;
	uint32_t i, n;
	sigset_t all, old;

	workers = xcalloc(g.threads, sizeof(*workers));
	for (t = 0; t < g.threads; t++) {
		struct worker *w = &workers[t];
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };

		n = g.conns / g.threads + (t < g.conns % g.threads);
		w->idx = t;
		w->n = n;
		w->c = xcalloc(n, sizeof(*w->c));
		w->ready = xcalloc(n, sizeof(*w->ready));
		w->sent_ring = xcalloc((size_t)n * g.pipeline, sizeof(uint64_t));
		w->max_pending = g.parallel / g.threads +
				 (t < g.parallel % g.threads);
		if (!w->max_pending)
			w->max_pending = 1;
		w->rate = g.connect_rate / g.threads;
		w->rnd = 88172645463325252ull + t * 7919u;
		for (i = 0; i < n; i++) {
			w->c[i].fd = -1;
			w->c[i].id = i * g.threads + t;
		}
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->ep < 0 || w->wake < 0 ||
		    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &e) < 0) {
			fprintf(stderr, "%s: epoll: %s\n", prog,
				strerror(errno));
			exit(1);
		}
	}
	/* The workers take no signal: the main thread waits for them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (t = 0; t < g.threads; t++) {
		pthread_attr_t attr;
		int rc;

		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1u << 20);
		rc = pthread_create(&workers[t].th, &attr, worker_main,
				    &workers[t]);
		pthread_attr_destroy(&attr);
		if (rc) {
			fprintf(stderr, "%s: pthread_create: %s\n", prog,
				strerror(rc));
			exit(1);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int main(int argc, char **argv)
{
	struct result r;
	struct snap prev, cur;
	sigset_t sigs;
	int rc, phase = PH_SETUP, sig;
	bool drained;
	uint64_t t0, now, run_t0 = 0, run_t1 = 0, drain_end = 0, last_tick,
							  next_tick;
	unsigned t;

	memset(&r, 0, sizeof(r));
	r.srv1.rss_kb = -1;
	rc = parse_args(argc, argv);
	if (rc >= 0)
		return rc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	pattern_init();
	if (g.tls && (rc = tls_setup()) != 0)
		return rc;
	raise_nofile();
	if (g.watch_pid) {
		r.have_srv = proc_read(g.watch_pid, &r.srv0);
		if (!r.have_srv)
			fprintf(stderr, "%s: --watch: no process %ld\n", prog,
				g.watch_pid);
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	t0 = now_ns();
	workers_start();
	take_snap(&prev);
	last_tick = t0;
	next_tick = t0 + 1000000000u;
	for (;;) {
		struct timespec ts = { 0, 50000000 };
		siginfo_t si;

		sig = sigtimedwait(&sigs, &si, &ts);
		now = now_ns();
		if (sig > 0) {
			if (r.interrupted) {
				fprintf(stderr, "%s: interrupted twice\n",
					prog);
				_exit(130);
			}
			r.interrupted = true;
			fprintf(stderr, "%s: %s: stopping (again to quit at "
					"once)\n",
				prog, strsignal(sig));
			if (phase == PH_SETUP) {
				run_t0 = run_t1 = now;
				take_snap(&r.s0);
				r.s1 = r.s0;
				r.setup_s = (double)(now - t0) / 1e9;
				phase = PH_CLOSE;
				set_phase(PH_CLOSE);
				break;
			}
			if (phase == PH_RUN) {
				run_t1 = now;
				take_snap(&r.s1);
				r.cpu1 = self_cpu_s();
				proc_read((long)getpid(), &r.self1);
				if (g.watch_pid)
					proc_read(g.watch_pid, &r.srv1);
				phase = PH_DRAIN;
				drain_end = now + (uint64_t)(g.drain_timeout *
							     1e9);
				set_phase(PH_DRAIN);
			}
		}
		/* Once every worker is draining, the counters read next
		 * include every datagram that will ever be sent. */
		drained = phase == PH_DRAIN && phase_seen(PH_DRAIN);
		take_snap(&cur);
		if (phase == PH_SETUP &&
		    cur.v[S_READY] + cur.v[S_GAVEUP] >= g.conns) {
			r.setup_s = (double)(now - t0) / 1e9;
			if (!g.quiet)
				fprintf(stderr,
					"%s: [%6.1fs] setup done: %" PRIu64
					" ready, %" PRIu64
					" failed in %.2f s\n",
					prog, (double)(now - t0) / 1e9,
					cur.v[S_READY], cur.v[S_GAVEUP],
					r.setup_s);
			run_t0 = now;
			r.s0 = cur;
			r.cpu0 = self_cpu_s();
			if (g.watch_pid)
				proc_read(g.watch_pid, &r.srv_run0);
			if (!cur.v[S_READY]) {
				run_t1 = now;
				r.s1 = cur;
				phase = PH_CLOSE;
				set_phase(PH_CLOSE);
				break;
			}
			phase = PH_RUN;
			set_phase(PH_RUN);
			prev = cur;
			last_tick = now;
			next_tick = now + 1000000000u;
			continue;
		}
		if (phase == PH_RUN &&
		    now - run_t0 >= (uint64_t)(g.duration * 1e9)) {
			run_t1 = now;
			r.s1 = cur;
			r.cpu1 = self_cpu_s();
			proc_read((long)getpid(), &r.self1);
			if (g.watch_pid)
				proc_read(g.watch_pid, &r.srv1);
			phase = PH_DRAIN;
			drain_end = now + (uint64_t)(g.drain_timeout * 1e9);
			set_phase(PH_DRAIN);
		}
		if (phase == PH_DRAIN &&
		    ((drained && cur.v[S_SENT] ==
					 cur.v[S_ECHOES] + cur.v[S_ABANDONED]) ||
		     now >= drain_end)) {
			set_phase(PH_CLOSE);
			break;
		}
		if (now >= next_tick) {
			if (!g.quiet)
				progress((double)(now - t0) / 1e9, phase,
					 &prev, &cur,
					 (double)(now - last_tick) / 1e9);
			prev = cur;
			last_tick = now;
			next_tick += 1000000000u;
			if (next_tick <= now)
				next_tick = now + 1000000000u;
		}
	}
	for (t = 0; t < g.threads; t++)
		pthread_join(workers[t].th, NULL);
	take_snap(&r.s2);
	r.run_s = (double)(run_t1 - run_t0) / 1e9;
	if (r.have_srv && r.srv1.rss_kb < 0)
		proc_read(g.watch_pid, &r.srv1);
	report(&r);
	if (g.csv)
		write_csv(&r);
	for (t = 0; t < g.threads; t++) {
		close(workers[t].ep);
		close(workers[t].wake);
		free(workers[t].c);
		free(workers[t].ready);
		free(workers[t].sent_ring);
		free(workers[t].heap);
	}
	free(workers);
	if (g.tls) {
		gnutls_certificate_free_credentials(g.cred);
		if (g.prio)
			gnutls_priority_deinit(g.prio);
	}
	/* Failed attempts that a retry made good do not fail the run. */
	return r.s2.v[S_GAVEUP] || r.s2.v[S_LOST] ||
			       r.s2.err[E_UNANSWERED] || r.interrupted
		       ? 1
		       : 0;
}
