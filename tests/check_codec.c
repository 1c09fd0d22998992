/*
 * Unit tests: the frame decoder, table-driven over tests/data/wire-vectors.txt
 * and with targeted cases for limits, memory growth and large frames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every vector is decoded with its bytes arriving all at once, one byte per
 * feed call and in every split into two feed calls; each run must give the
 * datagrams and the ending the file lists.  A failure names the case, its
 * line in the file and the way the bytes were cut.
 */
#include "connect_int.h"
#include "codec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "helpers.h"

#ifndef VECTORS
#error "VECTORS must name tests/data/wire-vectors.txt (set in Makefile.am)"
#endif

/* Bookkeeping a decoder may count in cn_decoder_buffered() beyond payload
 * bytes (struct, header, rounding). */
#define SLACK 1024u

/*
 * ck_assert_msg() writes a record for every check that passes; the decoder
 * loops run millions of times, so they only call into Check on failure.
 */
#define REQUIRE(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond))                                                   \
			ck_abort_msg(__VA_ARGS__);                             \
	} while (0)

/* ------------------------------------------------------------------------ */
/* The vectors file                                                          */
/* ------------------------------------------------------------------------ */

struct exp_dg {
	uint16_t version;
	uint16_t tag;
	uint8_t *data;
	size_t len;
};

struct vcase {
	char name[64];
	int line;
	uint8_t *bytes;
	size_t len;
	struct exp_dg *dgs;
	size_t ndg;
	int end; /* CONNECT_EEOF, CONNECT_EPROTO or CONNECT_ETRUNCATED */
};

static struct vcase *cases;
static size_t ncases;

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Hex digits with any whitespace between them; NULL on a bad digit or an
 * odd count.  *lenp gets the byte count; the result is never NULL on
 * success (one spare byte). */
