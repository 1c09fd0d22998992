/*
 * Datagrams: one allocation holding queue node, wire header and payload.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "dgpool.h"

static size_t page_size(void)
{
	/* Any thread may be first: the value is the same for all. */
	static _Atomic size_t ps;
	size_t v = atomic_load_explicit(&ps, memory_order_relaxed);

	if (!v) {
		v = (size_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&ps, v, memory_order_relaxed);
	}
	return v;
}

/* Mapped only with the library's own allocator: a test's hook sees every
 * allocation. */
static bool map_it(uint32_t cap)
{
	return cap >= CN_DATAGRAM_MAP_MIN && cn_allocator.malloc == malloc;
}

/* Small datagrams come from the pool, with the library's own allocator
 * only (as above). */
static bool pool_it(uint32_t cap)
{
	return sizeof(struct connect_datagram) + cap <= CN_DGPOOL_MAX &&
	       cn_allocator.malloc == malloc;
}

/* map_pages counts 4 KiB pages (or larger) in 16 bits. */
_Static_assert((sizeof(struct connect_datagram) + CONNECT_MAX_PAYLOAD +
		4095) / 4096 <= UINT16_MAX,
	       "map_pages cannot count the largest datagram");

static size_t map_bytes(uint32_t cap)
{
	size_t ps = page_size();

	return (sizeof(struct connect_datagram) + cap + ps - 1) / ps * ps;
}

/*
 * Map n bytes (a multiple of the page size); from 2 MiB on a huge-page
 * boundary, asking for transparent huge pages: fresh memory is faulted in
 * 2 MiB at a time instead of 4 KiB, which is most of what mapping costs.
 */
