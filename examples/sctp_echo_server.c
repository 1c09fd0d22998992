/*
 * sctp-echo-server: the SCTP twin of tcp-echo-server.
 *
 *     sctp-echo-server ADDR [--udp-port N] [--exit-after N] [--verbose]
 *
 * Listens for SCTP on ADDR ("127.0.0.1:7878", "[::1]:0"...; port 0 picks a
 * free SCTP port) and prints "listening on <address as bound>" once, then
 * the UDP port its SCTP runs over: this machine's kernel has no SCTP, so
 * the library runs usrsctp over UDP (RFC 6951), by default on UDP port
 * 9899 (--udp-port; 0: any free port).  Serves any number of clients at
 * once from one poll() loop, echoing each datagram unchanged; the clients'
 * UDP ports are learned from their packets.
 *
 * SIGINT or SIGTERM closes everything and exits with status 0.  With
 * --exit-after N the server also exits by itself once N clients have come
 * and gone.  --verbose prints the library's log messages on stderr.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>

#include <connect.h>

#include "echo_common.h"

const char echo_prog[] = "sctp-echo-server";

static const struct echo_server_usage usage = {
	.synopsis = "ADDR",
	.help = "",
	.min_args = 1,
	.max_args = 1,
	.sctp = true,
};

int main(int argc, char **argv)
{
	struct echo_server_setup setup;
	connect_listener *l = NULL;
	connect_opts *o;
	char url[300];
	int rc;

	rc = echo_server_start(argc, argv, &usage, &setup);
	if (rc >= 0)
		return rc;
	o = echo_sctp_opts(setup.udp_port, -1);
	if (!o)
		return 1;
	snprintf(url, sizeof(url), "sctp://%s", setup.arg[0]);
	rc = connect_listen(&l, url, o);
	connect_opts_free(o);
	if (echo_server_listening(l, rc, &setup) < 0)
		return 1;
	if (setup.udp_port)
		printf("SCTP over UDP port %ld\n", setup.udp_port);
	return echo_server_run(l, &setup, false);
}
