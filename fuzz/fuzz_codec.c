/*
 * libFuzzer target: the frame decoder (src/codec.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The input is a byte stream as a peer would send it.  It is decoded four
 * times: all at once and in random splits with the default limit, and in
 * random splits and one byte per call with a small payload limit (both the
 * splits and the limit are derived from the input's hash).  Every run must
 * agree with a reference decoder (fuzz_common.h) on the datagrams and on how
 * the stream ends, and after every cn_decoder_feed() call:
 *   - the memory held (cn_decoder_buffered) is at most the payload bytes of
 *     the current frame fed so far plus CN_DECODER_STEP_MAX (so never more
 *     than the bytes fed plus the step), and at most the size limit;
 *   - a datagram comes out exactly where its frame ends;
 *   - a protocol error is sticky.
 * The datagrams decoded are then encoded again with cn_datagram_alloc(): the
 * bytes must equal the prefix of the input that they were decoded from.
 * Inputs whose first frame announces more than CN_DECODER_STEP_MIN bytes
 * also get that frame's body fed synthetically (256 KiB, or for one input
 * in sixteen up to 6 MiB, in random chunks), to follow the buffer's growth
 * past the first steps up to CN_DECODER_STEP_MAX.
 */
#include "connect_int.h"
#include "codec.h"

#include <string.h>

#include "fuzz_common.h"

/* The bookkeeping in cn_decoder_buffered() beyond the payload bytes. */
#define DG_OVERHEAD sizeof(struct connect_datagram)

/* The payload limits tried besides the default. */
static const uint32_t small_limits[] = { 1, 2, 3, 4, 5, 7, 8, 15, 16, 17,
					 64, 100, 255, 256, 1000, 4096 };

enum split_kind { SPLIT_WHOLE, SPLIT_RANDOM, SPLIT_BYTES };

struct run {
	const uint8_t *in;
	size_t n;
	uint32_t limit;   /* max_payload given to cn_decoder_init */
	const struct fuzz_ref *ref;
	const char *how;  /* for messages */
	/* state */
	size_t pos;       /* bytes consumed by the decoder */
	size_t fed;       /* bytes offered to the decoder */
	size_t got;       /* datagrams out */
	struct connect_datagram **dgs;
};

/* Payload bytes of the frame under way that the decoder has taken. */
static size_t frame_payload_in(const struct run *r)
{
	size_t start = r->got < r->ref->ndg ? r->ref->dg[r->got].off
					     : r->ref->done;

	return r->pos > start + CN_HDR_LEN ? r->pos - start - CN_HDR_LEN : 0;
}

static void check_memory(const struct run *r, const struct cn_decoder *d)
{
	size_t held = cn_decoder_buffered(d);
	size_t in_frame = frame_payload_in(r);
	uint32_t limit = r->limit ? r->limit : CONNECT_MAX_PAYLOAD;

	FUZZ_CHECK(held <= DG_OVERHEAD + in_frame + CN_DECODER_STEP_MAX,
		   "%s: decoder holds %zu bytes with %zu payload bytes of the "
		   "frame in (step max %u)", r->how, held, in_frame,
		   CN_DECODER_STEP_MAX);
	FUZZ_CHECK(held <= DG_OVERHEAD + r->fed + CN_DECODER_STEP_MAX,
		   "%s: decoder holds %zu bytes after %zu bytes fed", r->how,
		   held, r->fed);
	FUZZ_CHECK(held <= DG_OVERHEAD + (size_t)limit,
		   "%s: decoder holds %zu bytes, limit %u", r->how, held,
		   limit);
	if (held > 0)
		FUZZ_CHECK(held >= DG_OVERHEAD + in_frame,
			   "%s: decoder holds %zu bytes for %zu payload bytes",
			   r->how, held, in_frame);
}

static void check_dg(const struct run *r, const struct connect_datagram *dg)
{
	const struct fuzz_ref_dg *e;

	FUZZ_CHECK(r->got < r->ref->ndg,
		   "%s: datagram #%zu out but the stream holds only %zu",
		   r->how, r->got + 1, r->ref->ndg);
	e = &r->ref->dg[r->got];
	FUZZ_CHECK(r->pos == e->off + CN_HDR_LEN + e->len,
		   "%s: datagram #%zu out at stream offset %zu, its frame "
		   "ends at %zu", r->how, r->got + 1, r->pos,
		   e->off + CN_HDR_LEN + e->len);
	FUZZ_CHECK(dg->len == e->len && connect_datagram_version(dg) ==
		   e->version && connect_datagram_tag(dg) == e->tag,
		   "%s: datagram #%zu is %u bytes v%u tag %u, expected %zu "
		   "bytes v%u tag %u", r->how, r->got + 1, dg->len,
		   connect_datagram_version(dg), connect_datagram_tag(dg),
		   e->len, e->version, e->tag);
	FUZZ_CHECK(memcmp(dg->hdr, r->in + e->off, CN_HDR_LEN) == 0,
		   "%s: datagram #%zu header differs from the wire", r->how,
		   r->got + 1);
	FUZZ_CHECK(memcmp(dg->payload, r->in + e->off + CN_HDR_LEN,
			  e->len) == 0,
		   "%s: datagram #%zu payload differs", r->how, r->got + 1);
}

