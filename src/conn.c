/*
 * Connections: the reader and writer threads, send, recv, close.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Locking theory.
 *   - The outbound queue has many producers (connect_send from any thread)
 *     and one consumer (the writer, which splices the whole queue at once).
 *     The inbound queue has one producer (the reader) and consumers
 *     serialized by recv_lock.
 *   - Nobody takes `lock` on the busy path.  A thread that sleeps (writer on
 *     an empty queue, reader on a full one, applications in the waiting
 *     calls) first announces itself in an atomic flag or counter, then
 *     re-checks its condition under `lock`, then waits on a condition
 *     variable.  The other side changes the queue (a sequentially consistent
 *     atomic operation) and only then looks at the flag; it takes `lock` to
 *     signal only when someone sleeps.  Either the sleeper sees the change
 *     or the waker sees the sleeper, so no wake-up is lost, and a busy
 *     connection makes no system call per message.
 *   - `users` counts API calls in progress: every public entry point
 *     registers.  connect_close() sets `closing`, wakes every sleeper and
 *     waits on close_cv for `users` to reach 0 (the last call to leave
 *     signals it) before tearing the connection down.
 *   - `refs` counts who holds the memory: the application's handle
 *     (`app_ref`), an inbox it is attached to, and the inbox items that
 *     name it.  Closing (claimed once, by whoever comes first: the
 *     application, a worker, the inbox) stops and joins the threads and
 *     destroys the transport; connect_close() then drops the application's
 *     reference; the memory goes with the last reference.  What a
 *     reference holder may still call after the close (sends, receives)
 *     returns CONNECT_ECLOSED without touching the transport.
 *   - Received datagrams go to a sink (sink.h): the connection's own
 *     inbound queue.  Attached to an inbox, the queue stays where the
 *     datagrams wait, and the sink's wake-ups queue the connection on the
 *     inbox instead (inbox.h).
 */
#include "connect_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "codec.h"
#include "queue.h"
#include "inbox.h"
#include "sink.h"
#include "transport.h"
#include "alloc.h"
#include "dgpool.h"

/*
 * Bytes asked of the transport per read: a connection whose reads fill
 * the small buffer (inside the connection) moves to a big one, and back
 * after CN_READ_CALM reads that the small one would have held.  So an idle
 * connection keeps no read buffer of its own (thousands of them), and a
 * busy one reads 64 KiB at a time.
 */
#define CN_READ_CHUNK (64u * 1024u)
#define CN_READ_SMALL 1024u
#define CN_READ_CALM 16
/* Payload still to come from which reads go straight into the datagram. */
#define CN_READ_DIRECT_MIN (16u * 1024u)
/* and at most this much per read: one read of a whole large frame holds
 * the socket while it copies, and the peer's window waits (1 MiB frames:
 * 256 KiB reads gave 1.3x the throughput of whole-frame reads, 128 KiB
 * less than both). */
#define CN_READ_DIRECT_MAX (256u * 1024u)
/* Direct writes (send_direct) no closer together than this. */
#define CN_DIRECT_GAP_NS 20000
/*
 * Packs (send_packed): frames of at most CN_PACK_FRAME bytes that a sender
 * queues behind others are copied into the pack at the tail of the queue.
 * A pack's room starts at CN_PACK_MIN bytes, doubles each time one fills,
 * up to CN_PACK_MAX, and halves when the writer takes one less than a
 * quarter full.
 */
#define CN_PACK_FRAME 512u
#define CN_PACK_MIN (1024u)
#define CN_PACK_MAX (16u * 1024u)

struct connect_conn {
	struct cn_queue out; /* application -> writer */
	struct cn_queue in;  /* reader -> application */

	struct cn_transport *t;
	struct cn_sink sink; /* delivers into `in` */
	struct connect_opts opts;
	char local[CN_ADDRSTRLEN], peer[CN_ADDRSTRLEN];
	_Atomic(void *) user;

	pthread_mutex_t lock;
	pthread_cond_t writer_cv; /* writer: work, or flush/close */
	pthread_cond_t reader_cv; /* reader: room in `in`, or close */
	pthread_cond_t recv_cv;   /* applications: datagram or end */
	pthread_cond_t send_cv;   /* applications: room in `out` */
	pthread_cond_t close_cv;  /* connect_close: writer finished, or the
				   * last call in progress left */

	_Atomic int writer_sleeping;
	_Atomic int reader_sleeping;
	_Atomic int recv_waiters;
	_Atomic int send_waiters;

	_Atomic int users;   /* API calls in progress */
	_Atomic int refs;    /* holders of the memory */
	bool rxmem;          /* counted against the process-wide bound */
	_Atomic int rx_parked; /* the reader waits for the bound */
	_Atomic int closing; /* connect_close() began: refuse new work */
	_Atomic int flush;   /* writer: write what is queued, then end */
	_Atomic int stop;    /* writer: stop now (the stream is cut) */
	_Atomic int rx_done; /* reader's final code (EEOF or error), or 0 */
	_Atomic int tx_err;  /* why nothing more can be sent, or 0 */
	bool writer_done;    /* under lock */
	int shutdown_rc;     /* under lock: result of the clean shutdown;
			      * CONNECT_ETIMEDOUT until it is tried */

	pthread_mutex_t recv_lock; /* one dequeuer of `in` at a time */
	_Atomic int efd;           /* eventfd for connect_conn_fd, or -1 */
	_Atomic int sfd;           /* eventfd for connect_conn_send_fd */
	_Atomic int send_blocked;  /* a sender met a full queue: the writer
				    * signals sfd at the low-water mark */

	int err_code; /* under lock: the first reader/writer error */
	char err_reason[CN_REASON_LEN];

	_Atomic uint64_t msgs_sent, bytes_sent, msgs_recv, bytes_recv;
	_Atomic uint64_t dropped; /* accepted datagrams the writer gave up */

	/* Writing to the transport: the writer (from taking datagrams off
	 * the queue until they are written), or a sender writing its datagram
	 * itself while the queue is empty and the writer idle (direct). */
	pthread_mutex_t wlock;
	bool direct;                    /* the transport allows it */
	struct connect_datagram *wpart; /* under wlock: written in part by a
					 * sender; the writer ends it first */
	size_t wpart_done;              /* under wlock: its bytes written */
	_Atomic int wpart_pending;
	_Atomic int tpart_pending; /* a direct write left bytes inside the
				    * transport (out_pending): the writer
				    * writes them */
	_Atomic int64_t direct_ns; /* when a sender last wrote directly */

	/* Packing (send_packed): every push onto `out` is under pack_lock,
	 * and so is the pack still open for more frames. */
	pthread_mutex_t pack_lock;
	struct connect_datagram *pack_open; /* under pack_lock, or NULL */
	uint32_t pack_cap;                  /* under pack_lock */

	pthread_t reader, writer;
	uint8_t rsmall[CN_READ_SMALL]; /* the reader's small buffer */
	/* The reader's: pushed, not yet flushed into `in` (queue_flush). */
	struct cds_wfcq_node *rx_first, *rx_last;
	uint64_t rx_msgs, rx_bytes;       /* all of them */
	uint64_t rx_ib_msgs, rx_ib_bytes; /* those counted in the inbox */

	/* Closing (cn_conn_close_begin/_end). */
	_Atomic int claimed; /* somebody began to close it */
	_Atomic int app_ref; /* the application still holds its handle */
	int close_linger;
	int64_t close_deadline;
	uint64_t close_sent; /* datagrams written when the stream was cut */

	/* Inbox (inbox.h).  `inbox` is set once, under recv_lock. */
	_Atomic(connect_inbox *) inbox;
	struct cds_wfcq_node token __attribute__((aligned(CN_CACHELINE)));
	_Atomic int sched;
	_Atomic int attach_pending;
	_Atomic int end_delivered;
	struct cn_inbox_link link;
};

enum { TOK_IDLE, TOK_READY, TOK_HELD, TOK_HELD_MORE };

static void conn_free(struct connect_conn *c);

/* Register a call in progress; connect_close() waits for it to leave. */
static void enter(struct connect_conn *c)
{
	atomic_fetch_add(&c->users, 1);
}