static uint8_t *parse_hex(const char *s, size_t n, size_t *lenp)
{
	uint8_t *out = malloc(n / 2 + 1);
	size_t len = 0;
	int hi = -1;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int v;

		if (isspace((unsigned char)s[i]))
			continue;
		v = hexval((unsigned char)s[i]);
		if (v < 0)
			goto bad;
		if (hi < 0) {
			hi = v;
		} else {
			out[len++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		goto bad;
	*lenp = len;
	return out;
bad:
	free(out);
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* "1/65535/48656c" */
static int parse_dg(const char *tok, struct exp_dg *dg)
{
	unsigned long v, t;
	char *e;

	errno = 0;
	v = strtoul(tok, &e, 10);
	if (e == tok || *e != '/' || v > 0xffff || errno)
		return -1;
	tok = e + 1;
	t = strtoul(tok, &e, 10);
	if (e == tok || *e != '/' || t > 0xffff || errno)
		return -1;
	tok = e + 1;
	dg->version = (uint16_t)v;
	dg->tag = (uint16_t)t;
	dg->data = parse_hex(tok, strlen(tok), &dg->len);
	if (!dg->data || dg->len == 0) {
		free(dg->data);
		return -1;
	}
	return 0;
}

static int parse_line(char *line, int lineno, struct vcase *c)
{
	char *f1 = line, *f2, *f3, *tok, *save = NULL;

	memset(c, 0, sizeof(*c));
	c->line = lineno;
	c->end = 1; /* not set yet */
	f2 = strchr(f1, '|');
	if (!f2)
		return -1;
	*f2++ = '\0';
	f3 = strchr(f2, '|');
	if (!f3)
		return -1;
	*f3++ = '\0';
	if (strchr(f3, '|'))
		return -1;
	f1 = trim(f1);
	if (!*f1 || strlen(f1) >= sizeof(c->name))
		return -1;
	strcpy(c->name, f1);
	c->bytes = parse_hex(f2, strlen(f2), &c->len);
	if (!c->bytes)
		return -1;
	for (tok = strtok_r(f3, " \t\r\n", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n", &save)) {
		struct exp_dg *n;

		if (c->end != 1)
			return -1; /* something after the ending */
		if (!strcmp(tok, "EOF")) {
			c->end = CONNECT_EEOF;
			continue;
		}
		if (!strcmp(tok, "ERR-PROTOCOL")) {
			c->end = CONNECT_EPROTO;
			continue;
		}
		if (!strcmp(tok, "ERR-TRUNCATED")) {
			c->end = CONNECT_ETRUNCATED;
			continue;
		}
		n = realloc(c->dgs, (c->ndg + 1) * sizeof(*n));
		if (!n)
			return -1;
		c->dgs = n;
		if (parse_dg(tok, &c->dgs[c->ndg]) < 0)
			return -1;
		c->ndg++;
	}
	return c->end == 1 ? -1 : 0;
}

static void free_case(struct vcase *c)
{
	for (size_t i = 0; i < c->ndg; i++)
		free(c->dgs[i].data);
	free(c->dgs);
	free(c->bytes);
}

static void free_vectors(void)
{
	for (size_t i = 0; i < ncases; i++)
		free_case(&cases[i]);
	free(cases);
	cases = NULL;
	ncases = 0;
}

static int load_vectors(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line);
		struct vcase c, *n;

		lineno++;
		if (!*s || *s == '#')
			continue;
		if (parse_line(s, lineno, &c) < 0) {
			fprintf(stderr, "%s:%d: malformed vector line\n", path,
				lineno);
			free_case(&c);
			rc = -1;
			break;
		}
		n = realloc(cases, (ncases + 1) * sizeof(*n));
		if (!n) {
			free_case(&c);
			rc = -1;
			break;
		}
		cases = n;
		cases[ncases++] = c;
	}
	free(line);
	fclose(f);
	if (rc == 0 && ncases == 0) {
		fprintf(stderr, "%s: no vectors\n", path);
		rc = -1;
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Running the decoder                                                       */
/* ------------------------------------------------------------------------ */

/* A deterministic generator, so a failing random split can be replayed. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* How the bytes are cut into feed calls. */
enum cut_mode { CUT_ALL, CUT_FIXED, CUT_SPLIT, CUT_RANDOM };

struct cutter {
	enum cut_mode mode;
	size_t arg;    /* chunk size (CUT_FIXED, upper bound for CUT_RANDOM)
			* or split point (CUT_SPLIT) */
	uint64_t seed; /* CUT_RANDOM */
};

static size_t next_chunk(struct cutter *k, size_t off, size_t left)
{
	size_t n;

	switch (k->mode) {
	case CUT_FIXED:
		return left < k->arg ? left : k->arg;
	case CUT_SPLIT:
		return off < k->arg ? k->arg - off : left;
	case CUT_RANDOM:
		n = 1 + (size_t)(rng_next(&k->seed) % k->arg);
		return left < n ? left : n;
	case CUT_ALL:
	default:
		return left;
	}
}

struct result {
	connect_datagram **dgs;
	size_t ndg, cap;
	int end;         /* how the stream ended */
	int feed_err;    /* error returned by cn_decoder_feed, or 0 */
	size_t err_off;  /* stream offset of the failing feed call */
	size_t peak;     /* largest cn_decoder_buffered() seen */
	size_t buffered; /* cn_decoder_buffered() at the end */
	char reason[CN_REASON_LEN];
};

static void result_free(struct result *r)
{
	for (size_t i = 0; i < r->ndg; i++)
		connect_datagram_free(r->dgs[i]);
	free(r->dgs);
	memset(r, 0, sizeof(*r));
}

static void result_push(struct result *r, connect_datagram *dg)
{
	if (r->ndg == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		connect_datagram **n = realloc(r->dgs, cap * sizeof(*n));

		ck_assert_ptr_nonnull(n);
		r->dgs = n;
		r->cap = cap;
	}
	r->dgs[r->ndg++] = dg;
}

static size_t clamp(size_t v, size_t lo, size_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Memory follows bytes: with `recv` payload bytes of the current frame in,
 * the decoder holds at most recv plus one growth step (at least
 * CN_DECODER_STEP_MIN, at most CN_DECODER_STEP_MAX, never more than the
 * frame announced), plus bookkeeping.
 */
static void check_memory(const char *label, const struct cn_decoder *d,
			 const uint8_t *buf, size_t frame_start, size_t off,
			 struct result *r)
{
	size_t b = cn_decoder_buffered(d);
	size_t in = off - frame_start;
	size_t recv = in > CN_HDR_LEN ? in - CN_HDR_LEN : 0;
	size_t bound = recv + clamp(recv, CN_DECODER_STEP_MIN,
				    CN_DECODER_STEP_MAX) + SLACK;

	if (b > r->peak)
		r->peak = b;
	REQUIRE(b <= bound,
		"%s: at offset %zu the decoder holds %zu bytes for %zu "
		"payload bytes received (bound %zu)",
		label, off, b, recv, bound);
	if (in >= 4) {
		size_t announced = cn_get32(buf + frame_start);

		if (announced >= 5)
			REQUIRE(b <= announced - 4 + SLACK,
				"%s: at offset %zu the decoder holds %zu "
				"bytes for a frame of size %zu",
				label, off, b, announced);
	}
}

/*
 * Decode buf[0..len) cut as `k` says, with a decoder limited to max_payload.
 * Feeding follows the cn_decoder_feed contract: call again until each
 * chunk is used up; stop at the first error.
 */
static void decode(const char *label, uint32_t max_payload,
		   const uint8_t *buf, size_t len, struct cutter k,
		   struct result *r)
{
	struct cn_decoder d;
	size_t off = 0, frame_start = 0;

	memset(r, 0, sizeof(*r));
	/* The bound is on memory taken on the peer's word: none of the
	 * large datagrams freed before (test_kept_block) is at hand. */
	cn_datagram_cache_drop();
	cn_decoder_init(&d, max_payload);
	REQUIRE(cn_decoder_buffered(&d) < SLACK,
		"%s: a fresh decoder holds %zu bytes", label,
		cn_decoder_buffered(&d));
	while (off < len && !r->feed_err) {
		size_t n = next_chunk(&k, off, len - off);
		size_t end = off + n;

		REQUIRE(n > 0 && n <= len - off, "%s: bad chunk", label);
		while (off < end) {
			connect_datagram *dg = NULL;
			size_t used = SIZE_MAX;
			int rc = cn_decoder_feed(&d, buf + off, end - off,
						 &used, &dg);

			if (rc != CONNECT_OK) {
				REQUIRE(dg == NULL,
					"%s: feed at offset %zu returned "
					"%s and a datagram",
					label, off, connect_err_name(rc));
				r->feed_err = rc;
				r->err_off = off;
				break;
			}
			REQUIRE(used <= end - off,
				"%s: feed at offset %zu consumed %zu of "
				"%zu bytes",
				label, off, used, end - off);
			REQUIRE(used > 0,
				"%s: feed at offset %zu consumed nothing",
				label, off);
			off += used;
			if (dg) {
				result_push(r, dg);
				frame_start = off;
			} else {
				REQUIRE(off == end,
					"%s: feed returned no datagram "
					"but left %zu bytes of its chunk "
					"at offset %zu",
					label, end - off, off);
			}
			check_memory(label, &d, buf, frame_start, off, r);
		}
	}
	if (r->feed_err) {
		connect_datagram *dg = NULL;
		size_t used = 0;
		int rc;

		/* Sticky: the rest of the stream changes nothing. */
		rc = cn_decoder_feed(&d, buf + r->err_off, len - r->err_off,
				     &used, &dg);
		REQUIRE(rc == r->feed_err && dg == NULL,
			"%s: feed after %s returned %s%s", label,
			connect_err_name(r->feed_err),
			connect_err_name(rc),
			dg ? " and a datagram" : "");
		r->end = cn_decoder_finish(&d);
		REQUIRE(r->end == r->feed_err,
			"%s: finish after feed error %s returned %s",
			label, connect_err_name(r->feed_err),
			connect_err_name(r->end));
	} else {
		r->end = cn_decoder_finish(&d);
	}
	r->buffered = cn_decoder_buffered(&d);
	snprintf(r->reason, sizeof(r->reason), "%s", d.reason);
	if (r->end != CONNECT_EEOF)
		REQUIRE(r->reason[0] != '\0',
			"%s: ended with %s but no reason", label,
			connect_err_name(r->end));
	cn_decoder_fini(&d);
}

static void hex_of(char *out, size_t outlen, const uint8_t *p, size_t n)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o + 3 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%02x", p[i]);
	if (o + 3 >= outlen && outlen > 4)
		strcpy(out + outlen - 4, "...");
}

/* A received datagram: accessors and wire header agree. */
static void check_dg_header(const char *label, size_t i, connect_datagram *dg)
{
	size_t len = connect_datagram_size(dg);

	REQUIRE(len >= 1 && len <= CONNECT_MAX_PAYLOAD,
		"%s: datagram %zu has size %zu", label, i, len);
	REQUIRE(cn_get32(dg->hdr) == 4 + len &&
			cn_get16(dg->hdr + 4) ==
				connect_datagram_version(dg) &&
			cn_get16(dg->hdr + 6) ==
				connect_datagram_tag(dg),
		"%s: datagram %zu: header does not match its fields",
		label, i);
	REQUIRE(connect_datagram_data(dg) == dg->hdr + CN_HDR_LEN,
		"%s: datagram %zu: payload not after the header", label,
		i);
}

static void check_against(const struct vcase *c, const char *label,
			  const struct result *r)
{
	size_t n = r->ndg < c->ndg ? r->ndg : c->ndg;

	for (size_t i = 0; i < n; i++) {
		connect_datagram *dg = r->dgs[i];
		const struct exp_dg *e = &c->dgs[i];
		char got[100], want[100];

		check_dg_header(label, i, dg);
		hex_of(got, sizeof(got), connect_datagram_data(dg),
		       connect_datagram_size(dg));
		hex_of(want, sizeof(want), e->data, e->len);
		REQUIRE(connect_datagram_version(dg) == e->version &&
				connect_datagram_tag(dg) == e->tag &&
				connect_datagram_size(dg) == e->len &&
				!memcmp(connect_datagram_data(dg),
					e->data, e->len),
			"%s: datagram %zu is %u/%u/%s, expected %u/%u/%s",
			label, i, connect_datagram_version(dg),
			connect_datagram_tag(dg), got, e->version,
			e->tag, want);
	}
	REQUIRE(r->ndg == c->ndg, "%s: %zu datagrams, expected %zu",
		label, r->ndg, c->ndg);
	REQUIRE(r->end == c->end, "%s: ended with %s (%s), expected %s",
		label, connect_err_name(r->end), r->reason,
		connect_err_name(c->end));
	if (c->end == CONNECT_EPROTO)
		REQUIRE(r->buffered < SLACK,
			"%s: protocol error but the decoder holds %zu "
			"bytes",
			label, r->buffered);
}

static void run_case(const struct vcase *c, struct cutter k,
		     const char *how)
{
	char label[200];
	struct result r;

	snprintf(label, sizeof(label), "vector '%s' (%s line %d), %s",
		 c->name, VECTORS, c->line, how);
	decode(label, CONNECT_MAX_PAYLOAD, c->bytes, c->len, k, &r);
	check_against(c, label, &r);
	result_free(&r);
}

START_TEST(test_vector)
{
	const struct vcase *c = &cases[_i];
	char how[80];

	run_case(c, (struct cutter){ .mode = CUT_ALL }, "all at once");
	run_case(c, (struct cutter){ .mode = CUT_FIXED, .arg = 1 },
		 "one byte per feed");
	for (size_t s = 0; s <= c->len; s++) {
		snprintf(how, sizeof(how), "split at %zu (%zu + %zu bytes)", s,
			 s, c->len - s);
		run_case(c, (struct cutter){ .mode = CUT_SPLIT, .arg = s },
			 how);
	}
}
END_TEST

/*
 * The other direction: the datagrams a vector lists, built here, are the
 * bytes the vector starts with (all of them when it ends cleanly).
 */
START_TEST(test_vector_encode)
{
	const struct vcase *c = &cases[_i];
	size_t off = 0;

	for (size_t i = 0; i < c->ndg; i++) {
		const struct exp_dg *e = &c->dgs[i];
		struct connect_datagram *dg;

		if (e->version == CONNECT_WIRE_VERSION) {
			ck_assert_int_eq(connect_datagram_new(&dg, e->tag,
							      e->data, e->len),
					 CONNECT_OK);
		} else {
			dg = cn_datagram_alloc((uint32_t)e->len, e->version,
					       e->tag);
			ck_assert_ptr_nonnull(dg);
			memcpy(connect_datagram_data(dg), e->data, e->len);
		}
		ck_assert_msg(off + CN_HDR_LEN + e->len <= c->len &&
				      !memcmp(dg->hdr, c->bytes + off,
					      CN_HDR_LEN + e->len),
			      "vector '%s': datagram %zu does not encode to "
			      "the bytes at offset %zu",
			      c->name, i, off);
		off += CN_HDR_LEN + e->len;
		connect_datagram_free(dg);
	}
	if (c->end == CONNECT_EEOF)
		ck_assert_msg(off == c->len,
			      "vector '%s': %zu bytes left after the datagrams",
			      c->name, c->len - off);
}
END_TEST

START_TEST(test_vectors_sane)
{
	const struct vcase *hello = NULL;
	static const uint8_t wire[] = { 0x00, 0x00, 0x00, 0x10, 0x00, 0x01,
					0xff, 0xff, 'H',  'e',  'l',  'l',
					'o',  ' ',  'w',  'o',  'r',  'l',
					'd',  '!' };

	ck_assert_uint_ge(ncases, 10);
	for (size_t i = 0; i < ncases; i++) {
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(cases[i].name, cases[j].name),
				      "vector name '%s' used twice",
				      cases[i].name);
		if (!strcmp(cases[i].name, "hello"))
			hello = &cases[i];
	}
	ck_assert_ptr_nonnull(hello);
	ck_assert_uint_eq(hello->len, sizeof(wire));
	ck_assert_mem_eq(hello->bytes, wire, sizeof(wire));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Targeted cases                                                            */
/* ------------------------------------------------------------------------ */

static void put_hdr(uint8_t *p, uint32_t size, uint16_t version, uint16_t tag)
{
	cn_put32(p, size);
	cn_put16(p + 4, version);
	cn_put16(p + 6, tag);
}

/* Feed everything at once; expect exactly `want` and no datagram. */
static void expect_feed_err(struct cn_decoder *d, const uint8_t *buf,
			    size_t len, int want, const char *what)
{
	connect_datagram *dg = NULL;
	size_t used = 0;
	int rc = cn_decoder_feed(d, buf, len, &used, &dg);

	ck_assert_msg(rc == want, "%s: feed returned %s, expected %s", what,
		      connect_err_name(rc), connect_err_name(want));
	ck_assert_msg(dg == NULL, "%s: a datagram came with the error", what);
}

START_TEST(test_oversize_allocates_nothing)
{
	static const uint32_t sizes[] = { 0xffffffffu, 0x80000000u,
					  0x7fffffffu, 0x05f5e105u,
					  0x10000000u, 4, 3, 1, 0 };
	uint8_t buf[64];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct cn_decoder d;
		char what[64];

		snprintf(what, sizeof(what), "size field %u", sizes[i]);
		memset(buf, 0x41, sizeof(buf));
		put_hdr(buf, sizes[i], 1, 2);
		cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
		expect_feed_err(&d, buf, sizeof(buf), CONNECT_EPROTO, what);
		ck_assert_msg(cn_decoder_buffered(&d) < SLACK,
			      "%s: decoder holds %zu bytes", what,
			      cn_decoder_buffered(&d));
		ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EPROTO);
		cn_decoder_fini(&d);

		/* The size field alone is enough to refuse the frame. */
		cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
		expect_feed_err(&d, buf, 4, CONNECT_EPROTO, what);
		ck_assert_uint_lt(cn_decoder_buffered(&d), SLACK);
		cn_decoder_fini(&d);
	}
}
END_TEST

START_TEST(test_reason_mentions_size)
{
	static const uint32_t sizes[] = { 0xffffffffu, 100000005u, 200000004u,
					  4, 0 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct cn_decoder d;
		uint8_t buf[CN_HDR_LEN + 1] = { 0 };
		char num[16];

		put_hdr(buf, sizes[i], 1, 0);
		snprintf(num, sizeof(num), "%u", sizes[i]);
		cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
		expect_feed_err(&d, buf, sizeof(buf), CONNECT_EPROTO, num);
		ck_assert_msg(strstr(d.reason, num) != NULL,
			      "reason \"%s\" does not mention size %s",
			      d.reason, num);
		cn_decoder_fini(&d);
	}
}
END_TEST

START_TEST(test_memory_follows_bytes)
{
	const size_t chunk = 64 * 1024, total = 12u << 20;
	uint8_t *buf = malloc(chunk);
	uint8_t hdr[CN_HDR_LEN + 10];
	struct cn_decoder d;
	connect_datagram *dg = NULL;
	size_t used, have, b;

	ck_assert_ptr_nonnull(buf);
	memset(hdr, 0x5a, sizeof(hdr));
	put_hdr(hdr, 100000004u, 1, 1);
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, hdr, sizeof(hdr), &used, &dg),
			 CONNECT_OK);
	ck_assert_ptr_null(dg);
	ck_assert_uint_eq(used, sizeof(hdr));
	b = cn_decoder_buffered(&d);
	ck_assert_msg(b >= 10 && b <= CN_DECODER_STEP_MIN + 10 + SLACK,
		      "header of 100,000,004 + 10 bytes: decoder holds %zu",
		      b);

	memset(buf, 0xc3, chunk);
	for (have = 10; have + chunk <= total; have += chunk) {
		size_t bound;

		ck_assert_int_eq(cn_decoder_feed(&d, buf, chunk, &used, &dg),
				 CONNECT_OK);
		ck_assert_ptr_null(dg);
		ck_assert_uint_eq(used, chunk);
		b = cn_decoder_buffered(&d);
		bound = have + chunk +
			clamp(have + chunk, CN_DECODER_STEP_MIN,
			      CN_DECODER_STEP_MAX) +
			SLACK;
		ck_assert_msg(b >= have + chunk && b <= bound,
			      "%zu payload bytes in: decoder holds %zu "
			      "(bound %zu)",
			      have + chunk, b, bound);
	}
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_ETRUNCATED);
	ck_assert_msg(d.reason[0] != '\0', "truncation without a reason");
	cn_decoder_fini(&d);
	free(buf);
}
END_TEST

