/*
 * libconnect: a brokerless, ordered message queue over TCP and TLS.
 *
 * Transports are named by a scheme: connect_dial("tcp://host:port") and
 * connect_listen("tls+tcp://host:port") reach every transport through the
 * same two calls (see "Dialing and listening").  The crate-named calls
 * connect_tcp_client(), connect_tls_client(), connect_tcp_listen() and
 * connect_tls_listen() are the same thing spelled for one transport.
 *
 * Copyright (C) 2026 The libconnect developers
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * This header is the whole supported API of libconnect.  Every other symbol
 * in the library is private and hidden.
 *
 * A message ("datagram") is a 16-bit user tag plus 1 to 100,000,000 bytes of
 * payload.  On the wire it is the frame of the Rust crate `connect` 0.3:
 *
 *     u32 size (= 4 + payload length) | u16 version (1) | u16 tag | payload
 *
 * all big-endian.  Each connection owns two library threads: a reader that
 * cuts frames off the stream into an inbound queue, and a writer that drains
 * an outbound queue into the stream.  The application pushes and pops whole
 * datagrams without blocking (or waits with a timeout, or polls a file
 * descriptor).  Per connection, datagrams arrive complete, in order, exactly
 * once; nothing is dropped silently: a full queue says "would block" and the
 * datagram stays with the caller.
 *
 * Errors: every function that can fail returns an `int` that is CONNECT_OK (0)
 * or one of the negative codes of `enum connect_err`.  connect_strerror()
 * explains a code; connect_err_name() names it.  The library never prints,
 * never calls abort() or exit(), and never raises SIGPIPE.
 *
 * THREAD SAFETY.  The default: any call may be made from any thread.  The
 * table says which calls may run at the same time on the SAME object
 * (different objects are always independent):
 *
 *                        send*  recv*  conn_fd  stats/addr  close
 *     connect_send*       yes    yes     yes       yes       yes (1)
 *     connect_recv*       yes(2) yes(2)  yes       yes       yes (1)
 *     connect_conn_fd     yes    yes     yes       yes       yes (1)
 *     stats, addresses    yes    yes     yes       yes       yes (1)
 *     connect_close       yes(1) yes(1)  yes(1)    yes(1)    NO
 *
 *   (1) connect_close() makes every call already running on that
 *       connection return (waiting calls return CONNECT_ECLOSED) and waits
 *       for them to leave before freeing it.  A call that STARTS after
 *       connect_close() was called may touch freed memory: as with free(),
 *       the application must stop handing the connection to new calls
 *       before it closes it.
 *   (2) send is safe from any number of threads at once (messages from one
 *       thread keep their order; messages from different threads interleave
 *       whole).  Receiving from several threads is serialized internally:
 *       each datagram goes to exactly one caller.
 *
 *   Listeners follow the same rules: connect_accept* and connect_listener_fd
 *   may run concurrently from any threads; connect_listener_close() wakes
 *   waiting accepts (CONNECT_ECLOSED) and waits for them to leave.
 *   A datagram is a plain object owned by one thread at a time: the
 *   connect_datagram_* calls are not synchronized.
 *   connect_opts and connect_tls_config objects may be shared read-only by
 *   any number of calls once set up; setters are not synchronized.
 */
#ifndef CONNECT_CONNECT_H
#define CONNECT_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "connect_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BUILDING_LIBCONNECT) && defined(__GNUC__)
#define CONNECT_API __attribute__((visibility("default")))
#else
#define CONNECT_API
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The error list, defined once.  XX(NAME, value, "explanation").
 */
#define CONNECT_ERRNO_MAP(XX)                                                  \
	XX(OK, 0, "success")                                                   \
	XX(EINVAL, -1, "invalid argument")                                     \
	XX(ENOMEM, -2, "out of memory")                                        \
	XX(EEMPTY, -3, "empty payload: a datagram carries 1 byte or more")     \
	XX(ETOOBIG, -4, "payload larger than 100,000,000 bytes")               \
	XX(EAGAIN, -5, "would block: try again later")                         \
	XX(ETIMEDOUT, -6, "timed out")                                         \
	XX(ECLOSED, -7, "closed by this side")                                 \
	XX(EEOF, -8, "end of stream: the peer closed the connection")          \
	XX(EADDR, -9, "malformed address: expected host:port or [ipv6]:port")  \
	XX(ENOHOST, -10, "unknown host")                                       \
	XX(ECONNREFUSED, -11, "connection refused")                            \
	XX(ECONNRESET, -12, "connection reset by peer")                        \
	XX(EADDRINUSE, -13, "address already in use")                          \
	XX(EPROTO, -14, "protocol error: malformed frame from peer")           \
	XX(ETRUNCATED, -15, "truncated: the stream ended inside a frame")      \
	XX(EIO, -16, "input/output error")                                     \
	XX(ETHREAD, -17, "could not start a thread")                           \
	XX(ENOTSUP, -18, "operation not supported")                            \
	XX(ESYSTEM, -19, "system error")                                       \
	XX(ETLS, -20, "TLS error")                                             \
	XX(ETLSCONFIG, -21, "TLS configuration error (certificate, key, CA "   \
			    "or priority string)")                             \
	XX(ETLSUNKNOWNISSUER, -22,                                             \
	   "TLS: certificate issued by an unknown or untrusted authority")     \
	XX(ETLSNAMEMISMATCH, -23,                                              \
	   "TLS: certificate does not match the server name")                  \
	XX(ETLSEXPIRED, -24, "TLS: certificate has expired")                   \
	XX(ETLSNOTYETVALID, -25, "TLS: certificate is not yet valid")          \
	XX(ETLSBADCERT, -26, "TLS: certificate is invalid")                    \
	XX(ETLSNOCERT, -27, "TLS: the peer sent no certificate")               \
	XX(ETLSNOTTLS, -28, "TLS: protocol mismatch: the peer does not speak " \
			    "TLS")                                             \
	XX(ETLSALERT, -29, "TLS: fatal alert received from the peer")          \
	XX(ETLSHANDSHAKETIMEOUT, -30, "TLS: handshake timed out")              \
	XX(EADDRNOTAVAIL, -31,                                                 \
	   "address not available: not an address of this host")              \
	XX(EDEADPEER, -32,                                                     \
	   "the peer stopped responding (keepalive, user timeout, receive "   \
	   "idle or frame timeout)")                                          \
	XX(EATTACHED, -33,                                                     \
	   "the connection is attached to an inbox: receive from the inbox")  \
	XX(ELIMIT, -34, "limit reached: the inbox holds its most connections")

