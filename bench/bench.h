/*
 * connect-bench: libconnect side by side with ZeroMQ, nng and the limits of
 * plain sockets, bare GnuTLS and plain usrsctp (see bench/README).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every measurement is a "cell": one system, one message size, one kind
 * of measure, one run.  A cell sets up its connections (not timed), runs
 * its threads, measures, tears everything down and fills a bench_result.
 * Both ends live in this process, each on threads of its own, over
 * 127.0.0.1.
 *
 * Messages carry a sequence number in their first 8 payload bytes (and,
 * from 32 bytes up, again in their last 8), written by the sender and
 * checked by the receiver for every message; in the many-connection
 * measure the bytes 8..11 carry the sender's index.  Nothing else of the
 * payload is written per message, by any system.
 */
#ifndef CONNECT_BENCH_H
#define CONNECT_BENCH_H

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum bench_measure {
	BM_TPUT = 0, /* one-way throughput, one connection */
	BM_LAT = 1,  /* round trip, one message outstanding */
	BM_MANY = 2, /* one-way throughput, N connections into one receiver */
	BM_COUNT
};

/* What one cell is asked to do. */
struct bench_cell {
	int measure;
	size_t size;          /* payload bytes per message */
	int conns;            /* BM_MANY: the number of senders */
	uint64_t duration_ns; /* the measured window */
	uint64_t warmup_ns;   /* not counted, before the window */
	const char *certdir;
};

/* What one cell measured. */
struct bench_result {
	uint64_t msgs;  /* messages received in the window */
	uint64_t bytes; /* their payload bytes */
	double secs;    /* the window's length */
	/* BM_LAT: round-trip times in ns (the cell allocates, the caller
	 * frees). */
	uint64_t *samples;
	size_t nsamples;
	long rss_start_kb;  /* VmRSS before setup */
	long rss_warm_kb;   /* when the warm-up ended (0: not taken) */
	long rss_window_kb; /* at the end of the window, connections open */
	long rss_end_kb;    /* after teardown */
	char err[256];      /* empty: the cell worked */
};

typedef int (*bench_fn)(const struct bench_cell *, struct bench_result *);

/* A system under test. */
struct bench_system {
	const char *name;  /* short name: "connect-tcp", the CSV's key */
	const char *label; /* for the table */
	/* BS_*: how the ratios treat it. */
	int role;
	bench_fn fn[BM_COUNT]; /* NULL: the system does not do that measure */
	const char *note;  /* printed with the system list */
	/* The share of --duration and --warmup its cells run (0: all of
	 * them), for systems whose cells would make a full run too long. */
	double share;
};

enum bench_role {
	BS_CONNECT_TCP,
	BS_CONNECT_TLS,
	BS_CONNECT_INBOX,
	BS_ZMQ,
	BS_NNG_TCP,
	BS_NNG_TLS,
	BS_LIMIT_TCP,
	BS_LIMIT_TLS,
	BS_CONNECT_SCTP,
	BS_CONNECT_DTLS_SCTP,
	BS_LIMIT_SCTP,
};

/* The systems of each module (count written to *n). */
const struct bench_system *bench_connect_systems(size_t *n);
const struct bench_system *bench_limit_systems(size_t *n);
#ifdef HAVE_USRSCTP
/* limit-sctp: plain usrsctp, each cell in a child process. */
const struct bench_system *bench_sctp_systems(size_t *n);
#endif
#ifdef HAVE_ZMQ
const struct bench_system *bench_zmq_systems(size_t *n);
#endif
#ifdef HAVE_NNG
const struct bench_system *bench_nng_systems(size_t *n);
/* Whether nng has a TLS engine (Debian's: Mbed TLS); starts nng. */
bool bench_nng_tls(void);
#endif
/* Library versions, for the header of the output. */
const char *bench_zmq_version(void);
const char *bench_nng_version(void);
const char *bench_gnutls_version(void);

