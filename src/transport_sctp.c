/*
 * The SCTP transport ("sctp://host:port") on usrsctp, the userspace SCTP
 * stack, over UDP encapsulation (RFC 6951): these machines have no SCTP in
 * the kernel.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The wire.  One SCTP association per connection carries, on stream 0,
 * ordered, payload protocol identifier 0, the same byte stream of frames
 * as TCP, cut into SCTP messages of at most SCTP_MSG bytes: a frame may
 * span messages and a message may hold several frames.  The reader feeds
 * whatever arrives to the codec, so nothing above the transport knows.
 * The transport is a message transport (CN_TRANSPORT_MESSAGES): each
 * sendv is one message, sent whole or not at all, which is what DTLS over
 * SCTP needs (one record per message).
 *
 * The stack.  usrsctp is one stack per process, with threads of its own
 * and one UDP port (CONNECT_OPT_SCTP_UDP_PORT).  The first SCTP user
 * starts it, every transport and listener holds a reference, and the last
 * one gone stops it (usrsctp_finish, which joins its threads).  usrsctp
 * binds its UDP port without saying when that fails (associations then
 * hang), so the port is probed with a socket of ours first, and checked
 * again once the stack runs.
 *
 * Waiting.  usrsctp sockets are not file descriptors.  Every socket is
 * non-blocking; a waker (mutex, condition variable, sequence number) per
 * socket is advanced by the stack's upcall whenever something happens on
 * it (data, acknowledgement, error), and a thread that found nothing to do
 * sleeps until the number moves, the transport is aborted or its deadline
 * passes.  The upcall runs on the stack's threads: it takes only the
 * waker's mutex, and nobody calls into usrsctp holding that mutex.  The
 * stack may still call an upcall of a socket being closed, so wakers are
 * never freed while the stack runs: they go back to a pool, freed after
 * usrsctp_finish.
 *
 * Closing.  usrsctp_close() while another thread is inside a call on the
 * socket deadlocks; the connection joins its reader and writer before
 * destroy(), so no thread of ours can be there.  shutdown(2) of SCTP ends
 * the whole association (no half-close): our shutdown asks for it
 * (SHUTDOWN after all our data is acknowledged) and returns once our data
 * is acknowledged and the SHUTDOWN is out.  The peer sees the end as a
 * SHUTDOWN notification after the last data (or as end of stream), never
 * before data.  A cut (abort, or destroy without a clean end) sends an
 * ABORT.  The socket itself is handed to the stack and closed only once
 * its association is gone: usrsctp 0.9.5 has races around closing a
 * socket whose association still receives packets, and leaks references
 * on sockets whose association is freed under a call (see so_refs()).
 * A socket closed with unread input would abort the association, so a
 * cleanly ended one is read empty first.
 *
 * Dead peers.  Heartbeats every CONNECT_OPT_SCTP_HEARTBEAT_MS, and
 * CONNECT_OPT_SCTP_MAX_RETRANS of them (or retransmissions) unanswered
 * end the association; the reader then reports CONNECT_EDEADPEER.
 *
 * Locking theory: as transport.h says.  The reader's recv and the
 * writer's sendv and shutdown run at the same time on one socket, which
 * usrsctp allows; abort may run beside them (it sends an ABORT through the
 * same socket); destroy runs alone.
 */
#include "connect_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* <usrsctp.h> only: the kernel's <netinet/sctp.h> must not come in too
 * (their constants differ). */
#include <usrsctp.h>

#include "transport.h"
#include "alloc.h"

/* Largest SCTP message written: a frame stream is cut into these. */
#define SCTP_MSG (64u * 1024u)
/*
 * Send and receive buffer of each socket.  The receive buffer no larger:
 * usrsctp tells the peer about room freed by a read only when one read
 * frees an eighth of the buffer (16 KiB here: a quarter of a frame
 * message); otherwise a sender facing a full window waits for its
 * retransmission timer to probe, a stall of 100 ms and more each time.
 * (A message must fit in the send buffer.)
 */
#define SCTP_SNDBUF (128u * 1024u)
#define SCTP_RCVBUF (128u * 1024u)
/* Path MTU over loopback (see sctp_loopback_mtu()). */
#define SCTP_LOOPBACK_MTU 32768u
/* Buffers of the stack's UDP sockets (see stack_udp_buffers()). */
#define SCTP_UDP_BUF (8u * 1024u * 1024u)
/* Retransmission timeouts (ms): loopback and LAN answer in well under
 * the RFC's 1 s minimum, and a lost packet should not cost a second. */
#define SCTP_RTO_MIN 100u
#define SCTP_RTO_INITIAL 500u
#define SCTP_RTO_MAX 60000u
/* When the stack stops: how long associations still finishing their
 * shutdown may take before they are aborted, and how long usrsctp_finish
 * is retried. */
#define SCTP_ORPHAN_WAIT_MS 2000
#define SCTP_FINISH_WAIT_MS 3000
/* How long the last close tries usrsctp_finish before the stop goes on
 * in a thread of its own (see stack_stop()). */
#define SCTP_FINISH_QUICK_MS 500
/* A socket whose association is gone, and whose reference count stays
 * above ours this long, holds usrsctp's leaks (see so_refs()). */
#define SCTP_ZOMBIE_MS 1000

/*
 * Not in <usrsctp.h>, but answered by usrsctp (its netinet/sctp.h): the
 * bytes of the association queued for sending and not yet acknowledged.
 */
#define CN_SCTP_GET_SNDBUF_USE 0x00001101
struct cn_sctp_sockstat {
	sctp_assoc_t ss_assoc_id;
	uint32_t ss_total_sndbuf;
	uint32_t ss_total_recv_buf;
};

/* ---- wakers -------------------------------------------------------------- */

struct sctp_waker {
	pthread_mutex_t m;
	pthread_cond_t cv;
	_Atomic unsigned seq; /* advanced on every event of the socket */
	_Atomic int waiters;  /* threads asleep (or about to be) */
	struct sctp_waker *next_free;
	struct sctp_waker *next_all;
};

/* Runs on the stack's threads: no usrsctp call, no lock but the waker's. */
static void sctp_upcall(struct socket *so, void *arg, int flags)
{
	struct sctp_waker *w = arg;

	(void)so;
	(void)flags;
	if (w == NULL)
		return;
	atomic_fetch_add(&w->seq, 1);
	if (atomic_load(&w->waiters) > 0) {
		pthread_mutex_lock(&w->m);
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->m);
	}
}

static void waker_kick(struct sctp_waker *w)
{
	atomic_fetch_add(&w->seq, 1);
	pthread_mutex_lock(&w->m);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->m);
}

/*
 * Sleep until the socket's sequence number moves past seq0 (read before
 * the attempt that found nothing to do), *stop is set, or the deadline
 * passes.  False on timeout.  A waker that changed between seq0 and here
 * returns at once: the upcall advances the number before it looks for
 * sleepers, and we count ourselves before we look at the number.
 */
static bool waker_sleep(struct sctp_waker *w, unsigned seq0,
			_Atomic int *stop, int64_t deadline)
{
	bool ok = true;

	atomic_fetch_add(&w->waiters, 1);
	pthread_mutex_lock(&w->m);
	while (atomic_load(&w->seq) == seq0 && !atomic_load(stop)) {
		if (!cn_cond_wait_until(&w->cv, &w->m, deadline)) {
			ok = atomic_load(&w->seq) != seq0;
			break;
		}
	}
	pthread_mutex_unlock(&w->m);
	atomic_fetch_sub(&w->waiters, 1);
	return ok;
}

/* ---- the stack ----------------------------------------------------------- */

/* A closed connection's socket, kept by the stack: its association
 * finishes its shutdown, or usrsctp leaked references on it (zombies). */
struct kept {
	struct socket *so;
	int refs;          /* zombie: references seen, and since when */
	int64_t since;
	struct kept *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t stopped; /* a stop ended (done or called off) */
	int users;         /* transports and listeners holding the stack */
	bool running;      /* usrsctp_init done, usrsctp_finish not yet */
	bool stopping;     /* stack_stop under way (it sleeps unlocked) */
	bool broken;       /* running without its UDP port: must stop */
	bool stuck;        /* a stop failed: usrsctp holds an endpoint */
	uint16_t port;     /* the UDP port, while running */
	struct sctp_waker *free_wakers, *all_wakers;
	struct kept *kept;
} stack = { .lock = PTHREAD_MUTEX_INITIALIZER,
	    .stopped = PTHREAD_COND_INITIALIZER };

/* Under stack.lock. */
static struct sctp_waker *waker_get(void)
{
	struct sctp_waker *w = stack.free_wakers;

	if (w != NULL) {
		stack.free_wakers = w->next_free;
		atomic_store(&w->waiters, 0);
		return w;
	}
	w = cn_calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	pthread_mutex_init(&w->m, NULL);
	cn_cond_init(&w->cv);
	w->next_all = stack.all_wakers;
	stack.all_wakers = w;
	return w;
}

