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
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <connect.h>

#define PROG "tls-echo-server"
/* How long an echo may wait for room in a client's outbound queue. */
#define SEND_TIMEOUT_MS 10000
/* Linger when closing a client that ended its stream cleanly. */
#define CLOSE_LINGER_MS 2000
/* Datagrams echoed per client per round, so one busy client cannot
 * starve the others. */
#define BATCH 1024

struct client {
	connect_conn *conn; /* NULL once closed */
	int fd;
	char peer[80];
	unsigned long long echoed;
};

struct server {
	connect_listener *l;
	struct client *c;
	size_t n, cap;
	unsigned long served; /* clients that came and went */
	int tls_failures;     /* failed handshakes already reported */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " ADDR CERT KEY [CA] [--exit-after N] "
		"[--verbose]\n"
		"  ADDR  host:port or [ipv6]:port to listen on (port 0: any)\n"
		"  CERT  server certificate chain (PEM)\n"
		"  KEY   server private key (PEM)\n"
		"  CA    trusted CAs (PEM): require client certificates\n"
		"  --exit-after N  exit after serving N clients\n"
		"  --verbose       print the library's log on stderr\n");
}

static void log_to_stderr(void *arg, int level, const char *id,
			  const char *msg)
{
	(void)arg;
	fprintf(stderr, PROG ": log(%d) %s: %s\n", level, id, msg);
}

static bool parse_count(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out > 0 &&
	       s[0] != '-';
}

static void close_client(struct client *cl, int linger_ms)
{
	size_t unsent = 0;
	int rc;

	rc = connect_close(cl->conn, linger_ms, &unsent);
	cl->conn = NULL;
	/* Without linger there is no clean end to wait for: "timed out"
	 * then only matters if something was left unwritten. */
	if (linger_ms == 0 && rc == CONNECT_ETIMEDOUT && unsent == 0)
		return;
	if (rc != CONNECT_OK || unsent > 0)
		fprintf(stderr,
			PROG ": %s: close: %s: %s (%zu datagram(s) not "
			"written)\n",
			cl->peer, connect_err_name(rc), connect_strerror(rc),
			unsent);
}

/* Report why a client's stream stopped, and close it. */
static void drop_client(struct server *srv, struct client *cl, int err)
{
	char detail[256];

	if (err == CONNECT_EEOF) {
		printf("%s: end of stream after %llu datagram(s) echoed\n",
		       cl->peer, cl->echoed);
		close_client(cl, CLOSE_LINGER_MS);
	} else {
		if (connect_conn_error(cl->conn, detail, sizeof(detail)) ==
			    CONNECT_OK ||
		    detail[0] == '\0')
			snprintf(detail, sizeof(detail), "no detail");
		printf("%s: error after %llu datagram(s) echoed: %s: %s "
		       "(%s)\n",
		       cl->peer, cl->echoed, connect_err_name(err),
		       connect_strerror(err), detail);
		close_client(cl, 0);
	}
	srv->served++;
}

static int add_client(struct server *srv, connect_conn *conn)
{
	struct client *cl;
	int fd;

	if (srv->n == srv->cap) {
		size_t cap = srv->cap ? srv->cap * 2 : 16;
		struct client *c = realloc(srv->c, cap * sizeof(*c));

		if (!c) {
			fprintf(stderr, PROG ": out of memory\n");
			connect_close(conn, 0, NULL);
			return -1;
		}
		srv->c = c;
		srv->cap = cap;
	}
	cl = &srv->c[srv->n];
	memset(cl, 0, sizeof(*cl));
	if (connect_conn_peer_addr(conn, cl->peer, sizeof(cl->peer)) !=
	    CONNECT_OK)
		snprintf(cl->peer, sizeof(cl->peer), "(unknown peer)");
	fd = connect_conn_fd(conn);
	if (fd < 0) {
		fprintf(stderr, PROG ": %s: connect_conn_fd: %s\n", cl->peer,
			connect_strerror(fd));
		connect_close(conn, 0, NULL);
		srv->served++;
		return 0;
	}
	cl->conn = conn;
	cl->fd = fd;
	srv->n++;
	printf("%s: connected\n", cl->peer);
	return 0;
}

