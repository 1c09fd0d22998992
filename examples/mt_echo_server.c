/*
 * mt-echo-server: an echo server for many clients, with a pool of worker
 * threads over one inbox.
 *
 *     mt-echo-server ADDR [--workers N] [--tls CERT KEY [CA]]
 *                    [--max-conns N] [--quiet] [--exit-after N] [--verbose]
 *
 * Listens on ADDR (TCP, or TLS with --tls: certificate chain CERT, key KEY,
 * and with CA client certificates required) and attaches every client to
 * one inbox (connect_inbox_new, connect_listener_set_inbox).  N worker
 * threads (default 4) pop items and echo each datagram unchanged on the
 * connection it came from (connect_send of the very datagram: no copy).
 * The inbox runs in strand mode, so each client's datagrams are echoed one
 * at a time, in order, while other clients' go to the other workers.  Each
 * client's session state (a counter here) hangs on its connection's user
 * pointer: no lookup table.  Ended clients are closed by the library.  A
 * client whose send queue is full (it does not read its echoes) holds one
 * worker for at most 2 s before it is dropped.
 *
 * Prints "listening on <address as bound>", then a line per client that
 * comes and goes (not with --quiet), and at the end the totals.  With
 * --max-conns N at most N clients are served at once (the others wait in
 * the kernel's backlog).  SIGINT or SIGTERM ends it with status 0; with
 * --exit-after N it also ends by itself once N clients have come and gone.
 *
 * This is the server the README tells users to write.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <connect.h>

#include "echo_common.h"

const char echo_prog[] = "mt-echo-server";

#define MAX_WORKERS 256
/* How long a worker waits for a client that does not read its echoes. */
#define SEND_WAIT_MS 2000

static const struct echo_server_usage usage = {
	.synopsis = "ADDR [--workers N] [--tls CERT KEY [CA]] [--max-conns N] "
		    "[--quiet]",
	.help = "  --workers N    worker threads (default 4)\n"
		"  --tls CERT KEY [CA]  TLS with this certificate chain and "
		"key (PEM);\n"
		"                 with CA, client certificates are required\n"
		"  --max-conns N  serve at most N clients at once\n"
		"  --quiet        no line per client\n",
	.min_args = 1,
	.max_args = 4,
};

/* What a worker keeps per client, on the connection's user pointer; also
 * listed, so that the sessions of clients still connected at the end (the
 * inbox closes them without END items) are freed too. */
struct session {
	char peer[80];
	uint64_t echoed;
	struct session *prev, *next;
};

struct server {
	connect_inbox *ib;
	bool quiet;
	_Atomic uint64_t clients, echoed, failed;
	pthread_mutex_t lock; /* the session list */
	struct session *sessions;
};

static void session_list(struct server *srv, struct session *ss, bool add)
{
	pthread_mutex_lock(&srv->lock);
	if (add) {
		ss->next = srv->sessions;
		if (ss->next)
			ss->next->prev = ss;
		srv->sessions = ss;
	} else {
		if (ss->prev)
			ss->prev->next = ss->next;
		else
			srv->sessions = ss->next;
		if (ss->next)
			ss->next->prev = ss->prev;
	}
	pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *arg)
{
	struct server *srv = arg;
	connect_item it;
	int rc;

	while ((rc = connect_inbox_pop_wait(srv->ib, &it, -1)) == CONNECT_OK) {
		struct session *ss = it.user;

		switch (it.kind) {
		case CONNECT_ITEM_ATTACHED:
			ss = calloc(1, sizeof(*ss));
			if (!ss) {
				echo_warn("out of memory: dropping a client");
				connect_close(it.conn, 0, NULL);
				break;
			}
			connect_conn_peer_addr(it.conn, ss->peer,
					       sizeof(ss->peer));
			connect_conn_set_user(it.conn, ss);
			session_list(srv, ss, true);
			atomic_fetch_add(&srv->clients, 1);
			if (!srv->quiet)
				printf("client %s: connected\n", ss->peer);
			break;
		case CONNECT_ITEM_DATAGRAM:
			/* Echo the datagram itself; on failure it is ours
			 * still.  While the client's send queue is full, wait
			 * for it to read (its next datagrams wait meanwhile:
			 * strand); after SEND_WAIT_MS without room, drop it
			 * (its END item follows). */
			rc = connect_send(it.conn, it.dg);
			if (rc == CONNECT_EAGAIN)
				rc = connect_send_wait(it.conn, it.dg,
						       SEND_WAIT_MS);
			if (rc != CONNECT_OK) {
				connect_datagram_free(it.dg);
				if (rc == CONNECT_ETIMEDOUT)
					connect_close(it.conn, 0, NULL);
				break;
			}
			if (ss)
				ss->echoed++; /* strand: one worker at a time */
			atomic_fetch_add(&srv->echoed, 1);
			break;
		case CONNECT_ITEM_END:
			if (it.code != CONNECT_EEOF)
				atomic_fetch_add(&srv->failed, 1);
			if (ss && !srv->quiet) {
				if (it.code == CONNECT_EEOF)
					printf("client %s: %llu echoed, "
					       "closed\n",
					       ss->peer,
					       (unsigned long long)ss->echoed);
				else
					echo_conn_error(it.conn, it.code,
							"client %s: %llu "
							"echoed, ended",
							ss->peer,
							(unsigned long long)
								ss->echoed);
			}
			/* The last item of this client (strand mode: no
			 * other worker holds one). */
			connect_conn_set_user(it.conn, NULL);
			if (ss) {
				session_list(srv, ss, false);
				free(ss);
			}
			break;
		}
		connect_item_done(&it);
	}
	if (rc != CONNECT_ECLOSED)
		echo_error(rc, "connect_inbox_pop_wait");
	return NULL;
}

