/*
 * Small helpers: the monotonic clock, deadlines, condition waits with a
 * deadline, and library threads with a chosen stack size.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

int64_t cn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cn_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return cn_now_ms() + timeout_ms;
}

int cn_remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - cn_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int cn_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t attr;
	int rc;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
	return rc;
}

bool cn_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
			int64_t deadline)
{
	struct timespec ts;

	if (deadline < 0) {
		pthread_cond_wait(c, m);
		return true;
	}
	ts.tv_sec = deadline / 1000;
	ts.tv_nsec = (deadline % 1000) * 1000000;
	return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * A wake-up through the condition variable costs the waker a system call
 * and the sleeper a trip through the scheduler, several microseconds
 * each; a peer's answer or the reader's next batch often comes sooner.
 * So look for a while first, yielding the processor between looks (on a
 * machine with few cores the thread that makes the condition true may
 * need this one).  Never past deadline (cn_now_ms clock; -1: none).
 * True when ready.
 */
static bool spin_ready(const struct cn_waiter *w, int64_t deadline)
{
	int64_t end = now_ns() + w->spin_ns;

	if (deadline >= 0 && end > deadline * 1000000)
		end = deadline * 1000000;

	do {
		for (int i = 0; i < 16; i++) {
			if (w->ready(w->arg))
				return true;
			caa_cpu_relax();
		}
		sched_yield();
	} while (now_ns() < end);
	return false;
}

int cn_wait(const struct cn_waiter *w, int timeout_ms)
{
	int64_t deadline = -2; /* read the clock only if we have to wait */
	bool spun = w->spin_ns <= 0 || timeout_ms == 0;
	int rc;

	while ((rc = w->try(w->arg)) == CONNECT_EAGAIN) {
		bool timed_out = false, slept = false;

		if (deadline == -2)
			deadline = cn_deadline(timeout_ms);
		if (!spun) {
			spun = true;
			if (spin_ready(w, deadline))
				continue;
		}
		pthread_mutex_lock(w->m);
		if (w->waiters) {
			atomic_fetch_add(w->waiters, 1);
			/* The condition below reads plain memory (the
			 * queues): order it after the announcement. */
			atomic_thread_fence(memory_order_seq_cst);
		}
		while (!w->ready(w->arg) && !timed_out) {
			timed_out = !cn_cond_wait_until(w->cv, w->m, deadline);
			slept = true;
		}
		if (w->waiters)
			atomic_fetch_sub(w->waiters, 1);
		pthread_mutex_unlock(w->m);
		if (timed_out) {
			rc = w->try(w->arg);
			if (rc == CONNECT_EAGAIN)
				rc = CONNECT_ETIMEDOUT;
			break;
		}
		/* Ready at once, and yet the try failed: another thread is
		 * half-way through an enqueue, which takes it a few
		 * instructions to finish. */
		if (!slept)
			sched_yield();
	}
	return rc;
}

int (*cn_pthread_create)(pthread_t *th, const pthread_attr_t *attr,
			 void *(*fn)(void *), void *arg) = pthread_create;

int cn_thread_start(pthread_t *th, void *(*fn)(void *), void *arg,
		    size_t stack_size)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (pthread_attr_init(&attr) != 0)
		return CONNECT_ETHREAD;
	/* Refused sizes must not fall back silently to the 8 MiB default:
	 * thousands of connections rely on small stacks. */
	if (pthread_attr_setstacksize(&attr, stack_size) != 0) {
		pthread_attr_destroy(&attr);
		return CONNECT_ETHREAD;
	}
	/* Library threads take no signals: the application's handlers run
	 * on its own threads, and a blocking call in ours is never
	 * interrupted at random.  The new thread inherits this mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = cn_pthread_create(th, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == EAGAIN)
		return CONNECT_ETHREAD;
	return rc ? CONNECT_ETHREAD : CONNECT_OK;
}
