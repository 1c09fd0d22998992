/*
 * A bounded datagram queue around liburcu's wait-free concurrent queue.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Synchronization:
 *   - cn_queue_reserve/unreserve/account/release, cn_queue_push and
 *     cn_queue_empty are safe from any number of threads at once (enqueue is
 *     wait-free).
 *   - cn_queue_pop and cn_queue_splice dequeue: the caller guarantees one
 *     dequeuer at a time (the writer alone, or recv under the connection's
 *     receive lock).
 * The byte and message counters implement the high-water marks; they are
 * kept beside the queue, separate from head and tail.
 */
#ifndef CONNECT_QUEUE_H
#define CONNECT_QUEUE_H

#include "connect_int.h"

struct cn_queue {
	struct __cds_wfcq_head head __attribute__((aligned(CN_CACHELINE)));
	struct cds_wfcq_tail tail __attribute__((aligned(CN_CACHELINE)));
	_Atomic uint64_t bytes __attribute__((aligned(CN_CACHELINE)));
	_Atomic uint64_t msgs;
	uint64_t max_bytes;
	uint64_t max_msgs;
};

void cn_queue_init(struct cn_queue *q, uint64_t max_bytes, uint64_t max_msgs);
/* Free every datagram still queued; returns how many there were (a pack
 * counts the datagrams it holds). */
size_t cn_queue_fini(struct cn_queue *q);

/*
 * Reserve room for one datagram of `len` payload bytes.  False when the
 * queue is at a limit; a datagram is always admitted into an empty queue, so
 * one larger than the byte limit can still pass.
 */
bool cn_queue_reserve(struct cn_queue *q, uint64_t len);
/* Undo a reservation that was not followed by a push. */
void cn_queue_unreserve(struct cn_queue *q, uint64_t len);
/* Count datagrams in without a limit check (the reader, which checks
 * cn_queue_full() before reading more). */
void cn_queue_account(struct cn_queue *q, uint64_t msgs, uint64_t bytes);
/* Count datagrams out. */
void cn_queue_release(struct cn_queue *q, uint64_t msgs, uint64_t bytes);
/* At or over a limit. */
bool cn_queue_full(const struct cn_queue *q);
/* At or below half of both limits: the low-water mark at which a reader
 * that stopped on a full queue starts reading again (at, so that a limit
 * of 1 can resume). */
bool cn_queue_low(const struct cn_queue *q);

/* Enqueue (wait-free).  Returns true when the queue was empty before:
 * the edge on which a sleeping consumer must be woken. */
bool cn_queue_push(struct cn_queue *q, struct connect_datagram *dg);
/* Enqueue the datagrams linked from first to last (last->next NULL), in
 * one step; returns as cn_queue_push. */
bool cn_queue_push_chain(struct cn_queue *q, struct cds_wfcq_node *first,
			 struct cds_wfcq_node *last);

/*
 * Dequeue one datagram and count it out.  NULL when the queue is empty, or
 * with *busy set when an enqueue is half-done (CDS_WFCQ_WOULDBLOCK: "not
 * yet", not "empty").
 */
struct connect_datagram *cn_queue_pop(struct cn_queue *q, bool *busy);

/*
 * Move everything queued onto the local list (*head, *tail), which must be
 * initialized with __cds_wfcq_init.  Counters are NOT released: the caller
 * releases after it has written them.  Returns false if nothing was moved.
 */
bool cn_queue_splice(struct cn_queue *q, struct __cds_wfcq_head *head,
		     struct cds_wfcq_tail *tail);

bool cn_queue_empty(struct cn_queue *q);
uint64_t cn_queue_msgs(const struct cn_queue *q);
uint64_t cn_queue_bytes(const struct cn_queue *q);

#endif /* CONNECT_QUEUE_H */
