/*
 * echo_common.c: the parts the example programs share (see echo_common.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <connect.h>

#include "echo_common.h"

/* ---- messages and small helpers --------------------------------------- */

void echo_warn(const char *fmt, ...)
{
	va_list ap;

	flockfile(stderr);
	fprintf(stderr, "%s: ", echo_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

static void echo_verror(int err, const char *detail, const char *fmt,
			va_list ap) __attribute__((format(printf, 3, 0)));

static void echo_verror(int err, const char *detail, const char *fmt,
			va_list ap)
{
	/* Locked so that the pieces stay on one line even with the library's
	 * log (--verbose) printing from other threads. */
	flockfile(stderr);
	fprintf(stderr, "%s: ", echo_prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s: %s%s%s%s\n", connect_err_name(err),
		connect_strerror(err), detail[0] ? " (" : "", detail,
		detail[0] ? ")" : "");
	funlockfile(stderr);
}

void echo_error_detail(int err, const char *detail, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	echo_verror(err, detail, fmt, ap);
	va_end(ap);
}

void echo_conn_error(connect_conn *conn, int err, const char *fmt, ...)
{
	char detail[256] = "";
	va_list ap;

	connect_conn_error(conn, detail, sizeof(detail));
	va_start(ap, fmt);
	echo_verror(err, detail, fmt, ap);
	va_end(ap);
}

bool echo_parse_count(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out > 0 &&
	       s[0] != '-';
}

int echo_close(connect_conn *conn, int linger_ms)
{
	size_t unsent = 0;
	int rc;

	rc = connect_close(conn, linger_ms, &unsent);
	if (rc == CONNECT_OK)
		return 0;
	echo_warn("close: %s: %s (%zu not written)", connect_err_name(rc),
		  connect_strerror(rc), unsent);
	return 1;
}

/* ---- clients: the hello round trip ------------------------------------ */

#define HELLO_TAG 65535
#define HELLO_MESSAGE "Hello world!"
#define HELLO_REPLY_TIMEOUT_MS 5000
#define HELLO_LINGER_MS 1000

/* Send the greeting and check the echo.  Returns 0 or 1. */
static int hello(connect_conn *conn)
{
	connect_datagram *dg, *reply;
	size_t len;
	int rc;

	rc = connect_datagram_new(&dg, HELLO_TAG, HELLO_MESSAGE,
				  strlen(HELLO_MESSAGE));
	if (rc != CONNECT_OK) {
		echo_warn("connect_datagram_new: %s", connect_strerror(rc));
		return 1;
	}
	rc = connect_send(conn, dg);
	if (rc != CONNECT_OK) {
		/* A datagram the library refused is still ours. */
		connect_datagram_free(dg);
		echo_conn_error(conn, rc, "send");
		return 1;
	}
	printf("sent: tag %u: %s\n", HELLO_TAG, HELLO_MESSAGE);

	rc = connect_recv_wait(conn, &reply, HELLO_REPLY_TIMEOUT_MS);
	if (rc != CONNECT_OK) {
		echo_conn_error(conn, rc, "waiting for the echo");
		return 1;
	}
	len = connect_datagram_size(reply);
	printf("received: tag %u: %.*s\n", connect_datagram_tag(reply),
	       (int)len, (const char *)connect_datagram_data(reply));
	if (connect_datagram_tag(reply) != HELLO_TAG ||
	    len != strlen(HELLO_MESSAGE) ||
	    memcmp(connect_datagram_data(reply), HELLO_MESSAGE, len) != 0) {
		echo_warn("the echo differs from what was sent "
			  "(tag %u, %zu bytes)",
			  connect_datagram_tag(reply), len);
		connect_datagram_free(reply);
		return 1;
	}
	connect_datagram_free(reply);
	return 0;
}

int echo_hello_session(connect_conn *conn, const char *tls_domain)
{
	char local[128], peer[128];
	int status;

	if (connect_conn_local_addr(conn, local, sizeof(local)) ==
		    CONNECT_OK &&
	    connect_conn_peer_addr(conn, peer, sizeof(peer)) == CONNECT_OK) {
		if (tls_domain)
			printf("connected (TLS, %s verified): %s -> %s\n",
			       tls_domain, local, peer);
		else
			printf("connected: %s -> %s\n", local, peer);
	}

	status = hello(conn);

	if (echo_close(conn, HELLO_LINGER_MS))
		status = 1;
	return status;
}

/* ---- SCTP --------------------------------------------------------------- */
/* A port number 0 .. 65535. */
static bool parse_port(const char *s, long *out)
{
	unsigned long v;

	if (!strcmp(s, "0")) {
		*out = 0;
		return true;
	}
	if (!echo_parse_count(s, &v) || v > 65535)
		return false;
	*out = (long)v;
	return true;
}


connect_opts *echo_sctp_opts(long udp_port, long peer_udp_port)
{
	connect_opts *o;
	int rc;

	rc = connect_opts_new(&o);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_opts_new");
		return NULL;
	}
	rc = connect_opts_set(o, CONNECT_OPT_SCTP_UDP_PORT, udp_port);
	if (rc == CONNECT_OK && peer_udp_port >= 0)
		rc = connect_opts_set(o, CONNECT_OPT_SCTP_PEER_UDP_PORT,
				      peer_udp_port);
	if (rc != CONNECT_OK) {
		echo_error(rc, "UDP ports %ld / %ld", udp_port, peer_udp_port);
		connect_opts_free(o);
		return NULL;
	}
	return o;
}

bool echo_sctp_client_args(int argc, char **argv, int min_pos, int max_pos,
			   const char **pos, long *udp_port,
			   long *peer_udp_port)
{
	int npos = 0;

	*udp_port = 0;
	*peer_udp_port = ECHO_SCTP_UDP_PORT;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--udp-port") ||
		    !strcmp(argv[i], "--peer-udp-port")) {
			long *v = argv[i][2] == 'u' ? udp_port : peer_udp_port;

			if (i + 1 >= argc || !parse_port(argv[i + 1], v))
				return false;
			i++;
		} else if (argv[i][0] == '-' || npos == max_pos) {
			return false;
		} else {
			pos[npos++] = argv[i];
		}
	}
	return npos >= min_pos;
}

