/*
 * The incremental frame decoder (see codec.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "codec.h"
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cn_decoder_init(struct cn_decoder *d, uint32_t max_payload)
{
	memset(d, 0, sizeof(*d));
	if (max_payload == 0 || max_payload > CONNECT_MAX_PAYLOAD)
		max_payload = CONNECT_MAX_PAYLOAD;
	d->size_limit = max_payload + 4;
}

void cn_decoder_fini(struct cn_decoder *d)
{
	cn_datagram_free(d->dg);
	d->dg = NULL;
}

static int fail(struct cn_decoder *d, const char *what, uint32_t size)
{
	d->err = CONNECT_EPROTO;
	if (size < 5)
		snprintf(d->reason, sizeof(d->reason),
			 "%s: frame size %u < 5 (a frame carries at least 1 "
			 "payload byte)", what, size);
	else
		snprintf(d->reason, sizeof(d->reason),
			 "%s: frame size %u > limit %u", what, size,
			 d->size_limit);
	return d->err;
}

/* Grow the payload buffer to hold `need` bytes, a bounded step ahead. */
static int grow(struct cn_decoder *d, uint32_t need)
{
	struct connect_datagram *dg;
	uint32_t step, cap;

	if (need <= d->cap)
		return CONNECT_OK;
	step = d->cap;
	if (step < CN_DECODER_STEP_MIN)
		step = CN_DECODER_STEP_MIN;
	if (step > CN_DECODER_STEP_MAX)
		step = CN_DECODER_STEP_MAX;
	cap = need + step;
	if (cap > d->dg->len || cap < need)
		cap = d->dg->len;
	dg = cn_datagram_grow(d->dg, d->cap, cap);
	if (!dg)
		return CONNECT_ENOMEM;
	d->dg = dg;
	d->cap = cap;
	return CONNECT_OK;
}

/* The header is complete: check it and start the frame. */
static int start_frame(struct cn_decoder *d)
{
	uint32_t size = cn_get32(d->hdr);
	uint32_t len = size - 4;
	uint32_t cap = len < CN_DECODER_STEP_MIN ? len : CN_DECODER_STEP_MIN;
	struct connect_datagram *dg = NULL;

	/* A large datagram freed earlier holds the whole frame without new
	 * memory (the bound below is about memory taken on a peer's word). */
	if (len > cap) {
		dg = cn_datagram_reserve_cached(len);
		if (dg)
			cap = len;
	}
	if (!dg)
		dg = cn_datagram_reserve(cap);
	if (!dg)
		return CONNECT_ENOMEM;
	dg->len = len;
	memcpy(dg->hdr, d->hdr, CN_HDR_LEN);
	d->dg = dg;
	d->cap = cap;
	d->have = 0;
	return CONNECT_OK;
}

int cn_decoder_feed(struct cn_decoder *d, const uint8_t *buf, size_t len,
		    size_t *consumed, struct connect_datagram **dgp)
{
	size_t off = 0;
	int rc = CONNECT_OK;

	*dgp = NULL;
	*consumed = 0;
	if (d->err)
		return d->err;
	while (off < len) {
		if (!d->dg) {
			unsigned before = d->hdr_have;
			size_t n = CN_HDR_LEN - before;

			if (n > len - off)
				n = len - off;
			memcpy(d->hdr + before, buf + off, n);
			d->hdr_have += (unsigned)n;
			off += n;
			/* Judge the size as soon as its 4 bytes are in, before
			 * anything is allocated for it. */
			if (before < 4 && d->hdr_have >= 4) {
				uint32_t size = cn_get32(d->hdr);

				if (size < 5)
					rc = fail(d, "malformed frame", size);
				else if (size > d->size_limit)
					rc = fail(d, "oversized frame", size);
				if (rc)
					break;
			}
			if (d->hdr_have < CN_HDR_LEN)
				continue;
			rc = start_frame(d);
			if (rc)
				break;
		}
		size_t want = d->dg->len - d->have;
		size_t n = len - off < want ? len - off : want;

		rc = grow(d, d->have + (uint32_t)n);
		if (rc)
			break;
		memcpy(d->dg->payload + d->have, buf + off, n);
		d->have += (uint32_t)n;
		off += n;
		if (d->have == d->dg->len) {
			*dgp = d->dg;
			d->dg = NULL;
			d->hdr_have = 0;
			d->cap = 0;
			d->have = 0;
			break;
		}
	}
	*consumed = off;
	return rc;
}

int cn_decoder_finish(struct cn_decoder *d)
{
	if (d->err)
		return d->err;
	if (!d->dg && d->hdr_have == 0)
		return CONNECT_EEOF;
	if (d->dg)
		snprintf(d->reason, sizeof(d->reason),
			 "truncated frame: the stream ended after %u of %u "
			 "payload bytes", d->have, d->dg->len);
	else
		snprintf(d->reason, sizeof(d->reason),
			 "truncated frame: the stream ended after %u of 8 "
			 "header bytes", d->hdr_have);
	d->err = CONNECT_ETRUNCATED;
	return d->err;
}

uint8_t *cn_decoder_direct(struct cn_decoder *d, size_t *room)
{
	if (d->err || !d->dg || d->have >= d->dg->len)
		return NULL;
	if (d->have == d->cap && grow(d, d->have + 1) != CONNECT_OK)
		return NULL;
	*room = d->cap - d->have;
	return d->dg->payload + d->have;
}

void cn_decoder_direct_done(struct cn_decoder *d, size_t n,
			    struct connect_datagram **dgp)
{
	*dgp = NULL;
	d->have += (uint32_t)n;
	if (d->have == d->dg->len) {
		*dgp = d->dg;
		d->dg = NULL;
		d->hdr_have = 0;
		d->cap = 0;
		d->have = 0;
	}
}

size_t cn_decoder_buffered(const struct cn_decoder *d)
{
	return d->dg ? sizeof(*d->dg) + d->cap : 0;
}