/* Under stack.lock. */
static void waker_put(struct sctp_waker *w)
{
	w->next_free = stack.free_wakers;
	stack.free_wakers = w;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Bind a UDP socket of family af to `port` on every address; 0: any port,
 * written back.  Returns 0, or the errno of the failure (EAFNOSUPPORT when
 * the family is missing).
 */
static int udp_bind_probe(int af, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, e = 0, one = 1;

	fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return errno;
	memset(&ss, 0, sizeof(ss));
	if (af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		in->sin_port = htons(*port);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		/* As usrsctp binds its IPv6 socket. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_any;
		in6->sin6_port = htons(*port);
		len = sizeof(*in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		e = errno;
	} else if (*port == 0) {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			e = errno;
		else
			*port = ntohs(af == AF_INET ?
					      ((struct sockaddr_in *)&ss)->sin_port :
					      ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	close(fd);
	return e;
}

/*
 * Make sure usrsctp will get UDP port *port (0: find a free one): bound by
 * nobody, over IPv4 and (where the host has it) IPv6.
 */
static int udp_port_pick(uint16_t *port, char *reason, size_t len)
{
	char buf[128];
	int e = 0;

	for (int tries = 0; tries < 16; tries++) {
		uint16_t p = *port;

		e = udp_bind_probe(AF_INET, &p);
		if (e == 0) {
			e = udp_bind_probe(AF_INET6, &p);
			if (e == EAFNOSUPPORT || e == EADDRNOTAVAIL)
				e = 0;
		}
		if (e == 0) {
			*port = p;
			return CONNECT_OK;
		}
		if (*port != 0 || e != EADDRINUSE)
			break;
	}
	if (e == EADDRINUSE)
		snprintf(reason, len,
			 "UDP port %u, which SCTP runs over, is taken by "
			 "another program (CONNECT_OPT_SCTP_UDP_PORT)",
			 (unsigned)*port);
	else
		snprintf(reason, len, "UDP port %u for SCTP: %s",
			 (unsigned)*port, strerror_r(e, buf, sizeof(buf)));
	return e == EADDRINUSE ? CONNECT_EADDRINUSE : cn_err_from_errno(e);
}

/* Under stack.lock: the association of so is gone (or never was). */
static bool assoc_gone(struct socket *so)
{
	struct sctp_status ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	return usrsctp_getsockopt(so, IPPROTO_SCTP, SCTP_STATUS, &ss, &len) !=
	       0;
}

/* Read and drop what waits on a socket nobody will read any more, so
 * that closing it does not abort the association. */
static void sctp_drain(struct socket *so)
{
	char buf[16384];

	for (int i = 0; i < 4096; i++) {
		struct sctp_rcvinfo info;
		socklen_t infolen = sizeof(info), fromlen = 0;
		unsigned infotype = 0;
		int flags = 0;

		if (usrsctp_recvv(so, buf, sizeof(buf), NULL, &fromlen, &info,
				  &infolen, &infotype, &flags) <= 0)
			break;
	}
}

/*
 * Sockets whose association is gone, and the references usrsctp leaks on
 * them.
 *
 * usrsctp up to 0.9.5 (Debian 12's) takes a reference on a socket each
 * time the association-kill timer fires while the socket is open, and
 * never gives it back (fixed upstream after 0.9.5: sctplab/usrsctp commit
 * 37a9dc3, issue #571).  That timer runs when an association is freed
 * while something is inside the stack for it: our reader or writer
 * meeting the peer's ABORT, or the stack's own timer giving up on a dead
 * peer.  Such a socket is never freed, and usrsctp_finish() then fails
 * for good.
 *
 * The reference count is the first member of usrsctp's struct socket
 * (user_socketvar.h, in every release).  Once the association is gone
 * (freed: a one-to-one socket shows it until then) no packet or timer
 * takes a new reference, so a count of 1 is ours alone and the socket is
 * closed (and freed) at once.  A higher count is a leak, or a reference
 * the stack's thread is about to give back: the socket is kept (a
 * zombie), closed by a later sweep that finds the count back to 1, or
 * once per reference when the count has stayed the same for
 * SCTP_ZOMBIE_MS or the stack stops with no association left.  A fixed
 * usrsctp never makes zombies.
 *
 * Worse, an association can stay "about to be freed" for good: after
 * many associations with large messages in flight were cut at once, one
 * was seen with a reference to it (the association's own count, not the
 * socket's) that usrsctp never gave back.  Its kill timer then fires
 * again and again, each time leaking one more socket reference (so_count
 * 524, and 1258 a few seconds later); neither the association, nor the
 * socket, nor its endpoint is ever freed, and usrsctp_finish() fails for
 * as long as the process lives.  Nothing outside usrsctp can end that:
 * such a socket is closed once (our own reference, at the stop) and
 * forgotten, and the stack stays up for the process's next SCTP users
 * (stack.stuck, see stack_stop()).
 */
static int so_refs(struct socket *so)
{
	return *(volatile int *)(void *)so;
}

/*
 * End the association with an ABORT (nothing when it is gone).  usrsctp
 * refuses even an ABORT on a non-blocking socket whose send queue is
 * full ("would block"), so the socket blocks for this call: an ABORT
 * never waits, and a reader or writer that meets the blocking socket
 * meanwhile is woken by the ABORT itself.
 */
static void sctp_abort_assoc(struct socket *so)
{
	struct sctp_sndinfo si;

	memset(&si, 0, sizeof(si));
	si.snd_flags = SCTP_ABORT;
	usrsctp_set_non_blocking(so, 0);
	/* No cause text; usrsctp wants a buffer all the same. */
	usrsctp_sendv(so, &si, 0, NULL, 0, &si, sizeof(si),
		      SCTP_SENDV_SNDINFO, 0);
	usrsctp_set_non_blocking(so, 1);
}

/*
 * Close with an ABORT to the peer (if an association is left).  Only when
 * the stack stops, for an association that would not end: usrsctp 0.9.5
 * may free a socket under a packet of its association being processed if
 * it is closed while the association lives (the packet takes a reference
 * after the close dropped the last one), so sockets are otherwise closed
 * only once their association is gone.
 */
static void sctp_close_abort(struct socket *so)
{
	struct linger lg = { 1, 0 };

	usrsctp_setsockopt(so, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	usrsctp_close(so);
}

/*
 * Under stack.lock: close the kept sockets whose association is gone and
 * that nothing else holds.  They are not read here: reading a socket
 * while the peer's ABORT ends its association makes usrsctp 0.9.5 leak a
 * reference (see above).  A socket is unread input an ABORT could follow
 * only if it stays alive; the peer's stack answers for that.
 */
static void kept_sweep(void)
{
	struct kept **pp = &stack.kept, *k;

	while ((k = *pp) != NULL) {
		int n = assoc_gone(k->so) ? so_refs(k->so) : 0;

		if (n == 1) {
			usrsctp_close(k->so);
		} else if (n > 1 && n == k->refs &&
			   cn_now_ms() - k->since >= SCTP_ZOMBIE_MS &&
			   n <= 4096) {
			/* Unchanged for long after the association went:
			 * leaks, not a reference about to be given back. */
			cn_log(CONNECT_LOG_DEBUG, "CONNECT-SCTP",
			       "usrsctp leaked %d references to a socket; "
			       "given back", n - 1);
			while (n-- > 0)
				usrsctp_close(k->so);
		} else {
			if (n != k->refs) {
				k->refs = n;
				k->since = cn_now_ms();
			}
			pp = &k->next;
			continue;
		}
		*pp = k->next;
		cn_free(k);
	}
}

/*
 * Under stack.lock, no user: sleep ms with the lock released, so that
 * dials, listens and closes elsewhere go on meanwhile.  False when a user
 * came: the stop is called off (the stack runs on for it).
 */
static bool stop_pause(int ms)
{
	pthread_mutex_unlock(&stack.lock);
	sleep_ms(ms);
	pthread_mutex_lock(&stack.lock);
	return stack.users == 0;
}

/* Under stack.lock: a kept socket whose association still lives. */
static bool kept_assoc_left(void)
{
	for (struct kept *k = stack.kept; k != NULL; k = k->next)
		if (!assoc_gone(k->so))
			return true;
	return false;
}

/* Under stack.lock: usrsctp_finish, retried for `ms` (it fails while
 * associations are being freed; it joins the stack's threads when it
 * succeeds).  With `pause`, the lock is released between tries and a
 * user coming calls it off. */
static bool stack_finish(int ms, bool pause)
{
	int64_t deadline = cn_now_ms() + ms;
	struct sctp_waker *w;

	while (usrsctp_finish() != 0) {
		if (cn_now_ms() >= deadline)
			return false;
		if (!pause)
			sleep_ms(5);
		else if (!stop_pause(5) || stack.kept != NULL)
			return false; /* a user came, or came and went */
	}
	stack.running = false;
	stack.broken = false;
	stack.stuck = false;
	while ((w = stack.all_wakers) != NULL) {
		stack.all_wakers = w->next_all;
		pthread_mutex_destroy(&w->m);
		pthread_cond_destroy(&w->cv);
		cn_free(w);
	}
	stack.free_wakers = NULL;
	return true;
}

/*
 * Under stack.lock, stack.stopping set, no user: stop the stack.  Its
 * waits (for shutdowns under way, ABORTs, leaked references,
 * usrsctp_finish: seconds at worst) sleep with the lock released; a user
 * who comes meanwhile calls the stop off and keeps the stack, one who
 * wants another UDP port waits for the end of the stop (stack_acquire).
 */
static void stop_run(void)
{
	int64_t deadline;
	struct kept **pp, *k;
	int rounds = 0;

again:
	/* A user that came and went while we slept may have left an
	 * association: from the top for it (a few times at most). */
	if (++rounds > 3)
		goto stuck;
	deadline = cn_now_ms() + SCTP_ORPHAN_WAIT_MS;
	/* Shutdowns under way get their time, then an ABORT. */
	kept_sweep();
	while (kept_assoc_left() && cn_now_ms() < deadline) {
		if (!stop_pause(2))
			goto called_off;
		kept_sweep();
	}
	/* Then an ABORT, and a moment for it. */
	for (k = stack.kept; k != NULL; k = k->next)
		if (!assoc_gone(k->so))
			sctp_abort_assoc(k->so);
	deadline = cn_now_ms() + 200;
	kept_sweep();
	while (kept_assoc_left() && cn_now_ms() < deadline) {
		if (!stop_pause(2))
			goto called_off;
		kept_sweep();
	}
	for (pp = &stack.kept; (k = *pp) != NULL;) {
		if (!assoc_gone(k->so)) {
			sctp_close_abort(k->so);
			*pp = k->next;
			cn_free(k);
		} else {
			pp = &k->next;
		}
	}
	/*
	 * What is left are zombies: sockets whose association is gone and
	 * whose reference count is above ours.  kept_sweep() gives the extra
	 * references back only once the count has stayed the same for
	 * SCTP_ZOMBIE_MS (it is read without usrsctp's socket lock, which we
	 * cannot reach: a count in motion is not trusted).  A zombie still
	 * there after a few such periods is left alone, and the stack with
	 * it: leaking is safe, closing a socket once too often is not.
	 */
	deadline = cn_now_ms() + 3 * SCTP_ZOMBIE_MS;
	while (stack.kept != NULL && cn_now_ms() < deadline) {
		if (!stop_pause(10))
			goto called_off;
		if (kept_assoc_left())
			goto again;
		kept_sweep();
	}
	if (stack.kept != NULL) {
		stack.stuck = true;
		cn_log(CONNECT_LOG_WARN, "CONNECT-SCTP",
		       "usrsctp holds references to a closed socket; the SCTP "
		       "stack stays up");
		goto called_off;
	}
	/* A stack that could not stop before may hold an endpoint usrsctp
	 * cannot free (usrsctp_finish fails at once): a short try. */
	if (stack_finish(stack.stuck ? SCTP_FINISH_QUICK_MS :
				       SCTP_FINISH_WAIT_MS, true) ||
	    stack.users > 0)
		goto called_off;
	if (stack.kept != NULL)
		goto again;
stuck:
	if (!stack.stuck)
		cn_log(CONNECT_LOG_WARN, "CONNECT-SCTP",
		       "the SCTP stack did not stop; it stays up, for this "
		       "process's next SCTP users");
	stack.stuck = true;
called_off:
	stack.stopping = false;
	pthread_cond_broadcast(&stack.stopped);
}

static void *stopper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&stack.lock);
	if (stack.users == 0) {
		stop_run();
	} else { /* a user came before we ran: the stack is theirs */
		stack.stopping = false;
		pthread_cond_broadcast(&stack.stopped);
	}
	pthread_mutex_unlock(&stack.lock);
	return NULL;
}

/*
 * Under stack.lock, the last user gone: stop the stack.  When nothing of
 * ours is left in it, here: usrsctp_finish joins its threads, whose
 * receive loops wake every 100 ms, so this takes 0.1 to 0.4 s.  When
 * associations still end or usrsctp leaked references (or the first tries
 * fail), a stop takes seconds: it goes on in a thread of its own, which
 * ends with it, and the last close returns (where that thread cannot
 * start, the stop runs here).
 *
 * A stack that could not stop (stack.stuck: usrsctp keeps an endpoint it
 * will never free, see stop_run()) stays up and serves the process's
 * next SCTP users on its port; each later last close tries
 * usrsctp_finish once, which fails at once while that endpoint is there.
 */
static void stack_stop(void)
{
	pthread_t th;

	if (stack.stopping) /* the stopper sees users == 0 when it wakes */
		return;
	stack.stopping = true;
	kept_sweep();
	/* Stuck: usrsctp_finish fails at once, one try is enough. */
	if (stack.kept == NULL &&
	    stack_finish(stack.stuck ? 0 : SCTP_FINISH_QUICK_MS, true))
		goto done;
	if (stack.users > 0 || /* came while we slept: the stack is theirs */
	    (stack.stuck && stack.kept == NULL))
		goto done;
	if (cn_thread_start(&th, stopper_main, NULL, 256u << 10) ==
	    CONNECT_OK) {
		pthread_detach(th);
		return; /* the stopper ends the stop */
	}
	stop_run();
	return;
done:
	stack.stopping = false;
	pthread_cond_broadcast(&stack.stopped);
}

/*
 * usrsctp gives its UDP sockets 128 KiB of buffer: a burst of packets
 * overflows that, and each loss costs a retransmission timeout (at least
 * SCTP_RTO_MIN of silence).  The sockets are its own, but they are
 * descriptors of this process bound to our port: find them and give them
 * room (best effort; the system's net.core.rmem_max caps it unless the
 * process may exceed it).
 *
 * usrsctp also opens them without close-on-exec: a child the application
 * forks and executes would inherit them, hold the port after our stack
 * stopped (the next start on it then fails with CONNECT_EADDRINUSE), and
 * take some of its packets.  They get FD_CLOEXEC here, right after
 * usrsctp_init().  A fork and exec by another thread between the two
 * still passes them on: usrsctp gives no way to close that window.
 */
static uint16_t sockaddr_port(const struct sockaddr *sa);

static void stack_udp_buffers(uint16_t port)
{
	int bytes = (int)SCTP_UDP_BUF;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd, flags, type = 0;
		socklen_t tlen = sizeof(type);

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(d) ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
		    type != SOCK_DGRAM ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
		    sockaddr_port((struct sockaddr *)&ss) != port)
			continue;
		flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes,
				   sizeof(bytes));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes,
				   sizeof(bytes));
	}
	closedir(d);
}

