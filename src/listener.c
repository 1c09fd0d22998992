/*
 * The listener: one accept loop for every transport.  A library thread
 * takes incoming connections from the transport's endpoint, wraps them in
 * the stack's layers, runs each handshake on a thread of its own, and
 * queues the connections for connect_accept().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Room: handshakes in progress and connections waiting for accept are
 * bounded separately.  The accept loop pauses while CONNECT_OPT_ACCEPT_QUEUE
 * finished connections wait (the kernel backlog then holds clients); it
 * never pauses for handshakes: when CONNECT_OPT_HANDSHAKE_MAX are under way
 * and another client arrives, the oldest handshake is cut, so a flood of
 * silent or slow peers cannot lock real clients out.
 *
 * Locking theory: `lock` guards the ready list, the handshake list, the
 * counters and the error slots.  Accepting is not a hot path, so plain
 * mutex and condition variables.  `users` counts API calls in progress;
 * connect_listener_close() waits on `cv` until it is 0.  `refs` counts who
 * holds the memory (the application's handle): close stops everything
 * and drops the application's reference, the memory goes with the last
 * one.  A listener given an inbox attaches what it accepts to it instead
 * of queueing it, and holds a reference to the inbox.
 */
#include "connect_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "inbox.h"
#include "tls.h"
#include "transport.h"
#include "alloc.h"

struct ready {
	connect_conn *conn;
	struct ready *next;
};

/* A handshake in progress on a thread of its own. */
struct handshake {
	struct connect_listener *l;
	pthread_t thread;
	struct cn_transport *t; /* owned by the handshake thread */
	bool done;              /* under l->lock: t no longer ours to cut */
	bool cut;               /* under l->lock: the listener cut it */
	int64_t started;        /* cn_now_ms() */
	connect_inbox *ib;      /* its reserved place, or NULL */
	char peer[CN_ADDRSTRLEN];
	struct handshake *prev, *next; /* newest first */
};

struct connect_listener {
	struct cn_tlistener *tl;
	struct cn_stack st;
	struct cn_endpoint ep;
	struct connect_opts opts;
	connect_tls_config *tls;
	int ready_fd; /* eventfd: readable while connections wait */
	connect_inbox *inbox; /* under lock; set once */

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;

	struct ready *head, **tailp;
	size_t nready;
	struct handshake *hs, *hs_oldest;
	size_t nhs;     /* handshakes listed (running or to be joined) */
	size_t nactive; /* handshakes running and not cut */

	_Atomic int closing;
	_Atomic int users;
	_Atomic int refs;

	int failures;
	int last_err;
	char last_reason[CN_REASON_LEN + CN_ADDRSTRLEN + 4];
};

static void efd_write(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void efd_clear(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static bool enter(struct connect_listener *l)
{
	atomic_fetch_add(&l->users, 1);
	return !atomic_load(&l->closing);
}

static void leave(struct connect_listener *l)
{
	if (atomic_fetch_sub(&l->users, 1) == 1 && atomic_load(&l->closing)) {
		pthread_mutex_lock(&l->lock);
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->lock);
	}
}

/* Count a failed handshake.  Called with l->lock held. */
static void note_failure(struct connect_listener *l, const char *peer, int rc,
			 const char *reason)
{
	l->failures++;
	l->last_err = rc;
	snprintf(l->last_reason, sizeof(l->last_reason), "%s: %s", peer,
		 reason[0] ? reason : connect_strerror(rc));
}

/* Queue an accepted connection; false (and the caller closes it) once the
 * listener is closing.  Called with l->lock held. */
static bool ready_push(struct connect_listener *l, connect_conn *c)
{
	struct ready *r;

	if (atomic_load(&l->closing))
		return false;
	r = cn_malloc(sizeof(*r));
	if (!r)
		return false;
	r->conn = c;
	r->next = NULL;
	*l->tailp = r;
	l->tailp = &r->next;
	l->nready++;
	efd_write(l->ready_fd);
	pthread_cond_broadcast(&l->cv);
	return true;
}

/* Start the connection's threads and queue it for connect_accept(), or
 * attach it to the inbox in which `ib` is its reserved place (NULL: the
 * listener fed no inbox when it was accepted). */
static void start_conn(struct connect_listener *l, struct cn_transport *t,
		       connect_inbox *ib)
{
	connect_conn *c = NULL;
	char peer[CN_ADDRSTRLEN];
	bool queued = false;
	int rc;

	memcpy(peer, t->peer, sizeof(peer));
	rc = cn_conn_start(&c, t, &l->opts, ib);
	if (rc)
		cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT",
		       "%s: could not start a connection from %s: %s",
		       l->tl->addr, peer, connect_strerror(rc));
	if (!c || ib)
		return;
	pthread_mutex_lock(&l->lock);
	ib = l->inbox; /* given meanwhile? */
	if (!ib)
		queued = ready_push(l, c);
	pthread_mutex_unlock(&l->lock);
	if (ib)
		queued = cn_conn_attach(c, ib) == CONNECT_OK;
	if (!queued)
		connect_close(c, 0, NULL);
}

