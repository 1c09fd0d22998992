/*
 * The hostile-peer suite.  Peers that break every rule attack the example
 * echo servers (examples/tcp-echo-server and tls-echo-server, each started
 * as a process of its own on 127.0.0.1 port 0) and a libconnect client (a
 * connection made with connect_dial in this process):
 *
 *   garbage instead of frames; hostile size fields (0, 1..4, 0xFFFFFFFF,
 *   the limit + 1, the limit announced and then nothing); hundreds of slow
 *   peers dribbling their frames a byte at a time; peers that send and never
 *   read; a flood of connections past the server's descriptor limit; TLS
 *   handshakes that never start, never finish, or are not TLS at all; and
 *   all of the stream attacks again inside TLS.
 *
 * During each attack on a server, a well-behaved client (connect_dial,
 * a few datagrams, their echoes checked) must keep getting its echoes
 * within ECHO_LIMIT_MS (scaled by CK_TIMEOUT_MULTIPLIER), on a connection
 * made before the attack and, where the attack leaves room for them, on new
 * connections.  After each attack the server's threads and descriptors
 * (/proc/PID/status, /proc/PID/fd) must come back to what they were before
 * it, and its resident memory near it, within a bounded time; the server
 * must still be alive, and must exit with status 0 when stopped (so an
 * ASan, LeakSanitizer or TSan report in the server fails the test too).
 *
 * The servers run with SIGPIPE at its default action and die with this
 * process (PR_SET_PDEATHSIG) if a failed test exits without its teardown;
 * main() makes itself a child subreaper and reaps what is left.  Each test
 * prints one line of figures on stderr (check_hostile.log).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <gnutls/gnutls.h>

#include "connect.h"
#include "helpers.h"

#ifndef EXAMPLESDIR
#define EXAMPLESDIR "examples"
#endif

#define KiB (1024u)
#define MiB (1024u * 1024u)

/* The largest size field a receiver with the default limit accepts. */
#define FRAME_MAX (4u + CONNECT_MAX_PAYLOAD)

/* A good client's round trip must take no longer (before scaling). */
#define ECHO_LIMIT_MS 2000

/* The well-behaved client's tag. */
#define GOOD_TAG 0x600d

/*
 * How many hostile peers of each kind.  In light runs (test_light():
 * valgrind, where this process runs under memcheck and the servers run
 * natively) the peers that cost this process TLS handshakes or encryption
 * are fewer.
 */

#define N_GARBAGE 48
#define N_HUGE (test_light() ? 50 : 100)
#define N_DRIBBLE (test_light() ? 50 : 200)
#define N_NONREAD (test_light() ? 1 : 3)
#define N_NONREAD_MAX 3
#define N_FLOOD 200
#define N_SILENT 200
#define N_UNFINISHED 200
#define N_CLIENT_DRIBBLE (test_light() ? 20 : 50)
#define N_CLIENT_DRIBBLE_MAX 50

/* The descriptor limit of the server in the flood test. */
#define FLOOD_NOFILE 64

/* ---------------------------------------------------------------------- */
/* Processes: usage figures from /proc                                      */
/* ---------------------------------------------------------------------- */

struct usage {
	int threads;
	int fds;
	long rss_kb;
	long long cpu_ticks; /* user + system */
};

static bool proc_usage(pid_t pid, struct usage *u)
{
	char path[64], line[1024];
	unsigned long long ut = 0, st = 0;
	struct dirent *e;
	FILE *f;
	DIR *d;
	char *p;

	u->threads = -1;
	u->rss_kb = -1;
	u->fds = 0;
	u->cpu_ticks = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Threads: %d", &u->threads) == 1)
			continue;
		(void)sscanf(line, "VmRSS: %ld", &u->rss_kb);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			u->fds++;
	closedir(d);
	if (pid == getpid())
		u->fds--; /* the directory stream's own */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(line, sizeof(line), f) &&
		    (p = strrchr(line, ')')) != NULL &&
		    sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			   "%llu %llu",
			   &ut, &st) == 2)
			u->cpu_ticks = (long long)(ut + st);
		fclose(f);
	}
	return u->threads > 0 && u->rss_kb >= 0;
}

static void usage_max(struct usage *peak, const struct usage *u)
{
	if (u->threads > peak->threads)
		peak->threads = u->threads;
	if (u->fds > peak->fds)
		peak->fds = u->fds;
	if (u->rss_kb > peak->rss_kb)
		peak->rss_kb = u->rss_kb;
}

/*
 * Resident memory a process may keep above its baseline after an attack:
 * allocator caches and arenas.  Under AddressSanitizer the quarantine of
 * freed blocks (256 MiB by default) and the sanitizer's allocator, which
 * keeps what it got, hold hundreds of MiB after the big attacks: the bound
 * then only catches runaway growth, and leaks are LeakSanitizer's to find
 * when the server exits (its status must be 0).  Under ThreadSanitizer
 * each thread costs about a MiB, and its allocator keeps memory too.
 */
static long rss_slack_kb(void)
{
	if (under_asan())
		return 1024 * 1024;
	if (under_tsan())
		return 1024 * 1024;
	return 32 * 1024;
}

/* ---------------------------------------------------------------------- */
/* The example server, a process of its own                                 */
/* ---------------------------------------------------------------------- */

struct server {
	pid_t pid;
	bool tls;
	bool mt; /* mt-echo-server (worker pool over an inbox) */
	int port;
	int logfd;         /* its stdout and stderr: an unlinked temp file */
	struct usage base; /* after a first client came and went */
	struct usage peak; /* during the current attack */
};

static struct server g_srv = { .pid = -1, .logfd = -1 };

/* Copy the end of the server's output to our stderr (on failures). */
static void srv_dump_log(void)
{
	static char buf[16385];
	struct stat st;
	off_t from;
	ssize_t n;

	if (g_srv.logfd < 0 || fstat(g_srv.logfd, &st) != 0)
		return;
	from = st.st_size > 16384 ? st.st_size - 16384 : 0;
	n = pread(g_srv.logfd, buf, sizeof(buf) - 1, from);
	if (n <= 0)
		return;
	buf[n] = '\0';
	fprintf(stderr,
		"---- the server's output (last %zd bytes) ----\n%s"
		"---- end of the server's output ----\n",
		n, buf);
}

/* Fail the test, showing what the server said. */
#define srv_assert(cond, ...)                                                \
	do {                                                                 \
		if (!(cond)) {                                               \
			srv_dump_log();                                      \
			ck_abort_msg(__VA_ARGS__);                           \
		}                                                            \
	} while (0)

static const char *srv_name(void)
{
	if (g_srv.mt)
		return g_srv.tls ? "mt-echo-server --tls" : "mt-echo-server";
	return g_srv.tls ? "tls-echo-server" : "tcp-echo-server";
}