/* Offer in[pos0 .. pos0+len) to the decoder until it is used up or the
 * decoder fails.  Returns the decoder's code. */
static int feed_chunk(struct run *r, struct cn_decoder *d, size_t len)
{
	size_t end = r->pos + len;

	r->fed = end;
	while (r->pos < end) {
		struct connect_datagram *dg = (void *)1;
		size_t used = (size_t)-1, before = r->pos;
		int rc = cn_decoder_feed(d, r->in + r->pos, end - r->pos,
					 &used, &dg);

		FUZZ_CHECK(used <= end - before,
			   "%s: consumed %zu of %zu bytes", r->how, used,
			   end - before);
		r->pos += used;
		if (rc != CONNECT_OK) {
			FUZZ_CHECK(rc == CONNECT_EPROTO,
				   "%s: cn_decoder_feed returned %s", r->how,
				   connect_err_name(rc));
			FUZZ_CHECK(dg == NULL,
				   "%s: a datagram along with an error",
				   r->how);
			return rc;
		}
		if (dg) {
			check_dg(r, dg);
			r->dgs[r->got++] = dg;
		} else {
			FUZZ_CHECK(r->pos == end,
				   "%s: no datagram, yet %zu bytes left "
				   "unconsumed", r->how, end - r->pos);
		}
		check_memory(r, d);
	}
	return CONNECT_OK;
}

/* Encode the datagrams again and compare with the stream they came from. */
static void check_roundtrip(const struct run *r)
{
	size_t off = 0;

	for (size_t i = 0; i < r->got; i++) {
		const struct connect_datagram *dg = r->dgs[i];
		struct connect_datagram *re;

		re = cn_datagram_alloc(dg->len, connect_datagram_version(dg),
				       connect_datagram_tag(dg));
		FUZZ_CHECK(re != NULL, "cn_datagram_alloc(%u) failed",
			   dg->len);
		memcpy(re->payload, dg->payload, dg->len);
		FUZZ_CHECK(off + CN_HDR_LEN + re->len <= r->n,
			   "%s: re-encoded datagram #%zu runs past the input",
			   r->how, i + 1);
		FUZZ_CHECK(memcmp(re->hdr, r->in + off, CN_HDR_LEN) == 0 &&
			   memcmp(re->payload, r->in + off + CN_HDR_LEN,
				  re->len) == 0,
			   "%s: datagram #%zu encodes to other bytes than it "
			   "was decoded from (offset %zu)", r->how, i + 1,
			   off);
		off += CN_HDR_LEN + re->len;
		connect_datagram_free(re);
	}
	FUZZ_CHECK(off == r->ref->done,
		   "%s: the datagrams encode %zu bytes, the stream's "
		   "complete frames are %zu", r->how, off, r->ref->done);
}

