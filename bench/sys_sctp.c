/*
 * connect-bench: the SCTP limit.  What the same frames cost on usrsctp
 * itself, with no library in between: a plain program on usrsctp's own
 * API, the ceiling of the libconnect SCTP and DTLS-SCTP rows.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A process of its own.  usrsctp is one stack per process: usrsctp_init()
 * once, usrsctp_finish() only when no socket is left, and a second
 * usrsctp_init() while the stack runs starts it over under its own
 * threads.  libconnect's SCTP cells start and stop the stack of this
 * process (the library stops it when its last SCTP user is gone).  So
 * each limit cell forks a child that starts a stack of its own on a free
 * UDP port, measures, writes its result into a pipe and leaves with
 * _exit(), without stopping the stack: whatever state one cell leaves
 * ends with its process, and neither side's stack can see the other's.
 * Setting up (fork, stack, association) is not timed, as for every cell.
 *
 * The stack and sockets are set up as libconnect sets up its own
 * (src/transport_sctp.c), so that the rows differ by what the library
 * does and not by tuning: UDP encapsulation (RFC 6951) on 127.0.0.1,
 * checksums computed and checked on loopback too, the stack's UDP
 * sockets given 8 MiB of buffer, a 32 KiB path MTU towards the loopback
 * peer, 128 KiB socket buffers, SCTP_NODELAY, one stream each way, the
 * same retransmission timeouts.  The sockets are one-to-one
 * (SOCK_STREAM) and non-blocking; usrsctp sockets are no file descriptors
 * and have no receive timeout, so a thread with nothing to do sleeps on a
 * condition variable that the socket's upcall signals.
 *
 * The wire is libconnect's: the frames (bench_frame_header) as one byte
 * stream, on stream 0, cut into SCTP messages of 64 KiB.  Throughput: the
 * sender keeps a batch of ready frames (about 256 KiB, at least one
 * message), stamps their sequence numbers and hands the stream to
 * usrsctp_sendv() one full 64 KiB message at a time (the message that
 * spans the end of the batch is copied together, the batch stamped anew
 * in between); the receiver takes a message at a time with
 * usrsctp_recvv() and checks every frame in place, copying nothing but
 * headers and sequence numbers.  Round trip: one frame, written in
 * messages of at most 64 KiB, read back whole by an echo thread that
 * writes it back the same way.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <usrsctp.h>

#define SCTP_MSG (64u * 1024u)       /* libconnect's SCTP message size */
#define SOCK_BUF (128u * 1024u)      /* SO_SNDBUF, SO_RCVBUF */
#define LOOPBACK_MTU 32768u
#define UDP_BUF (8 * 1024 * 1024)    /* the stack's UDP sockets */
#define BATCH_BYTES (256u * 1024u)
#define SLICE_MS 50                  /* a waiting thread looks at stop */
#define RECV_SLICE_MS 100
#define LAT_TIMEOUT_MS 10000

/* ---- waiting for a socket ------------------------------------------------ */

struct waker {
	pthread_mutex_t m;
	pthread_cond_t cv;
	atomic_uint seq;     /* moved by every event of the socket */
	atomic_int waiters;
};

static void waker_init(struct waker *w)
{
	pthread_condattr_t a;

	pthread_mutex_init(&w->m, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &a);
	pthread_condattr_destroy(&a);
	atomic_init(&w->seq, 0);
	atomic_init(&w->waiters, 0);
}

/* On usrsctp's threads, for every event of the socket (data, room,
 * error).  The count moves before the sleepers are looked for, and a
 * sleeper counts itself before it looks at the count: no wake-up is
 * lost. */
static void upcall(struct socket *so, void *arg, int flags)
{
	struct waker *w = arg;

	(void)so;
	(void)flags;
	atomic_fetch_add(&w->seq, 1);
	if (atomic_load(&w->waiters) > 0) {
		pthread_mutex_lock(&w->m);
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->m);
	}
}

/* Sleep until the count moves from seq0 (read before the attempt that
 * found nothing to do), at most ms. */
