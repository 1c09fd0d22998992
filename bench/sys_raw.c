/*
 * connect-bench: the limits.  What the same frames cost on plain blocking
 * TCP sockets and on a bare GnuTLS session, with no library in between.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Throughput: the sender keeps a batch of ready frames (headers written
 * once; about 256 KiB, at most 512 frames, at least one), stamps their
 * sequence numbers and writes the batch with one writev() of one iovec per
 * frame; over TLS it hands the same bytes to gnutls_record_send() in
 * slices of 16 KiB, so that every record is full.  The receiver reads
 * 256 KiB at a time (TLS: a record at a time, which is what
 * gnutls_record_recv() returns) and checks every frame in place, copying
 * nothing but the header and sequence numbers.  Round trip: one frame
 * written whole, read back whole by an echo thread that writes it back.
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define READ_BUF (256u * 1024u)
#define BATCH_BYTES (256u * 1024u)
#define BATCH_MAX 512
#define TLS_RECORD 16384u
/* The priority libconnect uses by default (connect_tls_config_new). */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The TLS session's protocol and cipher, once the first one is up. */
static char tls_desc[128];

const char *bench_gnutls_version(void)
{
	static char buf[160];

	snprintf(buf, sizeof(buf), "%s%s%s", gnutls_check_version(NULL),
		 tls_desc[0] ? ", bare session: " : "", tls_desc);
	return buf;
}

/* ---- a pair of endpoints: plain sockets, optionally with TLS on top ---- */

struct raw_end {
	int fd;
	gnutls_session_t s; /* NULL: plain TCP */
	gnutls_certificate_credentials_t cred;
};

struct raw_pair {
	struct raw_end c, srv;
};

static void raw_end_fini(struct raw_end *e)
{
	if (e->s)
		gnutls_deinit(e->s);
	if (e->cred)
		gnutls_certificate_free_credentials(e->cred);
	if (e->fd >= 0)
		close(e->fd);
	e->s = NULL;
	e->cred = NULL;
	e->fd = -1;
}

static int tls_end_init(struct raw_end *e, bool server, const char *certdir,
			char *why, size_t whylen)
{
	char cert[1024], key[1024];
	int rc;

	rc = gnutls_certificate_allocate_credentials(&e->cred);
	if (rc)
		goto fail;
	if (server) {
		snprintf(cert, sizeof(cert), "%s/server.pem", certdir);
		snprintf(key, sizeof(key), "%s/server-key.pem", certdir);
		rc = gnutls_certificate_set_x509_key_file(
			e->cred, cert, key, GNUTLS_X509_FMT_PEM);
	} else {
		snprintf(cert, sizeof(cert), "%s/ca.pem", certdir);
		rc = gnutls_certificate_set_x509_trust_file(
			e->cred, cert, GNUTLS_X509_FMT_PEM);
		if (rc > 0)
			rc = 0;
	}
	if (rc)
		goto fail;
	rc = gnutls_init(&e->s, server ? GNUTLS_SERVER : GNUTLS_CLIENT);
	if (rc)
		goto fail;
	rc = gnutls_priority_set_direct(e->s, TLS_PRIORITY, NULL);
	if (!rc)
		rc = gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE,
					    e->cred);
	if (rc)
		goto fail;
	if (!server) {
		rc = gnutls_server_name_set(e->s, GNUTLS_NAME_DNS, "localhost",
					    9);
		if (rc)
			goto fail;
		gnutls_session_set_verify_cert(e->s, "localhost", 0);
	}
	gnutls_transport_set_int(e->s, e->fd);
	gnutls_handshake_set_timeout(e->s, 10000);
	return 0;
fail:
	snprintf(why, whylen, "GnuTLS setup (%s): %s", certdir,
		 gnutls_strerror(rc));
	return -1;
}

static int tls_handshake(gnutls_session_t s)
{
	int rc;

	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	return rc;
}

struct hs_arg {
	struct raw_end *e;
	int rc;
};

static void *hs_main(void *arg)
{
	struct hs_arg *a = arg;

	a->rc = tls_handshake(a->e->s);
	return NULL;
}

