# tests/soak/local.mk: the two-host soak and dead-peer test.
# Included from Makefile.am (after its own noinst_PROGRAMS and EXTRA_DIST):
#     include tests/soak/local.mk
# SPDX-License-Identifier: LGPL-2.1-or-later
#
#   make soak-short   the CI run (as root; a few minutes): 100,000 datagrams
#                     each way over TCP/IPv4, TLS/IPv4 and TCP/IPv6 at 2%
#                     loss, then a cut link noticed through
#                     TCP_USER_TIMEOUT, keepalive and the receive-idle
#                     timeout, over TCP and TLS
#   make soak         the long run: 1,000,000 datagrams each way per run,
#                     TCP/IPv4 and TLS/IPv4 at 5% loss, TCP/IPv6 and
#                     TLS/IPv6 at 1% loss, and the same cuts
#
# Both run tests/soak/netns-soak.sh (see its header for the SOAK_*
# variables, which pass through the environment).  Not root, or no network
# namespaces: the script says why and skips (exit 77), which these targets
# report and accept unless SOAK_REQUIRE=1.

# Built with the examples by plain `make`, so that it keeps compiling;
# -no-install: a real binary (no libtool wrapper) for `ip netns exec`.
noinst_PROGRAMS += tests/soak/soak
tests_soak_soak_SOURCES = tests/soak/soak.c
tests_soak_soak_CPPFLAGS = $(AM_CPPFLAGS) $(tests_defs)
tests_soak_soak_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
tests_soak_soak_LDADD = src/libconnect.la $(PTHREAD_LIBS)
tests_soak_soak_LDFLAGS = -no-install

EXTRA_DIST += tests/soak/netns-soak.sh

soak_run = \
	SOAK_BIN='$(abs_top_builddir)/tests/soak/soak$(EXEEXT)' \
	CERTDIR='$(abs_top_srcdir)/tests/certs' \
	bash '$(abs_top_srcdir)/tests/soak/netns-soak.sh'

soak: tests/soak/soak$(EXEEXT)
	@rc=0; $(soak_run) long || rc=$$?; \
	if test $$rc = 77; then echo "soak: SKIPPED"; rc=0; fi; exit $$rc

soak-short: tests/soak/soak$(EXEEXT)
	@rc=0; $(soak_run) short || rc=$$?; \
	if test $$rc = 77; then echo "soak-short: SKIPPED"; rc=0; fi; exit $$rc

.PHONY: soak soak-short