static void leave(struct connect_conn *c)
{
	/* Both sides are sequentially consistent: either connect_close()
	 * sees users at 0, or we see closing and wake it. */
	if (atomic_fetch_sub(&c->users, 1) == 1 && atomic_load(&c->closing)) {
		pthread_mutex_lock(&c->lock);
		pthread_cond_broadcast(&c->close_cv);
		pthread_mutex_unlock(&c->lock);
	}
}

void cn_conn_ref(struct connect_conn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void cn_conn_unref(struct connect_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		conn_free(c);
}

static void set_error(struct connect_conn *c, int code, const char *reason)
{
	pthread_mutex_lock(&c->lock);
	if (c->err_code == 0) {
		c->err_code = code;
		snprintf(c->err_reason, sizeof(c->err_reason), "%s",
			 reason && reason[0] ? reason : connect_strerror(code));
	}
	pthread_mutex_unlock(&c->lock);
	cn_log(CONNECT_LOG_WARN, "CONNECT-CONN", "%s: %s (%s)", c->peer,
	       connect_strerror(code), reason ? reason : "");
}

/* Record why sending stopped; the first cause stays. */
static void set_tx_err(struct connect_conn *c, int code)
{
	int zero = 0;

	atomic_compare_exchange_strong(&c->tx_err, &zero, code);
}

/* Wake the sleepers of one condition if its announced count says so. */
static void wake_if(struct connect_conn *c, _Atomic int *flag,
		    pthread_cond_t *cv)
{
	if (atomic_load(flag) > 0) {
		pthread_mutex_lock(&c->lock);
		pthread_cond_broadcast(cv);
		pthread_mutex_unlock(&c->lock);
	}
}

static void wake_all(struct connect_conn *c)
{
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->writer_cv);
	pthread_cond_broadcast(&c->reader_cv);
	pthread_cond_broadcast(&c->recv_cv);
	pthread_cond_broadcast(&c->send_cv);
	pthread_cond_broadcast(&c->close_cv);
	pthread_mutex_unlock(&c->lock);
}

static void fd_signal(int fd)
{
	uint64_t one = 1;

	if (fd >= 0)
		while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
}

