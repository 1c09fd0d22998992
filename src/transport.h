/*
 * The transport interface: what the reader and writer threads see of a
 * stream.  TCP and TLS implement it; the connection code never branches on
 * the transport and never assumes the stream is a file descriptor.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Locking theory: `recv` is called only by the reader thread, `sendv` and
 * `shutdown` only by the writer thread; the two may run at the same time.
 * (For TLS this takes care: GnuTLS 3.7 allows one thread sending and one
 * receiving on a session, except while a TLS 1.3 key update is handled, so
 * transport_tls.c keeps every GnuTLS call under one lock and never waits
 * for the network inside one; see its locking comment.)
 * `abort` may be called from any thread at any time, concurrently with all
 * of them, and more than once.  `destroy` is called once, after the reader
 * and writer threads have been joined.
 */
#ifndef CONNECT_TRANSPORT_H
#define CONNECT_TRANSPORT_H

#include "connect_int.h"

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct cn_transport;

struct cn_transport_ops {
	const char *name; /* "tcp", "tls" */

	/*
	 * Read up to len bytes, blocking until at least one is available.
	 * > 0: bytes read.  0: the peer ended the stream cleanly (TCP FIN;
	 * TLS close_notify).  < 0: a CONNECT_E* code (they are negative), with a reason
	 * stored by cn_transport_set_error().  EINTR is retried inside.
	 */
	ssize_t (*recv)(struct cn_transport *t, void *buf, size_t len);

	/*
	 * Write the bytes of iov[0..iovcnt) in order, blocking as needed.
	 * Returns the number of bytes written (> 0, possibly fewer than asked:
	 * the caller advances and calls again) or a CONNECT_E* code.
	 * Never 0 when there is something to write.  iovcnt <= CN_IOV_MAX.
	 * Must never raise SIGPIPE.
	 */
	ssize_t (*sendv)(struct cn_transport *t, const struct iovec *iov,
			 int iovcnt);

	/*
	 * End our direction of the stream cleanly (TLS close_notify, then TCP
	 * FIN), after everything sent has been handed to sendv, and wait until
	 * the peer has acknowledged every byte (so that closing the socket
	 * afterwards cannot lose data).  Returns CONNECT_OK, or a CONNECT_E*
	 * code; CONNECT_ECLOSED when abort cut the wait short.
	 */
	int (*shutdown)(struct cn_transport *t);

	/*
	 * Wake any thread blocked in recv, sendv or shutdown and make every
	 * later call fail promptly.  Unless shutdown completed, the stream is
	 * cut so that the peer cannot mistake it for a clean end (TCP: a
	 * reset; TLS: no close_notify).  Idempotent, thread-safe.
	 */
	void (*abort)(struct cn_transport *t);

	/* Release everything (socket, session, transport threads). */
	void (*destroy)(struct cn_transport *t);
};

/* Largest iovcnt passed to sendv. */
#define CN_IOV_MAX 256

struct cn_transport {
	const struct cn_transport_ops *ops;
	/* Addresses as text, filled in by the transport's constructor. */
	char local[CN_ADDRSTRLEN];
	char peer[CN_ADDRSTRLEN];
	/* Secondary detail of the last failure (errno / GnuTLS text). */
	char reason[CN_REASON_LEN];
	int reason_code;
	/* Set by abort; the socket helpers below then fail with
	 * CONNECT_ECLOSED instead of reporting the socket's complaint. */
	_Atomic int aborted;
};

/*
 * Record why the transport failed, for the connection's error text.  Safe
 * from the reader and writer at once (a lock guards the text); the latest
 * call wins.  Read back with cn_transport_reason().
 */
void cn_transport_set_error(struct cn_transport *t, int code, const char *fmt,
			    ...) CN_PRINTF(3, 4);
/* Copy the reason text; returns its code (0 if none was set). */
int cn_transport_reason(struct cn_transport *t, char *buf, size_t len);

/*
 * TCP.  Takes ownership of the connected socket `fd` (also on failure).
 * Applies TCP_NODELAY / SO_KEEPALIVE from opts.
 */
int cn_tcp_transport_new(struct cn_transport **tp, int fd,
			 const struct connect_opts *opts);

/* Helpers shared by socket-based transports. */
/* Write with MSG_NOSIGNAL, retrying EINTR; returns bytes or a CONNECT_E*. */
ssize_t cn_sock_sendv(int fd, const struct iovec *iov, int iovcnt,
		      struct cn_transport *t);
/* recv() retrying EINTR; returns bytes, 0 at EOF, or a CONNECT_E* code. */
ssize_t cn_sock_recv(int fd, void *buf, size_t len, struct cn_transport *t);
/* TCP_NODELAY and SO_KEEPALIVE as the options say (best effort). */
void cn_sock_apply_opts(int fd, const struct connect_opts *opts);
/* Fill t->local and t->peer from the socket. */
void cn_sock_fill_addrs(int fd, struct cn_transport *t);
/* After shutdown(SHUT_WR): wait until the peer acknowledged everything we
 * sent, FIN included.  CONNECT_OK, or CONNECT_ECLOSED once aborted. */
int cn_sock_wait_acked(int fd, struct cn_transport *t);
/* Cut a connected socket: the peer gets a reset, and threads blocked on
 * the socket wake with an error. */
void cn_sock_reset(int fd);

#endif /* CONNECT_TRANSPORT_H */
