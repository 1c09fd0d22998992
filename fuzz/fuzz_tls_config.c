/*
 * libFuzzer target: the TLS configuration loaders,
 * connect_tls_config_cert_mem() and connect_tls_config_ca_mem().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Input: one flags byte, then the certificate chain, the private key and the
 * trusted CAs, separated by FUZZ_TLS_SEP ("\n%%\n"; a missing part is
 * empty).  The seeds (fuzz/mkseeds.c) are the PEM files of tests/certs in
 * matching and mismatching combinations.
 *
 * Flags: bit 0 server role (else client); bit 1 load the CAs before the
 * certificate; bit 2 load the certificate twice; bit 3 load the CAs twice;
 * bit 4 (server) require client certificates.
 *
 * Checked: no crash, no leak (LeakSanitizer after every input), only the
 * codes connect.h documents (CONNECT_EINVAL exactly for an empty part), and
 * the configuration then agrees with what the loaders returned: it is usable
 * for its role exactly when the needed loads succeeded, and a usable one
 * can be given to a GnuTLS session.
 */
#include "connect_int.h"
#include "tls.h"

#include <string.h>

#include <gnutls/gnutls.h>

#include "fuzz_common.h"

enum {
	F_SERVER = 1 << 0,
	F_CA_FIRST = 1 << 1,
	F_CERT_TWICE = 1 << 2,
	F_CA_TWICE = 1 << 3,
	F_REQUIRE = 1 << 4,
};

struct part {
	const uint8_t *p;
	size_t n;
};

/* Cut [p, p+n) at the first separator: *head before it, the rest after. */
static struct part cut(struct part *rest)
{
	static const char sep[] = FUZZ_TLS_SEP;
	const size_t k = sizeof(sep) - 1;
	struct part head = *rest;

	for (size_t i = 0; i + k <= rest->n; i++) {
		if (memcmp(rest->p + i, sep, k) == 0) {
			head.n = i;
			rest->p += i + k;
			rest->n -= i + k;
			return head;
		}
	}
	rest->p += rest->n;
	rest->n = 0;
	return head;
}

/*
 * The loaders take (pointer, length) and must not read past the length:
 * give them a copy in a heap block of exactly that size, so that
 * AddressSanitizer sees any read beyond it (the fuzzer's own buffer may
 * have a terminating separator or NUL right after the part).  Length 0
 * passes a valid pointer, not NULL.
 */
static uint8_t *dup_part(struct part x)
{
	uint8_t *p = malloc(x.n ? x.n : 1);

	FUZZ_CHECK(p != NULL, "out of memory");
	if (x.n)
		memcpy(p, x.p, x.n);
	return p;
}

static bool load_cert(connect_tls_config *cfg, const uint8_t *cert,
		      size_t cert_n, const uint8_t *key, size_t key_n)
{
	int rc = connect_tls_config_cert_mem(cfg, cert, cert_n, key, key_n);

	if (cert_n == 0 || key_n == 0) {
		FUZZ_CHECK(rc == CONNECT_EINVAL,
			   "cert_mem with an empty part returned %s",
			   connect_err_name(rc));
		return false;
	}
	FUZZ_CHECK(rc == CONNECT_OK || rc == CONNECT_ETLSCONFIG,
		   "connect_tls_config_cert_mem returned %s (%d), which "
		   "connect.h does not list", connect_err_name(rc), rc);
	return rc == CONNECT_OK;
}

static bool load_ca(connect_tls_config *cfg, const uint8_t *ca, size_t ca_n)
{
	int rc = connect_tls_config_ca_mem(cfg, ca, ca_n);

	if (ca_n == 0) {
		FUZZ_CHECK(rc == CONNECT_EINVAL,
			   "ca_mem with an empty part returned %s",
			   connect_err_name(rc));
		return false;
	}
	FUZZ_CHECK(rc == CONNECT_OK || rc == CONNECT_ETLSCONFIG,
		   "connect_tls_config_ca_mem returned %s (%d), which "
		   "connect.h does not list", connect_err_name(rc), rc);
	return rc == CONNECT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct part rest, cert_p, key_p, ca_p;
	connect_tls_config *cfg = NULL;
	uint8_t *cert, *key, *ca;
	bool have_cert = false, have_ca = false, usable;
	unsigned flags;
	char reason[CN_REASON_LEN] = "";
	int rc;

	if (size == 0)
		return 0;
	flags = data[0];
	rest.p = data + 1;
	rest.n = size - 1;
	cert_p = cut(&rest);
	key_p = cut(&rest);
	ca_p = rest;
	cert = dup_part(cert_p);
	key = dup_part(key_p);
	ca = dup_part(ca_p);

	rc = connect_tls_config_new(&cfg, (flags & F_SERVER) ?
				    CONNECT_TLS_SERVER : CONNECT_TLS_CLIENT);
	FUZZ_CHECK(rc == CONNECT_OK, "connect_tls_config_new: %s",
		   connect_err_name(rc));
	if ((flags & F_SERVER) && (flags & F_REQUIRE))
		FUZZ_CHECK(connect_tls_config_client_auth(cfg,
				CONNECT_TLS_AUTH_REQUIRED) == CONNECT_OK,
			   "connect_tls_config_client_auth failed");

	if (flags & F_CA_FIRST) {
		have_ca |= load_ca(cfg, ca, ca_p.n);
		if (flags & F_CA_TWICE)
			have_ca |= load_ca(cfg, ca, ca_p.n);
	}
	have_cert |= load_cert(cfg, cert, cert_p.n, key, key_p.n);
	if (flags & F_CERT_TWICE)
		have_cert |= load_cert(cfg, cert, cert_p.n, key, key_p.n);
	if (!(flags & F_CA_FIRST)) {
		have_ca |= load_ca(cfg, ca, ca_p.n);
		if (flags & F_CA_TWICE)
			have_ca |= load_ca(cfg, ca, ca_p.n);
	}

	/* The configuration is as usable as the loads said. */
	if (flags & F_SERVER)
		usable = have_cert && (!(flags & F_REQUIRE) || have_ca);
	else
		usable = have_ca;
	rc = cn_tls_config_check(cfg, reason, sizeof(reason));
	FUZZ_CHECK(rc == (usable ? CONNECT_OK : CONNECT_ETLSCONFIG),
		   "%s configuration with certificate %s and CA %s: "
		   "cn_tls_config_check says %s (%s)",
		   (flags & F_SERVER) ? "server" : "client",
		   have_cert ? "loaded" : "refused",
		   have_ca ? "loaded" : "refused", connect_err_name(rc),
		   reason);
	if (usable) {
		gnutls_session_t s;
		int timeout_ms = 0, auth = -1;

		FUZZ_CHECK(gnutls_init(&s, (flags & F_SERVER) ? GNUTLS_SERVER :
				       GNUTLS_CLIENT) == 0, "gnutls_init");
		rc = cn_tls_config_apply(cfg, s, false, &timeout_ms, &auth);
		FUZZ_CHECK(rc == 0, "cn_tls_config_apply: %s",
			   gnutls_strerror(rc));
		gnutls_deinit(s);
	}

	connect_tls_config_free(cfg);
	free(cert);
	free(key);
	free(ca);
	return 0;
}
