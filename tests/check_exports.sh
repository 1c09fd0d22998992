#!/bin/sh
# Assert that libconnect.so exports only the public API: connect_* symbols,
# plus the few symbols every shared object carries (_init, _fini, _edata,
# _end, __bss_start).  Anything else means a missing `static` or a missing
# -fvisibility=hidden / -export-symbols-regex.
#
# Run by `make check` with top_builddir set; usable by hand too:
#     top_builddir=/path/to/build sh tests/check_exports.sh [libconnect.so]
# SPDX-License-Identifier: LGPL-2.1-or-later

lib=${1:-${top_builddir:-.}/src/.libs/libconnect.so}

if ! test -e "$lib"; then
	echo "SKIP: $lib not found (configured with --disable-shared?)"
	exit 77
fi
NM=${NM:-nm}
if ! command -v "$NM" >/dev/null 2>&1; then
	echo "SKIP: $NM not found"
	exit 77
fi

syms=$("$NM" -D --defined-only "$lib") || {
	echo "FAIL: $NM -D --defined-only $lib failed"
	exit 1
}

# nm lines are "address type name"; name may carry @VERSION / @@VERSION.
bad=$(printf '%s\n' "$syms" | awk '
	NF >= 2 {
		name = $NF
		sub(/@.*/, "", name)
		if (name ~ /^connect_/)
			next
		if (name ~ /^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$/)
			next
		# The version node of src/libconnect.sym.
		if ($(NF - 1) == "A" && name ~ /^LIBCONNECT_[0-9_.]+$/)
			next
		print
	}')
count=$(printf '%s\n' "$syms" | awk '$NF ~ /^connect_/' | wc -l)

if test -n "$bad"; then
	echo "FAIL: $lib exports symbols outside the connect_* API:"
	printf '%s\n' "$bad"
	exit 1
fi
# With the version script every export carries a LIBCONNECT_* version.
if printf '%s\n' "$syms" | grep -q ' A LIBCONNECT_'; then
	unversioned=$(printf '%s\n' "$syms" |
		awk '$NF ~ /^connect_/ && $NF !~ /@@?LIBCONNECT_/')
	if test -n "$unversioned"; then
		echo "FAIL: $lib exports connect_* symbols without a version:"
		printf '%s\n' "$unversioned"
		exit 1
	fi
fi
if test "$count" -eq 0; then
	echo "FAIL: $lib exports no connect_* symbol at all"
	exit 1
fi
echo "PASS: $lib exports $count connect_* symbols and nothing else"
exit 0