static void decode(const uint8_t *in, size_t n, uint32_t limit,
		   const struct fuzz_ref *ref, enum split_kind kind,
		   uint64_t seed, const char *label)
{
	char how[128];
	struct run r = { .in = in, .n = n, .limit = limit, .ref = ref,
			 .how = how };
	struct fuzz_rng rng = { seed };
	struct cn_decoder d;
	size_t mode = fuzz_range(&rng, 0, 3);
	int rc = CONNECT_OK, end;

	snprintf(how, sizeof(how), "%s, max_payload %u", label,
		 limit ? limit : CONNECT_MAX_PAYLOAD);
	r.dgs = calloc(ref->ndg + 1, sizeof(*r.dgs));
	FUZZ_CHECK(r.dgs != NULL, "out of memory");
	cn_decoder_init(&d, limit);
	FUZZ_CHECK(cn_decoder_buffered(&d) == 0, "a new decoder holds memory");

	while (r.pos < n && rc == CONNECT_OK) {
		size_t left = n - r.pos, len = left;

		if (kind == SPLIT_BYTES) {
			len = 1;
		} else if (kind == SPLIT_RANDOM) {
			switch (mode) {
			case 0: /* small pieces */
				len = fuzz_range(&rng, 1, 16);
				break;
			case 1: /* anything */
				len = fuzz_range(&rng, 1, left);
				break;
			case 2: /* mostly single bytes, now and then a run */
				len = fuzz_range(&rng, 0, 7) ? 1 :
					fuzz_range(&rng, 1, left);
				break;
			default: /* cut near the frame boundaries */
			{
				size_t start = r.got < ref->ndg ?
					ref->dg[r.got].off : ref->done;
				size_t cut = start + fuzz_range(&rng, 0, 9);

				len = cut > r.pos ? cut - r.pos :
					fuzz_range(&rng, 1, 9);
				break;
			}
			}
			if (len > left)
				len = left;
		}
		rc = feed_chunk(&r, &d, len);
	}

	if (rc == CONNECT_EPROTO) {
		struct connect_datagram *dg = (void *)1;
		size_t used = 1;
		uint8_t byte = 0;

		FUZZ_CHECK(ref->end == CONNECT_EPROTO && r.got == ref->ndg,
			   "%s: protocol error after %zu datagrams; the "
			   "stream holds %zu and ends %s", how, r.got,
			   ref->ndg, connect_err_name(ref->end));
		/* The size field was judged as soon as its 4 bytes were in:
		 * at most the rest of the 8-byte header was taken with it. */
		FUZZ_CHECK(r.pos >= ref->done + 4 &&
			   r.pos <= ref->done + CN_HDR_LEN,
			   "%s: protocol error reported at offset %zu for the "
			   "frame at %zu", how, r.pos, ref->done);
		FUZZ_CHECK(cn_decoder_buffered(&d) == 0,
			   "%s: memory held for a refused frame", how);
		FUZZ_CHECK(d.reason[0] != '\0' &&
			   memchr(d.reason, '\0', sizeof(d.reason)) != NULL,
			   "%s: protocol error without a reason", how);
		/* Sticky: nothing more is taken. */
		FUZZ_CHECK(cn_decoder_feed(&d, &byte, 1, &used, &dg) ==
			   CONNECT_EPROTO && used == 0 && dg == NULL,
			   "%s: the protocol error is not sticky", how);
	} else {
		FUZZ_CHECK(r.pos == n, "%s: stopped at %zu of %zu", how,
			   r.pos, n);
		FUZZ_CHECK(r.got == ref->ndg, "%s: %zu datagrams, expected %zu",
			   how, r.got, ref->ndg);
	}
	end = cn_decoder_finish(&d);
	FUZZ_CHECK(end == ref->end, "%s: the stream ends %s, expected %s", how,
		   connect_err_name(end), connect_err_name(ref->end));
	if (end != CONNECT_EEOF)
		FUZZ_CHECK(d.reason[0] != '\0' &&
			   memchr(d.reason, '\0', sizeof(d.reason)) != NULL,
			   "%s: %s without a reason", how,
			   connect_err_name(end));
	FUZZ_CHECK(cn_decoder_finish(&d) == end, "%s: the end is not sticky",
		   how);
	cn_decoder_fini(&d);
	FUZZ_CHECK(cn_decoder_buffered(&d) == 0,
		   "%s: memory held after cn_decoder_fini", how);

	check_roundtrip(&r);
	for (size_t i = 0; i < r.got; i++)
		connect_datagram_free(r.dgs[i]);
	free(r.dgs);
}

/* The payload bytes of the synthetic large frame: byte i is i % 251. */
#define PATTERN_PERIOD 251u
#define PATTERN_CHUNK (256u * 1024u)
static uint8_t pattern[PATTERN_CHUNK + PATTERN_PERIOD];

/*
 * The input's first frame announces more than CN_DECODER_STEP_MIN payload
 * bytes: feed its header, then up to `budget` payload bytes of a pattern in
 * random chunks, checking the memory held after every call.
 */
