/*
 * Allocation through one hook (see alloc.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct cn_allocator cn_allocator = { malloc, realloc, free };

void *cn_malloc(size_t size)
{
	return cn_allocator.malloc(size ? size : 1);
}

void *cn_calloc(size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = cn_malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void *cn_realloc(void *p, size_t size)
{
	return cn_allocator.realloc(p, size ? size : 1);
}

void cn_free(void *p)
{
	if (p)
		cn_allocator.free(p);
}

char *cn_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = cn_malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

char *cn_strdup(const char *s)
{
	return cn_strndup(s, SIZE_MAX);
}

/* The block as allocated is kept just below the aligned address. */
void *cn_malloc_aligned(size_t size)
{
	uintptr_t a;
	void *p;

	if (size > SIZE_MAX - CN_CACHELINE - sizeof(void *))
		return NULL;
	p = cn_malloc(size + CN_CACHELINE + sizeof(void *));
	if (!p)
		return NULL;
	a = ((uintptr_t)p + sizeof(void *) + CN_CACHELINE - 1) &
	    ~(uintptr_t)(CN_CACHELINE - 1);
	((void **)a)[-1] = p;
	return (void *)a;
}

void cn_free_aligned(void *p)
{
	if (p)
		cn_free(((void **)p)[-1]);
}
