/*
 * Listeners: a thread accepts connections (TLS: each handshake on a thread
 * of its own) and queues them for connect_accept().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Locking theory: `lock` guards the ready list, the handshake list, the
 * counters and the error slots.  Accepting is not a hot path, so plain
 * mutex and condition variable.  `users` counts API calls in progress, as
 * for connections.
 */
#include "connect_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"
#include "transport.h"

struct ready {
	connect_conn *conn;
	struct ready *next;
};

/* A TLS handshake in progress on a thread of its own. */
struct handshake {
	struct connect_listener *l;
	pthread_t thread;
	int fd;     /* the socket, owned by the handshake */
	int dupfd;  /* our own reference to it, to shut it down on close */
	bool done;  /* under l->lock */
	char peer[CN_ADDRSTRLEN]; /* taken at accept: the peer may vanish */
	struct handshake *next;
};

struct connect_listener {
	int fd;       /* listening socket (non-blocking) */
	int wake_fd;  /* eventfd: wakes the accepting thread */
	int ready_fd; /* eventfd: readable while connections wait */
	struct connect_opts opts;
	connect_tls_config *tls;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;

	struct ready *head, **tailp;
	size_t nready;
	struct handshake *hs;
	size_t nhs;

	_Atomic int closing;
	_Atomic int users;

	int tls_failures;
	int tls_last_err;
	char tls_last_reason[CN_REASON_LEN + CN_ADDRSTRLEN + 4];

	char addr[CN_ADDRSTRLEN];
	int port;
};

static void handshake_done(struct connect_listener *l, struct handshake *h);

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

/* Queue an accepted connection; false (and the caller closes it) once the
 * listener is closing.  Called with l->lock held. */
static bool ready_push(struct connect_listener *l, connect_conn *c)
{
	struct ready *r;

	if (atomic_load(&l->closing))
		return false;
	r = malloc(sizeof(*r));
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

/* Start the connection's threads and queue it for connect_accept().  For a
 * handshake, h is marked done in the same critical section, so that
 * connect_listener_close() never cuts a connection already handed out. */
static void start_conn(struct connect_listener *l, struct cn_transport *t,
		       struct handshake *h)
{
	connect_conn *c = NULL;
	bool queued = false;
	int rc;

	rc = cn_conn_start(&c, t, &l->opts);
	if (rc)
		cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT",
		       "%s: could not start a connection: %s", l->addr,
		       connect_strerror(rc));
	pthread_mutex_lock(&l->lock);
	if (c)
		queued = ready_push(l, c);
	if (h)
		handshake_done(l, h);
	pthread_mutex_unlock(&l->lock);
	if (c && !queued)
		connect_close(c, 0, NULL);
}

/* Called with l->lock held. */
static void handshake_done(struct connect_listener *l, struct handshake *h)
{
	h->done = true;
	close(h->dupfd);
	h->dupfd = -1;
	pthread_cond_broadcast(&l->cv);
}

static void *handshake_main(void *arg)
{
	struct handshake *h = arg;
	struct connect_listener *l = h->l;
	struct cn_transport *t;
	char reason[CN_REASON_LEN] = "";
	int rc;

	rc = cn_tls_transport_new(&t, h->fd, l->tls, NULL, &l->opts, reason,
				  sizeof(reason));
	if (rc == CONNECT_OK) {
		start_conn(l, t, h);
		return NULL;
	} else if (atomic_load(&l->closing)) {
		/* Cut short by connect_listener_close(): not the peer's
		 * failure, nothing to count or report. */
		pthread_mutex_lock(&l->lock);
		handshake_done(l, h);
		pthread_mutex_unlock(&l->lock);
	} else {
		const char *peer = h->peer;

		pthread_mutex_lock(&l->lock);
		l->tls_failures++;
		l->tls_last_err = rc;
		snprintf(l->tls_last_reason, sizeof(l->tls_last_reason),
			 "%s: %s", peer, reason[0] ? reason
						   : connect_strerror(rc));
		handshake_done(l, h);
		pthread_mutex_unlock(&l->lock);
		cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-HANDSHAKE",
		       "%s: handshake with %s failed: %s (%s)", l->addr, peer,
		       connect_strerror(rc), reason);
	}
	return NULL;
}

/* Join the handshake threads that finished (all of them if `all`). */
static void reap_handshakes(struct connect_listener *l, bool all)
{
	struct handshake **pp, *h, *done = NULL;

	pthread_mutex_lock(&l->lock);
	for (pp = &l->hs; (h = *pp) != NULL;) {
		if (h->done || all) {
			*pp = h->next;
			h->next = done;
			done = h;
			l->nhs--;
		} else {
			pp = &h->next;
		}
	}
	pthread_mutex_unlock(&l->lock);
	while ((h = done) != NULL) {
		done = h->next;
		pthread_join(h->thread, NULL);
		free(h);
	}
}