static void fd_clear(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void efd_signal(struct connect_conn *c)
{
	fd_signal(atomic_load(&c->efd));
}

/*
 * Room to send: connect_conn_send_fd() polls readable while a send would
 * not say CONNECT_EAGAIN.  A sender that meets a full queue announces
 * itself (send_blocked), clears the descriptor, then looks at the queue
 * again; the writer, after it freed room, looks at the announcement.
 * Either the sender sees the room or the writer sees the sender, as for
 * the sleeping flags.  It is signalled at the low-water mark (half the
 * limits), so a poll loop is not woken for every datagram written.
 */
static bool send_fd_ready(struct connect_conn *c)
{
	return cn_queue_low(&c->out) || atomic_load(&c->tx_err) ||
	       atomic_load(&c->closing);
}

static void send_fd_wake(struct connect_conn *c)
{
	if (atomic_load(&c->send_blocked) &&
	    atomic_exchange(&c->send_blocked, 0))
		fd_signal(atomic_load(&c->sfd));
}

static void send_fd_block(struct connect_conn *c)
{
	int fd = atomic_load(&c->sfd);

	if (fd < 0)
		return;
	atomic_store(&c->send_blocked, 1);
	fd_clear(fd);
	if (send_fd_ready(c))
		send_fd_wake(c);
}

/* ---------------------------------------------------------------- writer */

/* The stream failed under the writer: why, then that sends stop, in this
 * order (a sender told to stop finds the reason already there). */
static void writer_failed(struct connect_conn *c, int rc)
{
	if (rc != CONNECT_ECLOSED) {
		char reason[CN_REASON_LEN];

		cn_transport_reason(c->t, reason, sizeof(reason));
		set_error(c, rc, reason);
	}
	set_tx_err(c, rc);
}

/* Write iov[0..cnt), advancing across partial writes.  On failure returns
 * the code and *done holds how many whole entries were written. */
static int write_all(struct connect_conn *c, struct iovec *iov, int cnt,
		     int *done)
{
	int i = 0;

	while (i < cnt) {
		ssize_t n = c->t->ops->sendv(c->t, iov + i, cnt - i, 0);

		if (n < 0) {
			*done = i;
			return (int)n;
		}
		while (n > 0) {
			if ((size_t)n >= iov[i].iov_len) {
				n -= (ssize_t)iov[i].iov_len;
				i++;
			} else {
				iov[i].iov_base = (char *)iov[i].iov_base + n;
				iov[i].iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	*done = cnt;
	return CONNECT_OK;
}

/* Write a batch of datagrams and free them.  Datagrams not written are
 * freed too and counted in c->dropped. */
static int write_batch(struct connect_conn *c, struct connect_datagram **dg,
		       struct iovec *iov, int cnt)
{
	uint64_t msgs = 0, bytes = 0, wmsgs = 0, wbytes = 0;
	int done, rc;

	rc = write_all(c, iov, cnt, &done);
	/* Published before the room is: a sender woken by it must not
	 * queue behind a dead writer. */
	if (rc)
		writer_failed(c, rc);
	for (int i = 0; i < cnt; i++) {
		uint64_t m = cn_dg_msgs(dg[i]), by = cn_dg_bytes(dg[i]);

		msgs += m;
		bytes += by;
		if (i < done) {
			wmsgs += m;
			wbytes += by;
		}
		cn_datagram_free(dg[i]);
	}
	atomic_fetch_add(&c->msgs_sent, wmsgs);
	atomic_fetch_add(&c->bytes_sent, wbytes);
	if (wmsgs < msgs)
		atomic_fetch_add(&c->dropped, msgs - wmsgs);
	/* Room only now: the queue limits count datagrams until written. */
	cn_queue_release(&c->out, msgs, bytes);
	wake_if(c, &c->send_waiters, &c->send_cv);
	if (atomic_load(&c->send_blocked) && send_fd_ready(c))
		send_fd_wake(c);
	return rc;
}

/*
 * The writer's batch: a few entries on its stack (an idle connection's
 * writer touches no more stack than that), CN_IOV_MAX in a heap block
 * once a batch needs more (kept while the connection lives).
 */
#define CN_WBATCH_SMALL 16

struct wbatch {
	struct connect_datagram **dg;
	struct iovec *iov;
	int cap;
	void *heap;
};

/* Grow the batch to CN_IOV_MAX entries, keeping the first cnt.  False
 * (the batch as it was) without memory. */
static bool wbatch_grow(struct wbatch *b, int cnt)
{
	size_t dgsz = CN_IOV_MAX * sizeof(*b->dg);
	char *m = b->heap ? b->heap
			  : cn_malloc(dgsz + CN_IOV_MAX * sizeof(*b->iov));

	if (!m)
		return false;
	b->heap = m;
	memcpy(m, b->dg, (size_t)cnt * sizeof(*b->dg));
	memcpy(m + dgsz, b->iov, (size_t)cnt * sizeof(*b->iov));
	b->dg = (struct connect_datagram **)(void *)m;
	b->iov = (struct iovec *)(void *)(m + dgsz);
	b->cap = CN_IOV_MAX;
	return true;
}

/* A datagram the stream failed before: dropped. */
static void write_drop(struct connect_conn *c, struct connect_datagram *d)
{
	cn_queue_release(&c->out, cn_dg_msgs(d), cn_dg_bytes(d));
	atomic_fetch_add(&c->dropped, cn_dg_msgs(d));
	cn_datagram_free(d);
}

/* The writer takes pack d: no sender adds to it any more.  The next
 * pack's room follows how full this one got. */
static void pack_close(struct connect_conn *c, struct connect_datagram *d)
{
	pthread_mutex_lock(&c->pack_lock);
	if (c->pack_open == d)
		c->pack_open = NULL;
	if (d->len < c->pack_cap / 4 && c->pack_cap > CN_PACK_MIN)
		c->pack_cap /= 2;
	pthread_mutex_unlock(&c->pack_lock);
}

/* Write everything spliced off the queue, up to CN_IOV_MAX datagrams per
 * call. */
static int write_list(struct connect_conn *c, struct __cds_wfcq_head *h,
		      struct cds_wfcq_tail *tl, struct wbatch *b)
{
	struct cds_wfcq_node *node, *next;
	int cnt = 0, rc = CONNECT_OK;

	__cds_wfcq_for_each_blocking_safe(h, tl, node, next) {
		struct connect_datagram *d =
			cn_container_of(node, struct connect_datagram, node);

		CN_TSAN_ACQUIRE(d);
		if (d->flags & CN_DG_PACK)
			pack_close(c, d);
		if (rc) {
			/* The stream failed: the rest is dropped. */
			write_drop(c, d);
			continue;
		}
		if (cnt == b->cap && !(b->cap < CN_IOV_MAX && wbatch_grow(b, cnt))) {
			rc = write_batch(c, b->dg, b->iov, cnt);
			cnt = 0;
			if (rc) {
				write_drop(c, d);
				continue;
			}
		}
		b->dg[cnt] = d;
		/* Header and payload are contiguous: one entry each; a pack's
		 * frames too. */
		if (d->flags & CN_DG_PACK) {
			b->iov[cnt].iov_base = d->payload;
			b->iov[cnt].iov_len = d->len;
		} else {
			b->iov[cnt].iov_base = d->hdr;
			b->iov[cnt].iov_len = CN_HDR_LEN + d->len;
		}
		cnt++;
	}
	if (cnt && !rc)
		rc = write_batch(c, b->dg, b->iov, cnt);
	return rc;
}

/* The rest of a datagram a sender began to write.  Called with wlock. */
static int wpart_finish(struct connect_conn *c)
{
	struct connect_datagram *d = c->wpart;
	struct iovec iov;
	int done, rc;

	if (atomic_load(&c->tpart_pending)) {
		/* Bytes a direct write left inside the transport. */
		atomic_store(&c->tpart_pending, 0);
		rc = (int)c->t->ops->sendv(c->t, NULL, 0, 0);
		if (rc < 0) {
			writer_failed(c, rc);
			return rc;
		}
	}
	if (!d)
		return CONNECT_OK;
	iov.iov_base = d->hdr + c->wpart_done;
	iov.iov_len = CN_HDR_LEN + d->len - c->wpart_done;
	rc = write_all(c, &iov, 1, &done);
	c->wpart = NULL;
	atomic_store(&c->wpart_pending, 0);
	if (rc) {
		writer_failed(c, rc);
		atomic_fetch_add(&c->dropped, 1);
	} else {
		atomic_fetch_add(&c->msgs_sent, 1);
		atomic_fetch_add(&c->bytes_sent, d->len);
	}
	cn_queue_release(&c->out, 1, d->len);
	cn_datagram_free(d);
	wake_if(c, &c->send_waiters, &c->send_cv);
	if (atomic_load(&c->send_blocked) && send_fd_ready(c))
		send_fd_wake(c);
	return rc;
}

static void *writer_main(void *arg)
{
	struct connect_conn *c = arg;
	struct __cds_wfcq_head h;
	struct cds_wfcq_tail tl;
	struct connect_datagram *sdg[CN_WBATCH_SMALL];
	struct iovec siov[CN_WBATCH_SMALL];
	struct wbatch b = { sdg, siov, CN_WBATCH_SMALL, NULL };
	int rc = CONNECT_OK;

	for (;;) {
		bool wrote;

		if (atomic_load(&c->stop)) {
			rc = CONNECT_ECLOSED;
			break;
		}
		__cds_wfcq_init(&h, &tl);
		/* Under wlock from the splice on: a sender writes directly
		 * only while nothing is queued or being written. */
		pthread_mutex_lock(&c->wlock);
		rc = wpart_finish(c);
		wrote = !rc && cn_queue_splice(&c->out, &h, &tl);
		if (wrote)
			rc = write_list(c, &h, &tl, &b);
		pthread_mutex_unlock(&c->wlock);
		if (rc)
			break;
		if (wrote)
			continue;
		if (atomic_load(&c->flush)) {
			rc = c->t->ops->shutdown(c->t, 0);
			pthread_mutex_lock(&c->lock);
			c->shutdown_rc = rc;
			pthread_mutex_unlock(&c->lock);
			rc = CONNECT_OK;
			break;
		}
		/* About to sleep: the blocks it freed go where other threads
		 * find them. */
		cn_dgpool_idle();
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->writer_sleeping, 1);
		/* cds_wfcq_empty() uses plain loads: order them after the
		 * flag on weakly ordered processors too. */
		atomic_thread_fence(memory_order_seq_cst);
		while (cn_queue_empty(&c->out) && !atomic_load(&c->flush) &&
		       !atomic_load(&c->stop) &&
		       !atomic_load(&c->wpart_pending) &&
		       !atomic_load(&c->tpart_pending))
			pthread_cond_wait(&c->writer_cv, &c->lock);
		atomic_store(&c->writer_sleeping, 0);
		pthread_mutex_unlock(&c->lock);
	}
	if (rc)
		set_tx_err(c, rc);
	cn_free(b.heap);
	pthread_mutex_lock(&c->lock);
	c->writer_done = true;
	pthread_cond_broadcast(&c->close_cv);
	pthread_cond_broadcast(&c->send_cv);
	pthread_mutex_unlock(&c->lock);
	if (rc)
		send_fd_wake(c);
	return NULL;
}

/* ---------------------------------------------------------------- reader */

/* ---- the connection's own inbound queue, as a sink ---- */

static struct connect_conn *conn_of_sink(struct cn_sink *s)
{
	return cn_container_of(s, struct connect_conn, sink);
}

static bool queue_is_empty(void *arg)
{
	struct connect_conn *c = arg;

	return cn_queue_empty(&c->in);
}

/* ---- attached to an inbox: the token (inbox.h) ---- */

/*
 * Put the token on the ready queue (its state just became READY).  The
 * queue holds a reference to the connection while its token is there: a
 * token is never left pointing into freed memory.  A closed inbox takes
 * no more tokens.
 */
static void sched_queue(struct connect_conn *c, connect_inbox *ib)
{
	cn_conn_ref(c);
	if (!cn_inbox_ready(ib, &c->token))
		cn_conn_unref(c);
}

/* Something arrived for the inbox: queue the token, or tell its holder. */
static void sched_kick(struct connect_conn *c, connect_inbox *ib)
{
	int s = atomic_load(&c->sched);

	for (;;) {
		if (s == TOK_IDLE) {
			if (atomic_compare_exchange_weak(&c->sched, &s,
							 TOK_READY)) {
				sched_queue(c, ib);
				return;
			}
		} else if (s == TOK_HELD) {
			if (atomic_compare_exchange_weak(&c->sched, &s,
							 TOK_HELD_MORE))
				return;
		} else {
			return; /* queued, or its holder will look again */
		}
	}
}

static bool sched_has_work(struct connect_conn *c)
{
	return atomic_load(&c->attach_pending) || !cn_queue_empty(&c->in) ||
	       (atomic_load(&c->rx_done) && !atomic_load(&c->end_delivered));
}

/* The holder lets go: queue the token again if there is more. */
static void sched_release(struct connect_conn *c, connect_inbox *ib)
{
	for (;;) {
		int s = TOK_HELD;

		if (sched_has_work(c)) {
			atomic_store(&c->sched, TOK_READY);
			sched_queue(c, ib);
			return;
		}
		if (atomic_compare_exchange_strong(&c->sched, &s, TOK_IDLE))
			return;
		/* HELD_MORE: something arrived; look again. */
		atomic_store(&c->sched, TOK_HELD);
	}
}

/* ---- the connection's own inbound queue, as a sink ---- */

/* Sleep while the inbound queue (or the inbox) is full.  False when
 * closing. */
static bool queue_wait_room(struct cn_sink *s)
{
	struct connect_conn *c = conn_of_sink(s);
	connect_inbox *ib = atomic_load(&c->inbox);

	if (!cn_queue_full(&c->in) && !(c->rxmem && cn_rxmem_over()) &&
	    !(ib && cn_inbox_full(ib)))
		return true;
	if (cn_queue_full(&c->in)) {
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->reader_sleeping, 1);
		while (!cn_queue_low(&c->in) && !atomic_load(&c->closing))
			pthread_cond_wait(&c->reader_cv, &c->lock);
		atomic_store(&c->reader_sleeping, 0);
		pthread_mutex_unlock(&c->lock);
	}
	/*
	 * The process-wide bound: wait for the consumers, but never while
	 * our own queue is empty, so that an application waiting on this
	 * connection alone always gets what arrives (the bound is exceeded
	 * by at most one read per connection; no consumer order deadlocks).
	 */
	if (c->rxmem && cn_rxmem_over() && !cn_queue_empty(&c->in)) {
		atomic_store(&c->rx_parked, 1);
		cn_rxmem_wait(&c->closing, queue_is_empty, c);
		atomic_store(&c->rx_parked, 0);
	}
	/* The inbox's bound, likewise never while our own queue is empty: a
	 * worker holding one connection's item (strand mode) and waiting for
	 * another's would otherwise wait for ever.  The bound is exceeded by
	 * at most one read per connection. */
	if (ib && cn_inbox_full(ib) && !cn_queue_empty(&c->in))
		cn_inbox_wait_room(ib, &c->closing, &c->in);
	return !atomic_load(&c->closing);
}

/* Datagrams a reader hands over at once at most (more wait for a
 * consumer no longer than the decoding of this many). */
#define CN_RX_BATCH 256

/* Link dg after the reader's others; a datagram is counted in the
 * inbox's bounds (flagged) if the connection was attached when it came. */
static bool queue_push(struct cn_sink *s, struct connect_datagram *dg)
{
	struct connect_conn *c = conn_of_sink(s);

	if (atomic_load(&c->inbox)) {
		dg->flags |= CN_DG_INBOX;
		c->rx_ib_msgs++;
		c->rx_ib_bytes += dg->len;
	}
	cds_wfcq_node_init(&dg->node);
	CN_TSAN_RELEASE(dg);
	if (c->rx_last)
		c->rx_last->next = &dg->node;
	else
		c->rx_first = &dg->node;
	c->rx_last = &dg->node;
	c->rx_msgs++;
	c->rx_bytes += dg->len;
	return c->rx_msgs >= CN_RX_BATCH;
}

static void queue_flush(struct cn_sink *s)
{
	struct connect_conn *c = conn_of_sink(s);
	connect_inbox *ib;
	bool edge;

	if (!c->rx_msgs)
		return;
	/* Count before the push, so a consumer that pops them at once never
	 * counts below 0. */
	cn_queue_account(&c->in, c->rx_msgs, c->rx_bytes);
	if (c->rxmem)
		cn_rxmem_add(c->rx_bytes);
	ib = atomic_load(&c->inbox); /* set once: flagged ones are its */
	if (c->rx_ib_msgs)
		cn_inbox_count(ib, c->rx_ib_msgs, c->rx_ib_bytes);
	edge = cn_queue_push_chain(&c->in, c->rx_first, c->rx_last);
	c->rx_first = c->rx_last = NULL;
	c->rx_msgs = c->rx_bytes = c->rx_ib_msgs = c->rx_ib_bytes = 0;
	if (!edge)
		return;
	if (ib) {
		sched_kick(c, ib);
		return;
	}
	wake_if(c, &c->recv_waiters, &c->recv_cv);
	efd_signal(c);
}

static void queue_end(struct cn_sink *s, int code)
{
	struct connect_conn *c = conn_of_sink(s);
	connect_inbox *ib;

	/* Published after the last push: a consumer that sees rx_done and
	 * then finds the queue empty has everything. */
	atomic_store(&c->rx_done, code);
	ib = atomic_load(&c->inbox);
	if (ib)
		sched_kick(c, ib);
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->recv_cv);
	pthread_mutex_unlock(&c->lock);
	efd_signal(c);
}

static const struct cn_sink_ops queue_sink_ops = {
	.wait_room = queue_wait_room,
	.push = queue_push,
	.flush = queue_flush,
	.end = queue_end,
};

/*
 * With a receive-idle or frame timeout, wait for bytes before reading, so
 * that a silent or dribbling peer is noticed: CONNECT_OK when there is
 * something to read, CONNECT_EDEADPEER (reason written) when a limit
 * passed, or the transport's code.  *frame_start: when the frame under
 * way began (0: none).
 */
static int reader_wait_data(struct connect_conn *c,
			    const struct cn_decoder *dec, int64_t *frame_start,
			    char *reason, size_t len)
{
	int64_t idle = c->opts.v[CONNECT_OPT_RECV_IDLE_TIMEOUT_MS];
	int64_t frame = c->opts.v[CONNECT_OPT_FRAME_TIMEOUT_MS];
	int64_t now, deadline = -1;
	bool by_frame = false;
	int rc;

	if (!idle && !frame)
		return CONNECT_OK;
	now = cn_now_ms();
	if (!cn_decoder_midframe(dec))
		*frame_start = 0;
	else if (*frame_start == 0)
		*frame_start = now;
	if (idle)
		deadline = now + idle;
	if (frame && *frame_start &&
	    (deadline < 0 || *frame_start + frame < deadline)) {
		deadline = *frame_start + frame;
		by_frame = true;
	}
	rc = c->t->ops->wait(c->t, CN_WAIT_READ, deadline);
	if (rc == CONNECT_ETIMEDOUT) {
		rc = CONNECT_EDEADPEER;
		if (by_frame)
			snprintf(reason, len,
				 "frame timeout: a frame begun %lld ms ago is "
				 "still incomplete",
				 (long long)(cn_now_ms() - *frame_start));
		else
			snprintf(reason, len,
				 "receive idle timeout: nothing from %s for "
				 "%lld ms",
				 c->peer, (long long)idle);
	} else if (rc) {
		cn_transport_reason(c->t, reason, len);
	}
	return rc;
}

static void *reader_main(void *arg)
{
	struct connect_conn *c = arg;
	struct cn_decoder dec;
	char reason[CN_REASON_LEN] = "";
	uint8_t *big = NULL, *buf, *direct;
	int64_t frame_start = 0;
	int final = CONNECT_OK, calm = 0;
	size_t cap;

	cn_decoder_init(&dec,
			(uint32_t)c->opts.v[CONNECT_OPT_RECV_MAX_PAYLOAD]);
	while (!final) {
		uint64_t msgs = 0, bytes = 0;
		ssize_t n;

		buf = big ? big : c->rsmall;
		cap = big ? CN_READ_CHUNK : CN_READ_SMALL;
		/* Deep inside a large payload: read straight into the
		 * datagram, as much as its buffer holds. */
		direct = NULL;
		if (dec.dg && dec.dg->len - dec.have >= CN_READ_DIRECT_MIN)
			direct = cn_decoder_direct(&dec, &cap);
		if (direct) {
			buf = direct;
			if (cap > CN_READ_DIRECT_MAX)
				cap = CN_READ_DIRECT_MAX;
		}
		else
			cap = big ? CN_READ_CHUNK : CN_READ_SMALL;
		if (!c->sink.ops->wait_room(&c->sink)) {
			final = CONNECT_ECLOSED;
			break;
		}
		n = reader_wait_data(c, &dec, &frame_start, reason,
				     sizeof(reason));
		if (n == CONNECT_OK)
			n = c->t->ops->recv(c->t, buf, cap, 0);
		else if (atomic_load(&c->closing))
			n = CONNECT_ECLOSED;
		if (n == 0) {
			final = cn_decoder_finish(&dec);
			snprintf(reason, sizeof(reason), "%s", dec.reason);
			break;
		}
		if (n < 0) {
			final = atomic_load(&c->closing) ? CONNECT_ECLOSED
							 : (int)n;
			if (!reason[0])
				cn_transport_reason(c->t, reason,
						    sizeof(reason));
			break;
		}
		if (direct) {
			struct connect_datagram *dg;

			cn_decoder_direct_done(&dec, (size_t)n, &dg);
			if (dg) {
				msgs++;
				bytes += dg->len;
				c->sink.ops->push(&c->sink, dg);
			}
		}
		for (size_t off = 0; !direct && off < (size_t)n;) {
			struct connect_datagram *dg;
			size_t used;
			int rc = cn_decoder_feed(&dec, buf + off,
						 (size_t)n - off, &used, &dg);

			off += used;
			if (dg) {
				msgs++;
				bytes += dg->len;
				if (c->sink.ops->push(&c->sink, dg))
					c->sink.ops->flush(&c->sink);
			}
			if (rc) {
				final = rc;
				snprintf(reason, sizeof(reason), "%s",
					 rc == CONNECT_EPROTO
						 ? dec.reason
						 : connect_strerror(rc));
				break;
			}
		}
		atomic_fetch_add(&c->msgs_recv, msgs);
		atomic_fetch_add(&c->bytes_recv, bytes);
		c->sink.ops->flush(&c->sink);
		/* Busy: a big buffer (without memory, stay small); calm for
		 * a while: give it back. */
		/* The socket is drained and the next read may sleep: the
		 * blocks this thread keeps go back (an idle connection keeps
		 * none). */
		if ((size_t)n < cap)
			cn_dgpool_idle();
		if (direct) {
			/* says nothing of the read buffer */
		} else if (!big && (size_t)n == cap) {
			big = cn_malloc(CN_READ_CHUNK);
			calm = 0;
		} else if (big && (size_t)n <= CN_READ_SMALL) {
			if (++calm >= CN_READ_CALM) {
				cn_free(big);
				big = NULL;
			}
		} else {
			calm = 0;
		}
	}
	cn_decoder_fini(&dec);
	cn_free(big);
	if (final != CONNECT_EEOF && final != CONNECT_ECLOSED)
		set_error(c, final, reason);
	if (final == CONNECT_EPROTO || final == CONNECT_EDEADPEER) {
		/* Past a malformed frame the stream cannot be resynchronized
		 * and the peer is broken; a peer past our timeouts is dead or
		 * hostile: cut the connection now (the peer learns at once,
		 * instead of when the application closes), and make sends
		 * report why. */
		set_tx_err(c, final);
		c->t->ops->abort(c->t);
		wake_all(c);
		send_fd_wake(c);
	}
	c->sink.ops->end(&c->sink, final);
	return NULL;
}

/* ----------------------------------------------------------- life cycle */

static void conn_free(struct connect_conn *c)
{
	connect_inbox *ib = atomic_load(&c->inbox);
	int fd = atomic_load(&c->efd);

	if (ib)
		cn_inbox_unref(ib);

	if (fd >= 0)
		close(fd);
	fd = atomic_load(&c->sfd);
	if (fd >= 0)
		close(fd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->recv_lock);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->pack_lock);
	pthread_cond_destroy(&c->writer_cv);
	pthread_cond_destroy(&c->reader_cv);
	pthread_cond_destroy(&c->recv_cv);
	pthread_cond_destroy(&c->send_cv);
	pthread_cond_destroy(&c->close_cv);
	cn_free_aligned(c);
}

