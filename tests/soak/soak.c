/*
 * soak: one end of a two-host soak and dead-peer test of libconnect.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only the public API (connect.h), POSIX and pthreads are used, so the two
 * ends can run in different network namespaces (see netns-soak.sh):
 *
 *     soak server --url tcp://10.231.0.1:7000 --count 1000000
 *     soak client --url tcp://10.231.0.1:7000 --count 1000000
 *
 * Each end sends --count datagrams and receives as many.  Datagram `seq`
 * has a size that both ends compute from (seed, seq) (1 byte to
 * --max-size, mostly small, some of the maximum), tag seq & 0x7fff, and a
 * payload drawn from a generator seeded by (seed, seq).  Payloads of 16
 * bytes or more start with a header: u64 seq, u32 CRC-32 of the bytes
 * after the header, u32 length (big-endian).  The receiver checks tag,
 * size, sequence number, checksum and every byte, and counts datagrams
 * lost, duplicated or reordered, and corrupted.  After the last datagram
 * each end sends an end marker (tag 0xffff, "SOAKEND!" + u64 count); the
 * server then waits for the end of the stream (nothing after the marker),
 * and both ends close with a linger and expect CONNECT_OK.
 *
 * With --expect-error the run is a dead-peer test: the ends send (as fast
 * as they can, every --pace-ms, or only --count datagrams and then stay
 * silent) and verify what arrives until the connection fails, which
 * must happen with one of the --accept codes (default CONNECT_EDEADPEER);
 * the time of failure is printed as wall-clock milliseconds so that the
 * script that cut the network can tell how long detection took.
 *
 * Output (stdout, one line each, key=value):
 *     soak-listening / soak-connected / soak-ready   (progress of the set-up;
 *                                        ready: the first datagram arrived)
 *     soak: ... result=PASS|FAIL                     (soak mode summary)
 *     soak-cut: ... result=PASS|FAIL                 (--expect-error summary:
 *                                        recv_error is what connect_recv
 *                                        returned, conn_error and reason
 *                                        what connect_conn_error says)
 * Exit status: 0 PASS, 1 a discrepancy or an unexpected error, 2 usage or
 * set-up error, 3 the deadline passed or nothing moved for --stall-s (a
 * hang).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connect.h"

#ifndef CERTDIR
#define CERTDIR "tests/certs"
#endif

#define TAG_END 0xffffu
#define HDR_LEN 16u
#define END_MAGIC "SOAKEND!"
#define MAX_REPORTS 20

enum { EXIT_PASS = 0, EXIT_DIFF = 1, EXIT_SETUP = 2, EXIT_HANG = 3 };

/* ------------------------------------------------------------ settings */

static struct {
	bool server;
	const char *url;
	uint64_t count;
	uint64_t seed;
	uint32_t max_size;
	int pace_ms;
	const char *certs;
	const char *server_name;
	int64_t user_timeout_ms;
	int64_t ka_idle, ka_intvl, ka_count;
	int64_t recv_idle_ms;
	int64_t frame_timeout_ms;
	bool expect_error;
	char accept[256];
	int deadline_s;
	int stall_s;
	int linger_ms;
	int accept_timeout_s;
	int dial_timeout_s;
	int progress_s;
	const char *label;
} cfg = {
	.count = 10000,
	.seed = 1,
	.max_size = 65536,
	.certs = CERTDIR,
	.server_name = "localhost",
	.accept = "CONNECT_EDEADPEER",
	.stall_s = 60,
	.linger_ms = 30000,
	.accept_timeout_s = 60,
	.dial_timeout_s = 30,
};

static const char *role(void)
{
	return cfg.server ? "server" : "client";
}

