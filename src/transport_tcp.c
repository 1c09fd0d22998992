/*
 * The TCP transport: dialing, listening, and the stream over a connected
 * socket (the socket work itself is in sock.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "sock.h"
#include "alloc.h"

#include <errno.h>
#include <netinet/in.h>
/* linux/tcp.h: glibc's struct tcp_info lacks tcpi_bytes_received. */
#include <linux/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct tcp_transport {
	struct cn_transport base;
	int fd;
	uint64_t rbytes;   /* bytes recv returned (the reading thread's) */
	_Atomic int in_send; /* the writer is inside sendmsg */
	_Atomic int tx_err;  /* why the writer's send failed, or 0 */
	_Atomic int clean; /* shutdown completed: FIN sent and acknowledged */
	_Atomic int shut;  /* our FIN was queued */
	_Atomic int abort_pending; /* unacknowledged bytes when cut */
};

static struct tcp_transport *tcp_of(struct cn_transport *t)
{
	return (struct tcp_transport *)t;
}

/*
 * recv() returned 0: the peer's FIN, or a reset whose error another thread
 * took first (a writer's send gets ECONNRESET, and the socket then reads
 * as ended).  The kernel counts a FIN as one byte received past the data
 * (its sequence number): when it counts no more than we read, no FIN came,
 * and the stream was reset.  (A reset after a FIN, for our unread output,
 * leaves the reading direction a clean end.)
 */
static ssize_t tcp_eof(struct tcp_transport *tt)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int err = 0, spins = 0, quick;

	if (atomic_load(&tt->base.aborted))
		return CONNECT_ECLOSED;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(tt->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_bytes_received) +
			   sizeof(ti.tcpi_bytes_received) &&
	    ti.tcpi_bytes_received <= tt->rbytes) {
		/* Not a FIN: the connection failed.  Why: the socket's error,
		 * or, when the writer took it, the writer's (a reset, or the
		 * kernel giving up on the peer); a writer inside sendmsg is
		 * a few instructions from saying. */
		len = sizeof(err);
		getsockopt(tt->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return cn_sock_fail(&tt->base, "recv from", err);
		while (!atomic_load(&tt->tx_err) &&
		       atomic_load(&tt->in_send) && spins++ < 10000)
			sched_yield();
		err = atomic_load(&tt->tx_err);
		if (err && err != CONNECT_ECLOSED)
			return err;
		cn_transport_set_error(&tt->base, CONNECT_ECONNRESET,
				       "recv from %s: the peer reset the "
				       "connection", tt->base.peer);
		return CONNECT_ECONNRESET;
	}
	/* The peer's FIN: acknowledge it (and whatever data the kernel
	 * still holds an acknowledgement for) now, not after the delayed-ACK
	 * timer, so that the peer, waiting in its close for everything to
	 * be acknowledged, is done at once. */
	quick = 1;
	setsockopt(tt->fd, IPPROTO_TCP, TCP_QUICKACK, &quick, sizeof(quick));
	return 0;
}

static ssize_t tcp_recv(struct cn_transport *t, void *buf, size_t len,
			int flags)
{
	struct tcp_transport *tt = tcp_of(t);
	ssize_t n = cn_sock_recv(tt->fd, buf, len, flags, t);

	if (n > 0)
		tt->rbytes += (uint64_t)n;
	return n == 0 ? tcp_eof(tt) : n;
}

static ssize_t tcp_sendv(struct cn_transport *t, const struct iovec *iov,
			 int iovcnt, int flags)
{
	struct tcp_transport *tt = tcp_of(t);
	ssize_t n;

	atomic_store(&tt->in_send, 1);
	n = cn_sock_sendv(tt->fd, iov, iovcnt, flags, t);
	if (n < 0 && n != CONNECT_EAGAIN)
		atomic_store(&tt->tx_err, (int)n);
	atomic_store(&tt->in_send, 0);
	return n;
}

static int tcp_wait(struct cn_transport *t, int events, int64_t deadline)
{
	return cn_sock_wait(tcp_of(t)->fd, events, deadline, t);
}

