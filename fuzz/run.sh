#!/bin/sh
# Build the libFuzzer targets with clang and run each for a while.
#
#   fuzz/run.sh [--seconds N] [--builddir DIR] [--jobs N] [--build-only]
#               [TARGET...]
#
#   TARGET        codec, tls-config, conn (default: all three, one after
#                 the other, each in one process on one core)
#   --seconds N   run each target N seconds (default $FUZZ_SECONDS or 60)
#   --builddir D  where everything goes (default ./build-fuzz):
#                   D/build      the clang build (configured once, then
#                                rebuilt incrementally)
#                   D/seeds/     seed corpora made from tests/data and
#                                tests/certs (made anew each run)
#                   D/corpus/T   what the fuzzer found: kept across runs
#                   D/artifacts/ crashing, leaking or slow inputs
#                   D/logs/T.log the fuzzer's output
#   --jobs N      make -jN for the build (default 2)
#   --build-only  build the targets and the seeds, run nothing
#   --coverage    then replay each target's corpus in a source-coverage
#                 build (D/cov, clang -fprofile-instr-generate) and print
#                 the line and branch coverage of the library files it
#                 exercises (llvm-profdata and llvm-cov: Debian package
#                 llvm); with --seconds 0, only that
#
# The sources are those of the tree this script is in, which must not be
# configured in place (the build is out of tree): `make fuzz` copies them to
# build-fuzz/src with `make distdir` and runs the copy of this script.
#
# Exit status: 0 when every target ran its time without a failure; 1 when
# one crashed, leaked, timed out or broke one of its checks (the input is
# in D/artifacts/, the command to reproduce it is printed); 2 for a
# setup error.
#
# Environment: FUZZ_SECONDS, FUZZ_CC (clang), FUZZ_CFLAGS (replaces the
# default flags below), FUZZ_ARGS (more libFuzzer options for every target).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -eu

seconds=${FUZZ_SECONDS:-60}
builddir=$PWD/build-fuzz
jobs=2
build_only=0
coverage=0
targets=""

while test $# -gt 0; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--seconds=*) seconds=${1#*=}; shift ;;
	--builddir) builddir=$2; shift 2 ;;
	--builddir=*) builddir=${1#*=}; shift ;;
	--jobs) jobs=$2; shift 2 ;;
	--jobs=*) jobs=${1#*=}; shift ;;
	--build-only) build_only=1; shift ;;
	--coverage) coverage=1; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) targets="$targets ${1#fuzz-}"; shift ;;
	esac
done
test -n "$targets" || targets="codec tls-config conn"
for t in $targets; do
	case $t in
	codec|tls-config|conn) ;;
	*) echo "run.sh: unknown target $t (codec, tls-config, conn)" >&2
	   exit 2 ;;
	esac
done
case $seconds in
''|*[!0-9]*) echo "run.sh: --seconds wants a number" >&2; exit 2 ;;
esac

srcdir=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$builddir"
builddir=$(cd "$builddir" && pwd)
obj=$builddir/build
cc=${FUZZ_CC:-clang}
cflags=${FUZZ_CFLAGS:-"-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"}

if test -f "$srcdir/config.status"; then
	echo "run.sh: $srcdir is configured in place; the fuzz build is out" \
	     "of tree: run 'make fuzz' (it copies the sources first)," \
	     "or 'make distclean' here" >&2
	exit 2
fi
if ! test -x "$srcdir/configure"; then
	echo "run.sh: $srcdir has no configure: run ./bootstrap" >&2
	exit 2
fi
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run.sh: $cc not found (Debian: apt-get install clang" \
	     "libclang-rt-14-dev)" >&2
	exit 2
fi
probe=$builddir/probe
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" \
	>"$probe.log" 2>&1; then
	cat "$probe.log" >&2
	echo "run.sh: $cc cannot build a libFuzzer program (Debian: apt-get" \
	     "install libclang-rt-14-dev, or the one matching" \
	     "'$cc --version')" >&2
	exit 2
fi
rm -f "$probe" "$probe.c" "$probe.log"

# ---- build ---------------------------------------------------------------
# Configured once; `make` reruns config.status by itself when configure or
# Makefile.in change.  A different compiler or flags: rm -rf the build.
mkdir -p "$obj"
if ! test -f "$obj/config.status"; then
	echo "==== configure (CC=$cc) in $obj"
	(cd "$obj" && "$srcdir/configure" -q --disable-shared CC="$cc" \
		CFLAGS="$cflags") || {
		echo "run.sh: configure failed, see $obj/config.log" >&2
		exit 2
	}
fi
echo "==== build"
make -C "$obj" -s -j"$jobs" fuzz-targets || {
	echo "run.sh: the build failed" >&2
	exit 2
}

# ---- seeds ---------------------------------------------------------------
rm -rf "$builddir/seeds"
mkdir -p "$builddir/seeds/wire" "$builddir/seeds/tls"
"$obj/fuzz/mkseeds" wire "$srcdir/tests/data/wire-vectors.txt" \
	"$builddir/seeds/wire"
