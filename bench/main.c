/*
 * connect-bench: runs every cell round-robin, prints the tables and writes
 * the CSV.  See bench/README for what is measured and how to read it.
 *
 *     bench/connect-bench [--runs N] [--duration S] [--quick]
 *                         [--only LIST] [--conns LIST] [--csv FILE]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <connect.h>

#ifndef CERTDIR
#define CERTDIR "tests/certs"
#endif

static const size_t all_sizes[] = { 16, 256, 4096, 65536, 1048576 };
#define NSIZES (sizeof(all_sizes) / sizeof(all_sizes[0]))
#define MAX_SYSTEMS 16
#define MAX_CONNS 8
#define MAX_RUNS 1000

static const char *const measure_names[BM_COUNT] = { "tput", "lat", "many" };

/* One run of one cell, reduced to what the tables and the CSV need. */
struct run_rec {
	bool done, ok;
	double rate, mbs;   /* messages/s, MB/s */
	double p50, p99, p999; /* us */
	uint64_t msgs, bytes;
	size_t samples;
	double secs;
	/* VmRSS: before setup, after the warm-up, at the end of the window,
	 * after teardown */
	long rss[4];
	char err[256];
};

/* A cell across runs: measure x system x size x conns. */
struct cell_recs {
	struct run_rec *runs;
};

static struct {
	int runs;
	double duration, warmup;
	const char *csv;
	const char *certdir;
	bool quiet;
	bool markdown;
	int conns[MAX_CONNS];
	int nconns;
	/* --only */
	bool sys_filter, size_filter, measure_filter;
	bool want_sys[MAX_SYSTEMS], want_size[NSIZES], want_measure[BM_COUNT];
} opt;

static struct bench_system systems[MAX_SYSTEMS];
static size_t nsystems;
static struct cell_recs recs[BM_COUNT][MAX_SYSTEMS][NSIZES][MAX_CONNS];

static void add_systems(const struct bench_system *s, size_t n)
{
	for (size_t i = 0; i < n && nsystems < MAX_SYSTEMS; i++)
		systems[nsystems++] = s[i];
}

static bool is_connect(int s)
{
	return systems[s].role == BS_CONNECT_TCP ||
	       systems[s].role == BS_CONNECT_TLS ||
	       systems[s].role == BS_CONNECT_INBOX ||
	       systems[s].role == BS_CONNECT_SCTP ||
	       systems[s].role == BS_CONNECT_DTLS_SCTP;
}

static int find_system(int role)
{
	for (size_t i = 0; i < nsystems; i++)
		if (systems[i].role == role)
			return (int)i;
	return -1;
}

/* ---- formatting ---------------------------------------------------------- */

static const char *size_name(size_t s)
{
	static char buf[NSIZES][32];
	static int k;
	char *b = buf[k++ % NSIZES];

	if (s >= 1048576 && s % 1048576 == 0)
		snprintf(b, 32, "%zu MiB", s / 1048576);
	else if (s >= 1024 && s % 1024 == 0)
		snprintf(b, 32, "%zu KiB", s / 1024);
	else
		snprintf(b, 32, "%zu B", s);
	return b;
}

