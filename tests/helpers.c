/*
 * Shared helpers of the integration tests.  See helpers.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_timedjoin_np */
#endif

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

/* ---------------------------------------------------------------------- */
/* Running a suite                                                         */
/* ---------------------------------------------------------------------- */

/* Kill and reap every child left (see t_run). */
static void reap_orphans(void)
{
	int64_t deadline = now_ms() + 5000;
	char path[300], line[512], *p;
	struct dirent *e;
	pid_t r;
	int ppid;
	DIR *d;

	while ((r = waitpid(-1, NULL, WNOHANG)) != -1) {
		if (r > 0)
			continue;
		if (now_ms() >= deadline)
			break;
		/* Those killed already (PR_SET_PDEATHSIG, Check's killpg)
		 * are on their way out. */
		if (now_ms() < deadline - 4000) {
			sleep_ms(10);
			continue;
		}
		d = opendir("/proc");
		while (d && (e = readdir(d)) != NULL) {
			FILE *f;

			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
			f = fopen(path, "re");
			if (!f)
				continue;
			if (fgets(line, sizeof(line), f) &&
			    (p = strrchr(line, ')')) != NULL &&
			    sscanf(p + 2, "%*c %d", &ppid) == 1 &&
			    ppid == (int)getpid()) {
				fprintf(stderr, "%s: killing leftover process "
						"%s\n",
					program_invocation_short_name,
					e->d_name);
				kill((pid_t)atoi(e->d_name), SIGKILL);
			}
			fclose(f);
		}
		if (d)
			closedir(d);
		sleep_ms(10);
	}
}

int t_run(Suite *s, unsigned flags)
{
	SRunner *sr;
	int failed;

	if (!s)
		return 99;
	if (flags & T_RUN_NO_SIGPIPE)
		signal(SIGPIPE, SIG_IGN);
	/* Processes whose test process died without its teardown come to
	 * us, to be reaped below. */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	reap_orphans();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Threads of the test process when the test started (checked fixture). */
static int g_threads_baseline;

void t_threads_setup(void)
{
	g_threads_baseline = thread_baseline();
	ck_assert_int_gt(g_threads_baseline, 0);
}

void t_threads_teardown(void)
{
	int n = threads_settle(g_threads_baseline, scaled_ms(5000));

	ck_assert_msg(n == g_threads_baseline,
		      "%d threads left, %d at the start", n,
		      g_threads_baseline);
}

TCase *t_tcase(Suite *s, const char *name, int timeout_s)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout_s);
	tcase_add_checked_fixture(tc, t_threads_setup, t_threads_teardown);
	suite_add_tcase(s, tc);
	return tc;
}

/* ---------------------------------------------------------------------- */
/* Transports                                                              */
/* ---------------------------------------------------------------------- */

const struct t_transport t_table[T_COUNT] = {
	[T_TCP4] = { "tcp4", "tcp", "127.0.0.1", false, true, false, AF_INET,
		     false },
	[T_TCP6] = { "tcp6", "tcp", "[::1]", false, true, false, AF_INET6,
		     false },
	[T_TLS] = { "tls", "tls+tcp", "127.0.0.1", true, false, true,
		    AF_INET, false },
#ifdef CONNECT_TEST_SCTP
	[T_SCTP] = { "sctp", "sctp", "127.0.0.1", false, false, false,
		     AF_INET, true },
	[T_DTLS] = { "dtls-sctp", "dtls+sctp", "127.0.0.1", true, false, true,
		     AF_INET, true },
#endif
#ifdef CONNECT_TEST_FAULT
	[T_FAULT] = { "fault", "fault+tcp", "127.0.0.1", false, true, false,
		      AF_INET, false },
	[T_TLS_FAULT] = { "tls-fault", "tls+fault+tcp", "127.0.0.1", true,
			  false, true, AF_INET, false },
#endif
};

const char *t_name(int t)
{
	return t >= 0 && t < T_COUNT ? t_table[t].name : "?";
}

bool t_is_raw(int t)
{
	return t_table[t].raw;
}

int t_family(int t)
{
	return t_table[t].family;
}

void t_addr(int t, int port, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%d", t_table[t].host, port);
}

static int tls_cfg(int role, connect_tls_config **cfgp)
{
	connect_tls_config *cfg;
	int rc;

	rc = connect_tls_config_new(&cfg, role);
	if (rc != CONNECT_OK)
		return rc;
	if (role == CONNECT_TLS_SERVER)
		rc = connect_tls_config_cert_file(cfg, CERTDIR "/server.pem",
						  CERTDIR "/server-key.pem");
	else
		rc = connect_tls_config_ca_file(cfg, CERTDIR "/ca.pem");
	if (rc != CONNECT_OK) {
		connect_tls_config_free(cfg);
		return rc;
	}
	*cfgp = cfg;
	return CONNECT_OK;
}

