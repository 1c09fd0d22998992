# fuzz/local.mk: the libFuzzer targets (see fuzz/README), included from
# Makefile.am after its EXTRA_DIST.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
#     make fuzz                      build with clang in build-fuzz/, then run
#                                    each target for FUZZ_SECONDS (60)
#     make fuzz FUZZ_SECONDS=300 FUZZ_TARGETS_RUN=codec
#     make fuzz-stage                only copy the sources to build-fuzz/src
#
# The targets need clang's -fsanitize=fuzzer, so they are never built by
# `make` or `make check`: fuzz/run.sh configures a separate clang build
# (CC=clang, CFLAGS with -fsanitize=fuzzer-no-link,address,undefined) and
# builds them there with `make fuzz-targets`.  That build is out of tree,
# from a copy of the distributed sources (`make distdir` into
# build-fuzz/src), so it neither needs nor disturbs this build's
# configuration, in-tree or not, and it can run beside other builds.

FUZZ_TARGETS = fuzz/fuzz-codec fuzz/fuzz-tls-config fuzz/fuzz-conn
EXTRA_PROGRAMS = $(FUZZ_TARGETS) fuzz/mkseeds

fuzz_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/src
fuzz_cflags = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(GNUTLS_CFLAGS) $(URCU_CFLAGS)
fuzz_ldflags = -fsanitize=fuzzer
fuzz_ldadd = src/libconnect-internal.la $(libconnect_libs)

fuzz_fuzz_codec_SOURCES = fuzz/fuzz_codec.c fuzz/fuzz_common.h
fuzz_fuzz_codec_CPPFLAGS = $(fuzz_cppflags)
fuzz_fuzz_codec_CFLAGS = $(fuzz_cflags)
fuzz_fuzz_codec_LDFLAGS = $(fuzz_ldflags)
fuzz_fuzz_codec_LDADD = $(fuzz_ldadd)

fuzz_fuzz_tls_config_SOURCES = fuzz/fuzz_tls_config.c fuzz/fuzz_common.h
fuzz_fuzz_tls_config_CPPFLAGS = $(fuzz_cppflags)
fuzz_fuzz_tls_config_CFLAGS = $(fuzz_cflags)
fuzz_fuzz_tls_config_LDFLAGS = $(fuzz_ldflags)
fuzz_fuzz_tls_config_LDADD = $(fuzz_ldadd)

fuzz_fuzz_conn_SOURCES = fuzz/fuzz_conn.c fuzz/fuzz_common.h
fuzz_fuzz_conn_CPPFLAGS = $(fuzz_cppflags)
fuzz_fuzz_conn_CFLAGS = $(fuzz_cflags)
fuzz_fuzz_conn_LDFLAGS = $(fuzz_ldflags)
fuzz_fuzz_conn_LDADD = $(fuzz_ldadd)

# Writes the seed corpora from tests/data and tests/certs (a plain program).
fuzz_mkseeds_SOURCES = fuzz/mkseeds.c fuzz/fuzz_common.h
fuzz_mkseeds_CPPFLAGS = $(AM_CPPFLAGS)

EXTRA_DIST += \
	fuzz/README \
	fuzz/run.sh \
	fuzz/tls_config.dict \
	fuzz/crashes

# In the clang build made by fuzz/run.sh only.
fuzz-targets: $(FUZZ_TARGETS) fuzz/mkseeds

FUZZ_SECONDS = 60
FUZZ_BUILDDIR = $(abs_top_builddir)/build-fuzz
# Names without the fuzz- prefix, or empty for all three.
FUZZ_TARGETS_RUN =
# make -j for building the clang build (the fuzzing itself takes one core).
FUZZ_JOBS = 2

fuzz-stage:
	$(MKDIR_P) '$(FUZZ_BUILDDIR)'
	$(MAKE) $(AM_MAKEFLAGS) distdir distdir='$(FUZZ_BUILDDIR)/src'

fuzz: fuzz-stage
	$(SHELL) '$(FUZZ_BUILDDIR)/src/fuzz/run.sh' \
		--seconds '$(FUZZ_SECONDS)' --jobs '$(FUZZ_JOBS)' \
		--builddir '$(FUZZ_BUILDDIR)' $(FUZZ_TARGETS_RUN)

.PHONY: fuzz fuzz-stage fuzz-targets
