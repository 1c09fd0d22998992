/*
 * Socket helpers for the transports built on kernel sockets (TCP now):
 * dialing and listening, reads and writes that retry EINTR and never raise
 * SIGPIPE, waits with a deadline, resets, and the wait for the peer's
 * acknowledgement.  Nothing here knows about connections or listeners.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_SOCK_H
#define CONNECT_SOCK_H

#include "connect_int.h"
#include "transport.h"

#include <sys/socket.h>

/*
 * The system calls on the data path, called through this table so that
 * the unit tests can interpose EINTR and short transfers.  The library
 * never changes it.
 */
struct cn_sys {
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
	ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
};
extern struct cn_sys cn_sys;

/* Record a socket error e ("what PEER: text") and return its code;
 * CONNECT_ECLOSED after abort. */
int cn_sock_fail(struct cn_transport *t, const char *what, int e);
/* recv() retrying EINTR: bytes, 0 at EOF, or a CONNECT_E* code (with
 * CN_IO_NONBLOCK, CONNECT_EAGAIN when nothing is there). */
ssize_t cn_sock_recv(int fd, void *buf, size_t len, int flags,
		     struct cn_transport *t);
/* sendmsg() with MSG_NOSIGNAL, retrying EINTR: bytes or a CONNECT_E*. */
ssize_t cn_sock_sendv(int fd, const struct iovec *iov, int iovcnt, int flags,
		      struct cn_transport *t);
/* poll() for CN_WAIT_* until deadline; see cn_transport_ops.wait. */
int cn_sock_wait(int fd, int events, int64_t deadline,
		 struct cn_transport *t);
/* TCP_NODELAY, SO_KEEPALIVE and the keepalive timing as the options say
 * (best effort). */
void cn_sock_apply_opts(int fd, const struct connect_opts *opts);
/* Fill t->local and t->peer from the socket. */
void cn_sock_fill_addrs(int fd, struct cn_transport *t);
/*
 * After shutdown(SHUT_WR): wait until the peer acknowledged everything we
 * sent, FIN included.  CONNECT_OK, or CONNECT_ECLOSED once aborted.  A
 * reset that leaves no more than the FIN and the last `grace` bytes
 * unacknowledged is a clean end: the peer had everything that mattered
 * and had closed.  Otherwise CONNECT_ECONNRESET, saying how many bytes
 * were never acknowledged.
 */
int cn_sock_wait_acked(int fd, struct cn_transport *t, size_t grace);
/* Cut a connected socket: the peer gets a reset, and threads blocked on
 * the socket wake with an error. */
void cn_sock_reset(int fd);

/*
 * Connect a TCP socket to "host:port" by deadline (-1: none), trying each
 * resolved address in turn.  *fdp is blocking.  On failure a reason.
 */
int cn_sock_dial(const char *addr, int64_t deadline, int *fdp, char *reason,
		 size_t len);
/*
 * A non-blocking listening TCP socket on "host:port"; the bound address as
 * text and the port are written back.
 */
int cn_sock_listen(const char *addr, int *fdp, char *bound, size_t boundlen,
		   int *port);

#endif /* CONNECT_SOCK_H */
