# tools/local.mk: programs for people working on libconnect, included
# from Makefile.am.  Built by plain `make` (so they keep compiling), never
# installed, never run by `make check`.
# SPDX-License-Identifier: LGPL-2.1-or-later

# connect-load: many connections (TCP or TLS) to an echo server, echo
# traffic checked, throughput and round-trip times (doc/man/connect-load.1).
# It speaks the wire format itself over non-blocking sockets (epoll) and
# GnuTLS, so it does not link libconnect.
noinst_PROGRAMS += tools/connect-load
tools_connect_load_SOURCES = tools/connect_load.c
tools_connect_load_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(GNUTLS_CFLAGS)
tools_connect_load_LDADD = $(GNUTLS_LIBS) $(PTHREAD_LIBS)

# close-time: how long connect_close() takes with the peer idle, TCP and
# TLS (median, p90, max of N closes): `tools/close-time 200`.
noinst_PROGRAMS += tools/close-time
tools_close_time_SOURCES = tools/close_time.c
tools_close_time_CPPFLAGS = -I$(top_srcdir)/include -I$(top_builddir)/include
tools_close_time_LDADD = src/libconnect.la