/* ---- helpers (bench/util.c) -------------------------------------------- */

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now(void);
/* This process's VmRSS in KiB, or -1. */
long bench_rss_kb(void);
/* printf into r->err (only the first error is kept). */
void bench_fail(struct bench_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The sequence number (and sender index) written into a payload. */
static inline void bench_stamp(uint8_t *p, size_t size, uint64_t seq)
{
	memcpy(p, &seq, 8);
	if (size >= 32)
		memcpy(p + size - 8, &seq, 8);
}

static inline void bench_stamp_id(uint8_t *p, uint32_t id)
{
	memcpy(p + 8, &id, 4);
}

static inline uint32_t bench_id(const uint8_t *p)
{
	uint32_t id;

	memcpy(&id, p + 8, 4);
	return id;
}

/*
 * Check a received payload against the sequence number expected: 0, or -1
 * with the reason in r->err.
 */
int bench_check(struct bench_result *r, const uint8_t *p, size_t len,
		size_t size, uint64_t expect);

/*
 * The receiver's clock.  bench_meter_tick() is called once per message
 * received: the first message starts the warm-up, the window follows it,
 * and the tick that finds the window over returns true (the meter then
 * holds the count and the window's length).  The clock is read once every
 * few messages for small ones.
 */
struct bench_meter {
	uint64_t warmup_ns, duration_ns;
	uint64_t t_init;          /* bench_meter_init() */
	uint64_t t_first, t0, t1; /* first message, window start and end */
	uint64_t n;               /* messages counted in the window */
	uint64_t bytes;           /* their payload */
	size_t size;
	unsigned every, left;     /* clock read every `every` ticks */
	int phase;                /* 0 waiting, 1 warm-up, 2 window, 3 done */
	long rss_warm_kb;         /* VmRSS when the window began */
};

void bench_meter_init(struct bench_meter *m, const struct bench_cell *c);
bool bench_meter_slow(struct bench_meter *m);
/*
 * For a receiver that waited in vain: 1 if the window is over, 0 to wait
 * on, -1 (reason in r->err) if no message came for BENCH_STALL_NS since
 * the meter was set up.
 */
int bench_meter_idle(struct bench_meter *m, struct bench_result *r);
#define BENCH_STALL_NS (10 * 1000000000ull)

static inline bool bench_meter_tick(struct bench_meter *m, size_t bytes)
{
	if (m->phase == 2) {
		m->n++;
		m->bytes += bytes;
	}
	if (--m->left)
		return false;
	return bench_meter_slow(m);
}

/* Copy the meter's figures into the result. */
void bench_meter_result(const struct bench_meter *m, struct bench_result *r);

/*
 * Round-trip samples: a growing array of ns values, kept from the end of
 * the warm-up to the end of the window.
 */
struct bench_lat {
	uint64_t *v;
	size_t n, cap;
	uint64_t t_start, t0, t_end;
	uint64_t warmup_ns, duration_ns;
	long rss_warm_kb; /* VmRSS when the window began */
};

void bench_lat_init(struct bench_lat *l, const struct bench_cell *c);
/* Record one round trip that ended at `now`; true when the window is over. */
bool bench_lat_add(struct bench_lat *l, uint64_t rtt, uint64_t now);
/* Hand the samples to the result (which owns them afterwards). */
void bench_lat_result(struct bench_lat *l, struct bench_result *r);

/*
 * The memory each system may queue per connection and direction, in
 * payload bytes, when `conns` connections share one receiver: libconnect's
 * default of 16 MiB for one, 64 MiB spread over all of them for more
 * (at least 256 KiB each).  libconnect gets it as its queue limits; ZeroMQ
 * and nng, which count messages, as high-water marks / buffers of this
 * many bytes' worth of messages, at least 1 and at most 1000 (ZeroMQ's
 * default).
 */
int64_t bench_many_queue_bytes(int conns);
int bench_queue_msgs(int conns, size_t size);

/* A thread with a small stack; 0 or an errno value. */
int bench_thread(void *(*fn)(void *), void *arg, void *tidp);

/*
 * The threads of this process whose name (/proc/self/task/N/comm) starts
 * with prefix, or -1 when that cannot be read.  usrsctp names its threads
 * "SCTP timer", "SCTP/UDP/IP4 rcv"...: whether its stack runs here.
 */
int bench_threads_named(const char *prefix);
/* Wait up to ms for none to be left (a thread just joined may still be
 * listed for a moment): how many are left, or -1. */
int bench_threads_gone(const char *prefix, int ms);
#define BENCH_SCTP_THREADS "SCTP"

/* Read a whole file into a NUL-terminated buffer (malloc'd), or NULL. */
char *bench_read_file(const char *path, size_t *lenp);

/*
 * Plain TCP over 127.0.0.1: a listening socket on port 0 (its port into
 * *port), a connected pair (client, accepted server), with TCP_NODELAY.
 * 0 or -1 with the reason in r->err.
 */
int bench_tcp_pair(struct bench_result *r, int *client, int *server);

/* Write / read exactly `len` bytes on a blocking socket: 0 or -1. */
int bench_write_full(int fd, const void *buf, size_t len);
int bench_read_full(int fd, void *buf, size_t len);

/*
 * Incremental checker of a stream of frames (the libconnect wire format)
 * that all carry `size` payload bytes: it copies nothing but the header,
 * the leading sequence number and the trailing one.
 */
struct bench_frames {
	size_t size;
	uint64_t flen, pos;
	uint64_t expect;
	uint8_t head[16];
	uint8_t tail[8];
};

void bench_frames_init(struct bench_frames *f, size_t size);
/*
 * Feed `len` bytes; for each frame completed, check it and tick the meter
 * (when m is not NULL).  Returns the number of frames completed, or -1 on
 * a bad frame (reason in r->err).  *done is set when the meter's window
 * ended (the rest of the buffer is then ignored).
 */
long bench_frames_feed(struct bench_frames *f, const uint8_t *p, size_t len,
		       struct bench_meter *m, struct bench_result *r,
		       bool *done);

/* Write the frame header of a `size`-byte payload at p (8 bytes). */
void bench_frame_header(uint8_t *p, size_t size);

#endif /* CONNECT_BENCH_H */
