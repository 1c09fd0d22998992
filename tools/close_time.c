/*
 * close-time: how long connect_close() takes with the peer idle, over TCP
 * and TLS.  For each of N pairs: the client sends 50 datagrams, the server
 * reads them all, then one side (the sender, or the receiver) is closed
 * with the default linger and timed while the other side does nothing;
 * then the other side is closed.  Prints the median, 90th percentile and
 * maximum, and how many closes did not return CONNECT_OK.
 *
 *     tools/close-time [N] [CERTDIR]     (defaults: 200, tests/certs)
 *
 * Public API only.  SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static connect_opts *opts_for(bool tls, int role, const char *certs)
{
	connect_tls_config *cfg;
	connect_opts *o;
	char a[512], b[512];

	if (connect_opts_new(&o) != CONNECT_OK)
		exit(2);
	if (!tls)
		return o;
	if (connect_tls_config_new(&cfg, role) != CONNECT_OK)
		exit(2);
	if (role == CONNECT_TLS_SERVER) {
		snprintf(a, sizeof(a), "%s/server.pem", certs);
		snprintf(b, sizeof(b), "%s/server-key.pem", certs);
		if (connect_tls_config_cert_file(cfg, a, b) != CONNECT_OK)
			exit(2);
	} else {
		snprintf(a, sizeof(a), "%s/ca.pem", certs);
		if (connect_tls_config_ca_file(cfg, a) != CONNECT_OK ||
		    connect_opts_set_server_name(o, "localhost") != CONNECT_OK)
			exit(2);
	}
	connect_opts_set_tls(o, cfg);
	connect_tls_config_free(cfg);
	return o;
}

/* One run of n pairs; `sender`: time the sending side's close. */
static void run(bool tls, bool sender, int n, const char *certs)
{
	connect_opts *so = opts_for(tls, CONNECT_TLS_SERVER, certs);
	connect_opts *co = opts_for(tls, CONNECT_TLS_CLIENT, certs);
	const char *scheme = tls ? "tls" : "tcp";
	connect_listener *l;
	double *t = calloc((size_t)n, sizeof(*t));
	char url[128];
	int bad = 0, bad2 = 0;

	snprintf(url, sizeof(url), "%s://127.0.0.1:0", scheme);
	if (!t || connect_listen(&l, url, so) != CONNECT_OK)
		exit(2);
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme,
		 connect_listener_port(l));
	for (int i = 0; i < n; i++) {
		connect_conn *c, *s, *timed, *other;
		double t0;

		if (connect_dial(&c, url, co) != CONNECT_OK ||
		    connect_accept_wait(l, &s, 5000) != CONNECT_OK)
			exit(3);
		for (int k = 0; k < 50; k++) {
			connect_datagram *dg;
			char msg[64];

			snprintf(msg, sizeof(msg), "datagram %d", k);
			if (connect_datagram_new(&dg, 1, msg, strlen(msg)) ||
			    connect_send_wait(c, dg, 5000) != CONNECT_OK)
				exit(4);
		}
		for (int k = 0; k < 50; k++) {
			connect_datagram *dg;

			if (connect_recv_wait(s, &dg, 5000) != CONNECT_OK)
				exit(5);
			connect_datagram_free(dg);
		}
		timed = sender ? c : s;
		other = sender ? s : c;
		t0 = now_ms();
		int rc1 = connect_close(timed, -1, NULL);

		t[i] = now_ms() - t0;
		if (rc1 != CONNECT_OK && bad++ == 0)
			fprintf(stderr, "%s close: %s\n", scheme,
				connect_err_name(rc1));
		int rc = connect_close(other, -1, NULL);

		if (rc != CONNECT_OK) {
			if (bad2++ == 0)
				fprintf(stderr, "%s second close: %s\n", scheme,
					connect_err_name(rc));
		}
	}
	connect_listener_close(l);
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("%-3s %-8s closes %d: median %.3f ms, p90 %.3f ms, max %.3f ms;"
	       " not OK: %d (second close: %d)\n",
	       scheme, sender ? "sender" : "receiver", n, t[n / 2],
	       t[n * 9 / 10], t[n - 1], bad, bad2);
	free(t);
	connect_opts_free(so);
	connect_opts_free(co);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	const char *certs = argc > 2 ? argv[2] : "tests/certs";

	if (n < 1)
		n = 1;
	run(false, true, n, certs);
	run(false, false, n, certs);
	run(true, true, n, certs);
	run(true, false, n, certs);
	return 0;
}
