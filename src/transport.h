/*
 * The transport class: how a connection's bytes reach the peer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Layers (calls go downward only):
 *
 *     connect.h API      connect_dial / connect_listen and the crate-named
 *          |             twins (endpoint.c, listener.c)
 *     endpoints          one dialer (endpoint.c) and one listener
 *          |             (listener.c), blind to the transport
 *     connection         reader and writer threads (conn.c)
 *          |
 *     transports         a class per scheme: tcp (transport_tcp.c over the
 *          |             socket helpers of sock.c), sctp (transport_sctp.c,
 *          |             on usrsctp: no descriptors); layers stacked over a
 *          |             lower transport: tls (transport_tls.c), fault
 *          |             (transport_fault.c, tests only)
 *     leaves             codec, queue, datagram, addresses, errors, log
 *
 * THE RULE: a transport never calls upward.  It knows nothing of
 * connections, listeners or queues; it returns codes and records a reason
 * (cn_transport_set_error), and the layer above decides.  A layer (TLS)
 * sees its lower transport only through these operations, so it works over
 * any stream, with or without a file descriptor.
 *
 * Adding a transport: one file defining a struct cn_transport_class, and
 * one row in the class table of transport.c.
 *
 * Locking theory of a connected transport: `recv` is called by one thread
 * at a time (the reader; the handshake before it), `sendv` and `shutdown`
 * by one thread at a time (the writer; the handshake before it); the two
 * may run at the same time.  `wait` may run beside either.  `abort` may be
 * called from any thread at any time, concurrently with all of them, and
 * more than once.  `destroy` is called once, when no other call runs.
 * peer_identity may be called from any thread after the handshake.
 */
#ifndef CONNECT_TRANSPORT_H
#define CONNECT_TRANSPORT_H

#include "connect_int.h"

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct cn_transport;

/* Flags of recv and sendv. */
#define CN_IO_NONBLOCK 1 /* CONNECT_EAGAIN instead of waiting */
/* sendv: the end of our stream (shutdown) follows at once; a stream
 * transport may hold these bytes back to send them with it (TCP: in the
 * FIN's segment, so that the peer acknowledges both at once).  Transports
 * that cannot tell ignore it. */
#define CN_IO_MORE 2

/* Events of wait. */
#define CN_WAIT_READ 1
#define CN_WAIT_WRITE 2

struct cn_transport_ops {
	/*
	 * Read up to len bytes, waiting until at least one is available
	 * (with CN_IO_NONBLOCK: CONNECT_EAGAIN instead).  > 0: bytes read.
	 * 0: the peer ended the stream cleanly (TCP FIN; TLS close_notify).
	 * < 0: a CONNECT_E* code with a reason stored by
	 * cn_transport_set_error(); CONNECT_ECLOSED after abort.
	 */
	ssize_t (*recv)(struct cn_transport *t, void *buf, size_t len,
			int flags);

	/*
	 * Write the bytes of iov[0..iovcnt) in order, waiting as needed
	 * (CN_IO_NONBLOCK: CONNECT_EAGAIN when nothing could be written).
	 * Returns the bytes written (> 0, possibly fewer than asked: the
	 * caller advances and calls again) or a CONNECT_E* code.  Never 0
	 * when there is something to write.  iovcnt <= CN_IOV_MAX.  Never
	 * raises SIGPIPE.  On a message transport (CN_TRANSPORT_MESSAGES)
	 * one call is one message, written whole or not at all.
	 */
	ssize_t (*sendv)(struct cn_transport *t, const struct iovec *iov,
			 int iovcnt, int flags);

	/*
	 * Wait until recv (CN_WAIT_READ) or sendv (CN_WAIT_WRITE) would not
	 * wait, or until deadline (cn_now_ms() clock; -1: none).  CONNECT_OK
	 * (ready, or an error waits to be read), CONNECT_ETIMEDOUT, or
	 * CONNECT_ECLOSED after abort.
	 */
	int (*wait)(struct cn_transport *t, int events, int64_t deadline);

	/*
	 * Complete the transport's own set-up before data flows (TLS: the
	 * handshake), within deadline (-1: the transport's own limit).  A
	 * layer runs its lower transport's handshake first.  NULL: nothing
	 * to do.  abort() cuts it short (CONNECT_ECLOSED).  On failure a
	 * specific code, with the reason written into reason.
	 */
	int (*handshake)(struct cn_transport *t, int64_t deadline,
			 char *reason, size_t len);