/* The server's output so far, NUL-terminated (at most len - 1 bytes). */
static size_t srv_log(char *buf, size_t len)
{
	ssize_t n = pread(g_srv.logfd, buf, len - 1, 0);

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

/* Fail unless the server still runs. */
static void srv_check_alive(const char *when)
{
	int st = 0;
	pid_t r;

	r = waitpid(g_srv.pid, &st, WNOHANG);
	if (r == 0)
		return;
	if (r == g_srv.pid)
		g_srv.pid = -1;
	srv_dump_log();
	if (r == -1)
		ck_abort_msg("%s: waitpid: %s", when, strerror(errno));
	if (WIFSIGNALED(st))
		ck_abort_msg("%s: %s died of signal %d (%s)", when, srv_name(),
			     WTERMSIG(st), strsignal(WTERMSIG(st)));
	ck_abort_msg("%s: %s exited with status %d", when, srv_name(),
		     WEXITSTATUS(st));
}

/*
 * Start the example server (TLS or TCP) on 127.0.0.1 port 0, wait for its
 * "listening on" line, and lower its descriptor limit to `nofile` (0: it
 * keeps ours).
 */
static void srv_start(bool tls, long nofile)
{
	static const char *const tcp_argv[] = {
		EXAMPLESDIR "/tcp-echo-server", "127.0.0.1:0", NULL
	};
	static const char *const tls_argv[] = {
		EXAMPLESDIR "/tls-echo-server", "127.0.0.1:0",
		CERTDIR "/server.pem", CERTDIR "/server-key.pem", NULL
	};
	static const char *const mt_tcp_argv[] = {
		EXAMPLESDIR "/mt-echo-server", "127.0.0.1:0", "--quiet", NULL
	};
	static const char *const mt_tls_argv[] = {
		EXAMPLESDIR "/mt-echo-server", "127.0.0.1:0", "--quiet",
		"--tls", CERTDIR "/server.pem", CERTDIR "/server-key.pem",
		NULL
	};
	const char *const *argv = g_srv.mt ? (tls ? mt_tls_argv : mt_tcp_argv)
					   : (tls ? tls_argv : tcp_argv);
	char path[] = "/tmp/check_hostile.XXXXXX";
	char out[4096], *p, *nl;
	pid_t parent = getpid(), pid;
	int64_t deadline;
	int fd, devnull;

	ck_assert_msg(access(argv[0], X_OK) == 0, "%s: %s", argv[0],
		      strerror(errno));
	fd = mkostemp(path, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkostemp: %s", strerror(errno));
	g_srv.logfd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_msg(g_srv.logfd >= 0 && devnull >= 0, "open: %s",
		      strerror(errno));
	g_srv.tls = tls;
	g_srv.port = -1;
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls until exec. */
		struct sigaction sa;
		sigset_t none;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(126);
		/* A SIGPIPE must be able to kill it: the library promises
		 * never to raise one. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &sa, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(devnull, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		/* The libtool wrapper execs the program: same process. */
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(fd);
	close(devnull);
	ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
	g_srv.pid = pid;

	deadline = now_ms() + scaled_ms(20000);
	for (;;) {
		srv_check_alive("starting");
		srv_log(out, sizeof(out));
		p = strstr(out, "listening on ");
		if (p && (nl = strchr(p, '\n')) != NULL) {
			*nl = '\0';
			p = strrchr(p, ':');
			srv_assert(p && sscanf(p + 1, "%d", &g_srv.port) == 1 &&
					   g_srv.port > 0,
				   "cannot read the port: %s", out);
			break;
		}
		srv_assert(now_ms() < deadline, "%s did not start",
			   srv_name());
		sleep_ms(10);
	}
	/* Lowered from here, not between fork and exec: under valgrind the
	 * child runs on valgrind until exec, and valgrind refuses it. */
	if (nofile > 0) {
		struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };

		srv_assert(prlimit(pid, RLIMIT_NOFILE, &rl, NULL) == 0,
			   "prlimit: %s", strerror(errno));
	}
}

/*
 * Stop the server: SIGTERM, then SIGKILL if it does not exit in time.
 * Returns its exit status, or -1 if it died of a signal or was killed.
 */
static int srv_stop(void)
{
	int64_t deadline = now_ms() + scaled_ms(20000);
	bool killed = false;
	int st = 0;
	pid_t r;

	if (g_srv.pid < 0)
		return 0;
	kill(g_srv.pid, SIGTERM);
	for (;;) {
		r = waitpid(g_srv.pid, &st, WNOHANG);
		if (r == g_srv.pid)
			break;
		if (r < 0 && errno != EINTR) {
			killed = true;
			break;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "check_hostile: %s did not stop: "
					"killing it\n",
				srv_name());
			kill(g_srv.pid, SIGKILL);
			while (waitpid(g_srv.pid, &st, 0) < 0 && errno == EINTR)
				;
			killed = true;
			break;
		}
		sleep_ms(10);
	}
	g_srv.pid = -1;
	if (killed || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Sample the server's figures into the attack's peaks. */
static void srv_sample(void)
{
	struct usage u;

	srv_check_alive("under attack");
	if (proc_usage(g_srv.pid, &u))
		usage_max(&g_srv.peak, &u);
}

/* Let ms pass while an attack holds, sampling the server. */
static void hold(int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		srv_sample();
		sleep_ms(25);
	}
}

/* Current figures, failing if they cannot be read. */
static struct usage srv_usage(void)
{
	struct usage u;

	srv_check_alive("reading /proc");
	srv_assert(proc_usage(g_srv.pid, &u), "cannot read /proc/%d",
		   (int)g_srv.pid);
	return u;
}

/* ---------------------------------------------------------------------- */
/* The well-behaved client                                                  */
/* ---------------------------------------------------------------------- */

static const size_t good_sizes[] = { 1, 300, 5000 };
#define N_GOOD (sizeof(good_sizes) / sizeof(good_sizes[0]))

/*
 * One round trip on c: three datagrams out, their echoes back and checked.
 * Returns the time it took in ms, or -1 with the reason in why.  Waits up
 * to 15 s (scaled) for an echo, so that a late one is measured, not only
 * reported missing.
 */
static int64_t round_trip(connect_conn *c, uint32_t *seq, char *why,
			  size_t len)
{
	int64_t t0 = now_ms();
	connect_datagram *dg;
	bool ok;
	int rc;

	for (size_t i = 0; i < N_GOOD; i++) {
		dg = dg_make_nocheck(GOOD_TAG, *seq + (uint32_t)i,
				     good_sizes[i]);
		rc = dg ? connect_send_wait(c, dg, scaled_ms(15000)) :
			  CONNECT_ENOMEM;
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			snprintf(why, len, "send: %s after %lld ms",
				 connect_err_name(rc),
				 (long long)(now_ms() - t0));
			return -1;
		}
	}
	for (size_t i = 0; i < N_GOOD; i++) {
		rc = connect_recv_wait(c, &dg, scaled_ms(15000));
		if (rc != CONNECT_OK) {
			char detail[160] = "";

			connect_conn_error(c, detail, sizeof(detail));
			snprintf(why, len, "echo %zu of %zu: %s after %lld ms%s%s",
				 i + 1, N_GOOD, connect_err_name(rc),
				 (long long)(now_ms() - t0),
				 detail[0] ? ": " : "", detail);
			return -1;
		}
		ok = dg_check(dg, GOOD_TAG, *seq + (uint32_t)i, good_sizes[i],
			      why, len);
		connect_datagram_free(dg);
		if (!ok)
			return -1;
	}
	*seq += (uint32_t)N_GOOD;
	return now_ms() - t0;
}

/* Dial a new connection, one round trip, close.  Time to the last echo. */
static int64_t fresh_trip(int t, int port, uint32_t *seq, char *why,
			  size_t len)
{
	int64_t t0 = now_ms(), ms;
	connect_conn *c = NULL;
	int rc;

	rc = t_dial(t, port, NULL, &c);
	if (rc != CONNECT_OK) {
		snprintf(why, len, "dial: %s after %lld ms",
			 connect_err_name(rc), (long long)(now_ms() - t0));
		return -1;
	}
	ms = round_trip(c, seq, why, len);
	if (ms >= 0)
		ms = now_ms() - t0;
	rc = connect_close(c, scaled_ms(2000), NULL);
	if (ms >= 0 && rc != CONNECT_OK) {
		snprintf(why, len, "close: %s", connect_err_name(rc));
		ms = -1;
	}
	return ms;
}

/*
 * A thread of round trips every 50 ms: on a connection made before the
 * attack and, while `fresh` is set, on a new connection each round.
 */
struct prober {
	pthread_t th;
	bool running;
	atomic_bool stop;
	atomic_bool fresh;
	int t; /* T_TCP4 or T_TLS */
	int port;
	connect_conn *conn;
	bool conn_ok;
	uint32_t seq;
	/* Results, read after joining (the counts also before). */
	atomic_uint rounds, fresh_rounds, failures;
	int64_t max_ms, max_fresh_ms;
	char why[320];
};

static struct prober g_pr;

static void prober_fail(struct prober *p, const char *what, const char *why)
{
	if (atomic_load(&p->failures) == 0)
		snprintf(p->why, sizeof(p->why), "%s: %s", what, why);
	atomic_fetch_add(&p->failures, 1);
}

static void *prober_main(void *arg)
{
	struct prober *p = arg;
	char why[256];
	int64_t ms;

	while (!atomic_load(&p->stop)) {
		if (p->conn_ok) {
			ms = round_trip(p->conn, &p->seq, why, sizeof(why));
			if (ms < 0) {
				prober_fail(p, "connection made before the "
					       "attack",
					    why);
				p->conn_ok = false;
			} else {
				atomic_fetch_add(&p->rounds, 1);
				if (ms > p->max_ms)
					p->max_ms = ms;
			}
		}
		if (atomic_load(&p->fresh)) {
			ms = fresh_trip(p->t, p->port, &p->seq, why,
					sizeof(why));
			if (ms < 0) {
				prober_fail(p, "new connection", why);
			} else {
				atomic_fetch_add(&p->fresh_rounds, 1);
				if (ms > p->max_fresh_ms)
					p->max_fresh_ms = ms;
			}
		}
		sleep_ms(50);
	}
	return NULL;
}

/* Connect the good client to `port` (TLS or TCP) and start its rounds. */
static void prober_start_at(int port, bool tls, bool fresh)
{
	char why[256] = "";
	int64_t ms;

	memset(&g_pr, 0, sizeof(g_pr));
	g_pr.t = tls ? T_TLS : T_TCP4;
	g_pr.port = port;
	g_pr.conn = t_dial_ok(g_pr.t, port, NULL);
	ms = round_trip(g_pr.conn, &g_pr.seq, why, sizeof(why));
	ck_assert_msg(ms >= 0, "good client, first round trip: %s", why);
	g_pr.conn_ok = true;
	atomic_init(&g_pr.stop, false);
	atomic_init(&g_pr.fresh, fresh);
	t_thread_start(&g_pr.th, prober_main, &g_pr);
	g_pr.running = true;
}

static void prober_start(bool fresh)
{
	prober_start_at(g_srv.port, g_srv.tls, fresh);
}

/* Stop the rounds and close the connection; true if the thread ended. */
static bool prober_halt(void)
{
	bool joined = true;

	if (!g_pr.running)
		return true;
	atomic_store(&g_pr.stop, true);
	joined = join_timeout(g_pr.th, NULL, scaled_ms(60000)) == 0;
	if (!joined)
		return false; /* stuck: its connection cannot be freed */
	g_pr.running = false;
	connect_close(g_pr.conn, scaled_ms(1000), NULL);
	g_pr.conn = NULL;
	return true;
}

/* Stop the good client and check that every round trip was prompt. */
static void prober_check(const char *attack)
{
	int64_t deadline = now_ms() + scaled_ms(10000);
	int limit = scaled_ms(ECHO_LIMIT_MS);

	/* At least one round during the attack, however short it was. */
	while (g_pr.running && atomic_load(&g_pr.rounds) == 0 &&
	       atomic_load(&g_pr.failures) == 0 && now_ms() < deadline)
		sleep_ms(5);

	srv_assert(prober_halt(), "%s: the good client's thread is stuck",
		   attack);
	srv_assert(g_pr.failures == 0,
		   "%s: the good client failed %u time(s); first: %s", attack,
		   g_pr.failures, g_pr.why);
	srv_assert(g_pr.rounds >= 1,
		   "%s: the good client made no round trip", attack);
	srv_assert(g_pr.max_ms <= limit,
		   "%s: the good client waited %lld ms for an echo (limit "
		   "%d ms)",
		   attack, (long long)g_pr.max_ms, limit);
	srv_assert(g_pr.max_fresh_ms <= limit,
		   "%s: a new good client waited %lld ms for its echo (limit "
		   "%d ms)",
		   attack, (long long)g_pr.max_fresh_ms, limit);
}

/* ---------------------------------------------------------------------- */
/* Baselines and settling                                                   */
/* ---------------------------------------------------------------------- */

/* Figures that hold for three readings 30 ms apart (or the last ones). */
static struct usage srv_stable_usage(int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct usage u, prev = { 0 };
	int same = 0;

	for (;;) {
		u = srv_usage();
		if (u.threads == prev.threads && u.fds == prev.fds)
			same++;
		else
			same = 0;
		if (same >= 3 || now_ms() >= deadline)
			return u;
		prev = u;
		sleep_ms(30);
	}
}