/* The inbox the listener feeds, with a place reserved in it for a new
 * connection; NULL without an inbox.  False: an inbox without room (the
 * connection must go). */
static bool reserve(struct connect_listener *l, connect_inbox **ibp)
{
	pthread_mutex_lock(&l->lock);
	*ibp = l->inbox; /* set once; the listener holds a reference */
	pthread_mutex_unlock(&l->lock);
	return !*ibp || cn_inbox_reserve(*ibp);
}

static void hs_unlink(struct connect_listener *l, struct handshake *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		l->hs = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		l->hs_oldest = h->prev;
	l->nhs--;
}

static void *handshake_main(void *arg)
{
	struct handshake *h = arg;
	struct connect_listener *l = h->l;
	struct cn_transport *t = h->t;
	char reason[CN_REASON_LEN] = "";
	bool cut;
	int rc;

	rc = t->ops->handshake(t, -1, reason, sizeof(reason));
	/* From here on the listener no longer touches t. */
	pthread_mutex_lock(&l->lock);
	h->done = true;
	cut = h->cut;
	if (!cut)
		l->nactive--;
	if (rc && !cut && !atomic_load(&l->closing))
		note_failure(l, h->peer, rc, reason);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->lock);
	if (rc == CONNECT_OK && !cut) {
		start_conn(l, t, h->ib);
		return NULL;
	}
	if (h->ib)
		cn_inbox_unreserve(h->ib);
	t->ops->destroy(t);
	if (rc && !cut && !atomic_load(&l->closing))
		cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-HANDSHAKE",
		       "%s: handshake with %s failed: %s (%s)", l->tl->addr,
		       h->peer, connect_strerror(rc), reason);
	return NULL;
}

/* Join the handshake threads that finished (all of them if `all`). */
static void reap_handshakes(struct connect_listener *l, bool all)
{
	struct handshake *h, *next, *done = NULL;

	pthread_mutex_lock(&l->lock);
	for (h = l->hs; h; h = next) {
		next = h->next;
		if (h->done || all) {
			hs_unlink(l, h);
			h->next = done;
			done = h;
		}
	}
	pthread_mutex_unlock(&l->lock);
	while ((h = done) != NULL) {
		done = h->next;
		pthread_join(h->thread, NULL);
		cn_free(h);
	}
}

/* Cut a handshake that is still running.  Called with l->lock held. */
static void hs_cut(struct connect_listener *l, struct handshake *h)
{
	if (h->done || h->cut)
		return;
	h->cut = true;
	l->nactive--;
	h->t->ops->abort(h->t);
}

/* The oldest handshake still running, or NULL.  Called with l->lock. */
static struct handshake *hs_oldest_running(struct connect_listener *l)
{
	struct handshake *h;

