/*
 * The TCP transport, and socket helpers shared with TLS.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reasons are written on error paths only; one lock for all transports. */
static pthread_mutex_t reason_lock = PTHREAD_MUTEX_INITIALIZER;

void cn_transport_set_error(struct cn_transport *t, int code, const char *fmt,
			    ...)
{
	va_list ap;

	pthread_mutex_lock(&reason_lock);
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
	t->reason_code = code;
	pthread_mutex_unlock(&reason_lock);
}

int cn_transport_reason(struct cn_transport *t, char *buf, size_t len)
{
	int code;

	pthread_mutex_lock(&reason_lock);
	code = t->reason_code;
	if (len > 0)
		snprintf(buf, len, "%s", t->reason);
	pthread_mutex_unlock(&reason_lock);
	return code;
}

static int sock_fail(struct cn_transport *t, const char *what, int e)
{
	char buf[128];
	int code;

	if (atomic_load(&t->aborted))
		return CONNECT_ECLOSED;
	code = cn_err_from_errno(e);
	cn_transport_set_error(t, code, "%s %s: %s", what, t->peer,
			       strerror_r(e, buf, sizeof(buf)));
	return code;
}

ssize_t cn_sock_recv(int fd, void *buf, size_t len, struct cn_transport *t)
{
	ssize_t n;

	do {
		n = recv(fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n >= 0) {
		/* After abort, shutdown(2) makes recv return 0: that is our
		 * close, not the peer's end of stream. */
		if (n == 0 && atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		return n;
	}
	return sock_fail(t, "recv from", errno);
}

ssize_t cn_sock_sendv(int fd, const struct iovec *iov, int iovcnt,
		      struct cn_transport *t)
{
	struct msghdr msg;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)iov;
	msg.msg_iovlen = (size_t)iovcnt;
	/* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
	do {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0)
		return sock_fail(t, "send to", EPIPE);
	return sock_fail(t, "send to", errno);
}

void cn_sock_apply_opts(int fd, const struct connect_opts *opts)
{
	int nodelay = opts->v[CONNECT_OPT_TCP_NODELAY] != 0;
	int keepalive = opts->v[CONNECT_OPT_TCP_KEEPALIVE] != 0;

	/* Best effort: a socket that refuses these still works. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive,
		   sizeof(keepalive));
}

void cn_sock_fill_addrs(int fd, struct cn_transport *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		cn_addr_format((struct sockaddr *)&ss, t->local,
			       sizeof(t->local));
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		cn_addr_format((struct sockaddr *)&ss, t->peer,
			       sizeof(t->peer));
}

int cn_sock_wait_acked(int fd, struct cn_transport *t)
{
	int pending, pause = 1;

	/* SIOCOUTQ counts the bytes not yet acknowledged by the peer (the FIN
	 * included).  No event tells when it reaches 0: look, with a pause
	 * growing to 10 ms.  The caller's linger bounds the wait, by abort. */
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = 0 };

		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		if (ioctl(fd, SIOCOUTQ, &pending) < 0 || pending <= 0)
			return CONNECT_OK;
		/* POLLERR: the peer reset the connection, what is pending
		 * will never be acknowledged. */
		if (poll(&pfd, 1, pause) > 0 && (pfd.revents & POLLERR)) {
			int err = 0;
			socklen_t len = sizeof(err);

			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			return sock_fail(t, "waiting for acknowledgement from",
					 err ? err : ECONNRESET);
		}
		if (pause < 10)
			pause++;
	}
}

void cn_sock_reset(int fd)
{
	struct sockaddr sa;

	/* connect() to AF_UNSPEC disconnects: the kernel sends a reset and
	 * wakes recv() and send() blocked on the socket in other threads,
	 * where shutdown() would send a FIN, a clean end of stream. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNSPEC;
	if (connect(fd, &sa, sizeof(sa)) < 0)
		shutdown(fd, SHUT_RDWR);
}

struct tcp_transport {
	struct cn_transport base;
	int fd;
	_Atomic int clean; /* shutdown completed: FIN sent and acknowledged */
};

static ssize_t tcp_recv(struct cn_transport *t, void *buf, size_t len)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	return cn_sock_recv(tt->fd, buf, len, t);
}

static ssize_t tcp_sendv(struct cn_transport *t, const struct iovec *iov,
			 int iovcnt)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	return cn_sock_sendv(tt->fd, iov, iovcnt, t);
}

static int tcp_shutdown(struct cn_transport *t)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	int rc;

	if (shutdown(tt->fd, SHUT_WR) < 0)
		return sock_fail(t, "shutdown of", errno);
	rc = cn_sock_wait_acked(tt->fd, t);
	if (rc == CONNECT_OK)
		atomic_store(&tt->clean, 1);
	return rc;
}

static void tcp_abort(struct cn_transport *t)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	atomic_store(&t->aborted, 1);
	/* Wakes a recv or sendmsg blocked on the socket in another thread;
	 * after a clean end a FIN is harmless, before it a reset tells the
	 * peer that the stream was cut. */
	if (atomic_load(&tt->clean))
		shutdown(tt->fd, SHUT_RDWR);
	else
		cn_sock_reset(tt->fd);
}

static void tcp_destroy(struct cn_transport *t)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	close(tt->fd);
	free(tt);
}

static const struct cn_transport_ops tcp_ops = {
	.name = "tcp",
	.recv = tcp_recv,
	.sendv = tcp_sendv,
	.shutdown = tcp_shutdown,
	.abort = tcp_abort,
	.destroy = tcp_destroy,
};

int cn_tcp_transport_new(struct cn_transport **tp, int fd,
			 const struct connect_opts *opts)
{
	struct tcp_transport *tt;

	tt = calloc(1, sizeof(*tt));
	if (!tt) {
		close(fd);
		return CONNECT_ENOMEM;
	}
	cn_sock_apply_opts(fd, opts);
	tt->base.ops = &tcp_ops;
	tt->fd = fd;
	cn_sock_fill_addrs(fd, &tt->base);
	*tp = &tt->base;
	return CONNECT_OK;
}
