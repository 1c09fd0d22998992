/*
 * Bounded datagram queue over liburcu's wfcqueue (see queue.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "queue.h"
#include "alloc.h"

#include <stdlib.h>

void cn_queue_init(struct cn_queue *q, uint64_t max_bytes, uint64_t max_msgs)
{
	__cds_wfcq_init(&q->head, &q->tail);
	atomic_init(&q->bytes, 0);
	atomic_init(&q->msgs, 0);
	q->max_bytes = max_bytes;
	q->max_msgs = max_msgs;
}

size_t cn_queue_fini(struct cn_queue *q)
{
	struct connect_datagram *dg;
	size_t n = 0;
	bool busy;

	/* Called once no thread enqueues any more. */
	while ((dg = cn_queue_pop(q, &busy)) != NULL || busy) {
		if (dg) {
			n += (size_t)cn_dg_msgs(dg);
			cn_datagram_free(dg);
		}
	}
	return n;
}

bool cn_queue_reserve(struct cn_queue *q, uint64_t len)
{
	uint64_t cur = atomic_load_explicit(&q->bytes, memory_order_relaxed);

	do {
		if (cur != 0 && cur + len > q->max_bytes)
			return false;
	} while (!atomic_compare_exchange_weak(&q->bytes, &cur, cur + len));
	if (atomic_fetch_add(&q->msgs, 1) >= q->max_msgs) {
		atomic_fetch_sub(&q->msgs, 1);
		atomic_fetch_sub(&q->bytes, len);
		return false;
	}
	return true;
}

void cn_queue_unreserve(struct cn_queue *q, uint64_t len)
{
	cn_queue_release(q, 1, len);
}

void cn_queue_account(struct cn_queue *q, uint64_t msgs, uint64_t bytes)
{
	atomic_fetch_add(&q->bytes, bytes);
	atomic_fetch_add(&q->msgs, msgs);
}

void cn_queue_release(struct cn_queue *q, uint64_t msgs, uint64_t bytes)
{
	atomic_fetch_sub(&q->bytes, bytes);
	atomic_fetch_sub(&q->msgs, msgs);
}

bool cn_queue_full(const struct cn_queue *q)
{
	return atomic_load(&q->bytes) >= q->max_bytes ||
	       atomic_load(&q->msgs) >= q->max_msgs;
}

bool cn_queue_push(struct cn_queue *q, struct connect_datagram *dg)
{
	/* A datagram popped from another queue still points at its old
	 * successor: the enqueue needs next == NULL. */
	cds_wfcq_node_init(&dg->node);
	CN_TSAN_RELEASE(dg);
	/* cds_wfcq_enqueue returns false when the queue was empty before. */
	return !cds_wfcq_enqueue(&q->head, &q->tail, &dg->node);
}

bool cn_queue_push_chain(struct cn_queue *q, struct cds_wfcq_node *first,
			 struct cds_wfcq_node *last)
{
	return !___cds_wfcq_append(&q->head, &q->tail, first, last);
}

struct connect_datagram *cn_queue_pop(struct cn_queue *q, bool *busy)
{
	struct cds_wfcq_node *node;
	struct connect_datagram *dg;

	*busy = false;
	node = __cds_wfcq_dequeue_nonblocking(&q->head, &q->tail);
	if (node == CDS_WFCQ_WOULDBLOCK) {
		*busy = true;
		return NULL;
	}
	if (!node)
		return NULL;
	dg = cn_container_of(node, struct connect_datagram, node);
#ifndef CN_TSAN
	/* The next one was written on another core: start fetching it while
	 * the caller works on this one (a hint; an enqueue may be changing
	 * the field, which ThreadSanitizer would report). */
	__builtin_prefetch(CMM_LOAD_SHARED(q->head.node.next));
#endif
	CN_TSAN_ACQUIRE(dg);
	cn_queue_release(q, cn_dg_msgs(dg), cn_dg_bytes(dg));
	return dg;
}

bool cn_queue_splice(struct cn_queue *q, struct __cds_wfcq_head *head,
		     struct cds_wfcq_tail *tail)
{
	enum cds_wfcq_ret ret;

	ret = __cds_wfcq_splice_blocking(head, tail, &q->head, &q->tail);
	return ret != CDS_WFCQ_RET_SRC_EMPTY;
}

bool cn_queue_empty(struct cn_queue *q)
{
	return cds_wfcq_empty(&q->head, &q->tail);
}

uint64_t cn_queue_msgs(const struct cn_queue *q)
{
	return atomic_load(&q->msgs);
}

uint64_t cn_queue_bytes(const struct cn_queue *q)
{
	return atomic_load(&q->bytes);
}

bool cn_queue_low(const struct cn_queue *q)
{
	return atomic_load(&q->bytes) <= q->max_bytes / 2 &&
	       atomic_load(&q->msgs) <= q->max_msgs / 2;
}
