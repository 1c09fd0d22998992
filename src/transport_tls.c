/*
 * The TLS layer: a GnuTLS session stacked over any lower transport, which
 * it sees only through the transport operations (transport.h).
 *
 * Copyright (C) 2026 The libconnect developers
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Locking theory.  The reader and the writer each wait for the network on
 * their own, but GnuTLS code never runs in both at once, and never stops
 * half-way through a call to wait for the peer:
 *   - every GnuTLS call on the session runs under t->lock;
 *   - the pull callback reads the lower transport without waiting: when
 *     gnutls_record_recv() needs more bytes it returns GNUTLS_E_AGAIN, and
 *     the reader drops the lock and waits on the lower transport;
 *   - after the handshake the push callback does not write to the socket:
 *     it appends the encrypted bytes to t->wbuf (under t->lock), and the
 *     writer sends them once the GnuTLS call has returned, holding only
 *     t->wlock, which orders the bytes on the socket.
 * GnuTLS 3.7 needs all of this.  It allows one thread sending and one
 * receiving, but its TLS 1.3 KeyUpdate handling is not safe with them:
 * the reply to a peer's KeyUpdate copies the read sequence number from the
 * current key epoch, so a reader blocked inside gnutls_record_recv() goes
 * on with a stale one ("Decryption has failed"); and a KeyUpdate handled
 * by the reader frees key epochs that a writer blocked inside
 * gnutls_record_send() still uses.
 *
 * abort() takes no lock and makes no GnuTLS call: it sets a flag and
 * aborts the lower transport, which wakes the reader's wait and the
 * writer's send; the lower transport lives until destroy().
 *
 * Over a message transport (CN_TRANSPORT_MESSAGES) each TLS record goes
 * out as one lower message, as DTLS over SCTP needs: what GnuTLS pushes
 * is whole records (possibly several at once), so the writes walk the
 * record headers and send one record per lower send.
 *
 * Records are not corked with gnutls_record_cork(): cork and uncork
 * overwrite the session's send state, where GnuTLS notes that the peer
 * asked for a KeyUpdate, and the reply would be lost.  Instead small
 * writes are gathered into one record-sized buffer here, so each
 * gnutls_record_send() makes one full record and one system call.
 */
#include "connect_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/dtls.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"
#include "transport.h"
#include "alloc.h"

/* The content type of alert records. */
#define GNUTLS_ALERT_RECORD_TYPE 21

/* Largest TLS plaintext record. */
#define TLS_RECORD 16384u
/* DTLS over a message transport: the most a record may take on the wire
 * (GnuTLS caps a DTLS record at this; gnutls_dtls_get_data_mtu() says how
 * much plaintext fits once the cipher is known). */
#define DTLS_MTU 16384u
/* RFC 6083: the key of SCTP-AUTH, from the DTLS exporter (RFC 5705). */
#define DTLS_SCTP_LABEL "EXPORTER_DTLS_OVER_SCTP"
#define DTLS_SCTP_KEY_LEN 64

struct tls_buf {
	uint8_t *p;
	size_t len, cap;
};

struct tls_transport {
	struct cn_transport base;
	struct cn_transport *lower;
	bool server;
	bool records;           /* one record per lower message */
	bool dtls;              /* DTLS 1.2 over a message transport */
	size_t rec_max;         /* plaintext per record (DTLS: data MTU) */
	bool push_blocked;      /* handshake: the last push would block */
	unsigned discarded0;    /* DTLS: records dropped by the handshake's end */
	/* DTLS: a record is taken whole (GnuTLS drops what does not fit the
	 * buffer), so a reader asking for less than the largest record gets
	 * it through rspill (TLS_RECORD bytes, made on first need);
	 * rs_off/rs_len: what is still to hand out (under lock). */
	uint8_t *rspill;
	size_t rs_off, rs_len;
	gnutls_session_t session;
	connect_tls_config *cfg;
	char *server_name;      /* verified name; GnuTLS keeps the pointer */
	gnutls_typed_vdata_st vdata[2]; /* what the peer is checked against
					 * (GnuTLS keeps the pointer too) */
	int client_auth;        /* server: enum connect_tls_client_auth */
	int timeout_ms;         /* handshake */
	int64_t hs_deadline;    /* handshake: absolute, cn_now_ms() clock */
	unsigned vstatus;       /* server: client certificate status */
	atomic_int rd_err;      /* last lower failure seen by pull */
	atomic_bool rd_eof;     /* pull saw the lower stream end */
	atomic_bool peer_closed; /* the peer's close_notify arrived */
	atomic_int wr_err;      /* last lower failure seen by push/flush */

	pthread_mutex_t lock;   /* GnuTLS calls; wbuf; fatal */
	bool buffered;          /* push fills wbuf (after the handshake) */
	int fatal;              /* first failure of the session */
	struct tls_buf wbuf;    /* encrypted bytes not yet taken (lock) */

	pthread_mutex_t wlock;  /* writing to the lower stream, in order */
	struct tls_buf wout;    /* bytes being written (wlock) */
	size_t wout_off;        /* wlock: of wout, written by a direct send
				 * that the socket did not take whole */
	atomic_bool out_pending; /* wout_off < wout.len */

	uint8_t *sbuf; /* writer: small writes gathered (TLS_RECORD bytes,
			* made on the first gathering: an idle connection
			* has none) */
};

static struct tls_transport *tls_of(struct cn_transport *t)
{
	return (struct tls_transport *)t;
}

static bool tls_is_reset(int code)
{
	return code == CONNECT_ECONNRESET;
}

/* ---- GnuTLS transport callbacks ---------------------------------------- */

/*
 * GnuTLS reads errno (thread-local) to tell EAGAIN and EINTR from
 * failures; the lower transport's code is kept for the error mapping.
 */
static ssize_t tls_lower_fail(atomic_int *slot, ssize_t code)
{
	if (code == CONNECT_EAGAIN) {
		errno = EAGAIN;
	} else {
		atomic_store_explicit(slot, (int)code, memory_order_relaxed);
		errno = tls_is_reset((int)code) ? ECONNRESET : EIO;
	}
	return -1;
}

static int tls_buf_reserve(struct tls_buf *b, size_t need)
{
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = cn_realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	return 0;
}

/* The length of the record starting at p (len bytes there), header
 * included; len when the header is not all there.  The length is the
 * last two bytes of the header: 5 bytes in TLS, 13 in DTLS (epoch and
 * sequence number come before it). */
static size_t tls_record_len(const struct tls_transport *t, const uint8_t *p,
			     size_t len)
{
	size_t hdr = t->dtls ? 13 : 5, n;

	if (len < hdr)
		return len;
	n = hdr + ((size_t)p[hdr - 2] << 8 | p[hdr - 1]);
	return n < len ? n : len;
}

/* Write p[0..len) to the lower transport: as a stream, or one record per
 * message.  Returns the bytes written or a code. */
static ssize_t tls_lower_write(struct tls_transport *t, const uint8_t *p,
			       size_t len, int flags)
{
	size_t off = 0;

	while (off < len) {
		size_t n = t->records ? tls_record_len(t, p + off, len - off)
				      : len - off;
		struct iovec iov = { (void *)(p + off), n };
		ssize_t put = t->lower->ops->sendv(t->lower, &iov, 1, flags);

		if (put < 0)
			return off > 0 && put == CONNECT_EAGAIN ? (ssize_t)off
								: put;
		off += (size_t)put;
	}
	return (ssize_t)off;
}

