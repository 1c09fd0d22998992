/*
 * The fault-injecting layer (see fault.h).  It knows its lower transport
 * only through the transport operations, and has no descriptor of its
 * own.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h"
#include "transport.h"
#include "alloc.h"

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cn_fault_plan plan = { .fail_send_at = -1,
				     .fail_recv_at = -1,
				     .corrupt_send_at = -1 };
static _Atomic unsigned eintr_every;
static _Atomic uint64_t sys_calls, eintrs, messages, bad_records;

struct fault_dir {
	int64_t done;    /* bytes moved */
	int64_t fail_at; /* -1: never */
	unsigned seed;
};

struct fault_transport {
	struct cn_transport base;
	struct cn_transport *lower;
	struct cn_fault_plan p;
	struct fault_dir rx, tx; /* the reader's and the writer's */
};

static struct fault_transport *fault_of(struct cn_transport *t)
{
	return (struct fault_transport *)t;
}

void cn_fault_plan_init(struct cn_fault_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->fail_send_at = -1;
	p->fail_recv_at = -1;
	p->corrupt_send_at = -1;
}

void cn_fault_set(const struct cn_fault_plan *p)
{
	pthread_mutex_lock(&plan_lock);
	plan = *p;
	pthread_mutex_unlock(&plan_lock);
	atomic_store(&eintr_every, p->eintr_every);
}

uint64_t cn_fault_eintrs(void)
{
	return atomic_load(&eintrs);
}

uint64_t cn_fault_messages(void)
{
	return atomic_load(&messages);
}

uint64_t cn_fault_bad_records(void)
{
	return atomic_load(&bad_records);
}

/* Is iov[0..iovcnt) exactly one TLS record (5-byte header, then the
 * length it gives)? */
static bool one_record(const struct iovec *iov, int iovcnt, size_t total)
{
	uint8_t hdr[5];
	size_t got = 0;

	for (int i = 0; i < iovcnt && got < sizeof(hdr); i++) {
		size_t n = iov[i].iov_len;

		if (n > sizeof(hdr) - got)
			n = sizeof(hdr) - got;
		memcpy(hdr + got, iov[i].iov_base, n);
		got += n;
	}
	return got == sizeof(hdr) && total == 5u + ((size_t)hdr[3] << 8 | hdr[4]);
}

/* EINTR before every Nth socket call, as a signal would cause it. */
static bool sys_interrupt(void)
{
	unsigned n = atomic_load(&eintr_every);

	if (n == 0 || atomic_fetch_add(&sys_calls, 1) % n != 0)
		return false;
	atomic_fetch_add(&eintrs, 1);
	errno = EINTR;
	return true;
}

static ssize_t sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return sys_interrupt() ? -1 : sendmsg(fd, msg, flags);
}

static ssize_t sys_recv(int fd, void *buf, size_t len, int flags)
{
	return sys_interrupt() ? -1 : recv(fd, buf, len, flags);
}

/*
 * How many bytes this call may move: the whole request, or a random short
 * piece, never past the failure point.  0: fail now.
 */
static size_t fault_budget(struct fault_transport *f, struct fault_dir *d,
			   size_t want)
{
	if (d->fail_at >= 0) {
		if (d->done >= d->fail_at)
			return 0;
		if ((int64_t)want > d->fail_at - d->done)
			want = (size_t)(d->fail_at - d->done);
	}
	if (f->p.max_io > 0) {
		size_t cap = 1 + (size_t)rand_r(&d->seed) % f->p.max_io;

		if (want > cap)
			want = cap;
	}
	return want;
}

static int fault_fail(struct fault_transport *f, const char *what)
{
	int code = f->p.fail_code ? f->p.fail_code : CONNECT_EIO;

	if (atomic_load(&f->base.aborted))
		return CONNECT_ECLOSED;
	cn_transport_set_error(&f->base, code, "injected fault: %s failed",
			       what);
	return code;
}