	for (h = l->hs_oldest; h; h = h->prev)
		if (!h->done && !h->cut)
			return h;
	return NULL;
}

/*
 * Make room for one more handshake: cut the oldest running ones, but none
 * younger than a grace of 4 ms per handshake allowed (at most 250 ms):
 * meanwhile the next client waits (in the kernel's backlog) for a
 * handshake to finish.  An honest burst of clients then goes through, a
 * few at a time, while peers that stall a handshake still lose their
 * place after the grace: however many, they are cut at about 250 per
 * second.
 */
static void hs_make_room(struct connect_listener *l)
{
	size_t max = (size_t)l->opts.v[CONNECT_OPT_HANDSHAKE_MAX];
	int64_t grace = max >= 62 ? 250 : (int64_t)max * 4;
	struct handshake *h;

	pthread_mutex_lock(&l->lock);
	while (l->nactive >= max && !atomic_load(&l->closing)) {
		h = hs_oldest_running(l);
		if (!h)
			break;
		if (cn_now_ms() - h->started < grace) {
			/* Woken when a handshake finishes. */
			(void)cn_cond_wait_until(&l->cv, &l->lock,
						 h->started + grace);
			continue;
		}
		note_failure(l, h->peer, CONNECT_ETLSHANDSHAKETIMEOUT,
			     "handshake cut: too many in progress, the oldest "
			     "goes first");
		cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-HANDSHAKE",
		       "%s: %zu handshakes in progress: cutting the oldest, "
		       "with %s", l->tl->addr, l->nactive, h->peer);
		hs_cut(l, h);
	}
	pthread_mutex_unlock(&l->lock);
}

static void start_handshake(struct connect_listener *l, struct cn_transport *t,
			    connect_inbox *ib)
{
	struct handshake *h;
	int rc;

	reap_handshakes(l, false);
	hs_make_room(l);
	h = cn_calloc(1, sizeof(*h));
	if (!h) {
		t->ops->destroy(t);
		if (ib)
			cn_inbox_unreserve(ib);
		return;
	}
	h->ib = ib;
	snprintf(h->peer, sizeof(h->peer), "%s", t->peer);
	h->started = cn_now_ms();
	h->l = l;
	h->t = t;
	/* Listed before it starts: it may finish at once, and close must
	 * find it. */
	pthread_mutex_lock(&l->lock);
	h->next = l->hs;
	if (l->hs)
		l->hs->prev = h;
	else
		l->hs_oldest = h;
	l->hs = h;
	l->nhs++;
	l->nactive++;
	pthread_mutex_unlock(&l->lock);
	rc = cn_thread_start(&h->thread, handshake_main, h,
			     (size_t)l->opts.v[CONNECT_OPT_THREAD_STACK]);
	if (rc) {
		pthread_mutex_lock(&l->lock);
		hs_unlink(l, h);
		l->nactive--;
		pthread_mutex_unlock(&l->lock);
		cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT",
		       "%s: no thread for a handshake", l->tl->addr);
		t->ops->destroy(t);
		if (ib)
			cn_inbox_unreserve(ib);
		cn_free(h);
	}
}

static void pause_ms(struct connect_listener *l, int ms);

/* Wait until fewer than the accept-queue limit wait for connect_accept(),
 * or until the listener closes.  False when closing. */
static bool accept_room(struct connect_listener *l)
{
	size_t limit = (size_t)l->opts.v[CONNECT_OPT_ACCEPT_QUEUE];
	connect_inbox *ib;

	pthread_mutex_lock(&l->lock);
	while (l->nready >= limit && !atomic_load(&l->closing))
		pthread_cond_wait(&l->cv, &l->lock);
	ib = l->inbox;
	pthread_mutex_unlock(&l->lock);
	/* An inbox at its most connections: the kernel's backlog holds the
	 * clients until one ends (looked at every 10 ms). */
	while (ib && !cn_inbox_room(ib) && !atomic_load(&l->closing))
		pause_ms(l, 10);
	return !atomic_load(&l->closing);
}