/* A copy of opts (NULL: defaults) carrying the transport's TLS set-up. */
static int t_opts(int t, int role, const connect_opts *opts,
		  connect_opts **outp)
{
	connect_tls_config *cfg = NULL;
	connect_opts *o;
	int rc;

	rc = connect_opts_new(&o);
	if (rc != CONNECT_OK)
		return rc;
	for (int opt = 1; opts && opt < 64; opt++) {
		int64_t v;

		if (connect_opts_get(opts, opt, &v) == CONNECT_OK)
			connect_opts_set(o, opt, v);
	}
	/* Test programs run side by side: not the fixed default port. */
	if (t_table[t].sctp) {
		int64_t v = 0;

		if (!opts ||
		    (connect_opts_get(opts, CONNECT_OPT_SCTP_UDP_PORT, &v) ==
			     CONNECT_OK &&
		     v == 9899))
			connect_opts_set(o, CONNECT_OPT_SCTP_UDP_PORT, 0);
	}
	if (t_table[t].tls) {
		rc = tls_cfg(role, &cfg);
		if (rc == CONNECT_OK) {
			/* The options object keeps its own reference. */
			connect_opts_set_tls(o, cfg);
			connect_tls_config_free(cfg);
			if (role == CONNECT_TLS_CLIENT)
				rc = connect_opts_set_server_name(o,
								  "localhost");
		}
	}
	if (rc != CONNECT_OK) {
		connect_opts_free(o);
		return rc;
	}
	*outp = o;
	return CONNECT_OK;
}

int t_listen(int t, const connect_opts *opts, connect_listener **lp)
{
	connect_opts *o;
	char url[128];
	int rc;

	rc = t_opts(t, CONNECT_TLS_SERVER, opts, &o);
	if (rc != CONNECT_OK)
		return rc;
	snprintf(url, sizeof(url), "%s://%s:0", t_table[t].scheme,
		 t_table[t].host);
	rc = connect_listen(lp, url, o);
	connect_opts_free(o);
	return rc;
}

connect_listener *t_listen_ok(int t, const connect_opts *opts)
{
	connect_listener *l = NULL;
	int rc = t_listen(t, opts, &l);

	ck_assert_msg(rc == CONNECT_OK, "%s: listen: %s", t_name(t),
		      connect_err_name(rc));
	ck_assert_int_gt(connect_listener_port(l), 0);
	return l;
}

int t_dial(int t, int port, const connect_opts *opts, connect_conn **cp)
{
	connect_opts *o;
	char url[128];
	int rc;

	rc = t_opts(t, CONNECT_TLS_CLIENT, opts, &o);
	if (rc != CONNECT_OK)
		return rc;
	snprintf(url, sizeof(url), "%s://%s:%d", t_table[t].scheme,
		 t_table[t].host, port);
	rc = connect_dial(cp, url, o);
	connect_opts_free(o);
	return rc;
}

connect_conn *t_dial_ok(int t, int port, const connect_opts *opts)
{
	connect_conn *c = NULL;
	int rc = t_dial(t, port, opts, &c);

	ck_assert_msg(rc == CONNECT_OK, "%s: dial port %d: %s", t_name(t),
		      port, connect_err_name(rc));
	ck_assert_ptr_nonnull(c);
	return c;
}

connect_conn *t_accept_ok(connect_listener *l, int timeout_ms)
{
	connect_conn *c = NULL;
	int rc = connect_accept_wait(l, &c, timeout_ms);

	ck_assert_msg(rc == CONNECT_OK, "accept: %s", connect_err_name(rc));
	ck_assert_ptr_nonnull(c);
	return c;
}

void t_pair(int t, const connect_opts *copts, const connect_opts *sopts,
	    connect_conn **client, connect_conn **server)
{
	connect_listener *l = t_listen_ok(t, sopts);

	*client = t_dial_ok(t, connect_listener_port(l), copts);
	*server = t_accept_ok(l, 10000);
	connect_listener_close(l);
}

connect_opts *opts_make(int o1, int64_t v1, int o2, int64_t v2, int o3,
			int64_t v3)
{
	connect_opts *o = NULL;

	ck_assert_int_eq(connect_opts_new(&o), CONNECT_OK);
	if (o1)
		ck_assert_int_eq(connect_opts_set(o, o1, v1), CONNECT_OK);
	if (o2)
		ck_assert_int_eq(connect_opts_set(o, o2, v2), CONNECT_OK);
	if (o3)
		ck_assert_int_eq(connect_opts_set(o, o3, v3), CONNECT_OK);
	return o;
}