/* GnuTLS pushes whole records, one or several at a time. */
static ssize_t tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov,
			int iovcnt)
{
	struct tls_transport *t = ptr;
	size_t total = 0, start = t->wbuf.len;
	ssize_t n;
	int i;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (tls_buf_reserve(&t->wbuf, t->wbuf.len + total) < 0) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < iovcnt; i++) {
		memcpy(t->wbuf.p + t->wbuf.len, iov[i].iov_base,
		       iov[i].iov_len);
		t->wbuf.len += iov[i].iov_len;
	}
	if (t->buffered)
		return (ssize_t)total;
	/* The handshake: one thread, straight to the lower transport without
	 * waiting (the handshake loop waits, within its deadline). */
	t->wbuf.len = start;
	n = tls_lower_write(t, t->wbuf.p + start, total, CN_IO_NONBLOCK);
	t->push_blocked = n == CONNECT_EAGAIN;
	return n < 0 ? tls_lower_fail(&t->wr_err, n) : n;
}

/* Never waits: GnuTLS returns GNUTLS_E_AGAIN and the caller waits. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct tls_transport *t = ptr;
	ssize_t n = t->lower->ops->recv(t->lower, buf, len, CN_IO_NONBLOCK);

	if (n == 0)
		atomic_store_explicit(&t->rd_eof, true, memory_order_relaxed);
	return n < 0 ? tls_lower_fail(&t->rd_err, n) : n;
}

/*
 * Used by GnuTLS during the handshake to bound each wait for the peer.
 * GnuTLS 3.7 renews `ms` for every read inside one handshake message, so a
 * peer sending a byte at a time could stretch the handshake without end:
 * every wait is also bounded by the handshake's own deadline.
 * Returns > 0 when data may be read, 0 on timeout, -1 on failure.
 */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct tls_transport *t = ptr;
	int64_t deadline = t->hs_deadline;
	int rc;

	/*
	 * DTLS, non-blocking: GnuTLS probes with 0 ms before it reads what
	 * it may already hold.  Having read the peer's ChangeCipherSpec and
	 * Finished, it still asks the transport before it takes the
	 * Finished from its own buffer, and a "nothing there" would leave
	 * the handshake waiting for a retransmission that never comes over
	 * SCTP.  So the probe says "maybe": a read that finds nothing says
	 * GNUTLS_E_AGAIN, and the handshake loop waits then.
	 */
	if (t->dtls && ms == 0)
		return 1;
	if (ms != GNUTLS_INDEFINITE_TIMEOUT) {
		int64_t own = cn_now_ms() + (ms > INT_MAX ? INT_MAX : ms);

		if (deadline < 0 || own < deadline)
			deadline = own;
	}
	rc = t->lower->ops->wait(t->lower, CN_WAIT_READ, deadline);
	if (rc == CONNECT_OK)
		return 1;
	if (rc == CONNECT_ETIMEDOUT)
		return 0;
	errno = EIO;
	return -1;
}

/* Wait until the lower transport is ready; no lock held. */
static void tls_wait(struct tls_transport *t, int events, int64_t deadline)
{
	(void)t->lower->ops->wait(t->lower, events, deadline);
}

/* ---- error mapping ------------------------------------------------------ */

/* Record the session's failure: the first one wins, and later failures in
 * either direction report it again (GnuTLS just says "invalid session").
 * Called with t->lock held. */
static int tls_fail(struct tls_transport *t, int code, const char *fmt, ...)
	CN_PRINTF(3, 4);

static int tls_fail(struct tls_transport *t, int code, const char *fmt, ...)
{
	char why[CN_REASON_LEN];
	va_list ap;

	if (atomic_load(&t->base.aborted))
		return CONNECT_ECLOSED;
	if (t->fatal != 0)
		return t->fatal;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	t->fatal = code;
	cn_transport_set_error(&t->base, code, "%s", why);
	return code;
}

/* A failure of the lower transport; called with t->lock held. */
static int tls_fail_lower(struct tls_transport *t, int code)
{
	char why[CN_REASON_LEN];

	if (code == 0)
		code = CONNECT_EIO;
	if (cn_transport_reason(t->lower, why, sizeof(why)) == 0 || !why[0])
		snprintf(why, sizeof(why), "%s", connect_strerror(code));
	return tls_fail(t, code, "%s", why);
}

/* A GnuTLS error of an established session (reader: reading == true);
 * called with t->lock held. */
static int tls_io_error(struct tls_transport *t, int gerr, bool reading)
{
	int e = atomic_load_explicit(reading ? &t->rd_err : &t->wr_err,
				     memory_order_relaxed);
	const char *name;

	switch (gerr) {
	case GNUTLS_E_PREMATURE_TERMINATION:
		if (tls_is_reset(e))
			return tls_fail_lower(t, e);
		return tls_fail(t, CONNECT_ETRUNCATED,
				"peer closed the stream without TLS "
				"close_notify");
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
		/* What GnuTLS says when the stream ends inside a record. */
		if (reading && atomic_load(&t->rd_eof))
			return tls_fail(t, CONNECT_ETRUNCATED,
					"peer closed the stream inside a TLS "
					"record, without close_notify");
		return tls_fail(t, CONNECT_ETLS, "TLS error: %s",
				gnutls_strerror(gerr));
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		name = gnutls_alert_get_name(gnutls_alert_get(t->session));
		return tls_fail(t, CONNECT_ETLSALERT, "TLS alert received: %s",
				name != NULL ? name : "unknown alert");
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		return tls_fail_lower(t, e);
	case GNUTLS_E_MEMORY_ERROR:
		return tls_fail(t, CONNECT_ENOMEM, "out of memory in GnuTLS");
	default:
		return tls_fail(t, CONNECT_ETLS, "TLS error: %s",
				gnutls_strerror(gerr));
	}
}

/* "The certificate is NOT trusted. The certificate issuer is unknown. "
 * becomes "The certificate issuer is unknown." */
static void tls_status_text(unsigned status, char *buf, size_t len)
{
	static const char prefix[] = "The certificate is NOT trusted. ";
	gnutls_datum_t out = { NULL, 0 };
	const char *s = "unknown verification failure";
	size_t n;

	if (gnutls_certificate_verification_status_print(
		    status, GNUTLS_CRT_X509, &out, 0) == 0 &&
	    out.data != NULL) {
		s = (const char *)out.data;
		if (strncmp(s, prefix, sizeof(prefix) - 1) == 0 &&
		    s[sizeof(prefix) - 1] != '\0')
			s += sizeof(prefix) - 1;
	}
	snprintf(buf, len, "%s", s);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	gnutls_free(out.data);
}

