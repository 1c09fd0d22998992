/*
 * Inboxes: one queue of connections with something to hand out, fed by
 * the readers of many connections, popped by a pool of workers (inbox.h
 * says how).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Locking theory.
 *   - The ready queue is a wait-free queue: readers enqueue tokens without
 *     a lock; workers dequeue under pop_lock, one at a time.
 *   - `lock` guards the list of attached connections, the closing list and
 *     the counters that go with them, and is the mutex of the condition
 *     variables: `cv` (workers waiting for an item), `room_cv` (readers
 *     waiting for room), `closer_cv` (the closing thread).  Waiters
 *     announce themselves in an atomic counter first, so that the busy
 *     path takes no lock (as in conn.c).
 *   - `users` counts calls in progress; connect_inbox_close() waits for it
 *     to reach 0.  `refs` counts who holds the memory: the application,
 *     every attached connection (until it is freed), a listener feeding
 *     the inbox.
 */
#include "connect_int.h"

#include <errno.h>
#include <sched.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "inbox.h"
#include "queue.h"

/* Closes in one burst after which memory is given back (malloc_trim). */
#define CN_TRIM_AFTER 64

struct connect_inbox {
	struct __cds_wfcq_head head __attribute__((aligned(CN_CACHELINE)));
	struct cds_wfcq_tail tail __attribute__((aligned(CN_CACHELINE)));
	_Atomic uint64_t bytes __attribute__((aligned(CN_CACHELINE)));
	_Atomic uint64_t msgs;
	uint64_t max_bytes, max_msgs, max_conns;
	bool strand;

	pthread_mutex_t pop_lock; /* one dequeuer at a time */
	pthread_mutex_t lock;
	pthread_cond_t cv;        /* workers: a token, or closing */
	pthread_cond_t room_cv;   /* readers: room, or their close */
	pthread_cond_t closer_cv; /* the closing thread: work, or stop */
	_Atomic int waiters;      /* workers sleeping on cv */
	_Atomic int room_waiters; /* readers sleeping on room_cv */
	_Atomic int efd;          /* connect_inbox_fd, or -1 */

	struct cn_inbox_link *conns;    /* attached, under lock */
	struct cn_inbox_link *to_close; /* ended, under lock */
	struct cn_inbox_link **to_close_tail;
	_Atomic uint64_t nconns, attached, ended, nclosing;
	_Atomic uint64_t reserved; /* places a listener reserved */
	bool closer_stop; /* under lock */
	pthread_t closer;

	_Atomic int closing;
	_Atomic int qdead;     /* the ready queue takes no more tokens */
	_Atomic int enqueuing; /* tokens being enqueued */
	_Atomic int users;
	_Atomic int refs;
};

static void efd_signal(int fd)
{
	uint64_t one = 1;

	if (fd >= 0)
		while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
}