/* A frame of `len` payload bytes followed by a 1-byte frame. */
static uint8_t *make_big_stream(size_t len, size_t *total)
{
	uint8_t *s = malloc(len + 2 * CN_HDR_LEN + 1);
	uint64_t seed = 0x9e3779b97f4a7c15u;

	ck_assert_ptr_nonnull(s);
	put_hdr(s, (uint32_t)(4 + len), 1, 0xbeef);
	for (size_t i = 0; i < len; i++)
		s[CN_HDR_LEN + i] = (uint8_t)(rng_next(&seed) >> 56);
	put_hdr(s + CN_HDR_LEN + len, 5, 1, 2);
	s[2 * CN_HDR_LEN + len] = 0x99;
	*total = len + 2 * CN_HDR_LEN + 1;
	return s;
}

static void check_big(const char *label, const uint8_t *s, size_t len,
		      const struct result *r)
{
	connect_datagram *dg;
	const uint8_t *got;

	ck_assert_msg(r->end == CONNECT_EEOF && r->ndg == 2,
		      "%s: %zu datagrams, end %s (%s)", label, r->ndg,
		      connect_err_name(r->end), r->reason);
	dg = r->dgs[0];
	check_dg_header(label, 0, dg);
	ck_assert_uint_eq(connect_datagram_tag(dg), 0xbeef);
	ck_assert_uint_eq(connect_datagram_size(dg), len);
	got = connect_datagram_data(dg);
	if (memcmp(got, s + CN_HDR_LEN, len)) {
		size_t i = 0;

		while (got[i] == s[CN_HDR_LEN + i])
			i++;
		ck_abort_msg("%s: payload differs at byte %zu", label, i);
	}
	ck_assert_uint_eq(connect_datagram_size(r->dgs[1]), 1);
	ck_assert_uint_eq(connect_datagram_tag(r->dgs[1]), 2);
	ck_assert_uint_eq(*(uint8_t *)connect_datagram_data(r->dgs[1]), 0x99);
}