static int tls_verify_error(struct tls_transport *t, char *reason,
			    size_t len, int *alert)
{
	unsigned st = t->server ? t->vstatus :
				  gnutls_session_get_verify_cert_status(
					  t->session);
	const char *who = t->server ? "client certificate" : "certificate";
	char text[160];
	int code;

	if (st & GNUTLS_CERT_SIGNER_NOT_FOUND) {
		code = CONNECT_ETLSUNKNOWNISSUER;
		*alert = GNUTLS_A_UNKNOWN_CA;
	} else if (st & GNUTLS_CERT_UNEXPECTED_OWNER) {
		code = CONNECT_ETLSNAMEMISMATCH;
		*alert = GNUTLS_A_BAD_CERTIFICATE;
	} else if (st & GNUTLS_CERT_EXPIRED) {
		code = CONNECT_ETLSEXPIRED;
		*alert = GNUTLS_A_CERTIFICATE_EXPIRED;
	} else if (st & GNUTLS_CERT_NOT_ACTIVATED) {
		code = CONNECT_ETLSNOTYETVALID;
		*alert = GNUTLS_A_BAD_CERTIFICATE;
	} else {
		code = CONNECT_ETLSBADCERT;
		*alert = GNUTLS_A_BAD_CERTIFICATE;
	}
	tls_status_text(st, text, sizeof(text));
	if (code == CONNECT_ETLSNAMEMISMATCH && t->server_name != NULL)
		snprintf(reason, len,
			 "%s verification failed: %s (expected \"%s\")", who,
			 text, t->server_name);
	else
		snprintf(reason, len, "%s verification failed: %s", who, text);
	return code;
}

/*
 * A DTLS peer that refuses the handshake sends an alert and ends the
 * association (over SCTP an ABORT follows the alert): our next send then
 * fails, while the alert waits, unread, below.  Look for it among the
 * messages still there: a plaintext alert record (before the peer's
 * ChangeCipherSpec), type 21, two bytes, level then description.  True,
 * with the reason written, when one is found.
 */
static bool dtls_alert_waiting(struct tls_transport *t, char *reason,
			       size_t len)
{
	uint8_t buf[2048];

	for (int i = 0; i < 16; i++) {
		ssize_t n = t->lower->ops->recv(t->lower, buf, sizeof(buf),
						CN_IO_NONBLOCK);
		const char *name;

		if (n <= 0)
			break;
		if (n < 15 || buf[0] != GNUTLS_ALERT_RECORD_TYPE ||
		    buf[3] != 0 || buf[4] != 0 || buf[11] != 0 ||
		    buf[12] != 2)
			continue;
		name = gnutls_alert_get_name((gnutls_alert_description_t)
						     buf[14]);
		snprintf(reason, len, "TLS alert received: %s",
			 name != NULL ? name : "unknown alert");
		return true;
	}
	return false;
}

/*
 * Map a failed handshake onto a specific code and reason.  *alert is the
 * alert to send the peer, or -1 for none (the peer is gone, silent, not
 * speaking TLS, or told us first).
 */
static int tls_handshake_error(struct tls_transport *t, int gerr,
			       char *reason, size_t len, int *alert)
{
	int e;
	char lower[CN_REASON_LEN];

	*alert = -1;
	/* A DTLS peer's refusal: its alert may wait behind our failed
	 * send. */
	if (t->dtls &&
	    (gerr == GNUTLS_E_PUSH_ERROR || gerr == GNUTLS_E_PULL_ERROR ||
	     gerr == GNUTLS_E_PREMATURE_TERMINATION) &&
	    atomic_load(&t->wr_err) != CONNECT_ECLOSED &&
	    atomic_load(&t->rd_err) != CONNECT_ECLOSED &&
	    dtls_alert_waiting(t, reason, len))
		return CONNECT_ETLSALERT;
	switch (gerr) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		return tls_verify_error(t, reason, len, alert);
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		*alert = GNUTLS_A_CERTIFICATE_REQUIRED;
		snprintf(reason, len, "%s",
			 t->server ? "the client sent no certificate, but "
				     "one is required" :
				     "the server sent no certificate");
		return CONNECT_ETLSNOCERT;
	case GNUTLS_E_FATAL_ALERT_RECEIVED: {
		const char *name = gnutls_alert_get_name(gnutls_alert_get(
			t->session));

		snprintf(reason, len, "TLS alert received: %s",
			 name != NULL ? name : "unknown alert");
		return CONNECT_ETLSALERT;
	}
	case GNUTLS_E_TIMEDOUT:
		snprintf(reason, len, "TLS handshake timed out after %d ms",
			 t->timeout_ms);
		return CONNECT_ETLSHANDSHAKETIMEOUT;
	case GNUTLS_E_PREMATURE_TERMINATION:
		/* A TLS peer that refuses us says why with an alert; one that
		 * just closes or resets the connection did not understand. */
		e = atomic_load(&t->wr_err);
		if (!tls_is_reset(e))
			e = atomic_load(&t->rd_err);
		if (tls_is_reset(e))
			snprintf(reason, len,
				 "peer does not speak TLS: it reset the "
				 "connection during the handshake");
		else
			snprintf(reason, len,
				 "peer does not speak TLS: it closed the "
				 "connection during the handshake");
		return CONNECT_ETLSNOTTLS;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_RECORD_OVERFLOW:
		snprintf(reason, len, "peer does not speak TLS: %s",
			 gnutls_strerror(gerr));
		return CONNECT_ETLSNOTTLS;
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		e = atomic_load(gerr == GNUTLS_E_PULL_ERROR ? &t->rd_err :
							      &t->wr_err);
		if (e == 0)
			e = CONNECT_EIO;
		if (e == CONNECT_ECLOSED) {
			snprintf(reason, len, "TLS handshake cut short");
			return e;
		}
		if (tls_is_reset(e)) {
			snprintf(reason, len,
				 "peer does not speak TLS: it reset the "
				 "connection during the handshake");
			return CONNECT_ETLSNOTTLS;
		}
		cn_transport_reason(t->lower, lower, sizeof(lower));
		snprintf(reason, len, "during the TLS handshake: %s",
			 lower[0] ? lower : connect_strerror(e));
		return e;
	case GNUTLS_E_MEMORY_ERROR:
		snprintf(reason, len, "out of memory in the TLS handshake");
		return CONNECT_ENOMEM;
	default:
		*alert = gnutls_error_to_alert(gerr, NULL);
		snprintf(reason, len, "TLS handshake failed: %s",
			 gnutls_strerror(gerr));
		return CONNECT_ETLS;
	}
}

/* ---- transport operations ---------------------------------------------- */