/*
 * Under stack.lock, usrsctp just started on `port`: whether it holds it.
 * usrsctp binds the port without telling whether it could: if we can
 * bind it now, it did not (someone took it meanwhile).  Over IPv4, and
 * over IPv6 where the host has it.  0, or a code with the reason.
 */
static int stack_port_check(uint16_t port, char *reason, size_t len)
{
	static const int afs[] = { AF_INET, AF_INET6 };
	char buf[128];

	for (size_t i = 0; i < sizeof(afs) / sizeof(afs[0]); i++) {
		uint16_t again = port;
		int e = udp_bind_probe(afs[i], &again);

		if (e == EADDRINUSE ||
		    (afs[i] == AF_INET6 &&
		     (e == EAFNOSUPPORT || e == EADDRNOTAVAIL)))
			continue;
		if (e == 0) {
			snprintf(reason, len,
				 "the SCTP stack could not bind UDP port %u "
				 "(%s; taken by another program)",
				 (unsigned)port,
				 afs[i] == AF_INET ? "IPv4" : "IPv6");
			return CONNECT_EADDRINUSE;
		}
		/* Out of descriptors, or the like: we cannot tell. */
		snprintf(reason, len,
			 "checking UDP port %u for SCTP: %s", (unsigned)port,
			 strerror_r(e, buf, sizeof(buf)));
		e = cn_err_from_errno(e);
		return e == CONNECT_OK || e == CONNECT_EAGAIN ? CONNECT_EIO : e;
	}
	return CONNECT_OK;
}

/* Under stack.lock: start usrsctp on UDP port `want` (0: any). */
static int stack_start(uint16_t want, char *reason, size_t len)
{
	uint16_t port = want;
	int rc;

	rc = udp_port_pick(&port, reason, len);
	if (rc)
		return rc;
	usrsctp_init(port, NULL, NULL);
	stack.running = true;
	stack.port = port;
	rc = stack_port_check(port, reason, len);
	if (rc) {
		/* Nothing on the stack yet: it stops at once, or it is
		 * stopped before the next start. */
		if (!stack_finish(1000, false))
			stack.broken = true;
		return rc;
	}
	/* No association is unused for long enough to be reaped by the
	 * stack; checksums are checked on loopback too. */
	usrsctp_sysctl_set_sctp_no_csum_on_loopback(0);
	stack_udp_buffers(port);
	return CONNECT_OK;
}

/* Take a reference on the stack (started on UDP port `want`, 0: any);
 * *port says which port it runs on.  With a waker for a socket. */
static int stack_acquire(uint16_t want, uint16_t *port,
			 struct sctp_waker **wp, char *reason, size_t len)
{
	int rc = CONNECT_OK;

	pthread_mutex_lock(&stack.lock);
	/* Another port is for a stack that stopped: wait for a stop under
	 * way to end (a user on the same port just keeps the stack). */
	while (stack.stopping && want != 0 && want != stack.port)
		pthread_cond_wait(&stack.stopped, &stack.lock);
	if (stack.running && stack.broken && stack.users == 0 &&
	    !stack_finish(1000, false)) {
		snprintf(reason, len,
			 "the SCTP stack, started without its UDP port, "
			 "cannot be stopped");
		rc = CONNECT_EIO;
	} else if (!stack.running) {
		rc = stack_start(want, reason, len);
	} else if (want != 0 && want != stack.port) {
		snprintf(reason, len,
			 "this process's SCTP stack runs on UDP port %u, not "
			 "%u (CONNECT_OPT_SCTP_UDP_PORT: one port per process)",
			 (unsigned)stack.port, (unsigned)want);
		rc = CONNECT_EADDRINUSE;
	}
	if (rc == CONNECT_OK) {
		*wp = waker_get();
		if (*wp == NULL) {
			snprintf(reason, len, "out of memory");
			rc = CONNECT_ENOMEM;
		}
	}
	if (rc == CONNECT_OK) {
		stack.users++;
		*port = stack.port;
		kept_sweep();
	} else if (stack.running && !stack.broken && stack.users == 0) {
		stack_stop();
	}
	pthread_mutex_unlock(&stack.lock);
	return rc;
}