/*
 * A large datagram freed is kept (not under AddressSanitizer), and the
 * next large frame it can hold takes it whole at its header: no growth.
 * The frame's bytes are the new ones.
 */
START_TEST(test_kept_block)
{
	const size_t len = 1u << 20;
	size_t total, used;
	uint8_t *s = make_big_stream(len, &total);
	struct connect_datagram *dg = NULL;
	struct cn_decoder d;

	cn_datagram_cache_drop();
	dg = cn_datagram_alloc((uint32_t)len, 1, 1);
	ck_assert_ptr_nonnull(dg);
	memset(dg->payload, 0xAA, len);
	cn_datagram_free(dg);
	dg = NULL;
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, s, CN_HDR_LEN, &used, &dg),
			 CONNECT_OK);
	ck_assert_uint_eq(used, CN_HDR_LEN);
	ck_assert_ptr_null(dg);
#if defined(__SANITIZE_ADDRESS__)
	ck_assert_uint_lt(cn_decoder_buffered(&d), len);
#else
	ck_assert_uint_ge(cn_decoder_buffered(&d), len);
#endif
	for (size_t off = CN_HDR_LEN; !dg && off < total; off += used) {
		size_t n = total - off < 65536 ? total - off : 65536;

		ck_assert_int_eq(cn_decoder_feed(&d, s + off, n, &used, &dg),
				 CONNECT_OK);
	}
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(dg->len, len);
	ck_assert_mem_eq(dg->payload, s + CN_HDR_LEN, len);
	cn_datagram_free(dg);
	cn_decoder_fini(&d);
	cn_datagram_cache_drop();
	free(s);
}
END_TEST