/* A write to the lower transport failed with code: the session fails. */
static int tls_write_failed(struct tls_transport *t, int code)
{
	int rc;

	atomic_store(&t->wr_err, code);
	pthread_mutex_lock(&t->lock);
	rc = tls_fail_lower(t, code);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/*
 * Write t->wout to the lower transport (wlock held): as one stream, or one
 * message per record.
 */
static int tls_write_out(struct tls_transport *t, int flags)
{
	ssize_t n = tls_lower_write(t, t->wout.p, t->wout.len, flags);

	return n >= 0 ? CONNECT_OK : tls_write_failed(t, (int)n);
}

/* The rest of wout after a direct send (wlock held), waiting as needed. */
static int tls_write_rest(struct tls_transport *t, int flags)
{
	ssize_t n = tls_lower_write(t, t->wout.p + t->wout_off,
				    t->wout.len - t->wout_off, flags);

	t->wout.len = 0;
	t->wout_off = 0;
	atomic_store(&t->out_pending, false);
	return n >= 0 ? CONNECT_OK : tls_write_failed(t, (int)n);
}

/*
 * Write what the push callback gathered, in order, holding no GnuTLS lock
 * while blocked.  The writer calls it after each GnuTLS call; the reader
 * only tries (a reader never waits for the writer's socket).  flags: for
 * the lower sendv (CN_IO_MORE before the end of the stream).
 * Returns CONNECT_OK or the session's failure.
 */
static int tls_flush(struct tls_transport *t, bool try, int flags)
{
	struct tls_buf tmp;
	bool more;
	int rc = CONNECT_OK;

	for (;;) {
		if (try) {
			if (pthread_mutex_trylock(&t->wlock) != 0)
				return CONNECT_OK;
		} else {
			pthread_mutex_lock(&t->wlock);
		}
		/* What a direct send left, before anything newer; all that
		 * is pending is written below. */
		atomic_store(&t->out_pending, false);
		if (t->wout_off < t->wout.len) {
			rc = tls_write_rest(t, flags);
			if (rc != CONNECT_OK) {
				pthread_mutex_unlock(&t->wlock);
				return rc;
			}
		}
		for (;;) {
			pthread_mutex_lock(&t->lock);
			tmp = t->wout;
			t->wout = t->wbuf;
			t->wbuf = tmp;
			t->wbuf.len = 0;
			pthread_mutex_unlock(&t->lock);
			if (t->wout.len == 0)
				break;
			rc = tls_write_out(t, flags);
			t->wout.len = 0;
			if (rc != CONNECT_OK)
				break;
		}
		pthread_mutex_unlock(&t->wlock);
		if (rc != CONNECT_OK)
			return rc;
		/* Bytes pushed while we let go of wlock: go again. */
		pthread_mutex_lock(&t->lock);
		more = t->wbuf.len > 0;
		pthread_mutex_unlock(&t->lock);
		if (!more)
			return CONNECT_OK;
	}
}

/*
 * DTLS drops a record that fails its check without a word (RFC 6347:
 * datagrams get lost anyway) and GnuTLS reads on as if nothing came.
 * Below us nothing is lost (SCTP is reliable and ordered), so a dropped
 * record is a broken stream: GnuTLS counts what it drops, and any drop
 * after the handshake fails the session.  Records reach the reader whole
 * (a peer may fill 2^14 bytes, whatever our own data MTU).  Called with
 * t->lock held.
 */
static ssize_t dtls_record_recv(struct tls_transport *t, void *buf,
				size_t len)
{
	bool spill = len < TLS_RECORD;
	unsigned dropped;
	ssize_t got;

	if (t->rs_len > 0) {
		got = (ssize_t)(len < t->rs_len ? len : t->rs_len);
		memcpy(buf, t->rspill + t->rs_off, (size_t)got);
		t->rs_off += (size_t)got;
		t->rs_len -= (size_t)got;
		return got;
	}
	if (spill && !t->rspill) {
		t->rspill = cn_malloc(TLS_RECORD);
		if (!t->rspill)
			return tls_fail(t, CONNECT_ENOMEM,
					"no memory for a DTLS record");
	}
	got = gnutls_record_recv(t->session, spill ? t->rspill : buf,
				 spill ? TLS_RECORD : len);
	dropped = gnutls_record_get_discarded(t->session) - t->discarded0;
	if (dropped > 0)
		return tls_fail(t, CONNECT_ETLS,
				"%u DTLS record%s failed %s check and %s "
				"dropped: the stream is broken",
				dropped, dropped == 1 ? "" : "s",
				dropped == 1 ? "its" : "their",
				dropped == 1 ? "was" : "were");
	if (got > 0 && spill) {
		t->rs_off = 0;
		t->rs_len = (size_t)got;
		return dtls_record_recv(t, buf, len);
	}
	return got;
}

/*
 * The peer's close_notify came.  A peer that ends the lower stream after it
 * (libconnect does at once: the TCP FIN, often in the same segment) waits
 * in its close until our host acknowledges that end, and the kernel delays
 * the acknowledgement of a FIN (it expects the application to answer with
 * its own) unless the stream is read to its end, which the lower transport
 * acknowledges at once (TCP: tcp_eof).  So read the lower stream, without
 * waiting, to its end if it is there; bytes after close_notify are
 * dropped (TLS ignores them).  A message transport (DTLS over SCTP) ends
 * its own way: left alone.
 */
static void tls_drain_lower(struct tls_transport *t)
{
	uint8_t buf[512];

	if (t->records)
		return;
	for (int i = 0; i < 16; i++) {
		ssize_t n = t->lower->ops->recv(t->lower, buf, sizeof(buf),
						CN_IO_NONBLOCK);

		if (n <= 0)
			return;
	}
}

static ssize_t tls_recv(struct cn_transport *base, void *buf, size_t len,
			int flags)
{
	struct tls_transport *t = tls_of(base);
	bool pushed;
	ssize_t n;

	for (;;) {
		if (atomic_load(&t->base.aborted))
			return CONNECT_ECLOSED;
		pthread_mutex_lock(&t->lock);
		if (t->dtls)
			n = dtls_record_recv(t, buf, len);
		else
			n = gnutls_record_recv(t->session, buf, len);
		/*
		 * TLS 1.2 renegotiation is refused with a no_renegotiation
		 * warning (flushed just below).  A client asked by its
		 * server goes on with the session as it was; a server, whose
		 * peer already sent a new ClientHello, cannot (GnuTLS: "the
		 * server can only initiate a handshake or terminate the
		 * connection"), so it ends the session and says why.
		 */
		if (n == GNUTLS_E_REHANDSHAKE) {
			(void)gnutls_alert_send(t->session, GNUTLS_AL_WARNING,
						GNUTLS_A_NO_RENEGOTIATION);
			if (t->server) {
				int code = tls_fail(t, CONNECT_ETLS,
						    "the peer tried to "
						    "renegotiate the TLS "
						    "session: refused");

				pthread_mutex_unlock(&t->lock);
				(void)tls_flush(t, true, 0);
				return code;
			}
		}
		if (n < 0 && n != GNUTLS_E_AGAIN &&
		    n != GNUTLS_E_INTERRUPTED &&
		    n != GNUTLS_E_REHANDSHAKE &&
		    n != GNUTLS_E_REAUTH_REQUEST &&
		    n != GNUTLS_E_WARNING_ALERT_RECEIVED)
			n = tls_io_error(t, (int)n, true);
		pushed = t->wbuf.len > 0;
		pthread_mutex_unlock(&t->lock);
		/* Not expected after the handshake, but do not strand it. */
		if (pushed)
			(void)tls_flush(t, true, 0);
		if (n == 0) {
			atomic_store(&t->peer_closed, true);
			tls_drain_lower(t);
		}
		if (n >= 0)
			return n; /* > 0: data; 0: close_notify */
		switch (n) {
		case GNUTLS_E_AGAIN:
			if (flags & CN_IO_NONBLOCK)
				return CONNECT_EAGAIN;
			tls_wait(t, CN_WAIT_READ, -1);
			continue;
		case GNUTLS_E_INTERRUPTED:
		case GNUTLS_E_REHANDSHAKE:
		case GNUTLS_E_REAUTH_REQUEST:
		case GNUTLS_E_WARNING_ALERT_RECEIVED:
			continue;
		default:
			return n;
		}
	}
}

/* Encrypt one record's worth of buf (len <= t->rec_max) and write it;
 * returns the plaintext bytes taken or a code. */
static ssize_t tls_send_record(struct tls_transport *t, const void *buf,
			       size_t len)
{
	ssize_t n;
	int rc;

	pthread_mutex_lock(&t->lock);
	do
		n = gnutls_record_send(t->session, buf, len);
	while ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) &&
	       !atomic_load(&t->base.aborted));
	if (n < 0)
		n = tls_io_error(t, (int)n, false);
	pthread_mutex_unlock(&t->lock);
	rc = tls_flush(t, false, 0);
	if (n >= 0 && rc != CONNECT_OK)
		n = rc;
	return n;
}

