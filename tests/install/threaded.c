/*
 * threaded.c: a small threaded program built against the INSTALLED
 * libconnect (header, library and libconnect.pc) by
 * tests/install/installcheck.sh.
 *
 *     threaded ADDR
 *
 * Opens one connection to an echo server at ADDR.  Four threads send 2000
 * datagrams each on it at the same time (tag = the thread's number,
 * payload = a big-endian counter followed by filler of varying length)
 * while a fifth thread receives the echoes and checks that every thread's
 * datagrams come back complete and in that thread's order.  Exits 0 when
 * all came back, 1 otherwise.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <connect.h>

#define NTHREADS 4
#define NMSGS 2000
#define TIMEOUT_MS 20000

static connect_conn *conn;

static size_t payload_len(uint32_t i)
{
	return 4 + (i * 37) % 1000;
}

static void fill(unsigned char *p, uint32_t i, size_t len)
{
	size_t k;

	p[0] = (unsigned char)(i >> 24);
	p[1] = (unsigned char)(i >> 16);
	p[2] = (unsigned char)(i >> 8);
	p[3] = (unsigned char)i;
	for (k = 4; k < len; k++)
		p[k] = (unsigned char)(i + k);
}

static void *sender(void *arg)
{
	uint16_t tag = (uint16_t)(uintptr_t)arg;
	connect_datagram *dg;
	uint32_t i;
	int rc;

	for (i = 0; i < NMSGS; i++) {
		size_t len = payload_len(i);

		rc = connect_datagram_alloc(&dg, tag, len);
		if (rc != CONNECT_OK)
			break;
		fill(connect_datagram_data(dg), i, len);
		rc = connect_send_wait(conn, dg, TIMEOUT_MS);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			break;
		}
	}
	if (i < NMSGS) {
		fprintf(stderr, "threaded: sender %u: datagram %u: %s\n",
			(unsigned)tag, (unsigned)i, connect_strerror(rc));
		return (void *)1;
	}
	return NULL;
}

static void *receiver(void *arg)
{
	uint32_t next[NTHREADS] = {0};
	unsigned char want[1004];
	connect_datagram *dg;
	long total;
	int rc;

	(void)arg;
	for (total = 0; total < (long)NTHREADS * NMSGS; total++) {
		uint16_t tag;
		size_t len;

		rc = connect_recv_wait(conn, &dg, TIMEOUT_MS);
		if (rc != CONNECT_OK) {
			char why[256];

			connect_conn_error(conn, why, sizeof(why));
			fprintf(stderr, "threaded: recv after %ld: %s: %s (%s)\n",
				total, connect_err_name(rc),
				connect_strerror(rc), why);
			return (void *)1;
		}
		tag = connect_datagram_tag(dg);
		len = connect_datagram_size(dg);
		if (tag >= NTHREADS || next[tag] >= NMSGS ||
		    len != payload_len(next[tag])) {
			fprintf(stderr, "threaded: unexpected datagram: tag %u, "
				"%zu bytes\n", (unsigned)tag, len);
			connect_datagram_free(dg);
			return (void *)1;
		}
		fill(want, next[tag], len);
		if (memcmp(connect_datagram_data(dg), want, len) != 0) {
			fprintf(stderr, "threaded: thread %u datagram %u "
				"garbled or out of order\n", (unsigned)tag,
				(unsigned)next[tag]);
			connect_datagram_free(dg);
			return (void *)1;
		}
		next[tag]++;
		connect_datagram_free(dg);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t send_th[NTHREADS], recv_th;
	void *res;
	uint64_t sent = 0;
	size_t unsent = 0;
	int rc, i, bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: threaded ADDR\n");
		return 2;
	}
	printf("threaded: libconnect %s (compiled against %s)\n",
	       connect_version_string(), CONNECT_VERSION);
	rc = connect_tcp_client(&conn, argv[1], NULL);
	if (rc != CONNECT_OK) {
		fprintf(stderr, "threaded: connect %s: %s\n", argv[1],
			connect_strerror(rc));
		return 1;
	}
	if (pthread_create(&recv_th, NULL, receiver, NULL) != 0)
		return 1;
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&send_th[i], NULL, sender,
				   (void *)(uintptr_t)i) != 0)
			return 1;
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(send_th[i], &res);
		bad |= res != NULL;
	}
	pthread_join(recv_th, &res);
	bad |= res != NULL;

	connect_conn_stat(conn, CONNECT_STAT_MSGS_SENT, &sent);
	rc = connect_close(conn, 5000, &unsent);
	if (rc != CONNECT_OK) {
		fprintf(stderr, "threaded: close: %s (%zu unsent)\n",
			connect_strerror(rc), unsent);
		bad = 1;
	}
	if (bad)
		return 1;
	printf("threaded: %d threads x %d datagrams echoed in order "
	       "(%llu sent)\n", NTHREADS, NMSGS, (unsigned long long)sent);
	return 0;
}
