/*
 * Seed corpora for the fuzz targets, made from the test data so that they
 * follow it.
 *
 *   mkseeds wire VECTORS OUTDIR    one file per case of wire-vectors.txt
 *                                  (its stream bytes), plus each pair of
 *                                  cases back to back
 *   mkseeds tls CERTDIR OUTDIR     certificate, key and CA files of
 *                                  tests/certs in the input layout of
 *                                  fuzz-tls-config (fuzz_tls_config.c)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static const char *prog = "mkseeds";

__attribute__((noreturn, format(printf, 1, 2))) static void die(
	const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = (b->n + n) * 2 + 64;
		unsigned char *q = realloc(b->p, cap);

		if (!q)
			die("out of memory");
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void write_file(const char *dir, const char *name, const struct buf *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		die("%s: %s", path, strerror(errno));
	if ((b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0)
		die("%s: write failed", path);
}

static void read_file(const char *path, struct buf *b)
{
	unsigned char tmp[4096];
	FILE *f = fopen(path, "rb");
	size_t k;

	if (!f)
		die("%s: %s", path, strerror(errno));
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		put(b, tmp, k);
	if (ferror(f))
		die("%s: read failed", path);
	fclose(f);
}

/* ------------------------------------------------------------------------ */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

#define MAX_CASES 256

static int wire(const char *vectors, const char *outdir)
{
	static struct buf cases[MAX_CASES];
	static char names[MAX_CASES][64];
	char line[8192];
	size_t ncases = 0;
	int lineno = 0;
	FILE *f = fopen(vectors, "r");

	if (!f)
		die("%s: %s", vectors, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *bar1, *bar2, *s, *e;
		struct buf *b;
		int hi = -1;

		lineno++;
		if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
			continue;
		bar1 = strchr(line, '|');
		bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
		if (!bar2)
			die("%s:%d: expected name | hex | result", vectors,
			    lineno);
		if (ncases == MAX_CASES)
			die("%s: more than %d cases", vectors, MAX_CASES);
		/* The name, trimmed. */
		for (s = line; isspace((unsigned char)*s); s++)
			;
		for (e = bar1; e > s && isspace((unsigned char)e[-1]); e--)
			;
		snprintf(names[ncases], sizeof(names[0]), "wire-%.*s",
			 (int)(e - s), s);
		b = &cases[ncases];
		put(b, "", 0);
		for (s = bar1 + 1; s < bar2; s++) {
			int v;

			if (isspace((unsigned char)*s))
				continue;
			v = hexval(*s);
			if (v < 0)
				die("%s:%d: bad hex digit '%c'", vectors,
				    lineno, *s);
			if (hi < 0) {
				hi = v;
			} else {
				unsigned char byte = (unsigned char)(hi << 4 | v);

				put(b, &byte, 1);
				hi = -1;
			}
		}
		if (hi >= 0)
			die("%s:%d: odd number of hex digits", vectors, lineno);
		write_file(outdir, names[ncases], b);
		ncases++;
	}
	fclose(f);
	if (ncases == 0)
		die("%s: no cases", vectors);

	/* Two cases back to back: frames after frames, and the end of one
	 * case meeting the start of the next. */
	for (size_t i = 0; i < ncases; i++) {
		for (size_t j = 0; j < ncases; j++) {
			struct buf b = { 0 };
			char name[160];

			put(&b, cases[i].p, cases[i].n);
			put(&b, cases[j].p, cases[j].n);
			snprintf(name, sizeof(name), "%s+%s", names[i],
				 names[j] + 5);
			write_file(outdir, name, &b);
			free(b.p);
		}
	}
	for (size_t i = 0; i < ncases; i++)
		free(cases[i].p);
	printf("%s: %zu seeds from %s\n", outdir, ncases * (ncases + 1),
	       vectors);
	return 0;
}

/* ------------------------------------------------------------------------ */

/* Flags of fuzz_tls_config.c. */
#define T_SERVER 0x01
#define T_CA_FIRST 0x02
#define T_CERT_TWICE 0x04
#define T_CA_TWICE 0x08
#define T_REQUIRE 0x10

static const struct tls_seed {
	unsigned flags;
	const char *cert; /* files joined by '+' make one part */
	const char *key;
	const char *ca;
} tls_seeds[] = {
	{ T_SERVER, "server.pem", "server-key.pem", "ca.pem" },
	{ T_SERVER | T_REQUIRE, "server.pem", "server-key.pem", "ca.pem" },
	{ T_SERVER, "server.pem+ca.pem", "server-key.pem",
	  "ca.pem+other-ca.pem" },
	{ 0, "client.pem", "client-key.pem", "ca.pem" },
	{ T_CA_FIRST | T_CA_TWICE, "client.pem", "client-key.pem",
	  "other-ca.pem" },
	{ T_SERVER | T_CERT_TWICE, "other-server.pem", "other-server-key.pem",
	  "other-ca.pem" },
	{ T_SERVER, "expired.pem", "expired-key.pem", "ca.pem" },
	{ 0, "notyet.pem", "notyet-key.pem", "ca.pem" },
	{ T_SERVER, "wrongname.pem", "wrongname-key.pem", "server.pem" },
	{ T_SERVER, "ca.pem", "ca-key.pem", "ca.pem" },
	/* Mismatched pairs and broken files. */
	{ T_SERVER, "server.pem", "client-key.pem", "ca.pem" },
	{ T_SERVER, "client-key.pem", "server.pem", "ca-key.pem" },
	{ T_SERVER, "garbled.pem", "server-key.pem", "garbled.pem" },
	{ 0, "server.pem", "", "" },
};

static void add_files(struct buf *b, const char *certdir, const char *list)
{
	char names[512], *save = NULL, *tok;

	snprintf(names, sizeof(names), "%s", list);
	for (tok = strtok_r(names, "+", &save); tok;
	     tok = strtok_r(NULL, "+", &save)) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", certdir, tok);
		read_file(path, b);
	}
}

static int tls(const char *certdir, const char *outdir)
{
	static const char sep[] = FUZZ_TLS_SEP;
	size_t n = sizeof(tls_seeds) / sizeof(tls_seeds[0]);

	for (size_t i = 0; i < n; i++) {
		const struct tls_seed *t = &tls_seeds[i];
		struct buf b = { 0 };
		unsigned char flags = (unsigned char)t->flags;
		char name[64];

		put(&b, &flags, 1);
		add_files(&b, certdir, t->cert);
		put(&b, sep, sizeof(sep) - 1);
		add_files(&b, certdir, t->key);
		put(&b, sep, sizeof(sep) - 1);
		add_files(&b, certdir, t->ca);
		snprintf(name, sizeof(name), "tls-%02zu", i);
		write_file(outdir, name, &b);
		free(b.p);
	}
	printf("%s: %zu seeds from %s\n", outdir, n, certdir);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "wire") == 0)
		return wire(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "tls") == 0)
		return tls(argv[2], argv[3]);
	fprintf(stderr, "usage: %s wire VECTORS OUTDIR\n"
			"       %s tls CERTDIR OUTDIR\n", prog, prog);
	return 2;
}
