/*
 * The process-wide bound on received datagrams waiting for the
 * application (connect_set_recv_memory_limit).  Readers account what they
 * deliver; consumers, what they take.  Past the limit every reader stops
 * reading (TCP flow control then slows the peers) until the total is back
 * under half of it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

static _Atomic uint64_t rx_limit; /* 0: none */
static _Atomic bool rx_on;        /* a limit was ever set */
static _Atomic uint64_t rx_used;
static _Atomic int rx_waiters;
static pthread_mutex_t rx_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rx_cv = PTHREAD_COND_INITIALIZER;

int connect_set_recv_memory_limit(uint64_t bytes)
{
	atomic_store(&rx_limit, bytes);
	if (bytes)
		atomic_store(&rx_on, true);
	cn_rxmem_wake_all(); /* a higher limit may free readers */
	return CONNECT_OK;
}

uint64_t connect_recv_memory_used(void)
{
	return atomic_load(&rx_used);
}

bool cn_rxmem_enabled(void)
{
	return atomic_load_explicit(&rx_on, memory_order_relaxed);
}

void cn_rxmem_add(uint64_t bytes)
{
	atomic_fetch_add_explicit(&rx_used, bytes, memory_order_relaxed);
}

static bool rx_low(void)
{
	uint64_t limit = atomic_load(&rx_limit);

	return limit == 0 || atomic_load(&rx_used) <= limit / 2;
}

void cn_rxmem_sub(uint64_t bytes)
{
	atomic_fetch_sub(&rx_used, bytes);
	/* Sequentially consistent with the waiter's announcement. */
	if (atomic_load(&rx_waiters) > 0 && rx_low())
		cn_rxmem_wake_all();
}

bool cn_rxmem_over(void)
{
	uint64_t limit = atomic_load_explicit(&rx_limit, memory_order_relaxed);

	return limit != 0 && atomic_load(&rx_used) >= limit;
}

void cn_rxmem_wait(_Atomic int *stop, bool (*go)(void *arg), void *arg)
{
	pthread_mutex_lock(&rx_lock);
	atomic_fetch_add(&rx_waiters, 1);
	while (!rx_low() && !atomic_load(stop) && !go(arg))
		pthread_cond_wait(&rx_cv, &rx_lock);
	atomic_fetch_sub(&rx_waiters, 1);
	pthread_mutex_unlock(&rx_lock);
}

void cn_rxmem_wake_all(void)
{
	pthread_mutex_lock(&rx_lock);
	pthread_cond_broadcast(&rx_cv);
	pthread_mutex_unlock(&rx_lock);
}