/* Sleep up to ms unless the listener closes. */
static void pause_ms(struct connect_listener *l, int ms)
{
	int64_t deadline = cn_deadline(ms);

	pthread_mutex_lock(&l->lock);
	while (!atomic_load(&l->closing) &&
	       cn_cond_wait_until(&l->cv, &l->lock, deadline))
		;
	pthread_mutex_unlock(&l->lock);
}

static void *accept_main(void *arg)
{
	struct connect_listener *l = arg;

	while (accept_room(l)) {
		connect_inbox *ib;
		struct cn_transport *t;
		char reason[CN_REASON_LEN] = "";
		int rc;

		rc = l->tl->ops->accept(l->tl, &t, reason, sizeof(reason));
		if (rc == CONNECT_ECLOSED || atomic_load(&l->closing)) {
			if (rc == CONNECT_OK)
				t->ops->destroy(t);
			break;
		}
		if (rc) {
			/* Out of descriptors or memory: say so, pause, and go
			 * on; the kernel backlog keeps the clients. */
			cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT", "%s: %s",
			       l->tl->addr, reason);
			pause_ms(l, 100);
			continue;
		}
		rc = cn_stack_wrap(&l->st, &l->ep, &t, reason, sizeof(reason));
		if (rc) {
			cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT", "%s: %s",
			       l->tl->addr, reason);
			continue;
		}
		/* Feeding an inbox: the connection's place is reserved now,
		 * before its handshake, so that the inbox's connection limit
		 * holds clients in the backlog instead of dropping them after
		 * their handshake. */
		if (!reserve(l, &ib)) {
			cn_log(CONNECT_LOG_WARN, "CONNECT-ACCEPT",
			       "%s: connection from %s closed: the inbox is "
			       "closing or full", l->tl->addr, t->peer);
			t->ops->destroy(t);
			continue;
		}
		if (t->ops->handshake)
			start_handshake(l, t, ib);
		else
			start_conn(l, t, ib);
		reap_handshakes(l, false);
	}
	return NULL;
}

static void listener_free(struct connect_listener *l);

void cn_listener_ref(connect_listener *l)
{
	atomic_fetch_add(&l->refs, 1);
}

void cn_listener_unref(connect_listener *l)
{
	if (atomic_fetch_sub(&l->refs, 1) == 1)
		listener_free(l);
}

static void listener_free(struct connect_listener *l)
{
	if (l->tl)
		l->tl->ops->destroy(l->tl);
	if (l->ready_fd >= 0)
		close(l->ready_fd);
	if (l->tls)
		cn_tls_config_unref(l->tls);
	if (l->inbox)
		cn_inbox_unref(l->inbox);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cv);
	cn_free(l);
}

static int listen_stack(connect_listener **lp, const struct cn_stack *st,
			connect_tls_config *tls, const connect_opts *opts)
{
	struct connect_listener *l;
	char reason[CN_REASON_LEN] = "";
	int rc;

	l = cn_calloc(1, sizeof(*l));
	if (!l)
		return CONNECT_ENOMEM;
	l->ready_fd = -1;
	atomic_init(&l->refs, 1);
	pthread_mutex_init(&l->lock, NULL);
	cn_cond_init(&l->cv);
	l->tailp = &l->head;
	cn_opts_copy(&l->opts, opts);
	if (tls) {
		cn_tls_config_ref(tls);
		l->tls = tls;
	}
	l->st = *st;
	l->ep = (struct cn_endpoint){
		.addr = st->addr,
		.opts = &l->opts,
		.tls = l->tls,
		.deadline = -1,
		.server = true,
		.layer_flags = cn_stack_layer_flags(st),
	};
	rc = cn_stack_check(st, &l->ep, true, reason, sizeof(reason));
	if (rc) {
		cn_log(CONNECT_LOG_ERROR, "CONNECT-LISTEN", "%s: %s", st->addr,
		       reason[0] ? reason : connect_strerror(rc));
		goto fail;
	}
	rc = st->base->listen(&l->ep, &l->tl, reason, sizeof(reason));
	if (rc) {
		cn_log(CONNECT_LOG_ERROR, "CONNECT-LISTEN", "%s: %s", st->addr,
		       reason[0] ? reason : connect_strerror(rc));
		goto fail;
	}
	/* The stack's address from now on is the transport's copy. */
	l->st.addr = l->ep.addr = l->tl->addr;
	l->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->ready_fd < 0) {
		rc = cn_err_from_errno(errno);
		goto fail;
	}
	rc = cn_thread_start(&l->thread, accept_main, l,
			     (size_t)l->opts.v[CONNECT_OPT_THREAD_STACK]);
	if (rc)
		goto fail;
	*lp = l;
	return CONNECT_OK;