static int raw_pair_open(struct raw_pair *p, bool tls,
			 const struct bench_cell *c, struct bench_result *r)
{
	struct hs_arg a;
	pthread_t tid;
	char why[256];
	int rc;

	memset(p, 0, sizeof(*p));
	p->c.fd = p->srv.fd = -1;
	if (bench_tcp_pair(r, &p->c.fd, &p->srv.fd))
		return -1;
	if (!tls)
		return 0;
	if (tls_end_init(&p->srv, true, c->certdir, why, sizeof(why)) ||
	    tls_end_init(&p->c, false, c->certdir, why, sizeof(why))) {
		bench_fail(r, "%s", why);
		goto fail;
	}
	a.e = &p->srv;
	a.rc = 0;
	if (bench_thread(hs_main, &a, &tid)) {
		bench_fail(r, "pthread_create");
		goto fail;
	}
	rc = tls_handshake(p->c.s);
	if (rc < 0)
		shutdown(p->c.fd, SHUT_RDWR);
	pthread_join(tid, NULL);
	if (rc < 0 || a.rc < 0) {
		bench_fail(r, "TLS handshake: %s",
			   gnutls_strerror(rc < 0 ? rc : a.rc));
		goto fail;
	}
	if (!tls_desc[0]) {
		snprintf(tls_desc, sizeof(tls_desc), "%s %s",
			 gnutls_protocol_get_name(
				 gnutls_protocol_get_version(p->c.s)),
			 gnutls_cipher_get_name(gnutls_cipher_get(p->c.s)));
	}
	return 0;
fail:
	raw_end_fini(&p->c);
	raw_end_fini(&p->srv);
	return -1;
}

static void raw_pair_close(struct raw_pair *p)
{
	raw_end_fini(&p->c);
	raw_end_fini(&p->srv);
}

/* Send all of buf: plain send(), or full TLS records.  0 or -1. */
static int end_send(struct raw_end *e, const uint8_t *buf, size_t len)
{
	if (!e->s)
		return bench_write_full(e->fd, buf, len);
	while (len) {
		size_t n = len < TLS_RECORD ? len : TLS_RECORD;
		ssize_t k = gnutls_record_send(e->s, buf, n);

		if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
			continue;
		if (k <= 0)
			return -1;
		buf += k;
		len -= (size_t)k;
	}
	return 0;
}

/* One read: > 0 bytes, 0 for a timeout (SO_RCVTIMEO), -1 for the end or an
 * error. */