/* Give back a reference (and the waker, or NULL); hand over a socket (or
 * NULL) to be closed once its association is gone. */
static void stack_release(struct sctp_waker *w, struct socket *so)
{
	struct kept *k = NULL;

	if (so != NULL) {
		k = cn_malloc(sizeof(*k));
		if (k == NULL) {
			sctp_abort_assoc(so);
			sctp_close_abort(so);
		}
	}
	pthread_mutex_lock(&stack.lock);
	if (k != NULL) {
		k->so = so;
		k->refs = 0;
		k->since = cn_now_ms();
		k->next = stack.kept;
		stack.kept = k;
	}
	if (w != NULL)
		waker_put(w);
	kept_sweep();
	if (--stack.users == 0)
		stack_stop();
	pthread_mutex_unlock(&stack.lock);
}

/* An accepted socket the listener cannot use (the stack runs): ABORT its
 * association and let the stack close it. */
static void stack_keep(struct socket *so)
{
	struct kept *k = cn_malloc(sizeof(*k));

	sctp_abort_assoc(so);
	pthread_mutex_lock(&stack.lock);
	if (k != NULL) {
		k->so = so;
		k->refs = 0;
		k->since = cn_now_ms();
		k->next = stack.kept;
		stack.kept = k;
		kept_sweep();
	} else {
		sctp_close_abort(so);
	}
	pthread_mutex_unlock(&stack.lock);
}

/* ---- sockets ------------------------------------------------------------- */

static void sockaddr_port_set(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)(void *)sa)->sin_port = htons(port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons(port);
}

static uint16_t sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)
				     ->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)
				     ->sin6_port);
	return 0;
}

static socklen_t sockaddr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					   sizeof(struct sockaddr_in);
}

/* The first local (or peer) address of the association, as text. */
static void sctp_addr_text(struct socket *so, bool peer, char *buf,
			   size_t len)
{
	struct sockaddr *addrs = NULL;
	int n = peer ? usrsctp_getpaddrs(so, 0, &addrs) :
		       usrsctp_getladdrs(so, 0, &addrs);

	if (n > 0 && addrs != NULL)
		cn_addr_format(addrs, buf, len);
	else
		snprintf(buf, len, "(unknown)");
	if (addrs != NULL) {
		if (peer)
			usrsctp_freepaddrs(addrs);
		else
			usrsctp_freeladdrs(addrs);
	}
}

/*
 * The address for SCTP_PEER_ADDR_PARAMS: unspecified before the socket
 * has an association (the endpoint's defaults, which an association set
 * up later takes), the wildcard address of the peer's family once it has
 * one (every path of the association: usrsctp refuses an unspecified
 * family there, EAFNOSUPPORT).
 */