/* A failure below us: its reason becomes ours, for the layer above. */
static ssize_t fault_pass(struct fault_transport *f, ssize_t rc)
{
	if (rc < 0 && rc != CONNECT_EAGAIN && rc != CONNECT_ECLOSED) {
		char why[CN_REASON_LEN];

		cn_transport_reason(f->lower, why, sizeof(why));
		cn_transport_set_error(&f->base, (int)rc, "%s", why);
	}
	return rc;
}

static bool fault_eagain(struct fault_transport *f, struct fault_dir *d,
			 int flags)
{
	return (flags & CN_IO_NONBLOCK) && f->p.eagain_every > 0 &&
	       (unsigned)rand_r(&d->seed) % f->p.eagain_every == 0;
}

static ssize_t fault_recv(struct cn_transport *t, void *buf, size_t len,
			  int flags)
{
	struct fault_transport *f = fault_of(t);
	size_t n = fault_budget(f, &f->rx, len);
	ssize_t got;

	if (n == 0)
		return fault_fail(f, "recv");
	if (fault_eagain(f, &f->rx, flags))
		return CONNECT_EAGAIN;
	got = f->lower->ops->recv(f->lower, buf, n, flags);
	if (got > 0)
		f->rx.done += got;
	return fault_pass(f, got);
}

