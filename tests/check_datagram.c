/*
 * Unit tests: datagrams, error codes, options and the version string.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "helpers.h"

/* A pointer value no allocator returns: "*dgp was not written". */
#define SENTINEL ((connect_datagram *)(uintptr_t)0x5eed)

static const uint8_t hello_wire[] = {
	0x00, 0x00, 0x00, 0x10, 0x00, 0x01, 0xff, 0xff, 'H', 'e',
	'l',  'l',  'o',  ' ',  'w',  'o',  'r',  'l',  'd', '!',
};

/* Check the prebuilt wire header against the accessors. */
static void check_header(connect_datagram *dg, uint16_t version, uint16_t tag,
			 size_t len)
{
	ck_assert_uint_eq(connect_datagram_size(dg), len);
	ck_assert_uint_eq(dg->len, len);
	ck_assert_uint_eq(cn_get32(dg->hdr), 4 + len);
	ck_assert_uint_eq(cn_get16(dg->hdr + 4), version);
	ck_assert_uint_eq(cn_get16(dg->hdr + 6), tag);
	ck_assert_uint_eq(connect_datagram_version(dg), version);
	ck_assert_uint_eq(connect_datagram_tag(dg), tag);
	/* Header and payload are one contiguous run of 8 + len bytes. */
	ck_assert_ptr_eq(connect_datagram_data(dg), dg->hdr + CN_HDR_LEN);
}

START_TEST(test_hello_wire)
{
	connect_datagram *dg = NULL;

	ck_assert_int_eq(connect_datagram_new(&dg, 65535, "Hello world!", 12),
			 CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	check_header(dg, CONNECT_WIRE_VERSION, 65535, 12);
	ck_assert_mem_eq(dg->hdr, hello_wire, sizeof(hello_wire));
	ck_assert_mem_eq(connect_datagram_data(dg), "Hello world!", 12);
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_new_copies)
{
	char src[64];
	connect_datagram *dg = NULL;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (char)('a' + i % 26);
	ck_assert_int_eq(connect_datagram_new(&dg, 7, src, sizeof(src)),
			 CONNECT_OK);
	ck_assert_ptr_ne(connect_datagram_data(dg), src);
	memset(src, 0, sizeof(src));
	for (size_t i = 0; i < sizeof(src); i++)
		if (((char *)connect_datagram_data(dg))[i] !=
		    (char)('a' + i % 26))
			ck_abort_msg("byte %zu follows the source", i);
	check_header(dg, 1, 7, sizeof(src));
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_accessors)
{
	static const uint16_t tags[] = { 0, 1, 0x0102, 0x8000, 0xfffe, 0xffff };
	static const size_t lens[] = { 1, 2, 255, 256, 65535, 65536, 1000003 };

	for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++) {
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			size_t len = lens[l];
			uint8_t *src = malloc(len);
			connect_datagram *dg = NULL;

			ck_assert_ptr_nonnull(src);
			for (size_t i = 0; i < len; i++)
				src[i] = (uint8_t)(i * 31 + t);
			ck_assert_int_eq(connect_datagram_new(&dg, tags[t],
							      src, len),
					 CONNECT_OK);
			check_header(dg, 1, tags[t], len);
			ck_assert(memcmp(connect_datagram_data(dg), src,
					 len) == 0);
			connect_datagram_free(dg);
			free(src);
		}
	}
}
END_TEST