static void paddr_any(struct sctp_paddrparams *pp, const struct sockaddr *peer)
{
	memset(&pp->spp_address, 0, sizeof(pp->spp_address));
	if (peer == NULL)
		return;
	if (peer->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&pp->spp_address;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (peer->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 =
			(struct sockaddr_in6 *)&pp->spp_address;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_any;
	}
}

/* usrsctp_setsockopt, naming the option in *what when it fails. */
#define SETOPT(so, level, name, val, what)                                 \
	(usrsctp_setsockopt((so), (level), (name), (val), sizeof(*(val))) == 0 \
		 ? 0                                                           \
		 : (*(what) = #name, errno ? errno : EINVAL))

/*
 * DTLS over SCTP (RFC 6083): DATA chunks are authenticated (SCTP-AUTH,
 * RFC 4895), asked for in the INIT, so before connect or listen; the DTLS
 * layer keys it once its handshake is done (auth_key).
 */
static int sctp_auth_data(struct socket *so, const char **what)
{
	struct sctp_authchunk ac = { .sauth_chunk = 0 /* DATA */ };

	return SETOPT(so, IPPROTO_SCTP, SCTP_AUTH_CHUNK, &ac, what);
}

/*
 * Socket options of every socket: a new one (peer NULL: the endpoint's
 * defaults) or an accepted one (peer: its association).  0, or the errno
 * of the first that failed, *what naming it.
 */
static int sctp_apply_opts(struct socket *so, const struct connect_opts *o,
			   const struct sockaddr *peer, const char **what)
{
	uint32_t hb = (uint32_t)o->v[CONNECT_OPT_SCTP_HEARTBEAT_MS];
	uint16_t rtx = (uint16_t)o->v[CONNECT_OPT_SCTP_MAX_RETRANS];
	static const uint16_t events[] = { SCTP_ASSOC_CHANGE,
					   SCTP_PEER_ADDR_CHANGE,
					   SCTP_SHUTDOWN_EVENT,
					   SCTP_AUTHENTICATION_EVENT };
	struct sctp_paddrparams pp;
	struct sctp_rtoinfo rto;
	struct sctp_assocparams ap;
	struct sctp_initmsg im;
	int on = 1, sbuf = (int)SCTP_SNDBUF, rbuf = (int)SCTP_RCVBUF, e;

	if (usrsctp_set_non_blocking(so, 1) != 0) {
		*what = "non-blocking mode";
		return errno ? errno : EINVAL;
	}
	if ((e = SETOPT(so, IPPROTO_SCTP, SCTP_NODELAY, &on, what)) ||
	    (e = SETOPT(so, SOL_SOCKET, SO_SNDBUF, &sbuf, what)) ||
	    (e = SETOPT(so, SOL_SOCKET, SO_RCVBUF, &rbuf, what)))
		return e;
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		struct sctp_event ev = { .se_assoc_id = SCTP_FUTURE_ASSOC,
					 .se_type = events[i],
					 .se_on = 1 };

		if ((e = SETOPT(so, IPPROTO_SCTP, SCTP_EVENT, &ev, what)))
			return e;
	}
	/* One stream each way: the frames are one ordered stream. */
	memset(&im, 0, sizeof(im));
	im.sinit_num_ostreams = 1;
	im.sinit_max_instreams = 1;
	if ((e = SETOPT(so, IPPROTO_SCTP, SCTP_INITMSG, &im, what)))
		return e;
	/*
	 * Retransmission timeouts capped at the heartbeat interval, so that
	 * a dead peer is noticed within a few intervals.  The price: a path
	 * whose round trip takes longer than the interval never answers in
	 * time, and a live peer is declared dead (the README says to keep
	 * the interval well above the round trip).
	 */
	memset(&rto, 0, sizeof(rto));
	rto.srto_min = hb && hb < SCTP_RTO_MIN ? hb : SCTP_RTO_MIN;
	rto.srto_initial = SCTP_RTO_INITIAL;
	rto.srto_max = hb && hb < SCTP_RTO_MAX ? hb : SCTP_RTO_MAX;
	if (rto.srto_max < rto.srto_min)
		rto.srto_max = rto.srto_min;
	if (rto.srto_initial > rto.srto_max)
		rto.srto_initial = rto.srto_max;
	if ((e = SETOPT(so, IPPROTO_SCTP, SCTP_RTOINFO, &rto, what)))
		return e;
	memset(&ap, 0, sizeof(ap));
	ap.sasoc_asocmaxrxt = rtx;
	if ((e = SETOPT(so, IPPROTO_SCTP, SCTP_ASSOCINFO, &ap, what)))
		return e;
	memset(&pp, 0, sizeof(pp));
	paddr_any(&pp, peer);
	pp.spp_hbinterval = hb;
	pp.spp_pathmaxrxt = rtx;
	pp.spp_flags = hb ? SPP_HB_ENABLE : SPP_HB_DISABLE;
	return SETOPT(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, what);
}

/*
 * Over loopback, packets as large as the stack takes: usrsctp does not
 * learn the loopback's MTU and cuts everything to ~1,400-byte packets, a
 * UDP datagram (two system calls) each; 32 KiB packets move four times
 * as much.  (usrsctp reads datagrams into 64 KiB and no more.)  Other
 * paths keep path MTU discovery.  Set on a socket without an
 * association yet (the endpoint's default), peer being the address it
 * will talk to (a dialer) or that it is bound to (a listener).  0, or
 * the errno of the failure.
 */
static int sctp_loopback_mtu(struct socket *so, const struct sockaddr *peer,
			     const char **what)
{
	struct sctp_paddrparams pp;
	socklen_t len = sizeof(pp);
	bool loop = false;

	if (peer->sa_family == AF_INET)
		loop = (ntohl(((const struct sockaddr_in *)(const void *)peer)
				      ->sin_addr.s_addr) >> 24) == 127;
	else if (peer->sa_family == AF_INET6)
		loop = IN6_IS_ADDR_LOOPBACK(
			&((const struct sockaddr_in6 *)(const void *)peer)
				 ->sin6_addr);
	if (!loop)
		return 0;
	memset(&pp, 0, sizeof(pp));
	if (usrsctp_getsockopt(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp,
			       &len) != 0) {
		*what = "SCTP_PEER_ADDR_PARAMS (read)";
		return errno ? errno : EINVAL;
	}
	memset(&pp.spp_address, 0, sizeof(pp.spp_address));
	pp.spp_pathmtu = SCTP_LOOPBACK_MTU;
	pp.spp_flags = (pp.spp_flags & ~(uint32_t)SPP_PMTUD_ENABLE) |
		       SPP_PMTUD_DISABLE;
	/* Heartbeats as they are: asking for neither leaves them alone. */
	pp.spp_flags &= ~(uint32_t)(SPP_HB_ENABLE | SPP_HB_DISABLE);
	return SETOPT(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, what);
}

/* ---- the connected transport --------------------------------------------- */

struct sctp_transport {
	struct cn_transport base;
	struct socket *so;
	struct sctp_waker *w;
	_Atomic int peer_shut;   /* the peer ended the association */
	_Atomic int failed;      /* errno of the association's failure */
	_Atomic int lost;        /* the association was aborted (reader, from
				  * SCTP_ASSOC_CHANGE): ECONNRESET by the
				  * peer, ECONNABORTED by our stack */
	_Atomic int unreachable; /* the peer's address went unreachable
				  * (heartbeats or retransmissions
				  * unanswered) */
	_Atomic int clean;       /* our shutdown completed */
	_Atomic int cut;         /* abort sent an ABORT */
	_Atomic int abort_unacked; /* bytes unacknowledged when cut */
	bool server;             /* accepted (SCTP-AUTH: who switches) */
	_Atomic int auth;        /* SCTP-AUTH key 1: 0 none, 1 installed,
				  * 2 sent with, 3 the peer's too (key 0
				  * deactivated), 4 key 0 deleted */
	uint8_t *sbuf;           /* writer: small pieces made one message */
	uint8_t nbuf[256];       /* reader: a notification read in pieces */
	size_t nlen;
};

static struct sctp_transport *sctp_of(struct cn_transport *t)
{
	return (struct sctp_transport *)t;
}

/* The association's state (SCTP_ESTABLISHED...), or -1 when gone. */
static int sctp_state(struct sctp_transport *st)
{
	struct sctp_status ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (usrsctp_getsockopt(st->so, IPPROTO_SCTP, SCTP_STATUS, &ss, &len) !=
	    0)
		return -1;
	return ss.sstat_state;
}

/* A state of an association that is (or was) set up: established or
 * shutting down. */
static bool sctp_state_connected(int state)
{
	switch (state) {
	case SCTP_ESTABLISHED:
	case SCTP_SHUTDOWN_PENDING:
	case SCTP_SHUTDOWN_SENT:
	case SCTP_SHUTDOWN_RECEIVED:
	case SCTP_SHUTDOWN_ACK_SENT:
		return true;
	default:
		return false;
	}
}

/* Bytes handed to the stack and not acknowledged; -1 when unknown. */
static int64_t sctp_outq(struct sctp_transport *st)
{
	struct cn_sctp_sockstat ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (usrsctp_getsockopt(st->so, IPPROTO_SCTP, CN_SCTP_GET_SNDBUF_USE,
			       &ss, &len) != 0)
		return -1;
	return ss.ss_total_sndbuf;
}

/*
 * The error the association ended with (0: none seen).  The socket's
 * error alone does not tell: usrsctp hands it to the first recv that
 * meets it and clears it, and our reader may have taken it without
 * recording it yet.  But an association lost is first an
 * SCTP_ASSOC_CHANGE notification, queued before the error is set, and a
 * recv returns what is queued before the error: a reader that took the
 * error has recorded the notification (st->lost) before.  A reader that
 * stopped reading leaves the error to SO_ERROR (which does not clear it).
 */
static int sctp_so_error(struct sctp_transport *st)
{
	int e = atomic_load(&st->failed);
	socklen_t len = sizeof(e);

	if (e == 0)
		e = atomic_load(&st->lost);
	if (e == 0 &&
	    usrsctp_getsockopt(st->so, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		e = 0;
	return e;
}

/*
 * Record a failure (errno e) of `what` and return its code.  A refused
 * send (ECONNRESET, whatever ended the association) and a call on an
 * association already gone say little: what the reader learnt from the
 * notifications, the association's state and the socket's error say why.
 */
static int sctp_fail(struct sctp_transport *st, const char *what, int e)
{
	struct cn_transport *t = &st->base;
	bool shut = atomic_load(&st->peer_shut);
	char buf[128];
	int code, zero = 0;

	if (atomic_load(&t->aborted))
		return CONNECT_ECLOSED;
	if (e == ECONNRESET || e == ENOTCONN || e == ENOENT || e == EPIPE) {
		int state = sctp_state(st), lost = atomic_load(&st->lost);

		/* usrsctp refuses sends once the peer's SHUTDOWN is in,
		 * before our reader has seen it. */
		if (state == SCTP_SHUTDOWN_RECEIVED ||
		    state == SCTP_SHUTDOWN_ACK_SENT)
			shut = true;
		if (lost != 0)
			e = lost;
		else if (state < 0 || state == SCTP_CLOSED) {
			int so_e = sctp_so_error(st);

			/* Gone without an error: a graceful end, which our
			 * side did not ask for (its writer is here). */
			if (so_e != 0)
				e = so_e;
			else
				shut = true;
		}
	}
	atomic_compare_exchange_strong(&st->failed, &zero, e);
	/* Our stack's ABORT after the peer's path went unreachable: the
	 * peer stopped answering, as with ETIMEDOUT. */
	if (e == ECONNABORTED && atomic_load(&st->unreachable))
		e = ETIMEDOUT;
	switch (e) {
	case ECONNABORTED:
		/* Our stack's ABORT without a path gone first: the peer
		 * broke the protocol (or the stack ran out of something). */
		code = CONNECT_ECONNRESET;
		cn_transport_set_error(t, code,
				       "%s %s: our SCTP stack aborted the "
				       "association (a protocol violation by "
				       "the peer, not unanswered heartbeats)",
				       what, t->peer);
		break;
	case ETIMEDOUT:
		/* Our stack ended the association: what it does when
		 * heartbeats or retransmissions go unanswered too often (the
		 * peer's own ABORT is ECONNRESET, ours is abort()). */
		code = CONNECT_EDEADPEER;
		cn_transport_set_error(t, code,
				       "%s %s: the peer stopped answering "
				       "(SCTP heartbeats or retransmissions "
				       "unanswered)", what, t->peer);
		break;
	case ECONNRESET:
		code = CONNECT_ECONNRESET;
		/* A send after the peer's SHUTDOWN fails the same way as
		 * after its ABORT. */
		cn_transport_set_error(t, code,
				       shut && atomic_load(&st->lost) == 0 ?
					       "%s %s: the peer shut the SCTP "
					       "association down" :
					       "%s %s: the peer aborted the SCTP "
					       "association", what, t->peer);
		break;
	case ENOENT:
	case ENOTCONN:
		/* No association any more: it ended under us. */
		code = CONNECT_ECONNRESET;
		cn_transport_set_error(t, code,
				       shut ? "%s %s: the peer shut the SCTP "
					      "association down" :
					      "%s %s: the SCTP association is "
					      "gone", what, t->peer);
		break;
	case EPIPE:
		code = CONNECT_ECONNRESET;
		cn_transport_set_error(t, code,
				       "%s %s: the SCTP association is shut "
				       "down", what, t->peer);
		break;
	default:
		code = cn_err_from_errno(e);
		if (code == CONNECT_EAGAIN || code == CONNECT_OK)
			code = CONNECT_EIO;
		cn_transport_set_error(t, code, "%s %s: %s", what, t->peer,
				       strerror_r(e, buf, sizeof(buf)));
		break;
	}
	return code;
}

/* Send with SCTP-AUTH key `n` from now on (best effort). */
static void sctp_auth_activate(struct sctp_transport *st, uint16_t n)
{
	struct sctp_authkeyid id = { .scact_keynumber = n };

	usrsctp_setsockopt(st->so, IPPROTO_SCTP, SCTP_AUTH_ACTIVE_KEY, &id,
			   sizeof(id));
}

/*
 * Delete the association's null key (0), so that DATA authenticated with
 * it is refused from now on (RFC 6083: deactivating only stops our
 * sending with it; usrsctp still accepts it).  Once the peer sends with
 * key 1 (state 3), and when it is safe:
 *
 *   - usrsctp refuses while chunks we sent with key 0 still hold it
 *     (unacknowledged): it says when they are gone (SCTP_AUTH_FREE_KEY),
 *     and we try again then;
 *   - no DATA chunk of the peer may still be missing: one sent with key 0
 *     before its first with key 1 and lost would be refused when
 *     retransmitted, and the association would stall.  On our one
 *     ordered stream a gap holds back every later chunk, so none pending
 *     (SCTP_STATUS) means none missing before the key-1 chunk that
 *     switched us; we try again after the next data read.
 *
 * Runs on the reader.
 */
static void sctp_auth_drop_null(struct sctp_transport *st)
{
	struct sctp_authkeyid id = { .scact_keynumber = 0 };
	struct sctp_status ss;
	socklen_t len = sizeof(ss);

	if (atomic_load(&st->auth) != 3)
		return;
	memset(&ss, 0, sizeof(ss));
	if (usrsctp_getsockopt(st->so, IPPROTO_SCTP, SCTP_STATUS, &ss, &len) !=
		    0 ||
	    ss.sstat_penddata != 0)
		return;
	if (usrsctp_setsockopt(st->so, IPPROTO_SCTP, SCTP_AUTH_DELETE_KEY, &id,
			       sizeof(id)) == 0)
		atomic_store(&st->auth, 4);
}

/*
 * The peer authenticated DATA with key 1 for the first time: it has the
 * key, so we send with it too, and the association's null key (0) goes
 * (RFC 6083): deactivated at once, deleted when safe.  Runs on the
 * reader.
 */
static void sctp_auth_peer_switched(struct sctp_transport *st)
{
	struct sctp_authkeyid id = { .scact_keynumber = 0 };
	int auth = atomic_load(&st->auth);

	if (auth == 0 || auth >= 3)
		return;
	sctp_auth_activate(st, 1);
	usrsctp_setsockopt(st->so, IPPROTO_SCTP, SCTP_AUTH_DEACTIVATE_KEY, &id,
			   sizeof(id));
	atomic_store(&st->auth, 3);
	sctp_auth_drop_null(st);
}

/* A notification read (possibly in pieces) from the socket. */
static void sctp_notification(struct sctp_transport *st, const void *buf,
			      size_t n, int flags)
{
	const union sctp_notification *sn;
	size_t room = sizeof(st->nbuf) - st->nlen;

	memcpy(st->nbuf + st->nlen, buf, n < room ? n : room);
	st->nlen += n < room ? n : room;
	if (!(flags & MSG_EOR))
		return;
	sn = (const void *)st->nbuf;
	if (st->nlen >= sizeof(sn->sn_header) &&
	    sn->sn_header.sn_type == SCTP_SHUTDOWN_EVENT)
		atomic_store(&st->peer_shut, 1);
	/* The association lost: the peer's ABORT comes with its chunk
	 * (sac_info), our stack's without. */
	if (st->nlen >= sizeof(sn->sn_assoc_change) &&
	    sn->sn_header.sn_type == SCTP_ASSOC_CHANGE &&
	    (sn->sn_assoc_change.sac_state == SCTP_COMM_LOST ||
	     sn->sn_assoc_change.sac_state == SCTP_CANT_STR_ASSOC))
		atomic_store(&st->lost,
			     sn->sn_assoc_change.sac_length >
					     sizeof(struct sctp_assoc_change) ?
				     ECONNRESET :
				     ECONNABORTED);
	if (st->nlen >= sizeof(sn->sn_paddr_change) &&
	    sn->sn_header.sn_type == SCTP_PEER_ADDR_CHANGE &&
	    sn->sn_paddr_change.spc_state == SCTP_ADDR_UNREACHABLE)
		atomic_store(&st->unreachable, 1);
	if (st->nlen >= sizeof(sn->sn_auth_event) &&
	    sn->sn_header.sn_type == SCTP_AUTHENTICATION_EVENT &&
	    sn->sn_auth_event.auth_indication == SCTP_AUTH_NEW_KEY &&
	    sn->sn_auth_event.auth_keynumber == 1)
		sctp_auth_peer_switched(st);
	if (st->nlen >= sizeof(sn->sn_auth_event) &&
	    sn->sn_header.sn_type == SCTP_AUTHENTICATION_EVENT &&
	    sn->sn_auth_event.auth_indication == SCTP_AUTH_FREE_KEY &&
	    sn->sn_auth_event.auth_keynumber == 0)
		sctp_auth_drop_null(st);
	st->nlen = 0;
}

static ssize_t sctp_recv(struct cn_transport *t, void *buf, size_t len,
			 int flags)
{
	struct sctp_transport *st = sctp_of(t);

	for (;;) {
		struct sctp_rcvinfo info;
		socklen_t infolen = sizeof(info), fromlen = 0;
		unsigned infotype = 0, seq0;
		int mflags = 0, e;
		ssize_t n;

		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		/* After the peer's SHUTDOWN (which follows its last data)
		 * the stream ended cleanly, whatever comes later. */
		if (atomic_load(&st->peer_shut))
			return 0;
		seq0 = atomic_load(&st->w->seq);
		n = usrsctp_recvv(st->so, buf, len, NULL, &fromlen, &info,
				  &infolen, &infotype, &mflags);
		if (n > 0 && (mflags & MSG_NOTIFICATION)) {
			sctp_notification(st, buf, (size_t)n, mflags);
			continue;
		}
		if (n > 0) {
			if (atomic_load(&st->auth) == 3)
				sctp_auth_drop_null(st);
			return n;
		}
		if (n == 0) {
			atomic_store(&st->peer_shut, 1);
			return 0;
		}
		e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			if (flags & CN_IO_NONBLOCK)
				return CONNECT_EAGAIN;
			waker_sleep(st->w, seq0, &t->aborted, -1);
			continue;
		}
		return sctp_fail(st, "recv from", e);
	}
}

/* One message: the first SCTP_MSG bytes of iov (or fewer). */
static ssize_t sctp_sendv(struct cn_transport *t, const struct iovec *iov,
			  int iovcnt, int flags)
{
	struct sctp_transport *st = sctp_of(t);
	struct sctp_sndinfo si;
	const void *data;
	size_t n = 0;
	int i;

	for (i = 0; i < iovcnt && iov[i].iov_len == 0; i++)
		;
	if (i == iovcnt)
		return 0;
	if (iov[i].iov_len >= SCTP_MSG || i == iovcnt - 1) {
		/* One piece (a large frame): no copy. */
		data = iov[i].iov_base;
		n = iov[i].iov_len < SCTP_MSG ? iov[i].iov_len : SCTP_MSG;
	} else {
		/* Small pieces (short frames) share a message. */
		for (; i < iovcnt && n < SCTP_MSG; i++) {
			size_t k = iov[i].iov_len;

			if (k > SCTP_MSG - n)
				k = SCTP_MSG - n;
			memcpy(st->sbuf + n, iov[i].iov_base, k);
			n += k;
		}
		data = st->sbuf;
	}
	memset(&si, 0, sizeof(si));
	for (;;) {
		unsigned seq0;
		ssize_t put;
		int e;

		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		seq0 = atomic_load(&st->w->seq);
		put = usrsctp_sendv(st->so, data, n, NULL, 0, &si, sizeof(si),
				    SCTP_SENDV_SNDINFO, 0);
		if (put >= 0)
			return put;
		e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			if (flags & CN_IO_NONBLOCK)
				return CONNECT_EAGAIN;
			/* Until the next acknowledgement makes room. */
			waker_sleep(st->w, seq0, &t->aborted, -1);
			continue;
		}
		return sctp_fail(st, "send to", e);
	}
}

static int sctp_wait(struct cn_transport *t, int events, int64_t deadline)
{
	struct sctp_transport *st = sctp_of(t);

	for (;;) {
		unsigned seq0;
		int ev;

		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
		seq0 = atomic_load(&st->w->seq);
		ev = usrsctp_get_events(st->so);
		if (ev < 0 || (ev & SCTP_EVENT_ERROR))
			return CONNECT_OK;
		if ((events & CN_WAIT_READ) &&
		    ((ev & SCTP_EVENT_READ) || atomic_load(&st->peer_shut)))
			return CONNECT_OK;
		if ((events & CN_WAIT_WRITE) && (ev & SCTP_EVENT_WRITE))
			return CONNECT_OK;
		if (!waker_sleep(st->w, seq0, &t->aborted, deadline))
			return atomic_load(&t->aborted) ? CONNECT_ECLOSED :
							  CONNECT_ETIMEDOUT;
	}
}

/*
 * SHUTDOWN after all our data, and wait until our data is acknowledged
 * and the SHUTDOWN (or, the peer having shut down first, our SHUTDOWN
 * ACK) is out; or until the association is gone: cleanly, or with an
 * error that loses nothing but the last `grace` bytes after the peer had
 * shut down.
 */
static int sctp_shutdown(struct cn_transport *t, size_t grace)
{
	struct sctp_transport *st = sctp_of(t);
	int64_t outq = -1;
	int e;

	if (atomic_load(&t->aborted))
		return CONNECT_ECLOSED;
	if (usrsctp_shutdown(st->so, SHUT_WR) < 0) {
		e = errno;
		if (e != ENOTCONN && e != EINVAL && e != ECONNRESET &&
		    e != EPIPE)
			return sctp_fail(st, "shutdown of", e);
	}
	for (;;) {
		unsigned seq0 = atomic_load(&st->w->seq);
		int state = sctp_state(st);

		if (state == SCTP_SHUTDOWN_SENT ||
		    state == SCTP_SHUTDOWN_ACK_SENT)
			break;
		/* Gone, or ended and being freed. */
		if (state < 0 || state == SCTP_CLOSED) {
			int raw = 0, lost = atomic_load(&st->lost);
			socklen_t len = sizeof(raw);
			bool quiet;

			if (usrsctp_getsockopt(st->so, SOL_SOCKET, SO_ERROR,
					       &raw, &len) != 0)
				raw = 0;
			quiet = lost == 0 && raw == 0;
			/*
			 * Ended gracefully: no loss recorded from the
			 * notifications (the reader takes the one that says
			 * how an association ended before the socket's
			 * error) and no error on the socket.  A graceful end
			 * comes only once everything we had sent was
			 * acknowledged (RFC 4960, 9.2); a send refused after
			 * the peer's SHUTDOWN (a DTLS close_notify) lost
			 * nothing sent before.  SO_ERROR is read once: usrsctp
			 * may clear it on reading.
			 */
			if (quiet)
				break;
			e = atomic_load(&st->failed);
			if (e == 0)
				e = lost;
			if (e == 0)
				e = raw;
			if (atomic_load(&st->peer_shut) && outq >= 0 &&
			    (uint64_t)outq <= grace)
				break;
			return sctp_fail(st, "shutdown of", e);
		}
		outq = sctp_outq(st);
		waker_sleep(st->w, seq0, &t->aborted, -1);
		if (atomic_load(&t->aborted))
			return CONNECT_ECLOSED;
	}
	atomic_store(&st->clean, 1);
	return CONNECT_OK;
}

static void sctp_abort(struct cn_transport *t)
{
	struct sctp_transport *st = sctp_of(t);

	if (atomic_exchange(&t->aborted, 1))
		return;
	if (!atomic_load(&st->clean)) {
		int64_t outq = sctp_outq(st);

		/* Gone: unacknowledged bytes were lost unless it ended
		 * without an error. */
		if (outq < 0)
			outq = sctp_so_error(st) != 0;
		atomic_store(&st->abort_unacked, outq != 0);
		/* An ABORT: the peer cannot take the cut for a clean end. */
		sctp_abort_assoc(st->so);
		atomic_store(&st->cut, 1);
	}
	waker_kick(st->w);
}

static bool sctp_unacked(struct cn_transport *t)
{
	return atomic_load(&sctp_of(t)->abort_unacked) != 0;
}

static void sctp_free(struct sctp_transport *st)
{
	struct socket *keep = NULL;

	if (st->so != NULL) {
		/* Ended cleanly: unread input must not turn the close into
		 * an ABORT, and a shutdown still under way finishes in the
		 * stack's hands.  Otherwise the association ends now, with
		 * an ABORT.  The socket is closed once the association is
		 * gone and nothing but us holds it (see so_refs()). */
		int state = sctp_state(st);

		if (state == SCTP_COOKIE_WAIT || state == SCTP_COOKIE_ECHOED) {
			/* A dial given up: no ABORT before the association
			 * is up; closing stops the INITs. */
			sctp_close_abort(st->so);
		} else {
			if (atomic_load(&st->clean) && !atomic_load(&st->cut))
				sctp_drain(st->so);
			else
				sctp_abort_assoc(st->so);
			keep = st->so;
		}
	}
	if (st->w != NULL)
		stack_release(st->w, keep);
	cn_free(st->sbuf);
	cn_free(st);
}

static void sctp_destroy(struct cn_transport *t)
{
	sctp_free(sctp_of(t));
}

/*
 * Whether the peer authenticates our DATA chunks: the chunk types it
 * asked to be authenticated.  usrsctp answers with a chunk count that
 * <usrsctp.h> leaves out of struct sctp_authchunks: association id, u32
 * count, the types.
 */
static bool sctp_peer_auths_data(struct sctp_transport *st)
{
	uint8_t buf[8 + 256];
	socklen_t len = sizeof(buf);
	uint32_t n;

	memset(buf, 0, sizeof(buf));
	if (usrsctp_getsockopt(st->so, IPPROTO_SCTP, SCTP_PEER_AUTH_CHUNKS, buf,
			       &len) != 0 ||
	    len < 8)
		return false;
	memcpy(&n, buf + 4, sizeof(n));
	if (n > len - 8)
		return false;
	return memchr(buf + 8, 0 /* DATA */, n) != NULL;
}

/*
 * SCTP-AUTH keyed by the layer above (RFC 6083), as key 1.  Each side may
 * only send with it once the other has it, and a DTLS handshake ends at
 * different moments on the two sides: the server's ends when it sends
 * its Finished, the client's when it has received it.  So the client,
 * whose server has the key by then (or within a retransmission), sends
 * with key 1 at once; the server keeps the null key (0) until the client's
 * first DATA with key 1 arrives (an SCTP_AUTH_NEW_KEY notification), and
 * each side stops accepting key 0 once the other sends with key 1.
 */
static int sctp_auth_key(struct cn_transport *t, const void *key, size_t len)
{
	struct sctp_transport *st = sctp_of(t);
	struct sctp_authkey *ak;
	char buf[128];
	int rc = CONNECT_OK;

	if (len > 512)
		return CONNECT_EINVAL;
	if (!sctp_peer_auths_data(st)) {
		cn_transport_set_error(t, CONNECT_ETLS,
				       "%s does not authenticate SCTP DATA "
				       "chunks (SCTP-AUTH, as RFC 6083 requires "
				       "under DTLS)", t->peer);
		return CONNECT_ETLS;
	}
	ak = cn_calloc(1, sizeof(*ak) + len);
	if (ak == NULL)
		return CONNECT_ENOMEM;
	ak->sca_keynumber = 1;
	ak->sca_keylength = (uint16_t)len;
	memcpy(ak->sca_key, key, len);
	if (usrsctp_setsockopt(st->so, IPPROTO_SCTP, SCTP_AUTH_KEY, ak,
			       (socklen_t)(sizeof(*ak) + len)) != 0) {
		rc = cn_err_from_errno(errno);
		if (rc == CONNECT_EAGAIN || rc == CONNECT_OK)
			rc = CONNECT_EIO;
		cn_transport_set_error(t, rc, "SCTP-AUTH key for %s: %s",
				       t->peer,
				       strerror_r(errno, buf, sizeof(buf)));
	} else {
		atomic_store(&st->auth, 1);
		if (!st->server) {
			sctp_auth_activate(st, 1);
			atomic_store(&st->auth, 2);
		}
	}
	memset(ak->sca_key, 0, len);
	cn_free(ak);
	return rc;
}

static const struct cn_transport_ops sctp_ops = {
	.recv = sctp_recv,
	.sendv = sctp_sendv,
	.wait = sctp_wait,
	.shutdown = sctp_shutdown,
	.abort = sctp_abort,
	.destroy = sctp_destroy,
	.unacked = sctp_unacked,
	.auth_key = sctp_auth_key,
};

/*
 * A transport for a new socket of family af on the stack (started on the
 * options' UDP port), or for `so` (accepted from `peer`: the stack runs).
 */
static int sctp_new(int af, struct socket *so, const struct sockaddr *peer,
		    const struct connect_opts *o, struct sctp_transport **stp,
		    uint16_t *port, char *reason, size_t len)
{
	const char *what = "";
	struct sctp_transport *st = cn_calloc(1, sizeof(*st));
	uint16_t want = so ? 0 : (uint16_t)o->v[CONNECT_OPT_SCTP_UDP_PORT];
	char buf[128];
	int rc, e;

	if (st == NULL || (st->sbuf = cn_malloc(SCTP_MSG)) == NULL) {
		if (st)
			cn_free(st);
		if (so)
			stack_keep(so);
		snprintf(reason, len, "out of memory");
		return CONNECT_ENOMEM;
	}
	st->base.ops = &sctp_ops;
	st->base.flags = CN_TRANSPORT_MESSAGES;
	rc = stack_acquire(want, port, &st->w, reason, len);
	if (rc) {
		st->w = NULL;
		if (so)
			stack_keep(so);
		sctp_free(st);
		return rc;
	}
	if (so == NULL) {
		so = usrsctp_socket(af, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL,
				    0, NULL);
		if (so == NULL) {
			rc = cn_err_from_errno(errno);
			snprintf(reason, len, "SCTP socket: %s",
				 strerror_r(errno, buf, sizeof(buf)));
			sctp_free(st);
			return rc;
		}
	}
	st->so = so;
	usrsctp_set_upcall(so, sctp_upcall, st->w);
	if ((e = sctp_apply_opts(so, o, peer, &what)) != 0) {
		/* An accepted association ends with an ABORT. */
		rc = cn_err_from_errno(e);
		if (rc == CONNECT_EAGAIN || rc == CONNECT_OK)
			rc = CONNECT_EIO;
		snprintf(reason, len, "SCTP socket option %s: %s", what,
			 strerror_r(e, buf, sizeof(buf)));
		sctp_free(st);
		return rc;
	}
	*stp = st;
	return CONNECT_OK;
}

/* The local address a connection to sa would leave from (port 0). */
static int local_for(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	socklen_t len = sizeof(*out);
	int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (connect(fd, sa, sockaddr_len(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)out, &len) == 0) {
		sockaddr_port_set((struct sockaddr *)out, 0);
		rc = 0;
	}
	close(fd);
	return rc;
}

static int sctp_connect_one(const struct cn_endpoint *ep,
			    const struct sockaddr *sa,
			    struct sctp_transport **stp, char *reason,
			    size_t len)
{
	const struct connect_opts *o = ep->opts;
	struct sctp_transport *st;
	struct sctp_udpencaps ue;
	struct sockaddr_storage local;
	char peer[CN_ADDRSTRLEN], buf[128];
	const char *what = "";
	uint16_t port, peer_port;
	int rc, e;

	cn_addr_format(sa, peer, sizeof(peer));
	rc = sctp_new(sa->sa_family, NULL, NULL, o, &st, &port, reason, len);
	if (rc)
		return rc;
	snprintf(st->base.peer, sizeof(st->base.peer), "%s", peer);
	if (((ep->layer_flags & CN_CLASS_AUTH_BELOW) &&
	     (e = sctp_auth_data(st->so, &what)) != 0) ||
	    (e = sctp_loopback_mtu(st->so, sa, &what)) != 0) {
		snprintf(reason, len, "SCTP socket option %s: %s", what,
			 strerror_r(e, buf, sizeof(buf)));
		sctp_free(st);
		return cn_err_from_errno(e);
	}
	peer_port = (uint16_t)o->v[CONNECT_OPT_SCTP_PEER_UDP_PORT];
	if (peer_port == 0)
		peer_port = port;
	memset(&ue, 0, sizeof(ue));
	ue.sue_port = htons(peer_port);
	usrsctp_setsockopt(st->so, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT,
			   &ue, sizeof(ue));
	/* One local address, the one the route gives: an unbound SCTP
	 * socket would offer the peer every address of this host. */
	if (local_for(sa, &local) == 0 &&
	    usrsctp_bind(st->so, (struct sockaddr *)&local,
			 sockaddr_len((struct sockaddr *)&local)) < 0) {
		e = errno;
		snprintf(reason, len, "SCTP bind for %s: %s", peer,
			 strerror_r(e, buf, sizeof(buf)));
		sctp_free(st);
		return cn_err_from_errno(e);
	}
	if (usrsctp_connect(st->so, (struct sockaddr *)(uintptr_t)sa,
			    sockaddr_len(sa)) < 0 &&
	    errno != EINPROGRESS) {
		e = errno;
		snprintf(reason, len, "SCTP connect to %s: %s", peer,
			 strerror_r(e, buf, sizeof(buf)));
		sctp_free(st);
		return cn_err_from_errno(e);
	}
	for (;;) {
		unsigned seq0 = atomic_load(&st->w->seq);
		int state = sctp_state(st);

		/* Set up, and perhaps already ending: a peer that accepts,
		 * sends and shuts down at once is a connection whose data
		 * waits for the reader, then its end. */
		if (sctp_state_connected(state))
			break;
		if (state < 0 || state == SCTP_CLOSED) {
			e = sctp_so_error(st);
			/* Gone without an error: only a graceful SHUTDOWN ends
			 * an association that way, and only one that was
			 * set up (a dial that fails sets the socket's error:
			 * refused, or timed out). */
			if (e == 0)
				break;
			if (e == ECONNREFUSED) {
				snprintf(reason, len,
					 "SCTP connect to %s: nobody listens "
					 "there (the peer's stack refused)",
					 peer);
				rc = CONNECT_ECONNREFUSED;
			} else if (e == ECONNRESET) {
				snprintf(reason, len,
					 "SCTP connect to %s: the peer aborted "
					 "the association as it was set up",
					 peer);
				rc = CONNECT_ECONNRESET;
			} else {
				snprintf(reason, len, "SCTP connect to %s: %s",
					 peer,
					 strerror_r(e ? e : ECONNABORTED, buf,
						    sizeof(buf)));
				rc = e ? cn_err_from_errno(e) :
					 CONNECT_ECONNRESET;
			}
			sctp_free(st);
			return rc;
		}
		if (!waker_sleep(st->w, seq0, &st->base.aborted,
				 ep->deadline) &&
		    cn_remaining(ep->deadline) == 0) {
			snprintf(reason, len,
				 "SCTP connect to %s (UDP port %u): no answer "
				 "in time", peer, (unsigned)peer_port);
			sctp_free(st);
			return CONNECT_ETIMEDOUT;
		}
	}
	sctp_addr_text(st->so, false, st->base.local, sizeof(st->base.local));
	*stp = st;
	return CONNECT_OK;
}

static int sctp_dial(const struct cn_endpoint *ep, struct cn_transport **tp,
		     char *reason, size_t len)
{
	struct addrinfo *res, *ai;
	struct sctp_transport *st = NULL;
	int rc;

	rc = cn_addr_resolve(ep->addr, false, &res);
	if (rc) {
		snprintf(reason, len, "%s: %s", ep->addr, connect_strerror(rc));
		return rc;
	}
	rc = CONNECT_EADDR;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		rc = sctp_connect_one(ep, ai->ai_addr, &st, reason, len);
		if (rc == CONNECT_OK || rc == CONNECT_EADDRINUSE ||
		    rc == CONNECT_ENOMEM || cn_remaining(ep->deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	if (rc)
		return rc;
	*tp = &st->base;
	return CONNECT_OK;
}

/* ---- listening ------------------------------------------------------------ */

struct sctp_listener {
	struct cn_tlistener base;
	struct socket *so;
	struct sctp_waker *w;
	_Atomic int aborted;
	const struct connect_opts *opts; /* the listener's, outlives us */
};

static int sctp_accept(struct cn_tlistener *base, struct cn_transport **tp,
		       char *reason, size_t len)
{
	struct sctp_listener *l = (struct sctp_listener *)base;
	char buf[128];

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		struct sctp_transport *st;
		struct socket *so;
		unsigned seq0;
		uint16_t port;
		int e, rc;

		if (atomic_load(&l->aborted))
			return CONNECT_ECLOSED;
		seq0 = atomic_load(&l->w->seq);
		memset(&ss, 0, sizeof(ss));
		so = usrsctp_accept(l->so, (struct sockaddr *)&ss, &sslen);
		if (so != NULL) {
			rc = sctp_new(ss.ss_family, so, (struct sockaddr *)&ss,
				      l->opts, &st, &port, reason, len);
			if (rc)
				return rc;
			st->server = true;
			cn_addr_format((struct sockaddr *)&ss, st->base.peer,
				       sizeof(st->base.peer));
			sctp_addr_text(so, false, st->base.local,
				       sizeof(st->base.local));
			*tp = &st->base;
			return CONNECT_OK;
		}
		e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			waker_sleep(l->w, seq0, &l->aborted, -1);
			continue;
		}
		if (e == EINTR || e == ECONNABORTED)
			continue;
		snprintf(reason, len, "SCTP accept: %s",
			 strerror_r(e, buf, sizeof(buf)));
		return cn_err_from_errno(e);
	}
}

static void sctp_listener_abort(struct cn_tlistener *base)
{
	struct sctp_listener *l = (struct sctp_listener *)base;

	atomic_store(&l->aborted, 1);
	waker_kick(l->w);
}

static void sctp_listener_destroy(struct cn_tlistener *base)
{
	struct sctp_listener *l = (struct sctp_listener *)base;

	if (l->so != NULL)
		usrsctp_close(l->so);
	if (l->w != NULL)
		stack_release(l->w, NULL);
	cn_free(l);
}

static const struct cn_tlistener_ops sctp_listener_ops = {
	.accept = sctp_accept,
	.abort = sctp_listener_abort,
	.destroy = sctp_listener_destroy,
};

static int sctp_listen(const struct cn_endpoint *ep, struct cn_tlistener **lp,
		       char *reason, size_t len)
{
	struct sctp_listener *l;
	struct addrinfo *res, *ai;
	struct sockaddr_storage bound;
	struct sockaddr *addrs = NULL;
	const char *what = "";
	uint16_t port;
	char buf[128];
	int rc, e, n;

	rc = cn_addr_resolve(ep->addr, true, &res);
	if (rc) {
		snprintf(reason, len, "%s: %s", ep->addr, connect_strerror(rc));
		return rc;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	if (ai == NULL) {
		freeaddrinfo(res);
		snprintf(reason, len, "%s: no IPv4 or IPv6 address", ep->addr);
		return CONNECT_EADDR;
	}
	memset(&bound, 0, sizeof(bound));
	memcpy(&bound, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(res);
	l = cn_calloc(1, sizeof(*l));
	if (l == NULL)
		return CONNECT_ENOMEM;
	l->base.ops = &sctp_listener_ops;
	l->opts = ep->opts;
	rc = stack_acquire((uint16_t)ep->opts->v[CONNECT_OPT_SCTP_UDP_PORT],
			   &port, &l->w, reason, len);
	if (rc) {
		l->w = NULL;
		sctp_listener_destroy(&l->base);
		return rc;
	}
	l->so = usrsctp_socket(bound.ss_family, SOCK_STREAM, IPPROTO_SCTP,
			       NULL, NULL, 0, NULL);
	if (l->so == NULL) {
		e = errno;
		snprintf(reason, len, "SCTP socket: %s",
			 strerror_r(e, buf, sizeof(buf)));
		sctp_listener_destroy(&l->base);
		return cn_err_from_errno(e);
	}
	usrsctp_set_upcall(l->so, sctp_upcall, l->w);
	/* The loopback MTU for every association of a listener on a
	 * loopback address, set before they exist (raised on an association
	 * already up, usrsctp 0.9.5 ended it with an ABORT at the first
	 * large message in our tests).  A listener on another address, the wildcard
	 * included, keeps path MTU discovery for all. */
	if ((e = sctp_apply_opts(l->so, ep->opts, NULL, &what)) != 0 ||
	    (e = sctp_loopback_mtu(l->so, (struct sockaddr *)&bound,
				   &what)) != 0 ||
	    ((ep->layer_flags & CN_CLASS_AUTH_BELOW) &&
	     (e = sctp_auth_data(l->so, &what)) != 0)) {
		rc = cn_err_from_errno(e);
		snprintf(reason, len, "listen on %s: SCTP socket option %s: %s",
			 ep->addr, what, strerror_r(e, buf, sizeof(buf)));
		sctp_listener_destroy(&l->base);
		return rc;
	}
	if (usrsctp_bind(l->so, (struct sockaddr *)&bound,
			 sockaddr_len((struct sockaddr *)&bound)) < 0 ||
	    usrsctp_listen(l->so, 128) < 0) {
		e = errno;
		rc = cn_err_from_errno(e);
		snprintf(reason, len, "listen on %s: %s", ep->addr,
			 strerror_r(e, buf, sizeof(buf)));
		sctp_listener_destroy(&l->base);
		return rc;
	}
	n = usrsctp_getladdrs(l->so, 0, &addrs);
	if (n > 0 && addrs != NULL)
		sockaddr_port_set((struct sockaddr *)&bound,
				  sockaddr_port(addrs));
	if (addrs != NULL)
		usrsctp_freeladdrs(addrs);
	l->base.port = sockaddr_port((struct sockaddr *)&bound);
	cn_addr_format((struct sockaddr *)&bound, l->base.addr,
		       sizeof(l->base.addr));
	*lp = &l->base;
	return CONNECT_OK;
}

const struct cn_transport_class cn_sctp_class = {
	.name = "sctp",
	.dial = sctp_dial,
	.listen = sctp_listen,
};
