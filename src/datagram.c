/*
 * Datagrams: one allocation holding queue node, wire header and payload.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdlib.h>
#include <string.h>

struct connect_datagram *cn_datagram_alloc(uint32_t len, uint16_t version,
					   uint16_t tag)
{
	struct connect_datagram *dg;

	dg = malloc(sizeof(*dg) + len);
	if (!dg)
		return NULL;
	cds_wfcq_node_init(&dg->node);
	dg->len = len;
	cn_put32(dg->hdr, len + 4);
	cn_put16(dg->hdr + 4, version);
	cn_put16(dg->hdr + 6, tag);
	return dg;
}

static int check_len(size_t len)
{
	if (len == 0)
		return CONNECT_EEMPTY;
	if (len > CONNECT_MAX_PAYLOAD)
		return CONNECT_ETOOBIG;
	return CONNECT_OK;
}

int connect_datagram_alloc(connect_datagram **dgp, uint16_t tag, size_t len)
{
	struct connect_datagram *dg;
	int rc;

	if (!dgp)
		return CONNECT_EINVAL;
	rc = check_len(len);
	if (rc)
		return rc;
	dg = cn_datagram_alloc((uint32_t)len, CONNECT_WIRE_VERSION, tag);
	if (!dg)
		return CONNECT_ENOMEM;
	*dgp = dg;
	return CONNECT_OK;
}

int connect_datagram_new(connect_datagram **dgp, uint16_t tag,
			 const void *data, size_t len)
{
	connect_datagram *dg;
	int rc;

	if (!dgp || (!data && len > 0))
		return CONNECT_EINVAL;
	rc = connect_datagram_alloc(&dg, tag, len);
	if (rc)
		return rc;
	memcpy(dg->payload, data, len);
	*dgp = dg;
	return CONNECT_OK;
}

void connect_datagram_free(connect_datagram *dg)
{
	free(dg);
}

uint16_t connect_datagram_tag(const connect_datagram *dg)
{
	return dg ? cn_get16(dg->hdr + 6) : 0;
}

void connect_datagram_set_tag(connect_datagram *dg, uint16_t tag)
{
	if (dg)
		cn_put16(dg->hdr + 6, tag);
}

uint16_t connect_datagram_version(const connect_datagram *dg)
{
	return dg ? cn_get16(dg->hdr + 4) : 0;
}

void *connect_datagram_data(connect_datagram *dg)
{
	return dg ? dg->payload : NULL;
}

size_t connect_datagram_size(const connect_datagram *dg)
{
	return dg ? dg->len : 0;
}