START_TEST(test_large_frame)
{
	const size_t len = 5u << 20;
	const struct {
		struct cutter k;
		const char *how;
	} cuts[] = {
		{ { CUT_FIXED, 7, 0 }, "5 MiB frame, 7-byte feeds" },
		{ { CUT_FIXED, 65536, 0 }, "5 MiB frame, 65536-byte feeds" },
		{ { CUT_RANDOM, 200000, 12345 },
		  "5 MiB frame, random feeds (seed 12345)" },
		{ { CUT_RANDOM, 100, 777 },
		  "5 MiB frame, random small feeds (seed 777)" },
		{ { CUT_ALL, 0, 0 }, "5 MiB frame, all at once" },
	};
	size_t total;
	uint8_t *s = make_big_stream(len, &total);

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct result r;

		decode(cuts[i].how, CONNECT_MAX_PAYLOAD, s, total, cuts[i].k,
		       &r);
		check_big(cuts[i].how, s, len, &r);
		result_free(&r);
	}
	free(s);
}
END_TEST

/*
 * A 5 MiB frame whose payload past the first bytes is read straight into
 * the datagram (cn_decoder_direct), in pieces of at most what it offers
 * and at most 100,000 bytes: the same datagram as fed through a buffer;
 * the room offered never passes the frame, and the buffer grows by the
 * bounded step (never to the announced size at once).
 */