static int attach_prepare(struct connect_conn *c, connect_inbox *ib,
			  bool reserved);
static void attach_kick(struct connect_conn *c, connect_inbox *ib);

int cn_conn_start(connect_conn **connp, struct cn_transport *t,
		  const struct connect_opts *opts, connect_inbox *ib)
{
	struct connect_conn *c;
	size_t stack;
	int rc;

	c = cn_malloc_aligned(sizeof(*c));
	if (!c) {
		t->ops->destroy(t);
		if (ib)
			cn_inbox_unreserve(ib);
		return CONNECT_ENOMEM;
	}
	memset(c, 0, sizeof(*c));
	cn_opts_copy(&c->opts, opts);
	c->t = t;
	c->sink.ops = &queue_sink_ops;
	c->rxmem = cn_rxmem_enabled();
	atomic_init(&c->refs, 1);
	atomic_init(&c->app_ref, 1);
	c->link.conn = c;
	memcpy(c->local, t->local, sizeof(c->local));
	memcpy(c->peer, t->peer, sizeof(c->peer));
	cn_queue_init(&c->out, (uint64_t)c->opts.v[CONNECT_OPT_SEND_QUEUE_BYTES],
		      (uint64_t)c->opts.v[CONNECT_OPT_SEND_QUEUE_MSGS]);
	cn_queue_init(&c->in, (uint64_t)c->opts.v[CONNECT_OPT_RECV_QUEUE_BYTES],
		      (uint64_t)c->opts.v[CONNECT_OPT_RECV_QUEUE_MSGS]);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->pack_lock, NULL);
	c->pack_cap = CN_PACK_MIN;
	c->direct = (t->flags & CN_TRANSPORT_DIRECT) != 0;
	cn_cond_init(&c->writer_cv);
	cn_cond_init(&c->reader_cv);
	cn_cond_init(&c->recv_cv);
	cn_cond_init(&c->send_cv);
	cn_cond_init(&c->close_cv);
	atomic_init(&c->efd, -1);
	atomic_init(&c->sfd, -1);
	c->shutdown_rc = CONNECT_ETIMEDOUT;

	/* Attached before the reader starts: everything it receives is
	 * counted in the inbox's bounds. */
	if (ib) {
		rc = attach_prepare(c, ib, true);
		if (rc)
			goto fail;
		/* Ours until the kick: with the reader running, the
		 * connection may come and go before it. */
		cn_conn_ref(c);
	}
	stack = (size_t)c->opts.v[CONNECT_OPT_THREAD_STACK];
	rc = cn_thread_start(&c->writer, writer_main, c, stack);
	if (rc)
		goto fail;
	rc = cn_thread_start(&c->reader, reader_main, c, stack);
	if (rc) {
		atomic_store(&c->closing, 1);
		atomic_store(&c->stop, 1);
		t->ops->abort(t);
		wake_all(c);
		pthread_join(c->writer, NULL);
		goto fail;
	}
	if (ib) {
		attach_kick(c, ib);
		/* *connp is for the caller to see it worked: the connection
		 * is the inbox's, and may be gone once this returns. */
		cn_conn_unref(c);
	}
	*connp = c;
	return CONNECT_OK;