START_TEST(test_set_tag)
{
	connect_datagram *dg = NULL;

	ck_assert_int_eq(connect_datagram_new(&dg, 1, "xyz", 3), CONNECT_OK);
	connect_datagram_set_tag(dg, 0xabcd);
	check_header(dg, 1, 0xabcd, 3);
	ck_assert_uint_eq(dg->hdr[6], 0xab);
	ck_assert_uint_eq(dg->hdr[7], 0xcd);
	connect_datagram_set_tag(dg, 0);
	check_header(dg, 1, 0, 3);
	/* The size and version fields are left alone. */
	ck_assert_uint_eq(cn_get32(dg->hdr), 7);
	ck_assert_mem_eq(connect_datagram_data(dg), "xyz", 3);
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_alloc_writable)
{
	const size_t len = 300000;
	connect_datagram *dg = NULL;
	const uint8_t *wire;
	uint8_t *p;

	ck_assert_int_eq(connect_datagram_alloc(&dg, 0x1234, len), CONNECT_OK);
	ck_assert_ptr_nonnull(dg);
	check_header(dg, 1, 0x1234, len);
	p = connect_datagram_data(dg);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i ^ (i >> 8));
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i ^ (i >> 8)))
			ck_abort_msg("payload byte %zu changed", i);
	/* Filling the payload does not disturb the header. */
	check_header(dg, 1, 0x1234, len);
	connect_datagram_free(dg);

	ck_assert_int_eq(connect_datagram_alloc(&dg, 9, 1), CONNECT_OK);
	check_header(dg, 1, 9, 1);
	*(uint8_t *)connect_datagram_data(dg) = 0x5a;
	/* The wire run: header, then payload byte 0. */
	wire = dg->hdr;
	ck_assert_uint_eq(wire[CN_HDR_LEN], 0x5a);
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_internal_alloc_version)
{
	/* Received datagrams keep the version they came with. */
	struct connect_datagram *dg = cn_datagram_alloc(5, 7, 0x0102);

	ck_assert_ptr_nonnull(dg);
	check_header(dg, 7, 0x0102, 5);
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_empty)
{
	connect_datagram *dg = SENTINEL;

	ck_assert_int_eq(connect_datagram_new(&dg, 1, "x", 0), CONNECT_EEMPTY);
	ck_assert_ptr_eq(dg, SENTINEL);
	ck_assert_int_eq(connect_datagram_new(&dg, 1, NULL, 0), CONNECT_EEMPTY);
	ck_assert_ptr_eq(dg, SENTINEL);
	ck_assert_int_eq(connect_datagram_alloc(&dg, 1, 0), CONNECT_EEMPTY);
	ck_assert_ptr_eq(dg, SENTINEL);
}
END_TEST

START_TEST(test_too_big)
{
	/*
	 * The source is 16 bytes: a library that copied (or allocated) before
	 * checking the length would read far out of bounds, which ASan and
	 * valgrind report.
	 */
	static const char small[16] = "0123456789abcde";
	const size_t lens[] = { (size_t)CONNECT_MAX_PAYLOAD + 1,
				(size_t)UINT32_MAX, (size_t)UINT32_MAX + 1,
				(size_t)UINT32_MAX + 5, SIZE_MAX - 7,
				SIZE_MAX };
	connect_datagram *dg = SENTINEL;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ck_assert_msg(connect_datagram_new(&dg, 1, small, lens[i]) ==
				      CONNECT_ETOOBIG,
			      "connect_datagram_new(len %zu) not ETOOBIG",
			      lens[i]);
		ck_assert_ptr_eq(dg, SENTINEL);
		ck_assert_msg(connect_datagram_alloc(&dg, 1, lens[i]) ==
				      CONNECT_ETOOBIG,
			      "connect_datagram_alloc(len %zu) not ETOOBIG",
			      lens[i]);
		ck_assert_ptr_eq(dg, SENTINEL);
	}
}
END_TEST

START_TEST(test_max_payload)
{
	const size_t len = CONNECT_MAX_PAYLOAD;
	uint8_t *src = malloc(len);
	connect_datagram *dg = NULL;

	ck_assert_ptr_nonnull(src);
	memset(src, 0xa5, len);
	src[0] = 0x01;
	src[len - 1] = 0x02;
	ck_assert_int_eq(connect_datagram_new(&dg, 42, src, len), CONNECT_OK);
	check_header(dg, 1, 42, len);
	/* 4 + 100,000,000 = 0x05f5e104 */
	ck_assert_uint_eq(dg->hdr[0], 0x05);
	ck_assert_uint_eq(dg->hdr[1], 0xf5);
	ck_assert_uint_eq(dg->hdr[2], 0xe1);
	ck_assert_uint_eq(dg->hdr[3], 0x04);
	ck_assert(memcmp(connect_datagram_data(dg), src, len) == 0);
	connect_datagram_free(dg);
	free(src);

	dg = NULL;
	ck_assert_int_eq(connect_datagram_alloc(&dg, 43, len), CONNECT_OK);
	check_header(dg, 1, 43, len);
	((uint8_t *)connect_datagram_data(dg))[len - 1] = 0x77;
	connect_datagram_free(dg);
}
END_TEST

START_TEST(test_einval)
{
	connect_datagram *dg = SENTINEL;

	ck_assert_int_eq(connect_datagram_new(NULL, 1, "abc", 3),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_datagram_alloc(NULL, 1, 3), CONNECT_EINVAL);
	ck_assert_int_eq(connect_datagram_new(&dg, 1, NULL, 1),
			 CONNECT_EINVAL);
	ck_assert_ptr_eq(dg, SENTINEL);
	ck_assert_int_eq(connect_datagram_new(&dg, 1, NULL, 12345),
			 CONNECT_EINVAL);
	ck_assert_ptr_eq(dg, SENTINEL);
}
END_TEST