"$obj/fuzz/mkseeds" tls "$srcdir/tests/certs" "$builddir/seeds/tls"
# Each PEM file alone too, as certificate, key and CAs at once.
for f in "$srcdir"/tests/certs/*.pem; do
	{ printf '\001'; cat "$f"; printf '\n%%%%\n'; cat "$f"
	  printf '\n%%%%\n'; cat "$f"; } \
		>"$builddir/seeds/tls/file-$(basename "$f")"
done

if test $build_only = 1; then
	echo "==== built: $obj/fuzz/fuzz-{codec,tls-config,conn}"
	exit 0
fi

# ---- run -----------------------------------------------------------------
mkdir -p "$builddir/logs" "$builddir/artifacts"
failed=""
summary=""
# UBSan aborts at the first report (-fno-sanitize-recover), so that
# libFuzzer keeps the input; ASan keeps its defaults (leaks detected).
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UBSAN_OPTIONS

for t in $targets; do
	test "$seconds" != 0 || break
	bin=$obj/fuzz/fuzz-$t
	log=$builddir/logs/$t.log
	corpus=$builddir/corpus/$t
	mkdir -p "$corpus"
	case $t in
	codec) seeds=$builddir/seeds/wire; extra="-max_len=4096" ;;
	conn) seeds=$builddir/seeds/wire; extra="-max_len=4096" ;;
	tls-config) seeds=$builddir/seeds/tls
		extra="-max_len=8192 -dict=$srcdir/fuzz/tls_config.dict" ;;
	esac
	echo "==== fuzz-$t for $seconds s (log: $log)"
	# The first directory takes what is found; the seeds are read only.
	# -timeout: one input running 30 s is a hang (the targets' own waits
	# give up after 5 s with a message first).
	set +e
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$builddir/artifacts/$t-" \
		$extra ${FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	set -e
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
	units=$(find "$corpus" -type f | wc -l)
	line=$(printf '%-11s %-6s %10s execs %7s exec/s  %-20s corpus %s' \
		"$t" "$(test $rc = 0 && echo ok || echo FAILED)" \
		"${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$units")
	echo "$line"
	summary="$summary$line
"
	if test $rc != 0; then
		failed="$failed $t"
		echo "---- fuzz-$t failed (exit $rc); end of $log:"
		tail -n 60 "$log"
		art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
			tail -n 1)
		if test -n "$art"; then
			echo "---- input: $art"
			echo "---- reproduce: $bin $art"
		fi
	fi
done

# ---- coverage ------------------------------------------------------------
# The library files each target is about.
cov_files() {
	case $1 in
	codec) echo src/codec.c src/datagram.c ;;
	tls-config) echo src/tls_config.c ;;
	conn) echo src/conn.c src/codec.c src/listener.c src/queue.c \
		src/sock.c src/transport.c src/transport_tcp.c ;;
	esac
}

coverage_report() {
	cov=$builddir/cov
	profdata=${FUZZ_LLVM_PROFDATA:-llvm-profdata}
	llvmcov=${FUZZ_LLVM_COV:-llvm-cov}
	if ! command -v "$profdata" >/dev/null 2>&1 ||
	   ! command -v "$llvmcov" >/dev/null 2>&1; then
		echo "run.sh: no $profdata or $llvmcov (Debian: apt-get install" \
		     "llvm): no coverage report" >&2
		return 0
	fi
	mkdir -p "$cov"
	if ! test -f "$cov/config.status"; then
		echo "==== configure the coverage build in $cov"
		(cd "$cov" && "$srcdir/configure" -q --disable-shared \
			CC="$cc" CFLAGS="-g -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer-no-link") ||
			{ echo "run.sh: configure failed ($cov)" >&2; return 1; }
	fi
	make -C "$cov" -s -j"$jobs" fuzz-targets ||
		{ echo "run.sh: coverage build failed" >&2; return 1; }
	for t in $targets; do
		case $t in
		tls-config) seeds=$builddir/seeds/tls ;;
		*) seeds=$builddir/seeds/wire ;;
		esac
		mkdir -p "$builddir/corpus/$t"
		rm -f "$cov/$t".profraw "$cov/$t".profdata
		# -runs=0: run every input of the corpus once, then stop.
		LLVM_PROFILE_FILE=$cov/$t.profraw "$cov/fuzz/fuzz-$t" -runs=0 \
			"$builddir/corpus/$t" "$seeds" >"$cov/$t.log" 2>&1 ||
			{ echo "run.sh: replay failed, see $cov/$t.log" >&2
			  return 1; }
		"$profdata" merge -sparse "$cov/$t.profraw" -o "$cov/$t.profdata"
		files=""
		for f in $(cov_files "$t"); do
			files="$files $srcdir/$f"
		done
		echo "==== coverage of fuzz-$t's corpus" \
		     "($(find "$builddir/corpus/$t" -type f | wc -l) inputs" \
		     "+ seeds)"
		# shellcheck disable=SC2086
		"$llvmcov" report "$cov/fuzz/fuzz-$t" \
			-instr-profile="$cov/$t.profdata" $files |
			sed "s|$srcdir/||"
	done
}

if test "$seconds" != 0; then
	echo "==== summary ($seconds s per target)"
	printf '%s' "$summary"
fi
if test $coverage = 1; then
	coverage_report || failed="$failed coverage"
fi
if test -n "$failed"; then
	echo "==== FAILED:$failed"
	exit 1
fi
test "$seconds" = 0 || echo "==== fuzzing passed"
