/*
 * What every transport shares: the reason slot, the class table and the
 * parsing of "scheme://host:port" into a stack of classes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "transport.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Reasons are written on error paths only; one lock for all transports. */
static pthread_mutex_t reason_lock = PTHREAD_MUTEX_INITIALIZER;

void cn_transport_set_error(struct cn_transport *t, int code, const char *fmt,
			    ...)
{
	va_list ap;

	pthread_mutex_lock(&reason_lock);
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
	t->reason_code = code;
	pthread_mutex_unlock(&reason_lock);
}

int cn_transport_reason(struct cn_transport *t, char *buf, size_t len)
{
	int code;

	pthread_mutex_lock(&reason_lock);
	code = t->reason_code;
	if (len > 0)
		snprintf(buf, len, "%s", t->reason);
	pthread_mutex_unlock(&reason_lock);
	return code;
}

bool cn_transport_unacked(struct cn_transport *t)
{
	return !t->ops->unacked || t->ops->unacked(t);
}

void cn_layer_abort(struct cn_transport *t, struct cn_transport *lower)
{
	atomic_store(&t->aborted, 1);
	lower->ops->abort(lower);
}

/* The transports: one row each.  Room for classes registered by tests. */
#define CN_MAX_CLASSES 8
static const struct cn_transport_class *classes[CN_MAX_CLASSES] = {
	&cn_tcp_class,
	&cn_tls_class,
	&cn_dtls_class,
#ifdef HAVE_USRSCTP
	&cn_sctp_class,
#endif
};

int cn_transport_register(const struct cn_transport_class *cls)
{
	for (int i = 0; i < CN_MAX_CLASSES; i++) {
		if (classes[i] == cls)
			return CONNECT_OK;
		if (!classes[i]) {
			classes[i] = cls;
			return CONNECT_OK;
		}
	}
	return CONNECT_ENOMEM;
}

static const struct cn_transport_class *class_find(const char *name,
						   size_t len)
{
	for (int i = 0; i < CN_MAX_CLASSES && classes[i]; i++)
		if (strlen(classes[i]->name) == len &&
		    memcmp(classes[i]->name, name, len) == 0)
			return classes[i];
	return NULL;
}

int cn_stack_parse(const char *url, struct cn_stack *st)
{
	const struct cn_transport_class *words[CN_MAX_LAYERS + 1];
	const char *sep, *p, *end;
	int n = 0;

	memset(st, 0, sizeof(*st));
	if (!url)
		return CONNECT_EINVAL;
	sep = strstr(url, "://");
	if (!sep) {
		/* "host:port": plain TCP, as the crate's addresses. */
		st->base = &cn_tcp_class;
		st->addr = url;
		return CONNECT_OK;
	}
	/* Every word, the empty ones too ("tls+://" is malformed). */
	for (p = url;; p = end + 1) {
		const struct cn_transport_class *cls;

		end = memchr(p, '+', (size_t)(sep - p));
		if (!end)
			end = sep;
		if (end == p)
			return CONNECT_EADDR;
		cls = class_find(p, (size_t)(end - p));
		if (!cls || n == CN_MAX_LAYERS + 1)
			return CONNECT_EADDR;
		words[n++] = cls;
		if (end == sep)
			break;
	}
	/* "tls://" is TLS over TCP. */
	if (n > 0 && words[n - 1]->layer) {
		if (n == CN_MAX_LAYERS + 1)
			return CONNECT_EADDR;
		words[n++] = &cn_tcp_class;
	}
	/* Outermost first in the URL; the last word is the base. */
	if (n == 0 || words[n - 1]->layer)
		return CONNECT_EADDR;
	st->base = words[n - 1];
	for (int i = n - 2; i >= 0; i--) {
		if (!words[i]->layer)
			return CONNECT_EADDR;
		st->layers[st->nlayers++] = words[i];
	}
	st->addr = sep + 3;
	return CONNECT_OK;
}

unsigned cn_stack_layer_flags(const struct cn_stack *st)
{
	unsigned flags = 0;

	for (int i = 0; i < st->nlayers; i++)
		flags |= st->layers[i]->flags;
	return flags;
}

int cn_stack_check(const struct cn_stack *st, const struct cn_endpoint *ep,
		   bool server, char *reason, size_t len)
{
	int rc = CONNECT_OK;

	if (st->base->check)
		rc = st->base->check(ep, server, reason, len);
	for (int i = 0; i < st->nlayers && !rc; i++)
		if (st->layers[i]->check)
			rc = st->layers[i]->check(ep, server, reason, len);
	return rc;
}

int cn_stack_wrap(const struct cn_stack *st, const struct cn_endpoint *ep,
		  struct cn_transport **tp, char *reason, size_t len)
{
	for (int i = 0; i < st->nlayers; i++) {
		int rc = st->layers[i]->wrap(ep, *tp, tp, reason, len);

		if (rc)
			return rc;
	}
	return CONNECT_OK;
}