/* "2.85 M", "314 k", "645" into b. */
static void fmt_num(char *b, size_t len, double v)
{
	const char *u = "";

	if (v >= 1e9) {
		v /= 1e9;
		u = " G";
	} else if (v >= 1e6) {
		v /= 1e6;
		u = " M";
	} else if (v >= 1e3) {
		v /= 1e3;
		u = " k";
	}
	if (v >= 100)
		snprintf(b, len, "%.0f%s", v, u);
	else if (v >= 10)
		snprintf(b, len, "%.1f%s", v, u);
	else
		snprintf(b, len, "%.2f%s", v, u);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of v[0..n) (sorted in place); false if n == 0. */
static bool stats(double *v, size_t n, double *med, double *lo, double *hi)
{
	if (!n)
		return false;
	qsort(v, n, sizeof(*v), cmp_double);
	*med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	*lo = v[0];
	*hi = v[n - 1];
	return true;
}

/* The value of one field of a run record. */
enum field { F_RATE, F_MBS, F_P50, F_P99, F_P999 };

static double field(const struct run_rec *r, int f)
{
	switch (f) {
	case F_RATE:
		return r->rate;
	case F_MBS:
		return r->mbs;
	case F_P50:
		return r->p50;
	case F_P99:
		return r->p99;
	default:
		return r->p999;
	}
}

static bool cell_stats(int m, int s, int z, int k, int f, double *med,
		       double *lo, double *hi)
{
	struct run_rec *runs = recs[m][s][z][k].runs;
	double v[MAX_RUNS];
	size_t n = 0;

	if (!runs)
		return false;
	for (int i = 0; i < opt.runs; i++)
		if (runs[i].ok)
			v[n++] = field(&runs[i], f);
	return stats(v, n, med, lo, hi);
}

/* The median over runs of a/b, each run's two cells measured side by side. */
static bool ratio(int m, int a, int b, int z, int k, int f, double *med)
{
	struct run_rec *ra, *rb;
	double v[MAX_RUNS], lo, hi;
	size_t n = 0;

	if (a < 0 || b < 0)
		return false;
	ra = recs[m][a][z][k].runs;
	rb = recs[m][b][z][k].runs;
	if (!ra || !rb)
		return false;
	for (int i = 0; i < opt.runs; i++)
		if (ra[i].ok && rb[i].ok && field(&rb[i], f) > 0)
			v[n++] = field(&ra[i], f) / field(&rb[i], f);
	return stats(v, n, med, &lo, &hi);
}

/* ---- the tables ------------------------------------------------------------ */

#define COLW 17

/* The tables as text (aligned columns) or, with --markdown, as Markdown. */
static void row_start(const char *label)
{
	if (opt.markdown)
		printf("| %s", label);
	else
		printf("%-22s", label);
}

static void row_cell(const char *text)
{
	if (opt.markdown)
		printf(" | %s", text);
	else
		printf("%*s", COLW, text);
}

static void row_end(void)
{
	printf(opt.markdown ? " |\n" : "\n");
}

static void table_head(const char *first)
{
	row_start(first);
	for (size_t z = 0; z < NSIZES; z++)
		if (!opt.size_filter || opt.want_size[z])
			row_cell(size_name(all_sizes[z]));
	row_end();
	if (!opt.markdown)
		return;
	printf("|---");
	for (size_t z = 0; z < NSIZES; z++)
		if (!opt.size_filter || opt.want_size[z])
			printf("|--:");
	printf("|\n");
}

static bool recs_any(int m)
{
	for (size_t s = 0; s < nsystems; s++)
		for (size_t z = 0; z < NSIZES; z++)
			for (int k = 0; k < MAX_CONNS; k++)
				if (recs[m][s][z][k].runs)
					return true;
	return false;
}

static bool sys_has(int s, int m)
{
	if (!systems[s].fn[m])
		return false;
	for (size_t z = 0; z < NSIZES; z++)
		for (int k = 0; k < MAX_CONNS; k++)
			if (recs[m][s][z][k].runs)
				return true;
	return false;
}

/*
 * Medians, then [min-max] on a second line (Markdown: in the same cell,
 * in parentheses).
 */
static void table_row(const char *label, int m, int s, int k, int f,
		      bool range)
{
	char b[80], lo_s[32], hi_s[32];
	double med, lo, hi;

	row_start(label);
	for (size_t z = 0; z < NSIZES; z++) {
		if (opt.size_filter && !opt.want_size[z])
			continue;
		if (!cell_stats(m, s, (int)z, k, f, &med, &lo, &hi)) {
			row_cell(recs[m][s][z][k].runs ? "failed" : "-");
			continue;
		}
		fmt_num(b, sizeof(b), med);
		if (opt.markdown && range) {
			fmt_num(lo_s, sizeof(lo_s), lo);
			fmt_num(hi_s, sizeof(hi_s), hi);
			snprintf(b + strlen(b), sizeof(b) - strlen(b),
				 " (%s-%s)", lo_s, hi_s);
		}
		row_cell(b);
	}
	row_end();
	if (!range || opt.markdown)
		return;
	row_start("");
	for (size_t z = 0; z < NSIZES; z++) {
		if (opt.size_filter && !opt.want_size[z])
			continue;
		if (!cell_stats(m, s, (int)z, k, f, &med, &lo, &hi)) {
			row_cell("");
			continue;
		}
		fmt_num(lo_s, sizeof(lo_s), lo);
		fmt_num(hi_s, sizeof(hi_s), hi);
		snprintf(b, sizeof(b), "[%s-%s]", lo_s, hi_s);
		row_cell(b);
	}
	row_end();
}

static const char *range_note(void)
{
	return opt.markdown ? "(min-max) of the runs" : "[min-max] below";
}

static void ratios_head(const char *what)
{
	printf("\nratios (median of the runs' ratios; %s)\n", what);
	if (opt.markdown) {
		printf("\n");
		table_head("ratio");
	}
}

static void ratio_row(const char *label, int m, int a, int b, int k, int f)
{
	char buf[32];
	double v;
	bool any = false;

	if (a < 0 || b < 0)
		return;
	for (size_t z = 0; z < NSIZES; z++)
		if (ratio(m, a, b, (int)z, k, f, &v))
			any = true;
	if (!any)
		return;
	row_start(label);
	for (size_t z = 0; z < NSIZES; z++) {
		if (opt.size_filter && !opt.want_size[z])
			continue;
		if (ratio(m, a, b, (int)z, k, f, &v)) {
			snprintf(buf, sizeof(buf), "%.2fx", v);
			row_cell(buf);
		} else {
			row_cell("-");
		}
	}
	row_end();
}

static void print_tput(void)
{
	int lt = find_system(BS_CONNECT_TCP), ls = find_system(BS_CONNECT_TLS);
	int zq = find_system(BS_ZMQ), nt = find_system(BS_NNG_TCP);
	int ns = find_system(BS_NNG_TLS), xt = find_system(BS_LIMIT_TCP);
	int xs = find_system(BS_LIMIT_TLS);
	int cp = find_system(BS_CONNECT_SCTP);
	int cd = find_system(BS_CONNECT_DTLS_SCTP);
	int xp = find_system(BS_LIMIT_SCTP);

	printf("\nOne-way throughput, one connection: messages/s at the "
	       "receiver\n(median of the runs, %s)\n\n", range_note());
	table_head("system");
	for (size_t s = 0; s < nsystems; s++)
		if (sys_has((int)s, BM_TPUT))
			table_row(systems[s].label, BM_TPUT, (int)s, 0, F_RATE,
				  true);
	ratios_head("> 1: libconnect faster");
	ratio_row("TCP / ZeroMQ", BM_TPUT, lt, zq, 0, F_RATE);
	ratio_row("TCP / nng", BM_TPUT, lt, nt, 0, F_RATE);
	ratio_row("TCP / plain TCP", BM_TPUT, lt, xt, 0, F_RATE);
	ratio_row("TLS / bare GnuTLS", BM_TPUT, ls, xs, 0, F_RATE);
	ratio_row("TLS / nng TLS", BM_TPUT, ls, ns, 0, F_RATE);
	ratio_row("SCTP / plain usrsctp", BM_TPUT, cp, xp, 0, F_RATE);
	ratio_row("DTLS-SCTP / usrsctp", BM_TPUT, cd, xp, 0, F_RATE);

	printf("\nOne-way throughput, one connection: payload MB/s "
	       "(10^6 bytes), medians\n\n");
	table_head("system");
	for (size_t s = 0; s < nsystems; s++)
		if (sys_has((int)s, BM_TPUT))
			table_row(systems[s].label, BM_TPUT, (int)s, 0, F_MBS,
				  false);
}

static void print_lat(void)
{
	static const struct {
		int f;
		const char *name;
	} pct[] = { { F_P50, "p50" }, { F_P99, "p99" }, { F_P999, "p99.9" } };
	int lt = find_system(BS_CONNECT_TCP), ls = find_system(BS_CONNECT_TLS);
	int zq = find_system(BS_ZMQ), xt = find_system(BS_LIMIT_TCP);
	int xs = find_system(BS_LIMIT_TLS);
	int cp = find_system(BS_CONNECT_SCTP);
	int cd = find_system(BS_CONNECT_DTLS_SCTP);
	int xp = find_system(BS_LIMIT_SCTP);

	for (size_t i = 0; i < 3; i++) {
		printf("\nRound trip, one message outstanding: %s in "
		       "microseconds\n(median of the runs' %s, %s)\n\n",
		       pct[i].name, pct[i].name, range_note());
		table_head("system");
		for (size_t s = 0; s < nsystems; s++)
			if (sys_has((int)s, BM_LAT))
				table_row(systems[s].label, BM_LAT, (int)s, 0,
					  pct[i].f, true);
		ratios_head("< 1: libconnect faster");
		ratio_row("TCP / ZeroMQ", BM_LAT, lt, zq, 0, pct[i].f);
		ratio_row("TCP / plain TCP", BM_LAT, lt, xt, 0, pct[i].f);
		ratio_row("TLS / bare GnuTLS", BM_LAT, ls, xs, 0, pct[i].f);
		ratio_row("SCTP / plain usrsctp", BM_LAT, cp, xp, 0, pct[i].f);
		ratio_row("DTLS-SCTP / usrsctp", BM_LAT, cd, xp, 0, pct[i].f);
	}
}

static void print_many(void)
{
	int lt = find_system(BS_CONNECT_TCP), zq = find_system(BS_ZMQ);
	int li = find_system(BS_CONNECT_INBOX);
	char label[64];

	printf("\nOne-way throughput, N connections into one receiving "
	       "thread: messages/s\n(all senders together; median, %s)\n\n",
	       range_note());
	table_head("system");
	for (size_t s = 0; s < nsystems; s++) {
		if (!sys_has((int)s, BM_MANY))
			continue;
		for (int k = 0; k < opt.nconns; k++) {
			snprintf(label, sizeof(label), "%s N=%d",
				 systems[s].label, opt.conns[k]);
			table_row(label, BM_MANY, (int)s, k, F_RATE, true);
		}
	}
	ratios_head("> 1: libconnect faster");
	for (int k = 0; k < opt.nconns; k++) {
		snprintf(label, sizeof(label), "TCP / ZeroMQ N=%d",
			 opt.conns[k]);
		ratio_row(label, BM_MANY, lt, zq, k, F_RATE);
	}
	for (int k = 0; k < opt.nconns; k++) {
		snprintf(label, sizeof(label), "inbox / ZeroMQ N=%d",
			 opt.conns[k]);
		ratio_row(label, BM_MANY, li, zq, k, F_RATE);
	}
}

static void rss_cell(const struct run_rec *rr)
{
	double v[4][MAX_RUNS], med[4], lo, hi;
	size_t n = 0;
	char b[64];

	for (int i = 0; rr && i < opt.runs; i++) {
		if (!rr[i].done || rr[i].rss[2] < 0)
			continue;
		for (int j = 0; j < 4; j++)
			v[j][n] = (double)rr[i].rss[j] / 1024;
		n++;
	}
	if (!n) {
		row_cell("-");
		return;
	}
	for (int j = 0; j < 4; j++)
		stats(v[j], n, &med[j], &lo, &hi);
	snprintf(b, sizeof(b), "%.0f/%.0f/%.0f/%.0f", med[0], med[1], med[2],
		 med[3]);
	row_cell(b);
}

/* Resident memory of the libconnect cells: medians over the runs. */
static void print_rss(void)
{
	bool head = false;

	for (int m = 0; m < BM_COUNT; m++) {
		for (size_t s = 0; s < nsystems; s++) {
			if (!is_connect((int)s) || !sys_has((int)s, m))
				continue;
			for (int k = 0; k < (m == BM_MANY ? opt.nconns : 1);
			     k++) {
				char label[64];

				if (!head) {
					printf("\nProcess resident memory "
					       "(VmRSS, MiB) in the libconnect "
					       "cells: before setup / after the "
					       "warm-up / at the end of the window "
					       "/ after teardown (medians over the "
					       "runs)\n\n");
					table_head("cell");
					head = true;
				}
				if (m == BM_MANY)
					snprintf(label, sizeof(label),
						 "%s %s N=%d", measure_names[m],
						 systems[s].name, opt.conns[k]);
				else
					snprintf(label, sizeof(label), "%s %s",
						 measure_names[m],
						 systems[s].name);
				row_start(label);
				for (size_t z = 0; z < NSIZES; z++) {
					if (opt.size_filter &&
					    !opt.want_size[z])
						continue;
					rss_cell(recs[m][s][z][k].runs);
				}
				row_end();
			}
		}
	}
}

/* ---- CSV ---------------------------------------------------------------------- */

static void csv_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s == '\n' ? ' ' : *s, f);
	}
	fputc('"', f);
}