/*
 * The server's baseline: its figures once a first client (a new
 * connection and a round trip, which also warms up TLS and the
 * allocator) came and went.
 */
static void srv_baseline(void)
{
	struct usage before = srv_stable_usage(scaled_ms(2000));
	char why[256] = "";
	uint32_t seq = 0;
	int64_t deadline;

	ck_assert_msg(fresh_trip(g_srv.tls ? T_TLS : T_TCP4, g_srv.port, &seq,
				 why, sizeof(why)) >= 0,
		      "first client: %s", why);
	/* Its threads are gone once the server has closed it. */
	deadline = now_ms() + scaled_ms(5000);
	for (;;) {
		g_srv.base = srv_stable_usage(scaled_ms(2000));
		if ((g_srv.base.threads <= before.threads &&
		     g_srv.base.fds <= before.fds) ||
		    now_ms() >= deadline)
			break;
		sleep_ms(20);
	}
	g_srv.peak = g_srv.base;
}

/*
 * Wait until the server is back to its baseline: the same threads and
 * descriptors, resident memory within rss_slack_kb().  Returns the ms
 * since `since` (the end of the attack); fails after 15 s (scaled).
 */
static int64_t srv_settle(const char *attack, int64_t since)
{
	int64_t deadline = now_ms() + scaled_ms(15000);
	long slack = rss_slack_kb();
	struct usage u;

	for (;;) {
		u = srv_usage();
		usage_max(&g_srv.peak, &u);
		if (u.threads <= g_srv.base.threads &&
		    u.fds <= g_srv.base.fds &&
		    u.rss_kb <= g_srv.base.rss_kb + slack)
			return now_ms() - since;
		srv_assert(now_ms() < deadline,
			   "%s: %s is not back to its baseline %d ms after "
			   "the attack: %d threads (baseline %d), %d "
			   "descriptors (%d), VmRSS %ld KiB (%ld + %ld "
			   "allowed)",
			   attack, srv_name(), scaled_ms(15000), u.threads,
			   g_srv.base.threads, u.fds, g_srv.base.fds,
			   u.rss_kb, g_srv.base.rss_kb, slack);
		sleep_ms(20);
	}
}

static double mib(long kb)
{
	return (double)kb / 1024.0;
}

/* The line of figures for an attack on a server. */
static void report(const char *attack, int64_t t0, int64_t settle_ms,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(const char *attack, int64_t t0, int64_t settle_ms,
		   const char *fmt, ...)
{
	struct usage now = srv_usage();
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"check_hostile: %s %s: %s; good client: %u round trips, "
		"slowest %lld ms, %u new connections, slowest %lld ms; "
		"server: threads %d (peak %d, now %d), descriptors %d (peak "
		"%d, now %d), VmRSS %.1f MiB (peak %.1f, now %.1f); back to "
		"baseline %lld ms after the attack; %.1f s in all\n",
		srv_name(), attack, what, g_pr.rounds,
		(long long)g_pr.max_ms, g_pr.fresh_rounds,
		(long long)g_pr.max_fresh_ms, g_srv.base.threads,
		g_srv.peak.threads, now.threads, g_srv.base.fds,
		g_srv.peak.fds, now.fds, mib(g_srv.base.rss_kb),
		mib(g_srv.peak.rss_kb), mib(now.rss_kb),
		(long long)settle_ms, (double)(now_ms() - t0) / 1000.0);
}

/* ---------------------------------------------------------------------- */
/* Hostile peers: raw TCP, or GnuTLS sessions driven by hand                */
/* ---------------------------------------------------------------------- */

static gnutls_certificate_credentials_t g_cli_cred, g_srv_cred;

/* Attackers verify nothing: they do not care who answers. */
static gnutls_certificate_credentials_t cli_cred(void)
{
	if (!g_cli_cred)
		ck_assert_int_eq(
			gnutls_certificate_allocate_credentials(&g_cli_cred),
			0);
	return g_cli_cred;
}

static gnutls_certificate_credentials_t srv_cred(void)
{
	int ret;

	if (!g_srv_cred) {
		ck_assert_int_eq(
			gnutls_certificate_allocate_credentials(&g_srv_cred),
			0);
		ret = gnutls_certificate_set_x509_key_file(
			g_srv_cred, CERTDIR "/server.pem",
			CERTDIR "/server-key.pem", GNUTLS_X509_FMT_PEM);
		ck_assert_msg(ret >= 0, "server certificate: %s",
			      gnutls_strerror(ret));
	}
	return g_srv_cred;
}

static void creds_free(void)
{
	if (g_cli_cred)
		gnutls_certificate_free_credentials(g_cli_cred);
	if (g_srv_cred)
		gnutls_certificate_free_credentials(g_srv_cred);
	g_cli_cred = g_srv_cred = NULL;
}

struct peer {
	int fd;
	gnutls_session_t s; /* NULL: the stream is the TCP connection */
};

/* Every blocking read and write on the socket ends after ms. */
static void sock_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
			      .tv_usec = (ms % 1000) * 1000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void sock_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
static int tcp_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sock_timeouts(fd, scaled_ms(10000));
	return fd;
}

/* Run a TLS handshake over p->fd in `role`.  False (why) on failure. */
static bool tls_start(struct peer *p, unsigned role, char *why, size_t len)
{
	int ret;

	ret = gnutls_init(&p->s, role | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		p->s = NULL;
		goto fail;
	}
	ret = gnutls_priority_set_direct(p->s, "NORMAL", NULL);
	if (ret >= 0)
		ret = gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE,
					     role == GNUTLS_SERVER ?
						     srv_cred() :
						     cli_cred());
	if (ret >= 0 && role == GNUTLS_CLIENT)
		ret = gnutls_server_name_set(p->s, GNUTLS_NAME_DNS,
					     "localhost", strlen("localhost"));
	if (ret < 0)
		goto fail;
	gnutls_transport_set_int(p->s, p->fd);
	gnutls_handshake_set_timeout(p->s, (unsigned)scaled_ms(10000));
	do
		ret = gnutls_handshake(p->s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0)
		goto fail;
	return true;
fail:
	snprintf(why, len, "TLS handshake: %s", gnutls_strerror(ret));
	return false;
}

/* Connect to port; over TLS also complete the handshake. */
static bool peer_open(struct peer *p, int port, bool tls, char *why,
		      size_t len)
{
	p->s = NULL;
	p->fd = tcp_open(port);
	if (p->fd < 0) {
		snprintf(why, len, "connect: %s", strerror(errno));
		return false;
	}
	return !tls || tls_start(p, GNUTLS_CLIENT, why, len);
}

/* Close; with `reset`, an RST instead of a FIN. */
static void peer_close(struct peer *p, bool reset)
{
	struct linger lg = { 1, 0 };

	if (p->fd < 0)
		return;
	if (reset)
		(void)setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (p->s)
		gnutls_deinit(p->s);
	close(p->fd);
	p->fd = -1;
	p->s = NULL;
}

/* Write all of buf: 1 done, 0 nothing could be written within the
 * socket's timeout, -1 error (the other side has gone). */