/* ---------------------------------------------------------------------- */
/* Echo server                                                             */
/* ---------------------------------------------------------------------- */

struct echo_server {
	pthread_t th;
	connect_listener *l;
	int accept_timeout_ms;
	atomic_bool stop;
	int result;
	uint64_t echoed;
};

static void *echo_main(void *arg)
{
	struct echo_server *e = arg;
	connect_conn *c = NULL;
	connect_datagram *dg;
	int64_t deadline = now_ms() + e->accept_timeout_ms;
	int rc;

	/* Accept in slices so that echo_stop() can interrupt us. */
	do {
		rc = connect_accept_wait(e->l, &c, 100);
	} while (rc == CONNECT_ETIMEDOUT && !atomic_load(&e->stop) &&
		 now_ms() < deadline);
	if (rc != CONNECT_OK) {
		e->result = rc;
		return NULL;
	}
	while (!atomic_load(&e->stop)) {
		rc = connect_recv_wait(c, &dg, 100);
		if (rc == CONNECT_ETIMEDOUT)
			continue;
		if (rc != CONNECT_OK)
			break;
		do {
			rc = connect_send_wait(c, dg, 100);
		} while (rc == CONNECT_ETIMEDOUT && !atomic_load(&e->stop));
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			break;
		}
		e->echoed++;
	}
	if (atomic_load(&e->stop))
		rc = CONNECT_ETIMEDOUT;
	e->result = rc;
	connect_close(c, rc == CONNECT_ETIMEDOUT ? 0 : 2000, NULL);
	return NULL;
}

struct echo_server *echo_start(connect_listener *l, int accept_timeout_ms)
{
	struct echo_server *e = calloc(1, sizeof(*e));

	ck_assert_ptr_nonnull(e);
	e->l = l;
	e->accept_timeout_ms = accept_timeout_ms;
	atomic_init(&e->stop, false);
	ck_assert_int_eq(pthread_create(&e->th, NULL, echo_main, e), 0);
	return e;
}

int echo_stop(struct echo_server *e, int timeout_ms, uint64_t *echoed)
{
	int rc;

	if (join_timeout(e->th, NULL, timeout_ms) != 0) {
		atomic_store(&e->stop, true);
		/* The loop checks the flag every 100 ms; closing may linger. */
		if (join_timeout(e->th, NULL, 15000) != 0)
			return CONNECT_ETIMEDOUT; /* leaked: cannot free it */
		e->result = CONNECT_ETIMEDOUT;
	}
	rc = e->result;
	if (echoed)
		*echoed = e->echoed;
	free(e);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Time and waiting                                                        */
/* ---------------------------------------------------------------------- */

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool wait_for(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		if (pred(arg))
			return true;
		if (now_ms() >= deadline)
			return false;
		sleep_ms(5);
	}
}

int fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) ? 1 : 0;
}

int join_timeout(pthread_t th, void **ret, int timeout_ms)
{
	struct timespec ts;

	/* pthread_timedjoin_np measures against CLOCK_REALTIME. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(th, ret, &ts);
}

void t_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(th, NULL, fn, arg);

	ck_assert_msg(rc == 0, "pthread_create: %s", strerror(rc));
}

void t_thread_join(pthread_t th, int timeout_ms, const char *what, ...)
{
	int ms = scaled_ms(timeout_ms);
	char name[200];
	va_list ap;

	if (join_timeout(th, NULL, ms) == 0)
		return;
	va_start(ap, what);
	vsnprintf(name, sizeof(name), what, ap);
	va_end(ap);
	ck_abort_msg("%s: the thread did not end within %d ms", name, ms);
}

/* ---------------------------------------------------------------------- */
/* Datagrams with sequence numbers                                         */
/* ---------------------------------------------------------------------- */

static inline uint8_t pattern_byte(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + (i >> 8) + 1u);
}

static void fill(uint8_t *p, uint32_t seq, size_t len)
{
	size_t i = 0;

	if (len >= 4) {
		p[0] = (uint8_t)(seq >> 24);
		p[1] = (uint8_t)(seq >> 16);
		p[2] = (uint8_t)(seq >> 8);
		p[3] = (uint8_t)seq;
		i = 4;
	}
	for (; i < len; i++)
		p[i] = pattern_byte(seq, i);
}

connect_datagram *dg_make_nocheck(uint16_t tag, uint32_t seq, size_t len)
{
	connect_datagram *dg = NULL;

	if (len < 4)
		seq = 0;
	if (connect_datagram_alloc(&dg, tag, len) != CONNECT_OK)
		return NULL;
	fill(connect_datagram_data(dg), seq, len);
	return dg;
}