enum connect_err {
#define CONNECT_ERR_ENUM_(name, val, text) CONNECT_##name = (val),
	CONNECT_ERRNO_MAP(CONNECT_ERR_ENUM_)
#undef CONNECT_ERR_ENUM_
};

/* A static string explaining `err`.  Never NULL, also for unknown codes. */
CONNECT_API const char *connect_strerror(int err);
/* The code's name ("CONNECT_EPROTO").  Never NULL ("CONNECT_EUNKNOWN"). */
CONNECT_API const char *connect_err_name(int err);

/* "1.2.3", the version of the library actually linked. */
CONNECT_API const char *connect_version_string(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

enum connect_log_level {
	CONNECT_LOG_ERROR = 0,
	CONNECT_LOG_WARN = 1,
	CONNECT_LOG_INFO = 2,
	CONNECT_LOG_DEBUG = 3,
};

/*
 * A log callback.  `id` is a stable message identifier ("CONNECT-ACCEPT",
 * "CONNECT-TLS-HANDSHAKE", "CONNECT-PROTO", "CONNECT-GNUTLS"...), `msg` a
 * human-readable line without a trailing newline.  Called from any library
 * thread, possibly concurrently: the callback must be thread-safe and must
 * not call back into the library on the connection that logs.
 */
typedef void (*connect_log_fn)(void *arg, int level, const char *id,
			       const char *msg);

/*
 * Install (or with fn == NULL remove) the process-wide log callback.
 * Messages above `max_level` are not produced.  Off by default: without a
 * callback the library is silent.  Safe from any thread.
 */
CONNECT_API void connect_set_logger(connect_log_fn fn, void *arg,
				    int max_level);

/* ------------------------------------------------------------------------ */
/* Datagrams                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct connect_datagram connect_datagram;

/* The largest payload a datagram may carry, and the wire version sent. */
#define CONNECT_MAX_PAYLOAD 100000000u
#define CONNECT_WIRE_VERSION 1u

/*
 * Make a datagram with `tag` and a copy of `len` bytes at `data`.
 * Header, tag and payload live in one allocation.
 *
 * Returns CONNECT_OK and sets *dgp; or
 *   CONNECT_EINVAL   dgp is NULL, or data is NULL with len > 0;
 *   CONNECT_EEMPTY   len == 0;
 *   CONNECT_ETOOBIG  len > CONNECT_MAX_PAYLOAD;
 *   CONNECT_ENOMEM   allocation failed.
 * On failure *dgp is left untouched.
 */
CONNECT_API int connect_datagram_new(connect_datagram **dgp, uint16_t tag,
				     const void *data, size_t len);

/*
 * Make a datagram with room for `len` payload bytes that the caller fills in
 * place through connect_datagram_data() (no second copy of large messages).
 * The payload is uninitialized.  Errors as connect_datagram_new().
 */
CONNECT_API int connect_datagram_alloc(connect_datagram **dgp, uint16_t tag,
				       size_t len);

/* Free a datagram.  NULL is accepted and ignored. */
CONNECT_API void connect_datagram_free(connect_datagram *dg);

/* The tag. */
CONNECT_API uint16_t connect_datagram_tag(const connect_datagram *dg);
/* Change the tag (to echo a datagram back under another tag, say). */
CONNECT_API void connect_datagram_set_tag(connect_datagram *dg, uint16_t tag);
/* The version field: 1 for datagrams made here, as received otherwise. */
CONNECT_API uint16_t connect_datagram_version(const connect_datagram *dg);
/* The payload (writable: the datagram's owner may change it in place). */
CONNECT_API void *connect_datagram_data(connect_datagram *dg);
/* The payload length in bytes (1 .. CONNECT_MAX_PAYLOAD). */
CONNECT_API size_t connect_datagram_size(const connect_datagram *dg);

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Per-connection options.  A connect_opts object holds one value per option;
 * pass it (or NULL for every default) when dialing or listening.  Its values
 * are copied into the connection, so it may be freed or changed afterwards.
 */
typedef struct connect_opts connect_opts;

enum connect_opt {
	/* Outbound queue limit in bytes of payload; a single datagram larger
	 * than the limit is still accepted when the queue is empty.
	 * Default 16 MiB; 1 .. 2^62. */
	CONNECT_OPT_SEND_QUEUE_BYTES = 1,
	/* Outbound queue limit in datagrams.  Default 65536; 1 .. 2^62. */
	CONNECT_OPT_SEND_QUEUE_MSGS = 2,
	/* Inbound queue limit in bytes: past it the reader stops reading and
	 * TCP flow control slows the peer.  Default 16 MiB; 1 .. 2^62. */
	CONNECT_OPT_RECV_QUEUE_BYTES = 3,
	/* Inbound queue limit in datagrams.  Default 65536; 1 .. 2^62. */
	CONNECT_OPT_RECV_QUEUE_MSGS = 4,
	/* Largest payload accepted from the peer; a frame announcing more is
	 * a protocol error.  Default and maximum 100,000,000; minimum 1. */
	CONNECT_OPT_RECV_MAX_PAYLOAD = 5,
	/* Stack size of each library thread in bytes.  Default 256 KiB;
	 * 64 KiB .. 64 MiB. */
	CONNECT_OPT_THREAD_STACK = 6,
	/* Default linger of connect_close() (linger_ms < 0), in ms.
	 * Default 5000; 0 .. 2^31-1. */
	CONNECT_OPT_LINGER_MS = 7,
	/* TCP_NODELAY, 0 or 1.  Default 1. */
	CONNECT_OPT_TCP_NODELAY = 8,
	/* SO_KEEPALIVE, 0 or 1.  Default 1. */
	CONNECT_OPT_TCP_KEEPALIVE = 9,
	/* Time allowed to establish an outgoing TCP connection, in ms.
	 * Default 10000; 1 .. 2^31-1. */
	CONNECT_OPT_CONNECT_TIMEOUT_MS = 10,
	/* Listener only: connections accepted by the library but not yet taken
	 * by connect_accept*(); past it the library stops accepting and the
	 * kernel backlog holds further clients.  Handshakes in progress do
	 * not count here.  Default 128; 1 .. 65536. */
	CONNECT_OPT_ACCEPT_QUEUE = 11,
	/* Listener only: handshakes (TLS) in progress at once.  When another
	 * client arrives at the limit, the oldest handshake is cut (and
	 * counted by connect_listener_tls_failures()) once it has run for
	 * 4 ms per handshake allowed, at most 250 ms (until then the new
	 * client, accepted, waits for its handshake to start),
	 * so silent or slow peers cannot lock real clients out, and an
	 * honest burst of clients is not cut.  Default 64; 1 .. 65536. */
	CONNECT_OPT_HANDSHAKE_MAX = 12,
	/* TCP keepalive timing (with CONNECT_OPT_TCP_KEEPALIVE on): seconds
	 * of silence before the first probe, seconds between probes, probes
	 * unanswered before the connection fails (CONNECT_EDEADPEER).  0: the
	 * system's setting (Linux: 7200 s, 75 s, 9).  Ranges 0 .. 32767,
	 * 0 .. 32767, 0 .. 127. */
	CONNECT_OPT_TCP_KEEPALIVE_IDLE = 13,
	CONNECT_OPT_TCP_KEEPALIVE_INTERVAL = 14,
	CONNECT_OPT_TCP_KEEPALIVE_COUNT = 15,
	/* TCP_USER_TIMEOUT in ms: data we sent that stays unacknowledged this
	 * long fails the connection (CONNECT_EDEADPEER).  0: the system's
	 * (many minutes of retransmission).  0 .. 2^31-1. */
	CONNECT_OPT_TCP_USER_TIMEOUT_MS = 16,
	/* Fail the connection (CONNECT_EDEADPEER) when nothing at all arrives
	 * from the peer for this many ms.  0 (default): never.  Only for
	 * peers that send regularly (heartbeats of the application's). */
	CONNECT_OPT_RECV_IDLE_TIMEOUT_MS = 17,
	/* A frame that has begun must be complete within this many ms, or
	 * the connection fails (CONNECT_EDEADPEER): a peer dribbling bytes
	 * cannot hold the reader forever.  0: never.  Default 0; set it above
	 * the time the largest expected message takes to arrive. */
	CONNECT_OPT_FRAME_TIMEOUT_MS = 18,
	/* Inboxes (connect_inbox_new): how many bytes of payload and how
	 * many datagrams may wait in the inbox, over all its connections.
	 * At either bound the readers of its connections stop reading (the
	 * peers are slowed by flow control) until the workers have taken
	 * half.  Defaults 256 MiB and 1,048,576; ranges 1 .. 2^62. */
	CONNECT_OPT_INBOX_BYTES = 19,
	CONNECT_OPT_INBOX_MSGS = 20,
	/* Inboxes: the most connections attached at once.  Past it,
	 * connect_conn_attach() says CONNECT_ELIMIT and a listener feeding
	 * the inbox stops accepting (clients wait in the kernel's backlog)
	 * until a connection ends.  Default 0: no limit other than the
	 * system's (descriptors, threads). */
	CONNECT_OPT_INBOX_MAX_CONNS = 21,
	/* SCTP ("sctp://", "dtls+sctp://"): the UDP port of this process's
	 * SCTP stack (SCTP runs over UDP, RFC 6951).  The stack is one per
	 * process: the first SCTP dial or listen starts it on this port,
	 * and a later one asking for another port fails with
	 * CONNECT_EADDRINUSE.  0: any free port (or the one already in use).
	 * A port taken by another program fails with CONNECT_EADDRINUSE.
	 * Default 9899 (the registered sctp-tunneling port); 0 .. 65535. */
	CONNECT_OPT_SCTP_UDP_PORT = 22,
	/* SCTP, dialing: the UDP port of the peer's SCTP stack.  0 (default):
	 * the same as ours (CONNECT_OPT_SCTP_UDP_PORT, or the port the stack
	 * already uses).  A listener learns each client's port from its
	 * packets.  0 .. 65535. */
	CONNECT_OPT_SCTP_PEER_UDP_PORT = 23,
	/* SCTP: interval of the heartbeats that probe an idle peer, in ms;
	 * retransmission timeouts are capped at it too.  A peer that leaves
	 * CONNECT_OPT_SCTP_MAX_RETRANS heartbeats or retransmissions in a row
	 * unanswered fails the connection with CONNECT_EDEADPEER, within
	 * about (CONNECT_OPT_SCTP_MAX_RETRANS + 2) times this interval.
	 * 0: no heartbeats (a dead peer is noticed only when data goes
	 * unacknowledged).  Default 30000; 0 .. 2^31-1. */
	CONNECT_OPT_SCTP_HEARTBEAT_MS = 24,
	/* SCTP: heartbeats or retransmissions left unanswered in a row
	 * before the peer is declared dead.  Default 5; 1 .. 100. */
	CONNECT_OPT_SCTP_MAX_RETRANS = 25,
	/* How long connect_recv_wait() looks for a datagram before it
	 * sleeps, in microseconds, giving the processor to other threads
	 * between looks.  A thread put to sleep and woken costs several
	 * microseconds on each side; an answer that comes within this time
	 * costs none (a round trip on loopback: about 20 us less).  The price
	 * is up to this much processor time per wait that finds nothing.
	 * 0: sleep at once.  Default 50; 0 .. 1000000. */
	CONNECT_OPT_RECV_SPIN_US = 26,
};

/*
 * Create an options object holding every default.
 * Returns CONNECT_OK, CONNECT_EINVAL (optsp NULL) or CONNECT_ENOMEM.
 */
CONNECT_API int connect_opts_new(connect_opts **optsp);
/* Free an options object.  NULL is accepted. */
CONNECT_API void connect_opts_free(connect_opts *opts);
/*
 * Set an option.  Returns CONNECT_OK, or CONNECT_EINVAL for a NULL object,
 * an unknown option or a value outside the option's range (the object is
 * then unchanged).
 */
CONNECT_API int connect_opts_set(connect_opts *opts, int opt, int64_t value);
/* Read an option.  Returns CONNECT_OK or CONNECT_EINVAL. */
CONNECT_API int connect_opts_get(const connect_opts *opts, int opt,
				 int64_t *value);

typedef struct connect_tls_config connect_tls_config;

/*
 * The TLS configuration that connect_dial() and connect_listen() use for
 * the schemes with a "tls" layer.  The options object takes its own
 * reference (released by connect_opts_free() or by setting another; NULL
 * clears).  Connections and listeners take theirs when they are made.
 * Returns CONNECT_OK or CONNECT_EINVAL (opts NULL).
 */
CONNECT_API int connect_opts_set_tls(connect_opts *opts,
				     connect_tls_config *cfg);
/*
 * The name a TLS client verifies the server's certificate against (see
 * connect_tls_client()); NULL or unset: the host part of the address.
 * The name is copied.  Returns CONNECT_OK, or CONNECT_EINVAL for a NULL
 * opts, an empty name or one of 256 bytes or more.
 */
CONNECT_API int connect_opts_set_server_name(connect_opts *opts,
					     const char *name);

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

typedef struct connect_conn connect_conn;

/*
 * Dialing and listening.
 *
 * connect_dial() and connect_listen() take the transport as a URL scheme:
 *
 *     "tcp://host:port"       TCP ("host:port" without a scheme too)
 *     "tls+tcp://host:port"   TLS over TCP ("tls://host:port" too); the
 *                             configuration comes from
 *                             connect_opts_set_tls(), the name to verify
 *                             from connect_opts_set_server_name() (default:
 *                             the host)
 *
 * Hosts: names, "1.2.3.4" or "[::1]"; port 0 listens on a free port.
 * A new transport is a new scheme: no new functions.
 *
 * connect_dial returns what connect_tcp_client() and connect_tls_client()
 * return, plus CONNECT_EADDR for an unknown scheme and CONNECT_ETLSCONFIG
 * for a TLS scheme without a client configuration.
 */
CONNECT_API int connect_dial(connect_conn **connp, const char *url,
			     const connect_opts *opts);

/*
 * Open a TCP connection to `addr`: "host:port", "1.2.3.4:port" or
 * "[::1]:port".  The host is resolved with getaddrinfo() (IPv4 and IPv6) and
 * each address is tried in turn within CONNECT_OPT_CONNECT_TIMEOUT_MS.  On
 * success the reader and writer threads are running.
 *
 * Returns CONNECT_OK and sets *connp; or
 *   CONNECT_EINVAL        connp or addr NULL;
 *   CONNECT_EADDR         addr is not host:port (or the port is not 0..65535);
 *   CONNECT_ENOHOST       the host name does not resolve;
 *   CONNECT_ECONNREFUSED  nobody listens there;
 *   CONNECT_ETIMEDOUT     no answer within the connect timeout;
 *   CONNECT_ESYSTEM, CONNECT_ENOMEM, CONNECT_ETHREAD otherwise.
 * On failure *connp is left untouched.
 */
CONNECT_API int connect_tcp_client(connect_conn **connp, const char *addr,
				   const connect_opts *opts);

/*
 * Push `dg` onto the outbound queue without blocking.
 *
 * Returns CONNECT_OK: the datagram now belongs to the library, which frees
 * it once written.  Any other return leaves it with the caller:
 *   CONNECT_EINVAL   conn or dg NULL;
 *   CONNECT_EAGAIN   the outbound queue is at its limit (try later, or use
 *                    connect_send_wait());
 *   CONNECT_ECLOSED  connect_close() has begun;
 *   another code     the writer failed earlier (CONNECT_ECONNRESET,
 *                    CONNECT_EIO, a TLS code...), or the peer sent a
 *                    malformed frame (CONNECT_EPROTO): nothing more can be
 *                    sent.
 */
CONNECT_API int connect_send(connect_conn *conn, connect_datagram *dg);

/*
 * As connect_send(), waiting up to `timeout_ms` for room in the outbound
 * queue (timeout_ms < 0: no limit; 0: do not wait).  Returns what
 * connect_send() does, with CONNECT_ETIMEDOUT in place of CONNECT_EAGAIN.
 * A concurrent connect_close() makes it return CONNECT_ECLOSED.
 */
CONNECT_API int connect_send_wait(connect_conn *conn, connect_datagram *dg,
				  int timeout_ms);

/*
 * Pop the next datagram without blocking.
 *
 * Returns CONNECT_OK and sets *dgp (the caller owns the datagram and frees
 * it with connect_datagram_free()); or
 *   CONNECT_EINVAL      conn or dgp NULL;
 *   CONNECT_EAGAIN      nothing waiting yet;
 *   CONNECT_EEOF        the peer closed cleanly and every datagram that
 *                       arrived has been returned;
 *   CONNECT_EPROTO, CONNECT_ETRUNCATED, CONNECT_ECONNRESET, CONNECT_EIO,
 *   CONNECT_EDEADPEER, a
 *   TLS code...         the stream failed; every complete datagram before
 *                       the failure has been returned.  connect_conn_error()
 *                       gives the details;
 *   CONNECT_ECLOSED     connect_close() has begun.
 * End of stream and errors are sticky: later calls return them again.
 * After a truncated stream or an I/O error sending goes on until the writer
 * fails by itself (over TLS at once: a failed read ends the TLS session for
 * both directions, and sends then report the same code); a protocol error
 * (a malformed frame: the peer is broken and the stream cannot be
 * resynchronized) cuts the connection at once, and connect_send() then
 * returns CONNECT_EPROTO too.
 */
CONNECT_API int connect_recv(connect_conn *conn, connect_datagram **dgp);

/*
 * As connect_recv(), waiting up to `timeout_ms` (< 0: no limit) for a
 * datagram or the end of the stream.  CONNECT_ETIMEDOUT when none came:
 * only the wait ended, the connection is fine (a connection that failed
 * because its peer stopped responding says CONNECT_EDEADPEER).
 */
CONNECT_API int connect_recv_wait(connect_conn *conn, connect_datagram **dgp,
				  int timeout_ms);

/*
 * A file descriptor that polls readable while a datagram, the end of the
 * stream or an error is waiting for connect_recv().  It may occasionally be
 * readable with nothing to take (connect_recv() then says CONNECT_EAGAIN).
 * Never read, write or close it: it belongs to the connection and is closed
 * by connect_close().  Created on the first call.
 * Returns the descriptor (>= 0) or CONNECT_EINVAL / CONNECT_ESYSTEM.
 */
CONNECT_API int connect_conn_fd(connect_conn *conn);

/*
 * A file descriptor that polls readable while connect_send() would not say
 * CONNECT_EAGAIN: at first when the outbound queue has room, and after a
 * send met a full queue, once the writer has drained it to half its
 * limits; also once sends fail at once (an error, connect_close()).  A poll
 * loop that must not block waits on it for room instead of calling
 * connect_send_wait(): one client that does not read then never stalls the
 * others.  It may occasionally be readable with no room (the send then
 * says CONNECT_EAGAIN, which clears it).  Never read, write or close it;
 * connect_close() closes it.  Created on the first call.
 * Returns the descriptor (>= 0) or CONNECT_EINVAL / CONNECT_ESYSTEM.
 */
CONNECT_API int connect_conn_send_fd(connect_conn *conn);

/*
 * Close a connection: stop accepting sends, let the writer flush what is
 * queued for up to `linger_ms` (< 0: the CONNECT_OPT_LINGER_MS value; 0:
 * do not flush), end the stream cleanly (TCP FIN; TLS close_notify), stop
 * and join both threads, and free everything, including datagrams still
 * queued either way.  Threads waiting on the connection return
 * CONNECT_ECLOSED first.  If `unsent` is not NULL it receives the number of
 * datagrams accepted by connect_send*() that were never handed to the
 * network.  When the stream is cut (linger 0, or a linger that expired),
 * datagrams already handed over may be lost as well, unacknowledged in
 * flight: close then never returns CONNECT_OK.
 *
 * linger_ms == 0 aborts: nothing more is written and the stream is cut
 * without a clean end: the TCP stream (under TLS too) is reset, and the
 * peer sees CONNECT_ECONNRESET (over TLS, CONNECT_ETRUNCATED when it
 * meets the end before the reset), never CONNECT_EEOF.
 *
 * The rule: close reports failure exactly when something accepted by
 * connect_send*() may not have reached the peer.  "Reached" means the
 * peer's host acknowledged it (TCP): a peer that had read everything and
 * gone away before we closed (even one whose socket then answered our FIN
 * with a reset) is a success; a reset that left bytes we sent
 * unacknowledged is CONNECT_ECONNRESET.  Over TLS, once the peer's
 * close_notify came, our close_notify is a courtesy and its loss is not
 * a failure.
 *
 * Returns CONNECT_OK when everything queued was written and the stream was
 * ended cleanly (with linger 0: when nothing queued was lost),
 * CONNECT_ETIMEDOUT when the linger expired first, the writer's error if it
 * had failed, the error that kept the stream from ending cleanly (a reset
 * peer, a TLS session that a fatal alert ended...), or CONNECT_EINVAL for a
 * NULL conn.  Whatever it returns, the connection is gone.
 */
CONNECT_API int connect_close(connect_conn *conn, int linger_ms,
			      size_t *unsent);

/*
 * The connection's first error (from the reader or writer) with a reason a
 * person can act on ("oversized frame: 200000004 > limit 100000004",
 * "TLS alert received: Bad certificate", ...), written into buf (always
 * NUL-terminated if len > 0).  Returns the code, CONNECT_OK if there was none,
 * or CONNECT_EINVAL for a NULL conn.
 */
CONNECT_API int connect_conn_error(connect_conn *conn, char *buf, size_t len);

/*
 * The local or peer address as text ("127.0.0.1:40000", "[::1]:7878").
 * Returns CONNECT_OK, CONNECT_EINVAL (NULL argument, or len too small).
 */
CONNECT_API int connect_conn_local_addr(connect_conn *conn, char *buf,
					size_t len);
CONNECT_API int connect_conn_peer_addr(connect_conn *conn, char *buf,
				       size_t len);

enum connect_stat {
	CONNECT_STAT_MSGS_SENT = 1,   /* datagrams written to the stream */
	CONNECT_STAT_BYTES_SENT = 2,  /* payload bytes written */
	CONNECT_STAT_MSGS_RECV = 3,   /* datagrams read off the stream */
	CONNECT_STAT_BYTES_RECV = 4,  /* payload bytes read */
	CONNECT_STAT_SEND_QUEUED = 5, /* datagrams in the outbound queue */
	CONNECT_STAT_SEND_QUEUED_BYTES = 6,
	CONNECT_STAT_RECV_QUEUED = 7, /* datagrams waiting for recv */
	CONNECT_STAT_RECV_QUEUED_BYTES = 8,
};

/*
 * Read a counter.  Returns CONNECT_OK or CONNECT_EINVAL (NULL argument or
 * unknown counter).
 */
CONNECT_API int connect_conn_stat(connect_conn *conn, int stat,
				  uint64_t *value);

/* Read an option as the connection uses it.  Errors as connect_opts_get. */
CONNECT_API int connect_conn_opt(connect_conn *conn, int opt, int64_t *value);

/*
 * A pointer of the application's, kept with the connection (its session
 * state, say); NULL until set.  The library never looks at it.  Safe from
 * any thread; NULL conn is ignored (and connect_conn_user returns NULL).
 */
CONNECT_API void connect_conn_set_user(connect_conn *conn, void *user);
CONNECT_API void *connect_conn_user(connect_conn *conn);

enum connect_peer_info {
	/* The peer certificate's subject DN, RFC 4514 ("CN=client,O=Example") */
	CONNECT_PEER_SUBJECT = 1,
	/* Its issuer's DN. */
	CONNECT_PEER_ISSUER = 2,
	/* Its subject alternative names, comma-separated and typed:
	 * "DNS:localhost,IP:127.0.0.1,URI:spiffe://x,email:a@b" ("" if
	 * none). */
	CONNECT_PEER_SANS = 3,
	/* SHA-256 of the certificate (DER), 64 lowercase hex digits. */
	CONNECT_PEER_FINGERPRINT = 4,
};

/*
 * The verified identity of the peer, from its certificate (for a TLS
 * client: the server's; for a mutual-TLS server: the client's), written
 * into buf as text.  Only certificates that passed verification reach
 * this point: the handshake fails otherwise.
 *
 * Returns CONNECT_OK; or
 *   CONNECT_EINVAL      NULL argument, unknown `what`, or len too small;
 *   CONNECT_ENOTSUP     the transport authenticates nobody (TCP);
 *   CONNECT_ETLSNOCERT  the peer sent no certificate (a server with
 *                       client authentication off or optional);
 *   CONNECT_ECLOSED     connect_close() has begun;
 *   CONNECT_ETLS, CONNECT_ENOMEM.
 */
CONNECT_API int connect_conn_peer_identity(connect_conn *conn, int what,
					   char *buf, size_t len);

/*
 * A process-wide bound on the payload bytes of received datagrams that wait
 * for the application, over all connections (0, the default: none).  At
 * the bound every connection's reader stops reading, and the peers are
 * slowed by TCP flow control, until the application has taken enough for
 * the total to fall to half the bound.  It adds to the per-connection
 * CONNECT_OPT_RECV_QUEUE_* limits; frames being received are not counted.
 * A connection whose own queue is empty may always read once more, so an
 * application that waits on one connection at a time never deadlocks;
 * the bound may so be passed by one read (64 KiB and the frame under way)
 * per connection.
 * Set it before making connections: those made while no bound was ever
 * set are not counted (so that without one nothing is counted at all).
 * Safe from any thread at any time.  Returns CONNECT_OK.
 */
CONNECT_API int connect_set_recv_memory_limit(uint64_t bytes);
/* The payload bytes counted against that bound now. */
CONNECT_API uint64_t connect_recv_memory_used(void);

/* ------------------------------------------------------------------------ */
/* Listeners                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct connect_listener connect_listener;

/*
 * Listen on a URL (see connect_dial() for the schemes): "tcp://[::1]:0",
 * "tls+tcp://0.0.0.0:7878" with connect_opts_set_tls() holding a server
 * configuration.  Returns what connect_tcp_listen() and
 * connect_tls_listen() return, plus CONNECT_EADDR for an unknown scheme.
 */
CONNECT_API int connect_listen(connect_listener **lp, const char *url,
			       const connect_opts *opts);

/*
 * Listen for TCP connections on `addr` ("127.0.0.1:0", "[::1]:7878",
 * "localhost:0"...; port 0 picks a free port, see connect_listener_port()).
 * A library thread accepts connections and starts their threads, with
 * `opts` (NULL: defaults) applied to each.
 *
 * Returns CONNECT_OK and sets *lp; or CONNECT_EINVAL, CONNECT_EADDR,
 * CONNECT_ENOHOST, CONNECT_EADDRINUSE, CONNECT_EADDRNOTAVAIL,
 * CONNECT_ESYSTEM, CONNECT_ENOMEM, CONNECT_ETHREAD.  On failure *lp is untouched.
 */
CONNECT_API int connect_tcp_listen(connect_listener **lp, const char *addr,
				   const connect_opts *opts);

/*
 * Take the next accepted connection without blocking.
 * Returns CONNECT_OK and sets *connp (the caller owns it and closes it with
 * connect_close()); CONNECT_EAGAIN if none is waiting; CONNECT_ECLOSED once
 * connect_listener_close() has begun; CONNECT_EINVAL for NULL arguments.
 * The accepting thread never stops on its own: failures to accept (out of
 * descriptors, say) are logged ("CONNECT-ACCEPT") and retried, while the
 * kernel backlog keeps the clients waiting.
 */
CONNECT_API int connect_accept(connect_listener *l, connect_conn **connp);

/* As connect_accept(), waiting up to timeout_ms (< 0: no limit);
 * CONNECT_ETIMEDOUT when none came. */
CONNECT_API int connect_accept_wait(connect_listener *l, connect_conn **connp,
				    int timeout_ms);

/*
 * A descriptor that polls readable while a connection waits for
 * connect_accept().  Owned by the listener: never read or close it.
 * Returns the descriptor or CONNECT_EINVAL / CONNECT_ESYSTEM.
 */
CONNECT_API int connect_listener_fd(connect_listener *l);

/* The bound port (host byte order), or CONNECT_EINVAL for NULL. */
CONNECT_API int connect_listener_port(connect_listener *l);

/* The bound address as text.  Returns CONNECT_OK or CONNECT_EINVAL. */
CONNECT_API int connect_listener_addr(connect_listener *l, char *buf,
				      size_t len);

/*
 * Stop listening: close the socket, stop and join the accepting thread and
 * any TLS handshakes under way, close connections accepted but never taken,
 * and free the listener.  Connections already taken are not affected.
 * NULL is accepted.
 */
CONNECT_API void connect_listener_close(connect_listener *l);

/* ------------------------------------------------------------------------ */
/* TLS                                                                       */
/* ------------------------------------------------------------------------ */

enum connect_tls_role {
	CONNECT_TLS_CLIENT = 0,
	CONNECT_TLS_SERVER = 1,
};

enum connect_tls_client_auth {
	CONNECT_TLS_AUTH_NONE = 0,     /* do not ask for a client certificate */
	CONNECT_TLS_AUTH_OPTIONAL = 1, /* ask; verify it if one is sent */
	CONNECT_TLS_AUTH_REQUIRED = 2, /* ask; refuse clients without one */
};

/*
 * Create a TLS configuration for one role.  Defaults: priority
 * "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" (TLS 1.2 and 1.3 only), no
 * trusted CA (a client must set one, or the system store, before dialing),
 * client authentication off, handshake timeout 10000 ms.  A configuration
 * may be shared by any number of connections and listeners; it is reference
 * counted, so connect_tls_config_free() may be called while they live.
 * Returns CONNECT_OK, CONNECT_EINVAL, CONNECT_ENOMEM or CONNECT_ETLS.
 */
CONNECT_API int connect_tls_config_new(connect_tls_config **cfgp, int role);
/* Drop the caller's reference.  NULL is accepted. */
CONNECT_API void connect_tls_config_free(connect_tls_config *cfg);

/*
 * Own certificate chain and private key (PEM).  Required for a server,
 * optional for a client (mutual TLS).  Returns CONNECT_OK, CONNECT_EINVAL or
 * CONNECT_ETLSCONFIG (unreadable file, bad PEM, key not matching).
 */
CONNECT_API int connect_tls_config_cert_file(connect_tls_config *cfg,
					     const char *cert_path,
					     const char *key_path);
CONNECT_API int connect_tls_config_cert_mem(connect_tls_config *cfg,
					    const void *cert_pem,
					    size_t cert_len,
					    const void *key_pem,
					    size_t key_len);
/*
 * Trusted certificate authorities (PEM, one or more certificates), used to
 * verify the peer.  May be called several times to add more.  Returns
 * CONNECT_OK, CONNECT_EINVAL or CONNECT_ETLSCONFIG (nothing usable found).
 */
CONNECT_API int connect_tls_config_ca_file(connect_tls_config *cfg,
					   const char *path);
CONNECT_API int connect_tls_config_ca_mem(connect_tls_config *cfg,
					  const void *pem, size_t len);
/* Trust the system's store.  CONNECT_ETLSCONFIG if it has nothing. */
CONNECT_API int connect_tls_config_ca_system(connect_tls_config *cfg);
/* Server only: one of enum connect_tls_client_auth.  CONNECT_EINVAL on a
 * client configuration or an unknown mode. */
CONNECT_API int connect_tls_config_client_auth(connect_tls_config *cfg,
					       int mode);
/* A GnuTLS priority string.  CONNECT_ETLSCONFIG if GnuTLS rejects it. */
CONNECT_API int connect_tls_config_priority(connect_tls_config *cfg,
					    const char *priority);
/* Handshake timeout in ms, 1 .. 2^31-1. */
CONNECT_API int connect_tls_config_handshake_timeout(connect_tls_config *cfg,
						     int timeout_ms);

/*
 * Open a TLS connection to `addr` and complete the handshake, verifying the
 * server's certificate against the configured CAs and against `server_name`
 * (a DNS name, sent as SNI, or an IP address, checked against the
 * certificate's IP addresses and never sent as SNI).  Verification fails
 * closed.  `server_name` NULL means the host part of `addr`.
 *
 * Returns CONNECT_OK and sets *connp, or every error of connect_tcp_client()
 * plus: CONNECT_ETLSCONFIG (not a client configuration, or no CA),
 * CONNECT_ETLSUNKNOWNISSUER, CONNECT_ETLSNAMEMISMATCH, CONNECT_ETLSEXPIRED,
 * CONNECT_ETLSNOTYETVALID, CONNECT_ETLSBADCERT (also: a certificate not
 * meant for a TLS server), CONNECT_ETLSNOCERT (the server sent none),
 * CONNECT_ETLSNOTTLS, CONNECT_ETLSALERT, CONNECT_ETLSHANDSHAKETIMEOUT,
 * CONNECT_ETLS.
 *
 * With TLS 1.3 the server judges the client's certificate after the
 * client's side of the handshake is complete: a server that refuses it (or
 * its absence) makes this call succeed and the first connect_recv*() return
 * CONNECT_ETLSALERT ("Certificate is required", "Unknown CA"...).  With
 * TLS 1.2 this call returns CONNECT_ETLSALERT itself.
 */
CONNECT_API int connect_tls_client(connect_conn **connp, const char *addr,
				   const char *server_name,
				   connect_tls_config *cfg,
				   const connect_opts *opts);

/*
 * Listen for TLS connections.  As connect_tcp_listen(); every handshake runs
 * on a thread of its own with the configuration's timeout, so a slow or
 * hostile client never delays other accepts.  Only connections whose
 * handshake succeeded reach connect_accept().  Failed handshakes are counted
 * (connect_listener_tls_failures()) and logged (id "CONNECT-TLS-HANDSHAKE").
 * CONNECT_ETLSCONFIG: not a server configuration, or no certificate.
 */
CONNECT_API int connect_tls_listen(connect_listener **lp, const char *addr,
				   connect_tls_config *cfg,
				   const connect_opts *opts);

/*
 * The number of handshakes that failed on this listener, and the last
 * failure's code and reason (buf may be NULL).  Returns the count (>= 0) or
 * CONNECT_EINVAL.
 */
CONNECT_API int connect_listener_tls_failures(connect_listener *l,
					      int *last_err, char *buf,
					      size_t len);

/* ------------------------------------------------------------------------ */
/* Inboxes: many connections, one queue, a pool of worker threads           */
/* ------------------------------------------------------------------------ */

/*
 * An inbox is one queue that the reader threads of many connections feed
 * and that any number of worker threads pop from.  A complete server:
 *
 *     connect_inbox_new(&ib, 0, NULL);
 *     connect_listen(&l, "tcp://0.0.0.0:7000", NULL);
 *     connect_listener_set_inbox(l, ib);      every accepted connection
 *                                             is attached to ib
 *     N workers:  connect_item it;
 *                 while (connect_inbox_pop_wait(ib, &it, -1) == CONNECT_OK) {
 *                         if (it.kind == CONNECT_ITEM_DATAGRAM)
 *                                 connect_send(it.conn, it.dg);  (echo)
 *                         connect_item_done(&it);
 *                 }
 *     shutdown:   connect_listener_close(l);
 *                 connect_inbox_close(ib, 1000, NULL);  (workers wake
 *                                             with CONNECT_ECLOSED)
 *                 join the workers.
 *
 * ITEMS.  Each item is one of:
 *   CONNECT_ITEM_ATTACHED  the connection was attached (by
 *                          connect_conn_attach(), or accepted by a listener
 *                          that feeds the inbox); always its first item.
 *   CONNECT_ITEM_DATAGRAM  a datagram it received, in it.dg.
 *   CONNECT_ITEM_END       it ended: it.code is CONNECT_EEOF (the peer
 *                          closed cleanly) or the error (the text:
 *                          connect_conn_error(it.conn, ...)).  Always its
 *                          last item, after every datagram that came
 *                          before the end.
 *
 * ORDER.  The items of one connection are handed out in the order they
 * arrived, each exactly once.  By default (flags 0) once an item is popped
 * the connection's next item may be popped by another worker at once, so
 * two workers may process two datagrams of one connection at the same time
 * and finish in either order; only the hand-out is ordered.  With
 * CONNECT_INBOX_STRAND, while a worker holds an item of connection X (from
 * the pop until connect_item_done()), no worker gets X's next item: the
 * items of one connection are processed one at a time, in order (a
 * strand), while other connections' items go to the other workers.
 * Connections take turns: one busy connection cannot starve the others.
 *
 * HANDLES.  An item holds a reference to its connection until
 * connect_item_done(): it.conn stays valid memory, whatever other threads
 * do, so a worker may send on it or close it while other workers hold
 * items of the same connection.  Calls on a connection that was closed
 * return CONNECT_ECLOSED and touch nothing else.  it.user is the
 * connection's user pointer (connect_conn_set_user()) when the item was
 * popped: the worker's session state, with no lookup table.
 *
 * WHO CLOSES.  An attached connection belongs to the inbox: the one
 * accepted by a listener that feeds it, and the one the application
 * attached (connect_conn_attach() hands the application's handle over).
 * The library closes it once its END item is done (with its
 * CONNECT_OPT_LINGER_MS after a clean end, at once after an error), on a
 * thread of the inbox's, so that no worker waits for a slow peer; and
 * connect_inbox_close() closes them all.  A worker holding an item may
 * close its connection earlier with connect_close(it.conn, ...) (to drop
 * a client; its END item follows, with CONNECT_ECLOSED); closing is done
 * once, later calls return CONNECT_ECLOSED.  Outside an item, a pointer to
 * an attached connection may be freed as soon as its END item is done:
 * use it.conn.  Without CONNECT_INBOX_STRAND the END item may be done
 * while another worker still holds one of the connection's datagrams;
 * that worker's reply then meets a closed connection (CONNECT_ECLOSED).
 *
 * THE ONE-CONNECTION API.  An attached connection's datagrams go to the
 * inbox only: connect_recv*() and connect_conn_fd() on it return
 * CONNECT_EATTACHED.  Sending, statistics, addresses, the user pointer and
 * connect_close() work as without an inbox.  Connections never attached
 * are untouched by all of this.
 *
 * FLOW CONTROL.  Each connection keeps its CONNECT_OPT_RECV_QUEUE_* bounds;
 * the inbox adds CONNECT_OPT_INBOX_BYTES / _MSGS over all of them.  At a
 * bound, readers stop reading until the workers catch up (a reader whose
 * own connection has nothing waiting still reads, so that one connection
 * held by a worker never stops the others: the bound is exceeded by at
 * most one read per connection): memory stays bounded, nothing is
 * dropped.
 *
 * THREAD SAFETY.  Every inbox call may run from any thread at the same time
 * as any other, except connect_inbox_close(), which wakes the calls waiting
 * in it (CONNECT_ECLOSED) and waits for the calls in progress on the inbox
 * (pops, connect_inbox_fd, connect_inbox_stat, connect_conn_attach,
 * connect_listener_set_inbox) to leave; as with connect_close(), no call
 * may start after it, except connect_item_done() on items still held.  An
 * item is a plain struct owned by the worker that popped it.
 */
typedef struct connect_inbox connect_inbox;

enum connect_item_kind {
	CONNECT_ITEM_ATTACHED = 1,
	CONNECT_ITEM_DATAGRAM = 2,
	CONNECT_ITEM_END = 3,
};

/* connect_inbox_new() flags. */
#define CONNECT_INBOX_STRAND 0x1u

typedef struct connect_item {
	int kind;             /* enum connect_item_kind */
	int code;             /* END: CONNECT_EEOF or the error; else 0 */
	connect_conn *conn;   /* the connection, held until connect_item_done */
	connect_datagram *dg; /* DATAGRAM: the datagram, now the caller's (send
			       * it, or free it); NULL for events */
	void *user;           /* the connection's user pointer at the pop */
	void *internal_[2];   /* the library's */
} connect_item;

/*
 * Create an inbox.  flags: 0 or CONNECT_INBOX_STRAND.  opts (NULL for the
 * defaults): CONNECT_OPT_INBOX_BYTES, _MSGS, _MAX_CONNS; other options are
 * ignored.  Starts one thread (it closes ended connections).  Returns
 * CONNECT_OK and sets *ibp, CONNECT_EINVAL (ibp NULL, unknown flags),
 * CONNECT_ENOMEM or CONNECT_ETHREAD; on failure *ibp is untouched.
 */
CONNECT_API int connect_inbox_new(connect_inbox **ibp, unsigned flags,
				  const connect_opts *opts);

/*
 * Close an inbox: waiting pops return CONNECT_ECLOSED, and every attached
 * connection is closed, all at once: each may flush what it has queued
 * for up to linger_ms (< 0: each connection's CONNECT_OPT_LINGER_MS; 0:
 * cut at once).  Datagrams received but never popped are freed; their
 * number goes to *dropped (may be NULL).  Items still held stay valid until
 * connect_item_done().  A listener that feeds the inbox must be closed
 * first (its later connections would be closed at once).  Returns
 * CONNECT_OK when every connection flushed and ended cleanly; when some
 * did not (their unsent datagrams are counted in *dropped too), the first
 * such connection's code: CONNECT_ETIMEDOUT (the linger ran out), or the
 * error that had ended it (CONNECT_ECONNRESET, CONNECT_EPROTO...); a
 * connection that had ended is no failure of the close.  CONNECT_EINVAL
 * for NULL.  Frees the inbox once the
 * last connection and item referring to it are gone.
 */
CONNECT_API int connect_inbox_close(connect_inbox *ib, int linger_ms,
				    size_t *dropped);

/*
 * Pop the next item without blocking.  Returns CONNECT_OK and fills *item,
 * CONNECT_EAGAIN when there is none, CONNECT_ECLOSED once the inbox is
 * closing, CONNECT_EINVAL for NULL arguments.  Every item popped must be
 * given back with connect_item_done().
 */
CONNECT_API int connect_inbox_pop(connect_inbox *ib, connect_item *item);

/*
 * As connect_inbox_pop(), waiting up to timeout_ms (< 0: without a limit)
 * for an item.  CONNECT_ETIMEDOUT when none came.
 */
CONNECT_API int connect_inbox_pop_wait(connect_inbox *ib, connect_item *item,
				       int timeout_ms);

/*
 * A descriptor that polls readable while items wait (level-triggered; a
 * worker woken by it calls connect_inbox_pop(), which may still say
 * CONNECT_EAGAIN when another worker was faster), and once the inbox is
 * closing.  Owned by the inbox.  Returns the descriptor, CONNECT_EINVAL or
 * CONNECT_ESYSTEM.
 */
CONNECT_API int connect_inbox_fd(connect_inbox *ib);

/*
 * Give an item back: drop its hold on the connection and, in strand mode,
 * let the connection's next item go.  For an END item, the library then
 * closes the connection (see WHO CLOSES).  The datagram (it.dg) is not
 * touched: it is the caller's.  Clears *item.  NULL, and an item already
 * done, are ignored.
 */
CONNECT_API void connect_item_done(connect_item *item);

/*
 * Attach a connection to an inbox: from now on its datagrams and its end
 * go there, after an ATTACHED item.  Datagrams it received before and that
 * were not taken by connect_recv*() come first, in order: nothing is lost
 * or reordered.  The connection now belongs to the inbox (see WHO CLOSES):
 * after this call use it through items; do not connect_close() it later
 * outside one.  On failure it is still the application's.
 * Returns CONNECT_OK, CONNECT_EINVAL (NULL, or attached already),
 * CONNECT_ECLOSED (the connection or the inbox is closing), CONNECT_ELIMIT
 * (CONNECT_OPT_INBOX_MAX_CONNS reached).
 */
CONNECT_API int connect_conn_attach(connect_conn *conn, connect_inbox *ib);

/*
 * Make a listener feed an inbox: every connection it accepts from now on
 * (and every one waiting for connect_accept()) is attached to ib, and
 * connect_accept*() return CONNECT_EATTACHED.  The listener holds a
 * reference to the inbox.  With CONNECT_OPT_INBOX_MAX_CONNS, a client's
 * place is reserved when it is accepted, before its TLS handshake: the
 * clients past the limit wait in the kernel's backlog, none is dropped.  Returns CONNECT_OK, CONNECT_EINVAL (NULL, or
 * feeding an inbox already) or CONNECT_ECLOSED.
 */
CONNECT_API int connect_listener_set_inbox(connect_listener *l,
					   connect_inbox *ib);

enum connect_inbox_stat {
	CONNECT_INBOX_STAT_CONNS = 1,        /* connections attached now */
	CONNECT_INBOX_STAT_QUEUED = 2,       /* datagrams waiting */
	CONNECT_INBOX_STAT_QUEUED_BYTES = 3, /* their payload bytes */
	CONNECT_INBOX_STAT_ATTACHED = 4,     /* connections ever attached */
	CONNECT_INBOX_STAT_ENDED = 5,        /* END items done */
	CONNECT_INBOX_STAT_CLOSING = 6,      /* ended connections the inbox's
					      * thread has still to close */
};

/* Read a counter.  Returns CONNECT_OK, or CONNECT_EINVAL. */
CONNECT_API int connect_inbox_stat(connect_inbox *ib, int stat,
				   uint64_t *value);

#ifdef __cplusplus
}
#endif

#endif /* CONNECT_CONNECT_H */