	/*
	 * End our direction of the stream cleanly (TLS close_notify, then
	 * TCP FIN) after everything was handed to sendv, and wait until the
	 * peer has acknowledged every byte (so that closing afterwards cannot
	 * lose data).  `grace`: how many of the last bytes sent are courtesy
	 * only (a close_notify after the peer's own): a reset that loses no
	 * more than them, and the FIN, still ends the stream cleanly (the
	 * peer had closed already).  CONNECT_OK, a CONNECT_E* code, or
	 * CONNECT_ECLOSED when abort cut the wait short.
	 */
	int (*shutdown)(struct cn_transport *t, size_t grace);

	/*
	 * Wake every thread blocked in recv, sendv, wait, handshake or
	 * shutdown and make every later call fail promptly.  Unless shutdown
	 * completed, the stream is cut so that the peer cannot take it for a
	 * clean end (TCP: a reset; TLS: no close_notify).  Idempotent.
	 */
	void (*abort)(struct cn_transport *t);

	/* Release everything, lower transports included. */
	void (*destroy)(struct cn_transport *t);

	/*
	 * After abort: whether bytes handed to sendv before the abort may
	 * not have reached the peer (true), or the peer had acknowledged
	 * everything (false).  NULL: the transport cannot tell (taken as
	 * true).
	 */
	bool (*unacked)(struct cn_transport *t);

	/*
	 * After a sendv with CN_IO_NONBLOCK that took its bytes: whether
	 * some of them wait inside the transport (a TLS record the socket
	 * took only in part).  The next sendv, whatever its flags, writes
	 * them first; sendv with iovcnt 0 and no flags writes just them,
	 * waiting as needed.  NULL: never.
	 */
	bool (*out_pending)(struct cn_transport *t);

	/*
	 * The verified identity of the peer (enum connect_peer_info) as
	 * text.  NULL: the transport authenticates nobody (CONNECT_ENOTSUP).
	 */
	int (*peer_identity)(struct cn_transport *t, int what, char *buf,
			     size_t len);

	/*
	 * Authenticate the transport's own packets from now on with `key`
	 * (a layer above derived it from its handshake: DTLS over SCTP keys
	 * SCTP-AUTH, RFC 6083).  Called once, after the handshake, before
	 * the reader and writer start.  CONNECT_OK or a CONNECT_E* code.
	 * NULL: the transport has nothing to authenticate (CONNECT_ENOTSUP).
	 */
	int (*auth_key)(struct cn_transport *t, const void *key, size_t len);
};

/* Largest iovcnt passed to sendv. */
#define CN_IOV_MAX 256

/* Transport flags. */
#define CN_TRANSPORT_MESSAGES 1 /* sendv boundaries are kept (SCTP) */
/* sendv with CN_IO_NONBLOCK, so that an application thread may write a
 * datagram itself while the writer sleeps: it keeps no state between
 * calls (TCP), or says so through out_pending (TLS over a stream: a
 * record the socket took in part is finished by the next sendv). */
#define CN_TRANSPORT_DIRECT 2

