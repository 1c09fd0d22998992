/*
 * tcp-client: send "Hello world!" to an echo server and check the echo.
 *
 *     tcp-client ADDR
 *
 * Connects to ADDR ("127.0.0.1:7878", "[::1]:7878", "localhost:7878"),
 * sends one datagram with tag 65535 and payload "Hello world!", waits up to
 * 5 seconds for it to come back, prints it and checks that tag and payload
 * match.  Exits 0 on success, 1 on any failure, 2 on bad usage.
 *
 * The C counterpart of the tcp-client example of the Rust crate `connect`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>

#include <connect.h>

#include "echo_common.h"

#define PROG "tcp-client"

const char echo_prog[] = PROG;

int main(int argc, char **argv)
{
	connect_conn *conn;
	int rc;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: " PROG " ADDR\n"
				"  ADDR  host:port or [ipv6]:port of an echo "
				"server\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	rc = connect_tcp_client(&conn, argv[1], NULL);
	if (rc != CONNECT_OK) {
		echo_error(rc, "cannot connect to %s", argv[1]);
		return 1;
	}
	return echo_hello_session(conn, NULL);
}
