/*
 * Socket helpers shared by the transports on kernel sockets (see sock.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct cn_sys cn_sys = { .sendmsg = sendmsg, .recv = recv };

int cn_sock_fail(struct cn_transport *t, const char *what, int e)
{
	char buf[128];
	int code;

	if (atomic_load(&t->aborted))
		return CONNECT_ECLOSED;
	/* On an established connection a timeout is the kernel giving up
	 * on the peer (keepalive, TCP_USER_TIMEOUT, retransmissions). */
	code = e == ETIMEDOUT ? CONNECT_EDEADPEER : cn_err_from_errno(e);
	cn_transport_set_error(t, code, "%s %s: %s", what, t->peer,
			       strerror_r(e, buf, sizeof(buf)));
	return code;
}

ssize_t cn_sock_recv(int fd, void *buf, size_t len, int flags,
		     struct cn_transport *t)
{
	int f = (flags & CN_IO_NONBLOCK) ? MSG_DONTWAIT : 0;
	ssize_t n;

	do {
		n = cn_sys.recv(fd, buf, len, f);
	} while (n < 0 && errno == EINTR);
	if (n >= 0) {
		/* After abort, shutdown(2) makes recv return 0: that is our
		 * close, not the peer's end of stream. */
		if (n == 0 && atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		return n;
	}
	if ((errno == EAGAIN || errno == EWOULDBLOCK) && f)
		return atomic_load(&t->aborted) ? CONNECT_ECLOSED
						: CONNECT_EAGAIN;
	return cn_sock_fail(t, "recv from", errno);
}

ssize_t cn_sock_sendv(int fd, const struct iovec *iov, int iovcnt, int flags,
		      struct cn_transport *t)
{
	int f = MSG_NOSIGNAL | ((flags & CN_IO_NONBLOCK) ? MSG_DONTWAIT : 0) |
		((flags & CN_IO_MORE) ? MSG_MORE : 0);
	struct msghdr msg;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)iov;
	msg.msg_iovlen = (size_t)iovcnt;
	/* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
	do {
		n = cn_sys.sendmsg(fd, &msg, f);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0)
		return cn_sock_fail(t, "send to", EPIPE);
	if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
	    (flags & CN_IO_NONBLOCK))
		return atomic_load(&t->aborted) ? CONNECT_ECLOSED
						: CONNECT_EAGAIN;
	return cn_sock_fail(t, "send to", errno);
}

int cn_sock_wait(int fd, int events, int64_t deadline, struct cn_transport *t)
{
	struct pollfd pfd = { .fd = fd };
	int n;

	if (events & CN_WAIT_READ)
		pfd.events |= POLLIN;
	if (events & CN_WAIT_WRITE)
		pfd.events |= POLLOUT;
	for (;;) {
		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		n = poll(&pfd, 1, cn_remaining(deadline));
		if (n > 0)
			return atomic_load(&t->aborted) ? CONNECT_ECLOSED
							: CONNECT_OK;
		if (n == 0)
			return CONNECT_ETIMEDOUT;
		if (errno != EINTR)
			return cn_sock_fail(t, "poll on", errno);
	}
}

void cn_sock_apply_opts(int fd, const struct connect_opts *opts)
{
	int nodelay = opts->v[CONNECT_OPT_TCP_NODELAY] != 0;
	int keepalive = opts->v[CONNECT_OPT_TCP_KEEPALIVE] != 0;

	static const struct {
		int opt, name;
	} tcp[] = {
		{ CONNECT_OPT_TCP_KEEPALIVE_IDLE, TCP_KEEPIDLE },
		{ CONNECT_OPT_TCP_KEEPALIVE_INTERVAL, TCP_KEEPINTVL },
		{ CONNECT_OPT_TCP_KEEPALIVE_COUNT, TCP_KEEPCNT },
		{ CONNECT_OPT_TCP_USER_TIMEOUT_MS, TCP_USER_TIMEOUT },
	};

	/* Best effort: a socket that refuses these still works. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive,
		   sizeof(keepalive));
	/* 0 keeps the system's value. */
	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		int v = (int)opts->v[tcp[i].opt];

		if (v > 0)
			setsockopt(fd, IPPROTO_TCP, tcp[i].name, &v,
				   sizeof(v));
	}
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

/* The connection is gone (reset, or timed out): nothing more will move. */
static bool sock_is_closed(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	       ti.tcpi_state == TCP_CLOSE;
}

/* The first look after shutdown: one smoothed round trip (an
 * acknowledgement sent at once is back by then), in nanoseconds. */
static long first_look_ns(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	long ns = 100000;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_rtt) + sizeof(ti.tcpi_rtt))
		ns = (long)ti.tcpi_rtt * 1000;
	return ns < 20000 ? 20000 : ns > 10000000 ? 10000000 : ns;
}