connect_datagram *dg_make(uint16_t tag, uint32_t seq, size_t len)
{
	connect_datagram *dg = dg_make_nocheck(tag, seq, len);

	ck_assert_msg(dg != NULL, "cannot make a datagram of %zu bytes", len);
	return dg;
}

uint32_t dg_seq(connect_datagram *dg)
{
	const uint8_t *p = connect_datagram_data(dg);

	if (connect_datagram_size(dg) < 4)
		return 0;
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static bool check_bytes(connect_datagram *dg, uint32_t seq, char *why,
			size_t whylen)
{
	const uint8_t *p = connect_datagram_data(dg);
	size_t len = connect_datagram_size(dg), i = 0;

	if (len >= 4) {
		if (dg_seq(dg) != seq) {
			if (why)
				snprintf(why, whylen, "seq %u, expected %u",
					 dg_seq(dg), seq);
			return false;
		}
		i = 4;
	}
	for (; i < len; i++) {
		if (p[i] != pattern_byte(seq, i)) {
			if (why)
				snprintf(why, whylen,
					 "seq %u: byte %zu of %zu is %u, "
					 "expected %u",
					 seq, i, len, p[i],
					 pattern_byte(seq, i));
			return false;
		}
	}
	return true;
}

bool dg_check(connect_datagram *dg, uint16_t tag, uint32_t seq, size_t len,
	      char *why, size_t whylen)
{
	if (len < 4)
		seq = 0;
	if (connect_datagram_tag(dg) != tag) {
		if (why)
			snprintf(why, whylen, "tag %u, expected %u",
				 connect_datagram_tag(dg), tag);
		return false;
	}
	if (connect_datagram_size(dg) != len) {
		if (why)
			snprintf(why, whylen, "size %zu, expected %zu",
				 connect_datagram_size(dg), len);
		return false;
	}
	if (connect_datagram_version(dg) != CONNECT_WIRE_VERSION) {
		if (why)
			snprintf(why, whylen, "version %u",
				 connect_datagram_version(dg));
		return false;
	}
	return check_bytes(dg, seq, why, whylen);
}

bool dg_check_pattern(connect_datagram *dg)
{
	return check_bytes(dg, dg_seq(dg), NULL, 0);
}

/* ---------------------------------------------------------------------- */
/* Process probes                                                          */
/* ---------------------------------------------------------------------- */

size_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

int thread_count(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	}
	fclose(f);
	return n;
}

static void *nop_main(void *arg)
{
	return arg;
}

int thread_baseline(void)
{
	pthread_t th;
	int n, prev = -1;

	if (pthread_create(&th, NULL, nop_main, NULL) == 0)
		pthread_join(th, NULL);
	/* The thread is reaped a moment after the join: wait for a count
	 * that holds for three readings. */
	for (int same = 0, k = 0; same < 3 && k < 100; k++) {
		n = thread_count();
		same = n == prev ? same + 1 : 0;
		prev = n;
		sleep_ms(5);
	}
	return prev;
}

int threads_settle(int baseline, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = thread_count();
		if (n <= baseline || now_ms() >= deadline)
			return n;
		sleep_ms(10);
	}
}

bool test_light(void)
{
	return getenv("CONNECT_TEST_LIGHT") != NULL;
}

bool under_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}

bool under_tsan(void)
{
	return UNDER_TSAN;
}

bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6,
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int scaled_ms(int ms)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double f = m ? strtod(m, NULL) : 1.0;

	if (!(f >= 1.0) || f > 100.0)
		f = 1.0;
	return (int)(ms * f);
}

/* ---------------------------------------------------------------------- */
/* Raw sockets                                                             */
/* ---------------------------------------------------------------------- */

int raw_dial(int t, int port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, rc;

	memset(&ss, 0, sizeof(ss));
	if (t_family(t) == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	do {
		rc = connect(fd, (struct sockaddr *)&ss, sl);
	} while (rc < 0 && errno == EINTR);
	ck_assert_msg(rc == 0, "raw connect to port %d: %s", port,
		      strerror(errno));
	return fd;
}

bool raw_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

size_t frame_put(uint8_t *buf, uint32_t size, uint16_t version, uint16_t tag,
		 const void *payload, size_t plen)
{
	buf[0] = (uint8_t)(size >> 24);
	buf[1] = (uint8_t)(size >> 16);
	buf[2] = (uint8_t)(size >> 8);
	buf[3] = (uint8_t)size;
	buf[4] = (uint8_t)(version >> 8);
	buf[5] = (uint8_t)version;
	buf[6] = (uint8_t)(tag >> 8);
	buf[7] = (uint8_t)tag;
	if (plen)
		memcpy(buf + 8, payload, plen);
	return 8 + plen;
}