START_TEST(test_direct_reads)
{
	const size_t len = 5u << 20;
	struct cn_decoder d;
	struct connect_datagram *dg = NULL;
	size_t total, used, off = 0, room;
	uint8_t *s = make_big_stream(len, &total), *p;

	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_ptr_null(cn_decoder_direct(&d, &room)); /* no frame yet */
	ck_assert_int_eq(cn_decoder_feed(&d, s, 100, &used, &dg), CONNECT_OK);
	ck_assert_ptr_null(dg);
	off = used;
	while (!dg) {
		size_t n;

		p = cn_decoder_direct(&d, &room);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_ge(room, 1);
		ck_assert_uint_le(room, CN_HDR_LEN + len - off);
		ck_assert_uint_le(cn_decoder_buffered(&d),
				  sizeof(struct connect_datagram) + (off - 8) * 2 +
					  CN_DECODER_STEP_MIN + 1);
		n = room < 100000 ? room : 100000;
		memcpy(p, s + off, n);
		off += n;
		cn_decoder_direct_done(&d, n, &dg);
	}
	ck_assert_uint_eq(off, CN_HDR_LEN + len);
	ck_assert_uint_eq(connect_datagram_size(dg), len);
	ck_assert(memcmp(connect_datagram_data(dg), s + 8, len) == 0);
	connect_datagram_free(dg);
	ck_assert_ptr_null(cn_decoder_direct(&d, &room));
	/* The next frame goes through feed as usual. */
	ck_assert_int_eq(cn_decoder_feed(&d, s + off, total - off, &used, &dg),
			 CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(connect_datagram_size(dg), 1);
	connect_datagram_free(dg);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EEOF);
	cn_decoder_fini(&d);
	free(s);
}
END_TEST