static void efd_clear(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void enter(struct connect_inbox *ib)
{
	atomic_fetch_add(&ib->users, 1);
}

static void leave(struct connect_inbox *ib)
{
	if (atomic_fetch_sub(&ib->users, 1) == 1 &&
	    atomic_load(&ib->closing)) {
		pthread_mutex_lock(&ib->lock);
		pthread_cond_broadcast(&ib->cv);
		pthread_mutex_unlock(&ib->lock);
	}
}

void cn_inbox_ref(connect_inbox *ib)
{
	atomic_fetch_add(&ib->refs, 1);
}

static void inbox_free(struct connect_inbox *ib)
{
	int fd = atomic_load(&ib->efd);

	if (fd >= 0)
		close(fd);
	pthread_mutex_destroy(&ib->pop_lock);
	pthread_mutex_destroy(&ib->lock);
	pthread_cond_destroy(&ib->cv);
	pthread_cond_destroy(&ib->room_cv);
	pthread_cond_destroy(&ib->closer_cv);
	cn_free_aligned(ib);
}

void cn_inbox_unref(connect_inbox *ib)
{
	if (atomic_fetch_sub(&ib->refs, 1) == 1)
		inbox_free(ib);
}

bool cn_inbox_strand(const connect_inbox *ib)
{
	return ib->strand;
}

/* ------------------------------------------------------------ the queue */

bool cn_inbox_ready(connect_inbox *ib, struct cds_wfcq_node *token)
{
	bool was_empty;

	/* connect_inbox_close() stops the queue, then drains it: an enqueue
	 * is either over before the drain or refused. */
	atomic_fetch_add(&ib->enqueuing, 1);
	if (atomic_load(&ib->qdead)) {
		atomic_fetch_sub(&ib->enqueuing, 1);
		return false;
	}
	cds_wfcq_node_init(token);
	CN_TSAN_RELEASE(token);
	was_empty = !cds_wfcq_enqueue(&ib->head, &ib->tail, token);
	atomic_fetch_sub(&ib->enqueuing, 1);
	/* One sleeping worker per token: each token is one item's worth. */
	if (atomic_load(&ib->waiters) > 0) {
		pthread_mutex_lock(&ib->lock);
		pthread_cond_signal(&ib->cv);
		pthread_mutex_unlock(&ib->lock);
	}
	if (was_empty)
		efd_signal(atomic_load(&ib->efd));
	return true;
}

static bool ready_empty(struct connect_inbox *ib)
{
	return cds_wfcq_empty(&ib->head, &ib->tail);
}

void cn_inbox_count(connect_inbox *ib, uint64_t msgs, uint64_t bytes)
{
	atomic_fetch_add(&ib->bytes, bytes);
	atomic_fetch_add(&ib->msgs, msgs);
}

static bool room_low(struct connect_inbox *ib)
{
	return atomic_load(&ib->bytes) <= ib->max_bytes / 2 &&
	       atomic_load(&ib->msgs) <= ib->max_msgs / 2;
}

void cn_inbox_uncount(connect_inbox *ib, uint64_t bytes)
{
	atomic_fetch_sub(&ib->bytes, bytes);
	atomic_fetch_sub(&ib->msgs, 1);
	/* Seq-cst after the change: either the reader sees the room, or we
	 * see it waiting. */
	if (atomic_load(&ib->room_waiters) > 0 && room_low(ib)) {
		pthread_mutex_lock(&ib->lock);
		pthread_cond_broadcast(&ib->room_cv);
		pthread_mutex_unlock(&ib->lock);
	}
}

bool cn_inbox_full(connect_inbox *ib)
{
	return atomic_load(&ib->bytes) >= ib->max_bytes ||
	       atomic_load(&ib->msgs) >= ib->max_msgs;
}

void cn_inbox_wait_room(connect_inbox *ib, _Atomic int *stop,
			struct cn_queue *own)
{
	pthread_mutex_lock(&ib->lock);
	atomic_fetch_add(&ib->room_waiters, 1);
	while (!room_low(ib) && !atomic_load(stop) &&
	       !atomic_load(&ib->closing) && !cn_queue_empty(own))
		pthread_cond_wait(&ib->room_cv, &ib->lock);
	atomic_fetch_sub(&ib->room_waiters, 1);
	pthread_mutex_unlock(&ib->lock);
}

bool cn_inbox_room_waiters(connect_inbox *ib)
{
	return atomic_load(&ib->room_waiters) > 0;
}

void cn_inbox_wake_room(connect_inbox *ib)
{
	pthread_mutex_lock(&ib->lock);
	pthread_cond_broadcast(&ib->room_cv);
	pthread_mutex_unlock(&ib->lock);
}

/* ------------------------------------------------- attached connections */

bool cn_inbox_room(connect_inbox *ib)
{
	return ib->max_conns == 0 ||
	       atomic_load(&ib->nconns) + atomic_load(&ib->reserved) <
		       ib->max_conns;
}

bool cn_inbox_reserve(connect_inbox *ib)
{
	bool ok;

	pthread_mutex_lock(&ib->lock);
	ok = !atomic_load(&ib->closing) && cn_inbox_room(ib);
	if (ok)
		atomic_fetch_add(&ib->reserved, 1);
	pthread_mutex_unlock(&ib->lock);
	return ok;
}

void cn_inbox_unreserve(connect_inbox *ib)
{
	atomic_fetch_sub(&ib->reserved, 1);
}

bool cn_inbox_enter(connect_inbox *ib)
{
	enter(ib);
	return !atomic_load(&ib->closing);
}

void cn_inbox_leave(connect_inbox *ib)
{
	leave(ib);
}

int cn_inbox_add(connect_inbox *ib, struct cn_inbox_link *link,
		 bool reserved)
{
	int rc = CONNECT_OK;

	pthread_mutex_lock(&ib->lock);
	if (reserved)
		atomic_fetch_sub(&ib->reserved, 1);
	if (atomic_load(&ib->closing)) {
		rc = CONNECT_ECLOSED;
	} else if (!reserved && !cn_inbox_room(ib)) {
		rc = CONNECT_ELIMIT;
	} else {
		link->prev = NULL;
		link->next = ib->conns;
		if (ib->conns)
			ib->conns->prev = link;
		ib->conns = link;
		link->listed = true;
		atomic_fetch_add(&ib->nconns, 1);
		atomic_fetch_add(&ib->attached, 1);
	}
	pthread_mutex_unlock(&ib->lock);
	return rc;
}

/* Called with ib->lock held. */
static void unlist(struct connect_inbox *ib, struct cn_inbox_link *link)
{
	if (link->prev)
		link->prev->next = link->next;
	else
		ib->conns = link->next;
	if (link->next)
		link->next->prev = link->prev;
	link->prev = link->next = NULL;
	link->listed = false;
	atomic_fetch_sub(&ib->nconns, 1);
}

void cn_inbox_remove(connect_inbox *ib, struct cn_inbox_link *link)
{
	pthread_mutex_lock(&ib->lock);
	if (link->listed) {
		unlist(ib, link);
		atomic_fetch_sub(&ib->attached, 1);
	}
	pthread_mutex_unlock(&ib->lock);
}

void cn_inbox_ended(connect_inbox *ib, struct cn_inbox_link *link)
{
	pthread_mutex_lock(&ib->lock);
	atomic_fetch_add(&ib->ended, 1);
	/* Not listed: connect_inbox_close() took it (and closes it). */
	if (link->listed && !ib->closer_stop) {
		unlist(ib, link);
		link->close_next = NULL;
		*ib->to_close_tail = link;
		ib->to_close_tail = &link->close_next;
		atomic_fetch_add(&ib->nclosing, 1);
		pthread_cond_signal(&ib->closer_cv);
	}
	pthread_mutex_unlock(&ib->lock);
}

/*
 * The closing thread: closes connections whose END item is done, so that
 * no worker waits for a peer that is slow to take the rest of what was
 * sent, and drops the inbox's reference.
 */
/*
 * Give the memory of many closed connections back to the system: freed
 * thread-arena memory otherwise stays with the process, and a server that
 * had 10,000 clients would keep their footprint for good.
 */
static void trim(unsigned *closed)
{
#ifdef HAVE_MALLOC_TRIM
	if (*closed >= CN_TRIM_AFTER)
		malloc_trim(0);
#endif
	*closed = 0;
}

/*
 * Close a list of connections (linked by close_next) all at once: every
 * one begins (flushing within its linger), then every one is cut, then
 * every one is joined, so that thousands close in the time of the slowest
 * rather than in the sum.  linger -1: each connection's
 * CONNECT_OPT_LINGER_MS; -2: its end linger (cn_conn_end_linger).
 * Drops the inbox's reference to each.  Returns the first failure, and
 * adds what was lost to *lost.
 */
static int close_all(struct cn_inbox_link *all, int linger, size_t *lost,
		     unsigned *nclosed)
{
	struct cn_inbox_link *link, *next;
	int rc = CONNECT_OK;

	for (link = all; link; link = link->close_next) {
		struct connect_conn *c = link->conn;

		link->mine = cn_conn_close_begin(
			c, linger < -1 ? cn_conn_end_linger(c) : linger);
	}
	for (link = all; link; link = link->close_next)
		if (link->mine)
			cn_conn_close_stop(link->conn);
	for (link = all; link; link = next) {
		size_t unsent = 0, undelivered = 0;

		next = link->close_next;
		if (link->mine) {
			int r = cn_conn_close_finish(link->conn, &unsent,
						     &undelivered);

			if (r != CONNECT_OK && r != CONNECT_ECLOSED &&
			    rc == CONNECT_OK)
				rc = r;
			*lost += unsent + undelivered;
			link->mine = false;
		}
		cn_conn_unref(link->conn);
		(*nclosed)++;
	}
	return rc;
}

/*
 * The closing thread: closes connections whose END item is done, so that
 * no worker waits for a peer that is slow to take the rest of what was
 * sent, and drops the inbox's reference.  It takes whatever has ended
 * meanwhile as one batch.
 */
static void *closer_main(void *arg)
{
	struct connect_inbox *ib = arg;
	unsigned closed = 0;

	pthread_mutex_lock(&ib->lock);
	for (;;) {
		struct cn_inbox_link *batch = ib->to_close;
		uint64_t n = 0;
		size_t lost = 0;

		if (!batch) {
			if (closed) {
				/* A burst of closes is over. */
				pthread_mutex_unlock(&ib->lock);
				trim(&closed);
				pthread_mutex_lock(&ib->lock);
				continue;
			}
			if (ib->closer_stop)
				break;
			pthread_cond_wait(&ib->closer_cv, &ib->lock);
			continue;
		}
		ib->to_close = NULL;
		ib->to_close_tail = &ib->to_close;
		pthread_mutex_unlock(&ib->lock);
		for (struct cn_inbox_link *l = batch; l; l = l->close_next)
			n++;
		(void)close_all(batch, -2, &lost, &closed);
		atomic_fetch_sub(&ib->nclosing, n);
		pthread_mutex_lock(&ib->lock);
	}
	pthread_mutex_unlock(&ib->lock);
	return NULL;
}

/* --------------------------------------------------------------- the API */

int connect_inbox_new(connect_inbox **ibp, unsigned flags,
		      const connect_opts *opts)
{
	struct connect_opts o;
	struct connect_inbox *ib;
	int rc;

	if (!ibp || (flags & ~CONNECT_INBOX_STRAND))
		return CONNECT_EINVAL;
	cn_opts_copy(&o, opts);
	ib = cn_malloc_aligned(sizeof(*ib));
	if (!ib)
		return CONNECT_ENOMEM;
	memset(ib, 0, sizeof(*ib));
	__cds_wfcq_init(&ib->head, &ib->tail);
	ib->max_bytes = (uint64_t)o.v[CONNECT_OPT_INBOX_BYTES];
	ib->max_msgs = (uint64_t)o.v[CONNECT_OPT_INBOX_MSGS];
	ib->max_conns = (uint64_t)o.v[CONNECT_OPT_INBOX_MAX_CONNS];
	ib->strand = flags & CONNECT_INBOX_STRAND;
	pthread_mutex_init(&ib->pop_lock, NULL);
	pthread_mutex_init(&ib->lock, NULL);
	cn_cond_init(&ib->cv);
	cn_cond_init(&ib->room_cv);
	cn_cond_init(&ib->closer_cv);
	atomic_init(&ib->efd, -1);
	atomic_init(&ib->refs, 1);
	ib->to_close_tail = &ib->to_close;
	rc = cn_thread_start(&ib->closer, closer_main, ib, 64 << 10);
	if (rc) {
		inbox_free(ib);
		return rc;
	}
	*ibp = ib;
	return CONNECT_OK;
}

static int pop_try(struct connect_inbox *ib, connect_item *item)
{
	for (;;) {
		struct cds_wfcq_node *node;
		struct connect_conn *c;
		bool got;
		int fd;

		if (atomic_load(&ib->closing))
			return CONNECT_ECLOSED;
		pthread_mutex_lock(&ib->pop_lock);
		node = __cds_wfcq_dequeue_blocking(&ib->head, &ib->tail);
		fd = atomic_load(&ib->efd);
		if (fd >= 0 && ready_empty(ib)) {
			/* Level-triggered: clear on the way to empty, then set
			 * again if a token slipped in. */
			efd_clear(fd);
			if (!ready_empty(ib) || atomic_load(&ib->closing))
				efd_signal(fd);
		}
		pthread_mutex_unlock(&ib->pop_lock);
		if (!node)
			return CONNECT_EAGAIN;
		CN_TSAN_ACQUIRE(node);
		c = cn_conn_of_token(node);
		got = cn_conn_take(c, item, ib->strand);
		/* The queue's reference (the item holds its own). */
		cn_conn_unref(c);
		if (got)
			return CONNECT_OK;
		/* A stale token: the connection had nothing after all. */
	}
}

int connect_inbox_pop(connect_inbox *ib, connect_item *item)
{
	int rc;

	if (!ib || !item)
		return CONNECT_EINVAL;
	enter(ib);
	rc = pop_try(ib, item);
	leave(ib);
	return rc;
}

struct pop_args {
	struct connect_inbox *ib;
	connect_item *item;
};

static int pop_wait_try(void *arg)
{
	struct pop_args *a = arg;

	return pop_try(a->ib, a->item);
}

static bool pop_wait_ready(void *arg)
{
	struct pop_args *a = arg;

	return !ready_empty(a->ib) || atomic_load(&a->ib->closing);
}

int connect_inbox_pop_wait(connect_inbox *ib, connect_item *item,
			   int timeout_ms)
{
	struct pop_args a = { ib, item };
	struct cn_waiter w;
	int rc;

	if (!ib || !item)
		return CONNECT_EINVAL;
	w = (struct cn_waiter){ pop_wait_try, pop_wait_ready, &ib->waiters,
				&ib->lock, &ib->cv, &a, 0 };
	enter(ib);
	rc = cn_wait(&w, timeout_ms);
	leave(ib);
	return rc;
}

int connect_inbox_fd(connect_inbox *ib)
{
	int fd;

	if (!ib)
		return CONNECT_EINVAL;
	enter(ib);
	pthread_mutex_lock(&ib->pop_lock);
	fd = atomic_load(&ib->efd);
	if (fd < 0) {
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0) {
			fd = CONNECT_ESYSTEM;
		} else {
			atomic_store(&ib->efd, fd);
			if (!ready_empty(ib) || atomic_load(&ib->closing))
				efd_signal(fd);
		}
	}
	pthread_mutex_unlock(&ib->pop_lock);
	leave(ib);
	return fd;
}