static void start_handshake(struct connect_listener *l, int fd,
			    const struct sockaddr *peer)
{
	struct handshake *h = calloc(1, sizeof(*h));
	int rc;

	if (!h || (h->dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(h);
		close(fd);
		return;
	}
	cn_addr_format(peer, h->peer, sizeof(h->peer));
	h->l = l;
	h->fd = fd;
	/* Listed before it starts: it may finish (and mark itself done)
	 * at once, and close must find it. */
	pthread_mutex_lock(&l->lock);
	h->next = l->hs;
	l->hs = h;
	l->nhs++;
	pthread_mutex_unlock(&l->lock);
	rc = cn_thread_start(&h->thread, handshake_main, h,
			     (size_t)l->opts.v[CONNECT_OPT_THREAD_STACK]);
	if (rc) {
		struct handshake **pp;

		pthread_mutex_lock(&l->lock);
		for (pp = &l->hs; *pp != h; pp = &(*pp)->next)
			;
		*pp = h->next;
		l->nhs--;
		pthread_mutex_unlock(&l->lock);
		cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT",
		       "%s: no thread for a TLS handshake", l->addr);
		close(h->dupfd);
		close(fd);
		free(h);
	}
}

/* Wait until fewer than the accept-queue limit are queued or in handshake,
 * or until the listener closes.  False when closing. */
static bool accept_room(struct connect_listener *l)
{
	size_t limit = (size_t)l->opts.v[CONNECT_OPT_ACCEPT_QUEUE];

	pthread_mutex_lock(&l->lock);
	while (l->nready + l->nhs >= limit && !atomic_load(&l->closing)) {
		pthread_mutex_unlock(&l->lock);
		reap_handshakes(l, false);
		pthread_mutex_lock(&l->lock);
		if (l->nready + l->nhs < limit || atomic_load(&l->closing))
			break;
		pthread_cond_wait(&l->cv, &l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return !atomic_load(&l->closing);
}

static void *accept_main(void *arg)
{
	struct connect_listener *l = arg;

	while (accept_room(l)) {
		struct pollfd pfd[2] = {
			{ .fd = l->fd, .events = POLLIN },
			{ .fd = l->wake_fd, .events = POLLIN },
		};
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd, n;

		n = poll(pfd, 2, 1000);
		if (atomic_load(&l->closing))
			break;
		reap_handshakes(l, false);
		if (n <= 0 || !(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen,
			     SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;

			if (e == EAGAIN || e == EINTR || e == ECONNABORTED ||
			    e == EPROTO)
				continue;
			/* Out of descriptors or memory: say so, pause, and go
			 * on; the kernel backlog keeps the clients. */
			cn_log(CONNECT_LOG_ERROR, "CONNECT-ACCEPT",
			       "%s: accept: %s", l->addr, strerror(e));
			poll(&pfd[1], 1, 100);
			continue;
		}
		if (l->tls) {
			start_handshake(l, fd, (struct sockaddr *)&ss);
		} else {
			struct cn_transport *t;

			if (cn_tcp_transport_new(&t, fd, &l->opts) == CONNECT_OK)
				start_conn(l, t, NULL);
		}
	}
	return NULL;
}

static int listen_socket(struct connect_listener *l, const char *addr)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int rc, fd = -1, e = 0, one = 1;

	rc = cn_addr_resolve(addr, true, &res);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return cn_err_from_errno(e);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		e = errno;
		close(fd);
		return cn_err_from_errno(e);
	}
	cn_addr_format((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
	l->port = ntohs(ss.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&ss)->sin6_port
				: ((struct sockaddr_in *)&ss)->sin_port);
	l->fd = fd;
	return CONNECT_OK;
}

static void listener_free(struct connect_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->ready_fd >= 0)
		close(l->ready_fd);
	if (l->tls)
		cn_tls_config_unref(l->tls);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cv);
	free(l);
}