static const char csv_header[] =
	"row,run,measure,system,size,conns,msgs,bytes,seconds,msgs_per_s,"
	"mb_per_s,p50_us,p99_us,p999_us,samples,rss_start_kb,rss_window_kb,"
	"rss_end_kb,min_msgs_per_s,max_msgs_per_s,min_p50_us,max_p50_us,"
	"error,rss_warm_kb\n";

static int write_csv(const char *path, const char *meta)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "connect-bench: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fputs(meta, f);
	fputs(csv_header, f);
	/* Every run. */
	for (int i = 0; i < opt.runs; i++)
		for (int m = 0; m < BM_COUNT; m++)
			for (size_t s = 0; s < nsystems; s++)
				for (int k = 0; k < MAX_CONNS; k++)
					for (size_t z = 0; z < NSIZES; z++) {
						struct run_rec *rr =
							recs[m][s][z][k].runs;

						if (!rr || !rr[i].done)
							continue;
						rr += i;
						fprintf(f,
							"run,%d,%s,%s,%zu,%d,%llu,%llu,"
							"%.6f,%.1f,%.3f,%.2f,%.2f,%.2f,"
							"%zu,%ld,%ld,%ld,,,,,",
							i + 1, measure_names[m],
							systems[s].name, all_sizes[z],
							m == BM_MANY ? opt.conns[k] : 1,
							(unsigned long long)rr->msgs,
							(unsigned long long)rr->bytes,
							rr->secs, rr->rate, rr->mbs,
							rr->p50, rr->p99, rr->p999,
							rr->samples, rr->rss[0],
							rr->rss[2], rr->rss[3]);
						csv_quote(f, rr->err);
						fprintf(f, ",%ld\n", rr->rss[1]);
					}
	/* The medians, each system's sizes in a row (gnuplot draws them as
	 * one line). */
	for (int m = 0; m < BM_COUNT; m++)
		for (size_t s = 0; s < nsystems; s++)
			for (int k = 0; k < MAX_CONNS; k++)
				for (size_t z = 0; z < NSIZES; z++) {
					struct run_rec *rr = recs[m][s][z][k].runs;
					double med[5], lo = 0, hi = 0, plo = 0,
						       phi = 0, x, y;
					int n = 0;

					if (!rr)
						continue;
					for (int i = 0; i < opt.runs; i++)
						n += rr[i].ok;
					if (!n)
						continue;
					for (int j = 0; j < 5; j++)
						cell_stats(m, (int)s, (int)z, k, j,
							   &med[j],
							   j == F_RATE ? &lo : &x,
							   j == F_RATE ? &hi : &y);
					cell_stats(m, (int)s, (int)z, k, F_P50,
						   &x, &plo, &phi);
					fprintf(f,
						"median,%d,%s,%s,%zu,%d,,,,%.1f,%.3f,"
						"%.2f,%.2f,%.2f,,,,,%.1f,%.1f,%.2f,"
						"%.2f,\"\",\n",
						n, measure_names[m],
						systems[s].name, all_sizes[z],
						m == BM_MANY ? opt.conns[k] : 1,
						med[F_RATE], med[F_MBS], med[F_P50],
						med[F_P99], med[F_P999], lo, hi,
						plo, phi);
				}
	if (fclose(f)) {
		fprintf(stderr, "connect-bench: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- running the cells ---------------------------------------------------------- */

/*
 * A cell that never ends (a library hanging in its teardown, say) stops
 * the whole run with a message instead of holding it for ever.
 */
static _Atomic uint64_t cell_deadline;
static char cell_name[96];

static void *watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t d = atomic_load(&cell_deadline);

		sleep(1);
		if (d && d == atomic_load(&cell_deadline) && bench_now() > d) {
			fprintf(stderr, "connect-bench: %s did not finish in "
				"time: stopping\n", cell_name);
			_exit(3);
		}
	}
	return NULL;
}

