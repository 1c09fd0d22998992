/*
 * echo_common.h: what the example programs share.
 *
 * The echo servers (tcp-, tls-, sctp- and dtls-sctp-echo-server) differ
 * only in how they make their listener: option parsing, signal handling, the poll()
 * loop over the listener and its clients, and the shutdown live here.  The
 * clients (tcp-, tls-, sctp- and dtls-sctp-client) differ only in how they
 * connect: the
 * "Hello world!" round trip and the close live here.  Error messages all
 * have the form "PROG: what: CONNECT_E...: text (detail)".
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef EXAMPLES_ECHO_COMMON_H
#define EXAMPLES_ECHO_COMMON_H

#include <stdbool.h>

#include <connect.h>

/* The program's name, prefixed to every message; each program defines it. */
extern const char echo_prog[];

/* Print "PROG: <fmt...>\n" on stderr. */
void echo_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "PROG: <fmt...>: NAME: text\n" on stderr for the library code err,
 * followed by " (detail)" when detail is not empty. */
void echo_error_detail(int err, const char *detail, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define echo_error(err, ...) echo_error_detail((err), "", __VA_ARGS__)

/* As echo_error_detail(), with the connection's own account of the failure
 * (connect_conn_error()) as the detail. */
void echo_conn_error(connect_conn *conn, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A positive decimal count ("0", "-1", "12x" and overflow are refused). */
bool echo_parse_count(const char *s, unsigned long *out);

/* Close conn, waiting up to linger_ms for what is still queued.  Returns 0,
 * or 1 after printing why the close failed. */
int echo_close(connect_conn *conn, int linger_ms);

/* ---- SCTP ------------------------------------------------------------- */

/* The UDP port an SCTP echo server takes by default (sctp-tunneling). */
#define ECHO_SCTP_UDP_PORT 9899

/*
 * Options with the SCTP stack's UDP port (CONNECT_OPT_SCTP_UDP_PORT) and,
 * when peer_udp_port >= 0, the peer's.  NULL after printing why.
 */
connect_opts *echo_sctp_opts(long udp_port, long peer_udp_port);

/*
 * An SCTP client's command line: up to max_pos positional arguments into
 * pos[], and "--udp-port N" (default 0: any free port) and
 * "--peer-udp-port N" (default ECHO_SCTP_UDP_PORT).  False on anything
 * else, or fewer than min_pos arguments.
 */
bool echo_sctp_client_args(int argc, char **argv, int min_pos, int max_pos,
			   const char **pos, long *udp_port,
			   long *peer_udp_port);

/* ---- clients ---------------------------------------------------------- */

/* Print the connection's addresses ("connected: local -> peer", or for a
 * TLS connection whose server was verified as tls_domain "connected (TLS,
 * tls_domain verified): ..."), send "Hello world!" with tag 65535, check the
 * echo and close conn.  Returns the exit status: 0, or 1 on any failure. */
int echo_hello_session(connect_conn *conn, const char *tls_domain);

/* ---- servers ---------------------------------------------------------- */

#define ECHO_MAX_ARGS 4

struct echo_server_usage {
	const char *synopsis; /* the positional arguments: "ADDR CERT KEY" */
	const char *help;     /* a line for each beyond ADDR, or "" */
	int min_args, max_args;
	bool sctp;            /* takes --udp-port N */
};

struct echo_server_setup {
	const char *arg[ECHO_MAX_ARGS]; /* arg[0] is ADDR */
	int nargs;
	unsigned long exit_after; /* 0: serve until SIGINT/SIGTERM */
	int sigfd;		  /* SIGINT and SIGTERM arrive here */
	long udp_port;            /* SCTP: --udp-port, or the default 9899 */
};

/* The TLS servers' configuration (tls-, dtls-sctp- and mt-echo-server): the
 * certificate chain and key of arg[1] and arg[2], and with a CA file in
 * arg[3], client certificates required.  NULL after printing why. */
connect_tls_config *echo_server_tls_config(const struct echo_server_setup *a);

/*
 * Parse the command line: positional arguments, --exit-after N (alias
 * --max-clients), --verbose/-v (sets the library's logger), --help/-h and,
 * for an SCTP server (u->sctp), --udp-port N.
 * Then make stdout line-buffered and block SIGINT and SIGTERM, to be taken
 * through a signalfd in the poll set; this comes before the library starts
 * any thread, so every thread inherits the mask.  Returns -1 to go on, or
 * the status to exit with: 0 after --help, 2 after the usage text for bad
 * usage, 1 if the signals could not be set up.
 */
int echo_server_start(int argc, char **argv, const struct echo_server_usage *u,
		      struct echo_server_setup *s);

/*
 * Check listen_rc, what making the listener returned, and print "listening
 * on <address as bound>".  On failure prints why, closes l (if made) and the
 * signalfd and returns -1; otherwise 0.
 */
int echo_server_listening(connect_listener *l, int listen_rc,
			  const struct echo_server_setup *s);

/*
 * Serve clients on l until a signal comes or, with exit_after, that many
 * clients have come and gone; then close l, every client and the signalfd.
 * With tls, failed handshakes are reported as they are counted.  Returns the
 * exit status: 0, or 1 after a failure of the server itself.
 */
int echo_server_run(connect_listener *l, const struct echo_server_setup *s,
		    bool tls);

#endif /* EXAMPLES_ECHO_COMMON_H */