/* ---- servers: options and signals ------------------------------------- */

static void server_usage(const struct echo_server_usage *u)
{
	fprintf(stderr,
		"usage: %s %s%s [--exit-after N] [--verbose]\n"
		"  ADDR  host:port or [ipv6]:port to listen on (port 0: any)\n"
		"%s%s"
		"  --exit-after N  exit after serving N clients\n"
		"  --verbose       print the library's log on stderr\n",
		echo_prog, u->synopsis, u->sctp ? " [--udp-port N]" : "",
		u->help,
		u->sctp ? "  --udp-port N    UDP port SCTP runs over (default "
			  "9899; 0: any)\n" : "");
}


static void log_to_stderr(void *arg, int level, const char *id,
			  const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s: log(%d) %s: %s\n", echo_prog, level, id, msg);
}

/* The command line.  Returns -1 to go on, or the status to exit with. */
static int server_args(int argc, char **argv, const struct echo_server_usage *u,
		       struct echo_server_setup *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->sigfd = -1;
	a->udp_port = ECHO_SCTP_UDP_PORT;
	for (i = 1; i < argc; i++) {
		if (u->sctp && !strcmp(argv[i], "--udp-port")) {
			if (i + 1 >= argc ||
			    !parse_port(argv[i + 1], &a->udp_port)) {
				server_usage(u);
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--exit-after") ||
		    !strcmp(argv[i], "--max-clients")) {
			if (i + 1 >= argc ||
			    !echo_parse_count(argv[i + 1], &a->exit_after)) {
				server_usage(u);
				return 2;
			}
			i++;
		} else if (!strcmp(argv[i], "--verbose") ||
			   !strcmp(argv[i], "-v")) {
			connect_set_logger(log_to_stderr, NULL,
					   CONNECT_LOG_DEBUG);
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			server_usage(u);
			return 0;
		} else if (argv[i][0] == '-' || a->nargs == u->max_args) {
			server_usage(u);
			return 2;
		} else {
			a->arg[a->nargs++] = argv[i];
		}
	}
	if (a->nargs < u->min_args) {
		server_usage(u);
		return 2;
	}
	return -1;
}

int echo_server_start(int argc, char **argv, const struct echo_server_usage *u,
		      struct echo_server_setup *s)
{
	sigset_t sigs;
	int rc;

	rc = server_args(argc, argv, u, s);
	if (rc >= 0)
		return rc;

	/* Lines go out as they are printed, also into a pipe or a file. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Take SIGINT and SIGTERM through a descriptor in the poll set.
	 * Blocked before the library starts any thread, so every thread
	 * inherits the mask and none of them is picked to run a handler. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0) {
		echo_warn("sigprocmask: %s", strerror(errno));
		return 1;
	}
	s->sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0) {
		echo_warn("signalfd: %s", strerror(errno));
		return 1;
	}
	return -1;
}

int echo_server_listening(connect_listener *l, int listen_rc,
			  const struct echo_server_setup *s)
{
	char bound[128];
	int rc;

	if (listen_rc != CONNECT_OK) {
		echo_error(listen_rc, "cannot listen on %s", s->arg[0]);
		close(s->sigfd);
		return -1;
	}
	rc = connect_listener_addr(l, bound, sizeof(bound));
	if (rc != CONNECT_OK) {
		echo_warn("connect_listener_addr: %s", connect_strerror(rc));
		connect_listener_close(l);
		close(s->sigfd);
		return -1;
	}
	printf("listening on %s\n", bound);
	return 0;
}

/* ---- servers: the poll loop ------------------------------------------- */

/*
 * One thread serves every client without ever blocking on one of them:
 * it polls each client's receive descriptor, or, while an echo waits for
 * room in that client's outbound queue, its send descriptor instead (and
 * reads nothing more from it: the client's own backpressure).  Closing a
 * client with a linger waits for its peer, so closes go to a second
 * thread; a client that does not read delays nobody.
 */

/* Linger when closing a client that ended its stream cleanly. */
#define CLOSE_LINGER_MS 2000
/* Datagrams echoed per client per round, so one busy client cannot
 * starve the others. */
#define BATCH 1024

struct client {
	connect_conn *conn; /* NULL once handed to the closer */
	int fd;             /* readable: something to receive */
	int sfd;            /* readable: room to send */
	connect_datagram *pending; /* an echo waiting for room */
	char peer[80];
	unsigned long long echoed;
};

/* A connection on its way out, for the closer thread. */
struct closing {
	connect_conn *conn;
	int linger_ms;
	char peer[80];
	struct closing *next;
};

struct closer {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct closing *head, **tailp;
	bool stop;
	bool running;
};

struct server {
	connect_listener *l;
	bool tls;
	struct client *c;
	size_t n, cap;
	unsigned long served; /* clients that came and went */
	int tls_failures;     /* failed handshakes already reported */
	struct closer closer;
};

static void close_now(connect_conn *conn, int linger_ms, const char *peer)
{
	size_t unsent = 0;
	int rc;

	rc = connect_close(conn, linger_ms, &unsent);
	/* Without linger there is no clean end to wait for: "timed out"
	 * then only matters if something was left unwritten. */
	if (linger_ms == 0 && rc == CONNECT_ETIMEDOUT && unsent == 0)
		return;
	if (rc != CONNECT_OK || unsent > 0)
		echo_warn("%s: close: %s: %s (%zu datagram(s) not written)",
			  peer, connect_err_name(rc), connect_strerror(rc),
			  unsent);
}

static void *closer_main(void *arg)
{
	struct closer *cl = arg;
	struct closing *x;

	pthread_mutex_lock(&cl->lock);
	for (;;) {
		while (!cl->head && !cl->stop)
			pthread_cond_wait(&cl->cv, &cl->lock);
		x = cl->head;
		if (!x)
			break; /* stopping, and nothing left */
		cl->head = x->next;
		if (!cl->head)
			cl->tailp = &cl->head;
		pthread_mutex_unlock(&cl->lock);
		close_now(x->conn, x->linger_ms, x->peer);
		free(x);
		pthread_mutex_lock(&cl->lock);
	}
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

static void closer_start(struct closer *cl)
{
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->cv, NULL);
	cl->tailp = &cl->head;
	cl->running = pthread_create(&cl->th, NULL, closer_main, cl) == 0;
	if (!cl->running)
		echo_warn("no closer thread: clients are closed in line");
}

/* Hand a connection to the closer (or close it here without one). */
static void close_client(struct server *srv, struct client *cl, int linger_ms)
{
	struct closer *c = &srv->closer;
	struct closing *x = c->running ? malloc(sizeof(*x)) : NULL;

	connect_datagram_free(cl->pending);
	cl->pending = NULL;
	if (!x) {
		close_now(cl->conn, linger_ms, cl->peer);
	} else {
		x->conn = cl->conn;
		x->linger_ms = linger_ms;
		snprintf(x->peer, sizeof(x->peer), "%s", cl->peer);
		x->next = NULL;
		pthread_mutex_lock(&c->lock);
		*c->tailp = x;
		c->tailp = &x->next;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->lock);
	}
	cl->conn = NULL;
}

/* Let the closer finish what it was given, and join it. */
static void closer_stop(struct closer *c)
{
	if (!c->running)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->th, NULL);
	c->running = false;
}