/* Echo what the client sent so far (at most BATCH datagrams). */
static void serve_client(struct server *srv, struct client *cl)
{
	connect_datagram *dg;
	int i, rc;

	for (i = 0; i < BATCH; i++) {
		rc = connect_recv(cl->conn, &dg);
		if (rc == CONNECT_EAGAIN)
			return;
		if (rc != CONNECT_OK) {
			drop_client(srv, cl, rc);
			return;
		}
		/* Send the very datagram back: on success it belongs to the
		 * library again, on failure it is still ours. */
		rc = connect_send_wait(cl->conn, dg, SEND_TIMEOUT_MS);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			drop_client(srv, cl, rc);
			return;
		}
		cl->echoed++;
	}
}

/* Take every connection the listener has ready.  Returns 0 or -1. */
static int accept_clients(struct server *srv)
{
	connect_conn *conn;
	int rc;

	for (;;) {
		rc = connect_accept(srv->l, &conn);
		if (rc == CONNECT_EAGAIN)
			return 0;
		if (rc != CONNECT_OK) {
			fprintf(stderr, PROG ": accept: %s: %s\n",
				connect_err_name(rc), connect_strerror(rc));
			return -1;
		}
		if (add_client(srv, conn) < 0)
			return -1;
	}
}

/* Report handshakes that failed since the last call. */
static void report_tls_failures(struct server *srv)
{
	char why[256] = "";
	int n, last = CONNECT_OK;

	n = connect_listener_tls_failures(srv->l, &last, why, sizeof(why));
	if (n < 0) {
		fprintf(stderr, PROG ": connect_listener_tls_failures: %s\n",
			connect_strerror(n));
		return;
	}
	if (n == srv->tls_failures)
		return;
	printf("%d failed TLS handshake(s) so far; last: %s: %s (%s)\n", n,
	       connect_err_name(last), connect_strerror(last),
	       why[0] ? why : "no detail");
	srv->tls_failures = n;
}

/* Forget closed clients, keeping the others in order. */
static void compact(struct server *srv)
{
	size_t i, j = 0;

	for (i = 0; i < srv->n; i++)
		if (srv->c[i].conn)
			srv->c[j++] = srv->c[i];
	srv->n = j;
}

static int serve(struct server *srv, int sigfd, unsigned long exit_after)
{
	struct pollfd *pfd = NULL;
	size_t npfd = 0, i;
	int rc, lfd;

	lfd = connect_listener_fd(srv->l);
	if (lfd < 0) {
		fprintf(stderr, PROG ": connect_listener_fd: %s\n",
			connect_strerror(lfd));
		return -1;
	}
	for (;;) {
		if (npfd < srv->n + 2) {
			struct pollfd *p;

			npfd = srv->n + 2 + 16;
			p = realloc(pfd, npfd * sizeof(*p));
			if (!p) {
				fprintf(stderr, PROG ": out of memory\n");
				free(pfd);
				return -1;
			}
			pfd = p;
		}
		pfd[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (i = 0; i < srv->n; i++)
			pfd[i + 2] = (struct pollfd){ .fd = srv->c[i].fd,
						      .events = POLLIN };
		rc = poll(pfd, srv->n + 2, 1000);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			perror(PROG ": poll");
			free(pfd);
			return -1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				printf("caught %s, shutting down\n",
				       strsignal((int)si.ssi_signo));
			break;
		}
		for (i = 0; i < srv->n; i++)
			if (pfd[i + 2].revents)
				serve_client(srv, &srv->c[i]);
		compact(srv);
		report_tls_failures(srv);
		/* Accept after serving: the pollfd indexes above must still
		 * match the client array. */
		if (pfd[1].revents && accept_clients(srv) < 0) {
			free(pfd);
			return -1;
		}
		if (exit_after && srv->served >= exit_after) {
			printf("served %lu client(s), exiting\n", srv->served);
			break;
		}
	}
	free(pfd);
	return 0;
}