static void waker_wait(struct waker *w, unsigned seq0, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	atomic_fetch_add(&w->waiters, 1);
	pthread_mutex_lock(&w->m);
	while (atomic_load(&w->seq) == seq0)
		if (pthread_cond_timedwait(&w->cv, &w->m, &ts) != 0)
			break;
	pthread_mutex_unlock(&w->m);
	atomic_fetch_sub(&w->waiters, 1);
}

/* One end of the association. */
struct end {
	struct socket *so;
	struct waker w;
};

/*
 * The child's two ends, client and server.  Not on a stack: usrsctp's
 * threads call the upcalls with their wakers until the process exits,
 * after the cell's function has returned.
 */
static struct end ends[2];

/* ---- the stack ------------------------------------------------------------ */

/* Bind a UDP socket of family af to *port on every address (0: any port,
 * written back), as usrsctp will; 0 or an errno value. */
static int udp_probe(int af, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, e = 0, one = 1;

	fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	memset(&ss, 0, sizeof(ss));
	if (af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(*port);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(*port);
		len = sizeof(*in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		e = errno;
	} else if (*port == 0) {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			e = errno;
		else
			*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	close(fd);
	return e;
}

/* Give the stack's UDP sockets (descriptors of this process bound to
 * `port`) room for bursts, as libconnect does. */
static void udp_buffers(uint16_t port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int bytes = UDP_BUF;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss), tlen;
		int fd, type = 0;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		fd = atoi(de->d_name);
		tlen = sizeof(type);
		if (fd == dirfd(d) ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
		    type != SOCK_DGRAM ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		/* The port is at the same place in both families. */
		if (ntohs(((struct sockaddr_in *)&ss)->sin_port) != port)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes,
				   sizeof(bytes));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes,
				   sizeof(bytes));
	}
	closedir(d);
}

/* Start usrsctp on a free UDP port (into *port): 0 or -1. */
static int stack_start(struct bench_result *r, uint16_t *port)
{
	int e = 0;

	for (int tries = 0; tries < 16; tries++) {
		uint16_t p = 0;

		e = udp_probe(AF_INET, &p);
		if (e == 0) {
			e = udp_probe(AF_INET6, &p);
			if (e == EAFNOSUPPORT || e == EADDRNOTAVAIL)
				e = 0;
		}
		if (e == 0) {
			*port = p;
			break;
		}
	}
	if (e) {
		bench_fail(r, "no free UDP port: %s", strerror(e));
		return -1;
	}
	usrsctp_init(*port, NULL, NULL);
	/* usrsctp binds the port without saying whether it could: if we
	 * still can, somebody took it in between (and nothing would
	 * arrive). */
	{
		uint16_t again = *port;

		if (udp_probe(AF_INET, &again) != EADDRINUSE) {
			bench_fail(r, "usrsctp could not bind UDP port %u",
				   (unsigned)*port);
			return -1;
		}
	}
	usrsctp_sysctl_set_sctp_no_csum_on_loopback(0);
	udp_buffers(*port);
	return 0;
}

/* ---- sockets ---------------------------------------------------------------- */

static void sock_opts(struct socket *so)
{
	struct sctp_initmsg im;
	struct sctp_rtoinfo rto;
	int on = 1, buf = (int)SOCK_BUF;

	usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof(on));
	usrsctp_setsockopt(so, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	usrsctp_setsockopt(so, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	memset(&im, 0, sizeof(im));
	im.sinit_num_ostreams = 1;
	im.sinit_max_instreams = 1;
	usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_INITMSG, &im, sizeof(im));
	memset(&rto, 0, sizeof(rto));
	rto.srto_initial = 500;
	rto.srto_min = 100;
	rto.srto_max = 60000;
	usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_RTOINFO, &rto, sizeof(rto));
}

/* usrsctp does not learn the loopback's MTU (it would cut everything into
 * ~1,400-byte packets). */
static void loopback_mtu(struct socket *so)
{
	struct sctp_paddrparams pp;
	socklen_t len = sizeof(pp);

	memset(&pp, 0, sizeof(pp));
	if (usrsctp_getsockopt(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp,
			       &len) != 0)
		return;
	memset(&pp.spp_address, 0, sizeof(pp.spp_address));
	pp.spp_pathmtu = LOOPBACK_MTU;
	pp.spp_flags = (pp.spp_flags & ~(uint32_t)SPP_PMTUD_ENABLE) |
		       SPP_PMTUD_DISABLE;
	usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp,
			   sizeof(pp));
}