/* ---------------------------------------------------------------- time */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock ms: comparable between processes (the script's `date`). */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int64_t t_start;     /* mono_ms() at start */
static int64_t t_deadline;  /* mono_ms() deadline, 0: none */

static bool past_deadline(void)
{
	return t_deadline && mono_ms() >= t_deadline;
}

/* --------------------------------------------------------- the payload */

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_buf(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The payload size of datagram seq: both ends compute the same. */
static uint32_t size_for(uint64_t seq)
{
	uint64_t s = cfg.seed * 0x2545f4914f6cdd1dull ^ seq;
	uint64_t h = splitmix(&s);
	uint32_t r = (uint32_t)(h % 1000), v = (uint32_t)(h >> 20), n;

	if (seq % 1000 == 0)
		n = cfg.max_size; /* the edges, regularly */
	else if (seq % 1000 == 1)
		n = 1;
	else if (r < 790)
		n = 1 + v % 128; /* mostly small */
	else if (r < 990)
		n = 129 + v % 3968; /* some up to 4 KiB */
	else
		n = 4097 + v % 61440; /* a few up to 64 KiB */
	if (n > cfg.max_size)
		n = cfg.max_size;
	return n;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

/* The generated bytes of datagram seq (after the header, if any). */
static void fill_random(uint8_t *p, size_t n, uint64_t seq)
{
	uint64_t s = cfg.seed ^ (seq * 0xd1342543de82ef95ull) ^ 0x5eed;

	while (n >= 8) {
		uint64_t r = splitmix(&s);

		memcpy(p, &r, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t r = splitmix(&s);

		memcpy(p, &r, n);
	}
}

/* Write the whole payload of datagram seq (len bytes) into p. */
static void fill_payload(uint8_t *p, uint32_t len, uint64_t seq)
{
	if (len < HDR_LEN) {
		fill_random(p, len, seq);
		return;
	}
	fill_random(p + HDR_LEN, len - HDR_LEN, seq);
	put_u64(p, seq);
	put_u32(p + 8, crc32_buf(p + HDR_LEN, len - HDR_LEN));
	put_u32(p + 12, len);
}

/* ------------------------------------------------------------ the state */

static connect_conn *conn;
static atomic_bool stop;
static atomic_uint_fast64_t sent, bytes_sent, recvd, bytes_recvd;
static atomic_int_fast64_t last_move; /* mono_ms() of the last progress */

static int send_err;           /* the sender's terminal code, 0: none */
static int64_t send_err_wall;  /* when the sender saw it */
static atomic_bool send_hang;  /* the sender waited --stall-s for room */

/* Discrepancies seen by the receiver. */
static uint64_t n_lost, n_dup, n_corrupt, n_extra;
static int reports;

static void report(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void report(const char *fmt, ...)
{
	va_list ap;

	if (reports++ >= MAX_REPORTS) {
		if (reports == MAX_REPORTS + 1)
			fprintf(stderr, "soak %s: (further discrepancies not "
				"shown)\n", role());
		return;
	}
	fprintf(stderr, "soak %s: DISCREPANCY: ", role());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --------------------------------------------------------------- sender */

/*
 * connect_send_wait() returns CONNECT_ETIMEDOUT both when the queue had no
 * room in time and when the connection failed by a timeout: a
 * non-blocking connect_send() tells them apart (CONNECT_EAGAIN: no room).
 * Returns 0 once the datagram is queued, 1 to stop, or a library code.
 */
static int send_one(connect_datagram *dg)
{
	for (;;) {
		int rc = connect_send_wait(conn, dg, 250);

		if (rc == CONNECT_ETIMEDOUT) {
			rc = connect_send(conn, dg);
			if (rc == CONNECT_EAGAIN) {
				if (atomic_load(&stop))
					return 1;
				if (past_deadline() ||
				    (!cfg.expect_error && cfg.stall_s &&
				     mono_ms() - atomic_load(&last_move) >
					     cfg.stall_s * 1000LL)) {
					fprintf(stderr, "soak %s: HANG: no "
						"room to send for %d s (sent "
						"%" PRIu64 ")\n", role(),
						cfg.stall_s, (uint64_t)
						atomic_load(&sent));
					atomic_store(&send_hang, true);
					return 1;
				}
				continue;
			}
		}
		return rc;
	}
}

static void *sender_main(void *arg)
{
	uint64_t seq;
	int rc = 0;

	(void)arg;
	for (seq = 0; cfg.count == 0 || seq < cfg.count; seq++) {
		connect_datagram *dg;
		uint32_t len = size_for(seq);

		if (atomic_load(&stop))
			break;
		rc = connect_datagram_alloc(&dg, (uint16_t)(seq & 0x7fff),
					    len);
		if (rc) {
			fprintf(stderr, "soak %s: datagram_alloc: %s\n",
				role(), connect_err_name(rc));
			break;
		}
		fill_payload(connect_datagram_data(dg), len, seq);
		rc = send_one(dg);
		if (rc) {
			connect_datagram_free(dg);
			break;
		}
		atomic_fetch_add(&sent, 1);
		atomic_fetch_add(&bytes_sent, len);
		atomic_store(&last_move, mono_ms());
		if (cfg.pace_ms)
			sleep_ms(cfg.pace_ms);
	}
	if (rc == 0 && !cfg.expect_error && !atomic_load(&stop)) {
		uint8_t end[16];
		connect_datagram *dg;

		memcpy(end, END_MAGIC, 8);
		put_u64(end + 8, cfg.count);
		rc = connect_datagram_new(&dg, TAG_END, end, sizeof(end));
		if (rc == 0) {
			rc = send_one(dg);
			if (rc)
				connect_datagram_free(dg);
		}
	}
	if (rc < 0) {
		send_err = rc;
		send_err_wall = wall_ms();
	}
	return NULL;
}

/* ------------------------------------------------------------- receiver */

static uint64_t expect_seq; /* the next sequence number due */
static bool got_end;

/* Check one datagram against what datagram `seq` must be. */
static bool check_content(uint64_t seq, const uint8_t *p, uint32_t len,
			  uint16_t tag)
{
	static uint8_t *want;
	uint32_t want_len = size_for(seq);

	if (!want) {
		want = malloc(cfg.max_size > 65536 ? cfg.max_size : 65536);
		if (!want) {
			fprintf(stderr, "soak: out of memory\n");
			exit(EXIT_SETUP);
		}
	}
	if (tag != (seq & 0x7fff)) {
		report("datagram %" PRIu64 ": tag %u, expected %u", seq, tag,
		       (unsigned)(seq & 0x7fff));
		return false;
	}
	if (len != want_len) {
		report("datagram %" PRIu64 ": %u bytes, expected %u", seq, len,
		       want_len);
		return false;
	}
	if (len >= HDR_LEN &&
	    get_u32(p + 8) != crc32_buf(p + HDR_LEN, len - HDR_LEN)) {
		report("datagram %" PRIu64 " (%u bytes): checksum mismatch",
		       seq, len);
		return false;
	}
	fill_payload(want, len, seq);
	if (memcmp(want, p, len) != 0) {
		uint32_t i = 0;

		while (i < len && want[i] == p[i])
			i++;
		report("datagram %" PRIu64 " (%u bytes): payload differs at "
		       "byte %u", seq, len, i);
		return false;
	}
	return true;
}

static void on_datagram(connect_datagram *dg)
{
	const uint8_t *p = connect_datagram_data(dg);
	uint32_t len = (uint32_t)connect_datagram_size(dg);
	uint16_t tag = connect_datagram_tag(dg);
	uint64_t seq = expect_seq;

	atomic_store(&last_move, mono_ms());
	atomic_fetch_add(&recvd, 1);
	atomic_fetch_add(&bytes_recvd, len);
	if (got_end) {
		n_extra++;
		report("datagram (tag %u, %u bytes) after the end marker", tag,
		       len);
		return;
	}
	if (tag == TAG_END) {
		uint64_t n;

		atomic_fetch_sub(&recvd, 1);
		atomic_fetch_sub(&bytes_recvd, len);
		if (len != 16 || memcmp(p, END_MAGIC, 8) != 0) {
			n_corrupt++;
			report("malformed end marker (%u bytes)", len);
			return;
		}
		n = get_u64(p + 8);
		got_end = true;
		if (n != expect_seq) {
			n_lost += n > expect_seq ? n - expect_seq : 0;
			report("end marker after %" PRIu64 " datagrams, the "
			       "peer sent %" PRIu64, expect_seq, n);
		}
		return;
	}
	/* Which datagram is this?  The header says, or the tag's low bits
	 * (the nearest sequence number, ahead or behind, that has them). */
	if (len >= HDR_LEN && get_u32(p + 12) == len) {
		seq = get_u64(p);
	} else if (tag != (expect_seq & 0x7fff)) {
		uint32_t d = (uint32_t)(tag - (expect_seq & 0x7fff)) & 0x7fff;

		if (d < 0x4000)
			seq = expect_seq + d;
		else if (expect_seq >= 0x8000u - d)
			seq = expect_seq - (0x8000u - d);
	}
	if (seq > expect_seq) {
		n_lost += seq - expect_seq;
		report("expected datagram %" PRIu64 ", got %" PRIu64
		       ": %" PRIu64 " lost",
		       expect_seq, seq, seq - expect_seq);
	} else if (seq != expect_seq) {
		n_dup++;
		report("expected datagram %" PRIu64 ", got %" PRIu64
		       " again (duplicate or reordered)",
		       expect_seq, seq);
		if (!check_content(seq, p, len, tag))
			n_corrupt++;
		return;
	}
	if (!check_content(seq, p, len, tag))
		n_corrupt++;
	expect_seq = seq + 1;
}

static int recv_err;          /* the terminal code of receiving */
static int64_t recv_err_wall; /* when it came */

/*
 * Receive until the peer's end marker (soak), the end of the stream, an
 * error, the deadline or a stall.  connect_recv_wait() says
 * CONNECT_ETIMEDOUT both for "nothing yet" and for a connection that
 * failed by a timeout: a non-blocking connect_recv() tells them apart.
 * Returns CONNECT_OK (end marker), a library code, or 1 for a hang.
 */
static int receive(bool until_end, bool *ready)
{
	for (;;) {
		connect_datagram *dg = NULL;
		int rc = connect_recv_wait(conn, &dg, 200);

		if (rc == CONNECT_ETIMEDOUT)
			rc = connect_recv(conn, &dg);
		if (rc == CONNECT_OK) {
			on_datagram(dg);
			connect_datagram_free(dg);
			if (!*ready) {
				*ready = true;
				printf("soak-ready role=%s at_ms=%" PRId64
				       "\n", role(), wall_ms());
				fflush(stdout);
			}
			if (until_end && got_end)
				return CONNECT_OK;
			continue;
		}
		if (rc != CONNECT_EAGAIN)
			return rc;
		if (past_deadline()) {
			fprintf(stderr, "soak %s: HANG: deadline of %d s "
				"passed (sent %" PRIu64 ", received %" PRIu64
				")\n", role(), cfg.deadline_s,
				(uint64_t)atomic_load(&sent),
				(uint64_t)atomic_load(&recvd));
			return 1;
		}
		if (!cfg.expect_error && cfg.stall_s &&
		    mono_ms() - atomic_load(&last_move) >
			    (int64_t)cfg.stall_s * 1000) {
			fprintf(stderr, "soak %s: HANG: nothing sent or "
				"received for %d s (sent %" PRIu64
				", received %" PRIu64 ")\n", role(),
				cfg.stall_s, (uint64_t)atomic_load(&sent),
				(uint64_t)atomic_load(&recvd));
			return 1;
		}
		if (cfg.progress_s) {
			static int64_t next;
			int64_t now = mono_ms();

			if (!next)
				next = now + cfg.progress_s * 1000;
			if (now >= next) {
				next = now + cfg.progress_s * 1000;
				fprintf(stderr, "soak-progress role=%s "
					"t_s=%.0f sent=%" PRIu64
					" recv=%" PRIu64 "\n", role(),
					(now - t_start) / 1000.0,
					(uint64_t)atomic_load(&sent),
					(uint64_t)atomic_load(&recvd));
			}
		}
	}
}

/* -------------------------------------------------------------- set-up */

static bool accepted(int code)
{
	const char *name = connect_err_name(code);
	const char *p = cfg.accept;
	size_t n = strlen(name);

	if (strcmp(p, "any") == 0)
		return code != CONNECT_OK && code != CONNECT_EEOF &&
		       code != CONNECT_ECLOSED;

	while (*p) {
		if (strncmp(p, name, n) == 0 && (p[n] == ',' || !p[n]))
			return true;
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	return false;
}

static bool is_tls(void)
{
	return strncmp(cfg.url, "tls", 3) == 0;
}

static int make_opts(connect_opts **op)
{
	connect_opts *o;
	int rc = connect_opts_new(&o);

	if (rc)
		return rc;
	if (cfg.user_timeout_ms)
		rc |= connect_opts_set(o, CONNECT_OPT_TCP_USER_TIMEOUT_MS,
				       cfg.user_timeout_ms);
	if (cfg.ka_idle)
		rc |= connect_opts_set(o, CONNECT_OPT_TCP_KEEPALIVE_IDLE,
				       cfg.ka_idle);
	if (cfg.ka_intvl)
		rc |= connect_opts_set(o, CONNECT_OPT_TCP_KEEPALIVE_INTERVAL,
				       cfg.ka_intvl);
	if (cfg.ka_count)
		rc |= connect_opts_set(o, CONNECT_OPT_TCP_KEEPALIVE_COUNT,
				       cfg.ka_count);
	if (cfg.recv_idle_ms)
		rc |= connect_opts_set(o, CONNECT_OPT_RECV_IDLE_TIMEOUT_MS,
				       cfg.recv_idle_ms);
	if (cfg.frame_timeout_ms)
		rc |= connect_opts_set(o, CONNECT_OPT_FRAME_TIMEOUT_MS,
				       cfg.frame_timeout_ms);
	if (cfg.max_size > 65536)
		rc |= connect_opts_set(o, CONNECT_OPT_RECV_MAX_PAYLOAD,
				       cfg.max_size);
	if (rc) {
		fprintf(stderr, "soak %s: an option value is out of range\n",
			role());
		connect_opts_free(o);
		return CONNECT_EINVAL;
	}
	if (is_tls()) {
		connect_tls_config *tc;
		char a[4096], b[4096];

		rc = connect_tls_config_new(&tc, cfg.server
							 ? CONNECT_TLS_SERVER
							 : CONNECT_TLS_CLIENT);
		if (rc == 0 && cfg.server) {
			snprintf(a, sizeof(a), "%s/server.pem", cfg.certs);
			snprintf(b, sizeof(b), "%s/server-key.pem",
				 cfg.certs);
			rc = connect_tls_config_cert_file(tc, a, b);
		} else if (rc == 0) {
			snprintf(a, sizeof(a), "%s/ca.pem", cfg.certs);
			rc = connect_tls_config_ca_file(tc, a);
		}
		if (rc == 0)
			rc = connect_opts_set_tls(o, tc);
		connect_tls_config_free(tc);
		if (rc == 0 && !cfg.server)
			rc = connect_opts_set_server_name(o, cfg.server_name);
		if (rc) {
			fprintf(stderr, "soak %s: TLS set-up (certificates "
				"in %s): %s\n", role(), cfg.certs,
				connect_strerror(rc));
			connect_opts_free(o);
			return rc;
		}
	}
	*op = o;
	return CONNECT_OK;
}

static int establish(const connect_opts *o)
{
	int rc;

	if (cfg.server) {
		connect_listener *l;
		char addr[128] = "";
		int64_t until = mono_ms() + cfg.accept_timeout_s * 1000LL;

		rc = connect_listen(&l, cfg.url, o);
		if (rc) {
			fprintf(stderr, "soak server: listen %s: %s\n",
				cfg.url, connect_strerror(rc));
			return rc;
		}
		connect_listener_addr(l, addr, sizeof(addr));
		printf("soak-listening role=server addr=%s at_ms=%" PRId64
		       "\n", addr, wall_ms());
		fflush(stdout);
		do {
			rc = connect_accept_wait(l, &conn, 500);
		} while (rc == CONNECT_ETIMEDOUT && mono_ms() < until &&
			 !past_deadline());
		if (rc) {
			int nf = connect_listener_tls_failures(l, NULL, addr,
							       sizeof(addr));

			fprintf(stderr, "soak server: accept: %s "
				"(TLS handshakes failed: %d%s%s)\n",
				connect_strerror(rc), nf > 0 ? nf : 0,
				nf > 0 ? ", last: " : "", nf > 0 ? addr : "");
		}
		connect_listener_close(l);
		return rc;
	}
	for (int64_t until = mono_ms() + cfg.dial_timeout_s * 1000LL;;) {
		rc = connect_dial(&conn, cfg.url, o);
		if (rc == 0)
			return 0;
		/* The server may not listen yet, or a SYN was lost. */
		if ((rc != CONNECT_ECONNREFUSED && rc != CONNECT_ETIMEDOUT) ||
		    mono_ms() >= until || past_deadline()) {
			fprintf(stderr, "soak client: dial %s: %s\n", cfg.url,
				connect_strerror(rc));
			return rc;
		}
		sleep_ms(100);
	}
}

/* --------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: soak server|client --url URL [options]\n"
		"  --url URL            tcp://HOST:PORT or tls+tcp://HOST:PORT "
		"(server: listen, client: dial)\n"
		"  --count N            datagrams each end sends (default "
		"10000; 0: no limit, with --expect-error)\n"
		"  --seed S             payload seed, the same on both ends "
		"(default 1)\n"
		"  --max-size B         largest payload, 16..100000000 "
		"(default 65536)\n"
		"  --pace-ms MS         pause between two sends (default 0)\n"
		"  --certs DIR          server.pem, server-key.pem, ca.pem "
		"(default " CERTDIR ")\n"
		"  --server-name NAME   name the TLS client verifies "
		"(default localhost)\n"
		"  --user-timeout-ms MS CONNECT_OPT_TCP_USER_TIMEOUT_MS\n"
		"  --keepalive I,N,C    CONNECT_OPT_TCP_KEEPALIVE_IDLE, "
		"_INTERVAL (s), _COUNT\n"
		"  --recv-idle-ms MS    CONNECT_OPT_RECV_IDLE_TIMEOUT_MS\n"
		"  --frame-timeout-ms MS CONNECT_OPT_FRAME_TIMEOUT_MS\n"
		"  --expect-error       run until the connection fails; pass "
		"if it fails with an --accept code\n"
		"  --accept CODES       comma-separated (default "
		"CONNECT_EDEADPEER); \"any\": any\n"
		"                       error but CONNECT_EEOF and "
		"CONNECT_ECLOSED\n"
		"  --deadline-s S       fail as a hang after S s in all "
		"(default: none)\n"
		"  --stall-s S          fail as a hang when nothing moves for "
		"S s (default 60; 0: never)\n"
		"  --linger-ms MS       linger of the final close (default "
		"30000)\n"
		"  --accept-timeout-s S server: wait for the client (default "
		"60)\n"
		"  --dial-timeout-s S   client: keep dialing (default 30)\n"
		"  --progress-s S       progress line on stderr every S s\n"
		"  --label TEXT         added to the summary line\n");
}

static long long num(const char *s, const char *what, long long lo,
		     long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "soak: bad %s: %s (%lld .. %lld)\n", what, s,
			lo, hi);
		exit(EXIT_SETUP);
	}
	return v;
}

static void parse(int argc, char **argv)
{
	enum {
		O_URL = 256, O_COUNT, O_SEED, O_MAX, O_PACE, O_CERTS, O_NAME,
		O_UT, O_KA, O_IDLE, O_FRAME, O_EXPECT, O_ACCEPT, O_DEADLINE,
		O_STALL, O_LINGER, O_ACC_T, O_DIAL_T, O_PROGRESS, O_LABEL,
		O_HELP
	};
	static const struct option lo[] = {
		{ "url", 1, 0, O_URL },
		{ "count", 1, 0, O_COUNT },
		{ "seed", 1, 0, O_SEED },
		{ "max-size", 1, 0, O_MAX },
		{ "pace-ms", 1, 0, O_PACE },
		{ "certs", 1, 0, O_CERTS },
		{ "server-name", 1, 0, O_NAME },
		{ "user-timeout-ms", 1, 0, O_UT },
		{ "keepalive", 1, 0, O_KA },
		{ "recv-idle-ms", 1, 0, O_IDLE },
		{ "frame-timeout-ms", 1, 0, O_FRAME },
		{ "expect-error", 0, 0, O_EXPECT },
		{ "accept", 1, 0, O_ACCEPT },
		{ "deadline-s", 1, 0, O_DEADLINE },
		{ "stall-s", 1, 0, O_STALL },
		{ "linger-ms", 1, 0, O_LINGER },
		{ "accept-timeout-s", 1, 0, O_ACC_T },
		{ "dial-timeout-s", 1, 0, O_DIAL_T },
		{ "progress-s", 1, 0, O_PROGRESS },
		{ "label", 1, 0, O_LABEL },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	int c;

	if (argc < 2 || (strcmp(argv[1], "server") != 0 &&
			 strcmp(argv[1], "client") != 0)) {
		usage(stderr);
		exit(EXIT_SETUP);
	}
	cfg.server = strcmp(argv[1], "server") == 0;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_URL: cfg.url = optarg; break;
		case O_COUNT:
			cfg.count = (uint64_t)num(optarg, "count", 0,
						  INT64_MAX);
			break;
		case O_SEED:
			cfg.seed = (uint64_t)num(optarg, "seed", 0, INT64_MAX);
			break;
		case O_MAX:
			cfg.max_size = (uint32_t)num(optarg, "max-size",
						     HDR_LEN,
						     CONNECT_MAX_PAYLOAD);
			break;
		case O_PACE:
			cfg.pace_ms = (int)num(optarg, "pace", 0, 60000);
			break;
		case O_CERTS: cfg.certs = optarg; break;
		case O_NAME: cfg.server_name = optarg; break;
		case O_UT:
			cfg.user_timeout_ms = num(optarg, "user timeout", 0,
						  INT32_MAX);
			break;
		case O_KA:
			if (sscanf(optarg, "%" SCNd64 ",%" SCNd64 ",%" SCNd64,
				   &cfg.ka_idle, &cfg.ka_intvl,
				   &cfg.ka_count) != 3) {
				fprintf(stderr, "soak: --keepalive IDLE,"
					"INTERVAL,COUNT\n");
				exit(EXIT_SETUP);
			}
			break;
		case O_IDLE:
			cfg.recv_idle_ms = num(optarg, "recv idle", 0,
					       INT32_MAX);
			break;
		case O_FRAME:
			cfg.frame_timeout_ms = num(optarg, "frame timeout", 0,
						   INT32_MAX);
			break;
		case O_EXPECT: cfg.expect_error = true; break;
		case O_ACCEPT:
			snprintf(cfg.accept, sizeof(cfg.accept), "%s", optarg);
			break;
		case O_DEADLINE:
			cfg.deadline_s = (int)num(optarg, "deadline", 0,
						  INT32_MAX / 1000);
			break;
		case O_STALL:
			cfg.stall_s = (int)num(optarg, "stall", 0,
					       INT32_MAX / 1000);
			break;
		case O_LINGER:
			cfg.linger_ms = (int)num(optarg, "linger", -1,
						 INT32_MAX);
			break;
		case O_ACC_T:
			cfg.accept_timeout_s = (int)num(optarg, "accept "
							"timeout", 1, 86400);
			break;
		case O_DIAL_T:
			cfg.dial_timeout_s = (int)num(optarg, "dial timeout",
						      1, 86400);
			break;
		case O_PROGRESS:
			cfg.progress_s = (int)num(optarg, "progress", 0, 86400);
			break;
		case O_LABEL: cfg.label = optarg; break;
		case O_HELP: usage(stdout); exit(EXIT_PASS);
		default: usage(stderr); exit(EXIT_SETUP);
		}
	}
	if (optind != argc || !cfg.url) {
		usage(stderr);
		exit(EXIT_SETUP);
	}
	if (cfg.count == 0 && !cfg.expect_error) {
		fprintf(stderr, "soak: --count 0 needs --expect-error\n");
		exit(EXIT_SETUP);
	}
}

/* The transport as the summary names it. */
static const char *transport(void)
{
	return is_tls() ? "tls" : "tcp";
}

int main(int argc, char **argv)
{
	connect_opts *o;
	pthread_t tid;
	char reason[256] = "";
	bool ready = false;
	int rc, close_rc, conn_err = CONNECT_OK, final = EXIT_PASS;
	size_t unsent = 0;
	int64_t t_close, close_ms, t_data, elapsed_ms;

	parse(argc, argv);
	crc_init();
	t_start = mono_ms();
	if (cfg.deadline_s)
		t_deadline = t_start + cfg.deadline_s * 1000LL;
	if (make_opts(&o))
		return EXIT_SETUP;
	rc = establish(o);
	connect_opts_free(o);
	if (rc)
		return past_deadline() ? EXIT_HANG : EXIT_SETUP;
	{
		char la[128] = "", pa[128] = "";

		connect_conn_local_addr(conn, la, sizeof(la));
		connect_conn_peer_addr(conn, pa, sizeof(pa));
		printf("soak-connected role=%s transport=%s local=%s peer=%s "
		       "at_ms=%" PRId64 "\n", role(), transport(), la, pa,
		       wall_ms());
		fflush(stdout);
	}
	t_data = mono_ms();
	atomic_store(&last_move, t_data);
	if (pthread_create(&tid, NULL, sender_main, NULL) != 0) {
		fprintf(stderr, "soak: pthread_create failed\n");
		return EXIT_SETUP;
	}

	rc = receive(!cfg.expect_error, &ready);
	if (rc < 0) {
		recv_err = rc;
		recv_err_wall = wall_ms();
		conn_err = connect_conn_error(conn, reason, sizeof(reason));
	}
	elapsed_ms = mono_ms() - t_data;
	if (rc != CONNECT_OK || cfg.expect_error)
		atomic_store(&stop, true);
	pthread_join(tid, NULL);

	if (!cfg.expect_error && rc == CONNECT_OK && cfg.server) {
		/* Nothing may follow the end marker but the end of the
		 * stream (the client closes once it has everything). */
		int64_t until = mono_ms() + 60000;

		do {
			connect_datagram *dg = NULL;

			rc = connect_recv_wait(conn, &dg, 250);
			if (rc == CONNECT_OK) {
				on_datagram(dg);
				connect_datagram_free(dg);
			}
		} while ((rc == CONNECT_OK || rc == CONNECT_ETIMEDOUT) &&
			 mono_ms() < until && !past_deadline());
		if (rc == CONNECT_EEOF) {
			rc = CONNECT_OK;
		} else {
			fprintf(stderr, "soak server: after the end marker: "
				"%s instead of the end of the stream\n",
				rc == CONNECT_ETIMEDOUT
					? "nothing for 60 s"
					: connect_err_name(rc));
			if (rc == CONNECT_ETIMEDOUT)
				rc = 1;
			else
				recv_err = rc;
			connect_conn_error(conn, reason, sizeof(reason));
		}
	}

	if (atomic_load(&send_hang) && rc >= 0)
		rc = 1;
	t_close = mono_ms();
	close_rc = connect_close(conn,
				 cfg.expect_error || rc ? 1000 : cfg.linger_ms,
				 &unsent);
	close_ms = mono_ms() - t_close;

	if (cfg.expect_error) {
		bool ok = recv_err && accepted(recv_err) &&
			  (!send_err || accepted(send_err) ||
			   send_err == CONNECT_ECLOSED) &&
			  !n_lost && !n_dup && !n_corrupt && !n_extra &&
			  close_ms < 1000 + 5000;

		if (rc == 1)
			final = EXIT_HANG;
		else if (!ok)
			final = EXIT_DIFF;
		printf("soak-cut: role=%s transport=%s%s%s sent=%" PRIu64
		       " recv=%" PRIu64 " recv_error=%s recv_error_at_ms=%"
		       PRId64 " send_error=%s send_error_at_ms=%" PRId64
		       " conn_error=%s close=%s close_ms=%" PRId64
		       " lost=%" PRIu64 " dup=%" PRIu64 " corrupt=%" PRIu64
		       " reason=\"%s\" result=%s\n",
		       role(), transport(), cfg.label ? " label=" : "",
		       cfg.label ? cfg.label : "",
		       (uint64_t)atomic_load(&sent),
		       (uint64_t)atomic_load(&recvd),
		       recv_err ? connect_err_name(recv_err) : "none",
		       recv_err ? recv_err_wall : 0,
		       send_err ? connect_err_name(send_err) : "none",
		       send_err ? send_err_wall : 0, connect_err_name(conn_err),
		       connect_err_name(close_rc), close_ms, n_lost, n_dup,
		       n_corrupt, reason, final ? "FAIL" : "PASS");
		return final;
	}

	if (rc == 1)
		final = EXIT_HANG;
	else if (rc != CONNECT_OK || send_err || close_rc != CONNECT_OK ||
		 unsent || n_lost || n_dup || n_corrupt || n_extra ||
		 atomic_load(&recvd) != cfg.count ||
		 atomic_load(&sent) != cfg.count)
		final = EXIT_DIFF;
	if (rc < 0)
		fprintf(stderr, "soak %s: receiving failed: %s (%s)\n",
			role(), connect_err_name(rc), reason);
	if (send_err)
		fprintf(stderr, "soak %s: sending failed: %s\n", role(),
			connect_err_name(send_err));
	if (close_rc)
		fprintf(stderr, "soak %s: close: %s, %zu datagram(s) not "
			"written\n", role(), connect_err_name(close_rc),
			unsent);
	{
		double s = elapsed_ms > 0 ? elapsed_ms / 1000.0 : 0.001;
		uint64_t r = atomic_load(&recvd), br = atomic_load(&bytes_recvd);
		uint64_t w = atomic_load(&sent), bw = atomic_load(&bytes_sent);

		printf("soak: role=%s transport=%s%s%s sent=%" PRIu64
		       " recv=%" PRIu64 " bytes_sent=%" PRIu64
		       " bytes_recv=%" PRIu64 " elapsed_s=%.2f"
		       " recv_msgs_per_s=%.0f recv_MBps=%.2f"
		       " send_MBps=%.2f lost=%" PRIu64 " dup=%" PRIu64
		       " corrupt=%" PRIu64 " extra=%" PRIu64
		       " close=%s close_ms=%" PRId64 " result=%s\n",
		       role(), transport(), cfg.label ? " label=" : "",
		       cfg.label ? cfg.label : "", w, r, bw, br, s, r / s,
		       br / s / 1e6, bw / s / 1e6, n_lost, n_dup, n_corrupt,
		       n_extra, connect_err_name(close_rc), close_ms,
		       final ? "FAIL" : "PASS");
	}
	return final;
}
