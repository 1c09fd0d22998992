#!/bin/sh
# abi-check.sh: compare the ABI of a built libconnect.so with the baseline
# committed in abi/, and fail on any change other than additions.
#
#     tests/abi-check.sh [--update] [LIB]        (LIB: src/.libs/libconnect.so)
#     make abi-check / make abi-update           (the same, after make)
#
# The baseline of a library whose soname is libconnect.so.N is
#   abi/libconnect.so.N.abi        libabigail's abidw dump: functions,
#                                  their parameter and return types, the
#                                  symbol versions;
#   abi/libconnect.so.N.constants  the value of every public constant
#                                  (enumerators, CONNECT_MAX_PAYLOAD...),
#                                  which no function signature carries
#                                  (they take int), so abidiff cannot see.
#
# It fails (exit 1) when
#   - abidiff reports an incompatible change (exit bit 8: a symbol removed)
#     or any other change once added symbols are left out (bit 4 with
#     --no-added-syms: a parameter, return or type changed);
#   - a constant of the baseline is gone or has another value;
#   - there is no baseline for the library's soname (the soname moved:
#     make the new baseline on purpose with --update).
# Added functions and constants pass; they are listed.  Exit 2 on a usage
# or tool error (abidiff exit bits 1 and 2, no debug info, no abidw).
#
# --update rewrites the baseline of the library's soname from LIB; commit
# the result with the change that needs it (see "ABI and versions" in README).
# The library must be built with debug info (-g: the default CFLAGS).
# Needs abidw and abidiff (Debian: abigail-tools), readelf, and a C
# compiler (CC, default cc) for the constants.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
update=no
if test "${1:-}" = --update; then
	update=yes
	shift
fi
lib=${1:-src/.libs/libconnect.so}
CC=${CC:-cc}

die() {
	echo "abi-check: $*" >&2
	exit 2
}

for tool in abidw abidiff readelf; do
	command -v $tool >/dev/null 2>&1 ||
		die "$tool not found (Debian: apt-get install abigail-tools binutils)"
done
test -f "$lib" || die "$lib not found: build first (make), or name the library"
# The library's build tree, for the generated include/connect_version.h.
builddir=$(cd "$(dirname "$lib")/../.." && pwd)

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
test -n "$soname" || die "$lib has no SONAME"
readelf -S "$lib" | grep -q '\.debug_info' ||
	die "$lib has no debug info: build with -g (the default CFLAGS)"

base=$srcdir/abi/$soname
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libconnect-abi.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# ---- the constants -----------------------------------------------------
# Every enumerator, every error code of CONNECT_ERRNO_MAP and the value
# macros of connect.h (not the version macros, which change by design).
header=$srcdir/include/connect.h
consts=$( {
	sed -n 's/^[ \t]*\(CONNECT_[A-Z0-9_]*\)[ \t]*=.*/\1/p' "$header"
	sed -n 's/.*XX(\([A-Z0-9_]*\), *-\{0,1\}[0-9].*/CONNECT_\1/p' "$header"
	sed -n 's/^#define \(CONNECT_[A-Z0-9_]*\)[ \t][ \t]*[0-9].*/\1/p' "$header"
	} | sort -u)
{
	echo '#include <stdio.h>'
	echo '#include <connect.h>'
	echo 'int main(void)'
	echo '{'
	for c in $consts; do
		printf '\tprintf("%%s %%lld\\n", "%s", (long long)(%s));\n' \
			"$c" "$c"
	done
	echo '	return 0;'
	echo '}'
} >"$tmp/consts.c"
$CC -I"$srcdir/include" -I"$builddir/include" -o "$tmp/consts" \
	"$tmp/consts.c" >"$tmp/cc.log" 2>&1 || {
	head -n 20 "$tmp/cc.log" >&2
	die "cannot compile the constants program with $CC"
}
"$tmp/consts" | sort >"$tmp/constants" || die "constants program failed"

# ---- the ABI dump ------------------------------------------------------
# Public types only (those declared under include/), no source paths or
# line numbers (they would change with every edit), stable type ids.
abidw --headers-dir "$srcdir/include" --headers-dir "$builddir/include" \
	--no-corpus-path --no-comp-dir-path --no-show-locs \
	--drop-undefined-syms --type-id-style hash \
	--out-file "$tmp/abi" "$lib" || die "abidw failed on $lib"

if test $update = yes; then
	mkdir -p "$srcdir/abi"
	cp "$tmp/abi" "$base.abi" && cp "$tmp/constants" "$base.constants" ||
		die "cannot write $base.*"
	echo "abi-check: wrote $base.abi and $base.constants from $lib" \
		"($(grep -c '<elf-symbol ' "$base.abi") symbols," \
		"$(wc -l <"$base.constants") constants); review and commit them"
	exit 0
fi

if ! test -f "$base.abi" || ! test -f "$base.constants"; then
	echo "abi-check: FAIL: no baseline for $soname in abi/." >&2
	echo "abi-check: if the soname moved on purpose (an incompatible" \
		"release), create it: tests/abi-check.sh --update $lib" >&2
	exit 1
fi

fail=0

# Everything but additions: must be no change at all.
abidiff --no-added-syms --headers-dir2 "$srcdir/include" \
	"$base.abi" "$tmp/abi" >"$tmp/diff"
rc=$?
if test $((rc & 3)) -ne 0; then
	cat "$tmp/diff" >&2
	die "abidiff failed (exit $rc)"
fi
if test $((rc & 8)) -ne 0; then
	echo "abi-check: FAIL: INCOMPATIBLE ABI change against $base.abi:"
	cat "$tmp/diff"
	fail=1
elif test $((rc & 4)) -ne 0; then
	echo "abi-check: FAIL: ABI change (not an addition) against $base.abi:"
	cat "$tmp/diff"
	fail=1
fi

# Additions: allowed, listed.
abidiff --headers-dir2 "$srcdir/include" "$base.abi" "$tmp/abi" >"$tmp/added"
if test $(($? & 4)) -ne 0 && test $fail -eq 0; then
	echo "abi-check: compatible additions (bump the libtool version's" \
		"current and age at release; update the baseline then):"
	cat "$tmp/added"
fi

# Constants: every one of the baseline, with the same value.
missing=$(comm -23 "$base.constants" "$tmp/constants")
if test -n "$missing"; then
	echo "abi-check: FAIL: constants removed or changed (baseline value):"
	printf '%s\n' "$missing"
	echo "abi-check: now:"
	for c in $(printf '%s\n' "$missing" | cut -d' ' -f1); do
		grep "^$c " "$tmp/constants" || echo "$c (gone)"
	done
	fail=1
fi
added=$(comm -13 "$base.constants" "$tmp/constants" | cut -d' ' -f1)
for c in $added; do
	grep -q "^$c " "$base.constants" || echo "abi-check: constant added: $c"
done

if test $fail -ne 0; then
	echo "abi-check: FAIL: $lib breaks the ABI of $soname (see" \
		"README (ABI and versions): restore compatibility, or move the soname" \
		"and make a new baseline on purpose)"
	exit 1
fi
echo "abi-check: PASS: $lib ($soname) keeps the ABI of abi/$soname.abi" \
	"($(grep -c '<elf-symbol ' "$base.abi") symbols," \
	"$(wc -l <"$base.constants") constants)"
exit 0