fail:
	if (atomic_load(&c->inbox))
		cn_inbox_remove(ib, &c->link);
	t->ops->destroy(t);
	cn_queue_fini(&c->out);
	cn_queue_fini(&c->in);
	conn_free(c);
	return rc;
}

/* After the abort: may bytes that were written have been lost?  sent:
 * the datagrams written when the abort began (a writer still writing then
 * may have lost more). */
static bool lost_in_flight(struct connect_conn *c, uint64_t sent)
{
	uint64_t now = atomic_load(&c->msgs_sent);

	if (now == 0)
		return false;
	if (now != sent)
		return true;
	return cn_transport_unacked(c->t);
}

/* A datagram leaves the inbound queue (for the application, a worker, or
 * the bin): release the bounds it counted against.  The caller holds
 * recv_lock or is the last user. */
static void rx_taken(struct connect_conn *c, struct connect_datagram *dg)
{
	if (c->rxmem) {
		cn_rxmem_sub(dg->len);
		/* Seq-cst after the pop: either the parked reader sees the
		 * queue empty, or we see it parked. */
		if (atomic_load(&c->rx_parked) && cn_queue_empty(&c->in))
			cn_rxmem_wake_all();
	}
	if (dg->flags & CN_DG_INBOX) {
		connect_inbox *ib = atomic_load(&c->inbox);

		dg->flags &= (uint16_t)~CN_DG_INBOX;
		cn_inbox_uncount(ib, dg->len);
		/* Seq-cst after the pop: a reader waiting for the inbox's
		 * room stops waiting once its own queue is empty. */
		if (cn_inbox_room_waiters(ib) && cn_queue_empty(&c->in))
			cn_inbox_wake_room(ib);
	}
}

bool cn_conn_close_begin(struct connect_conn *c, int linger_ms)
{
	connect_inbox *ib;

	if (atomic_exchange(&c->claimed, 1))
		return false;
	if (linger_ms < 0)
		linger_ms = (int)c->opts.v[CONNECT_OPT_LINGER_MS];
	c->close_linger = linger_ms;
	c->close_deadline = cn_deadline(linger_ms);

	/* 1. Refuse new work and wake every waiting call; wait for the
	 * calls in progress to leave (they return CONNECT_ECLOSED). */
	atomic_store(&c->closing, 1);
	wake_all(c);
	send_fd_wake(c);
	cn_rxmem_wake_all();
	ib = atomic_load(&c->inbox);
	if (ib)
		cn_inbox_wake_room(ib);
	pthread_mutex_lock(&c->lock);
	while (atomic_load(&c->users) > 0)
		pthread_cond_wait(&c->close_cv, &c->lock);
	pthread_mutex_unlock(&c->lock);

	/* 2. Let the writer flush the queue and end the stream cleanly
	 * (the transport waits for the peer to acknowledge it all). */
	if (linger_ms > 0) {
		atomic_store(&c->flush, 1);
		wake_all(c);
	}
	return true;
}