/*
 * An application thread's own write (CN_IO_NONBLOCK, stream mode): one
 * piece of at most a record, encrypted and written without waiting.
 * CONNECT_EAGAIN (nothing taken) when another thread writes, when an
 * earlier direct write is unfinished or when the socket takes nothing;
 * otherwise the piece is taken whole, and what of its record the socket
 * did not take waits in wout (out_pending) for the next sendv.
 */
static ssize_t tls_sendv_direct(struct tls_transport *t,
				const struct iovec *iov)
{
	struct tls_buf tmp;
	ssize_t n, w;

	if (iov->iov_len == 0 || iov->iov_len > t->rec_max)
		return CONNECT_EAGAIN;
	if (pthread_mutex_trylock(&t->wlock) != 0)
		return CONNECT_EAGAIN;
	if (t->wout_off < t->wout.len) {
		pthread_mutex_unlock(&t->wlock);
		return CONNECT_EAGAIN;
	}
	pthread_mutex_lock(&t->lock);
	do
		n = gnutls_record_send(t->session, iov->iov_base,
				       iov->iov_len);
	while ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) &&
	       !atomic_load(&t->base.aborted));
	if (n < 0)
		n = tls_io_error(t, (int)n, false);
	/* The record, and anything pushed before it, in order. */
	tmp = t->wout;
	t->wout = t->wbuf;
	t->wbuf = tmp;
	t->wbuf.len = 0;
	pthread_mutex_unlock(&t->lock);
	if (t->wout.len > 0) {
		w = tls_lower_write(t, t->wout.p, t->wout.len,
				    CN_IO_NONBLOCK);
		if (w == CONNECT_EAGAIN)
			w = 0;
		if (w < 0) {
			t->wout.len = 0;
			w = tls_write_failed(t, (int)w);
			if (n >= 0)
				n = w;
		} else if ((size_t)w < t->wout.len) {
			t->wout_off = (size_t)w;
			atomic_store(&t->out_pending, true);
		} else {
			t->wout.len = 0;
		}
	}
	pthread_mutex_unlock(&t->wlock);
	/* Pushed by the reader while we held wlock (it only tries): the
	 * next sendv writes it. */
	pthread_mutex_lock(&t->lock);
	if (t->wbuf.len > 0)
		atomic_store(&t->out_pending, true);
	pthread_mutex_unlock(&t->lock);
	return n;
}

static bool tls_out_pending(struct cn_transport *base)
{
	return atomic_load(&tls_of(base)->out_pending);
}

/* Waits as needed, except for an application thread's own write
 * (CN_IO_NONBLOCK: tls_sendv_direct). */
static ssize_t tls_sendv(struct cn_transport *base, const struct iovec *iov,
			 int iovcnt, int flags)
{
	struct tls_transport *t = tls_of(base);
	size_t fill = 0, n;
	int i;

	if (atomic_load(&t->base.aborted))
		return CONNECT_ECLOSED;
	if (flags & CN_IO_NONBLOCK)
		return iovcnt == 1 ? tls_sendv_direct(t, iov) : CONNECT_EAGAIN;
	if (iovcnt == 0) {
		int rc = atomic_load(&t->out_pending) ? tls_flush(t, false, 0)
						      : CONNECT_OK;

		return rc == CONNECT_OK ? 0 : rc;
	}
	for (i = 0; i < iovcnt && iov[i].iov_len == 0; i++)
		;
	if (i == iovcnt)
		return 0;
	/* A large piece, or a piece alone, is encrypted straight from the
	 * caller's memory. */
	if (iov[i].iov_len >= t->rec_max)
		return tls_send_record(t, iov[i].iov_base, t->rec_max);
	if (i + 1 == iovcnt)
		return tls_send_record(t, iov[i].iov_base, iov[i].iov_len);
	if (!t->sbuf) {
		t->sbuf = cn_malloc(TLS_RECORD);
		if (!t->sbuf) /* one piece at a time, then */
			return tls_send_record(t, iov[i].iov_base,
					       iov[i].iov_len);
	}
	/* Small pieces (datagram headers, short messages) share a record. */
	for (; i < iovcnt && fill < t->rec_max; i++) {
		n = iov[i].iov_len;
		if (n > t->rec_max - fill)
			n = t->rec_max - fill;
		memcpy(t->sbuf + fill, iov[i].iov_base, n);
		fill += n;
	}
	return tls_send_record(t, t->sbuf, fill);
}

/*
 * Plaintext waiting inside GnuTLS counts as readable; otherwise the lower
 * transport says.
 */
static int tls_wait_op(struct cn_transport *base, int events,
		       int64_t deadline)
{
	struct tls_transport *t = tls_of(base);
	size_t pending;

	if (atomic_load(&base->aborted))
		return CONNECT_ECLOSED;
	if (events & CN_WAIT_READ) {
		pthread_mutex_lock(&t->lock);
		pending = gnutls_record_check_pending(t->session) + t->rs_len;
		pthread_mutex_unlock(&t->lock);
		if (pending > 0)
			return CONNECT_OK;
	}
	return t->lower->ops->wait(t->lower, events, deadline);
}

/* Read (and drop: the connection is closing) what the peer sent, up to
 * its close_notify.  True when that came. */
static bool tls_peer_closed_below(struct tls_transport *t)
{
	uint8_t buf[2048];

	for (int i = 0; i < 256; i++) {
		ssize_t n;

		pthread_mutex_lock(&t->lock);
		if (t->dtls)
			n = dtls_record_recv(t, buf, sizeof(buf));
		else
			n = gnutls_record_recv(t->session, buf, sizeof(buf));
		pthread_mutex_unlock(&t->lock);
		if (n == 0) {
			atomic_store(&t->peer_closed, true);
			return true;
		}
		if (n < 0)
			return false;
	}
	return false;
}