int main(int argc, char **argv)
{
	struct server srv = { 0 };
	unsigned long exit_after = 0;
	const char *pos[4];
	int npos = 0;
	connect_tls_config *cfg;
	char bound[128];
	sigset_t sigs;
	int i, rc, sigfd, status;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--exit-after") ||
		    !strcmp(argv[i], "--max-clients")) {
			if (i + 1 >= argc ||
			    !parse_count(argv[i + 1], &exit_after)) {
				usage();
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--verbose") ||
			   !strcmp(argv[i], "-v")) {
			connect_set_logger(log_to_stderr, NULL,
					   CONNECT_LOG_DEBUG);
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			usage();
			return 0;
		} else if (argv[i][0] == '-' || npos == 4) {
			usage();
			return 2;
		} else {
			pos[npos++] = argv[i];
		}
	}
	if (npos < 3) {
		usage();
		return 2;
	}
	/* Lines go out as they are printed, also into a pipe or a file. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Take SIGINT and SIGTERM through a descriptor in the poll set.
	 * Blocked before the library starts any thread, so every thread
	 * inherits the mask and none of them is picked to run a handler. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0) {
		perror(PROG ": sigprocmask");
		return 1;
	}
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		perror(PROG ": signalfd");
		return 1;
	}

	rc = connect_tls_config_new(&cfg, CONNECT_TLS_SERVER);
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": connect_tls_config_new: %s: %s\n",
			connect_err_name(rc), connect_strerror(rc));
		close(sigfd);
		return 1;
	}
	rc = connect_tls_config_cert_file(cfg, pos[1], pos[2]);
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": certificate %s / key %s: %s: %s\n",
			pos[1], pos[2], connect_err_name(rc),
			connect_strerror(rc));
		goto fail_cfg;
	}
	if (npos == 4) {
		rc = connect_tls_config_ca_file(cfg, pos[3]);
		if (rc != CONNECT_OK) {
			fprintf(stderr, PROG ": CA %s: %s: %s\n", pos[3],
				connect_err_name(rc), connect_strerror(rc));
			goto fail_cfg;
		}
		rc = connect_tls_config_client_auth(cfg,
						    CONNECT_TLS_AUTH_REQUIRED);
		if (rc != CONNECT_OK) {
			fprintf(stderr, PROG ": client auth: %s: %s\n",
				connect_err_name(rc), connect_strerror(rc));
			goto fail_cfg;
		}
	}
	rc = connect_tls_listen(&srv.l, pos[0], cfg, NULL);
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": cannot listen on %s: %s: %s\n", pos[0],
			connect_err_name(rc), connect_strerror(rc));
		goto fail_cfg;
	}
	/* The listener holds its own reference. */
	connect_tls_config_free(cfg);
	rc = connect_listener_addr(srv.l, bound, sizeof(bound));
	if (rc != CONNECT_OK) {
		fprintf(stderr, PROG ": connect_listener_addr: %s\n",
			connect_strerror(rc));
		connect_listener_close(srv.l);
		close(sigfd);
		return 1;
	}
	printf("listening on %s\n", bound);
	printf("TLS with %s; client certificates %s\n", pos[1],
	       npos == 4 ? "required" : "not requested");
	fflush(stdout);

	status = serve(&srv, sigfd, exit_after) < 0 ? 1 : 0;

	/* Stop accepting first, then let every client's echoes drain. */
	report_tls_failures(&srv);
	connect_listener_close(srv.l);
	for (i = 0; (size_t)i < srv.n; i++) {
		printf("%s: closing (server shutdown)\n", srv.c[i].peer);
		close_client(&srv.c[i], CLOSE_LINGER_MS);
	}
	free(srv.c);
	close(sigfd);
	printf("stopped\n");
	return status;

fail_cfg:
	connect_tls_config_free(cfg);
	close(sigfd);
	return 1;
}
