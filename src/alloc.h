/*
 * Every allocation of the library goes through here: one hook (as
 * hiredis has) that the tests replace to fail the Nth allocation, and the
 * large datagram buffers, which are mapped so that their memory goes back
 * to the system when they are freed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_ALLOC_H
#define CONNECT_ALLOC_H

#include <stddef.h>

struct cn_allocator {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *p, size_t size);
	void (*free)(void *p);
};

/* The library's allocator: libc's.  Only the tests change it, before any
 * library call, and put it back after. */
extern struct cn_allocator cn_allocator;

void *cn_malloc(size_t size);
void *cn_calloc(size_t n, size_t size); /* zeroed; checks n * size */
void *cn_realloc(void *p, size_t size);
void cn_free(void *p);
char *cn_strdup(const char *s);
char *cn_strndup(const char *s, size_t n);
/* Aligned to a cache line; freed with cn_free_aligned. */
void *cn_malloc_aligned(size_t size);
void cn_free_aligned(void *p);

#endif /* CONNECT_ALLOC_H */
