/*
 * sctp-client: the SCTP twin of tcp-client.
 *
 *     sctp-client ADDR [--udp-port N] [--peer-udp-port N]
 *
 * Connects over SCTP to ADDR ("127.0.0.1:7878", "[::1]:7878"), an
 * sctp-echo-server's address and SCTP port, sends one datagram with tag
 * 65535 and payload "Hello world!", waits up to 5 seconds for it to come
 * back, prints it and checks that tag and payload match.  SCTP runs over
 * UDP (RFC 6951): the server's stack listens on UDP port 9899 unless
 * --peer-udp-port says otherwise; ours takes any free UDP port unless
 * --udp-port names one.  Exits 0 on success, 1 on any failure, 2 on bad
 * usage.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>

#include <connect.h>

#include "echo_common.h"

#define PROG "sctp-client"

const char echo_prog[] = PROG;

int main(int argc, char **argv)
{
	const char *addr;
	connect_conn *conn;
	connect_opts *o;
	long udp, peer_udp;
	char url[300];
	int rc;

	if (!echo_sctp_client_args(argc, argv, 1, 1, &addr, &udp,
				   &peer_udp)) {
		fprintf(stderr,
			"usage: " PROG " ADDR [--udp-port N] "
			"[--peer-udp-port N]\n"
			"  ADDR                host:port or [ipv6]:port of an "
			"SCTP echo server\n"
			"  --udp-port N        our UDP port (default 0: any "
			"free one)\n"
			"  --peer-udp-port N   the server's UDP port (default "
			"9899)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	o = echo_sctp_opts(udp, peer_udp);
	if (!o)
		return 1;
	snprintf(url, sizeof(url), "sctp://%s", addr);
	rc = connect_dial(&conn, url, o);
	connect_opts_free(o);
	if (rc != CONNECT_OK) {
		echo_error(rc, "cannot connect to %s (UDP port %ld)", addr,
			   peer_udp);
		return 1;
	}
	return echo_hello_session(conn, NULL);
}