void cn_conn_close_stop(struct connect_conn *c)
{
	if (c->close_linger > 0) {
		pthread_mutex_lock(&c->lock);
		while (!c->writer_done)
			if (!cn_cond_wait_until(&c->close_cv, &c->lock,
						c->close_deadline))
				break;
		pthread_mutex_unlock(&c->lock);
	}

	/* 3. Stop: cut the stream (unless it ended cleanly, the transport
	 * makes sure the peer cannot take it for a clean end), which wakes
	 * the reader and a writer stuck on a full socket; join both. */
	atomic_store(&c->stop, 1);
	c->close_sent = atomic_load(&c->msgs_sent);
	c->t->ops->abort(c->t);
	wake_all(c);
}

int cn_conn_close_finish(struct connect_conn *c, size_t *unsent,
			 size_t *undelivered)
{
	struct connect_datagram *dg;
	size_t left, dropped_in = 0;
	bool busy;
	int rc, tx;

	pthread_join(c->writer, NULL);
	pthread_join(c->reader, NULL);

	/* 4. Free what is queued (an inbox's worker may still be taking
	 * from the inbound queue: under recv_lock). */
	c->pack_open = NULL; /* freed with the queue; no sender is left */
	left = cn_queue_fini(&c->out) + (size_t)atomic_load(&c->dropped);
	if (c->wpart) {
		/* Begun by a sender, cut before the writer ended it. */
		cn_datagram_free(c->wpart);
		c->wpart = NULL;
		left++;
	}
	pthread_mutex_lock(&c->recv_lock);
	while ((dg = cn_queue_pop(&c->in, &busy)) != NULL || busy) {
		if (dg) {
			rx_taken(c, dg);
			cn_datagram_free(dg);
			dropped_in++;
		}
	}
	pthread_mutex_unlock(&c->recv_lock);
	tx = atomic_load(&c->tx_err);
	rc = c->shutdown_rc;
	/* rc: CONNECT_OK when flushed and ended cleanly, else why the clean
	 * end failed, or CONNECT_ETIMEDOUT when it was never tried. */
	if (tx && tx != CONNECT_ECLOSED)
		rc = tx; /* the writer failed */
	else if (c->close_linger == 0 && left == 0 &&
		 !lost_in_flight(c, c->close_sent))
		rc = CONNECT_OK; /* an abort was asked for, nothing lost */
	else if (c->close_linger == 0)
		rc = CONNECT_ETIMEDOUT; /* the abort may have lost data */
	else if (rc == CONNECT_ECLOSED)
		rc = CONNECT_ETIMEDOUT; /* the deadline cut the shutdown */
	c->t->ops->destroy(c->t);
	c->t = NULL;
	if (unsent)
		*unsent = left;
	if (undelivered)
		*undelivered = dropped_in;
	return rc;
}

int cn_conn_close_end(struct connect_conn *c, size_t *unsent,
		      size_t *undelivered)
{
	cn_conn_close_stop(c);
	return cn_conn_close_finish(c, unsent, undelivered);
}

int connect_close(connect_conn *c, int linger_ms, size_t *unsent)
{
	size_t left = 0;
	int rc = CONNECT_ECLOSED;

	if (!c)
		return CONNECT_EINVAL;
	/* Somebody else (an inbox, a worker) may have closed it already. */
	if (cn_conn_close_begin(c, linger_ms))
		rc = cn_conn_close_end(c, &left, NULL);
	if (unsent)
		*unsent = left;
	if (atomic_exchange(&c->app_ref, 0))
		cn_conn_unref(c);
	return rc;
}

int cn_conn_end_linger(struct connect_conn *c)
{
	return atomic_load(&c->rx_done) == CONNECT_EEOF
		       ? (int)c->opts.v[CONNECT_OPT_LINGER_MS]
		       : 0;
}

/* ------------------------------------------------------------------ send */

static bool send_room(struct connect_conn *c, uint64_t len)
{
	uint64_t bytes = cn_queue_bytes(&c->out);

	return (bytes == 0 || bytes + len <= c->out.max_bytes) &&
	       cn_queue_msgs(&c->out) < c->out.max_msgs;
}

/*
 * Write dg from the sending thread, without waking the writer: only while
 * nothing is queued and nobody writes (wlock), and without waiting
 * (CN_IO_NONBLOCK).  True when dg is taken care of: written, or written in
 * part (the writer writes the rest before anything else), or lost with
 * the stream (as if the writer had failed: counted, reported).  False:
 * queue it as usual.  dg is counted in the queue's bounds already.
 */