static int listen_common(connect_listener **lp, const char *addr,
			 connect_tls_config *tls, const connect_opts *opts)
{
	struct connect_listener *l;
	int rc;

	l = calloc(1, sizeof(*l));
	if (!l)
		return CONNECT_ENOMEM;
	l->fd = l->wake_fd = l->ready_fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	cn_cond_init(&l->cv);
	l->tailp = &l->head;
	cn_opts_copy(&l->opts, opts);
	if (tls) {
		cn_tls_config_ref(tls);
		l->tls = tls;
	}
	rc = listen_socket(l, addr);
	if (rc)
		goto fail;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0 || l->ready_fd < 0) {
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

int connect_tcp_listen(connect_listener **lp, const char *addr,
		       const connect_opts *opts)
{
	if (!lp || !addr)
		return CONNECT_EINVAL;
	return listen_common(lp, addr, NULL, opts);
}

int connect_tls_listen(connect_listener **lp, const char *addr,
		       connect_tls_config *cfg, const connect_opts *opts)
{
	char reason[CN_REASON_LEN];
	int rc;

	if (!lp || !addr || !cfg)
		return CONNECT_EINVAL;
	if (cn_tls_config_role(cfg) != CONNECT_TLS_SERVER)
		return CONNECT_ETLSCONFIG;
	rc = cn_tls_config_check(cfg, reason, sizeof(reason));
	if (rc) {
		cn_log(CONNECT_LOG_ERROR, "CONNECT-TLS-CONFIG", "%s", reason);
		return rc;
	}
	return listen_common(lp, addr, cfg, opts);
}

static int accept_try(struct connect_listener *l, connect_conn **connp)
{
	struct ready *r;
	int rc = CONNECT_EAGAIN;

	if (atomic_load(&l->closing))
		return CONNECT_ECLOSED;
	pthread_mutex_lock(&l->lock);
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
		free(r);
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
	atomic_fetch_add(&l->users, 1);
	rc = accept_try(l, connp);
	atomic_fetch_sub(&l->users, 1);
	return rc;
}

int connect_accept_wait(connect_listener *l, connect_conn **connp,
			int timeout_ms)
{
	int64_t deadline = cn_deadline(timeout_ms);
	int rc;

	if (!l || !connp)
		return CONNECT_EINVAL;
	atomic_fetch_add(&l->users, 1);
	while ((rc = accept_try(l, connp)) == CONNECT_EAGAIN) {
		bool timed_out = false;

		pthread_mutex_lock(&l->lock);
		while (!l->head && !atomic_load(&l->closing) && !timed_out)
			timed_out = !cn_cond_wait_until(&l->cv, &l->lock,
							deadline);
		pthread_mutex_unlock(&l->lock);
		if (timed_out) {
			rc = accept_try(l, connp);
			if (rc == CONNECT_EAGAIN)
				rc = CONNECT_ETIMEDOUT;
			break;
		}
	}
	atomic_fetch_sub(&l->users, 1);
	return rc;
}

/* The descriptor, port and address are set before the listener is handed
 * out and never change: reading them needs no lock. */
int connect_listener_fd(connect_listener *l)
{
	return l ? l->ready_fd : CONNECT_EINVAL;
}

int connect_listener_port(connect_listener *l)
{
	return l ? l->port : CONNECT_EINVAL;
}

int connect_listener_addr(connect_listener *l, char *buf, size_t len)
{
	if (!l || !buf || strlen(l->addr) >= len)
		return CONNECT_EINVAL;
	memcpy(buf, l->addr, strlen(l->addr) + 1);
	return CONNECT_OK;
}

int connect_listener_tls_failures(connect_listener *l, int *last_err,
				  char *buf, size_t len)
{
	int n;

	if (!l)
		return CONNECT_EINVAL;
	atomic_fetch_add(&l->users, 1);
	pthread_mutex_lock(&l->lock);
	n = l->tls_failures;
	if (last_err)
		*last_err = l->tls_last_err;
	if (buf && len > 0)
		snprintf(buf, len, "%s", l->tls_last_reason);
	pthread_mutex_unlock(&l->lock);
	atomic_fetch_sub(&l->users, 1);
	return n;
}

void connect_listener_close(connect_listener *l)
{
	struct handshake *h;
	struct ready *r;

	if (!l)
		return;
	atomic_store(&l->closing, 1);
	efd_write(l->wake_fd);
	pthread_mutex_lock(&l->lock);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);

	/* Cut short the handshakes under way, then join them. */
	pthread_mutex_lock(&l->lock);
	for (h = l->hs; h; h = h->next)
		if (!h->done)
			shutdown(h->dupfd, SHUT_RDWR);
	pthread_mutex_unlock(&l->lock);
	reap_handshakes(l, true);

	/* Let waiting accepts return CONNECT_ECLOSED. */
	while (atomic_load(&l->users) > 0) {
		struct timespec ts = { 0, 1000000 };

		pthread_mutex_lock(&l->lock);
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->lock);
		nanosleep(&ts, NULL);
	}
	while ((r = l->head) != NULL) {
		l->head = r->next;
		connect_close(r->conn, 0, NULL);
		free(r);
	}
	listener_free(l);
}
