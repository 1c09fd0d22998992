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
#include <string.h>

#include <connect.h>

#define PROG "tcp-client"
#define TAG 65535
#define MESSAGE "Hello world!"
#define REPLY_TIMEOUT_MS 5000
#define LINGER_MS 1000

/* Print a connection failure with the library's detail, if any. */
static void conn_fail(connect_conn *conn, const char *what, int err)
{
	char detail[256] = "";

	connect_conn_error(conn, detail, sizeof(detail));
	fprintf(stderr, PROG ": %s: %s: %s%s%s%s\n", what,
		connect_err_name(err), connect_strerror(err),
		detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
}

/* Send the greeting and check the echo.  Returns 0 or 1. */
static int hello(connect_conn *conn)
{
	connect_datagram *dg, *reply;
	size_t len;
	int rc;

	rc = connect_datagram_new(&dg, TAG, MESSAGE, strlen(MESSAGE));
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": connect_datagram_new: %s\n",
			connect_strerror(rc));
		return 1;
	}
	rc = connect_send(conn, dg);
	if (rc != CONNECT_OK) {
		/* A datagram the library refused is still ours. */
		connect_datagram_free(dg);
		conn_fail(conn, "send", rc);
		return 1;
	}
	printf("sent: tag %u: %s\n", TAG, MESSAGE);

	rc = connect_recv_wait(conn, &reply, REPLY_TIMEOUT_MS);
	if (rc != CONNECT_OK) {
		conn_fail(conn, "waiting for the echo", rc);
		return 1;
	}
	len = connect_datagram_size(reply);
	printf("received: tag %u: %.*s\n", connect_datagram_tag(reply),
	       (int)len, (const char *)connect_datagram_data(reply));
	if (connect_datagram_tag(reply) != TAG || len != strlen(MESSAGE) ||
	    memcmp(connect_datagram_data(reply), MESSAGE, len) != 0) {
		fprintf(stderr,
			PROG ": the echo differs from what was sent "
			"(tag %u, %zu bytes)\n",
			connect_datagram_tag(reply), len);
		connect_datagram_free(reply);
		return 1;
	}
	connect_datagram_free(reply);
	return 0;
}

int main(int argc, char **argv)
{
	connect_conn *conn;
	char local[128], peer[128];
	size_t unsent = 0;
	int rc, status;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: " PROG " ADDR\n"
				"  ADDR  host:port or [ipv6]:port of an echo "
				"server\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	rc = connect_tcp_client(&conn, argv[1], NULL);
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": cannot connect to %s: %s: %s\n",
			argv[1], connect_err_name(rc), connect_strerror(rc));
		return 1;
	}
	if (connect_conn_local_addr(conn, local, sizeof(local)) ==
		    CONNECT_OK &&
	    connect_conn_peer_addr(conn, peer, sizeof(peer)) == CONNECT_OK)
		printf("connected: %s -> %s\n", local, peer);

	status = hello(conn);

	rc = connect_close(conn, LINGER_MS, &unsent);
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": close: %s: %s (%zu not written)\n",
			connect_err_name(rc), connect_strerror(rc), unsent);
		status = 1;
	}
	return status;
}
