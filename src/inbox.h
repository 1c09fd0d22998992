/*
 * Inboxes (inbox.c) and the part of a connection they drive (conn.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A connection attached to an inbox keeps its received datagrams in its
 * own inbound queue, as without an inbox.  What the inbox queues is the
 * connection itself: a token (a node inside the connection) on the ready
 * queue, present while the connection has something to hand out and no
 * worker is taking from it.  A worker pops a token, takes ONE item from
 * that connection, and puts the token back at the tail if more is waiting
 * (at once, or in strand mode when the item is done).  So the items of one
 * connection go out in order and one at a time, connections take turns,
 * and nothing is copied or allocated per datagram.
 *
 * The token's state (conn.c, `sched`):
 *   IDLE       not queued, nobody taking: the next arrival queues it
 *   READY      on the ready queue
 *   HELD       a worker took it off (and, in strand mode, holds an item)
 *   HELD_MORE  held, and something arrived meanwhile: queue it again on
 *              release
 * Arrivals move IDLE -> READY (and queue it) or HELD -> HELD_MORE, by
 * compare-and-swap; the release looks for work, then moves HELD -> IDLE by
 * compare-and-swap, or queues the token again.  Each side's step is one
 * atomic operation on `sched`, so an arrival is never missed.
 */
#ifndef CONNECT_INBOX_H
#define CONNECT_INBOX_H

#include "connect_int.h"

/* What an inbox keeps in each attached connection (under the inbox's
 * lock). */
struct cn_inbox_link {
	struct connect_conn *conn;
	struct cn_inbox_link *prev, *next; /* attached connections */
	struct cn_inbox_link *close_next;  /* ended, for the closing thread */
	bool listed;                       /* under the inbox's lock */
	bool mine;                         /* closing: ours to end */
};

/* ---- inbox.c, for conn.c ---- */
void cn_inbox_ref(connect_inbox *ib);
void cn_inbox_unref(connect_inbox *ib);
bool cn_inbox_strand(const connect_inbox *ib);
/* Queue a connection's token (its state just became READY); false once
 * the inbox is closing (not queued). */
bool cn_inbox_ready(connect_inbox *ib, struct cds_wfcq_node *token);
/* Count datagrams into and out of the inbox's bounds. */
void cn_inbox_count(connect_inbox *ib, uint64_t msgs, uint64_t bytes);
void cn_inbox_uncount(connect_inbox *ib, uint64_t bytes);
bool cn_inbox_full(connect_inbox *ib);
/* A reader waits while the inbox is full and its own queue `own` is not
 * empty, until *stop. */
struct cn_queue;
void cn_inbox_wait_room(connect_inbox *ib, _Atomic int *stop,
			struct cn_queue *own);
/* Wake readers waiting for room (one of them is closing, or its own
 * queue became empty). */
void cn_inbox_wake_room(connect_inbox *ib);
bool cn_inbox_room_waiters(connect_inbox *ib);
/* List a connection as attached: CONNECT_OK, CONNECT_ECLOSED or
 * CONNECT_ELIMIT.  reserved: its place was reserved (no limit check; the
 * reservation is used up, also when the inbox is closing). */
int cn_inbox_add(connect_inbox *ib, struct cn_inbox_link *link,
		 bool reserved);
/* Reserve a place for a connection to come (a listener, at accept, for a
 * connection that has its handshake to go): false when there is none or
 * the inbox is closing.  unreserve gives it back unused. */
bool cn_inbox_reserve(connect_inbox *ib);
void cn_inbox_unreserve(connect_inbox *ib);
/* Register a call in progress (connect_inbox_close waits for it); false
 * when the inbox is closing.  leave in any case. */
bool cn_inbox_enter(connect_inbox *ib);
void cn_inbox_leave(connect_inbox *ib);
/* Unlist a connection that never started (no END item will come). */
void cn_inbox_remove(connect_inbox *ib, struct cn_inbox_link *link);
/* A connection's END item is done: unlist it and have the inbox's thread
 * close it and drop the inbox's reference. */
void cn_inbox_ended(connect_inbox *ib, struct cn_inbox_link *link);
/* Room for one more connection (CONNECT_OPT_INBOX_MAX_CONNS). */
bool cn_inbox_room(connect_inbox *ib);

/* ---- conn.c, for inbox.c and listener.c ---- */
struct connect_conn *cn_conn_of_token(struct cds_wfcq_node *token);
/* Take the next item of a connection whose token was popped.  False if
 * there was none (the token was stale). */
bool cn_conn_take(struct connect_conn *c, connect_item *item, bool strand);
/* Attach: the caller's reference becomes the inbox's. */
int cn_conn_attach(struct connect_conn *c, connect_inbox *ib);
/* Close in two steps, so that many connections linger at once.  begin:
 * false if somebody else closes it.  end: the result of connect_close();
 * *unsent and *undelivered (datagrams received and never taken) may be
 * NULL. */
bool cn_conn_close_begin(struct connect_conn *c, int linger_ms);
int cn_conn_close_end(struct connect_conn *c, size_t *unsent,
		      size_t *undelivered);
/* close_end in two steps, so that many connections' threads end at once:
 * stop (wait for the writer within the linger, cut the stream, wake the
 * threads), then finish (join them, free). */
void cn_conn_close_stop(struct connect_conn *c);
int cn_conn_close_finish(struct connect_conn *c, size_t *unsent,
			 size_t *undelivered);
/* The linger to close an ended connection with. */
int cn_conn_end_linger(struct connect_conn *c);

#endif /* CONNECT_INBOX_H */
