# bench/local.mk: the benchmark (see bench/README), included from
# Makefile.am after fuzz/local.mk.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
#     make bench                 build bench/connect-bench
#     make bench-run             build it and run it (BENCH_ARGS), writing
#                                the CSV to BENCH_CSV
#     make bench-plot            PNG charts from BENCH_CSV into BENCH_PLOTDIR
#                                (gnuplot)
#
# Never built by `make` or `make check`, never installed: only on demand.
# ZeroMQ and nng take part when configure found them (libzmq3-dev,
# libnng-dev); the SCTP rows when the library has SCTP (usrsctp).

EXTRA_PROGRAMS += bench/connect-bench

bench_connect_bench_SOURCES = \
	bench/bench.h \
	bench/main.c \
	bench/util.c \
	bench/sys_connect.c \
	bench/sys_raw.c
bench_connect_bench_CPPFLAGS = $(AM_CPPFLAGS) -D_GNU_SOURCE \
	-DCERTDIR='"$(abs_top_srcdir)/tests/certs"'
bench_connect_bench_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(GNUTLS_CFLAGS)
bench_connect_bench_LDADD = src/libconnect.la $(GNUTLS_LIBS) \
	$(PTHREAD_LIBS) -lm
# A real binary (no libtool wrapper script), so that perf and valgrind
# see the program itself.
bench_connect_bench_LDFLAGS = -no-install

if HAVE_ZMQ
bench_connect_bench_SOURCES += bench/sys_zmq.c
bench_connect_bench_CFLAGS += $(ZMQ_CFLAGS)
bench_connect_bench_LDADD += $(ZMQ_LIBS)
endif
if HAVE_NNG
bench_connect_bench_SOURCES += bench/sys_nng.c
bench_connect_bench_CFLAGS += $(NNG_CFLAGS)
bench_connect_bench_LDADD += $(NNG_LIBS)
endif
# The SCTP rows and their limit, when the library has the SCTP transport.
if HAVE_USRSCTP
bench_connect_bench_SOURCES += bench/sys_sctp.c
bench_connect_bench_CFLAGS += $(USRSCTP_CFLAGS)
bench_connect_bench_LDADD += $(USRSCTP_LIBS)
endif

EXTRA_DIST += \
	bench/README \
	bench/RESULTS.md \
	bench/plot.gp \
	bench/results

CLEANFILES = bench/connect-bench$(EXEEXT)

BENCH_ARGS =
BENCH_CSV = bench-results.csv
BENCH_PLOTDIR = bench-plots

bench: bench/connect-bench$(EXEEXT)

bench-run: bench/connect-bench$(EXEEXT)
	bench/connect-bench$(EXEEXT) --csv '$(BENCH_CSV)' $(BENCH_ARGS)

bench-plot:
	@test -n '$(GNUPLOT)' || { \
		echo "make bench-plot: gnuplot not found by configure" \
			"(Debian: apt-get install gnuplot-nox)" >&2; exit 1; }
	@test -f '$(BENCH_CSV)' || { \
		echo "make bench-plot: no $(BENCH_CSV): run make bench-run" \
			"first, or name the file: make bench-plot" \
			"BENCH_CSV=FILE" >&2; exit 1; }
	$(MKDIR_P) '$(BENCH_PLOTDIR)'
	'$(GNUPLOT)' -e "csv='$(BENCH_CSV)'; outdir='$(BENCH_PLOTDIR)'" \
		'$(srcdir)/bench/plot.gp'

.PHONY: bench bench-run bench-plot
