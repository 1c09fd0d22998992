/*
 * Small datagram blocks, recycled between threads.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A small datagram is made on one thread (a connection's reader, or the
 * application's sender) and freed on another (the application's receiver,
 * or the writer).  With malloc every such pair crosses threads: the
 * making thread's cache is always empty and it walks the allocator's
 * shared lists, a cache miss per block.  Here each thread keeps, per size
 * class, a magazine (an array of CN_DGPOOL_MAG blocks) it takes from and
 * one it frees into; a full magazine goes to a shared depot under one
 * lock, and a thread out of blocks takes one back: one lock per magazine,
 * not per datagram, and no list walked.
 *
 * Bounded: the depot keeps CN_DGPOOL_DEPOT_BYTES of blocks per class and
 * frees the rest; a thread keeps at most two magazines per class, and
 * gives them to the depot when it exits and when it calls
 * cn_dgpool_idle() (the library's readers and writers do before they may
 * sleep, so that thousands of idle connections hold nothing).  Blocks
 * come from malloc and go back to free.  Under AddressSanitizer nothing is
 * kept, so that a use after free is still caught.
 */
#ifndef CONNECT_DGPOOL_H
#define CONNECT_DGPOOL_H

#include <stdbool.h>
#include <stddef.h>

/* The largest block the pool serves (bytes, datagram struct included). */
#define CN_DGPOOL_MAX 512u
/* Classes: 64, 128, 256 and 512 bytes. */
#define CN_DGPOOL_CLASSES 4

/* A block of at least size bytes (size <= CN_DGPOOL_MAX), NULL without
 * memory; *cls receives its class, for cn_dgpool_free. */
void *cn_dgpool_alloc(size_t size, unsigned *cls);
/* Give back a block of class cls. */
void cn_dgpool_free(void *p, unsigned cls);
/* The calling thread may sleep a while: its blocks go to the depot. */
void cn_dgpool_idle(void);
/* Blocks held by the depot (tests). */
size_t cn_dgpool_depot_blocks(void);

#endif /* CONNECT_DGPOOL_H */