static double pct(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);

	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1e3;
}

/* The share of --duration and --warmup the cells of system s run. */
static double sys_share(size_t s)
{
	return systems[s].share > 0 ? systems[s].share : 1;
}

static bool run_cell(int m, size_t s, size_t z, int k, int run)
{
	struct bench_cell c = {
		.measure = m,
		.size = all_sizes[z],
		.conns = m == BM_MANY ? opt.conns[k] : 1,
		.duration_ns = (uint64_t)(opt.duration * sys_share(s) * 1e9),
		.warmup_ns = (uint64_t)(opt.warmup * sys_share(s) * 1e9),
		.certdir = opt.certdir,
	};
	struct bench_result r;
	struct run_rec *rec = &recs[m][s][z][k].runs[run];
	char b[32];

	memset(&r, 0, sizeof(r));
	r.rss_window_kb = -1;
	snprintf(cell_name, sizeof(cell_name), "run %d %s %s %s N=%d",
		 run + 1, measure_names[m], systems[s].name, size_name(c.size),
		 c.conns);
	atomic_store(&cell_deadline, bench_now() + c.duration_ns +
					     c.warmup_ns + BENCH_STALL_NS +
					     60000000000ull);
	r.rss_start_kb = bench_rss_kb();
	systems[s].fn[m](&c, &r);
	r.rss_end_kb = bench_rss_kb();
	atomic_store(&cell_deadline, 0);

	rec->done = true;
	rec->msgs = r.msgs;
	rec->bytes = r.bytes;
	rec->secs = r.secs;
	rec->rss[0] = r.rss_start_kb;
	rec->rss[1] = r.rss_warm_kb;
	rec->rss[2] = r.rss_window_kb;
	rec->rss[3] = r.rss_end_kb;
	snprintf(rec->err, sizeof(rec->err), "%s", r.err);
	if (!r.err[0] && r.secs <= 0)
		snprintf(rec->err, sizeof(rec->err), "no measurement");
	if (m == BM_LAT && !rec->err[0]) {
		if (!r.nsamples) {
			snprintf(rec->err, sizeof(rec->err), "no round trip");
		} else {
			qsort(r.samples, r.nsamples, sizeof(uint64_t), cmp_u64);
			rec->p50 = pct(r.samples, r.nsamples, 0.50);
			rec->p99 = pct(r.samples, r.nsamples, 0.99);
			rec->p999 = pct(r.samples, r.nsamples, 0.999);
			rec->samples = r.nsamples;
			rec->rate = (double)r.nsamples / r.secs;
		}
	} else if (!rec->err[0]) {
		rec->rate = (double)r.msgs / r.secs;
		rec->mbs = (double)r.bytes / r.secs / 1e6;
	}
	free(r.samples);
	rec->ok = !rec->err[0];

	if (!opt.quiet || rec->err[0]) {
		fprintf(stderr, "run %d/%d %-4s %-17s %8s", run + 1, opt.runs,
			measure_names[m], systems[s].name,
			size_name(c.size));
		if (m == BM_MANY)
			fprintf(stderr, " N=%-3d", c.conns);
		if (rec->err[0]) {
			fprintf(stderr, " FAILED: %s\n", rec->err);
		} else if (m == BM_LAT) {
			fprintf(stderr, "  p50 %.1f p99 %.1f p99.9 %.1f us "
				"(%zu)", rec->p50, rec->p99, rec->p999,
				rec->samples);
		} else {
			fmt_num(b, sizeof(b), rec->rate);
			fprintf(stderr, "  %s msg/s %.1f MB/s", b, rec->mbs);
		}
		if (!rec->err[0] && is_connect((int)s))
			fprintf(stderr, "  rss %ld/%ld/%ld/%ld MiB",
				rec->rss[0] / 1024, rec->rss[1] / 1024,
				rec->rss[2] / 1024, rec->rss[3] / 1024);
		if (!rec->err[0])
			fprintf(stderr, "\n");
	}
	return rec->ok;
}

