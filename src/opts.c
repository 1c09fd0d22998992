/*
 * Connection options: defaults, ranges, get and set.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "alloc.h"

struct opt_range {
	int64_t def, min, max;
};

#define CN_BIG (INT64_C(1) << 62)

static const struct opt_range ranges[CN_OPT_MAX] = {
	[CONNECT_OPT_SEND_QUEUE_BYTES] = { 16 << 20, 1, CN_BIG },
	[CONNECT_OPT_SEND_QUEUE_MSGS] = { 65536, 1, CN_BIG },
	[CONNECT_OPT_RECV_QUEUE_BYTES] = { 16 << 20, 1, CN_BIG },
	[CONNECT_OPT_RECV_QUEUE_MSGS] = { 65536, 1, CN_BIG },
	[CONNECT_OPT_RECV_MAX_PAYLOAD] = { CONNECT_MAX_PAYLOAD, 1,
					   CONNECT_MAX_PAYLOAD },
	[CONNECT_OPT_THREAD_STACK] = { 256 << 10, 64 << 10, 64 << 20 },
	[CONNECT_OPT_LINGER_MS] = { 5000, 0, INT32_MAX },
	[CONNECT_OPT_TCP_NODELAY] = { 1, 0, 1 },
	[CONNECT_OPT_TCP_KEEPALIVE] = { 1, 0, 1 },
	[CONNECT_OPT_CONNECT_TIMEOUT_MS] = { 10000, 1, INT32_MAX },
	[CONNECT_OPT_ACCEPT_QUEUE] = { 128, 1, 65536 },
	[CONNECT_OPT_HANDSHAKE_MAX] = { 64, 1, 65536 },
	[CONNECT_OPT_TCP_KEEPALIVE_IDLE] = { 0, 0, 32767 },
	[CONNECT_OPT_TCP_KEEPALIVE_INTERVAL] = { 0, 0, 32767 },
	[CONNECT_OPT_TCP_KEEPALIVE_COUNT] = { 0, 0, 127 },
	[CONNECT_OPT_TCP_USER_TIMEOUT_MS] = { 0, 0, INT32_MAX },
	[CONNECT_OPT_RECV_IDLE_TIMEOUT_MS] = { 0, 0, INT32_MAX },
	[CONNECT_OPT_FRAME_TIMEOUT_MS] = { 0, 0, INT32_MAX },
	[CONNECT_OPT_INBOX_BYTES] = { 256 << 20, 1, CN_BIG },
	[CONNECT_OPT_INBOX_MSGS] = { 1 << 20, 1, CN_BIG },
	[CONNECT_OPT_INBOX_MAX_CONNS] = { 0, 0, CN_BIG },
	[CONNECT_OPT_SCTP_UDP_PORT] = { 9899, 0, 65535 },
	[CONNECT_OPT_SCTP_PEER_UDP_PORT] = { 0, 0, 65535 },
	[CONNECT_OPT_SCTP_HEARTBEAT_MS] = { 30000, 0, INT32_MAX },
	[CONNECT_OPT_SCTP_MAX_RETRANS] = { 5, 1, 100 },
	[CONNECT_OPT_RECV_SPIN_US] = { 50, 0, 1000000 },
};

static bool opt_known(int opt)
{
	return opt > 0 && opt < CN_OPT_MAX && ranges[opt].max != 0;
}

void cn_opts_defaults(struct connect_opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < CN_OPT_MAX; i++)
		o->v[i] = ranges[i].def;
}

void cn_opts_copy(struct connect_opts *dst, const struct connect_opts *src)
{
	cn_opts_defaults(dst);
	if (src)
		memcpy(dst->v, src->v, sizeof(dst->v));
}

int connect_opts_new(connect_opts **optsp)
{
	struct connect_opts *o;

	if (!optsp)
		return CONNECT_EINVAL;
	o = cn_malloc(sizeof(*o));
	if (!o)
		return CONNECT_ENOMEM;
	cn_opts_defaults(o);
	*optsp = o;
	return CONNECT_OK;
}

void connect_opts_free(connect_opts *opts)
{
	if (opts && opts->tls)
		cn_tls_config_unref(opts->tls);
	cn_free(opts);
}

int connect_opts_set_tls(connect_opts *opts, connect_tls_config *cfg)
{
	if (!opts)
		return CONNECT_EINVAL;
	if (cfg)
		cn_tls_config_ref(cfg);
	if (opts->tls)
		cn_tls_config_unref(opts->tls);
	opts->tls = cfg;
	return CONNECT_OK;
}

int connect_opts_set_server_name(connect_opts *opts, const char *name)
{
	if (!opts || (name && (!name[0] || strlen(name) >= CN_NAME_LEN)))
		return CONNECT_EINVAL;
	snprintf(opts->server_name, sizeof(opts->server_name), "%s",
		 name ? name : "");
	return CONNECT_OK;
}

int connect_opts_set(connect_opts *opts, int opt, int64_t value)
{
	if (!opts || !opt_known(opt) || value < ranges[opt].min ||
	    value > ranges[opt].max)
		return CONNECT_EINVAL;
	opts->v[opt] = value;
	return CONNECT_OK;
}

int connect_opts_get(const connect_opts *opts, int opt, int64_t *value)
{
	if (!opts || !value || !opt_known(opt))
		return CONNECT_EINVAL;
	*value = opts->v[opt];
	return CONNECT_OK;
}