static int peer_send(struct peer *p, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	ssize_t n;

	while (len > 0) {
		if (p->s) {
			n = gnutls_record_send(p->s, b, len);
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n == GNUTLS_E_AGAIN)
				return 0;
			if (n < 0)
				return -1;
		} else {
			n = send(p->fd, b, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return 0;
			if (n <= 0)
				return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 1;
}

/* Read: > 0 bytes, 0 end of stream, -1 reset or error (any TLS failure
 * too), -2 nothing within the socket's timeout. */
static ssize_t peer_recv(struct peer *p, void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		if (p->s) {
			n = gnutls_record_recv(p->s, buf, len);
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n == GNUTLS_E_AGAIN)
				return -2;
			return n < 0 ? -1 : n;
		}
		n = recv(p->fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
		return n;
	}
}

/* Read exactly len bytes within timeout_ms. */
static bool peer_recv_all(struct peer *p, void *buf, size_t len,
			  int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t *b = buf;
	ssize_t n;

	while (len > 0) {
		n = peer_recv(p, b, len);
		if (n == -2 && now_ms() < deadline)
			continue;
		if (n <= 0)
			return false;
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/*
 * Whether the other side has ended the connection, reading (and dropping)
 * whatever it sent first, for up to timeout_ms (0: only what is there).
 */
static bool peer_closed(struct peer *p, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t buf[16384];
	ssize_t n;

	for (;;) {
		if (fd_readable(p->fd, timeout_ms > 0 ? 50 : 0) == 1) {
			sock_nonblock(p->fd, true);
			do
				n = peer_recv(p, buf, sizeof(buf));
			while (n > 0);
			sock_nonblock(p->fd, false);
			if (n == 0 || n == -1)
				return true;
		}
		if (now_ms() >= deadline)
			return false;
	}
}

/* The peers of the current test, closed by the teardown if still open. */
static struct peer *g_peers;
static size_t g_npeers;
/* When they were last closed: the end of the attack. */
static int64_t g_attack_end;

static struct peer *peers_new(size_t n)
{
	g_peers = calloc(n, sizeof(*g_peers));
	ck_assert_ptr_nonnull(g_peers);
	g_npeers = n;
	for (size_t i = 0; i < n; i++)
		g_peers[i].fd = -1;
	return g_peers;
}

static void peers_free(bool reset)
{
	for (size_t i = 0; i < g_npeers; i++)
		peer_close(&g_peers[i], reset);
	free(g_peers);
	g_peers = NULL;
	g_npeers = 0;
	g_attack_end = now_ms();
}

/* Open n peers to the server (over TLS when it is the TLS server). */
static struct peer *peers_open(size_t n)
{
	struct peer *p = peers_new(n);
	char why[256];

	for (size_t i = 0; i < n; i++)
		srv_assert(peer_open(&p[i], g_srv.port, g_srv.tls, why,
				     sizeof(why)),
			   "peer %zu of %zu: %s", i + 1, n, why);
	return p;
}

/* ---------------------------------------------------------------------- */
/* Hostile bytes                                                            */
/* ---------------------------------------------------------------------- */

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

enum { GARBAGE_KINDS = 6 };

static const char *const garbage_names[GARBAGE_KINDS] = {
	"HTTP request", "zeros", "0xff bytes", "random bytes",
	"TLS ClientHello start", "JSON lines"
};

/*
 * len bytes of garbage of one kind, each of which makes the first four
 * bytes a size field no receiver may take (0, or above 4 + 100,000,000).
 */
static void garbage_fill(uint8_t *buf, size_t len, int kind, uint32_t seed)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n"
				   "User-Agent: hostile\r\n\r\n";
	static const char json[] = "{\"hello\": \"world\", \"n\": 1}\n";
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
					 0x00, 0x01, 0xfc, 0x03, 0x03 };
	uint32_t s = seed * 2654435761u + 1u;

	for (size_t i = 0; i < len; i++) {
		switch (kind) {
		case 0:
			buf[i] = (uint8_t)http[i % (sizeof(http) - 1)];
			break;
		case 1:
			buf[i] = 0;
			break;
		case 2:
			buf[i] = 0xff;
			break;
		case 4:
			buf[i] = i < sizeof(hello) ? hello[i] :
						     (uint8_t)xorshift(&s);
			break;
		case 5:
			buf[i] = (uint8_t)json[i % (sizeof(json) - 1)];
			break;
		default:
			/* The first byte 0x10..0x13: a size field of
			 * 0x10000000 or more, and no TLS record type (a
			 * TLS server waits for a record that looks
			 * plausible until its handshake times out). */
			buf[i] = (uint8_t)xorshift(&s);
			if (i == 0)
				buf[i] = (uint8_t)(0x10 | (buf[i] & 3));
			break;
		}
	}
}

/* A valid frame: tag, payload of plen bytes from a pattern. */
static size_t good_frame(uint8_t *buf, uint16_t tag, size_t plen)
{
	uint8_t payload[256];

	for (size_t i = 0; i < plen && i < sizeof(payload); i++)
		payload[i] = (uint8_t)(tag * 7u + i * 13u + 1u);
	return frame_put(buf, (uint32_t)(4 + plen), CONNECT_WIRE_VERSION, tag,
			 payload, plen);
}

/* Expect the echo of exactly these frame bytes. */
static bool expect_echo(struct peer *p, const uint8_t *frame, size_t len,
			int timeout_ms)
{
	uint8_t back[512];

	return len <= sizeof(back) &&
	       peer_recv_all(p, back, len, timeout_ms) &&
	       memcmp(back, frame, len) == 0;
}

/* ---------------------------------------------------------------------- */
/* Fixtures                                                                 */
/* ---------------------------------------------------------------------- */

static void common_setup(void)
{
	g_srv = (struct server){ .pid = -1, .logfd = -1 };
	memset(&g_pr, 0, sizeof(g_pr));
	g_peers = NULL;
	g_npeers = 0;
}

static void tcp_setup(void)
{
	common_setup();
	srv_start(false, 0);
	srv_baseline();
}

static void tls_setup(void)
{
	common_setup();
	srv_start(true, 0);
	srv_baseline();
}

static void mt_tcp_setup(void)
{
	common_setup();
	g_srv.mt = true;
	srv_start(false, 0);
	srv_baseline();
}

static void mt_tls_setup(void)
{
	common_setup();
	g_srv.mt = true;
	srv_start(true, 0);
	srv_baseline();
}

/* Everything stopped, even after a failure (CK_FORK=no runs this then). */
static void common_teardown(void)
{
	bool halted = prober_halt();
	int st;

	peers_free(true);
	st = srv_stop();
	if (st != 0)
		srv_dump_log();
	if (g_srv.logfd >= 0)
		close(g_srv.logfd);
	g_srv.logfd = -1;
	creds_free();
	ck_assert_msg(halted, "the good client's thread is stuck");
	ck_assert_msg(st == 0,
		      "the server exited with status %d when stopped (-1: "
		      "killed or died of a signal)",
		      st);
}

/* ---------------------------------------------------------------------- */
/* Attacks on the example servers: the stream                               */
/* ---------------------------------------------------------------------- */

/*
 * Garbage instead of frames: HTTP, zeros, 0xff, random bytes, a TLS
 * ClientHello, JSON (inside TLS on the TLS server).  Each makes a size
 * field no receiver takes: the server must drop every one of them
 * promptly, and serve the good client meanwhile.
 */
START_TEST(garbage)
{
	int64_t t0 = now_ms(), slowest = 0, t, settle;
	struct peer *p;
	uint8_t buf[4096];
	int closed = 0;

	prober_start(true);
	p = peers_open(N_GARBAGE);
	for (int i = 0; i < N_GARBAGE; i++) {
		garbage_fill(buf, sizeof(buf), i % GARBAGE_KINDS, (uint32_t)i);
		/* The server may cut us before all of it is written. */
		(void)peer_send(&p[i], buf, sizeof(buf));
	}
	t = now_ms();
	for (int i = 0; i < N_GARBAGE; i++) {
		srv_assert(peer_closed(&p[i], scaled_ms(5000)),
			   "garbage: peer %d (%s) still connected after %d ms",
			   i, garbage_names[i % GARBAGE_KINDS],
			   scaled_ms(5000));
		closed++;
		srv_sample();
	}
	slowest = now_ms() - t;
	hold(300);
	peers_free(false);
	prober_check("garbage");
	settle = srv_settle("garbage", g_attack_end);
	report("garbage", t0, settle,
	       "%d peers sending %s; all %d dropped by the server, the last "
	       "%lld ms after the garbage was sent",
	       N_GARBAGE, "HTTP/zeros/0xff/random/ClientHello/JSON", closed,
	       (long long)slowest);
}
END_TEST

/*
 * Hostile size fields after two good frames: the two are echoed, then the
 * server drops the connection.  Also a frame with a strange version field
 * and a one-byte payload, which are valid and must be echoed.
 */
static const uint32_t hostile_sizes[] = {
	0, 1, 2, 3, 4, 0xffffffffu, FRAME_MAX + 1, 0x80000000u, 0x7fffffffu
};
#define N_SIZES (sizeof(hostile_sizes) / sizeof(hostile_sizes[0]))

START_TEST(size_fields)
{
	int64_t t0 = now_ms(), settle;
	uint8_t f1[64], f2[64], bad[32], odd[16];
	size_t n1, n2, nodd;
	struct peer *p;

	prober_start(true);
	p = peers_open(N_SIZES + 1);
	n1 = good_frame(f1, 1, 20);
	n2 = good_frame(f2, 2, 1);
	/*
	 * The good frames' echoes are awaited before the hostile header is
	 * sent: the example server aborts a connection whose peer broke the
	 * protocol (linger 0), and echoes still queued then are not written.
	 */
	for (size_t i = 0; i < N_SIZES; i++)
		srv_assert(peer_send(&p[i], f1, n1) == 1 &&
				   peer_send(&p[i], f2, n2) == 1,
			   "size %#x: cannot send", hostile_sizes[i]);
	for (size_t i = 0; i < N_SIZES; i++) {
		srv_assert(expect_echo(&p[i], f1, n1, scaled_ms(5000)) &&
				   expect_echo(&p[i], f2, n2, scaled_ms(5000)),
			   "size %#x: the good frames were not echoed",
			   hostile_sizes[i]);
		memset(bad, 0xab, sizeof(bad));
		frame_put(bad, hostile_sizes[i], CONNECT_WIRE_VERSION, 0x0bad,
			  NULL, 0);
		(void)peer_send(&p[i], bad, sizeof(bad));
	}
	for (size_t i = 0; i < N_SIZES; i++)
		srv_assert(peer_closed(&p[i], scaled_ms(5000)),
			   "size %#x: the server kept the connection",
			   hostile_sizes[i]);
	/* Version 0xbeef, 1-byte payload: a valid frame, echoed as it
	 * came; the connection stays. */
	nodd = frame_put(odd, 5, 0xbeef, 0xffff, "x", 1);
	srv_assert(peer_send(&p[N_SIZES], odd, nodd) == 1, "cannot send");
	{
		uint8_t back[16];

		srv_assert(peer_recv_all(&p[N_SIZES], back, nodd,
					 scaled_ms(5000)),
			   "odd version: no echo");
		srv_assert(memcmp(back, odd, 4) == 0 &&
				   memcmp(back + 6, odd + 6, nodd - 6) == 0,
			   "odd version: the echo differs");
		fprintf(stderr,
			"check_hostile: %s: a frame with version 0xbeef came "
			"back with version %#x\n",
			srv_name(), (unsigned)(back[4] << 8 | back[5]));
	}
	srv_assert(!peer_closed(&p[N_SIZES], 0),
		   "odd version: the server dropped the connection");
	peers_free(false);
	prober_check("size fields");
	settle = srv_settle("size fields", g_attack_end);
	report("size fields", t0, settle,
	       "%zu peers, sizes 0, 1..4, 0xffffffff, limit+1, 2^31, 2^31-1 "
	       "after two good frames: both echoed, then dropped",
	       N_SIZES);
}
END_TEST

/*
 * A frame of the largest size announced, 10 bytes of it sent, then
 * nothing, by N_HUGE peers: the server must not reserve what was only
 * announced (its memory follows the bytes), holds them (the example sets
 * no frame timeout), serves the good client meanwhile, and lets everything
 * go when the peers leave mid-frame.
 */
START_TEST(huge_then_nothing)
{
	int64_t t0 = now_ms(), settle;
	uint8_t hdr[18];
	struct peer *p;
	int open_ = 0;

	prober_start(true);
	p = peers_open(N_HUGE);
	frame_put(hdr, FRAME_MAX, CONNECT_WIRE_VERSION, 7, "0123456789", 10);
	for (int i = 0; i < N_HUGE; i++)
		srv_assert(peer_send(&p[i], hdr, sizeof(hdr)) == 1,
			   "peer %d: cannot send", i);
	hold(1500);
	for (int i = 0; i < N_HUGE; i++)
		open_ += !peer_closed(&p[i], 0);
	srv_assert(g_srv.peak.rss_kb <= g_srv.base.rss_kb + rss_slack_kb(),
		   "huge frames announced: VmRSS %ld KiB, baseline %ld KiB: "
		   "memory for frames that never came?",
		   g_srv.peak.rss_kb, g_srv.base.rss_kb);
	/* The peers leave mid-frame. */
	peers_free(false);
	prober_check("huge frame announced, then nothing");
	settle = srv_settle("huge frame announced, then nothing", g_attack_end);
	report("huge frame announced, then nothing", t0, settle,
	       "%d peers announcing %u bytes and sending 10; %d of them still "
	       "held after 1.5 s (no frame timeout in the example)",
	       N_HUGE, FRAME_MAX, open_);
}
END_TEST

/*
 * Hundreds of slow peers, each dribbling a good frame one byte at a time
 * (over TLS: one record per byte).  Each must get its exact echo, and the
 * good client its echoes meanwhile.
 */
START_TEST(slow_dribblers)
{
	enum { PLEN = 40 };
	int64_t t0 = now_ms(), t, settle;
	uint8_t frame[8 + PLEN];
	struct peer *p;
	size_t n;

	prober_start(true);
	p = peers_open(N_DRIBBLE);
	t = now_ms();
	n = good_frame(frame, 0x51, PLEN);
	for (size_t k = 0; k < n; k++) {
		for (int i = 0; i < N_DRIBBLE; i++)
			srv_assert(peer_send(&p[i], frame + k, 1) == 1,
				   "dribbler %d: cannot send byte %zu", i, k);
		srv_sample();
		sleep_ms(10);
	}
	t = now_ms() - t;
	for (int i = 0; i < N_DRIBBLE; i++)
		srv_assert(expect_echo(&p[i], frame, n, scaled_ms(5000)),
			   "dribbler %d: no exact echo", i);
	peers_free(false);
	prober_check("slow dribblers");
	settle = srv_settle("slow dribblers", g_attack_end);
	report("slow dribblers", t0, settle,
	       "%d peers dribbling a %zu-byte frame a byte at a time over "
	       "%lld ms; every one echoed exactly",
	       N_DRIBBLE, n, (long long)t);
}
END_TEST

/* A peer that sends big frames and never reads, until its writes stop. */
struct nonreader {
	pthread_t th;
	struct peer *p;
	size_t pushed;
	int end; /* 0: blocked (what we want), -1: error, 1: sent the cap */
};

/*
 * Frames of 4 MiB or more are mapped by the library and grown with mremap
 * (so the non-readers' frames take that path).  ThreadSanitizer does not
 * intercept mremap: the server's readers growing such frames at once make
 * it report races that are not there (and stop the server), so its builds
 * send frames below 4 MiB.
 */
#if UNDER_TSAN
#define NONREAD_PLEN (1 * MiB + 4096)
#else
#define NONREAD_PLEN (4 * MiB + 4096)
#endif

static void *nonreader_main(void *arg)
{
	enum { PLEN = NONREAD_PLEN };
	struct nonreader *r = arg;
	uint8_t *frame = malloc(8 + PLEN);
	int rc = -1;

	if (!frame) {
		r->end = -1;
		return NULL;
	}
	memset(frame + 8, 0x5a, PLEN);
	frame_put(frame, 4 + PLEN, CONNECT_WIRE_VERSION, 0x0dd, NULL, 0);
	/* "Blocked": nothing could be written for half a second (scaled). */
	sock_timeouts(r->p->fd, scaled_ms(500));
	while (r->pushed < 512 * MiB) {
		rc = peer_send(r->p, frame, 8 + PLEN);
		if (rc != 1)
			break;
		r->pushed += 8 + PLEN;
	}
	r->end = rc;
	free(frame);
	return NULL;
}

/*
 * Peers that send without ever reading their echoes: the server's queues
 * to them fill up, it stops reading them, and their writes block.  The
 * good client must not notice (with connect_send_wait in the server's poll
 * loop, it waited 10 s per such peer).  The peers then reset.
 */
START_TEST(never_read)
{
	struct nonreader r[N_NONREAD_MAX];
	int64_t t0 = now_ms(), t, settle;
	struct peer *p;
	size_t least = SIZE_MAX;

	prober_start(true);
	p = peers_open(N_NONREAD);
	t = now_ms();
	for (int i = 0; i < N_NONREAD; i++) {
		r[i] = (struct nonreader){ .p = &p[i] };
		t_thread_start(&r[i].th, nonreader_main, &r[i]);
	}
	for (int i = 0; i < N_NONREAD; i++) {
		int64_t deadline = now_ms() + scaled_ms(60000);

		while (join_timeout(r[i].th, NULL, 50) != 0) {
			srv_sample();
			srv_assert(now_ms() < deadline,
				   "non-reader %d: still writing", i);
		}
		/* mt-echo-server may cut it already (after its 2 s wait for
		 * room, in slow builds while it still writes). */
		srv_assert(r[i].end == 0 || (g_srv.mt && r[i].end < 0),
			   "non-reader %d: %s after %zu bytes", i,
			   r[i].end < 0 ? "cut by the server" :
					  "never blocked",
			   r[i].pushed);
		/* More than the kernel's buffers can hold: the server's
		 * queues to it were full (mt-echo-server stops reading a
		 * client whose echo waits: its receive queue, 16 MiB, and the
		 * kernel's buffers). */
		srv_assert(r[i].pushed >= (g_srv.mt ? 12 : 24) * MiB,
			   "non-reader %d: blocked after only %zu bytes", i,
			   r[i].pushed);
		if (r[i].pushed < least)
			least = r[i].pushed;
	}
	t = now_ms() - t;
	/* Stay stuck longer than a good client may wait (unscaled: the
	 * builds that scale it are slow enough already), so that a server
	 * waiting for room for one of them shows. */
	hold(ECHO_LIMIT_MS + 500);
	/* mt-echo-server drops a client it could not send to for 2 s (a
	 * worker waits that long for it); the others keep it. */
	for (int i = 0; i < N_NONREAD && !g_srv.mt; i++)
		srv_assert(!peer_closed(&p[i], 0),
			   "non-reader %d: dropped by the server", i);
	peers_free(true);
	prober_check("peers that never read");
	settle = srv_settle("peers that never read", g_attack_end);
	report("peers that never read", t0, settle,
	       "%d peers sending %u KiB frames without reading; blocked "
	       "after %.0f MiB or more (in %lld ms), held %.1f s, then reset",
	       N_NONREAD, NONREAD_PLEN / KiB, (double)least / MiB,
	       (long long)t, (ECHO_LIMIT_MS + 500) / 1000.0);
}
END_TEST

/*
 * A flood of silent connections past the server's descriptor limit
 * (RLIMIT_NOFILE lowered to FLOOD_NOFILE): accepting fails with EMFILE;
 * the server must not spin on it, must keep serving the good client
 * connected before, and must take new clients again once the flood is
 * gone.
 */
START_TEST(fd_flood)
{
	int64_t t0, settle, cpu_ms, t1, fresh;
	long long ticks0;
	struct peer *p;
	char why[256];
	uint32_t seq = 100000;
	int opened = 0;

	ck_assert_int_eq(srv_stop(), 0);
	close(g_srv.logfd);
	srv_start(g_srv.tls, FLOOD_NOFILE);
	srv_baseline();
	t0 = now_ms();
	prober_start(false);
	p = peers_new(N_FLOOD);
	for (int i = 0; i < N_FLOOD; i++) {
		/* Connections wait in the backlog once the server is out of
		 * descriptors; plain TCP even to the TLS server. */
		p[i].fd = tcp_open(g_srv.port);
		opened += p[i].fd >= 0;
	}
	srv_assert(opened == N_FLOOD, "only %d of %d connections", opened,
		   N_FLOOD);
	hold(500);
	/* CPU over a second at the limit. */
	ticks0 = srv_usage().cpu_ticks;
	t1 = now_ms();
	hold(1000);
	cpu_ms = (srv_usage().cpu_ticks - ticks0) * 1000 /
		 sysconf(_SC_CLK_TCK);
	t1 = now_ms() - t1;
	srv_assert(g_srv.peak.fds >= FLOOD_NOFILE - 4,
		   "the flood never reached the descriptor limit: peak %d of "
		   "%d",
		   g_srv.peak.fds, FLOOD_NOFILE);
	srv_assert(cpu_ms < t1 * 6 / 10,
		   "the server used %lld ms of CPU in %lld ms at its "
		   "descriptor limit (spinning?)",
		   (long long)cpu_ms, (long long)t1);
	peers_free(false);
	/*
	 * New clients are served again once the server has worked through
	 * the flood's connections left in its backlog (until then one may
	 * be dropped: the server still has no descriptor for it).
	 */
	fresh = now_ms();
	for (;;) {
		if (fresh_trip(g_srv.tls ? T_TLS : T_TCP4, g_srv.port, &seq, why,
			       sizeof(why)) >= 0)
			break;
		srv_assert(now_ms() - fresh < scaled_ms(10000),
			   "no new client served within %d ms after the "
			   "flood; last: %s",
			   scaled_ms(10000), why);
		sleep_ms(50);
	}
	fresh = now_ms() - fresh;
	atomic_store(&g_pr.fresh, true);
	hold(300);
	prober_check("descriptor flood");
	settle = srv_settle("descriptor flood", g_attack_end);
	report("descriptor flood", t0, settle,
	       "%d silent connections against RLIMIT_NOFILE %d; server CPU "
	       "%lld ms in %lld ms at the limit; new clients served again "
	       "%lld ms after the flood",
	       N_FLOOD, FLOOD_NOFILE, (long long)cpu_ms, (long long)t1,
	       (long long)fresh);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Attacks on the TLS server: the handshake                                 */
/* ---------------------------------------------------------------------- */

/*
 * Not TLS at all: the garbage, a libconnect frame and an SSH banner sent
 * to the TLS port before any handshake.  Each connection must be dropped
 * (well within the handshake timeout, 10 s).
 */
START_TEST(not_tls)
{
	static const char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
	int64_t t0 = now_ms(), t, slowest = 0, settle;
	enum { KINDS = GARBAGE_KINDS + 2, N = 4 * KINDS };
	uint8_t buf[4096];
	struct peer *p;

	prober_start(true);
	p = peers_new(N);
	for (int i = 0; i < N; i++) {
		int kind = i % KINDS;
		size_t len = sizeof(buf);

		p[i].fd = tcp_open(g_srv.port);
		srv_assert(p[i].fd >= 0, "connect: %s", strerror(errno));
		if (kind < GARBAGE_KINDS)
			garbage_fill(buf, len, kind, (uint32_t)i);
		else if (kind == GARBAGE_KINDS)
			len = good_frame(buf, 65535, 12);
		else
			len = (size_t)snprintf((char *)buf, sizeof(buf), "%s",
					       ssh);
		(void)peer_send(&p[i], buf, len);
	}
	t = now_ms();
	for (int i = 0; i < N; i++) {
		srv_assert(peer_closed(&p[i], scaled_ms(5000)),
			   "not TLS: peer %d (kind %d) still connected", i,
			   i % KINDS);
		srv_sample();
	}
	slowest = now_ms() - t;
	peers_free(false);
	prober_check("not TLS");
	settle = srv_settle("not TLS", g_attack_end);
	report("not TLS", t0, settle,
	       "%d peers sending garbage, a plain frame or an SSH banner to "
	       "the TLS port; all dropped, the last %lld ms after they were "
	       "sent",
	       N, (long long)slowest);
}
END_TEST

/*
 * Handshakes that never start: TCP connections that say nothing, more of
 * them than the handshakes a listener runs at once (64).  New good
 * clients must complete their handshakes promptly all the same.
 */
START_TEST(silent_handshakes)
{
	int64_t t0 = now_ms(), settle;
	char log[65536];
	struct peer *p;
	int cut = 0;

	prober_start(false);
	p = peers_new(N_SILENT);
	for (int i = 0; i < N_SILENT; i++) {
		p[i].fd = tcp_open(g_srv.port);
		srv_assert(p[i].fd >= 0, "connect %d: %s", i, strerror(errno));
	}
	/* The burst is over: good clients come now. */
	atomic_store(&g_pr.fresh, true);
	hold(2000);
	for (int i = 0; i < N_SILENT; i++)
		cut += peer_closed(&p[i], 0);
	peers_free(false);
	prober_check("silent handshakes");
	settle = srv_settle("silent handshakes", g_attack_end);
	srv_log(log, sizeof(log));
	report("TLS handshakes that never start", t0, settle,
	       "%d silent TCP connections; %d of them cut by the server "
	       "within 2 s%s",
	       N_SILENT, cut,
	       strstr(log, "handshake cut") ? " (\"handshake cut\" logged)" :
					      "");
}
END_TEST

/* Capture a GnuTLS client's first flight (its ClientHello). */
struct capture {
	gnutls_session_t s;
	uint8_t buf[4096];
	size_t len;
};

static ssize_t capture_push(gnutls_transport_ptr_t ptr, const void *data,
			    size_t len)
{
	struct capture *c = ptr;
	size_t room = sizeof(c->buf) - c->len;
	size_t n = len < room ? len : room;

	memcpy(c->buf + c->len, data, n);
	c->len += n;
	return (ssize_t)len;
}

static ssize_t capture_pull(gnutls_transport_ptr_t ptr, void *data,
			    size_t len)
{
	struct capture *c = ptr;

	(void)data;
	(void)len;
	gnutls_transport_set_errno(c->s, EAGAIN);
	return -1;
}

static int capture_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	(void)ptr;
	(void)ms;
	return 0;
}

/* A real ClientHello record (as GnuTLS sends it), into buf. */
static size_t client_hello(uint8_t *buf, size_t cap)
{
	struct capture *c = calloc(1, sizeof(*c));
	size_t n;
	int ret;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
						    GNUTLS_NO_SIGNAL),
			 0);
	ck_assert_int_eq(gnutls_priority_set_direct(c->s, "NORMAL", NULL), 0);
	ck_assert_int_eq(gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE,
						cli_cred()),
			 0);
	gnutls_transport_set_ptr(c->s, c);
	gnutls_transport_set_push_function(c->s, capture_push);
	gnutls_transport_set_pull_function(c->s, capture_pull);
	gnutls_transport_set_pull_timeout_function(c->s,
						   capture_pull_timeout);
	ret = gnutls_handshake(c->s);
	ck_assert_msg(ret == GNUTLS_E_AGAIN, "capture: %s",
		      gnutls_strerror(ret));
	ck_assert_msg(c->len > 5 && c->buf[0] == 0x16 && c->len <= cap,
		      "capture: %zu bytes", c->len);
	memcpy(buf, c->buf, c->len);
	n = c->len;
	gnutls_deinit(c->s);
	free(c);
	return n;
}