/*
 * The library's warnings (an SCTP stack that would not stop, say), with
 * the cell they came in; not the ends of connections ("CONNECT-CONN"),
 * which every teardown that cuts connections makes.
 */
static void log_warning(void *arg, int level, const char *id, const char *msg)
{
	(void)arg;
	(void)level;
	if (strcmp(id, "CONNECT-CONN") != 0)
		fprintf(stderr, "connect-bench: %s: libconnect %s: %s\n",
			cell_name, id, msg);
}

/* ---- options ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: connect-bench [OPTIONS]\n"
"\n"
"Measures libconnect beside ZeroMQ, nng and the plain-socket and bare-GnuTLS\n"
"limits, both ends in this process over 127.0.0.1, every system in turn\n"
"for each size and run (round-robin), and prints medians, ranges and ratios.\n"
"\n"
"  --runs N         runs per cell (default 5)\n"
"  --duration S     measured seconds per cell (default 1)\n"
"  --warmup S       seconds before each cell's window (default: a fifth of\n"
"                   the duration, at most 0.2)\n"
"  --quick          a smoke run: 1 run of 0.1 s per cell\n"
"  --only LIST      comma-separated filters: system names or prefixes\n"
"                   (connect-tcp, connect, zmq, nng-tls, limit...), sizes\n"
"                   (16, 256, 4k, 64k, 1m), measures (tput, lat, many);\n"
"                   filters of one kind add up, kinds narrow each other\n"
"  --conns LIST     senders of the many-connection measure (default\n"
"                   1,16,256)\n"
"  --csv FILE       write every run and the medians as CSV\n"
"  --certs DIR      the test certificates (default %s)\n"
"  --list           list the systems and exit\n"
"  --markdown       print the tables as Markdown\n"
"  -q, --quiet      no line per cell on stderr\n"
"  -h, --help\n", CERTDIR);
}

static bool parse_size(const char *t, size_t *out)
{
	char *end;
	unsigned long v = strtoul(t, &end, 10);

	if (end == t)
		return false;
	while (*end == ' ')
		end++;
	if (*end == 'k' || *end == 'K')
		v *= 1024, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1048576, end++;
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return false;
	*out = v;
	return true;
}

static int parse_only(char *list)
{
	for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
		size_t sz;
		bool hit = false;

		if (parse_size(t, &sz)) {
			for (size_t z = 0; z < NSIZES; z++)
				if (all_sizes[z] == sz)
					opt.want_size[z] = hit = true;
			opt.size_filter = true;
			if (!hit) {
				fprintf(stderr, "connect-bench: no size %s\n",
					t);
				return -1;
			}
			continue;
		}
		for (int m = 0; m < BM_COUNT; m++)
			if (strcmp(t, measure_names[m]) == 0)
				opt.want_measure[m] = hit = true;
		if (hit) {
			opt.measure_filter = true;
			continue;
		}
		for (size_t s = 0; s < nsystems; s++)
			if (strncmp(systems[s].name, t, strlen(t)) == 0)
				opt.want_sys[s] = hit = true;
		opt.sys_filter = true;
		if (!hit) {
			fprintf(stderr, "connect-bench: '%s' is no system, "
				"size or measure (--list)\n", t);
			return -1;
		}
	}
	return 0;
}

static int parse_conns(char *list)
{
	opt.nconns = 0;
	for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
		int n = atoi(t);

		if (n < 1 || n > 4096 || opt.nconns == MAX_CONNS) {
			fprintf(stderr, "connect-bench: bad --conns\n");
			return -1;
		}
		opt.conns[opt.nconns++] = n;
	}
	return opt.nconns ? 0 : -1;
}

static void describe(char *buf, size_t len)
{
	struct utsname u;
	char line[256], cpu[128] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	time_t now = time(NULL);
	char date[64];
	size_t o = 0;

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');

				if (p) {
					p++;
					while (*p == ' ')
						p++;
					p[strcspn(p, "\n")] = 0;
					snprintf(cpu, sizeof(cpu), "%s", p);
				}
				break;
			}
		fclose(f);
	}
	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "?");
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	o += (size_t)snprintf(buf + o, len - o,
			      "# connect-bench %s\n# cpu: %s, %ld online, "
			      "Linux %s\n", date, cpu,
			      sysconf(_SC_NPROCESSORS_ONLN), u.release);
	o += (size_t)snprintf(buf + o, len - o,
			      "# libconnect %s, GnuTLS %s", connect_version_string(),
			      bench_gnutls_version());
#ifdef HAVE_ZMQ
	o += (size_t)snprintf(buf + o, len - o, ", ZeroMQ %s",
			      bench_zmq_version());
#endif
#ifdef HAVE_NNG
	o += (size_t)snprintf(buf + o, len - o, ", nng %s",
			      bench_nng_version());
#endif
	snprintf(buf + o, len - o,
		 "\n# runs %d, %.3g s per cell after %.3g s of warm-up\n",
		 opt.runs, opt.duration, opt.warmup);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "quick", no_argument, NULL, 'Q' },
		{ "only", required_argument, NULL, 'o' },
		{ "conns", required_argument, NULL, 'n' },
		{ "csv", required_argument, NULL, 'c' },
		{ "certs", required_argument, NULL, 'C' },
		{ "list", no_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "markdown", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct bench_system *sys;
	char *only = NULL, meta[1024];
	struct rlimit rl;
	bool list = false;
	size_t n;
	int ch, failed = 0, ncells = 0;
	double est = 0; /* seconds per run */

	opt.runs = 5;
	opt.duration = 1;
	opt.warmup = -1;
	opt.certdir = CERTDIR;
	opt.conns[0] = 1;
	opt.conns[1] = 16;
	opt.conns[2] = 256;
	opt.nconns = 3;

	sys = bench_connect_systems(&n);
	add_systems(sys, n);
