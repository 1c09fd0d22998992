/*
 * TLS configurations: credentials, trust, priorities and timeouts shared by
 * TLS connections and listeners.
 *
 * Copyright (C) 2026 The libconnect developers
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A configuration is reference counted: each connection or listener using it
 * holds a reference, so the user may free it while they live.  Setters are
 * not synchronized (connect.h: set up first, then share read-only); GnuTLS
 * credentials and priority caches may be used by many sessions at once.
 */
#include "connect_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"
#include "alloc.h"

#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* DTLS sessions (DTLS over SCTP) take the same string with DTLS 1.2, the
 * only DTLS of GnuTLS 3.7, enabled. */
#define TLS_DTLS_VERSION ":+VERS-DTLS1.2"
#define TLS_DEFAULT_TIMEOUT_MS 10000
/* GnuTLS log level used when the user logs at CONNECT_LOG_DEBUG: 4 shows
 * the handshake messages, higher levels dump every record. */
#define TLS_GNUTLS_LOG_LEVEL 4

struct connect_tls_config {
	int role;
	atomic_int refs;
	gnutls_certificate_credentials_t cred;
	bool has_cert;
	bool has_ca;
	int client_auth;
	gnutls_priority_t prio;
	gnutls_priority_t prio_dtls; /* NULL: the string leaves DTLS out */
	int handshake_timeout_ms;
};

/* The DTLS twin of a priority string (NULL when it cannot be made). */
static gnutls_priority_t tls_dtls_priority(const char *priority)
{
	gnutls_priority_t prio;
	size_t n = strlen(priority);
	char *str = cn_malloc(n + sizeof(TLS_DTLS_VERSION));

	if (str == NULL)
		return NULL;
	memcpy(str, priority, n);
	memcpy(str + n, TLS_DTLS_VERSION, sizeof(TLS_DTLS_VERSION));
	if (gnutls_priority_init(&prio, str, NULL) < 0)
		prio = NULL;
	cn_free(str);
	return prio;
}

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_init_err;
static atomic_bool tls_log_installed;

static void tls_global_init(void)
{
	/*
	 * gnutls_global_init() is reference counted and thread-safe since
	 * 3.3; calling it once and never deinitializing keeps the library
	 * usable for the life of the process whatever else uses GnuTLS.
	 */
	tls_init_err = gnutls_global_init();
}

static void tls_gnutls_log(int level, const char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	cn_log(CONNECT_LOG_DEBUG, "CONNECT-GNUTLS", "gnutls[%d]: %.*s", level,
	       (int)n, msg);
}

/*
 * GnuTLS logging is process-global: take it over only when the user asked
 * libconnect for debug messages, so an application that uses GnuTLS itself
 * keeps its own log function otherwise.
 */
static void tls_log_setup(void)
{
	if (!cn_log_enabled(CONNECT_LOG_DEBUG))
		return;
	if (atomic_exchange(&tls_log_installed, true))
		return;
	gnutls_global_set_log_function(tls_gnutls_log);
	gnutls_global_set_log_level(TLS_GNUTLS_LOG_LEVEL);
}

/*
 * Check that a priority cache can really drive a session: some strings
 * parse but enable no protocol or no cipher suite, which GnuTLS only
 * reports when a session uses them.
 */
static int tls_priority_usable(gnutls_priority_t prio, int role)
{
	gnutls_session_t s;
	int ret;

	ret = gnutls_init(&s, role == CONNECT_TLS_SERVER ? GNUTLS_SERVER :
							    GNUTLS_CLIENT);
	if (ret < 0)
		return ret;
	ret = gnutls_priority_set(s, prio);
	gnutls_deinit(s);
	return ret;
}

int connect_tls_config_new(connect_tls_config **cfgp, int role)
{
	connect_tls_config *cfg;
	int ret;

	if (cfgp == NULL ||
	    (role != CONNECT_TLS_CLIENT && role != CONNECT_TLS_SERVER))
		return CONNECT_EINVAL;
	if (pthread_once(&tls_once, tls_global_init) != 0 || tls_init_err < 0)
		return CONNECT_ETLS;
	tls_log_setup();

	cfg = cn_calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return CONNECT_ENOMEM;
	cfg->role = role;
	atomic_init(&cfg->refs, 1);
	cfg->client_auth = CONNECT_TLS_AUTH_NONE;
	cfg->handshake_timeout_ms = TLS_DEFAULT_TIMEOUT_MS;

	ret = gnutls_certificate_allocate_credentials(&cfg->cred);
	if (ret < 0) {
		cn_free(cfg);
		return ret == GNUTLS_E_MEMORY_ERROR ? CONNECT_ENOMEM :
						      CONNECT_ETLS;
	}
	ret = gnutls_priority_init(&cfg->prio, TLS_DEFAULT_PRIORITY, NULL);
	if (ret < 0) {
		gnutls_certificate_free_credentials(cfg->cred);
		cn_free(cfg);
		return ret == GNUTLS_E_MEMORY_ERROR ? CONNECT_ENOMEM :
						      CONNECT_ETLS;
	}
	cfg->prio_dtls = tls_dtls_priority(TLS_DEFAULT_PRIORITY);
	*cfgp = cfg;
	return CONNECT_OK;
}