static struct socket *sock_new(void)
{
	struct socket *so = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP,
					   NULL, NULL, 0, NULL);

	if (so)
		sock_opts(so);
	return so;
}

/*
 * An association over 127.0.0.1: a listener on an SCTP port of the
 * stack's choosing, a client that sends to the stack's own UDP port.
 * Connect and accept block (the child's alarm bounds them); the ends are
 * then non-blocking, with upcalls.  The child never closes a socket: its
 * exit ends everything.
 */
static int pair_open(struct end *cl, struct end *sv, uint16_t udp,
		     struct bench_result *r)
{
	struct sockaddr_in sa;
	struct sockaddr *addrs = NULL;
	struct sctp_udpencaps ue;
	struct socket *l;
	int n;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = sock_new();
	if (!l || usrsctp_bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    usrsctp_listen(l, 1) < 0) {
		bench_fail(r, "SCTP listen: %s", strerror(errno));
		return -1;
	}
	n = usrsctp_getladdrs(l, 0, &addrs);
	if (n <= 0 || !addrs || addrs->sa_family != AF_INET) {
		bench_fail(r, "SCTP listener: no address");
		return -1;
	}
	sa.sin_port = ((struct sockaddr_in *)(void *)addrs)->sin_port;
	usrsctp_freeladdrs(addrs);