START_TEST(test_free_null)
{
	connect_datagram_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

struct err_entry {
	int code;
	const char *name;
	const char *text;
};

static const struct err_entry err_table[] = {
#define ERR_ENTRY_(n, v, t) { (v), "CONNECT_" #n, (t) },
	CONNECT_ERRNO_MAP(ERR_ENTRY_)
#undef ERR_ENTRY_
};
#define N_ERRS (sizeof(err_table) / sizeof(err_table[0]))

START_TEST(test_error_strings)
{
	ck_assert_int_eq(CONNECT_OK, 0);
	for (size_t i = 0; i < N_ERRS; i++) {
		const struct err_entry *e = &err_table[i];
		const char *s = connect_strerror(e->code);
		const char *n = connect_err_name(e->code);

		ck_assert_msg(s && *s, "no text for %d", e->code);
		ck_assert_msg(n && *n, "no name for %d", e->code);
		ck_assert_str_eq(n, e->name);
		ck_assert_str_eq(s, e->text);
		if (i > 0)
			ck_assert_msg(e->code < 0, "%s is not negative",
				      e->name);
		for (size_t j = 0; j < i; j++) {
			ck_assert_msg(err_table[j].code != e->code,
				      "%s and %s share a value", e->name,
				      err_table[j].name);
			ck_assert_msg(strcmp(connect_err_name(
						     err_table[j].code),
					     n) != 0,
				      "%s: name not distinct", e->name);
		}
	}
}
END_TEST

START_TEST(test_error_unknown)
{
	int unknown[] = { -9999, 12345, 1, 0 /* below */, -1000000,
			  INT32_MIN, INT32_MAX };

	/* One past the last code of the list, whatever it is. */
	for (size_t i = 0; i < N_ERRS; i++)
		if (err_table[i].code <= unknown[3])
			unknown[3] = err_table[i].code - 1;
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *s = connect_strerror(unknown[i]);
		const char *n = connect_err_name(unknown[i]);

		ck_assert_ptr_nonnull(s);
		ck_assert_ptr_nonnull(n);
		ck_assert_msg(*s != '\0', "empty text for %d", unknown[i]);
		ck_assert_str_eq(n, "CONNECT_EUNKNOWN");
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

struct opt_entry {
	int opt;
	int64_t def, min, max;
};

static const struct opt_entry opt_table[] = {
	{ CONNECT_OPT_SEND_QUEUE_BYTES, 16 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_SEND_QUEUE_MSGS, 65536, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_QUEUE_BYTES, 16 << 20, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_QUEUE_MSGS, 65536, 1, INT64_C(1) << 62 },
	{ CONNECT_OPT_RECV_MAX_PAYLOAD, CONNECT_MAX_PAYLOAD, 1,
	  CONNECT_MAX_PAYLOAD },
	{ CONNECT_OPT_THREAD_STACK, 256 << 10, 64 << 10, 64 << 20 },
	{ CONNECT_OPT_LINGER_MS, 5000, 0, INT32_MAX },
	{ CONNECT_OPT_TCP_NODELAY, 1, 0, 1 },
	{ CONNECT_OPT_TCP_KEEPALIVE, 1, 0, 1 },
	{ CONNECT_OPT_CONNECT_TIMEOUT_MS, 10000, 1, INT32_MAX },
	{ CONNECT_OPT_ACCEPT_QUEUE, 128, 1, 65536 },
	{ CONNECT_OPT_SCTP_UDP_PORT, 9899, 0, 65535 },
	{ CONNECT_OPT_SCTP_PEER_UDP_PORT, 0, 0, 65535 },
	{ CONNECT_OPT_SCTP_HEARTBEAT_MS, 30000, 0, INT32_MAX },
	{ CONNECT_OPT_SCTP_MAX_RETRANS, 5, 1, 100 },
	{ CONNECT_OPT_RECV_SPIN_US, 50, 0, 1000000 },
};
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static int64_t opt_value(const connect_opts *o, int opt)
{
	int64_t v = INT64_MIN;

	ck_assert_int_eq(connect_opts_get(o, opt, &v), CONNECT_OK);
	return v;
}

START_TEST(test_opts_defaults)
{
	connect_opts *o = NULL;

	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	ck_assert_ptr_nonnull(o);
	for (size_t i = 0; i < N_OPTS; i++)
		ck_assert_msg(opt_value(o, opt_table[i].opt) ==
				      opt_table[i].def,
			      "option %d: default %lld, expected %lld",
			      opt_table[i].opt,
			      (long long)opt_value(o, opt_table[i].opt),
			      (long long)opt_table[i].def);
	connect_opts_free(o);
}
END_TEST

START_TEST(test_opts_ranges)
{
	connect_opts *o = NULL;

	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_entry *e = &opt_table[i];
		const int64_t bad[] = { e->min - 1, e->max + 1, INT64_MIN,
					INT64_MAX, -1 };
		const int64_t good[] = { e->min, e->max,
					 e->min + (e->max - e->min) / 2 };

		for (size_t j = 0; j < sizeof(good) / sizeof(good[0]); j++) {
			ck_assert_msg(connect_opts_set(o, e->opt, good[j]) ==
					      CONNECT_OK,
				      "option %d: %lld refused", e->opt,
				      (long long)good[j]);
			ck_assert_int_eq(opt_value(o, e->opt), good[j]);
		}
		/* Back to a known value; refusals must not change it. */
		ck_assert_int_eq(connect_opts_set(o, e->opt, e->def),
				 CONNECT_OK);
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			if (bad[j] >= e->min && bad[j] <= e->max)
				continue;
			ck_assert_msg(connect_opts_set(o, e->opt, bad[j]) ==
					      CONNECT_EINVAL,
				      "option %d: %lld accepted", e->opt,
				      (long long)bad[j]);
			ck_assert_int_eq(opt_value(o, e->opt), e->def);
		}
	}
	/* Setting one option leaves the others alone. */
	ck_assert_int_eq(connect_opts_set(o, CONNECT_OPT_LINGER_MS, 7),
			 CONNECT_OK);
	for (size_t i = 0; i < N_OPTS; i++)
		if (opt_table[i].opt != CONNECT_OPT_LINGER_MS)
			ck_assert_int_eq(opt_value(o, opt_table[i].opt),
					 opt_table[i].def);
	connect_opts_free(o);
}
END_TEST