#define CN_HUGE (2u << 20)
static void *map_huge(size_t n)
{
	size_t len = n + CN_HUGE, head;
	uint8_t *p;

	if (n < CN_HUGE) {
		p = mmap(NULL, n, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	head = (CN_HUGE - (uintptr_t)p % CN_HUGE) % CN_HUGE;
	if (head)
		munmap(p, head);
	if (len - head > n)
		munmap(p + head + n, len - head - n);
	p += head;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, n, MADV_HUGEPAGE);
#endif
	return p;
}

/*
 * Freed large datagrams are kept a while for the next ones (a stream of
 * large messages would otherwise map, fault in and unmap every one, a
 * third of its time): blocks of at most CN_CACHE_BLOCK bytes (larger ones
 * go back to the system at once), at most CN_CACHE_SLOTS of them and
 * CN_CACHE_BYTES in the process, each given back once unused for
 * CN_CACHE_AGE_NS (looked at whenever a large datagram is made or freed).
 * A block serves a request of at least 4/5 its size.  Not under
 * AddressSanitizer, so that a use after free stays a fault.
 */
#define CN_CACHE_SLOTS 16
#define CN_CACHE_BYTES (16u << 20)
#define CN_CACHE_BLOCK (4u << 20)
#define CN_CACHE_AGE_NS INT64_C(1000000000)

#if defined(__SANITIZE_ADDRESS__)
#define CN_NO_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_NO_CACHE 1
#endif
#endif

static struct {
	pthread_mutex_t lock;
	int n;
	size_t bytes;
	struct {
		void *p;
		size_t len;
		int64_t t;
	} e[CN_CACHE_SLOTS];
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Under the lock: move the blocks unused since before `old` to out[]. */
static int cache_expire(int64_t old, void **out, size_t *outlen)
{
	int k = 0;

	for (int i = 0; i < cache.n;) {
		if (cache.e[i].t >= old) {
			i++;
			continue;
		}
		out[k] = cache.e[i].p;
		outlen[k++] = cache.e[i].len;
		cache.bytes -= cache.e[i].len;
		cache.e[i] = cache.e[--cache.n];
	}
	return k;
}

/* A cached block of at least n bytes (and not much more), or NULL;
 * *len receives its length. */
static void *cache_take(size_t n, size_t *len)
{
	void *old[CN_CACHE_SLOTS], *p = NULL;
	size_t oldlen[CN_CACHE_SLOTS];
	int best = -1, k;
	int64_t now;

#ifdef CN_NO_CACHE
	return NULL;
#endif
	now = mono_ns();
	pthread_mutex_lock(&cache.lock);
	k = cache_expire(now - CN_CACHE_AGE_NS, old, oldlen);
	for (int i = 0; i < cache.n; i++)
		if (cache.e[i].len >= n && cache.e[i].len / 5 * 4 <= n &&
		    (best < 0 || cache.e[i].len < cache.e[best].len))
			best = i;
	if (best >= 0) {
		p = cache.e[best].p;
		*len = cache.e[best].len;
		cache.bytes -= *len;
		cache.e[best] = cache.e[--cache.n];
	}
	pthread_mutex_unlock(&cache.lock);
	while (k--)
		munmap(old[k], oldlen[k]);
	return p;
}

/* Keep a freed block, or unmap it. */
static void cache_put(void *p, size_t len)
{
	void *old[CN_CACHE_SLOTS];
	size_t oldlen[CN_CACHE_SLOTS];
	bool kept = false;
	int64_t now;
	int k;

#ifdef CN_NO_CACHE
	munmap(p, len);
	return;
#endif
	now = mono_ns();
	pthread_mutex_lock(&cache.lock);
	k = cache_expire(now - CN_CACHE_AGE_NS, old, oldlen);
	if (len <= CN_CACHE_BLOCK && cache.n < CN_CACHE_SLOTS &&
	    cache.bytes + len <= CN_CACHE_BYTES) {
		cache.e[cache.n].p = p;
		cache.e[cache.n].len = len;
		cache.e[cache.n].t = now;
		cache.n++;
		cache.bytes += len;
		kept = true;
	}
	pthread_mutex_unlock(&cache.lock);
	while (k--)
		munmap(old[k], oldlen[k]);
	if (!kept)
		munmap(p, len);
}

void cn_datagram_cache_drop(void)
{
	void *old[CN_CACHE_SLOTS];
	size_t oldlen[CN_CACHE_SLOTS];
	int k;

	pthread_mutex_lock(&cache.lock);
	k = cache_expire(INT64_MAX, old, oldlen);
	pthread_mutex_unlock(&cache.lock);
	while (k--)
		munmap(old[k], oldlen[k]);
}

/* A mapped block for cap payload bytes: from the cache, or new. */
static struct connect_datagram *map_datagram(uint32_t cap)
{
	size_t n = map_bytes(cap);
	struct connect_datagram *dg = cache_take(n, &n);

	if (!dg) {
		dg = map_huge(n);
		if (!dg)
			return NULL;
	}
	dg->map_pages = (uint16_t)(n / page_size());
	return dg;
}

struct connect_datagram *cn_datagram_reserve_cached(uint32_t len)
{
	size_t n;
	struct connect_datagram *dg;

	if (!map_it(len))
		return NULL;
	n = map_bytes(len);
	dg = cache_take(n, &n);
	if (!dg)
		return NULL;
	dg->map_pages = (uint16_t)(n / page_size());
	dg->flags = 0;
	cds_wfcq_node_init(&dg->node);
	return dg;
}

struct connect_datagram *cn_datagram_reserve(uint32_t cap)
{
	struct connect_datagram *dg;

	if (map_it(cap)) {
		dg = map_datagram(cap);
		if (!dg)
			return NULL;
		dg->flags = 0;
	} else if (pool_it(cap)) {
		unsigned cls;

		dg = cn_dgpool_alloc(sizeof(*dg) + cap, &cls);
		if (!dg)
			return NULL;
		dg->map_pages = 0;
		dg->flags = (uint16_t)(CN_DG_POOLED |
				       cls << CN_DG_CLASS_SHIFT);
	} else {
		dg = cn_malloc(sizeof(*dg) + cap);
		if (!dg)
			return NULL;
		dg->map_pages = 0;
		dg->flags = 0;
	}
	cds_wfcq_node_init(&dg->node);
	return dg;
}

struct connect_datagram *cn_datagram_grow(struct connect_datagram *dg,
					  uint32_t old_cap, uint32_t cap)
{
	struct connect_datagram *n;

	if (dg->map_pages) {
		size_t old = (size_t)dg->map_pages * page_size();
		size_t want = map_bytes(cap);

		if (want <= old)
			return dg;
#ifndef CN_TSAN
		n = mremap(dg, old, want, MREMAP_MAYMOVE);
		if (n == MAP_FAILED)
			return NULL;
		n->map_pages = (uint16_t)(want / page_size());
		return n;
#else
		/* ThreadSanitizer does not follow mremap (it would see the
		 * moved bytes as racing): map anew and copy instead. */
		n = map_huge(want);
		if (!n)
			return NULL;
		memcpy(n, dg, sizeof(*dg) + old_cap);
		n->map_pages = (uint16_t)(want / page_size());
		munmap(dg, old);
		return n;
#endif
	}
	if (dg->flags & CN_DG_POOLED) {
		unsigned cls = (dg->flags & CN_DG_CLASS) >> CN_DG_CLASS_SHIFT;

		if (sizeof(*dg) + cap <= (64u << cls))
			return dg;
	} else if (!map_it(cap)) {
		n = cn_realloc(dg, sizeof(*dg) + cap);
		return n;
	}
	n = cn_datagram_reserve(cap);
	if (!n)
		return NULL;
	n->len = dg->len;
	memcpy(n->hdr, dg->hdr, CN_HDR_LEN);
	memcpy(n->payload, dg->payload, old_cap);
	/* Where the block came from is the new one's; the rest is dg's. */
	n->flags = (uint16_t)((n->flags & (CN_DG_POOLED | CN_DG_CLASS)) |
			      (dg->flags & ~(CN_DG_POOLED | CN_DG_CLASS)));
	cn_datagram_free(dg);
	return n;
}

void cn_datagram_free(struct connect_datagram *dg)
{
	if (!dg)
		return;
	if (dg->map_pages)
		cache_put(dg, (size_t)dg->map_pages * page_size());
	else if (dg->flags & CN_DG_POOLED)
		cn_dgpool_free(dg, (dg->flags & CN_DG_CLASS) >>
					   CN_DG_CLASS_SHIFT);
	else
		cn_free(dg);
}

struct connect_datagram *cn_datagram_alloc(uint32_t len, uint16_t version,
					   uint16_t tag)
{
	struct connect_datagram *dg = cn_datagram_reserve(len);

	if (!dg)
		return NULL;
	dg->len = len;
	cn_put32(dg->hdr, len + 4);
	cn_put16(dg->hdr + 4, version);
	cn_put16(dg->hdr + 6, tag);
	return dg;
}

static int check_len(size_t len)
{
	if (len == 0)
		return CONNECT_EEMPTY;
	if (len > CONNECT_MAX_PAYLOAD)
		return CONNECT_ETOOBIG;
	return CONNECT_OK;
}

int connect_datagram_alloc(connect_datagram **dgp, uint16_t tag, size_t len)
{
	struct connect_datagram *dg;
	int rc;

	if (!dgp)
		return CONNECT_EINVAL;
	rc = check_len(len);
	if (rc)
		return rc;
	dg = cn_datagram_alloc((uint32_t)len, CONNECT_WIRE_VERSION, tag);
	if (!dg)
		return CONNECT_ENOMEM;
	*dgp = dg;
	return CONNECT_OK;
}

int connect_datagram_new(connect_datagram **dgp, uint16_t tag,
			 const void *data, size_t len)
{
	connect_datagram *dg;
	int rc;

	if (!dgp || (!data && len > 0))
		return CONNECT_EINVAL;
	rc = connect_datagram_alloc(&dg, tag, len);
	if (rc)
		return rc;
	memcpy(dg->payload, data, len);
	*dgp = dg;
	return CONNECT_OK;
}

void connect_datagram_free(connect_datagram *dg)
{
	cn_datagram_free(dg);
}

uint16_t connect_datagram_tag(const connect_datagram *dg)
{
	return dg ? cn_get16(dg->hdr + 6) : 0;
}

void connect_datagram_set_tag(connect_datagram *dg, uint16_t tag)
{
	if (dg)
		cn_put16(dg->hdr + 6, tag);
}

uint16_t connect_datagram_version(const connect_datagram *dg)
{
	return dg ? cn_get16(dg->hdr + 4) : 0;
}

void *connect_datagram_data(connect_datagram *dg)
{
	return dg ? dg->payload : NULL;
}

size_t connect_datagram_size(const connect_datagram *dg)
{
	return dg ? dg->len : 0;
}