static int tls_shutdown(struct cn_transport *base, size_t grace)
{
	struct tls_transport *t = tls_of(base);
	bool peer_closed = atomic_load(&t->peer_closed);
	size_t bye;
	int ret, code;

	if (atomic_load(&t->base.aborted))
		return CONNECT_ECLOSED;
	pthread_mutex_lock(&t->lock);
	/* A session that failed (a bad record, a truncation) must not end
	 * with close_notify, which would call the stream complete. */
	if (t->fatal != 0) {
		ret = t->fatal;
		pthread_mutex_unlock(&t->lock);
		return ret;
	}
	do
		ret = gnutls_bye(t->session, GNUTLS_SHUT_WR);
	while ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
	       !atomic_load(&t->base.aborted));
	if (ret < 0)
		ret = tls_io_error(t, ret, false);
	bye = t->wbuf.len;
	pthread_mutex_unlock(&t->lock);
	/* The lower stream's end follows at once: the close_notify may wait
	 * for it and go in one segment (TCP), which the peer's lower
	 * transport, reading to the end after close_notify, acknowledges at
	 * once (tls_drain_lower). */
	code = tls_flush(t, false, CN_IO_MORE);
	/* Over a message transport without half-close (SCTP) the peer may
	 * have ended the association after its close_notify before ours
	 * could go: is its close_notify waiting, unread, below? */
	if (!peer_closed && t->records &&
	    (tls_is_reset(ret) || tls_is_reset(code)))
		peer_closed = tls_peer_closed_below(t);
	/*
	 * After the peer's own close_notify our close_notify is a courtesy:
	 * a peer that closed its socket at once resets it, and that loses
	 * nothing that mattered.  The lower transport judges whether what
	 * came before was acknowledged.
	 */
	if (peer_closed && (tls_is_reset(ret) || tls_is_reset(code))) {
		ret = 0;
		code = CONNECT_OK;
	}
	if (ret < 0)
		return ret;
	if (code != CONNECT_OK)
		return code;
	/*
	 * Over a stream, the peer's close_notify may be below, unread: the
	 * application closes as soon as the peer's close returned, before our
	 * reader came to it (a libconnect peer's close returns once our host
	 * acknowledged it), and the peer's socket, closed by now, answers our
	 * close_notify with a reset.  Look (without waiting) before the lower
	 * stream ends, so that the courtesy rule holds.
	 */
	if (!peer_closed && !t->records)
		peer_closed = atomic_load(&t->peer_closed) ||
			      tls_peer_closed_below(t);
	/* Then the lower stream ends (TCP: FIN, and the wait until the peer
	 * has everything: closing before could reset it away). */
	code = t->lower->ops->shutdown(t->lower,
				       grace + (peer_closed ? bye : 0));
	/* The peer's close_notify came while we waited, and its reset with
	 * it: judge again with our close_notify a courtesy (the lower stream
	 * is ended already: this only counts what the peer acknowledged). */
	if (tls_is_reset(code) && !peer_closed && !t->records &&
	    tls_peer_closed_below(t))
		code = t->lower->ops->shutdown(t->lower, grace + bye);
	if (code != CONNECT_OK && code != CONNECT_ECLOSED) {
		pthread_mutex_lock(&t->lock);
		code = tls_fail_lower(t, code);
		pthread_mutex_unlock(&t->lock);
	}
	return code;
}

static void tls_abort(struct cn_transport *base)
{
	struct tls_transport *t = tls_of(base);

	/* No lock and no GnuTLS call: both threads may be inside.  The peer
	 * sees the stream end without close_notify (unless shutdown sent
	 * one): a truncation, never a clean end. */
	cn_layer_abort(base, t->lower);
}

static bool tls_unacked(struct cn_transport *base)
{
	return cn_transport_unacked(tls_of(base)->lower);
}

static void tls_buf_free(struct tls_buf *b)
{
	cn_free(b->p);
}

static void tls_free(struct tls_transport *t)
{
	if (t->session != NULL)
		gnutls_deinit(t->session);
	if (t->lower != NULL)
		t->lower->ops->destroy(t->lower);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->wlock);
	tls_buf_free(&t->wbuf);
	tls_buf_free(&t->wout);
	cn_free(t->sbuf);
	cn_free(t->rspill);
	cn_tls_config_unref(t->cfg);
	cn_free(t->server_name);
	cn_free(t);
}

static void tls_destroy(struct cn_transport *base)
{
	tls_free(tls_of(base));
}

static int tls_handshake_op(struct cn_transport *base, int64_t deadline,
			    char *reason, size_t len);
static int tls_peer_identity(struct cn_transport *base, int what, char *buf,
			     size_t len);

static const struct cn_transport_ops tls_ops = {
	.recv = tls_recv,
	.sendv = tls_sendv,
	.wait = tls_wait_op,
	.handshake = tls_handshake_op,
	.shutdown = tls_shutdown,
	.abort = tls_abort,
	.destroy = tls_destroy,
	.unacked = tls_unacked,
	.peer_identity = tls_peer_identity,
	.out_pending = tls_out_pending,
};

/* ---- construction and handshake ---------------------------------------- */

static bool tls_is_ip_literal(const char *name)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, a) == 1 ||
	       inet_pton(AF_INET6, name, a) == 1;
}

/*
 * The verification callback of a server asking for client certificates.
 * gnutls_session_set_verify_cert() cannot be used: it fails a handshake
 * without a client certificate even when the request was optional.
 */
static int tls_verify_client(gnutls_session_t session)
{
	struct tls_transport *t = gnutls_session_get_ptr(session);
	unsigned int n = 0, status = 0;
	int ret;

	if (gnutls_certificate_get_peers(session, &n) == NULL || n == 0)
		return t->client_auth == CONNECT_TLS_AUTH_REQUIRED ?
			       GNUTLS_E_CERTIFICATE_REQUIRED :
			       0;
	/* The certificate must also be meant for a TLS client (extended key
	 * usage), or a server's certificate could log in as a client. */
	t->vdata[0].type = GNUTLS_DT_KEY_PURPOSE_OID;
	t->vdata[0].data = (void *)GNUTLS_KP_TLS_WWW_CLIENT;
	t->vdata[0].size = 0;
	ret = gnutls_certificate_verify_peers(session, t->vdata, 1, &status);
	if (ret < 0)
		return ret;
	t->vstatus = status;
	return status != 0 ? GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR : 0;
}