void cn_tls_config_ref(connect_tls_config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

void cn_tls_config_unref(connect_tls_config *cfg)
{
	if (cfg == NULL)
		return;
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
		return;
	gnutls_priority_deinit(cfg->prio);
	if (cfg->prio_dtls != NULL)
		gnutls_priority_deinit(cfg->prio_dtls);
	gnutls_certificate_free_credentials(cfg->cred);
	cn_free(cfg);
}

void connect_tls_config_free(connect_tls_config *cfg)
{
	cn_tls_config_unref(cfg);
}

int cn_tls_config_role(const connect_tls_config *cfg)
{
	return cfg->role;
}

int cn_tls_config_check(const connect_tls_config *cfg, char *reason,
			size_t len)
{
	const char *why = NULL;

	if (cfg->role == CONNECT_TLS_SERVER) {
		if (!cfg->has_cert)
			why = "server TLS configuration has no certificate "
			      "(connect_tls_config_cert_file)";
		else if (cfg->client_auth != CONNECT_TLS_AUTH_NONE &&
			 !cfg->has_ca)
			why = "client authentication needs a trusted CA "
			      "(connect_tls_config_ca_file)";
	} else if (!cfg->has_ca) {
		why = "client TLS configuration trusts no CA "
		      "(connect_tls_config_ca_file or _ca_system)";
	}
	if (why == NULL)
		return CONNECT_OK;
	if (reason != NULL && len > 0)
		snprintf(reason, len, "%s", why);
	return CONNECT_ETLSCONFIG;
}

int cn_tls_config_apply(const connect_tls_config *cfg,
			gnutls_session_t session, bool dtls, int *timeout_ms,
			int *client_auth)
{
	int ret;

	if (dtls && cfg->prio_dtls == NULL)
		return GNUTLS_E_NO_PRIORITIES_WERE_SET;
	ret = gnutls_priority_set(session, dtls ? cfg->prio_dtls : cfg->prio);
	if (ret < 0)
		return ret;
	ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
				     cfg->cred);
	if (ret < 0)
		return ret;
	if (cfg->role == CONNECT_TLS_SERVER) {
		switch (cfg->client_auth) {
		case CONNECT_TLS_AUTH_OPTIONAL:
			gnutls_certificate_server_set_request(
				session, GNUTLS_CERT_REQUEST);
			break;
		case CONNECT_TLS_AUTH_REQUIRED:
			gnutls_certificate_server_set_request(
				session, GNUTLS_CERT_REQUIRE);
			break;
		default:
			gnutls_certificate_server_set_request(
				session, GNUTLS_CERT_IGNORE);
			break;
		}
	}
	*timeout_ms = cfg->handshake_timeout_ms;
	*client_auth = cfg->client_auth;
	return 0;
}

/* Loading errors have no reason slot: tell a listening user at least. */
static int tls_load_failed(const char *what, const char *name, int gerr)
{
	cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-CONFIG", "cannot load %s%s%s: %s",
	       what, name != NULL ? " " : "", name != NULL ? name : "",
	       gerr < 0 ? gnutls_strerror(gerr) : "no certificate found");
	return gerr == GNUTLS_E_MEMORY_ERROR ? CONNECT_ENOMEM :
					       CONNECT_ETLSCONFIG;
}

static bool tls_datum(gnutls_datum_t *d, const void *p, size_t len)
{
	if (p == NULL || len == 0 || len > UINT_MAX)
		return false;
	d->data = (unsigned char *)(uintptr_t)p;
	d->size = (unsigned)len;
	return true;
}

/*
 * Add a certificate chain and its key, or nothing.  GnuTLS 3.7 keeps a
 * pair whose key does not match the certificate in the credentials even
 * as it reports the mismatch (the server would then sign with the wrong
 * key), and it leaks when the PEM does not parse.  So the chain is parsed
 * first and the pair tried on scratch credentials before the real ones.
 */
static int tls_set_cert(connect_tls_config *cfg, const gnutls_datum_t *cert,
			const gnutls_datum_t *key)
{
	gnutls_certificate_credentials_t scratch;
	gnutls_x509_crt_t *list = NULL;
	unsigned int n = 0, i;
	int ret;

	ret = gnutls_x509_crt_list_import2(&list, &n, cert,
					   GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);

	ret = gnutls_certificate_allocate_credentials(&scratch);
	if (ret < 0)
		return ret;
	ret = gnutls_certificate_set_x509_key_mem2(scratch, cert, key,
						   GNUTLS_X509_FMT_PEM, NULL,
						   0);
	gnutls_certificate_free_credentials(scratch);
	if (ret < 0)
		return ret;
	return gnutls_certificate_set_x509_key_mem2(cfg->cred, cert, key,
						    GNUTLS_X509_FMT_PEM, NULL,
						    0);
}