/* Message mode: send the message with the planned byte flipped. */
static ssize_t fault_send_corrupt(struct fault_transport *f,
				  const struct iovec *iov, int iovcnt,
				  size_t total, int flags)
{
	uint8_t *m = cn_malloc(total ? total : 1);
	struct iovec one;
	size_t off = 0;
	ssize_t put;

	if (!m)
		return CONNECT_ENOMEM;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(m + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	m[f->p.corrupt_send_at - f->tx.done] ^= 0x5a;
	one.iov_base = m;
	one.iov_len = total;
	put = f->lower->ops->sendv(f->lower, &one, 1, flags);
	cn_free(m);
	return put;
}

static ssize_t fault_sendv(struct cn_transport *t, const struct iovec *iov,
			   int iovcnt, int flags)
{
	struct fault_transport *f = fault_of(t);
	struct iovec cut[CN_IOV_MAX];
	size_t total = 0, n, left;
	ssize_t put;
	int cnt = 0;

	if (iovcnt == 0) /* only what a layer below still holds */
		return f->lower->ops->sendv(f->lower, iov, 0, flags);
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (f->p.messages) {
		/* A message transport takes a message whole or not at all. */
		atomic_fetch_add(&messages, 1);
		if (!one_record(iov, iovcnt, total))
			atomic_fetch_add(&bad_records, 1);
		if (f->tx.fail_at >= 0 && f->tx.done + (int64_t)total >
						  f->tx.fail_at)
			return fault_fail(f, "send");
		if (f->p.corrupt_send_at >= f->tx.done &&
		    f->p.corrupt_send_at < f->tx.done + (int64_t)total)
			put = fault_send_corrupt(f, iov, iovcnt, total, flags);
		else
			put = f->lower->ops->sendv(f->lower, iov, iovcnt,
						   flags);
		if (put > 0)
			f->tx.done += put;
		return fault_pass(f, put);
	}
	n = fault_budget(f, &f->tx, total);
	if (n == 0)
		return fault_fail(f, "send");
	if (fault_eagain(f, &f->tx, flags))
		return CONNECT_EAGAIN;
	/* The first n bytes of the request, as a shorter iovec. */
	for (left = n; left > 0 && cnt < iovcnt; cnt++) {
		cut[cnt] = iov[cnt];
		if (cut[cnt].iov_len > left)
			cut[cnt].iov_len = left;
		left -= cut[cnt].iov_len;
	}
	put = f->lower->ops->sendv(f->lower, cut, cnt, flags);
	if (put > 0)
		f->tx.done += put;
	return fault_pass(f, put);
}

static bool fault_out_pending(struct cn_transport *t)
{
	struct cn_transport *lower = fault_of(t)->lower;

	return lower->ops->out_pending && lower->ops->out_pending(lower);
}

static int fault_wait(struct cn_transport *t, int events, int64_t deadline)
{
	struct fault_transport *f = fault_of(t);

	return f->lower->ops->wait(f->lower, events, deadline);
}

static int fault_handshake(struct cn_transport *t, int64_t deadline,
			   char *reason, size_t len)
{
	struct fault_transport *f = fault_of(t);

	if (!f->lower->ops->handshake)
		return CONNECT_OK;
	return f->lower->ops->handshake(f->lower, deadline, reason, len);
}

static int fault_shutdown(struct cn_transport *t, size_t grace)
{
	struct fault_transport *f = fault_of(t);
	int rc = f->lower->ops->shutdown(f->lower, grace);

	if (rc && rc != CONNECT_ECLOSED) {
		char why[CN_REASON_LEN];

		cn_transport_reason(f->lower, why, sizeof(why));
		cn_transport_set_error(t, rc, "%s", why);
	}
	return rc;
}

static void fault_abort(struct cn_transport *t)
{
	cn_layer_abort(t, fault_of(t)->lower);
}

static bool fault_unacked(struct cn_transport *t)
{
	return cn_transport_unacked(fault_of(t)->lower);
}

static void fault_destroy(struct cn_transport *t)
{
	struct fault_transport *f = fault_of(t);

	f->lower->ops->destroy(f->lower);
	cn_free(f);
}

static int fault_peer_identity(struct cn_transport *t, int what, char *buf,
			       size_t len)
{
	struct fault_transport *f = fault_of(t);

	if (!f->lower->ops->peer_identity)
		return CONNECT_ENOTSUP;
	return f->lower->ops->peer_identity(f->lower, what, buf, len);
}

static int fault_auth_key(struct cn_transport *t, const void *key,
			  size_t len)
{
	struct fault_transport *f = fault_of(t);

	if (!f->lower->ops->auth_key)
		return CONNECT_ENOTSUP;
	return f->lower->ops->auth_key(f->lower, key, len);
}

static const struct cn_transport_ops fault_ops = {
	.recv = fault_recv,
	.sendv = fault_sendv,
	.wait = fault_wait,
	.handshake = fault_handshake,
	.shutdown = fault_shutdown,
	.abort = fault_abort,
	.destroy = fault_destroy,
	.unacked = fault_unacked,
	.peer_identity = fault_peer_identity,
	.auth_key = fault_auth_key,
	.out_pending = fault_out_pending,
};

static int fault_wrap(const struct cn_endpoint *ep, struct cn_transport *lower,
		      struct cn_transport **tp, char *reason, size_t len)
{
	struct fault_transport *f = cn_calloc(1, sizeof(*f));
	bool on;

	(void)reason;
	(void)len;
	if (!f) {
		lower->ops->destroy(lower);
		return CONNECT_ENOMEM;
	}
	pthread_mutex_lock(&plan_lock);
	f->p = plan;
	pthread_mutex_unlock(&plan_lock);
	on = f->p.side == CN_FAULT_BOTH ||
	     (f->p.side == CN_FAULT_SERVER) == ep->server;
	if (!on)
		cn_fault_plan_init(&f->p);
	f->base.ops = &fault_ops;
	/* Direct writes pass through (short writes and EAGAIN then test
	 * their partial path), except over messages. */
	f->base.flags = f->p.messages
				? (lower->flags & ~(unsigned)CN_TRANSPORT_DIRECT) |
					  CN_TRANSPORT_MESSAGES
				: lower->flags;
	memcpy(f->base.local, lower->local, sizeof(f->base.local));
	memcpy(f->base.peer, lower->peer, sizeof(f->base.peer));
	f->lower = lower;
	f->rx.fail_at = f->p.fail_recv_at;
	f->tx.fail_at = f->p.fail_send_at;
	f->rx.seed = f->p.seed * 2 + 1;
	f->tx.seed = f->p.seed * 2 + 2;
	*tp = &f->base;
	return CONNECT_OK;
}

static const struct cn_transport_class fault_class = {
	.name = "fault",
	.layer = true,
	.wrap = fault_wrap,
};

int cn_fault_register(void)
{
	cn_sys.sendmsg = sys_sendmsg;
	cn_sys.recv = sys_recv;
	return cn_transport_register(&fault_class);
}
