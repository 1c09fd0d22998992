/*
 * The TLS transport (GnuTLS), private to the library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_TLS_H
#define CONNECT_TLS_H

#include "connect_int.h"
#include "transport.h"

/* Take or drop a reference on a configuration. */
void cn_tls_config_ref(connect_tls_config *cfg);
void cn_tls_config_unref(connect_tls_config *cfg);
/* CONNECT_TLS_CLIENT or CONNECT_TLS_SERVER. */
int cn_tls_config_role(const connect_tls_config *cfg);
/* CONNECT_OK when the configuration can be used for its role (a server has
 * a certificate; a client trusts some CA), else CONNECT_ETLSCONFIG with a
 * reason. */
int cn_tls_config_check(const connect_tls_config *cfg, char *reason,
			size_t len);

/*
 * Give a new session the configuration's credentials, priorities and
 * client-authentication request; report its handshake timeout and client
 * authentication mode.  Returns 0 or a GnuTLS error.  (The session type is
 * spelled as GnuTLS defines gnutls_session_t, so that this header needs no
 * GnuTLS include.)
 */
struct gnutls_session_int;
int cn_tls_config_apply(const connect_tls_config *cfg,
			struct gnutls_session_int *session, int *timeout_ms,
			int *client_auth);

/*
 * Run a TLS handshake on the connected blocking socket `fd` (taken over,
 * also on failure: closed then) within the configuration's handshake
 * timeout, and build the TLS transport.  Client: server_name is the name
 * verified (DNS name: also sent as SNI; IP literal: matched against IP
 * SANs, no SNI).  Server: server_name is NULL.  On failure returns the
 * specific CONNECT_ETLS* (or socket) code and writes a reason.
 */
int cn_tls_transport_new(struct cn_transport **tp, int fd,
			 connect_tls_config *cfg, const char *server_name,
			 const struct connect_opts *opts, char *reason,
			 size_t reasonlen);

#endif /* CONNECT_TLS_H */