int cn_sock_wait_acked(int fd, struct cn_transport *t, size_t grace)
{
	struct timespec ts = { 0, 0 };
	bool hup = false;
	int pending;

	/*
	 * SIOCOUTQ counts the bytes not yet acknowledged by the peer (the FIN
	 * included).  Linux raises no event when an acknowledgement that
	 * carries nothing else arrives, so we look again after one smoothed
	 * round trip (the peer's lower transport acknowledges our end at
	 * once when it reads it: tcp_eof, and tls_drain_lower for the
	 * close_notify before it), then at doubling intervals up to 10 ms (a
	 * peer whose host delays the acknowledgement).  In between, ppoll
	 * sleeps on the socket: a reset, and the abort that ends the
	 * caller's linger, wake it at once, until POLLHUP stands for good
	 * (the peer had ended its direction before we ended ours), after
	 * which only the clock wakes it.
	 */
	for (;;) {
		struct pollfd pfd = { .fd = hup ? -1 : fd, .events = 0 };

		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		if (ioctl(fd, SIOCOUTQ, &pending) < 0 || pending <= 0)
			return CONNECT_OK;
		if (sock_is_closed(fd))
			break;
		if (ts.tv_nsec == 0)
			ts.tv_nsec = first_look_ns(fd);
		else if (ts.tv_nsec < 5000000)
			ts.tv_nsec *= 2;
		else
			ts.tv_nsec = 10000000;
		if (ppoll(&pfd, 1, &ts, NULL) > 0) {
			/* POLLERR: the peer reset the connection. */
			if (pfd.revents & POLLERR)
				break;
			if (pfd.revents & POLLHUP)
				hup = true;
		}
	}
	/* Reset (POLLERR), or closed with the error taken by another thread:
	 * what is pending now will never be acknowledged. */
	{
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (ioctl(fd, SIOCOUTQ, &pending) < 0 ||
		    (size_t)pending <= grace + 1)
			return CONNECT_OK;
		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		cn_transport_set_error(t, CONNECT_ECONNRESET,
				       "%s reset the connection with %d "
				       "byte(s) we sent unacknowledged",
				       t->peer, pending - 1);
		return CONNECT_ECONNRESET;
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

/* ---- dialing ------------------------------------------------------------ */

/* One connect attempt, bounded by deadline.  Returns a CONNECT code. */
static int dial_one(const struct addrinfo *ai, int64_t deadline, int *fdp)
{
	int fd, err = 0, rc;
	socklen_t elen = sizeof(err);
	struct pollfd pfd;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return cn_err_from_errno(errno);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do {
			rc = poll(&pfd, 1, cn_remaining(deadline));
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			close(fd);
			return CONNECT_ETIMEDOUT;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					 &elen) < 0) {
			err = errno;
			goto fail;
		}
		if (err)
			goto fail;
	}
	/* The transports do blocking I/O on the socket. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		err = errno;
		goto fail;
	}
	*fdp = fd;
	return CONNECT_OK;
fail:
	close(fd);
	return cn_err_from_errno(err);
}

int cn_sock_dial(const char *addr, int64_t deadline, int *fdp, char *reason,
		 size_t reasonlen)
{
	struct addrinfo *res, *ai;
	int rc, first = CONNECT_OK;

	rc = cn_addr_resolve(addr, false, &res);
	if (rc) {
		snprintf(reason, reasonlen, "%s: %s", addr,
			 connect_strerror(rc));
		return rc;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		char text[CN_ADDRSTRLEN];

		rc = dial_one(ai, deadline, fdp);
		if (rc == CONNECT_OK)
			break;
		cn_addr_format(ai->ai_addr, text, sizeof(text));
		snprintf(reason, reasonlen, "connect to %s: %s", text,
			 connect_strerror(rc));
		if (first == CONNECT_OK)
			first = rc;
		if (cn_remaining(deadline) == 0) {
			rc = CONNECT_ETIMEDOUT;
			break;
		}
	}
	freeaddrinfo(res);
	if (rc != CONNECT_OK && rc != CONNECT_ETIMEDOUT)
		rc = first;
	return rc;
}

/* ---- listening ---------------------------------------------------------- */

int cn_sock_listen(const char *addr, int *fdp, char *bound, size_t boundlen,
		   int *port)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int rc, fd = -1, e = 0, one = 1;

	rc = cn_addr_resolve(addr, true, &res);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return cn_err_from_errno(e);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		e = errno;
		close(fd);
		return cn_err_from_errno(e);
	}
	cn_addr_format((struct sockaddr *)&ss, bound, boundlen);
	*port = ntohs(ss.ss_family == AF_INET6
			      ? ((struct sockaddr_in6 *)&ss)->sin6_port
			      : ((struct sockaddr_in *)&ss)->sin_port);
	*fdp = fd;
	return CONNECT_OK;
}
