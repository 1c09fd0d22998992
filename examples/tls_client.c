/*
 * tls-client: the TLS twin of tcp-client.
 *
 *     tls-client ADDR DOMAIN CA [CERT KEY]
 *
 * Connects to ADDR over TLS and verifies the server's certificate against
 * the authorities in the PEM file CA and against DOMAIN (a DNS name, also
 * sent as SNI, or an IP address).  Verification fails closed: a certificate
 * from another authority or for another name ends the program with the
 * library's specific error.  With CERT and KEY (PEM) the client presents
 * its own certificate (mutual TLS).  Then, as tcp-client, sends
 * "Hello world!" with tag 65535, waits up to 5 seconds for the echo, prints
 * it and checks it.  Exits 0 on success, 1 on any failure, 2 on bad usage.
 *
 * The C counterpart of the tls-client example of the Rust crate `connect`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>

#include <connect.h>

#include "echo_common.h"

#define PROG "tls-client"

const char echo_prog[] = PROG;

int main(int argc, char **argv)
{
	connect_tls_config *cfg;
	connect_conn *conn;
	int rc;

	if ((argc != 4 && argc != 6) || argv[1][0] == '-') {
		fprintf(stderr,
			"usage: " PROG " ADDR DOMAIN CA [CERT KEY]\n"
			"  ADDR    host:port or [ipv6]:port of a TLS echo "
			"server\n"
			"  DOMAIN  name (or IP address) the server's "
			"certificate must match\n"
			"  CA      trusted certificate authorities (PEM)\n"
			"  CERT    client certificate chain (PEM), for mutual "
			"TLS\n"
			"  KEY     client private key (PEM)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	rc = connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_tls_config_new");
		return 1;
	}
	rc = connect_tls_config_ca_file(cfg, argv[3]);
	if (rc != CONNECT_OK) {
		echo_error(rc, "CA %s", argv[3]);
		connect_tls_config_free(cfg);
		return 1;
	}
	if (argc == 6) {
		rc = connect_tls_config_cert_file(cfg, argv[4], argv[5]);
		if (rc != CONNECT_OK) {
			echo_error(rc, "certificate %s / key %s", argv[4],
				   argv[5]);
			connect_tls_config_free(cfg);
			return 1;
		}
	}
	rc = connect_tls_client(&conn, argv[1], argv[2], cfg, NULL);
	/* The connection keeps its own reference. */
	connect_tls_config_free(cfg);
	if (rc != CONNECT_OK) {
		echo_error(rc, "TLS connection to %s as %s failed", argv[1],
			   argv[2]);
		return 1;
	}
	return echo_hello_session(conn, argv[2]);
}