int connect_tls_config_cert_file(connect_tls_config *cfg,
				 const char *cert_path, const char *key_path)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	int ret;

	if (cfg == NULL || cert_path == NULL || key_path == NULL)
		return CONNECT_EINVAL;
	ret = gnutls_load_file(cert_path, &cert);
	if (ret >= 0)
		ret = gnutls_load_file(key_path, &key);
	if (ret >= 0)
		ret = tls_set_cert(cfg, &cert, &key);
	if (key.data != NULL) {
		/* A private key: wipe it before freeing. */
		gnutls_memset(key.data, 0, key.size);
		gnutls_free(key.data);
	}
	gnutls_free(cert.data);
	if (ret < 0) {
		cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-CONFIG",
		       "cannot load certificate %s with key %s: %s", cert_path,
		       key_path, gnutls_strerror(ret));
		return ret == GNUTLS_E_MEMORY_ERROR ? CONNECT_ENOMEM :
						      CONNECT_ETLSCONFIG;
	}
	cfg->has_cert = true;
	return CONNECT_OK;
}

int connect_tls_config_cert_mem(connect_tls_config *cfg, const void *cert_pem,
				size_t cert_len, const void *key_pem,
				size_t key_len)
{
	gnutls_datum_t cert, key;
	int ret;

	if (cfg == NULL || !tls_datum(&cert, cert_pem, cert_len) ||
	    !tls_datum(&key, key_pem, key_len))
		return CONNECT_EINVAL;
	ret = tls_set_cert(cfg, &cert, &key);
	if (ret < 0)
		return tls_load_failed("certificate and key", "from memory",
				       ret);
	cfg->has_cert = true;
	return CONNECT_OK;
}

int connect_tls_config_ca_file(connect_tls_config *cfg, const char *path)
{
	int ret;

	if (cfg == NULL || path == NULL)
		return CONNECT_EINVAL;
	/* Returns the number of certificates added. */
	ret = gnutls_certificate_set_x509_trust_file(cfg->cred, path,
						     GNUTLS_X509_FMT_PEM);
	if (ret <= 0)
		return tls_load_failed("trusted CAs", path, ret);
	cfg->has_ca = true;
	return CONNECT_OK;
}

int connect_tls_config_ca_mem(connect_tls_config *cfg, const void *pem,
			      size_t len)
{
	gnutls_datum_t d;
	int ret;

	if (cfg == NULL || !tls_datum(&d, pem, len))
		return CONNECT_EINVAL;
	ret = gnutls_certificate_set_x509_trust_mem(cfg->cred, &d,
						    GNUTLS_X509_FMT_PEM);
	if (ret <= 0)
		return tls_load_failed("trusted CAs", "from memory", ret);
	cfg->has_ca = true;
	return CONNECT_OK;
}

int connect_tls_config_ca_system(connect_tls_config *cfg)
{
	int ret;

	if (cfg == NULL)
		return CONNECT_EINVAL;
	ret = gnutls_certificate_set_x509_system_trust(cfg->cred);
	if (ret <= 0)
		return tls_load_failed("the system trust store", NULL, ret);
	cfg->has_ca = true;
	return CONNECT_OK;
}

int connect_tls_config_client_auth(connect_tls_config *cfg, int mode)
{
	if (cfg == NULL || cfg->role != CONNECT_TLS_SERVER)
		return CONNECT_EINVAL;
	if (mode != CONNECT_TLS_AUTH_NONE &&
	    mode != CONNECT_TLS_AUTH_OPTIONAL &&
	    mode != CONNECT_TLS_AUTH_REQUIRED)
		return CONNECT_EINVAL;
	cfg->client_auth = mode;
	return CONNECT_OK;
}

int connect_tls_config_priority(connect_tls_config *cfg, const char *priority)
{
	gnutls_priority_t prio;
	const char *where = NULL;
	int ret;

	if (cfg == NULL || priority == NULL)
		return CONNECT_EINVAL;
	ret = gnutls_priority_init(&prio, priority, &where);
	if (ret < 0) {
		if (ret == GNUTLS_E_MEMORY_ERROR)
			return CONNECT_ENOMEM;
		cn_log(CONNECT_LOG_WARN, "CONNECT-TLS-CONFIG",
		       "bad priority string \"%s\" at \"%s\": %s", priority,
		       where != NULL ? where : "", gnutls_strerror(ret));
		return CONNECT_ETLSCONFIG;
	}
	ret = tls_priority_usable(prio, cfg->role);
	if (ret < 0) {
		gnutls_priority_deinit(prio);
		return tls_load_failed("priority string", priority, ret);
	}
	/* Sessions hold their own reference on the old cache. */
	gnutls_priority_deinit(cfg->prio);
	cfg->prio = prio;
	if (cfg->prio_dtls != NULL)
		gnutls_priority_deinit(cfg->prio_dtls);
	cfg->prio_dtls = tls_dtls_priority(priority);
	return CONNECT_OK;
}

int connect_tls_config_handshake_timeout(connect_tls_config *cfg,
					 int timeout_ms)
{
	if (cfg == NULL || timeout_ms < 1)
		return CONNECT_EINVAL;
	cfg->handshake_timeout_ms = timeout_ms;
	return CONNECT_OK;
}
