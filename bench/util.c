/*
 * connect-bench: clocks, memory, the receiver's meter, round-trip samples,
 * plain sockets and the frame checker shared by every system.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

void bench_fail(struct bench_result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	if (!r->err[0])
		snprintf(r->err, sizeof(r->err), "failed");
}

int bench_check(struct bench_result *r, const uint8_t *p, size_t len,
		size_t size, uint64_t expect)
{
	uint64_t seq;

	if (len != size) {
		bench_fail(r, "message %llu: %zu bytes, expected %zu",
			   (unsigned long long)expect, len, size);
		return -1;
	}
	memcpy(&seq, p, 8);
	if (seq != expect) {
		bench_fail(r, "sequence: got %llu, expected %llu",
			   (unsigned long long)seq, (unsigned long long)expect);
		return -1;
	}
	if (size >= 32) {
		memcpy(&seq, p + size - 8, 8);
		if (seq != expect) {
			bench_fail(r, "message %llu: trailing sequence %llu",
				   (unsigned long long)expect,
				   (unsigned long long)seq);
			return -1;
		}
	}
	return 0;
}

/* ---- the receiver's meter ------------------------------------------------ */

void bench_meter_init(struct bench_meter *m, const struct bench_cell *c)
{
	memset(m, 0, sizeof(*m));
	m->warmup_ns = c->warmup_ns;
	m->duration_ns = c->duration_ns;
	m->size = c->size;
	/* Small messages arrive by the million: read the clock every 64th
	 * (a few microseconds).  Large ones: every time. */
	m->every = c->size < 4096 ? 64 : 1;
	m->left = 1;
	m->t_init = bench_now();
}

int bench_meter_idle(struct bench_meter *m, struct bench_result *r)
{
	if (m->phase == 0) {
		if (bench_now() - m->t_init < BENCH_STALL_NS)
			return 0;
		bench_fail(r, "no message arrived in %llu s",
			   BENCH_STALL_NS / 1000000000ull);
		return -1;
	}
	return bench_meter_slow(m) ? 1 : 0;
}

bool bench_meter_slow(struct bench_meter *m)
{
	uint64_t now = bench_now();

	m->left = m->every;
	if (m->phase == 0) {
		m->t_first = now;
		m->phase = 1;
	}
	if (m->phase == 1) {
		if (now - m->t_first < m->warmup_ns)
			return false;
		m->rss_warm_kb = bench_rss_kb();
		m->t0 = bench_now();
		m->phase = 2;
		return false;
	}
	if (m->phase == 2) {
		if (now - m->t0 < m->duration_ns)
			return false;
		m->t1 = now;
		m->phase = 3;
	}
	return true;
}

void bench_meter_result(const struct bench_meter *m, struct bench_result *r)
{
	r->msgs = m->n;
	r->bytes = m->bytes;
	r->secs = m->phase == 3 ? (double)(m->t1 - m->t0) / 1e9 : 0;
	r->rss_warm_kb = m->rss_warm_kb;
}

/* ---- round trips ---------------------------------------------------------- */

void bench_lat_init(struct bench_lat *l, const struct bench_cell *c)
{
	memset(l, 0, sizeof(*l));
	l->warmup_ns = c->warmup_ns;
	l->duration_ns = c->duration_ns;
}

bool bench_lat_add(struct bench_lat *l, uint64_t rtt, uint64_t now)
{
	if (!l->t_start)
		l->t_start = now;
	if (now - l->t_start < l->warmup_ns)
		return false;
	if (!l->t0) {
		l->rss_warm_kb = bench_rss_kb();
		l->t0 = now;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 65536;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return true; /* enough samples, then */
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = rtt;
	l->t_end = now;
	return now - l->t0 >= l->duration_ns;
}

void bench_lat_result(struct bench_lat *l, struct bench_result *r)
{
	r->samples = l->v;
	r->nsamples = l->n;
	r->rss_warm_kb = l->rss_warm_kb;
	r->msgs = l->n;
	r->secs = l->t0 ? (double)(l->t_end - l->t0) / 1e9 : 0;
	l->v = NULL;
	l->n = l->cap = 0;
}

int64_t bench_many_queue_bytes(int conns)
{
	int64_t q = (conns > 1 ? (int64_t)64 << 20 : (int64_t)16 << 20) /
		    (conns > 0 ? conns : 1);

	if (q < (256 << 10))
		q = 256 << 10;
	if (q > (16 << 20))
		q = 16 << 20;
	return q;
}

int bench_queue_msgs(int conns, size_t size)
{
	int64_t h = bench_many_queue_bytes(conns) / (int64_t)size;

	return h < 1 ? 1 : h > 1000 ? 1000 : (int)h;
}

/* ---- threads, files --------------------------------------------------------- */

int bench_thread(void *(*fn)(void *), void *arg, void *tidp)
{
	pthread_attr_t a;
	int rc;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	rc = pthread_create((pthread_t *)tidp, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}

char *bench_read_file(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)len + 1);
		if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[len] = 0;
			if (lenp)
				*lenp = (size_t)len;
		}
	}
	fclose(f);
	return buf;
}

