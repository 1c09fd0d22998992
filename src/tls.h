/*
 * TLS configurations as the TLS layer sees them, private to the library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef CONNECT_TLS_H
#define CONNECT_TLS_H

#include "connect_int.h"

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
 * Give a new session the configuration's credentials, priorities (dtls:
 * the DTLS twin of the priority string, with DTLS 1.2 enabled) and
 * client-authentication request; report its handshake timeout and client
 * authentication mode.  Returns 0 or a GnuTLS error.  (The session type is
 * spelled as GnuTLS defines gnutls_session_t, so that this header needs no
 * GnuTLS include.)
 */
struct gnutls_session_int;
int cn_tls_config_apply(const connect_tls_config *cfg,
			struct gnutls_session_int *session, bool dtls,
			int *timeout_ms, int *client_auth);

#endif /* CONNECT_TLS_H */