static int tls_session_setup(struct tls_transport *t, const char *server_name)
{
	unsigned flags = GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
	size_t n;
	int ret;

	/* A client with one certificate sends it even when the server's
	 * list of CAs does not name its issuer: the server then says why it
	 * refuses it, instead of "no certificate". */
	if (t->server)
		flags |= GNUTLS_SERVER;
	else
		flags |= GNUTLS_CLIENT | GNUTLS_FORCE_CLIENT_CERT;
	/* DTLS never blocks inside GnuTLS: its blocking handshake sleeps
	 * between reads (hundreds of ms); our loop waits on the transport. */
	if (t->dtls)
		flags |= GNUTLS_DATAGRAM | GNUTLS_NONBLOCK;
	/* RFC 6083 (3.3): no DTLS replay detection over SCTP (the stream
	 * is reliable and ordered; a record that fails its check still
	 * fails the session, see dtls_record_recv). */
	if (t->dtls)
		flags |= GNUTLS_NO_REPLAY_PROTECTION;
	ret = gnutls_init(&t->session, flags);
	if (ret < 0) {
		t->session = NULL;
		return ret;
	}
	gnutls_session_set_ptr(t->session, t);
	ret = cn_tls_config_apply(t->cfg, t->session, t->dtls, &t->timeout_ms,
				  &t->client_auth);
	if (ret < 0)
		return ret;
	if (t->dtls) {
		/* The transport below is reliable and ordered (SCTP): flights
		 * are never lost, so no retransmission within the
		 * handshake's time. */
		gnutls_dtls_set_mtu(t->session, DTLS_MTU);
		gnutls_dtls_set_timeouts(t->session, (unsigned)t->timeout_ms,
					 (unsigned)t->timeout_ms);
	}
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_vec_push_function(t->session, tls_push);
	gnutls_transport_set_pull_function(t->session, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->session,
						   tls_pull_timeout);

	if (t->server) {
		if (t->client_auth != CONNECT_TLS_AUTH_NONE)
			gnutls_session_set_verify_function(t->session,
							   tls_verify_client);
		return 0;
	}
	/* The certificate must be meant for a TLS server (extended key
	 * usage), whatever else is checked. */
	t->vdata[0].type = GNUTLS_DT_KEY_PURPOSE_OID;
	t->vdata[0].data = (void *)GNUTLS_KP_TLS_WWW_SERVER;
	t->vdata[0].size = 0;
	if (server_name == NULL) {
		/* Chain only: every caller in the library names the peer. */
		gnutls_session_set_verify_cert2(t->session, t->vdata, 1, 0);
		return 0;
	}
	/* "[::1]" names the address ::1. */
	n = strlen(server_name);
	if (n >= 2 && server_name[0] == '[' && server_name[n - 1] == ']')
		t->server_name = cn_strndup(server_name + 1, n - 2);
	else
		t->server_name = cn_strdup(server_name);
	if (t->server_name == NULL)
		return GNUTLS_E_MEMORY_ERROR;
	/* SNI carries DNS names only (RFC 6066), never address literals. */
	if (!tls_is_ip_literal(t->server_name)) {
		ret = gnutls_server_name_set(t->session, GNUTLS_NAME_DNS,
					     t->server_name,
					     strlen(t->server_name));
		if (ret < 0)
			return ret;
	}
	/* Fails closed: the handshake fails unless chain, name and key
	 * usage verify. */
	t->vdata[1].type = GNUTLS_DT_DNS_HOSTNAME;
	t->vdata[1].data = (void *)t->server_name;
	t->vdata[1].size = 0;
	gnutls_session_set_verify_cert2(t->session, t->vdata, 2, 0);
	return 0;
}

/*
 * Before giving up after a failed handshake, read what the peer already
 * sent (bounded): closing with unread input makes the kernel answer with a
 * reset, and the peer would see "connection reset" before our alert.
 */
static void tls_drain(struct tls_transport *t)
{
	char buf[4096];
	int i;

	for (i = 0; i < 16; i++)
		if (t->lower->ops->recv(t->lower, buf, sizeof(buf),
					CN_IO_NONBLOCK) <= 0)
			break;
}

/*
 * A DTLS handshake done: the plaintext a record carries, and RFC 6083's
 * SCTP-AUTH keyed from the exporter for the transport below (one that
 * cannot, a test layer over TCP, goes without).  0, or 1 with *code and
 * the reason set.
 */
static int dtls_established(struct tls_transport *t, char *reason,
			    size_t len, int *code)
{
	static const char label[] = DTLS_SCTP_LABEL;
	uint8_t key[DTLS_SCTP_KEY_LEN];
	char why[CN_REASON_LEN];
	unsigned mtu = gnutls_dtls_get_data_mtu(t->session);
	int ret;

	t->rec_max = mtu > 0 && mtu < TLS_RECORD ? mtu : TLS_RECORD;
	t->discarded0 = gnutls_record_get_discarded(t->session);
	if (t->lower->ops->auth_key == NULL)
		return 0;
	ret = gnutls_prf_rfc5705(t->session, sizeof(label) - 1, label, 0,
				 NULL, sizeof(key), (char *)key);
	if (ret < 0) {
		snprintf(reason, len, "DTLS exporter for SCTP-AUTH: %s",
			 gnutls_strerror(ret));
		*code = CONNECT_ETLS;
		return 1;
	}
	*code = t->lower->ops->auth_key(t->lower, key, sizeof(key));
	memset(key, 0, sizeof(key));
	if (*code == CONNECT_OK || *code == CONNECT_ENOTSUP)
		return 0;
	cn_transport_reason(t->lower, why, sizeof(why));
	snprintf(reason, len, "%s", why[0] ? why : connect_strerror(*code));
	return 1;
}

/* Runs before the reader and writer exist: no locking yet. */
static int tls_handshake_op(struct cn_transport *base, int64_t deadline,
			    char *reason, size_t len)
{
	struct tls_transport *t = tls_of(base);
	int64_t own = cn_now_ms() + t->timeout_ms;
	int ret, code, alert;

	if (t->lower->ops->handshake) {
		code = t->lower->ops->handshake(t->lower, deadline, reason,
						len);
		if (code)
			return code;
	}
	if (deadline < 0 || own < deadline)
		deadline = own;
	/* GnuTLS waits for each message through tls_pull_timeout(), bounded
	 * by this deadline, then fails with GNUTLS_E_TIMEDOUT. */
	gnutls_handshake_set_timeout(t->session, (unsigned)t->timeout_ms);
	t->hs_deadline = deadline;
	for (;;) {
		ret = gnutls_handshake(t->session);
		if (ret == 0 || ret == GNUTLS_E_TIMEDOUT ||
		    gnutls_error_is_fatal(ret))
			break;
		if (atomic_load(&base->aborted))
			break;
		/* AGAIN (the lower transport would wait), INTERRUPTED,
		 * warning alerts: go on within the deadline. */
		if (cn_remaining(deadline) == 0) {
			ret = GNUTLS_E_TIMEDOUT;
			break;
		}
		if (ret == GNUTLS_E_AGAIN) {
			int64_t until = deadline;

			/* DTLS: also when GnuTLS wants to retransmit. */
			if (t->dtls) {
				int64_t r = cn_now_ms() +
					    gnutls_dtls_get_timeout(t->session);

				if (r < until)
					until = r;
			}
			/* A DTLS handshake waiting for the peer's flight
			 * reports the direction of its last flush: the
			 * transport's room matters only if a push found
			 * none. */
			tls_wait(t,
				 gnutls_record_get_direction(t->session) &&
						 (!t->dtls || t->push_blocked) ?
					 CN_WAIT_WRITE :
					 CN_WAIT_READ,
				 until);
		}
	}
	if (ret == 0 && t->dtls)
		ret = dtls_established(t, reason, len, &code);
	if (ret == 0) {
		t->buffered = true;
		return CONNECT_OK;
	}
	if (ret == 1) {
		/* The handshake worked; what comes after it did not. */
		tls_drain(t);
		return code;
	}
	if (atomic_load(&base->aborted)) {
		snprintf(reason, len, "TLS handshake cut short");
		return CONNECT_ECLOSED;
	}
	code = tls_handshake_error(t, ret, reason, len, &alert);
	/* Tell the peer why (best effort: never waits). */
	if (alert >= 0)
		(void)gnutls_alert_send(t->session, GNUTLS_AL_FATAL,
					(gnutls_alert_description_t)alert);
	tls_drain(t);
	return code;
}

