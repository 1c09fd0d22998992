/*
 * tcp-client-blaster: push many datagrams through an echo server and check
 * that every one comes back complete and in order.
 *
 *     tcp-client-blaster ADDR [COUNT]
 *
 * Sends COUNT (default 10,000) datagrams with tag 0 whose 2-byte payload is
 * a big-endian counter (0, 1, 2, ... modulo 65536), as fast as the outbound
 * queue takes them, while a second thread receives the echoes and checks
 * that each has tag 0, 2 bytes and the next counter value.  Prints the
 * elapsed time and the rate.  Exits 0 when all came back in order, 1 on
 * any failure, 2 on bad usage.
 *
 * The C counterpart of the tcp-client-blaster example of the Rust crate
 * `connect`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <connect.h>

#include "echo_common.h"

#define PROG "tcp-client-blaster"
#define DEFAULT_COUNT 10000
#define TAG 0
/* Longest wait for room in the outbound queue. */
#define SEND_TIMEOUT_MS 10000
/* Longest time without any echo before the receiver gives up. */
#define STALL_MS 10000

struct blast {
	connect_conn *conn;
	/* How many echoes to wait for; lowered by the sender if it fails. */
	atomic_ulong expected;
	/* Receiver results, read by main after the join. */
	unsigned long received;
	int err;         /* CONNECT_OK, a library code, or 1 for a mismatch */
	char why[256];
	struct timespec done;
};

const char echo_prog[] = PROG;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receiver(void *arg)
{
	struct blast *b = arg;
	connect_datagram *dg;
	const uint8_t *p;
	double last = now_s();
	uint16_t want;
	int rc;

	while (b->received < atomic_load(&b->expected)) {
		rc = connect_recv_wait(b->conn, &dg, 200);
		if (rc == CONNECT_ETIMEDOUT) {
			if (now_s() - last > STALL_MS / 1000.0) {
				b->err = rc;
				snprintf(b->why, sizeof(b->why),
					 "no echo for %d ms", STALL_MS);
				break;
			}
			continue;
		}
		if (rc != CONNECT_OK) {
			b->err = rc;
			connect_conn_error(b->conn, b->why, sizeof(b->why));
			break;
		}
		want = (uint16_t)b->received;
		p = connect_datagram_data(dg);
		if (connect_datagram_tag(dg) != TAG ||
		    connect_datagram_size(dg) != 2 ||
		    (uint16_t)(p[0] << 8 | p[1]) != want) {
			b->err = 1;
			snprintf(b->why, sizeof(b->why),
				 "echo #%lu: expected tag %u with counter %u, "
				 "got tag %u with %zu byte(s) (%d)",
				 b->received, TAG, want,
				 connect_datagram_tag(dg),
				 connect_datagram_size(dg),
				 connect_datagram_size(dg) >= 2 ?
					 p[0] << 8 | p[1] : -1);
			connect_datagram_free(dg);
			break;
		}
		connect_datagram_free(dg);
		b->received++;
		last = now_s();
	}
	clock_gettime(CLOCK_MONOTONIC, &b->done);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " ADDR [COUNT]\n"
			"  ADDR   host:port or [ipv6]:port of an echo server\n"
			"  COUNT  datagrams to send (default %d)\n",
		DEFAULT_COUNT);
}

int main(int argc, char **argv)
{
	struct blast b = { .err = CONNECT_OK };
	unsigned long count = DEFAULT_COUNT, sent;
	connect_datagram *dg;
	struct timespec start;
	pthread_t th;
	double secs;
	uint8_t payload[2];
	int rc, status = 0;

	if (argc < 2 || argc > 3 || argv[1][0] == '-' ||
	    (argc == 3 && !echo_parse_count(argv[2], &count))) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	rc = connect_tcp_client(&b.conn, argv[1], NULL);
	if (rc != CONNECT_OK) {
		echo_error(rc, "cannot connect to %s", argv[1]);
		return 1;
	}
	atomic_init(&b.expected, count);
	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = pthread_create(&th, NULL, receiver, &b);
	if (rc != 0) {
		echo_warn("pthread_create: %s", strerror(rc));
		connect_close(b.conn, 0, NULL);
		return 1;
	}

	for (sent = 0; sent < count; sent++) {
		payload[0] = (uint8_t)(sent >> 8);
		payload[1] = (uint8_t)sent;
		rc = connect_datagram_new(&dg, TAG, payload, sizeof(payload));
		if (rc != CONNECT_OK) {
			echo_warn("connect_datagram_new: %s",
				  connect_strerror(rc));
			break;
		}
		rc = connect_send_wait(b.conn, dg, SEND_TIMEOUT_MS);
		if (rc != CONNECT_OK) {
			connect_datagram_free(dg);
			echo_conn_error(b.conn, rc, "send #%lu", sent);
			break;
		}
	}
	if (sent < count) {
		/* Wait only for what really went out. */
		atomic_store(&b.expected, sent);
		status = 1;
	}
	pthread_join(th, NULL);

	if (b.err != CONNECT_OK) {
		if (b.err == 1)
			echo_warn("out of order: %s", b.why);
		else
			echo_error_detail(b.err, b.why,
					  "receive after %lu echo(es)",
					  b.received);
		status = 1;
	}
	secs = (double)(b.done.tv_sec - start.tv_sec) +
	       (double)(b.done.tv_nsec - start.tv_nsec) / 1e9;
	if (secs <= 0)
		secs = 1e-9;
	printf("%s: sent %lu, received %lu of %lu in order in %.3f s "
	       "(%.0f msgs/s)\n",
	       status ? "FAILED" : "ok", sent, b.received, count, secs,
	       (double)b.received / secs);

	if (echo_close(b.conn, 5000))
		status = 1;
	return status;
}