/*
 * Handshakes that never finish: a real ClientHello then silence (the
 * server answers and waits for the client's Finished), or only the first
 * 60 bytes of one (the server waits for the rest of the record), from
 * more peers than the handshakes a listener runs at once.
 */
START_TEST(unfinished_handshakes)
{
	int64_t t0 = now_ms(), settle;
	uint8_t hello[4096];
	size_t n = client_hello(hello, sizeof(hello));
	struct peer *p;
	int cut = 0;

	prober_start(false);
	p = peers_new(N_UNFINISHED);
	for (int i = 0; i < N_UNFINISHED; i++) {
		p[i].fd = tcp_open(g_srv.port);
		srv_assert(p[i].fd >= 0, "connect %d: %s", i, strerror(errno));
		(void)peer_send(&p[i], hello, i % 2 ? 60 : n);
	}
	atomic_store(&g_pr.fresh, true);
	hold(2000);
	for (int i = 0; i < N_UNFINISHED; i++)
		cut += peer_closed(&p[i], 0);
	peers_free(false);
	prober_check("unfinished handshakes");
	settle = srv_settle("unfinished handshakes", g_attack_end);
	report("TLS handshakes that never finish", t0, settle,
	       "%d peers: a %zu-byte ClientHello (or its first 60 bytes), "
	       "then silence; %d cut by the server within 2 s",
	       N_UNFINISHED, n, cut);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Attacks on a libconnect client                                           */
/* ---------------------------------------------------------------------- */

/*
 * Here the hostile side is a raw server in this process, the victim a
 * connection made with connect_dial (TCP, or TLS for loop index 1).  The
 * good client meanwhile talks to tcp-echo-server from this same process:
 * one bad peer must not hurt the process's other connections.  After each
 * attack this process's threads and descriptors come back to what they
 * were.
 */

static struct usage g_self_base;

static struct usage self_usage(void)
{
	struct usage u;

	ck_assert(proc_usage(getpid(), &u));
	return u;
}

static void self_baseline(void)
{
	g_self_base = self_usage();
}

/* Wait for this process's threads, descriptors and memory to come back. */
static int64_t self_settle(const char *attack)
{
	int64_t t0 = now_ms(), deadline = t0 + scaled_ms(15000);
	/* Under valgrind memory is memcheck's to judge: its own allocator
	 * keeps freed blocks. */
	long slack = test_light() ? 4096L * 1024 : rss_slack_kb();
	struct usage u;

	for (;;) {
		u = self_usage();
		if (u.threads <= g_self_base.threads &&
		    u.fds <= g_self_base.fds &&
		    u.rss_kb <= g_self_base.rss_kb + slack)
			return now_ms() - t0;
		ck_assert_msg(now_ms() < deadline,
			      "%s: this process is not back to its baseline: "
			      "%d threads (%d), %d descriptors (%d), VmRSS "
			      "%ld KiB (%ld + %ld)",
			      attack, u.threads, g_self_base.threads, u.fds,
			      g_self_base.fds, u.rss_kb, g_self_base.rss_kb,
			      slack);
		sleep_ms(20);
	}
}

static void client_report(const char *attack, int t, int64_t t0,
			  int64_t settle, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void client_report(const char *attack, int t, int64_t t0,
			  int64_t settle, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"check_hostile: client (%s) %s: %s; other connection: %u "
		"round trips, slowest %lld ms; this process back to %d "
		"threads, %d descriptors %lld ms after; %.1f s in all\n",
		t_name(t), attack, what, g_pr.rounds, (long long)g_pr.max_ms,
		g_self_base.threads, g_self_base.fds, (long long)settle,
		(double)(now_ms() - t0) / 1000.0);
}

static int hostile_listen(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "bind: %s", strerror(errno));
	ck_assert_msg(listen(fd, 256) == 0, "listen: %s", strerror(errno));
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* connect_dial on a thread (a TLS dial returns after the handshake). */
struct dialer {
	pthread_t th;
	int t;
	int port;
	const char *url;           /* instead of t and port */
	const connect_opts *opts;
	connect_conn *c;
	int rc;
	int64_t ms;
};

static void *dialer_main(void *arg)
{
	struct dialer *d = arg;
	int64_t t0 = now_ms();

	d->rc = d->url ? connect_dial(&d->c, d->url, d->opts) :
			 t_dial(d->t, d->port, d->opts, &d->c);
	d->ms = now_ms() - t0;
	return NULL;
}

static void dial_start(struct dialer *d)
{
	d->c = NULL;
	d->rc = CONNECT_EINVAL;
	t_thread_start(&d->th, dialer_main, d);
}

static void dial_join(struct dialer *d)
{
	t_thread_join(d->th, 30000, "connect_dial");
}

/* Accept one connection on lfd (the TLS handshake too, as the server). */
static bool hostile_accept(int lfd, struct peer *p, bool tls, char *why,
			   size_t len)
{
	p->s = NULL;
	p->fd = -1;
	if (fd_readable(lfd, scaled_ms(10000)) != 1) {
		snprintf(why, len, "nobody connected");
		return false;
	}
	p->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->fd < 0) {
		snprintf(why, len, "accept: %s", strerror(errno));
		return false;
	}
	sock_timeouts(p->fd, scaled_ms(10000));
	return !tls || tls_start(p, GNUTLS_SERVER, why, len);
}