START_TEST(test_lower_limit)
{
	uint8_t buf[CN_HDR_LEN + 11];
	struct cn_decoder d;
	connect_datagram *dg = NULL;
	size_t used = 0;

	memset(buf, 0x33, sizeof(buf));

	/* max_payload 10: size 14 is fine. */
	put_hdr(buf, 14, 1, 3);
	cn_decoder_init(&d, 10);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, CN_HDR_LEN + 10, &used, &dg),
			 CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(used, CN_HDR_LEN + 10);
	ck_assert_uint_eq(connect_datagram_size(dg), 10);
	connect_datagram_free(dg);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EEOF);
	cn_decoder_fini(&d);

	/* ... size 15 is a protocol error, found before any payload. */
	put_hdr(buf, 15, 1, 3);
	cn_decoder_init(&d, 10);
	expect_feed_err(&d, buf, CN_HDR_LEN, CONNECT_EPROTO, "size 15");
	ck_assert_uint_lt(cn_decoder_buffered(&d), SLACK);
	ck_assert_msg(strstr(d.reason, "15") != NULL,
		      "reason \"%s\" does not mention 15", d.reason);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EPROTO);
	cn_decoder_fini(&d);

	/* max_payload 1: only 1-byte payloads. */
	put_hdr(buf, 5, 1, 3);
	cn_decoder_init(&d, 1);
	dg = NULL;
	ck_assert_int_eq(cn_decoder_feed(&d, buf, CN_HDR_LEN + 1, &used, &dg),
			 CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	connect_datagram_free(dg);
	put_hdr(buf, 6, 1, 3);
	expect_feed_err(&d, buf, sizeof(buf), CONNECT_EPROTO, "size 6");
	cn_decoder_fini(&d);
}
END_TEST

START_TEST(test_sticky_error)
{
	uint8_t bad[CN_HDR_LEN + 1] = { 0 }, good[CN_HDR_LEN + 1];
	struct cn_decoder d;

	put_hdr(bad, 0xffffffffu, 1, 1);
	put_hdr(good, 5, 1, 1);
	good[CN_HDR_LEN] = 'x';
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	expect_feed_err(&d, bad, sizeof(bad), CONNECT_EPROTO, "bad header");
	for (int i = 0; i < 5; i++) {
		expect_feed_err(&d, good, sizeof(good), CONNECT_EPROTO,
				"good frame after error");
		expect_feed_err(&d, good, 1, CONNECT_EPROTO,
				"one byte after error");
	}
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EPROTO);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EPROTO);
	ck_assert_uint_lt(cn_decoder_buffered(&d), SLACK);
	cn_decoder_fini(&d);
}
END_TEST

/* 1000 frames of varied sizes (1 byte to past CN_DECODER_STEP_MIN). */
static uint8_t *make_many(size_t nframes, size_t *total)
{
	size_t cap = 0, off = 0;
	uint8_t *s;

	for (size_t i = 0; i < nframes; i++)
		cap += CN_HDR_LEN +
		       (i % 50 == 0 ? 70000 + i : (i * 7919) % 3000 + 1);
	s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < nframes; i++) {
		size_t len = i % 50 == 0 ? 70000 + i : (i * 7919) % 3000 + 1;

		put_hdr(s + off, (uint32_t)(4 + len), (uint16_t)(1 + i % 3),
			(uint16_t)i);
		for (size_t j = 0; j < len; j++)
			s[off + CN_HDR_LEN + j] = (uint8_t)(i + j * 13);
		off += CN_HDR_LEN + len;
	}
	*total = off;
	return s;
}

static void check_many(const char *label, const uint8_t *s, size_t nframes,
		       const struct result *r)
{
	size_t off = 0;

	REQUIRE(r->end == CONNECT_EEOF,
		"%s: ended with %s (%s)", label,
		connect_err_name(r->end), r->reason);
	REQUIRE(r->ndg == nframes, "%s: %zu datagrams, expected %zu",
		label, r->ndg, nframes);
	for (size_t i = 0; i < nframes; i++) {
		connect_datagram *dg = r->dgs[i];
		size_t len = cn_get32(s + off) - 4;

		check_dg_header(label, i, dg);
		REQUIRE(connect_datagram_tag(dg) == i &&
				connect_datagram_version(dg) ==
					1 + i % 3 &&
				connect_datagram_size(dg) == len &&
				!memcmp(connect_datagram_data(dg),
					s + off + CN_HDR_LEN, len),
			"%s: datagram %zu (tag %u, %zu bytes) differs "
			"from frame %zu",
			label, i, connect_datagram_tag(dg),
			connect_datagram_size(dg), i);
		off += CN_HDR_LEN + len;
	}
}