struct cn_transport {
	const struct cn_transport_ops *ops;
	unsigned flags;
	/* Addresses as text, filled in by the transport's constructor. */
	char local[CN_ADDRSTRLEN];
	char peer[CN_ADDRSTRLEN];
	/* Secondary detail of the last failure (errno / GnuTLS text). */
	char reason[CN_REASON_LEN];
	int reason_code;
	/* Set by abort: later failures report CONNECT_ECLOSED. */
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

/* For layers: the lower transport's unacked (true when it cannot tell),
 * and an abort that marks the layer and passes down. */
bool cn_transport_unacked(struct cn_transport *t);
void cn_layer_abort(struct cn_transport *t, struct cn_transport *lower);

/* ---- listening ----------------------------------------------------------- */

struct cn_tlistener;

struct cn_tlistener_ops {
	/*
	 * Wait for the next incoming connection and return it as a
	 * transport whose handshake has not run yet.  CONNECT_ECLOSED after
	 * abort.  Any other failure (out of descriptors, memory) is
	 * transient: the caller logs the reason and tries again after a
	 * pause.
	 */
	int (*accept)(struct cn_tlistener *l, struct cn_transport **tp,
		      char *reason, size_t len);
	/* Wake accept and make it return CONNECT_ECLOSED from now on. */
	void (*abort)(struct cn_tlistener *l);
	/* Close the endpoint and free it (after accept has returned). */
	void (*destroy)(struct cn_tlistener *l);
};

struct cn_tlistener {
	const struct cn_tlistener_ops *ops;
	char addr[CN_ADDRSTRLEN]; /* bound address as text */
	int port;                 /* bound port */
};

/* ---- the class ----------------------------------------------------------- */

/* What dial and listen are given. */
struct cn_endpoint {
	const char *addr;                /* "host:port", scheme removed */
	const struct connect_opts *opts; /* never NULL */
	connect_tls_config *tls;         /* layers that need it */
	const char *server_name;         /* client: the name to verify */
	int64_t deadline;                /* dial: cn_now_ms() clock, or -1 */
	bool server;                     /* accepted side (wrap) */
	unsigned layer_flags;            /* CN_CLASS_* of the stack's layers */
};

/* Class flags (struct cn_transport_class.flags). */
/* A layer that will key the base transport's packet authentication
 * (auth_key): the base prepares for it when it dials or listens. */
#define CN_CLASS_AUTH_BELOW 1

struct cn_transport_class {
	const char *name; /* the scheme word: "tcp", "tls", "fault" */
	/* A base transport dials and listens; a layer wraps a lower one. */
	bool layer;
	unsigned flags; /* CN_CLASS_* */

	/*
	 * Check what a dial or listen needs before any socket is made
	 * (TLS: a configuration for the right role).  NULL: nothing.
	 */
	int (*check)(const struct cn_endpoint *ep, bool server, char *reason,
		     size_t len);

	/* Base: connect to ep->addr by ep->deadline (no handshake yet). */
	int (*dial)(const struct cn_endpoint *ep, struct cn_transport **tp,
		    char *reason, size_t len);
	/* Base: bind and listen on ep->addr. */
	int (*listen)(const struct cn_endpoint *ep, struct cn_tlistener **lp,
		      char *reason, size_t len);

	/*
	 * Layer: stack over `lower` (taken over, also on failure: then
	 * destroyed).  ep->server says which side.  No I/O: the handshake
	 * op does that.
	 */
	int (*wrap)(const struct cn_endpoint *ep, struct cn_transport *lower,
		    struct cn_transport **tp, char *reason, size_t len);
};

extern const struct cn_transport_class cn_tcp_class;
extern const struct cn_transport_class cn_tls_class;
extern const struct cn_transport_class cn_dtls_class;
#ifdef HAVE_USRSCTP
extern const struct cn_transport_class cn_sctp_class;
#endif

/* Longest layer stack ("tls+fault+tcp"). */
#define CN_MAX_LAYERS 4

/* A parsed "scheme://host:port". */
struct cn_stack {
	const struct cn_transport_class *base;
	/* Layers from the innermost outward. */
	const struct cn_transport_class *layers[CN_MAX_LAYERS];
	int nlayers;
	const char *addr; /* points into the URL, past "://" */
};

/*
 * Parse "tcp://host:port", "tls+tcp://host:port", "tls://host:port" (TLS
 * over TCP) or plain "host:port" (TCP).  CONNECT_EADDR for an unknown
 * scheme or a malformed URL.
 */
int cn_stack_parse(const char *url, struct cn_stack *st);

/*
 * Make another class known to cn_stack_parse (the tests' fault layer).
 * Not thread-safe: call before dialing.  CONNECT_ENOMEM when full.
 */
int cn_transport_register(const struct cn_transport_class *cls);

/* Wrap `t` (taken over) in the stack's layers, innermost first. */
int cn_stack_wrap(const struct cn_stack *st, const struct cn_endpoint *ep,
		  struct cn_transport **tp, char *reason, size_t len);
/* The CN_CLASS_* flags of the stack's layers, together. */
unsigned cn_stack_layer_flags(const struct cn_stack *st);
/* Run every class's check for a dial (server false) or listen. */
int cn_stack_check(const struct cn_stack *st, const struct cn_endpoint *ep,
		   bool server, char *reason, size_t len);

#endif /* CONNECT_TRANSPORT_H */
