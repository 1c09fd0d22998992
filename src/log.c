/*
 * The optional log callback.  Silent unless the application installs one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdarg.h>
#include <stdio.h>

/* The callback, its argument and level are read by every library thread;
 * a lock keeps the three consistent (logging is off the hot path). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static connect_log_fn log_fn;
static void *log_arg;
static _Atomic int log_level = -1; /* -1: no callback */

void connect_set_logger(connect_log_fn fn, void *arg, int max_level)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_arg = arg;
	atomic_store(&log_level, fn ? max_level : -1);
	pthread_mutex_unlock(&log_lock);
}

bool cn_log_enabled(int level)
{
	return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void cn_log(int level, const char *id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!cn_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (log_fn && level <= atomic_load(&log_level))
		log_fn(log_arg, level, id, msg);
	pthread_mutex_unlock(&log_lock);
}
