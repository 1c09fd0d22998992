/*
 * The fault-injecting transport layer, for the tests: "fault+tcp://..."
 * once cn_fault_register() has run.  It sits over any lower transport and
 * passes the bytes through unchanged, but moves them in short pieces,
 * says "would block" at random, and fails at a chosen byte; with
 * eintr_every it also makes the socket calls below fail with EINTR.
 * Built into the internal test library only, never into libconnect.so.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_FAULT_H
#define CONNECT_FAULT_H

#include "connect_int.h"

enum cn_fault_side {
	CN_FAULT_BOTH = 0,
	CN_FAULT_CLIENT = 1, /* dialed connections only */
	CN_FAULT_SERVER = 2, /* accepted connections only */
};

struct cn_fault_plan {
	int side;              /* enum cn_fault_side */
	size_t max_io;         /* > 0: each recv / sendv moves 1..max_io */
	unsigned eagain_every; /* > 0: ~1 in N non-blocking calls: EAGAIN */
	unsigned eintr_every;  /* > 0: every Nth sendmsg / recv: EINTR */
	int64_t fail_send_at;  /* >= 0: sending byte N fails (fail_code) */
	int64_t fail_recv_at;  /* >= 0: receiving byte N fails */
	int fail_code;         /* CONNECT_E*; 0: CONNECT_EIO */
	unsigned seed;
	/* Act as a message transport (CN_TRANSPORT_MESSAGES, as SCTP will
	 * be): sends are never cut short, and each send is checked to be
	 * exactly one whole TLS record (what a layer above must keep). */
	bool messages;
	/* >= 0: the send holding byte N goes with that byte flipped (below
	 * a record layer: a record that fails its check). */
	int64_t corrupt_send_at;
};

/* A plan that injects nothing. */
void cn_fault_plan_init(struct cn_fault_plan *p);
/* The plan taken by fault transports made from now on (copied). */
void cn_fault_set(const struct cn_fault_plan *p);
/* Make the "fault" scheme known.  Call once, before dialing. */
int cn_fault_register(void);
/* Socket calls that failed with an injected EINTR so far. */
uint64_t cn_fault_eintrs(void);
/* Message mode: sends made, and sends that were not one whole TLS
 * record. */
uint64_t cn_fault_messages(void);
uint64_t cn_fault_bad_records(void);

#endif /* CONNECT_FAULT_H */
