/*
 * Private umbrella header: every .c file of the library includes it first.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_INT_H
#define CONNECT_INT_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Inline the liburcu queue operations (allowed: we are LGPL-2.1+ too). */
#define _LGPL_SOURCE

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include <urcu/wfcqueue.h>

#include "connect.h"

#define CN_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* caa_container_of through void *: the member's address is as aligned as
 * its struct (-Wcast-align cannot know). */
#define cn_container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#define CN_UNUSED __attribute__((unused))
#define CN_CACHELINE 64

/* Longest address text: "[" + INET6_ADDRSTRLEN + "]:" + port + NUL. */
#define CN_ADDRSTRLEN 80
/* Longest error reason kept with a connection or listener. */
#define CN_REASON_LEN 256

/* Wire header: u32 size, u16 version, u16 tag. */
#define CN_HDR_LEN 8u
/* Default receive limit on the size field: 4 + 100,000,000. */
#define CN_SIZE_LIMIT (4u + CONNECT_MAX_PAYLOAD)

static inline void cn_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void cn_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint16_t cn_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t cn_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/*
 * A datagram: one allocation holding the queue node, the wire header and
 * the payload, so header and payload go out as one contiguous run of
 * 8 + len bytes starting at hdr.  Large ones (CN_DATAGRAM_MAP_MIN bytes
 * of room and more) are mapped pages of their own, so that freeing them
 * gives the memory back to the system at once.
 */
struct connect_datagram {
	struct cds_wfcq_node node;
	uint16_t map_pages;       /* pages mapped, or 0: from the allocator
				   * (100 MB in 4 KiB pages fits) */
	uint16_t flags;           /* CN_DG_* */
	uint32_t len;             /* payload length */
	uint8_t hdr[CN_HDR_LEN];  /* size, version, tag: the wire bytes */
	uint8_t payload[];        /* 8-byte aligned */
};

#define CN_DATAGRAM_MAP_MIN (256u << 10)
/* Counted in an inbox's bounds (the reader pushed it while attached). */
#define CN_DG_INBOX 0x1u
/*
 * A pack (conn.c): small datagrams a sender copied side by side, whole
 * wire frames in payload[0..len), so the writer takes many in one entry.
 * hdr holds how many (cn_pack_msgs) and the room (conn.c), not a wire
 * header.
 */
#define CN_DG_PACK 0x2u
/* From the small-block pool (dgpool.h), of class (flags & CN_DG_CLASS) >>
 * CN_DG_CLASS_SHIFT. */
#define CN_DG_POOLED 0x4u
#define CN_DG_CLASS 0x30u
#define CN_DG_CLASS_SHIFT 4

static inline uint32_t cn_pack_msgs(const struct connect_datagram *dg)
{
	uint32_t n;

	memcpy(&n, dg->hdr, sizeof(n));
	return n;
}

static inline void cn_pack_set_msgs(struct connect_datagram *dg, uint32_t n)
{
	memcpy(dg->hdr, &n, sizeof(n));
}

/* The datagrams dg stands for: 1, or a pack's count. */
static inline uint64_t cn_dg_msgs(const struct connect_datagram *dg)
{
	return dg->flags & CN_DG_PACK ? cn_pack_msgs(dg) : 1;
}

/* Their payload bytes (what the queue bounds count). */
static inline uint64_t cn_dg_bytes(const struct connect_datagram *dg)
{
	return dg->flags & CN_DG_PACK
		       ? dg->len - (uint64_t)cn_pack_msgs(dg) * CN_HDR_LEN
		       : dg->len;
}

/* Allocate a datagram for `len` payload bytes with the given header fields;
 * no range checks.  NULL when out of memory. */
struct connect_datagram *cn_datagram_alloc(uint32_t len, uint16_t version,
					   uint16_t tag);
/* Room for `cap` payload bytes; len and header are the caller's to set. */
struct connect_datagram *cn_datagram_reserve(uint32_t cap);
/* Room for `len` payload bytes from the freed large datagrams kept for
 * reuse (memory already the process's), or NULL when none fits. */
struct connect_datagram *cn_datagram_reserve_cached(uint32_t len);
/* Give every kept large datagram back to the system (tests). */
void cn_datagram_cache_drop(void);
/* Move to room for `cap` bytes (> old_cap); the first old_cap payload bytes
 * and the header are kept.  NULL when out of memory (dg is then intact). */
struct connect_datagram *cn_datagram_grow(struct connect_datagram *dg,
					  uint32_t old_cap, uint32_t cap);
/* Free a datagram however it was allocated.  NULL is ignored. */
void cn_datagram_free(struct connect_datagram *dg);

/* Options: a table indexed by enum connect_opt, and what dial and listen
 * take by reference (the user's object owns them). */
#define CN_OPT_MAX 27
#define CN_NAME_LEN 256
struct connect_opts {
	int64_t v[CN_OPT_MAX];
	connect_tls_config *tls;       /* a reference, or NULL */
	char server_name[CN_NAME_LEN]; /* "" for none */
};
void cn_opts_defaults(struct connect_opts *o);
/* The values of opts, or the defaults; never its references (dst->tls is
 * NULL, dst->server_name empty). */
