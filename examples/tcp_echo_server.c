/*
 * tcp-echo-server: send every datagram back to the client that sent it.
 *
 *     tcp-echo-server ADDR [--exit-after N] [--verbose]
 *
 * Listens on ADDR ("127.0.0.1:7878", "[::1]:0", "0.0.0.0:7878"...; port 0
 * picks a free port) and prints "listening on <address as bound>" once, so
 * a script can learn the port.  Serves any number of clients at once from
 * one thread: a poll() loop over the listener's descriptor and every
 * connection's descriptor.  Each datagram is echoed unchanged (same object,
 * same tag).  A client that ends its stream or fails is reported and closed;
 * the others keep being served.
 *
 * SIGINT or SIGTERM closes everything and exits with status 0.  With
 * --exit-after N the server also exits by itself once N clients have come
 * and gone.  --verbose prints the library's log messages on stderr.
 *
 * The C counterpart of the tcp-echo-server example of the Rust crate
 * `connect`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <connect.h>

#include "echo_common.h"

const char echo_prog[] = "tcp-echo-server";

static const struct echo_server_usage usage = {
	.synopsis = "ADDR",
	.help = "",
	.min_args = 1,
	.max_args = 1,
};

int main(int argc, char **argv)
{
	struct echo_server_setup setup;
	connect_listener *l = NULL;
	int rc;

	rc = echo_server_start(argc, argv, &usage, &setup);
	if (rc >= 0)
		return rc;
	rc = connect_tcp_listen(&l, setup.arg[0], NULL);
	if (echo_server_listening(l, rc, &setup) < 0)
		return 1;
	return echo_server_run(l, &setup, false);
}