/* Report why a client's stream stopped, and close it. */
static void drop_client(struct server *srv, struct client *cl, int err)
{
	char detail[256];

	if (err == CONNECT_EEOF) {
		printf("%s: end of stream after %llu datagram(s) echoed\n",
		       cl->peer, cl->echoed);
		close_client(srv, cl, CLOSE_LINGER_MS);
	} else {
		if (connect_conn_error(cl->conn, detail, sizeof(detail)) ==
			    CONNECT_OK ||
		    detail[0] == '\0')
			snprintf(detail, sizeof(detail), "no detail");
		printf("%s: error after %llu datagram(s) echoed: %s: %s "
		       "(%s)\n",
		       cl->peer, cl->echoed, connect_err_name(err),
		       connect_strerror(err), detail);
		close_client(srv, cl, 0);
	}
	srv->served++;
}

static int add_client(struct server *srv, connect_conn *conn)
{
	struct client *cl;
	int fd, sfd;

	if (srv->n == srv->cap) {
		size_t cap = srv->cap ? srv->cap * 2 : 16;
		struct client *c = realloc(srv->c, cap * sizeof(*c));

		if (!c) {
			echo_warn("out of memory");
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
	sfd = fd < 0 ? fd : connect_conn_send_fd(conn);
	if (fd < 0 || sfd < 0) {
		echo_warn("%s: descriptors: %s", cl->peer,
			  connect_strerror(fd < 0 ? fd : sfd));
		connect_close(conn, 0, NULL);
		srv->served++;
		return 0;
	}
	cl->conn = conn;
	cl->fd = fd;
	cl->sfd = sfd;
	srv->n++;
	printf("%s: connected\n", cl->peer);
	return 0;
}

/* Send the very datagram back: on success it belongs to the library
 * again; on CONNECT_EAGAIN it waits as cl->pending.  False: dropped. */
static bool echo_one(struct server *srv, struct client *cl,
		     connect_datagram *dg)
{
	int rc = connect_send(cl->conn, dg);

	if (rc == CONNECT_EAGAIN) {
		cl->pending = dg;
		return true;
	}
	if (rc != CONNECT_OK) {
		connect_datagram_free(dg);
		drop_client(srv, cl, rc);
		return false;
	}
	cl->echoed++;
	return true;
}

/* Echo what the client sent so far (at most BATCH datagrams), never
 * waiting for room. */
static void serve_client(struct server *srv, struct client *cl)
{
	connect_datagram *dg;
	int i, rc;

	if (cl->pending) {
		dg = cl->pending;
		cl->pending = NULL;
		if (!echo_one(srv, cl, dg) || cl->pending)
			return;
	}
	for (i = 0; i < BATCH; i++) {
		rc = connect_recv(cl->conn, &dg);
		if (rc == CONNECT_EAGAIN)
			return;
		if (rc != CONNECT_OK) {
			drop_client(srv, cl, rc);
			return;
		}
		if (!echo_one(srv, cl, dg) || cl->pending)
			return;
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
			echo_error(rc, "accept");
			return -1;
		}
		if (add_client(srv, conn) < 0)
			return -1;
	}
}

/* Report handshakes that failed since the last call (TLS only). */
static void report_tls_failures(struct server *srv)
{
	char why[256] = "";
	int n, last = CONNECT_OK;

	if (!srv->tls)
		return;
	n = connect_listener_tls_failures(srv->l, &last, why, sizeof(why));
	if (n < 0) {
		echo_warn("connect_listener_tls_failures: %s",
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
		echo_warn("connect_listener_fd: %s", connect_strerror(lfd));
		return -1;
	}
	for (;;) {
		if (npfd < srv->n + 2) {
			struct pollfd *p;

			npfd = srv->n + 2 + 16;
			p = realloc(pfd, npfd * sizeof(*p));
			if (!p) {
				echo_warn("out of memory");
				free(pfd);
				return -1;
			}
			pfd = p;
		}
		pfd[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		/* A client with an echo waiting is polled for room only. */
		for (i = 0; i < srv->n; i++)
			pfd[i + 2] = (struct pollfd){
				.fd = srv->c[i].pending ? srv->c[i].sfd
							: srv->c[i].fd,
				.events = POLLIN
			};
		rc = poll(pfd, srv->n + 2, 1000);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			echo_warn("poll: %s", strerror(errno));
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

int echo_server_run(connect_listener *l, const struct echo_server_setup *s,
		    bool tls)
{
	struct server srv = { .l = l, .tls = tls };
	size_t i;
	int status;

	fflush(stdout);
	closer_start(&srv.closer);
	status = serve(&srv, s->sigfd, s->exit_after) < 0 ? 1 : 0;

	/* Stop accepting first, then let every client's echoes drain. */
	report_tls_failures(&srv);
	connect_listener_close(srv.l);
	for (i = 0; i < srv.n; i++) {
		if (!srv.c[i].conn)
			continue;
		printf("%s: closing (server shutdown)\n", srv.c[i].peer);
		close_client(&srv, &srv.c[i], CLOSE_LINGER_MS);
	}
	closer_stop(&srv.closer);
	free(srv.c);
	close(s->sigfd);
	printf("stopped\n");
	return status;
}

/* The server's TLS configuration: certificate chain and key, and with a CA
 * file, client certificates required.  Returns NULL after printing why. */
connect_tls_config *echo_server_tls_config(const struct echo_server_setup *a)
{
	connect_tls_config *cfg;
	int rc;

	rc = connect_tls_config_new(&cfg, CONNECT_TLS_SERVER);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_tls_config_new");
		return NULL;
	}
	rc = connect_tls_config_cert_file(cfg, a->arg[1], a->arg[2]);
	if (rc != CONNECT_OK) {
		echo_error(rc, "certificate %s / key %s", a->arg[1],
			   a->arg[2]);
		goto fail;
	}
	if (a->nargs == 4) {
		rc = connect_tls_config_ca_file(cfg, a->arg[3]);
		if (rc != CONNECT_OK) {
			echo_error(rc, "CA %s", a->arg[3]);
			goto fail;
		}
		rc = connect_tls_config_client_auth(cfg,
						    CONNECT_TLS_AUTH_REQUIRED);
		if (rc != CONNECT_OK) {
			echo_error(rc, "client auth");
			goto fail;
		}
	}
	return cfg;

fail:
	connect_tls_config_free(cfg);
	return NULL;
}