/* A libconnect client connected to the hostile listener, and our end. */
static connect_conn *client_pair(int lfd, int port, int t,
				 const connect_opts *opts, struct peer *p)
{
	struct dialer d = { .t = t, .port = port, .opts = opts };
	char why[256] = "";
	bool ok;

	dial_start(&d);
	ok = hostile_accept(lfd, p, t == T_TLS, why, sizeof(why));
	dial_join(&d);
	ck_assert_msg(ok, "hostile server: %s", why);
	ck_assert_msg(d.rc == CONNECT_OK, "dial: %s", connect_err_name(d.rc));
	return d.c;
}

/* Receive a datagram that must be frame f (made by good_frame). */
static void client_expect(connect_conn *c, const uint8_t *f, size_t n)
{
	connect_datagram *dg = NULL;
	int rc = connect_recv_wait(c, &dg, scaled_ms(5000));

	ck_assert_msg(rc == CONNECT_OK, "recv: %s", connect_err_name(rc));
	ck_assert_uint_eq(connect_datagram_size(dg), n - 8);
	ck_assert_uint_eq(connect_datagram_tag(dg), (unsigned)(f[6] << 8 | f[7]));
	ck_assert(memcmp(connect_datagram_data(dg), f + 8, n - 8) == 0);
	connect_datagram_free(dg);
}