static int tcp_shutdown(struct cn_transport *t, size_t grace)
{
	struct tcp_transport *tt = tcp_of(t);
	char buf[128];
	int rc;

	atomic_store(&tt->shut, 1);
	/* ENOTCONN: the peer reset the connection already; whether that
	 * lost anything, the wait below tells. */
	if (shutdown(tt->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		rc = cn_err_from_errno(errno);
		cn_transport_set_error(t, rc, "shutdown of %s: %s", t->peer,
				       strerror_r(errno, buf, sizeof(buf)));
		return rc;
	}
	rc = cn_sock_wait_acked(tt->fd, t, grace);
	if (rc == CONNECT_OK)
		atomic_store(&tt->clean, 1);
	return rc;
}

/* Bytes sent and not acknowledged (our FIN not counted); -1 unknown. */
static int tcp_pending(struct tcp_transport *tt)
{
	int pending = 0;

	if (ioctl(tt->fd, SIOCOUTQ, &pending) < 0)
		return -1;
	if (atomic_load(&tt->shut) && pending > 0)
		pending--;
	return pending;
}

static void tcp_abort(struct cn_transport *t)
{
	struct tcp_transport *tt = tcp_of(t);

	if (atomic_exchange(&t->aborted, 1))
		return;
	/* Wakes a recv, poll or sendmsg blocked on the socket in another
	 * thread; after a clean end a FIN is harmless, before it a reset
	 * tells the peer that the stream was cut, and loses what is in
	 * flight, which is counted first. */
	if (atomic_load(&tt->clean)) {
		shutdown(tt->fd, SHUT_RDWR);
	} else {
		atomic_store(&tt->abort_pending, tcp_pending(tt));
		cn_sock_reset(tt->fd);
	}
}

/* Taken by abort just before the cut: a cut socket counts no more. */
static bool tcp_unacked(struct cn_transport *t)
{
	return atomic_load(&tcp_of(t)->abort_pending) != 0;
}

static void tcp_destroy(struct cn_transport *t)
{
	struct tcp_transport *tt = tcp_of(t);

	close(tt->fd);
	cn_free(tt);
}

static const struct cn_transport_ops tcp_ops = {
	.recv = tcp_recv,
	.sendv = tcp_sendv,
	.wait = tcp_wait,
	.shutdown = tcp_shutdown,
	.abort = tcp_abort,
	.destroy = tcp_destroy,
	.unacked = tcp_unacked,
};

/* A transport over the connected socket fd (taken over, also on failure). */
static int tcp_new(int fd, const struct connect_opts *opts,
		   struct cn_transport **tp)
{
	struct tcp_transport *tt = cn_calloc(1, sizeof(*tt));

	if (!tt) {
		close(fd);
		return CONNECT_ENOMEM;
	}
	cn_sock_apply_opts(fd, opts);
	tt->base.ops = &tcp_ops;
	tt->base.flags = CN_TRANSPORT_DIRECT;
	tt->fd = fd;
	cn_sock_fill_addrs(fd, &tt->base);
	*tp = &tt->base;
	return CONNECT_OK;
}

static int tcp_dial(const struct cn_endpoint *ep, struct cn_transport **tp,
		    char *reason, size_t len)
{
	int fd, rc;

	rc = cn_sock_dial(ep->addr, ep->deadline, &fd, reason, len);
	if (rc)
		return rc;
	return tcp_new(fd, ep->opts, tp);
}

/* ---- listening ---------------------------------------------------------- */

struct tcp_listener {
	struct cn_tlistener base;
	int fd;      /* listening socket (non-blocking) */
	int wake_fd; /* eventfd written by abort */
	_Atomic int aborted;
	const struct connect_opts *opts; /* the listener's, outlives us */
};

static int tcp_accept(struct cn_tlistener *base, struct cn_transport **tp,
		      char *reason, size_t len)
{
	struct tcp_listener *l = (struct tcp_listener *)base;
	char buf[128];

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = l->fd, .events = POLLIN },
			{ .fd = l->wake_fd, .events = POLLIN },
		};
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd, e, rc;

		if (atomic_load(&l->aborted))
			return CONNECT_ECLOSED;
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			e = errno;
			snprintf(reason, len, "poll: %s",
				 strerror_r(e, buf, sizeof(buf)));
			return cn_err_from_errno(e);
		}
		if (atomic_load(&l->aborted))
			return CONNECT_ECLOSED;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen,
			     SOCK_CLOEXEC);
		if (fd >= 0) {
			rc = tcp_new(fd, l->opts, tp);
			/* Taken now: a peer that vanishes has no name later. */
			if (rc == CONNECT_OK)
				cn_addr_format((struct sockaddr *)&ss,
					       (*tp)->peer,
					       sizeof((*tp)->peer));
			return rc;
		}
		e = errno;
		if (e == EAGAIN || e == EINTR || e == ECONNABORTED ||
		    e == EPROTO)
			continue;
		/* Out of descriptors or memory: the caller pauses. */
		snprintf(reason, len, "accept: %s",
			 strerror_r(e, buf, sizeof(buf)));
		return cn_err_from_errno(e);
	}
}

static void tcp_listener_abort(struct cn_tlistener *base)
{
	struct tcp_listener *l = (struct tcp_listener *)base;
	uint64_t one = 1;

	atomic_store(&l->aborted, 1);
	while (write(l->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void tcp_listener_destroy(struct cn_tlistener *base)
{
	struct tcp_listener *l = (struct tcp_listener *)base;

	if (l->fd >= 0)
		close(l->fd);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	cn_free(l);
}

static const struct cn_tlistener_ops tcp_listener_ops = {
	.accept = tcp_accept,
	.abort = tcp_listener_abort,
	.destroy = tcp_listener_destroy,
};

static int tcp_listen(const struct cn_endpoint *ep, struct cn_tlistener **lp,
		      char *reason, size_t len)
{
	struct tcp_listener *l = cn_calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return CONNECT_ENOMEM;
	l->base.ops = &tcp_listener_ops;
	l->opts = ep->opts;
	l->fd = -1;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		rc = cn_err_from_errno(errno);
		tcp_listener_destroy(&l->base);
		return rc;
	}
	rc = cn_sock_listen(ep->addr, &l->fd, l->base.addr,
			    sizeof(l->base.addr), &l->base.port);
	if (rc) {
		snprintf(reason, len, "listen on %s: %s", ep->addr,
			 connect_strerror(rc));
		tcp_listener_destroy(&l->base);
		return rc;
	}
	*lp = &l->base;
	return CONNECT_OK;
}

const struct cn_transport_class cn_tcp_class = {
	.name = "tcp",
	.dial = tcp_dial,
	.listen = tcp_listen,
};