static bool send_direct(struct connect_conn *c, struct connect_datagram *dg)
{
	struct timespec ts;
	struct iovec iov;
	int64_t now;
	ssize_t n;

	if (!cn_queue_empty(&c->out) || !atomic_load(&c->writer_sleeping))
		return false;
	/* A sender streaming datagrams back to back would write each with a
	 * system call of its own: within CN_DIRECT_GAP_NS of the last direct
	 * write, queue instead, and the writer batches what follows. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (now - atomic_load_explicit(&c->direct_ns, memory_order_relaxed) <
	    CN_DIRECT_GAP_NS)
		return false;
	if (pthread_mutex_trylock(&c->wlock))
		return false;
	atomic_store_explicit(&c->direct_ns, now, memory_order_relaxed);
	if (c->wpart || !cn_queue_empty(&c->out) || atomic_load(&c->stop) ||
	    atomic_load(&c->tx_err)) {
		pthread_mutex_unlock(&c->wlock);
		return false;
	}
	iov.iov_base = dg->hdr;
	iov.iov_len = CN_HDR_LEN + dg->len;
	n = c->t->ops->sendv(c->t, &iov, 1, CN_IO_NONBLOCK);
	if (n == CONNECT_EAGAIN) {
		pthread_mutex_unlock(&c->wlock);
		return false;
	}
	if (n > 0 && (size_t)n < iov.iov_len) {
		c->wpart = dg;
		c->wpart_done = (size_t)n;
		atomic_store(&c->wpart_pending, 1);
		pthread_mutex_unlock(&c->wlock);
		wake_if(c, &c->writer_sleeping, &c->writer_cv);
		return true;
	}
	if (n > 0) {
		atomic_fetch_add(&c->msgs_sent, 1);
		atomic_fetch_add(&c->bytes_sent, dg->len);
		if (c->t->ops->out_pending && c->t->ops->out_pending(c->t)) {
			atomic_store(&c->tpart_pending, 1);
			pthread_mutex_unlock(&c->wlock);
			cn_queue_release(&c->out, 1, dg->len);
			cn_datagram_free(dg);
			wake_if(c, &c->writer_sleeping, &c->writer_cv);
			return true;
		}
	} else {
		char reason[CN_REASON_LEN];

		set_tx_err(c, (int)n);
		cn_transport_reason(c->t, reason, sizeof(reason));
		set_error(c, (int)n, reason);
		atomic_fetch_add(&c->dropped, 1);
	}
	pthread_mutex_unlock(&c->wlock);
	cn_queue_release(&c->out, 1, dg->len);
	cn_datagram_free(dg);
	if (n < 0)
		send_fd_wake(c);
	return true;
}

/*
 * Queue dg (counted in the bounds already); true on the queue's
 * empty-to-non-empty edge.  A small frame queued behind others is copied
 * into the pack at the queue's tail (a new one if there is none with
 * room), and dg freed here, on the thread that most likely allocated it:
 * the writer then takes hundreds of frames at once, with no datagram to
 * walk or free each.  A frame sent into an empty queue goes as it is (a
 * connection that sends now and then makes no pack).  Order: every push
 * is under pack_lock, and a datagram pushed as itself ends the open pack,
 * so that no frame queued after it goes before it.
 */
static uint32_t pack_room(const struct connect_datagram *p)
{
	uint32_t cap;

	memcpy(&cap, p->hdr + 4, sizeof(cap));
	return cap;
}

static bool send_packed(struct connect_conn *c, struct connect_datagram *dg)
{
	size_t fl = CN_HDR_LEN + (size_t)dg->len;
	struct connect_datagram *p, *q = dg;
	bool edge;

	pthread_mutex_lock(&c->pack_lock);
	p = c->pack_open;
	if (fl <= CN_PACK_FRAME && p && p->len + fl <= pack_room(p)) {
		memcpy(p->payload + p->len, dg->hdr, fl);
		p->len += (uint32_t)fl;
		cn_pack_set_msgs(p, cn_pack_msgs(p) + 1);
		pthread_mutex_unlock(&c->pack_lock);
		/* Queued already: whoever pushed it woke the writer. */
		cn_datagram_free(dg);
		return false;
	}
	c->pack_open = NULL;
	if (fl <= CN_PACK_FRAME && (p || !cn_queue_empty(&c->out))) {
		/* The last one filled up: the next holds more. */
		if (p && c->pack_cap < CN_PACK_MAX)
			c->pack_cap *= 2;
		p = cn_datagram_reserve(c->pack_cap);
		if (p) {
			p->flags |= CN_DG_PACK;
			memcpy(p->hdr + 4, &c->pack_cap, sizeof(c->pack_cap));
			memcpy(p->payload, dg->hdr, fl);
			p->len = (uint32_t)fl;
			cn_pack_set_msgs(p, 1);
			c->pack_open = p;
			q = p;
		}
		/* Without memory for it, dg goes as it is. */
	}
	edge = cn_queue_push(&c->out, q);
	pthread_mutex_unlock(&c->pack_lock);
	if (q != dg)
		cn_datagram_free(dg);
	return edge;
}

static int send_try(struct connect_conn *c, struct connect_datagram *dg)
{
	int err;

	if (atomic_load(&c->closing))
		return CONNECT_ECLOSED;
	err = atomic_load(&c->tx_err);
	if (err)
		return err;
	if (!cn_queue_reserve(&c->out, dg->len)) {
		send_fd_block(c);
		return CONNECT_EAGAIN;
	}
	if (c->direct && send_direct(c, dg))
		return CONNECT_OK;
	/* Wake the writer on the empty-to-non-empty edge only, and only if it
	 * sleeps: on a busy connection this is no system call at all. */
	if (send_packed(c, dg))
		wake_if(c, &c->writer_sleeping, &c->writer_cv);
	return CONNECT_OK;
}

int connect_send(connect_conn *c, connect_datagram *dg)
{
	int rc;

	if (!c || !dg)
		return CONNECT_EINVAL;
	enter(c);
	rc = send_try(c, dg);
	leave(c);
	return rc;
}

struct send_args {
	struct connect_conn *c;
	connect_datagram *dg;
};

static int send_wait_try(void *arg)
{
	struct send_args *a = arg;

	return send_try(a->c, a->dg);
}

static bool send_wait_ready(void *arg)
{
	struct send_args *a = arg;

	return send_room(a->c, a->dg->len) || atomic_load(&a->c->closing) ||
	       atomic_load(&a->c->tx_err);
}

int connect_send_wait(connect_conn *c, connect_datagram *dg, int timeout_ms)
{
	struct send_args a = { c, dg };
	struct cn_waiter w;
	int rc;

	if (!c || !dg)
		return CONNECT_EINVAL;
	w = (struct cn_waiter){ send_wait_try, send_wait_ready,
				&c->send_waiters, &c->lock, &c->send_cv, &a, 0 };
	enter(c);
	rc = cn_wait(&w, timeout_ms);
	leave(c);
	return rc;
}

/* ------------------------------------------------------------------ recv */

static int recv_try(struct connect_conn *c, struct connect_datagram **dgp)
{
	struct connect_datagram *dg;
	bool busy;
	int done, fd;

	if (atomic_load(&c->closing))
		return CONNECT_ECLOSED;
	pthread_mutex_lock(&c->recv_lock);
	if (atomic_load(&c->inbox)) {
		pthread_mutex_unlock(&c->recv_lock);
		return CONNECT_EATTACHED;
	}
	dg = cn_queue_pop(&c->in, &busy);
	done = atomic_load(&c->rx_done);
	if (!dg && !busy && done) {
		/* rx_done is published after the last push: look again. */
		dg = cn_queue_pop(&c->in, &busy);
	}
	fd = atomic_load(&c->efd);
	if (fd >= 0 && !done && cn_queue_empty(&c->in)) {
		/* Level-triggered descriptor: clear it on the way to empty,
		 * then set it again if the reader slipped one in. */
		uint64_t v;

		while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
			;
		if (!cn_queue_empty(&c->in) || atomic_load(&c->rx_done))
			efd_signal(c);
	}
	pthread_mutex_unlock(&c->recv_lock);
	if (dg) {
		rx_taken(c, dg);
		if (atomic_load(&c->reader_sleeping) && cn_queue_low(&c->in))
			wake_if(c, &c->reader_sleeping, &c->reader_cv);
		*dgp = dg;
		return CONNECT_OK;
	}
	if (busy || !done)
		return CONNECT_EAGAIN;
	return done;
}

int connect_recv(connect_conn *c, connect_datagram **dgp)
{
	int rc;

	if (!c || !dgp)
		return CONNECT_EINVAL;
	enter(c);
	rc = recv_try(c, dgp);
	leave(c);
	return rc;
}

struct recv_args {
	struct connect_conn *c;
	connect_datagram **dgp;
};

static int recv_wait_try(void *arg)
{
	struct recv_args *a = arg;

	return recv_try(a->c, a->dgp);
}

static bool recv_wait_ready(void *arg)
{
	struct connect_conn *c = ((struct recv_args *)arg)->c;

	return !cn_queue_empty(&c->in) || atomic_load(&c->rx_done) ||
	       atomic_load(&c->closing) || atomic_load(&c->inbox);
}

int connect_recv_wait(connect_conn *c, connect_datagram **dgp, int timeout_ms)
{
	struct recv_args a = { c, dgp };
	struct cn_waiter w;
	int rc;

	if (!c || !dgp)
		return CONNECT_EINVAL;
	w = (struct cn_waiter){ recv_wait_try, recv_wait_ready,
				&c->recv_waiters, &c->lock, &c->recv_cv, &a,
				c->opts.v[CONNECT_OPT_RECV_SPIN_US] * 1000 };
	enter(c);
	rc = cn_wait(&w, timeout_ms);
	leave(c);
	return rc;
}

/*
 * The descriptor in *slot, made on first use under m; arm() then makes it
 * readable if its condition holds already (after the descriptor is
 * published, so that either arm sees the condition or the thread that
 * makes it true sees the descriptor).
 */
static int lazy_fd(struct connect_conn *c, _Atomic int *slot,
		   pthread_mutex_t *m, void (*arm)(struct connect_conn *c))
{
	int fd;

	enter(c);
	pthread_mutex_lock(m);
	fd = atomic_load(slot);
	if (fd < 0) {
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0) {
			fd = CONNECT_ESYSTEM;
		} else {
			atomic_store(slot, fd);
			arm(c);
		}
	}
	pthread_mutex_unlock(m);
	leave(c);
	return fd;
}

static void recv_fd_arm(struct connect_conn *c)
{
	if (!cn_queue_empty(&c->in) || atomic_load(&c->rx_done))
		efd_signal(c);
}

/* Readable from the start while there is room; else the writer signals
 * when it makes some. */
static void send_fd_arm(struct connect_conn *c)
{
	atomic_store(&c->send_blocked, 1);
	if (send_fd_ready(c))
		send_fd_wake(c);
}

/* Under recv_lock: recv_try clears the descriptor under it. */
int connect_conn_fd(connect_conn *c)
{
	bool attached;

	if (!c)
		return CONNECT_EINVAL;
	enter(c);
	attached = atomic_load(&c->inbox) != NULL;
	leave(c);
	if (attached)
		return CONNECT_EATTACHED;
	return lazy_fd(c, &c->efd, &c->recv_lock, recv_fd_arm);
}

int connect_conn_send_fd(connect_conn *c)
{
	return c ? lazy_fd(c, &c->sfd, &c->lock, send_fd_arm)
		 : CONNECT_EINVAL;
}