/* The next recv must fail with `want`; returns the time it took. */
static int64_t client_expect_err(connect_conn *c, int want, int timeout_ms)
{
	connect_datagram *dg = NULL;
	int64_t t0 = now_ms();
	char why[200] = "";
	int rc = connect_recv_wait(c, &dg, timeout_ms);

	if (rc == CONNECT_OK)
		connect_datagram_free(dg);
	connect_conn_error(c, why, sizeof(why));
	ck_assert_msg(rc == want, "recv: %s (%s), expected %s",
		      connect_err_name(rc), why, connect_err_name(want));
	return now_ms() - t0;
}

/* connect_close must return within the bound; returns its code. */
static int client_close(connect_conn *c, int linger_ms, size_t *unsent)
{
	int64_t t0 = now_ms();
	int rc = connect_close(c, linger_ms, unsent);

	ck_assert_msg(now_ms() - t0 <= linger_ms + scaled_ms(2000),
		      "connect_close(linger %d) took %lld ms", linger_ms,
		      (long long)(now_ms() - t0));
	return rc;
}

static void client_setup(void)
{
	common_setup();
	srv_start(false, 0);
}

/* Garbage after two good frames: both delivered, then CONNECT_EPROTO. */
START_TEST(client_garbage)
{
	int t = _i ? T_TLS : T_TCP4, port, lfd;
	int64_t t0 = now_ms(), settle;
	uint8_t f1[64], f2[64], junk[4096];
	size_t n1 = good_frame(f1, 1, 30), n2 = good_frame(f2, 2, 3);
	char why[200] = "";
	struct peer *p;
	connect_conn *c;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	self_baseline();
	p = peers_new(GARBAGE_KINDS);
	for (int k = 0; k < GARBAGE_KINDS; k++) {
		c = client_pair(lfd, port, t, NULL, &p[k]);
		garbage_fill(junk, sizeof(junk), k, (uint32_t)k);
		ck_assert(peer_send(&p[k], f1, n1) == 1);
		ck_assert(peer_send(&p[k], f2, n2) == 1);
		ck_assert(peer_send(&p[k], junk, sizeof(junk)) == 1);
		client_expect(c, f1, n1);
		client_expect(c, f2, n2);
		client_expect_err(c, CONNECT_EPROTO, scaled_ms(5000));
		ck_assert_int_eq(connect_conn_error(c, why, sizeof(why)),
				 CONNECT_EPROTO);
		ck_assert_msg(why[0] != '\0', "no reason given");
		(void)client_close(c, 1000, NULL);
		peer_close(&p[k], false);
	}
	peers_free(false);
	close(lfd);
	settle = self_settle("garbage");
	prober_check("client garbage");
	client_report("garbage", t, t0, settle,
		      "%d kinds of garbage after two good frames: both "
		      "delivered, then CONNECT_EPROTO (\"%s\")",
		      GARBAGE_KINDS, why);
}
END_TEST

/* Hostile size fields: every one CONNECT_EPROTO after a good frame; and
 * a receive limit of 1000 bytes takes 1000 and refuses 1001. */
START_TEST(client_size_fields)
{
	int t = _i ? T_TLS : T_TCP4, port, lfd;
	int64_t t0 = now_ms(), settle;
	uint8_t f1[64], bad[32], big[8 + 1001];
	size_t n1 = good_frame(f1, 9, 17);
	connect_opts *o;
	struct peer *p;
	connect_conn *c;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	self_baseline();
	p = peers_new(N_SIZES + 1);
	for (size_t i = 0; i < N_SIZES; i++) {
		c = client_pair(lfd, port, t, NULL, &p[i]);
		memset(bad, 0xcd, sizeof(bad));
		frame_put(bad, hostile_sizes[i], CONNECT_WIRE_VERSION, 3, NULL,
			  0);
		ck_assert(peer_send(&p[i], f1, n1) == 1);
		ck_assert(peer_send(&p[i], bad, sizeof(bad)) == 1);
		client_expect(c, f1, n1);
		client_expect_err(c, CONNECT_EPROTO, scaled_ms(5000));
		(void)client_close(c, 1000, NULL);
		peer_close(&p[i], false);
	}
	/* CONNECT_OPT_RECV_MAX_PAYLOAD 1000. */
	o = opts_make(CONNECT_OPT_RECV_MAX_PAYLOAD, 1000, 0, 0, 0, 0);
	c = client_pair(lfd, port, t, o, &p[N_SIZES]);
	connect_opts_free(o);
	memset(big, 0x77, sizeof(big));
	frame_put(big, 4 + 1000, CONNECT_WIRE_VERSION, 4, NULL, 0);
	ck_assert(peer_send(&p[N_SIZES], big, 8 + 1000) == 1);
	frame_put(big, 4 + 1001, CONNECT_WIRE_VERSION, 5, NULL, 0);
	ck_assert(peer_send(&p[N_SIZES], big, sizeof(big)) == 1);
	{
		connect_datagram *dg = NULL;

		ck_assert_int_eq(connect_recv_wait(c, &dg, scaled_ms(5000)),
				 CONNECT_OK);
		ck_assert_uint_eq(connect_datagram_size(dg), 1000);
		connect_datagram_free(dg);
	}
	client_expect_err(c, CONNECT_EPROTO, scaled_ms(5000));
	(void)client_close(c, 1000, NULL);
	peers_free(false);
	close(lfd);
	settle = self_settle("size fields");
	prober_check("client size fields");
	client_report("size fields", t, t0, settle,
		      "sizes 0, 1..4, 0xffffffff, limit+1, 2^31, 2^31-1 after a "
		      "good frame: delivered, then CONNECT_EPROTO; limit 1000: "
		      "1000 taken, 1001 refused");
}
END_TEST

/*
 * The largest frame announced, 10 bytes sent, then nothing: nothing is
 * delivered, memory does not follow the announcement, close returns at
 * once; with CONNECT_OPT_FRAME_TIMEOUT_MS the reader gives up by itself
 * (CONNECT_EDEADPEER).
 */
START_TEST(client_huge_then_nothing)
{
	int t = _i ? T_TLS : T_TCP4, port, lfd;
	int64_t t0 = now_ms(), settle, dead_ms;
	uint8_t hdr[18];
	struct peer p[2] = { { -1, NULL }, { -1, NULL } };
	connect_opts *o;
	connect_conn *c;
	long rss0;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	self_baseline();
	frame_put(hdr, FRAME_MAX, CONNECT_WIRE_VERSION, 7, "0123456789", 10);

	rss0 = self_usage().rss_kb;
	c = client_pair(lfd, port, t, NULL, &p[0]);
	ck_assert(peer_send(&p[0], hdr, sizeof(hdr)) == 1);
	client_expect_err(c, CONNECT_ETIMEDOUT, scaled_ms(500));
	ck_assert_msg(self_usage().rss_kb - rss0 < 16 * 1024,
		      "VmRSS grew by %ld KiB for 10 bytes of a frame",
		      self_usage().rss_kb - rss0);
	(void)client_close(c, 0, NULL);
	peer_close(&p[0], false);

	o = opts_make(CONNECT_OPT_FRAME_TIMEOUT_MS, 300, 0, 0, 0, 0);
	c = client_pair(lfd, port, t, o, &p[1]);
	connect_opts_free(o);
	ck_assert(peer_send(&p[1], hdr, sizeof(hdr)) == 1);
	dead_ms = client_expect_err(c, CONNECT_EDEADPEER, scaled_ms(5000));
	ck_assert_msg(dead_ms >= 250, "frame timeout after %lld ms",
		      (long long)dead_ms);
	(void)client_close(c, 1000, NULL);
	peer_close(&p[1], false);
	close(lfd);
	settle = self_settle("huge frame announced, then nothing");
	prober_check("client huge frame");
	client_report("huge frame announced, then nothing", t, t0, settle,
		      "nothing delivered, close at once; with a 300 ms frame "
		      "timeout CONNECT_EDEADPEER after %lld ms",
		      (long long)dead_ms);
}
END_TEST

/* A server dribbling a frame a byte at a time to N_CLIENT_DRIBBLE
 * clients: every datagram arrives whole, then the end of stream. */