START_TEST(test_many_frames)
{
	const size_t nframes = 1000;
	const struct {
		struct cutter k;
		const char *how;
	} cuts[] = {
		{ { CUT_ALL, 0, 0 }, "1000 frames, one buffer" },
		{ { CUT_FIXED, 4096, 0 }, "1000 frames, 4096-byte feeds" },
		{ { CUT_FIXED, 5, 0 }, "1000 frames, 5-byte feeds" },
		{ { CUT_RANDOM, 30000, 4242 },
		  "1000 frames, random feeds (seed 4242)" },
	};
	size_t total;
	uint8_t *s = make_many(nframes, &total);

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct result r;

		decode(cuts[i].how, CONNECT_MAX_PAYLOAD, s, total, cuts[i].k,
		       &r);
		check_many(cuts[i].how, s, nframes, &r);
		result_free(&r);
	}
	free(s);
}
END_TEST

START_TEST(test_zero_length_feed)
{
	uint8_t buf[CN_HDR_LEN + 1];
	struct cn_decoder d;
	connect_datagram *dg = NULL;
	size_t used = 99;

	put_hdr(buf, 5, 1, 1);
	buf[CN_HDR_LEN] = 7;
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, 0, &used, &dg), CONNECT_OK);
	ck_assert_uint_eq(used, 0);
	ck_assert_ptr_null(dg);
	/* Mid-header and mid-payload too. */
	ck_assert_int_eq(cn_decoder_feed(&d, buf, 3, &used, &dg), CONNECT_OK);
	ck_assert_ptr_null(dg);
	ck_assert_int_eq(cn_decoder_feed(&d, buf + 3, 0, &used, &dg),
			 CONNECT_OK);
	ck_assert_uint_eq(used, 0);
	ck_assert_ptr_null(dg);
	ck_assert_int_eq(cn_decoder_feed(&d, buf + 3, sizeof(buf) - 3, &used,
					 &dg),
			 CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(*(uint8_t *)connect_datagram_data(dg), 7);
	connect_datagram_free(dg);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_EEOF);
	cn_decoder_fini(&d);
}
END_TEST

/* cn_decoder_fini frees whatever is partial; ASan/valgrind see leaks. */
START_TEST(test_fini_partial)
{
	const size_t big = 1u << 20;
	uint8_t *buf = malloc(CN_HDR_LEN + big);
	struct cn_decoder d;
	connect_datagram *dg = NULL;
	size_t used;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 0x11, CN_HDR_LEN + big);
	put_hdr(buf, 100000004u, 1, 1);

	/* Fresh. */
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	cn_decoder_fini(&d);

	/* Half a header. */
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, 5, &used, &dg), CONNECT_OK);
	cn_decoder_fini(&d);

	/* A whole header, no payload. */
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, CN_HDR_LEN, &used, &dg),
			 CONNECT_OK);
	cn_decoder_fini(&d);

	/* 1 MiB of a 100 MB frame. */
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, CN_HDR_LEN + big, &used,
					 &dg),
			 CONNECT_OK);
	ck_assert_ptr_null(dg);
	ck_assert_uint_ge(cn_decoder_buffered(&d), big);
	cn_decoder_fini(&d);

	/* After a truncation was reported. */
	cn_decoder_init(&d, CONNECT_MAX_PAYLOAD);
	ck_assert_int_eq(cn_decoder_feed(&d, buf, CN_HDR_LEN + 100, &used,
					 &dg),
			 CONNECT_OK);
	ck_assert_int_eq(cn_decoder_finish(&d), CONNECT_ETRUNCATED);
	cn_decoder_fini(&d);
	free(buf);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc;

	tc = tcase_create("vectors");
	tcase_add_test(tc, test_vectors_sane);
	tcase_add_loop_test(tc, test_vector, 0, (int)ncases);
	tcase_add_loop_test(tc, test_vector_encode, 0, (int)ncases);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_oversize_allocates_nothing);
	tcase_add_test(tc, test_reason_mentions_size);
	tcase_add_test(tc, test_lower_limit);
	tcase_add_test(tc, test_sticky_error);
	tcase_add_test(tc, test_zero_length_feed);
	suite_add_tcase(s, tc);

	/* Megabytes fed in small pieces: slow under valgrind/sanitizers. */
	tc = tcase_create("large");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_memory_follows_bytes);
	tcase_add_test(tc, test_large_frame);
	tcase_add_test(tc, test_kept_block);
	tcase_add_test(tc, test_direct_reads);
	tcase_add_test(tc, test_many_frames);
	tcase_add_test(tc, test_fini_partial);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int rc;

	if (load_vectors(VECTORS) < 0)
		return 99; /* hard error for the test driver */
	rc = t_run(codec_suite(), 0);
	free_vectors();
	return rc;
}