static void decode_large(const uint8_t *in, size_t n, uint64_t seed)
{
	struct fuzz_rng rng = { seed };
	struct cn_decoder d;
	struct connect_datagram *dg = NULL;
	uint32_t size, len, budget, have = 0;
	uint32_t limit = fuzz_range(&rng, 0, 1) ? 0 : 6u * 1024u * 1024u;
	size_t used;
	int rc;

	if (n < CN_HDR_LEN)
		return;
	size = fuzz_get32(in);
	if (size < 5 || size - 4 <= CN_DECODER_STEP_MIN ||
	    size - 4 > (limit ? limit : CONNECT_MAX_PAYLOAD))
		return;
	len = size - 4;
	/* Mostly up to 256 KiB (a few steps); one input in sixteen goes past
	 * the largest step (the step reaches CN_DECODER_STEP_MAX at a 4 MiB
	 * buffer).  Fresh megabytes cost page faults: keep them rare. */
	budget = fuzz_range(&rng, 0, 15) ? 256u * 1024u : 6u * 1024u * 1024u;
	if (budget > len)
		budget = len;
	if (pattern[1] == 0)
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)(i % PATTERN_PERIOD);

	cn_decoder_init(&d, limit);
	rc = cn_decoder_feed(&d, in, CN_HDR_LEN, &used, &dg);
	FUZZ_CHECK(rc == CONNECT_OK && used == CN_HDR_LEN && dg == NULL,
		   "large frame: header refused (%s)", connect_err_name(rc));
	FUZZ_CHECK(cn_decoder_buffered(&d) <= DG_OVERHEAD + CN_DECODER_STEP_MIN,
		   "large frame of %u bytes: %zu bytes held for its header",
		   len, cn_decoder_buffered(&d));
	while (have < budget) {
		size_t chunk;
		size_t held;

		/* Mostly large pieces; now and then a small one, where the
		 * buffer must grow by a step for a few bytes. */
		switch (fuzz_range(&rng, 0, 15)) {
		case 0:
			chunk = fuzz_range(&rng, 1, 64);
			break;
		case 1:
			chunk = fuzz_range(&rng, 1, 4096);
			break;
		default:
			chunk = fuzz_range(&rng, 1, PATTERN_CHUNK);
			break;
		}
		if (chunk > budget - have)
			chunk = budget - have;
		rc = cn_decoder_feed(&d, pattern + have % PATTERN_PERIOD, chunk,
				     &used, &dg);
		FUZZ_CHECK(rc == CONNECT_OK && used == chunk,
			   "large frame: feed of %zu bytes at %u: %s, %zu "
			   "used", chunk, have, connect_err_name(rc), used);
		have += (uint32_t)chunk;
		held = cn_decoder_buffered(&d);
		if (dg)
			break;
		FUZZ_CHECK(held <= DG_OVERHEAD + have + CN_DECODER_STEP_MAX &&
			   held <= DG_OVERHEAD + len &&
			   held >= DG_OVERHEAD + have,
			   "large frame of %u bytes: %zu bytes held with %u "
			   "in", len, held, have);
	}
	if (have == len) {
		FUZZ_CHECK(dg != NULL && dg->len == len,
			   "large frame of %u bytes: no datagram at its end",
			   len);
		for (uint32_t off = 0; off < len; off += PATTERN_CHUNK) {
			uint32_t k = len - off < PATTERN_CHUNK ?
				len - off : PATTERN_CHUNK;

			FUZZ_CHECK(memcmp(dg->payload + off,
					  pattern + off % PATTERN_PERIOD,
					  k) == 0,
				   "large frame: payload differs near %u",
				   off);
		}
		FUZZ_CHECK(cn_decoder_buffered(&d) == 0,
			   "large frame: memory held after the datagram");
		connect_datagram_free(dg);
		FUZZ_CHECK(cn_decoder_finish(&d) == CONNECT_EEOF,
			   "large frame: the stream does not end cleanly");
	} else {
		FUZZ_CHECK(dg == NULL, "large frame: datagram before its end");
		FUZZ_CHECK(cn_decoder_finish(&d) == CONNECT_ETRUNCATED,
			   "large frame cut at %u of %u: not truncated", have,
			   len);
	}
	cn_decoder_fini(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size, 0);
	uint32_t small = small_limits[h % (sizeof(small_limits) /
					    sizeof(small_limits[0]))];
	struct fuzz_ref full, lim;

	fuzz_ref_decode(data, size, 0, &full);
	fuzz_ref_decode(data, size, small, &lim);

	decode(data, size, 0, &full, SPLIT_WHOLE, h, "all at once");
	decode(data, size, 0, &full, SPLIT_RANDOM, h >> 7,
	       "random splits");
	decode(data, size, small, &lim, SPLIT_RANDOM, h >> 13,
	       "random splits");
	decode(data, size, small, &lim, SPLIT_BYTES, h,
	       "one byte per call");
	decode_large(data, size, h >> 3);

	fuzz_ref_free(&full);
	fuzz_ref_free(&lim);
	return 0;
}