	cl->so = sock_new();
	if (!cl->so) {
		bench_fail(r, "SCTP socket: %s", strerror(errno));
		return -1;
	}
	loopback_mtu(cl->so);
	memset(&ue, 0, sizeof(ue));
	ue.sue_port = htons(udp);
	usrsctp_setsockopt(cl->so, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT,
			   &ue, sizeof(ue));
	{
		/* One local address, not every address of the host. */
		struct sockaddr_in la = sa;

		la.sin_port = 0;
		if (usrsctp_bind(cl->so, (struct sockaddr *)&la,
				 sizeof(la)) < 0) {
			bench_fail(r, "SCTP bind: %s", strerror(errno));
			return -1;
		}
	}
	if (usrsctp_connect(cl->so, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		bench_fail(r, "SCTP connect: %s", strerror(errno));
		return -1;
	}
	sv->so = usrsctp_accept(l, NULL, NULL);
	if (!sv->so) {
		bench_fail(r, "SCTP accept: %s", strerror(errno));
		return -1;
	}
	sock_opts(sv->so);
	loopback_mtu(sv->so);
	waker_init(&cl->w);
	waker_init(&sv->w);
	usrsctp_set_non_blocking(cl->so, 1);
	usrsctp_set_non_blocking(sv->so, 1);
	usrsctp_set_upcall(cl->so, upcall, &cl->w);
	usrsctp_set_upcall(sv->so, upcall, &sv->w);
	return 0;
}

/*
 * Send one message whole (usrsctp takes a message whole or not at all):
 * 0, 1 when *stop was set while waiting for room, or -1 (errno in *err).
 */
static int send_msg(struct end *e, const void *p, size_t len,
		    atomic_bool *stop, int *err)
{
	struct sctp_sndinfo si;

	memset(&si, 0, sizeof(si));
	for (;;) {
		unsigned seq0 = atomic_load(&e->w.seq);
		ssize_t n = usrsctp_sendv(e->so, p, len, NULL, 0, &si,
					  sizeof(si), SCTP_SENDV_SNDINFO, 0);

		if (n == (ssize_t)len)
			return 0;
		if (n >= 0) {
			*err = EMSGSIZE; /* part of a message: never */
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = errno;
			return -1;
		}
		if (stop && atomic_load(stop))
			return 1;
		waker_wait(&e->w, seq0, SLICE_MS);
	}
}

/* Send len bytes of a frame stream in messages of at most SCTP_MSG. */
static int send_all(struct end *e, const uint8_t *p, size_t len,
		    atomic_bool *stop, int *err)
{
	while (len) {
		size_t n = len < SCTP_MSG ? len : SCTP_MSG;
		int rc = send_msg(e, p, n, stop, err);

		if (rc)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * One read (a message, or part of one): > 0 bytes; 0 when nothing came
 * within ms; -1 at the end of the association (*err 0) or on an error.
 */
static ssize_t recv_some(struct end *e, void *buf, size_t len, int ms,
			 int *err)
{
	uint64_t deadline = bench_now() + (uint64_t)ms * 1000000u;

	for (;;) {
		struct sctp_rcvinfo info;
		socklen_t infolen = sizeof(info), fromlen = 0;
		unsigned infotype = 0, seq0 = atomic_load(&e->w.seq);
		int flags = 0;
		ssize_t n = usrsctp_recvv(e->so, buf, len, NULL, &fromlen,
					  &info, &infolen, &infotype, &flags);
		uint64_t now;

		if (n > 0 && (flags & MSG_NOTIFICATION))
			continue;
		if (n > 0)
			return n;
		if (n == 0) {
			*err = 0;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = errno;
			return -1;
		}
		now = bench_now();
		if (now >= deadline)
			return 0;
		waker_wait(&e->w, seq0, (int)((deadline - now) / 1000000u) + 1);
	}
}

/* Read exactly len bytes: 0, 1 when *stop was set, -1 on the end, an
 * error (*err) or after timeout_ms without a byte (*err ETIMEDOUT). */
static int recv_full(struct end *e, uint8_t *p, size_t len, int timeout_ms,
		     atomic_bool *stop, int *err)
{
	uint64_t idle = bench_now();

	while (len) {
		ssize_t n = recv_some(e, p, len, SLICE_MS, err);

		if (n < 0)
			return -1;
		if (n == 0) {
			if (stop && atomic_load(stop))
				return 1;
			if (bench_now() - idle >
			    (uint64_t)timeout_ms * 1000000u) {
				*err = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		idle = bench_now();
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *err_text(int e)
{
	return e ? strerror(e) : "the association ended";
}

/* ---- throughput ---------------------------------------------------------- */

struct sender {
	struct end *e;
	size_t size;
	atomic_bool *stop;
	atomic_bool failed;
	char why[128];
};

static void stamp_batch(uint8_t *buf, size_t nf, size_t size, uint64_t *seq)
{
	for (size_t i = 0; i < nf; i++)
		bench_stamp(buf + i * (8 + size) + 8, size, (*seq)++);
}

static void *send_main(void *arg)
{
	struct sender *s = arg;
	size_t flen = 8 + s->size, nf, total, off = 0;
	uint8_t *buf = NULL, *stage = malloc(SCTP_MSG);
	uint64_t seq = 0;
	int err = 0;

	nf = BATCH_BYTES / flen;
	if (nf * flen < SCTP_MSG)
		nf = (SCTP_MSG + flen - 1) / flen;
	total = nf * flen;
	buf = calloc(nf, flen);
	if (!buf || !stage) {
		snprintf(s->why, sizeof(s->why), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nf; i++)
		bench_frame_header(buf + i * flen, s->size);
	stamp_batch(buf, nf, s->size, &seq);
	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		size_t k = total - off;
		const uint8_t *p = buf + off;
		int rc;

		if (k < SCTP_MSG) {
			/* The end of the batch, then the start of the next
			 * one, stamped anew. */
			memcpy(stage, buf + off, k);
			stamp_batch(buf, nf, s->size, &seq);
			memcpy(stage + k, buf, SCTP_MSG - k);
			off = SCTP_MSG - k;
			p = stage;
		} else {
			off += SCTP_MSG;
		}
		rc = send_msg(s->e, p, SCTP_MSG, s->stop, &err);
		if (rc > 0)
			break;
		if (rc < 0) {
			snprintf(s->why, sizeof(s->why), "usrsctp_sendv: %s",
				 err_text(err));
			break;
		}
		if (off == total) {
			off = 0;
			stamp_batch(buf, nf, s->size, &seq);
		}
	}
out:
	if (s->why[0])
		atomic_store(&s->failed, true);
	free(buf);
	free(stage);
	return NULL;
}

static int sctp_tput(const struct bench_cell *c, struct bench_result *r,
		     uint16_t udp)
{
	struct end *cl = &ends[0], *sv = &ends[1];
	struct sender s;
	struct bench_frames f;
	struct bench_meter m;
	atomic_bool stop = false;
	uint8_t *buf = malloc(SCTP_MSG);
	pthread_t tid;
	int err = 0;

	if (!buf) {
		bench_fail(r, "out of memory");
		return -1;
	}
	if (pair_open(cl, sv, udp, r))
		goto out;
	memset(&s, 0, sizeof(s));
	s.e = cl;
	s.size = c->size;
	s.stop = &stop;
	atomic_init(&s.failed, false);
	if (bench_thread(send_main, &s, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	bench_frames_init(&f, c->size);
	bench_meter_init(&m, c);
	for (;;) {
		bool done;
		ssize_t n = recv_some(sv, buf, SCTP_MSG, RECV_SLICE_MS, &err);

		if (n == 0) {
			if (atomic_load(&s.failed) || bench_meter_idle(&m, r))
				break;
			continue;
		}
		if (n < 0) {
			bench_fail(r, "usrsctp_recvv: %s", err_text(err));
			break;
		}
		if (bench_frames_feed(&f, buf, (size_t)n, &m, r, &done) < 0 ||
		    done)
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	if (atomic_load(&s.failed))
		bench_fail(r, "sender: %s", s.why);
	bench_meter_result(&m, r);
out:
	free(buf);
	return r->err[0] ? -1 : 0;
}

/* ---- round trip ----------------------------------------------------------- */

struct echo {
	struct end *e;
	size_t flen;
	atomic_bool *stop;
	char why[128];
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	uint8_t *buf = malloc(e->flen);
	int err = 0, rc = 0;

	if (!buf) {
		snprintf(e->why, sizeof(e->why), "out of memory");
		return NULL;
	}
	while (rc == 0) {
		rc = recv_full(e->e, buf, e->flen, INT32_MAX, e->stop, &err);
		if (rc == 0)
			rc = send_all(e->e, buf, e->flen, e->stop, &err);
	}
	if (rc < 0 && !atomic_load(e->stop))
		snprintf(e->why, sizeof(e->why), "%s", err_text(err));
	free(buf);
	return NULL;
}

static int sctp_lat(const struct bench_cell *c, struct bench_result *r,
		    uint16_t udp)
{
	struct end *cl = &ends[0], *sv = &ends[1];
	struct echo e;
	struct bench_lat l;
	size_t flen = 8 + c->size;
	uint8_t *out = malloc(flen), *in = malloc(flen);
	atomic_bool stop = false;
	pthread_t tid;
	int err = 0;

	bench_lat_init(&l, c);
	if (!out || !in) {
		bench_fail(r, "out of memory");
		goto out;
	}
	if (pair_open(cl, sv, udp, r))
		goto out;
	memset(&e, 0, sizeof(e));
	e.e = sv;
	e.flen = flen;
	e.stop = &stop;
	if (bench_thread(echo_main, &e, &tid)) {
		bench_fail(r, "pthread_create");
		goto out;
	}
	bench_frame_header(out, c->size);
	for (uint64_t seq = 0;; seq++) {
		uint64_t t0, t1;

		bench_stamp(out + 8, c->size, seq);
		t0 = bench_now();
		if (send_all(cl, out, flen, NULL, &err)) {
			bench_fail(r, "usrsctp_sendv: %s", err_text(err));
			break;
		}
		if (recv_full(cl, in, flen, LAT_TIMEOUT_MS, NULL, &err)) {
			bench_fail(r, "usrsctp_recvv: %s", err_text(err));
			break;
		}
		t1 = bench_now();
		if (memcmp(in, out, 8)) {
			bench_fail(r, "round trip %llu: bad frame header",
				   (unsigned long long)seq);
			break;
		}
		if (bench_check(r, in + 8, c->size, c->size, seq) ||
		    bench_lat_add(&l, t1 - t0, t1))
			break;
	}
	r->rss_window_kb = bench_rss_kb();
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	if (e.why[0])
		bench_fail(r, "echo thread: %s", e.why);
	bench_lat_result(&l, r);
out:
	free(l.v);
	free(out);
	free(in);
	return r->err[0] ? -1 : 0;
}

/* ---- the child process ------------------------------------------------------ */

typedef int (*sctp_fn)(const struct bench_cell *, struct bench_result *,
		       uint16_t udp);

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to len bytes: how many came before the end. */
static size_t read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static _Noreturn void child_main(const struct bench_cell *c, sctp_fn fn,
				 int fd, pid_t parent)
{
	struct bench_result cr;
	uint16_t udp = 0;
	uint64_t secs = (c->duration_ns + c->warmup_ns + BENCH_STALL_NS) /
			1000000000u + 30;

	/* Never outlive the parent, nor hang: the parent's watchdog gives a
	 * cell a minute past its stall limit, the child less. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	signal(SIGALRM, SIG_DFL);
	alarm((unsigned)secs);
	memset(&cr, 0, sizeof(cr));
	cr.rss_window_kb = -1;
	if (stack_start(&cr, &udp) == 0)
		fn(c, &cr, udp);
	if (write_all(fd, &cr, sizeof(cr)) == 0 && cr.nsamples)
		write_all(fd, cr.samples, cr.nsamples * sizeof(uint64_t));
	/* No usrsctp_finish(), no stdio flush: the process ends here, and
	 * its stack with it. */
	_exit(0);
}

static int sctp_forked(const struct bench_cell *c, struct bench_result *r,
		       sctp_fn fn)
{
	struct bench_result cr;
	pid_t pid, parent = getpid();
	int fds[2], st = 0;
	size_t got;

	/* A stack of libconnect's still running here would be copied,
	 * half alive, into the child. */
	if (bench_threads_gone(BENCH_SCTP_THREADS, 1000) != 0) {
		bench_fail(r, "an SCTP stack runs in this process (a libconnect "
			   "cell did not stop it): no child forked");
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		bench_fail(r, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		bench_fail(r, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(c, fn, fds[1], parent);
	}
	close(fds[1]);
	got = read_all(fds[0], &cr, sizeof(cr));
	if (got == sizeof(cr)) {
		cr.samples = NULL;
		if (cr.nsamples) {
			size_t bytes = cr.nsamples * sizeof(uint64_t);

			cr.samples = malloc(bytes);
			if (!cr.samples ||
			    read_all(fds[0], cr.samples, bytes) != bytes) {
				free(cr.samples);
				cr.samples = NULL;
				cr.nsamples = 0;
				got = 0;
			}
		}
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof(cr)) {
		if (WIFSIGNALED(st))
			bench_fail(r, "the limit's process died (signal %d%s)",
				   WTERMSIG(st),
				   WTERMSIG(st) == SIGALRM ? ": it hung" : "");
		else
			bench_fail(r, "the limit's process ended without a "
				   "result (exit %d)", WEXITSTATUS(st));
		return -1;
	}
	r->msgs = cr.msgs;
	r->bytes = cr.bytes;
	r->secs = cr.secs;
	r->samples = cr.samples;
	r->nsamples = cr.nsamples;
	/* The child's own memory (the parent measures the rest). */
	r->rss_window_kb = cr.rss_window_kb;
	if (cr.err[0])
		bench_fail(r, "%s", cr.err);
	return r->err[0] ? -1 : 0;
}

static int limit_tput(const struct bench_cell *c, struct bench_result *r)
{
	return sctp_forked(c, r, sctp_tput);
}

static int limit_lat(const struct bench_cell *c, struct bench_result *r)
{
	return sctp_forked(c, r, sctp_lat);
}

static const struct bench_system sctp_systems[] = {
	{ "limit-sctp", "plain usrsctp (limit)", BS_LIMIT_SCTP,
	  { limit_tput, limit_lat, NULL },
	  "a process of its own per cell; cells of 0.3 x the duration", 0.3 },
};

const struct bench_system *bench_sctp_systems(size_t *n)
{
	*n = sizeof(sctp_systems) / sizeof(sctp_systems[0]);
	return sctp_systems;
}
