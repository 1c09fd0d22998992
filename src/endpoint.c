/*
 * The dialer: one way to open a connection over any transport.  It parses
 * the scheme into a stack of transport classes, dials the base, wraps it
 * in the layers, runs the handshake and starts the connection.  It never
 * looks at what a transport is.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdio.h>

#include "transport.h"

static int dial(connect_conn **connp, const struct cn_stack *st,
		connect_tls_config *tls, const char *server_name,
		const connect_opts *opts)
{
	struct connect_opts o;
	struct cn_endpoint ep;
	struct cn_transport *t;
	char reason[CN_REASON_LEN] = "";
	int rc;

	cn_opts_copy(&o, opts);
	ep = (struct cn_endpoint){
		.addr = st->addr,
		.opts = &o,
		.tls = tls,
		.server_name = server_name,
		.deadline = cn_deadline((int)o.v[CONNECT_OPT_CONNECT_TIMEOUT_MS]),
		.layer_flags = cn_stack_layer_flags(st),
	};
	rc = cn_stack_check(st, &ep, false, reason, sizeof(reason));
	if (rc) {
		cn_log(CONNECT_LOG_WARN, "CONNECT-DIAL", "%s: %s", st->addr,
		       reason[0] ? reason : connect_strerror(rc));
		return rc;
	}
	rc = st->base->dial(&ep, &t, reason, sizeof(reason));
	if (rc) {
		cn_log(CONNECT_LOG_INFO, "CONNECT-DIAL", "%s",
		       reason[0] ? reason : connect_strerror(rc));
		return rc;
	}
	rc = cn_stack_wrap(st, &ep, &t, reason, sizeof(reason));
	if (rc)
		return rc;
	/* The handshake keeps its own limit (TLS: the configuration's). */
	if (t->ops->handshake) {
		rc = t->ops->handshake(t, -1, reason, sizeof(reason));
		if (rc) {
			cn_log(CONNECT_LOG_WARN, "CONNECT-HANDSHAKE",
			       "handshake with %s failed: %s [%s]", st->addr,
			       reason, connect_err_name(rc));
			t->ops->destroy(t);
			return rc;
		}
	}
	return cn_conn_start(connp, t, &o, NULL);
}

int connect_dial(connect_conn **connp, const char *url,
		 const connect_opts *opts)
{
	struct cn_stack st;
	int rc;

	if (!connp || !url)
		return CONNECT_EINVAL;
	rc = cn_stack_parse(url, &st);
	if (rc)
		return rc;
	return dial(connp, &st, opts ? opts->tls : NULL,
		    opts && opts->server_name[0] ? opts->server_name : NULL,
		    opts);
}

int connect_tcp_client(connect_conn **connp, const char *addr,
		       const connect_opts *opts)
{
	struct cn_stack st = { .base = &cn_tcp_class, .addr = addr };

	if (!connp || !addr)
		return CONNECT_EINVAL;
	return dial(connp, &st, NULL, NULL, opts);
}

int connect_tls_client(connect_conn **connp, const char *addr,
		       const char *server_name, connect_tls_config *cfg,
		       const connect_opts *opts)
{
	struct cn_stack st = {
		.base = &cn_tcp_class,
		.layers = { &cn_tls_class },
		.nlayers = 1,
		.addr = addr,
	};

	if (!connp || !addr || !cfg || (server_name && !server_name[0]))
		return CONNECT_EINVAL;
	return dial(connp, &st, cfg, server_name, opts);
}
