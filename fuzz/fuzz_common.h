/*
 * What the libFuzzer targets share: a failure that libFuzzer records, a
 * generator of choices derived from the input, and a reference decoder of
 * the wire format written apart from src/codec.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_FUZZ_COMMON_H
#define CONNECT_FUZZ_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "connect.h"

/* A broken promise: say which, then abort() so that libFuzzer keeps the
 * input as a crash (crash-<sha1> under -artifact_prefix). */
__attribute__((noreturn, format(printf, 3, 4))) static void
fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==== FUZZ CHECK FAILED at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);            \
	} while (0)

/* fuzz-tls-config: what separates certificate, key and CAs in an input. */
#define FUZZ_TLS_SEP "\n%%\n"

/* ------------------------------------------------------------------------ */
/* Choices derived from the input                                            */
/* ------------------------------------------------------------------------ */

/* FNV-1a over the input: the same input always makes the same choices. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n, uint64_t salt)
{
	uint64_t h = 0xcbf29ce484222325ull ^ salt;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (uint64_t)n;
}

/* splitmix64 */
struct fuzz_rng {
	uint64_t s;
};

static inline uint64_t fuzz_next(struct fuzz_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (hi >= lo). */
static inline size_t fuzz_range(struct fuzz_rng *r, size_t lo, size_t hi)
{
	return lo + (size_t)(fuzz_next(r) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------------------ */
/* Reference decoder                                                         */
/* ------------------------------------------------------------------------ */

/*
 * The wire format as connect.h states it, decoded from a whole buffer:
 * u32 size (= 4 + payload length, 5 .. max_payload + 4) | u16 version |
 * u16 tag | payload.  Deliberately naive, so that it shares no code (and no
 * mistakes) with src/codec.c.
 */
struct fuzz_ref_dg {
	size_t off;  /* offset of the frame's first byte in the stream */
	size_t len;  /* payload length */
	uint16_t version, tag;
};

struct fuzz_ref {
	struct fuzz_ref_dg *dg; /* complete frames, in order */
	size_t ndg;
	size_t done;     /* end of the last complete frame */
	int end;         /* CONNECT_EEOF, CONNECT_ETRUNCATED or CONNECT_EPROTO */
	uint32_t bad_size; /* EPROTO: the size field refused */
};

static inline uint32_t fuzz_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint16_t fuzz_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* max_payload 0 means CONNECT_MAX_PAYLOAD, as for cn_decoder_init(). */
static inline void fuzz_ref_decode(const uint8_t *p, size_t n,
				   uint32_t max_payload, struct fuzz_ref *r)
{
	size_t off = 0;

	if (max_payload == 0 || max_payload > CONNECT_MAX_PAYLOAD)
		max_payload = CONNECT_MAX_PAYLOAD;
	r->dg = malloc((n / 9 + 1) * sizeof(*r->dg));
	FUZZ_CHECK(r->dg != NULL, "out of memory in the reference decoder");
	r->ndg = 0;
	r->bad_size = 0;
	for (;;) {
		size_t left = n - off;
		uint32_t size;

		if (left == 0) {
			r->end = CONNECT_EEOF;
			break;
		}
		if (left < 4) {
			r->end = CONNECT_ETRUNCATED;
			break;
		}
		size = fuzz_get32(p + off);
		if (size < 5 || (uint64_t)size > (uint64_t)max_payload + 4) {
			r->end = CONNECT_EPROTO;
			r->bad_size = size;
			break;
		}
		if (left < 4 + (size_t)size) {
			r->end = CONNECT_ETRUNCATED;
			break;
		}
		r->dg[r->ndg].off = off;
		r->dg[r->ndg].len = size - 4;
		r->dg[r->ndg].version = fuzz_get16(p + off + 4);
		r->dg[r->ndg].tag = fuzz_get16(p + off + 6);
		r->ndg++;
		off += 4 + (size_t)size;
	}
	r->done = off;
}

static inline void fuzz_ref_free(struct fuzz_ref *r)
{
	free(r->dg);
	r->dg = NULL;
}

#endif /* CONNECT_FUZZ_COMMON_H */