START_TEST(test_opts_invalid)
{
	static const int unknown[] = { 0, -1, 27, 28, 100, INT32_MIN,
				       INT32_MAX };
	connect_opts *o = NULL;
	int64_t v;

	ck_assert_int_eq(connect_opts_new(NULL), CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		v = 12345;
		ck_assert_int_eq(connect_opts_set(o, unknown[i], 1),
				 CONNECT_EINVAL);
		ck_assert_int_eq(connect_opts_get(o, unknown[i], &v),
				 CONNECT_EINVAL);
		ck_assert_int_eq(v, 12345);
	}
	ck_assert_int_eq(connect_opts_set(NULL, CONNECT_OPT_LINGER_MS, 1),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_get(NULL, CONNECT_OPT_LINGER_MS, &v),
			 CONNECT_EINVAL);
	ck_assert_int_eq(connect_opts_get(o, CONNECT_OPT_LINGER_MS, NULL),
			 CONNECT_EINVAL);
	/* Nothing above changed any value. */
	for (size_t i = 0; i < N_OPTS; i++)
		ck_assert_int_eq(opt_value(o, opt_table[i].opt),
				 opt_table[i].def);
	connect_opts_free(o);
	connect_opts_free(NULL);
}
END_TEST

START_TEST(test_version)
{
	const char *v = connect_version_string();

	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, CONNECT_VERSION);
}
END_TEST

static Suite *datagram_suite(void)
{
	Suite *s = suite_create("datagram");
	TCase *tc;

	tc = tcase_create("datagram");
	tcase_add_test(tc, test_hello_wire);
	tcase_add_test(tc, test_new_copies);
	tcase_add_test(tc, test_accessors);
	tcase_add_test(tc, test_set_tag);
	tcase_add_test(tc, test_alloc_writable);
	tcase_add_test(tc, test_internal_alloc_version);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_einval);
	tcase_add_test(tc, test_free_null);
	suite_add_tcase(s, tc);

	/* 100 MB twice over: give slow (sanitizer, valgrind) runs time. */
	tc = tcase_create("max-payload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_max_payload);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_error_strings);
	tcase_add_test(tc, test_error_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("opts");
	tcase_add_test(tc, test_opts_defaults);
	tcase_add_test(tc, test_opts_ranges);
	tcase_add_test(tc, test_opts_invalid);
	tcase_add_test(tc, test_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(datagram_suite(), 0);
}