int connect_inbox_stat(connect_inbox *ib, int stat, uint64_t *value)
{
	int rc = CONNECT_OK;

	if (!ib || !value)
		return CONNECT_EINVAL;
	enter(ib);
	switch (stat) {
	case CONNECT_INBOX_STAT_CONNS:
		*value = atomic_load(&ib->nconns);
		break;
	case CONNECT_INBOX_STAT_QUEUED:
		*value = atomic_load(&ib->msgs);
		break;
	case CONNECT_INBOX_STAT_QUEUED_BYTES:
		*value = atomic_load(&ib->bytes);
		break;
	case CONNECT_INBOX_STAT_ATTACHED:
		*value = atomic_load(&ib->attached);
		break;
	case CONNECT_INBOX_STAT_ENDED:
		*value = atomic_load(&ib->ended);
		break;
	case CONNECT_INBOX_STAT_CLOSING:
		*value = atomic_load(&ib->nclosing);
		break;
	default:
		rc = CONNECT_EINVAL;
	}
	leave(ib);
	return rc;
}

int connect_inbox_close(connect_inbox *ib, int linger_ms, size_t *dropped)
{
	struct cn_inbox_link *all = NULL, *link, *next;
	struct cds_wfcq_node *node;
	size_t lost = 0;
	unsigned nclosed = 0;
	int rc = CONNECT_OK;

	if (dropped)
		*dropped = 0;
	if (!ib)
		return CONNECT_EINVAL;

	/* 1. Refuse new work, wake every waiter, wait for the calls in
	 * progress to leave. */
	atomic_store(&ib->closing, 1);
	efd_signal(atomic_load(&ib->efd));
	pthread_mutex_lock(&ib->lock);
	pthread_cond_broadcast(&ib->cv);
	pthread_cond_broadcast(&ib->room_cv);
	while (atomic_load(&ib->users) > 0)
		pthread_cond_wait(&ib->cv, &ib->lock);
	/* 2. Stop the closing thread; what it had still to close, and every
	 * attached connection, is ours now. */
	ib->closer_stop = true;
	pthread_cond_signal(&ib->closer_cv);
	pthread_mutex_unlock(&ib->lock);
	pthread_join(ib->closer, NULL);
	pthread_mutex_lock(&ib->lock);
	for (link = ib->to_close; link; link = next) {
		next = link->close_next;
		link->close_next = all;
		all = link;
		atomic_fetch_sub(&ib->nclosing, 1);
	}
	ib->to_close = NULL;
	ib->to_close_tail = &ib->to_close;
	while ((link = ib->conns) != NULL) {
		unlist(ib, link);
		link->close_next = all;
		all = link;
	}
	pthread_mutex_unlock(&ib->lock);

	/* The ready queue takes no more tokens (the connections' last
	 * wake-ups, workers' releases), and gives back the references of
	 * those on it. */
	atomic_store(&ib->qdead, 1);
	while (atomic_load(&ib->enqueuing) > 0)
		sched_yield();
	pthread_mutex_lock(&ib->pop_lock);
	while ((node = __cds_wfcq_dequeue_blocking(&ib->head, &ib->tail))) {
		CN_TSAN_ACQUIRE(node);
		cn_conn_unref(cn_conn_of_token(node));
	}
	pthread_mutex_unlock(&ib->pop_lock);

	/* 3. Close them all at once. */
	rc = close_all(all, linger_ms < 0 ? -1 : linger_ms, &lost, &nclosed);
	trim(&nclosed);
	if (dropped)
		*dropped = lost;
	cn_inbox_unref(ib);
	return rc;
}