/* ----------------------------------------------------------- inspection */

int connect_conn_error(connect_conn *c, char *buf, size_t len)
{
	int code;

	if (!c)
		return CONNECT_EINVAL;
	enter(c);
	pthread_mutex_lock(&c->lock);
	code = c->err_code;
	if (buf && len > 0)
		snprintf(buf, len, "%s", code ? c->err_reason : "");
	pthread_mutex_unlock(&c->lock);
	leave(c);
	return code;
}

/* The addresses are copied at the start and never change. */
static int copy_addr(struct connect_conn *c, bool peer, char *buf,
		     size_t len)
{
	const char *src;
	size_t n;
	int rc = CONNECT_EINVAL;

	if (!c || !buf)
		return CONNECT_EINVAL;
	enter(c);
	src = peer ? c->peer : c->local;
	n = strlen(src);
	if (n < len) {
		memcpy(buf, src, n + 1);
		rc = CONNECT_OK;
	}
	leave(c);
	return rc;
}

int connect_conn_local_addr(connect_conn *c, char *buf, size_t len)
{
	return copy_addr(c, false, buf, len);
}

int connect_conn_peer_addr(connect_conn *c, char *buf, size_t len)
{
	return copy_addr(c, true, buf, len);
}

void connect_conn_set_user(connect_conn *c, void *user)
{
	if (c) {
		enter(c);
		atomic_store(&c->user, user);
		leave(c);
	}
}

void *connect_conn_user(connect_conn *c)
{
	void *user;

	if (!c)
		return NULL;
	enter(c);
	user = atomic_load(&c->user);
	leave(c);
	return user;
}

int connect_conn_peer_identity(connect_conn *c, int what, char *buf,
			       size_t len)
{
	int rc;

	if (!c || !buf || len == 0)
		return CONNECT_EINVAL;
	enter(c);
	buf[0] = '\0';
	if (atomic_load(&c->closing))
		rc = CONNECT_ECLOSED;
	else if (!c->t->ops->peer_identity)
		rc = CONNECT_ENOTSUP;
	else
		rc = c->t->ops->peer_identity(c->t, what, buf, len);
	leave(c);
	return rc;
}

static int conn_stat(struct connect_conn *c, int stat, uint64_t *value)
{
	switch (stat) {
	case CONNECT_STAT_MSGS_SENT:
		*value = atomic_load(&c->msgs_sent);
		break;
	case CONNECT_STAT_BYTES_SENT:
		*value = atomic_load(&c->bytes_sent);
		break;
	case CONNECT_STAT_MSGS_RECV:
		*value = atomic_load(&c->msgs_recv);
		break;
	case CONNECT_STAT_BYTES_RECV:
		*value = atomic_load(&c->bytes_recv);
		break;
	case CONNECT_STAT_SEND_QUEUED:
		*value = cn_queue_msgs(&c->out);
		break;
	case CONNECT_STAT_SEND_QUEUED_BYTES:
		*value = cn_queue_bytes(&c->out);
		break;
	case CONNECT_STAT_RECV_QUEUED:
		*value = cn_queue_msgs(&c->in);
		break;
	case CONNECT_STAT_RECV_QUEUED_BYTES:
		*value = cn_queue_bytes(&c->in);
		break;
	default:
		return CONNECT_EINVAL;
	}
	return CONNECT_OK;
}

int connect_conn_stat(connect_conn *c, int stat, uint64_t *value)
{
	int rc;

	if (!c || !value)
		return CONNECT_EINVAL;
	enter(c);
	rc = conn_stat(c, stat, value);
	leave(c);
	return rc;
}

int connect_conn_opt(connect_conn *c, int opt, int64_t *value)
{
	int rc;

	if (!c)
		return CONNECT_EINVAL;
	enter(c);
	rc = connect_opts_get(&c->opts, opt, value);
	leave(c);
	return rc;
}

/* ----------------------------------------------------------------- inbox */

struct connect_conn *cn_conn_of_token(struct cds_wfcq_node *token)
{
	return cn_container_of(token, struct connect_conn, token);
}

bool cn_conn_take(struct connect_conn *c, connect_item *item, bool strand)
{
	connect_inbox *ib = atomic_load(&c->inbox);
	struct connect_datagram *dg = NULL;
	int kind = 0, code = 0;

	atomic_store(&c->sched, TOK_HELD);
	if (atomic_exchange(&c->attach_pending, 0)) {
		kind = CONNECT_ITEM_ATTACHED;
	} else {
		bool busy;
		int done;

		pthread_mutex_lock(&c->recv_lock);
		dg = cn_queue_pop(&c->in, &busy);
		done = atomic_load(&c->rx_done);
		if (!dg && !busy && done)
			dg = cn_queue_pop(&c->in, &busy);
		if (dg)
			rx_taken(c, dg);
		pthread_mutex_unlock(&c->recv_lock);
		if (dg) {
			kind = CONNECT_ITEM_DATAGRAM;
			if (atomic_load(&c->reader_sleeping) &&
			    cn_queue_low(&c->in))
				wake_if(c, &c->reader_sleeping, &c->reader_cv);
		} else if (!busy && done &&
			   !atomic_exchange(&c->end_delivered, 1)) {
			kind = CONNECT_ITEM_END;
			code = done;
		}
	}
	if (kind) {
		cn_conn_ref(c);
		*item = (connect_item){ .kind = kind,
					.code = code,
					.conn = c,
					.dg = dg,
					.user = atomic_load(&c->user) };
		item->internal_[0] = ib;
		item->internal_[1] = strand ? c : NULL;
	}
	if (!kind || !strand)
		sched_release(c, ib);
	return kind != 0;
}

void connect_item_done(connect_item *item)
{
	struct connect_conn *c;
	connect_inbox *ib;

	if (!item || !item->conn)
		return;
	c = item->conn;
	ib = item->internal_[0];
	if (item->internal_[1])
		sched_release(c, ib);
	if (item->kind == CONNECT_ITEM_END)
		cn_inbox_ended(ib, &c->link);
	memset(item, 0, sizeof(*item));
	cn_conn_unref(c);
}

/*
 * Attach, first half: list it, take the inbox's reference, route the
 * reader.  The application's reference becomes the inbox's: from now on
 * the connection belongs to the inbox.  `reserved`: the listener reserved
 * its place (cn_inbox_reserve), which this uses up, also on failure.
 */
static int attach_prepare(struct connect_conn *c, connect_inbox *ib,
			  bool reserved)
{
	int rc;

	pthread_mutex_lock(&c->recv_lock);
	if (atomic_load(&c->inbox))
		rc = CONNECT_EINVAL;
	else if (atomic_load(&c->closing))
		rc = CONNECT_ECLOSED;
	else
		rc = cn_inbox_add(ib, &c->link, reserved);
	if (rc == CONNECT_OK) {
		cn_inbox_ref(ib);
		atomic_store(&c->app_ref, 0);
		atomic_store(&c->attach_pending, 1);
		atomic_store(&c->inbox, ib);
	} else if (reserved && rc == CONNECT_EINVAL) {
		cn_inbox_unreserve(ib);
	}
	pthread_mutex_unlock(&c->recv_lock);
	return rc;
}

/* Second half: hand out the ATTACHED item and what waits. */
static void attach_kick(struct connect_conn *c, connect_inbox *ib)
{
	sched_kick(c, ib);
	/* Waiting receivers learn that they wait in vain. */
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->recv_cv);
	pthread_mutex_unlock(&c->lock);
	efd_signal(c);
}

int cn_conn_attach(struct connect_conn *c, connect_inbox *ib)
{
	int rc;

	/* Ours for the call: once attached, the connection may come and go
	 * before the kick. */
	cn_conn_ref(c);
	rc = attach_prepare(c, ib, false);
	if (rc == CONNECT_OK)
		attach_kick(c, ib);
	cn_conn_unref(c);
	return rc;
}

int connect_conn_attach(connect_conn *c, connect_inbox *ib)
{
	int rc;

	if (!c || !ib)
		return CONNECT_EINVAL;
	enter(c);
	rc = cn_inbox_enter(ib) ? cn_conn_attach(c, ib) : CONNECT_ECLOSED;
	cn_inbox_leave(ib);
	leave(c);
	return rc;
}
