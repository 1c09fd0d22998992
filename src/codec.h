/*
 * The frame decoder: pure, incremental, no I/O.  The reader thread feeds it
 * whatever read() returned and takes complete datagrams out.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Memory follows the bytes that arrived: the size field is checked against
 * the limit before anything is allocated, and the payload buffer grows with
 * the bytes received, a bounded step ahead of them (CN_DECODER_STEP_MIN to
 * CN_DECODER_STEP_MAX), never to the announced size up front.
 * Not thread-safe: one decoder belongs to one reader.
 */
#ifndef CONNECT_CODEC_H
#define CONNECT_CODEC_H

#include "connect_int.h"

#define CN_DECODER_STEP_MIN (64u * 1024u)
#define CN_DECODER_STEP_MAX (4u * 1024u * 1024u)

struct cn_decoder {
	uint32_t size_limit;            /* largest size field accepted */
	uint8_t hdr[CN_HDR_LEN];        /* header bytes gathered so far */
	unsigned hdr_have;
	struct connect_datagram *dg;    /* frame being filled, or NULL */
	uint32_t cap;                   /* payload bytes allocated in dg */
	uint32_t have;                  /* payload bytes received */
	int err;                        /* sticky CONNECT_EPROTO, or 0 */
	char reason[CN_REASON_LEN];
};

/* max_payload: 1 .. CONNECT_MAX_PAYLOAD; 0 or more means the maximum. */
void cn_decoder_init(struct cn_decoder *d, uint32_t max_payload);
/* Free a partial frame. */
void cn_decoder_fini(struct cn_decoder *d);

/*
 * Consume bytes from buf[0..len) until one datagram is complete or the bytes
 * run out.  *consumed is set to the bytes used.  On CONNECT_OK, *dgp is the
 * complete datagram (owned by the caller) or NULL when more bytes are
 * needed.  CONNECT_EPROTO (sticky, with d->reason set) for a size field
 * below 5 or over the limit; CONNECT_ENOMEM if the buffer cannot grow.
 */
int cn_decoder_feed(struct cn_decoder *d, const uint8_t *buf, size_t len,
		    size_t *consumed, struct connect_datagram **dgp);

/*
 * The stream ended: CONNECT_EEOF if it ended between frames,
 * CONNECT_ETRUNCATED (reason set) inside one, or the sticky error.
 */
int cn_decoder_finish(struct cn_decoder *d);

/* A frame has begun (some of its bytes arrived) and is not complete. */
static inline bool cn_decoder_midframe(const struct cn_decoder *d)
{
	return d->dg != NULL || d->hdr_have > 0;
}

/*
 * Inside a frame's payload: where its next bytes may be read straight
 * into the datagram (no copy through a read buffer), *room bytes there
 * (growing the buffer by the usual bounded step first; never past the
 * frame).  NULL when not inside a payload, or without memory (feed as
 * usual then).  cn_decoder_direct_done() then says how many were read;
 * *dgp is the datagram when that completed it.
 */
uint8_t *cn_decoder_direct(struct cn_decoder *d, size_t *room);
void cn_decoder_direct_done(struct cn_decoder *d, size_t n,
			    struct connect_datagram **dgp);

/* Bytes of memory held for the partial frame (for tests and stats). */
size_t cn_decoder_buffered(const struct cn_decoder *d);

#endif /* CONNECT_CODEC_H */