static ssize_t end_recv(struct raw_end *e, uint8_t *buf, size_t len)
{
	ssize_t n;

	if (!e->s) {
		n = recv(e->fd, buf, len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return n > 0 ? n : -1;
	}
	n = gnutls_record_recv(e->s, buf, len);
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
		return 0;
	return n > 0 ? n : -1;
}

static int end_recv_full(struct raw_end *e, uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = end_recv(e, buf, len);

		if (n <= 0) /* the end, an error or a timeout */
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* ---- throughput ---------------------------------------------------------- */

struct raw_sender {
	struct raw_end *e;
	size_t size;
	atomic_bool *stop;
	atomic_bool failed;
};

static void *raw_send_main(void *arg)
{
	struct raw_sender *s = arg;
	size_t flen = 8 + s->size;
	size_t nf = BATCH_BYTES / flen, i;
	uint8_t *buf;
	struct iovec *iov;
	uint64_t seq = 0;

	if (nf < 1)
		nf = 1;
	if (nf > BATCH_MAX)
		nf = BATCH_MAX;
	buf = calloc(nf, flen);
	iov = calloc(nf, sizeof(*iov));
	if (!buf || !iov) {
		atomic_store(&s->failed, true);
		goto out;
	}
	for (i = 0; i < nf; i++)
		bench_frame_header(buf + i * flen, s->size);
	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		for (i = 0; i < nf; i++) {
			bench_stamp(buf + i * flen + 8, s->size, seq++);
			iov[i].iov_base = buf + i * flen;
			iov[i].iov_len = flen;
		}
		if (s->e->s) {
			if (end_send(s->e, buf, nf * flen))
				break;
			continue;
		}
		/* writev() the batch, across short writes. */
		struct iovec *v = iov;
		size_t cnt = nf;

		while (cnt) {
			ssize_t n = writev(s->e->fd, v, (int)cnt);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto out;
			while (cnt && (size_t)n >= v->iov_len) {
				n -= (ssize_t)v->iov_len;
				v++;
				cnt--;
			}
			if (cnt) {
				v->iov_base = (uint8_t *)v->iov_base + n;
				v->iov_len -= (size_t)n;
			}
		}
	}
out:
	if (!atomic_load(s->stop))
		atomic_store(&s->failed, true);
	free(buf);
	free(iov);
	return NULL;
}

static int raw_tput(const struct bench_cell *c, struct bench_result *r,
		    bool tls)
{
	struct raw_pair p;
	struct raw_sender s;
	struct bench_frames f;
	struct bench_meter m;
	atomic_bool stop = false;
	uint8_t *buf = malloc(READ_BUF);
	pthread_t tid;

	if (!buf) {
		bench_fail(r, "out of memory");
		return -1;
	}
	if (raw_pair_open(&p, tls, c, r)) {
		free(buf);
		return -1;
	}
	set_rcvtimeo(p.srv.fd, 100);
	s.e = &p.c;
	s.size = c->size;
	s.stop = &stop;
	atomic_init(&s.failed, false);
	if (bench_thread(raw_send_main, &s, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	bench_frames_init(&f, c->size);
	bench_meter_init(&m, c);
	for (;;) {
		bool done;
		ssize_t n = end_recv(&p.srv, buf, READ_BUF);

		if (n == 0) {
			if (atomic_load(&s.failed) || bench_meter_idle(&m, r))
				break;
			continue;
		}
		if (n < 0) {
			bench_fail(r, "read: the stream ended");
			break;
		}
		if (bench_frames_feed(&f, buf, (size_t)n, &m, r, &done) < 0 ||
		    done)
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	shutdown(p.c.fd, SHUT_RDWR);
	shutdown(p.srv.fd, SHUT_RDWR);
	pthread_join(tid, NULL);
	if (atomic_load(&s.failed))
		bench_fail(r, "the sender failed");
	bench_meter_result(&m, r);
out:
	raw_pair_close(&p);
	free(buf);
	return r->err[0] ? -1 : 0;
}

/* ---- round trip ----------------------------------------------------------- */

struct raw_echo {
	struct raw_end *e;
	size_t flen;
};

static void *raw_echo_main(void *arg)
{
	struct raw_echo *e = arg;
	uint8_t *buf = malloc(e->flen);

	while (buf && end_recv_full(e->e, buf, e->flen) == 0)
		if (end_send(e->e, buf, e->flen))
			break;
	free(buf);
	return NULL;
}

static int raw_lat(const struct bench_cell *c, struct bench_result *r,
		   bool tls)
{
	struct raw_pair p;
	struct raw_echo e;
	struct bench_lat l;
	size_t flen = 8 + c->size;
	uint8_t *out = malloc(flen), *in = malloc(flen);
	pthread_t tid;
	uint64_t seq;

	bench_lat_init(&l, c);
	if (!out || !in) {
		bench_fail(r, "out of memory");
		goto out0;
	}
	if (raw_pair_open(&p, tls, c, r))
		goto out0;
	set_rcvtimeo(p.c.fd, 10000);
	e.e = &p.srv;
	e.flen = flen;
	if (bench_thread(raw_echo_main, &e, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	bench_frame_header(out, c->size);
	for (seq = 0;; seq++) {
		uint64_t t0, t1;

		bench_stamp(out + 8, c->size, seq);
		t0 = bench_now();
		if (end_send(&p.c, out, flen)) {
			bench_fail(r, "write failed");
			break;
		}
		if (end_recv_full(&p.c, in, flen)) {
			bench_fail(r, "read failed (or timed out)");
			break;
		}
		t1 = bench_now();
		if (memcmp(in, out, 8) ||
		    bench_check(r, in + 8, c->size, c->size, seq) ||
		    bench_lat_add(&l, t1 - t0, t1))
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	shutdown(p.c.fd, SHUT_RDWR);
	shutdown(p.srv.fd, SHUT_RDWR);
	pthread_join(tid, NULL);
	bench_lat_result(&l, r);
out:
	raw_pair_close(&p);
out0:
	free(l.v);
	free(out);
	free(in);
	return r->err[0] ? -1 : 0;
}

static int tcp_tput(const struct bench_cell *c, struct bench_result *r)
{
	return raw_tput(c, r, false);
}

static int tls_tput(const struct bench_cell *c, struct bench_result *r)
{
	return raw_tput(c, r, true);
}

static int tcp_lat(const struct bench_cell *c, struct bench_result *r)
{
	return raw_lat(c, r, false);
}

static int tls_lat(const struct bench_cell *c, struct bench_result *r)
{
	return raw_lat(c, r, true);
}

static const struct bench_system raw_systems[] = {
	{ "limit-tcp", "plain TCP (limit)", BS_LIMIT_TCP,
	  { tcp_tput, tcp_lat, NULL }, NULL, 0 },
	{ "limit-tls", "bare GnuTLS (limit)", BS_LIMIT_TLS,
	  { tls_tput, tls_lat, NULL }, NULL, 0 },
};

const struct bench_system *bench_limit_systems(size_t *n)
{
	*n = sizeof(raw_systems) / sizeof(raw_systems[0]);
	return raw_systems;
}