void cn_opts_copy(struct connect_opts *dst, const struct connect_opts *src);

/* Logging through the user's callback (nothing without one). */
void cn_log(int level, const char *id, const char *fmt, ...) CN_PRINTF(3, 4);
bool cn_log_enabled(int level);

/* Map an errno value onto a CONNECT_E* code. */
int cn_err_from_errno(int e);

/* Monotonic clock in milliseconds. */
int64_t cn_now_ms(void);
/* Deadline from a timeout (< 0: none, returned as -1). */
int64_t cn_deadline(int timeout_ms);
/* Milliseconds left until deadline (-1 for none, 0 when passed). */
int cn_remaining(int64_t deadline);
/* Wait on cond until deadline (-1: forever); returns false on timeout. */
bool cn_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
			int64_t deadline);
/*
 * The waiting calls (send_wait, recv_wait, accept_wait), written once:
 * call try(arg) until it says something other than CONNECT_EAGAIN; in
 * between, sleep on cv (under m) until ready(arg) says another try is
 * worth it (or a stop), or until the deadline, when one last try decides
 * (CONNECT_ETIMEDOUT if still nothing).  A sleeper is announced in
 * *waiters (NULL: no count), so that the waker signals only when someone
 * sleeps.
 */
struct cn_waiter {
	int (*try)(void *arg);
	bool (*ready)(void *arg); /* called with m held */
	_Atomic int *waiters;
	pthread_mutex_t *m;
	pthread_cond_t *cv;
	void *arg;
	/* Before sleeping, look at ready() (then without m) for this many
	 * nanoseconds, giving the processor to others in between; 0: no. */
	int64_t spin_ns;
};
int cn_wait(const struct cn_waiter *w, int timeout_ms);

/* Initialize a condition variable on CLOCK_MONOTONIC. */
int cn_cond_init(pthread_cond_t *c);

/* pthread_create, through a pointer that the tests replace to make thread
 * creation fail; the library never changes it. */
extern int (*cn_pthread_create)(pthread_t *th, const pthread_attr_t *attr,
				void *(*fn)(void *), void *arg);
/* Start a joinable thread with the given stack size, signals blocked. */
int cn_thread_start(pthread_t *th, void *(*fn)(void *), void *arg,
		    size_t stack_size);

/* Addresses. */
struct sockaddr;
/* Split "host:port" / "[v6]:port"; CONNECT_EADDR if malformed. */
int cn_addr_split(const char *addr, char *host, size_t hostlen, char *port,
		  size_t portlen);
/* Resolve; *res freed with freeaddrinfo.  CONNECT_EADDR/ENOHOST/... */
struct addrinfo;
int cn_addr_resolve(const char *addr, bool passive, struct addrinfo **res);
/* "1.2.3.4:5" / "[::1]:5". */
void cn_addr_format(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Thread-sanitizer hand-off marks.  liburcu 0.13 does its atomics in inline
 * assembly that TSan cannot see, so each object passed through a wfcqueue is
 * released before enqueue and acquired after dequeue.  Empty otherwise.
 */
#if defined(__SANITIZE_THREAD__)
#define CN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CN_TSAN 1
#endif
#endif
#ifdef CN_TSAN
#include <sanitizer/tsan_interface.h>
#define CN_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define CN_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define CN_TSAN_RELEASE(p) ((void)(p))
#define CN_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* The process-wide receive memory bound (rxmem.c).  Connections made
 * while no limit was ever set do not count (no cost on their path). */
bool cn_rxmem_enabled(void);
void cn_rxmem_add(uint64_t bytes);
void cn_rxmem_sub(uint64_t bytes);
/* At or over the limit: readers must stop. */
bool cn_rxmem_over(void);
/* Wait until under half the limit, *stop, or go(arg). */
void cn_rxmem_wait(_Atomic int *stop, bool (*go)(void *arg), void *arg);
/* Wake every waiting reader (one of them is closing, or the limit rose). */
void cn_rxmem_wake_all(void);

/* Connections and listeners (conn.c, listener.c). */
struct cn_transport;
/* Start reader and writer over an established transport (taken over, also
 * on failure); with ib, attached to it from the start and owned by it,
 * in the place the listener reserved (cn_inbox_reserve; used up, also on
 * failure; CONNECT_ECLOSED when the inbox is closing). */
int cn_conn_start(connect_conn **connp, struct cn_transport *t,
		  const struct connect_opts *opts, connect_inbox *ib);
/* Hold or release the memory of a connection (connect_close() releases
 * the application's reference). */
void cn_conn_ref(connect_conn *c);
void cn_conn_unref(connect_conn *c);
/* The same for listeners (connect_listener_close() releases the
 * application's reference). */
void cn_listener_ref(connect_listener *l);
void cn_listener_unref(connect_listener *l);

#endif /* CONNECT_INT_H */