/* Take our own options out of argv (the shared parser knows the rest). */
static int own_args(int *argc, char **argv, unsigned long *workers,
		    unsigned long *max_conns, bool *tls, bool *quiet)
{
	int n = 1;

	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--workers") ||
		    !strcmp(argv[i], "--max-conns")) {
			unsigned long *v = argv[i][2] == 'w' ? workers
							     : max_conns;

			if (i + 1 >= *argc || !echo_parse_count(argv[i + 1], v))
				return -1;
			i++;
		} else if (!strcmp(argv[i], "--tls")) {
			*tls = true;
		} else if (!strcmp(argv[i], "--quiet")) {
			*quiet = true;
		} else {
			argv[n++] = argv[i];
		}
	}
	*argc = n;
	argv[n] = NULL;
	return *workers >= 1 && *workers <= MAX_WORKERS ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct echo_server_setup setup;
	struct server srv = { 0 };
	unsigned long workers = 4, max_conns = 0;
	pthread_t th[MAX_WORKERS];
	connect_listener *l = NULL;
	connect_opts *opts = NULL;
	bool tls = false, stop = false;
	int rc, status = 0;
	unsigned long started = 0;

	pthread_mutex_init(&srv.lock, NULL);

	if (own_args(&argc, argv, &workers, &max_conns, &tls, &srv.quiet) <
	    0) {
		echo_warn("bad --workers (1..%d) or --max-conns", MAX_WORKERS);
		return 2;
	}
	rc = echo_server_start(argc, argv, &usage, &setup);
	if (rc >= 0)
		return rc;
	if (tls != (setup.nargs >= 3)) {
		echo_warn("--tls takes CERT KEY [CA]; other arguments: ADDR "
			  "only");
		close(setup.sigfd);
		return 2;
	}
	if (connect_opts_new(&opts) != CONNECT_OK ||
	    connect_opts_set(opts, CONNECT_OPT_INBOX_MAX_CONNS,
			     (int64_t)max_conns) != CONNECT_OK) {
		echo_warn("options: out of memory");
		return 1;
	}
	rc = connect_inbox_new(&srv.ib, CONNECT_INBOX_STRAND, opts);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_inbox_new");
		return 1;
	}
	if (tls) {
		connect_tls_config *cfg = echo_server_tls_config(&setup);

		rc = cfg ? connect_tls_listen(&l, setup.arg[0], cfg, NULL)
			 : CONNECT_ETLSCONFIG;
		connect_tls_config_free(cfg);
	} else {
		rc = connect_tcp_listen(&l, setup.arg[0], NULL);
	}
	connect_opts_free(opts);
	if (echo_server_listening(l, rc, &setup) < 0) {
		connect_inbox_close(srv.ib, 0, NULL);
		return 1;
	}
	rc = connect_listener_set_inbox(l, srv.ib);
	if (rc != CONNECT_OK) {
		echo_error(rc, "connect_listener_set_inbox");
		status = 1;
		stop = true;
	}
	for (; !stop && started < workers; started++) {
		rc = pthread_create(&th[started], NULL, worker_main, &srv);
		if (rc) {
			echo_warn("pthread_create: %s", strerror(rc));
			status = 1;
			stop = true;
		}
	}
	if (!stop)
		printf("%lu workers%s%s\n", workers, tls ? ", TLS" : "",
		       max_conns ? ", connection limit set" : "");

	/* The main thread only waits: for a signal, or with --exit-after
	 * for that many clients to have come and gone. */
	while (!stop) {
		struct pollfd p = { setup.sigfd, POLLIN, 0 };
		uint64_t ended = 0;

		if (poll(&p, 1, 100) > 0)
			break;
		connect_inbox_stat(srv.ib, CONNECT_INBOX_STAT_ENDED, &ended);
		if (setup.exit_after && ended >= setup.exit_after)
			break;
	}

	/* Stop accepting, close every client (up to 1 s each to flush, all
	 * at once), wake the workers, join them. */
	connect_listener_close(l);
	/* Not OK: some client had failed or did not take everything within
	 * the second; that is the client's story, not the server's. */
	(void)connect_inbox_close(srv.ib, 1000, NULL);
	for (unsigned long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	while (srv.sessions) {
		struct session *ss = srv.sessions;

		srv.sessions = ss->next;
		free(ss);
	}
	pthread_mutex_destroy(&srv.lock);
	close(setup.sigfd);
	printf("served %llu clients, echoed %llu datagrams, %llu clients "
	       "ended with an error\n",
	       (unsigned long long)atomic_load(&srv.clients),
	       (unsigned long long)atomic_load(&srv.echoed),
	       (unsigned long long)atomic_load(&srv.failed));
	return status;
}
