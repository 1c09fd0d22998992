/*
 * tls-echo-server: the TLS twin of tcp-echo-server.
 *
 *     tls-echo-server ADDR CERT KEY [CA] [--exit-after N] [--verbose]
 *
 * Listens for TLS on ADDR with the certificate chain CERT and private key
 * KEY (PEM files).  With CA (a PEM file of trusted authorities) every client
 * must present a certificate issued by it (client authentication REQUIRED:
 * mutual TLS).  Prints "listening on <address as bound>" once, then serves
 * any number of clients at once from one poll() loop, echoing each
 * datagram unchanged.  Handshakes run on library threads: only clients
 * that completed one are accepted; failed handshakes are reported from the
 * listener's failure counter.
 *
 * SIGINT or SIGTERM closes everything and exits with status 0.  With
 * --exit-after N the server also exits by itself once N clients have come
 * and gone.  --verbose prints the library's log messages on stderr.
 *
 * The C counterpart of the tls-echo-server example of the Rust crate
 * `connect`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>
#include <unistd.h>

#include <connect.h>

#include "echo_common.h"

const char echo_prog[] = "tls-echo-server";

static const struct echo_server_usage usage = {
	.synopsis = "ADDR CERT KEY [CA]",
	.help = "  CERT  server certificate chain (PEM)\n"
		"  KEY   server private key (PEM)\n"
		"  CA    trusted CAs (PEM): require client certificates\n",
	.min_args = 3,
	.max_args = 4,
};

int main(int argc, char **argv)
{
	struct echo_server_setup setup;
	connect_tls_config *cfg;
	connect_listener *l = NULL;
	int rc;

	rc = echo_server_start(argc, argv, &usage, &setup);
	if (rc >= 0)
		return rc;
	cfg = echo_server_tls_config(&setup);
	if (!cfg) {
		close(setup.sigfd);
		return 1;
	}
	rc = connect_tls_listen(&l, setup.arg[0], cfg, NULL);
	/* The listener holds its own reference. */
	connect_tls_config_free(cfg);
	if (echo_server_listening(l, rc, &setup) < 0)
		return 1;
	printf("TLS with %s; client certificates %s\n", setup.arg[1],
	       setup.nargs == 4 ? "required" : "not requested");
	return echo_server_run(l, &setup, true);
}