int bench_threads_named(const char *prefix)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[288], name[64];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* a thread that just ended */
		if (fgets(name, sizeof(name), f) &&
		    strncmp(name, prefix, strlen(prefix)) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

int bench_threads_gone(const char *prefix, int ms)
{
	uint64_t end = bench_now() + (uint64_t)ms * 1000000u;
	struct timespec ts = { 0, 5 * 1000000L };
	int n;

	while ((n = bench_threads_named(prefix)) > 0 && bench_now() < end)
		nanosleep(&ts, NULL);
	return n;
}

/* ---- plain sockets ------------------------------------------------------------ */

int bench_tcp_pair(struct bench_result *r, int *client, int *server)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int lfd, cfd = -1, sfd = -1, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		bench_fail(r, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		bench_fail(r, "listen: %s", strerror(errno));
		goto fail;
	}
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		bench_fail(r, "connect: %s", strerror(errno));
		goto fail;
	}
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sfd < 0) {
		bench_fail(r, "accept: %s", strerror(errno));
		goto fail;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(lfd);
	*client = cfd;
	*server = sfd;
	return 0;
fail:
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	return -1;
}

int bench_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bench_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- frames ------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

void bench_frame_header(uint8_t *p, size_t size)
{
	put32(p, (uint32_t)size + 4);
	p[4] = 0;
	p[5] = 1; /* version */
	p[6] = 0;
	p[7] = 1; /* tag */
}

void bench_frames_init(struct bench_frames *f, size_t size)
{
	memset(f, 0, sizeof(*f));
	f->size = size;
	f->flen = 8 + (uint64_t)size;
}

/* Copy the part of [pos, pos+n) that falls in [a, a+len) into dst. */
static void overlap(uint8_t *dst, uint64_t a, size_t len, uint64_t pos,
		    const uint8_t *p, size_t n)
{
	uint64_t lo = pos > a ? pos : a;
	uint64_t hi = pos + n < a + len ? pos + n : a + len;

	if (lo < hi)
		memcpy(dst + (lo - a), p + (lo - pos), hi - lo);
}

long bench_frames_feed(struct bench_frames *f, const uint8_t *p, size_t len,
		       struct bench_meter *m, struct bench_result *r,
		       bool *done)
{
	long frames = 0;

	*done = false;
	while (len) {
		uint64_t want = f->flen - f->pos;
		size_t n = len < want ? len : (size_t)want;

		if (f->pos < 16)
			overlap(f->head, 0, 16, f->pos, p, n);
		if (f->size >= 32 && f->pos + n > f->flen - 8)
			overlap(f->tail, f->flen - 8, 8, f->pos, p, n);
		f->pos += n;
		p += n;
		len -= n;
		if (f->pos < f->flen)
			break;
		f->pos = 0;
		if (get32(f->head) != f->size + 4 || f->head[5] != 1) {
			bench_fail(r, "frame %llu: bad header",
				   (unsigned long long)f->expect);
			return -1;
		}
		{
			uint64_t seq;

			memcpy(&seq, f->head + 8, 8);
			if (seq != f->expect ||
			    (f->size >= 32 && memcmp(f->tail, &seq, 8))) {
				bench_fail(r, "sequence: got %llu, expected %llu",
					   (unsigned long long)seq,
					   (unsigned long long)f->expect);
				return -1;
			}
		}
		f->expect++;
		frames++;
		if (m && bench_meter_tick(m, f->size)) {
			*done = true;
			break;
		}
	}
	return frames;
}
