/*
 * dtls-sctp-echo-server: the DTLS-over-SCTP twin of tls-echo-server.
 *
 *     dtls-sctp-echo-server ADDR CERT KEY [CA] [--udp-port N]
 *                           [--exit-after N] [--verbose]
 *
 * Listens for DTLS 1.2 over SCTP (RFC 6083) on ADDR (its SCTP port; 0
 * picks a free one) with the certificate chain CERT and private key KEY
 * (PEM).  With CA (a PEM file of trusted authorities) every client must
 * present a certificate issued by it (mutual authentication).  SCTP runs
 * over UDP (RFC 6951), by default on UDP port 9899 (--udp-port; 0: any
 * free port).  Prints "listening on <address as bound>" once, then serves
 * any number of clients at once from one poll() loop, echoing each
 * datagram unchanged; failed handshakes are reported from the listener's
 * failure counter.
 *
 * SIGINT or SIGTERM closes everything and exits with status 0.  With
 * --exit-after N the server also exits by itself once N clients have come
 * and gone.  --verbose prints the library's log messages on stderr.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>
#include <unistd.h>

#include <connect.h>

#include "echo_common.h"

const char echo_prog[] = "dtls-sctp-echo-server";

static const struct echo_server_usage usage = {
	.synopsis = "ADDR CERT KEY [CA]",
	.help = "  CERT  server certificate chain (PEM)\n"
		"  KEY   server private key (PEM)\n"
		"  CA    trusted CAs (PEM): require client certificates\n",
	.min_args = 3,
	.max_args = 4,
	.sctp = true,
};

int main(int argc, char **argv)
{
	struct echo_server_setup setup;
	connect_tls_config *cfg;
	connect_listener *l = NULL;
	connect_opts *o;
	char url[300];
	int rc;

	rc = echo_server_start(argc, argv, &usage, &setup);
	if (rc >= 0)
		return rc;
	cfg = echo_server_tls_config(&setup);
	o = cfg ? echo_sctp_opts(setup.udp_port, -1) : NULL;
	if (!o) {
		connect_tls_config_free(cfg);
		close(setup.sigfd);
		return 1;
	}
	/* The options, then the listener, hold their own references. */
	connect_opts_set_tls(o, cfg);
	connect_tls_config_free(cfg);
	snprintf(url, sizeof(url), "dtls+sctp://%s", setup.arg[0]);
	rc = connect_listen(&l, url, o);
	connect_opts_free(o);
	if (echo_server_listening(l, rc, &setup) < 0)
		return 1;
	if (setup.udp_port)
		printf("SCTP over UDP port %ld\n", setup.udp_port);
	printf("DTLS with %s; client certificates %s\n", setup.arg[1],
	       setup.nargs == 4 ? "required" : "not requested");
	return echo_server_run(l, &setup, true);
}
