/*
 * dtls-sctp-client: the DTLS-over-SCTP twin of tls-client.
 *
 *     dtls-sctp-client ADDR DOMAIN CA [CERT KEY] [--udp-port N]
 *                      [--peer-udp-port N]
 *
 * Connects over SCTP to ADDR (a dtls-sctp-echo-server's address and SCTP
 * port), runs DTLS 1.2 over it (RFC 6083) and verifies the server's
 * certificate against the authorities in CA and against DOMAIN; with CERT
 * and KEY the client presents its own certificate.  Verification fails
 * closed, with the library's specific error.  Then, as tcp-client, sends
 * "Hello world!" with tag 65535 and checks the echo.  SCTP runs over UDP
 * (RFC 6951): the server's stack is on UDP port 9899 unless
 * --peer-udp-port says otherwise; ours takes any free UDP port unless
 * --udp-port names one.  Exits 0 on success, 1 on any failure, 2 on bad
 * usage.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>

#include <connect.h>

#include "echo_common.h"

#define PROG "dtls-sctp-client"

const char echo_prog[] = PROG;

int main(int argc, char **argv)
{
	const char *pos[5] = { NULL };
	connect_tls_config *cfg;
	connect_conn *conn;
	connect_opts *o;
	long udp, peer_udp;
	char url[300];
	int rc, npos;

	if (!echo_sctp_client_args(argc, argv, 3, 5, pos, &udp, &peer_udp) ||
	    (pos[3] != NULL) != (pos[4] != NULL)) {
		fprintf(stderr,
			"usage: " PROG " ADDR DOMAIN CA [CERT KEY] "
			"[--udp-port N] [--peer-udp-port N]\n"
			"  ADDR    host:port or [ipv6]:port of a DTLS-over-SCTP "
			"echo server\n"
			"  DOMAIN  name (or IP address) the server's "
			"certificate must match\n"
			"  CA      trusted certificate authorities (PEM)\n"
			"  CERT    client certificate chain (PEM)\n"
			"  KEY     client private key (PEM)\n"
			"  --udp-port N        our UDP port (default 0: any "
			"free one)\n"
			"  --peer-udp-port N   the server's UDP port (default "
			"9899)\n");
		return 2;
	}
	npos = pos[3] ? 5 : 3;
	setvbuf(stdout, NULL, _IOLBF, 0);

	rc = connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_tls_config_new");
		return 1;
	}
	rc = connect_tls_config_ca_file(cfg, pos[2]);
	if (rc != CONNECT_OK) {
		echo_error(rc, "CA %s", pos[2]);
		connect_tls_config_free(cfg);
		return 1;
	}
	if (npos == 5) {
		rc = connect_tls_config_cert_file(cfg, pos[3], pos[4]);
		if (rc != CONNECT_OK) {
			echo_error(rc, "certificate %s / key %s", pos[3],
				   pos[4]);
			connect_tls_config_free(cfg);
			return 1;
		}
	}
	o = echo_sctp_opts(udp, peer_udp);
	if (!o) {
		connect_tls_config_free(cfg);
		return 1;
	}
	/* The options, then the connection, keep their own references. */
	connect_opts_set_tls(o, cfg);
	connect_tls_config_free(cfg);
	rc = connect_opts_set_server_name(o, pos[1]);
	if (rc != CONNECT_OK) {
		echo_error(rc, "server name %s", pos[1]);
		connect_opts_free(o);
		return 1;
	}
	snprintf(url, sizeof(url), "dtls+sctp://%s", pos[0]);
	rc = connect_dial(&conn, url, o);
	connect_opts_free(o);
	if (rc != CONNECT_OK) {
		echo_error(rc, "DTLS over SCTP to %s as %s failed", pos[0],
			   pos[1]);
		return 1;
	}
	return echo_hello_session(conn, pos[1]);
}