#ifdef HAVE_ZMQ
	sys = bench_zmq_systems(&n);
	add_systems(sys, n);
#endif
#ifdef HAVE_NNG
	sys = bench_nng_systems(&n);
	add_systems(sys, n);
#endif
	sys = bench_limit_systems(&n);
	add_systems(sys, n);
#ifdef HAVE_USRSCTP
	sys = bench_sctp_systems(&n);
	add_systems(sys, n);
#endif

	while ((ch = getopt_long(argc, argv, "qh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			opt.runs = atoi(optarg);
			if (opt.runs < 1 || opt.runs > MAX_RUNS) {
				fprintf(stderr, "connect-bench: --runs 1..%d\n",
					MAX_RUNS);
				return 2;
			}
			break;
		case 'd':
			opt.duration = atof(optarg);
			if (!(opt.duration > 0 && opt.duration < 3600)) {
				fprintf(stderr, "connect-bench: bad --duration\n");
				return 2;
			}
			break;
		case 'w':
			opt.warmup = atof(optarg);
			if (!(opt.warmup >= 0 && opt.warmup < 3600)) {
				fprintf(stderr, "connect-bench: bad --warmup\n");
				return 2;
			}
			break;
		case 'Q':
			opt.runs = 1;
			opt.duration = 0.1;
			break;
		case 'o':
			only = optarg;
			break;
		case 'n':
			if (parse_conns(optarg))
				return 2;
			break;
		case 'c':
			opt.csv = optarg;
			break;
		case 'C':
			opt.certdir = optarg;
			break;
		case 'l':
			list = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'M':
			opt.markdown = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (only && parse_only(only))
		return 2;
	if (opt.warmup < 0)
		opt.warmup = opt.duration / 5 < 0.2 ? opt.duration / 5 : 0.2;

	if (list) {
		for (size_t s = 0; s < nsystems; s++) {
			printf("%-17s %-22s", systems[s].name,
			       systems[s].label);
			for (int m = 0; m < BM_COUNT; m++)
				if (systems[s].fn[m])
					printf(" %s", measure_names[m]);
			if (systems[s].note)
				printf("  (%s)", systems[s].note);
			printf("\n");
		}
		return 0;
	}

	/* Writes to a closed socket are errors here, not signals; and 256
	 * connections each way need more descriptors than some defaults. */
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* Which cells run. */
	for (int m = 0; m < BM_COUNT; m++) {
		if (opt.measure_filter && !opt.want_measure[m])
			continue;
		for (size_t s = 0; s < nsystems; s++) {
			if (!systems[s].fn[m] ||
			    (opt.sys_filter && !opt.want_sys[s]))
				continue;
			for (size_t z = 0; z < NSIZES; z++) {
				if (opt.size_filter && !opt.want_size[z])
					continue;
				for (int k = 0;
				     k < (m == BM_MANY ? opt.nconns : 1); k++) {
					recs[m][s][z][k].runs = calloc(
						(size_t)opt.runs,
						sizeof(struct run_rec));
					if (!recs[m][s][z][k].runs) {
						fprintf(stderr, "out of memory\n");
						return 1;
					}
					ncells++;
					est += (opt.duration + opt.warmup) *
						       sys_share(s) +
					       0.05;
				}
			}
		}
	}
	if (!ncells) {
		fprintf(stderr, "connect-bench: --only leaves nothing to run\n");
		return 2;
	}
	{
		pthread_t wd;

		if (bench_thread(watchdog_main, NULL, &wd) == 0)
			pthread_detach(wd);
	}
	connect_set_logger(log_warning, NULL, CONNECT_LOG_WARN);
	describe(meta, sizeof(meta));
	fputs(meta, stdout);
#ifndef HAVE_ZMQ
	printf("# ZeroMQ: not found by configure (libzmq3-dev), left out\n");
#endif
#ifndef HAVE_NNG
	printf("# nng: not found by configure (libnng-dev), left out\n");
#else
	/* nng without a TLS engine: its TLS cells go. */
	{
		int ns = find_system(BS_NNG_TLS);
		bool any = false;

		for (int m = 0; ns >= 0 && m < BM_COUNT; m++)
			for (size_t z = 0; z < NSIZES; z++)
				if (recs[m][ns][z][0].runs)
					any = true;
		if (any && !bench_nng_tls()) {
			double cell_s = (opt.duration + opt.warmup) *
						sys_share((size_t)ns) +
					0.05;

			printf("# nng: built without TLS, nng-tls left out\n");
			for (int m = 0; m < BM_COUNT; m++)
				for (size_t z = 0; z < NSIZES; z++) {
					if (recs[m][ns][z][0].runs) {
						ncells--;
						est -= cell_s;
					}
					free(recs[m][ns][z][0].runs);
					recs[m][ns][z][0].runs = NULL;
				}
		}
	}
#endif
	printf("# %d cells x %d runs, about %.0f s\n", ncells, opt.runs,
	       est * opt.runs);
	fflush(stdout);

	/* Round-robin: within a run, for each measure and size, every
	 * system in turn, so that a slow moment of the machine falls on all
	 * of them alike. */
	for (int run = 0; run < opt.runs; run++)
		for (int m = 0; m < BM_COUNT; m++)
			for (size_t z = 0; z < NSIZES; z++)
				for (int k = 0; k < MAX_CONNS; k++)
					for (size_t s = 0; s < nsystems; s++)
						if (recs[m][s][z][k].runs &&
						    !run_cell(m, s, z, k, run))
							failed++;

	describe(meta, sizeof(meta)); /* now with the TLS session's cipher */
	printf("\n%s", meta);
	if (recs_any(BM_TPUT))
		print_tput();
	if (recs_any(BM_LAT))
		print_lat();
	if (recs_any(BM_MANY))
		print_many();
	print_rss();
	if (failed)
		printf("\n%d cell runs FAILED (see the lines above on stderr)\n",
		       failed);
	if (opt.csv && write_csv(opt.csv, meta))
		return 1;
	return failed ? 1 : 0;
}
