/*
 * Small datagram blocks, recycled between threads (see dgpool.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "dgpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define CN_DGPOOL_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_DGPOOL_OFF 1
#endif
#endif

#define CN_DGPOOL_MIN_SHIFT 6

static unsigned size_class(size_t size)
{
	unsigned c = 0;

	while (((size_t)1 << (CN_DGPOOL_MIN_SHIFT + c)) < size)
		c++;
	return c;
}

static size_t class_size(unsigned c)
{
	return (size_t)1 << (CN_DGPOOL_MIN_SHIFT + c);
}

#ifndef CN_DGPOOL_OFF

/* Blocks per magazine. */
#define CN_DGPOOL_MAG 64
/* Blocks the depot keeps per class: 2 MiB of each (a writer frees a whole
 * batch at once; the depot must hold it for the sender to find). */
#define CN_DGPOOL_DEPOT_BYTES (2u << 20)
#define DEPOT_BLOCKS(c) (CN_DGPOOL_DEPOT_BYTES >> (CN_DGPOOL_MIN_SHIFT + (c)))
/* Empty magazines the depot keeps per class. */
#define CN_DGPOOL_SPARE 64

struct mag {
	struct mag *next;
	unsigned n;
	void *b[CN_DGPOOL_MAG];
};

struct depot {
	pthread_mutex_t lock;
	struct mag *full; /* magazines holding blocks (not all full) */
	size_t blocks;    /* in `full` */
	struct mag *empty;
	unsigned nempty;
	_Atomic bool has; /* full != NULL: a hint read without the lock */
};

static struct depot depots[CN_DGPOOL_CLASSES] = {
	{ .lock = PTHREAD_MUTEX_INITIALIZER },
	{ .lock = PTHREAD_MUTEX_INITIALIZER },
	{ .lock = PTHREAD_MUTEX_INITIALIZER },
	{ .lock = PTHREAD_MUTEX_INITIALIZER },
};

/* A thread's magazines: it allocates from take[], frees into put[]. */
struct tcache {
	struct mag *take[CN_DGPOOL_CLASSES];
	struct mag *put[CN_DGPOOL_CLASSES];
	bool armed; /* the exit destructor will hand them to the depot */
	bool gone;  /* it did: keep nothing any more */
};

static __thread struct tcache tc;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static bool tc_key_ok;

static void mag_drain(struct mag *m)
{
	while (m->n > 0)
		free(m->b[--m->n]);
}

/* Hand a thread's magazine to the depot: with its blocks if there is room
 * for them, else they are freed; the magazine is kept spare or freed. */
static void depot_put(unsigned c, struct mag *m)
{
	struct depot *d = &depots[c];
	struct mag *spill = NULL;

	pthread_mutex_lock(&d->lock);
	if (m->n > 0 && d->blocks + m->n <= DEPOT_BLOCKS(c)) {
		m->next = d->full;
		d->full = m;
		d->blocks += m->n;
		atomic_store_explicit(&d->has, true, memory_order_relaxed);
	} else if (m->n == 0 && d->nempty < CN_DGPOOL_SPARE) {
		m->next = d->empty;
		d->empty = m;
		d->nempty++;
	} else {
		spill = m;
	}
	pthread_mutex_unlock(&d->lock);
	if (spill) {
		mag_drain(spill);
		free(spill);
	}
}

static void tc_flush(struct tcache *t)
{
	for (unsigned c = 0; c < CN_DGPOOL_CLASSES; c++) {
		if (t->take[c])
			depot_put(c, t->take[c]);
		if (t->put[c])
			depot_put(c, t->put[c]);
		t->take[c] = NULL;
		t->put[c] = NULL;
	}
}

static void tc_destroy(void *arg)
{
	struct tcache *t = arg;

	tc_flush(t);
	t->gone = true;
}

static void tc_key_make(void)
{
	tc_key_ok = pthread_key_create(&tc_key, tc_destroy) == 0;
}

/* Arm the exit destructor before the thread keeps anything; false if it
 * cannot be (then the thread keeps nothing). */
static bool tc_arm(void)
{
	if (tc.armed)
		return !tc.gone;
	pthread_once(&tc_once, tc_key_make);
	if (!tc_key_ok || pthread_setspecific(tc_key, &tc) != 0)
		return false;
	tc.armed = true;
	return true;
}

void *cn_dgpool_alloc(size_t size, unsigned *cls)
{
	unsigned c = size_class(size);
	struct depot *d = &depots[c];
	struct mag *m = tc.take[c], *got = NULL;

	*cls = c;
	if (m && m->n > 0)
		return m->b[--m->n];
	/* What this thread freed, it takes again. */
	if (tc.put[c] && tc.put[c]->n > 0) {
		tc.take[c] = tc.put[c];
		tc.put[c] = m;
		m = tc.take[c];
		return m->b[--m->n];
	}
	if (atomic_load_explicit(&d->has, memory_order_relaxed) && tc_arm()) {
		pthread_mutex_lock(&d->lock);
		got = d->full;
		if (got) {
			d->full = got->next;
			d->blocks -= got->n;
			atomic_store_explicit(&d->has, d->full != NULL,
					      memory_order_relaxed);
		}
		pthread_mutex_unlock(&d->lock);
	}
	if (got) {
		if (m)
			depot_put(c, m); /* empty: kept spare */
		tc.take[c] = got;
		return got->b[--got->n];
	}
	return malloc(class_size(c));
}

void cn_dgpool_free(void *p, unsigned cls)
{
	struct depot *d = &depots[cls];
	struct mag *m = tc.put[cls], *spare = NULL;

	if (m && m->n < CN_DGPOOL_MAG) {
		m->b[m->n++] = p;
		return;
	}
	if (!tc_arm()) {
		free(p);
		return;
	}
	/* No magazine, or a full one: that one to the depot, an empty one
	 * in its place. */
	tc.put[cls] = NULL;
	if (m)
		depot_put(cls, m);
	pthread_mutex_lock(&d->lock);
	if (d->empty) {
		spare = d->empty;
		d->empty = spare->next;
		d->nempty--;
	}
	pthread_mutex_unlock(&d->lock);
	if (!spare)
		spare = malloc(sizeof(*spare));
	if (!spare) {
		free(p);
		return;
	}
	spare->n = 1;
	spare->b[0] = p;
	tc.put[cls] = spare;
}

void cn_dgpool_idle(void)
{
	if (tc.armed && !tc.gone)
		tc_flush(&tc);
}

size_t cn_dgpool_depot_blocks(void)
{
	size_t n = 0;

	for (unsigned c = 0; c < CN_DGPOOL_CLASSES; c++) {
		pthread_mutex_lock(&depots[c].lock);
		n += depots[c].blocks;
		pthread_mutex_unlock(&depots[c].lock);
	}
	return n;
}

#else /* CN_DGPOOL_OFF: every block straight from and back to malloc */

void *cn_dgpool_alloc(size_t size, unsigned *cls)
{
	*cls = size_class(size);
	return malloc(class_size(*cls));
}

void cn_dgpool_free(void *p, unsigned cls)
{
	(void)cls;
	free(p);
}

void cn_dgpool_idle(void)
{
}

size_t cn_dgpool_depot_blocks(void)
{
	return 0;
}

#endif