static int tls_check(const struct cn_endpoint *ep, bool server, char *reason,
		     size_t len)
{
	int want = server ? CONNECT_TLS_SERVER : CONNECT_TLS_CLIENT;

	if (ep->tls == NULL) {
		snprintf(reason, len, "TLS needs a TLS configuration");
		return CONNECT_ETLSCONFIG;
	}
	if (cn_tls_config_role(ep->tls) != want) {
		snprintf(reason, len, "not a %s TLS configuration",
			 server ? "server" : "client");
		return CONNECT_ETLSCONFIG;
	}
	return cn_tls_config_check(ep->tls, reason, len);
}

static int tls_wrap_as(const struct cn_endpoint *ep,
		       struct cn_transport *lower, bool dtls,
		       struct cn_transport **tp, char *reason, size_t len);

static int tls_wrap(const struct cn_endpoint *ep, struct cn_transport *lower,
		    struct cn_transport **tp, char *reason, size_t len)
{
	return tls_wrap_as(ep, lower, false, tp, reason, len);
}

/* DTLS: over a message transport only (records keep their boundaries). */
static int dtls_wrap(const struct cn_endpoint *ep, struct cn_transport *lower,
		     struct cn_transport **tp, char *reason, size_t len)
{
	if (!(lower->flags & CN_TRANSPORT_MESSAGES)) {
		lower->ops->destroy(lower);
		snprintf(reason, len,
			 "DTLS runs over a message transport only "
			 "(dtls+sctp://)");
		return CONNECT_ENOTSUP;
	}
	return tls_wrap_as(ep, lower, true, tp, reason, len);
}

static int tls_wrap_as(const struct cn_endpoint *ep,
		       struct cn_transport *lower, bool dtls,
		       struct cn_transport **tp, char *reason, size_t len)
{
	const char *name = ep->server_name;
	char host[1025], port[32];
	struct tls_transport *t;
	int ret;

	if (!ep->server && name == NULL) {
		/* The name verified is the host part of the address. */
		ret = cn_addr_split(ep->addr, host, sizeof(host), port,
				    sizeof(port));
		if (ret != CONNECT_OK) {
			lower->ops->destroy(lower);
			return ret;
		}
		name = host;
	}
	t = cn_calloc(1, sizeof(*t));
	if (t == NULL) {
		lower->ops->destroy(lower);
		snprintf(reason, len, "out of memory");
		return CONNECT_ENOMEM;
	}
	t->base.ops = &tls_ops;
	memcpy(t->base.local, lower->local, sizeof(t->base.local));
	memcpy(t->base.peer, lower->peer, sizeof(t->base.peer));
	t->lower = lower;
	t->records = (lower->flags & CN_TRANSPORT_MESSAGES) != 0;
	/* Not CN_TRANSPORT_DIRECT yet: with direct writes over TLS, a reply
	 * was sometimes never delivered (check_inbox tls_connection_limit,
	 * 1 run in 4, 0 in 8 without them).  tls_sendv_direct stays for
	 * that bug to be found; the connection never asks for it until the
	 * flag is set here again. */
	t->dtls = dtls;
	t->rec_max = TLS_RECORD;
	t->server = ep->server;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->wlock, NULL);
	t->hs_deadline = -1;
	cn_tls_config_ref(ep->tls);
	t->cfg = ep->tls;
	ret = tls_session_setup(t, t->server ? NULL : name);
	if (ret < 0) {
		snprintf(reason, len, "TLS session setup failed: %s",
			 gnutls_strerror(ret));
		tls_free(t);
		return ret == GNUTLS_E_MEMORY_ERROR ? CONNECT_ENOMEM :
						      CONNECT_ETLS;
	}
	*tp = &t->base;
	return CONNECT_OK;
}

const struct cn_transport_class cn_tls_class = {
	.name = "tls",
	.layer = true,
	.check = tls_check,
	.wrap = tls_wrap,
};

/* DTLS 1.2 over SCTP (RFC 6083), with the same configuration as TLS. */
const struct cn_transport_class cn_dtls_class = {
	.name = "dtls",
	.layer = true,
	.flags = CN_CLASS_AUTH_BELOW,
	.check = tls_check,
	.wrap = dtls_wrap,
};

/* ---- the peer's identity ------------------------------------------------ */

/* "DNS:a,IP:1.2.3.4,URI:...,email:..." */
static int tls_sans(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 0;; i++) {
		char san[1024], text[1100];
		size_t n = sizeof(san) - 1;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &n,
								&critical);
		const char *kind;

		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type < 0)
			continue;
		san[n] = '\0';
		switch (type) {
		case GNUTLS_SAN_DNSNAME:
			kind = "DNS";
			break;
		case GNUTLS_SAN_URI:
			kind = "URI";
			break;
		case GNUTLS_SAN_RFC822NAME:
			kind = "email";
			break;
		case GNUTLS_SAN_IPADDRESS: {
			char ip[INET6_ADDRSTRLEN];

			if (inet_ntop(n == 4 ? AF_INET : AF_INET6, san, ip,
				      sizeof(ip)) == NULL)
				continue;
			snprintf(san, sizeof(san), "%s", ip);
			kind = "IP";
			break;
		}
		default:
			continue;
		}
		n = (size_t)snprintf(text, sizeof(text), "%s%s:%s",
				     used ? "," : "", kind, san);
		if (used + n >= len)
			return CONNECT_EINVAL;
		memcpy(buf + used, text, n + 1);
		used += n;
	}
	return CONNECT_OK;
}

static int tls_peer_identity(struct cn_transport *base, int what, char *buf,
			     size_t len)
{
	struct tls_transport *t = tls_of(base);
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { NULL, 0 };
	unsigned char md[32];
	size_t mdlen = sizeof(md);
	unsigned n = 0;
	int rc = CONNECT_OK, ret;

	if (what < CONNECT_PEER_SUBJECT || what > CONNECT_PEER_FINGERPRINT)
		return CONNECT_EINVAL;
	if (gnutls_x509_crt_init(&crt) < 0)
		return CONNECT_ENOMEM;
	pthread_mutex_lock(&t->lock);
	certs = t->buffered ? gnutls_certificate_get_peers(t->session, &n)
			    : NULL;
	ret = certs != NULL && n > 0 ?
		      gnutls_x509_crt_import(crt, &certs[0],
					     GNUTLS_X509_FMT_DER) :
		      GNUTLS_E_NO_CERTIFICATE_FOUND;
	pthread_mutex_unlock(&t->lock);
	if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND) {
		rc = CONNECT_ETLSNOCERT;
	} else if (ret < 0) {
		rc = CONNECT_ETLS;
	} else if (what == CONNECT_PEER_SANS) {
		rc = tls_sans(crt, buf, len);
	} else if (what == CONNECT_PEER_FINGERPRINT) {
		if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, md,
						    &mdlen) < 0) {
			rc = CONNECT_ETLS;
		} else if (len < 2 * mdlen + 1) {
			rc = CONNECT_EINVAL;
		} else {
			for (size_t i = 0; i < mdlen; i++)
				snprintf(buf + 2 * i, 3, "%02x", md[i]);
		}
	} else {
		ret = what == CONNECT_PEER_SUBJECT ?
			      gnutls_x509_crt_get_dn3(crt, &dn, 0) :
			      gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0);
		if (ret < 0)
			rc = CONNECT_ETLS;
		else if (dn.size >= len)
			rc = CONNECT_EINVAL;
		else
			snprintf(buf, len, "%.*s", (int)dn.size, dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
	return rc;
}