fail:
	listener_free(l);
	return rc;
}

int connect_listen(connect_listener **lp, const char *url,
		   const connect_opts *opts)
{
	struct cn_stack st;
	int rc;

	if (!lp || !url)
		return CONNECT_EINVAL;
	rc = cn_stack_parse(url, &st);
	if (rc)
		return rc;
	return listen_stack(lp, &st, opts ? opts->tls : NULL, opts);
}

int connect_tcp_listen(connect_listener **lp, const char *addr,
		       const connect_opts *opts)
{
	struct cn_stack st = { .base = &cn_tcp_class, .addr = addr };

	if (!lp || !addr)
		return CONNECT_EINVAL;
	return listen_stack(lp, &st, NULL, opts);
}

int connect_tls_listen(connect_listener **lp, const char *addr,
		       connect_tls_config *cfg, const connect_opts *opts)
{
	struct cn_stack st = {
		.base = &cn_tcp_class,
		.layers = { &cn_tls_class },
		.nlayers = 1,
		.addr = addr,
	};

	if (!lp || !addr || !cfg)
		return CONNECT_EINVAL;
	return listen_stack(lp, &st, cfg, opts);
}

static int accept_try(struct connect_listener *l, connect_conn **connp)
{
	struct ready *r;
	int rc = CONNECT_EAGAIN;

	if (atomic_load(&l->closing))
		return CONNECT_ECLOSED;
	pthread_mutex_lock(&l->lock);
	if (l->inbox) {
		pthread_mutex_unlock(&l->lock);
		return CONNECT_EATTACHED;
	}
	r = l->head;
	if (r) {
		l->head = r->next;
		if (!l->head) {
			l->tailp = &l->head;
			efd_clear(l->ready_fd);
		}
		l->nready--;
		/* Room for the accepting thread again. */
		pthread_cond_broadcast(&l->cv);
		*connp = r->conn;
		cn_free(r);
		rc = CONNECT_OK;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int connect_accept(connect_listener *l, connect_conn **connp)
{
	int rc;

	if (!l || !connp)
		return CONNECT_EINVAL;
	rc = enter(l) ? accept_try(l, connp) : CONNECT_ECLOSED;
	leave(l);
	return rc;
}

struct accept_args {
	struct connect_listener *l;
	connect_conn **connp;
};

static int accept_wait_try(void *arg)
{
	struct accept_args *a = arg;

	return accept_try(a->l, a->connp);
}

static bool accept_wait_ready(void *arg)
{
	struct connect_listener *l = ((struct accept_args *)arg)->l;

	return l->head || atomic_load(&l->closing) || l->inbox;
}

int connect_accept_wait(connect_listener *l, connect_conn **connp,
			int timeout_ms)
{
	struct accept_args a = { l, connp };
	struct cn_waiter w;
	int rc;

	if (!l || !connp)
		return CONNECT_EINVAL;
	w = (struct cn_waiter){ accept_wait_try, accept_wait_ready, NULL,
				&l->lock, &l->cv, &a, 0 };
	rc = enter(l) ? cn_wait(&w, timeout_ms) : CONNECT_ECLOSED;
	leave(l);
	return rc;
}

/* The descriptor, port and address are set before the listener is handed
 * out and never change; the calls still register, so that
 * connect_listener_close() waits for them. */
int connect_listener_fd(connect_listener *l)
{
	int rc;

	if (!l)
		return CONNECT_EINVAL;
	rc = enter(l) ? l->ready_fd : CONNECT_ECLOSED;
	leave(l);
	return rc;
}

int connect_listener_port(connect_listener *l)
{
	int rc;

	if (!l)
		return CONNECT_EINVAL;
	rc = enter(l) ? l->tl->port : CONNECT_ECLOSED;
	leave(l);
	return rc;
}

int connect_listener_addr(connect_listener *l, char *buf, size_t len)
{
	int rc = CONNECT_EINVAL;

	if (!l || !buf)
		return CONNECT_EINVAL;
	if (!enter(l)) {
		rc = CONNECT_ECLOSED;
	} else if (strlen(l->tl->addr) < len) {
		memcpy(buf, l->tl->addr, strlen(l->tl->addr) + 1);
		rc = CONNECT_OK;
	}
	leave(l);
	return rc;
}

int connect_listener_tls_failures(connect_listener *l, int *last_err,
				  char *buf, size_t len)
{
	int n;

	if (!l)
		return CONNECT_EINVAL;
	enter(l);
	pthread_mutex_lock(&l->lock);
	n = l->failures;
	if (last_err)
		*last_err = l->last_err;
	if (buf && len > 0)
		snprintf(buf, len, "%s", l->last_reason);
	pthread_mutex_unlock(&l->lock);
	leave(l);
	return n;
}

void connect_listener_close(connect_listener *l)
{
	struct handshake *h;
	struct ready *r;

	if (!l)
		return;
	atomic_store(&l->closing, 1);
	l->tl->ops->abort(l->tl);
	pthread_mutex_lock(&l->lock);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);

	/* Cut short the handshakes under way, then join them. */
	pthread_mutex_lock(&l->lock);
	for (h = l->hs; h; h = h->next)
		hs_cut(l, h);
	pthread_mutex_unlock(&l->lock);
	reap_handshakes(l, true);

	/* Waiting accepts return CONNECT_ECLOSED; wait for every call. */
	pthread_mutex_lock(&l->lock);
	while (atomic_load(&l->users) > 0)
		pthread_cond_wait(&l->cv, &l->lock);
	pthread_mutex_unlock(&l->lock);
	while ((r = l->head) != NULL) {
		l->head = r->next;
		connect_close(r->conn, 0, NULL);
		cn_free(r);
	}
	cn_listener_unref(l);
}

int connect_listener_set_inbox(connect_listener *l, connect_inbox *ib)
{
	struct ready *r, *next;
	int rc = CONNECT_OK;
	bool l_ok, ib_ok;

	if (!l || !ib)
		return CONNECT_EINVAL;
	l_ok = enter(l);
	ib_ok = cn_inbox_enter(ib);
	if (!l_ok || !ib_ok) {
		cn_inbox_leave(ib);
		leave(l);
		return CONNECT_ECLOSED;
	}
	pthread_mutex_lock(&l->lock);
	if (l->inbox) {
		rc = CONNECT_EINVAL;
		r = NULL;
	} else {
		cn_inbox_ref(ib);
		l->inbox = ib;
		/* What waits for connect_accept() goes to the inbox too. */
		r = l->head;
		l->head = NULL;
		l->tailp = &l->head;
		l->nready = 0;
		efd_clear(l->ready_fd);
		/* Waiting accepts learn that they wait in vain. */
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->lock);
	for (; r; r = next) {
		next = r->next;
		if (cn_conn_attach(r->conn, ib) != CONNECT_OK)
			connect_close(r->conn, 0, NULL);
		cn_free(r);
	}
	cn_inbox_leave(ib);
	leave(l);
	return rc;
}
