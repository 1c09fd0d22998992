/*
 * The delivery interface: where a connection's reader puts what it
 * received.  The connection's own inbound queue (conn.c) implements it;
 * an inbox shared by many connections will implement it too.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every operation is called by the connection's reader thread, in this
 * order: any number of rounds of (wait_room, push..., flush), then end once.
 * The consumer side (whoever pops) unparks a reader that waits for room.
 */
#ifndef CONNECT_SINK_H
#define CONNECT_SINK_H

#include "connect_int.h"

struct cn_sink;

struct cn_sink_ops {
	/*
	 * Wait until there is room for more datagrams (past a full sink the
	 * reader stops reading, and the transport's flow control slows the
	 * peer).  False when the connection is closing: stop reading.
	 */
	bool (*wait_room)(struct cn_sink *s);
	/*
	 * Take one datagram (now owned by the sink), not yet visible to the
	 * consumers.  True when enough are waiting: flush now.
	 */
	bool (*push)(struct cn_sink *s, struct connect_datagram *dg);
	/* Hand what was pushed to the consumers at once (one count, one
	 * enqueue), and wake them. */
	void (*flush)(struct cn_sink *s);
	/*
	 * The stream ended: CONNECT_EEOF after a clean end, or the error,
	 * after every datagram that came before it was pushed.
	 */
	void (*end)(struct cn_sink *s, int code);
};

struct cn_sink {
	const struct cn_sink_ops *ops;
};

#endif /* CONNECT_SINK_H */