START_TEST(client_dribble)
{
	enum { PLEN = 40 };
	int t = _i ? T_TLS : T_TCP4, port, lfd;
	int64_t t0 = now_ms(), settle;
	connect_conn *c[N_CLIENT_DRIBBLE_MAX];
	uint8_t frame[8 + PLEN];
	size_t n = good_frame(frame, 0x77, PLEN);
	struct peer *p;
	int rc;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	self_baseline();
	p = peers_new(N_CLIENT_DRIBBLE);
	for (int i = 0; i < N_CLIENT_DRIBBLE; i++)
		c[i] = client_pair(lfd, port, t, NULL, &p[i]);
	for (size_t k = 0; k < n; k++) {
		for (int i = 0; i < N_CLIENT_DRIBBLE; i++)
			ck_assert(peer_send(&p[i], frame + k, 1) == 1);
		sleep_ms(5);
	}
	for (int i = 0; i < N_CLIENT_DRIBBLE; i++) {
		client_expect(c[i], frame, n);
		if (p[i].s)
			(void)gnutls_bye(p[i].s, GNUTLS_SHUT_WR);
		shutdown(p[i].fd, SHUT_WR);
		client_expect_err(c[i], CONNECT_EEOF, scaled_ms(5000));
		rc = client_close(c[i], 1000, NULL);
		ck_assert_msg(rc == CONNECT_OK, "close: %s",
			      connect_err_name(rc));
	}
	peers_free(false);
	close(lfd);
	settle = self_settle("dribbling server");
	prober_check("client dribble");
	client_report("dribbling server", t, t0, settle,
		      "%d connections, a %zu-byte frame a byte at a time: all "
		      "whole, then CONNECT_EEOF, close OK",
		      N_CLIENT_DRIBBLE, n);
}
END_TEST

/*
 * A server that never reads: the client's queue fills and connect_send
 * says CONNECT_EAGAIN (bounded memory, nothing dropped); the reader still
 * delivers what the server sends; close gives up after its linger and
 * says how many datagrams were not written.
 */
START_TEST(client_never_read)
{
	int t = _i ? T_TLS : T_TCP4, port, lfd, rc = CONNECT_OK;
	int64_t t0 = now_ms(), settle, tc;
	uint8_t f1[64];
	size_t n1 = good_frame(f1, 0x44, 25), unsent = 0;
	uint64_t queued = 0;
	struct peer p = { -1, NULL };
	connect_datagram *dg;
	connect_opts *o;
	connect_conn *c;
	unsigned sent = 0;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	self_baseline();
	o = opts_make(CONNECT_OPT_SEND_QUEUE_BYTES, 1 * MiB, 0, 0, 0, 0);
	c = client_pair(lfd, port, t, o, &p);
	connect_opts_free(o);
	/*
	 * Fill the queue and the socket buffers: EAGAIN must come.  The
	 * writer may still be moving datagrams into the kernel when the
	 * queue first says EAGAIN (slowly, under valgrind), so top the queue
	 * up again until the writer has stood still for a while: then the
	 * kernel's buffers are full and what is queued stays queued.
	 */
	for (int64_t end = now_ms() + scaled_ms(20000); now_ms() < end;) {
		uint64_t before = 0, after = 0;

		dg = dg_make(1, sent, 64 * KiB);
		rc = connect_send(c, dg);
		if (rc == CONNECT_OK) {
			sent++;
			continue;
		}
		connect_datagram_free(dg);
		if (rc != CONNECT_EAGAIN)
			break;
		(void)connect_conn_stat(c, CONNECT_STAT_SEND_QUEUED_BYTES,
					&before);
		sleep_ms(scaled_ms(200));
		(void)connect_conn_stat(c, CONNECT_STAT_SEND_QUEUED_BYTES,
					&after);
		if (after == before)
			break;
	}
	ck_assert_msg(rc == CONNECT_EAGAIN, "send: %s after %u datagrams",
		      connect_err_name(rc), sent);
	ck_assert_int_eq(connect_conn_stat(c, CONNECT_STAT_SEND_QUEUED_BYTES,
					   &queued),
			 CONNECT_OK);
	ck_assert_msg(queued <= 1 * MiB + 64 * KiB,
		      "%llu bytes queued, limit 1 MiB",
		      (unsigned long long)queued);
	/* The other direction still works. */
	ck_assert(peer_send(&p, f1, n1) == 1);
	client_expect(c, f1, n1);
	tc = now_ms();
	rc = client_close(c, scaled_ms(300), &unsent);
	tc = now_ms() - tc;
	ck_assert_msg(rc != CONNECT_OK, "close reported success with a peer "
					"that read nothing");
	ck_assert_msg(unsent > 0, "close: %s, 0 datagrams unsent",
		      connect_err_name(rc));
	peer_close(&p, true);
	close(lfd);
	settle = self_settle("server that never reads");
	prober_check("client never read");
	client_report("server that never reads", t, t0, settle,
		      "CONNECT_EAGAIN after %u datagrams of 64 KiB (%llu bytes "
		      "queued, limit 1 MiB); reading went on; close: %s in "
		      "%lld ms, %zu datagrams not written",
		      sent, (unsigned long long)queued, connect_err_name(rc),
		      (long long)tc, unsent);
}
END_TEST

/*
 * TLS handshakes that a hostile server never lets finish: silence after
 * the TCP connection, silence after reading the ClientHello, half a
 * ServerHello record, or a plain frame instead of TLS.  connect_dial must
 * return the right error within the handshake timeout (500 ms here).
 */
START_TEST(client_tls_handshake_stalls)
{
	static const uint8_t half_hello[] = { 0x16, 0x03, 0x03, 0x00, 0x7a,
					      0x02, 0x00, 0x00, 0x76, 0x03 };
	static const char *const names[] = { "silence",
					     "ClientHello read, silence",
					     "half a ServerHello",
					     "a plain frame" };
	static const int want[] = { CONNECT_ETLSHANDSHAKETIMEOUT,
				    CONNECT_ETLSHANDSHAKETIMEOUT,
				    CONNECT_ETLSHANDSHAKETIMEOUT,
				    CONNECT_ETLSNOTTLS };
	int64_t t0 = now_ms(), settle, slowest = 0;
	connect_tls_config *cfg = NULL;
	connect_opts *o = NULL;
	char url[64];
	int port, lfd;

	prober_start_at(g_srv.port, false, false);
	lfd = hostile_listen(&port);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	ck_assert_int_eq(connect_tls_config_new(&cfg, CONNECT_TLS_CLIENT),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_ca_file(cfg, CERTDIR "/ca.pem"),
			 CONNECT_OK);
	ck_assert_int_eq(connect_tls_config_handshake_timeout(cfg, 500),
			 CONNECT_OK);
	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	ck_assert_int_eq(connect_opts_set_tls(o, cfg), CONNECT_OK);
	ck_assert_int_eq(connect_opts_set_server_name(o, "localhost"),
			 CONNECT_OK);
	connect_tls_config_free(cfg);
	self_baseline();
	for (int k = 0; k < 4; k++) {
		struct dialer d = { .url = url, .opts = o };
		struct peer p = { -1, NULL };
		uint8_t buf[4096];
		char why[128];

		dial_start(&d);
		ck_assert_msg(hostile_accept(lfd, &p, false, why, sizeof(why)),
			      "%s", why);
		if (k >= 1) /* the ClientHello */
			(void)peer_recv(&p, buf, sizeof(buf));
		if (k == 2)
			ck_assert(peer_send(&p, half_hello,
					    sizeof(half_hello)) == 1);
		if (k == 3) {
			size_t n = good_frame(buf, 1, 12);

			ck_assert(peer_send(&p, buf, n) == 1);
		}
		dial_join(&d);
		if (d.rc == CONNECT_OK)
			connect_close(d.c, 0, NULL);
		ck_assert_msg(d.rc == want[k], "%s: dial: %s, expected %s",
			      names[k], connect_err_name(d.rc),
			      connect_err_name(want[k]));
		ck_assert_msg(d.ms <= 500 + scaled_ms(2000),
			      "%s: dial took %lld ms", names[k],
			      (long long)d.ms);
		if (d.ms > slowest)
			slowest = d.ms;
		peer_close(&p, false);
	}
	connect_opts_free(o);
	close(lfd);
	settle = self_settle("stalled handshakes");
	prober_check("client handshake stalls");
	client_report("TLS handshakes that never finish", T_TLS, t0, settle,
		      "silence, silence after the ClientHello, half a "
		      "ServerHello: CONNECT_ETLSHANDSHAKETIMEOUT; a plain "
		      "frame: CONNECT_ETLSNOTTLS; slowest dial %lld ms "
		      "(timeout 500)",
		      (long long)slowest);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Suite                                                                    */
/* ---------------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name, void (*setup)(void))
{
	TCase *tc = tcase_create(name);

	/* Check scales this by CK_TIMEOUT_MULTIPLIER. */
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, common_teardown);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc;

	tc = tcase(s, "tcp_server", tcp_setup);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, size_fields);
	tcase_add_test(tc, huge_then_nothing);
	tcase_add_test(tc, slow_dribblers);
	tcase_add_test(tc, never_read);
	tcase_add_test(tc, fd_flood);

	tc = tcase(s, "tls_server", tls_setup);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, size_fields);
	tcase_add_test(tc, huge_then_nothing);
	tcase_add_test(tc, slow_dribblers);
	tcase_add_test(tc, never_read);
	tcase_add_test(tc, fd_flood);
	tcase_add_test(tc, not_tls);
	tcase_add_test(tc, silent_handshakes);
	tcase_add_test(tc, unfinished_handshakes);

	/* The worker-pool server over an inbox, under the same attacks. */
	tc = tcase(s, "mt_tcp_server", mt_tcp_setup);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, size_fields);
	tcase_add_test(tc, huge_then_nothing);
	tcase_add_test(tc, slow_dribblers);
	tcase_add_test(tc, never_read);
	tcase_add_test(tc, fd_flood);

	tc = tcase(s, "mt_tls_server", mt_tls_setup);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, never_read);
	tcase_add_test(tc, not_tls);
	tcase_add_test(tc, silent_handshakes);
	tcase_add_test(tc, unfinished_handshakes);

	tc = tcase(s, "client", client_setup);
	tcase_add_loop_test(tc, client_garbage, 0, 2);
	tcase_add_loop_test(tc, client_size_fields, 0, 2);
	tcase_add_loop_test(tc, client_huge_then_nothing, 0, 2);
	tcase_add_loop_test(tc, client_dribble, 0, 2);
	tcase_add_loop_test(tc, client_never_read, 0, 2);
	tcase_add_test(tc, client_tls_handshake_stalls);
	return s;
}

int main(void)
{
	/* A peer that vanished must not kill the test with SIGPIPE.  Servers
	 * whose test process died without its teardown (a failed check exits
	 * at once) are killed and reaped by t_run. */
	return t_run(hostile_suite(), T_RUN_NO_SIGPIPE);
}
