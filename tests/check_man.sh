#!/bin/sh
# Assert that every public name of libconnect has a manual page:
#
#   - every function the library exports (nm -D on libconnect.so) and every
#     CONNECT_API declaration in include/connect.h has a page NAME.3 in
#     doc/man (a page, or a ".so man3/OTHER.3" link to one) whose NAME
#     section lists it (.Nm NAME);
#   - every public type (typedef connect_*, enum connect_*) has a page
#     NAME.3 that mentions it;
#   - every public constant (enumerators, error codes from
#     CONNECT_ERRNO_MAP, CONNECT_* macros of connect.h and
#     connect_version.h) appears in some page;
#   - every ".so" link points to a page that exists, and every file in
#     doc/man is listed in doc/local.mk;
#   - with mandoc installed, every page lints without warnings.
#
# Whoever adds a function to the API adds its page (or a link and a .Nm
# line in a related page) and lists it in doc/local.mk.
#
# Run by `make check`; by hand:
#     abs_top_srcdir=. top_builddir=. sh tests/check_man.sh
# MANDIR=/usr/share/man checks installed pages (man3 and man7) instead.
# SPDX-License-Identifier: LGPL-2.1-or-later

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-.}
header=$srcdir/include/connect.h
verhdr=$srcdir/include/connect_version.h.in
lib=$builddir/src/.libs/libconnect.so
NM=${NM:-nm}

if test -n "${MANDIR:-}"; then
	man3=$MANDIR/man3
	pages="$MANDIR/man3/*.3 $MANDIR/man7/*.7"
else
	man3=$srcdir/doc/man
	pages="$srcdir/doc/man/*.3 $srcdir/doc/man/*.7"
fi

fail=0
problem() {
	echo "FAIL: $*"
	fail=1
}

test -r "$header" || { echo "FAIL: $header not found"; exit 1; }
test -d "$man3" || { echo "FAIL: $man3 not found"; exit 1; }

# The functions: the library's exports (when it was built shared) and the
# header's CONNECT_API declarations (a declaration may span lines: the
# name is the first identifier followed by "(").
funcs=$(awk '
	/^[ \t]*CONNECT_API[ \t]/ { decl = ""; indecl = 1 }
	indecl { decl = decl " " $0
		 if (index($0, ";")) {
			indecl = 0
			if (match(decl, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
				name = substr(decl, RSTART, RLENGTH)
				sub(/[ \t]*\($/, "", name)
				print name
			}
		 } }' "$header")
if test -e "$lib" && command -v "$NM" >/dev/null 2>&1; then
	exports=$("$NM" -D --defined-only "$lib" | awk '{ n = $NF; sub(/@.*/, "", n); if (n ~ /^connect_/) print n }')
	for f in $exports; do
		case " $(echo $funcs) " in
		*" $f "*) ;;
		*) problem "$f is exported by $lib but not declared CONNECT_API in connect.h" ;;
		esac
	done
	funcs=$(printf '%s\n%s\n' "$funcs" "$exports")
else
	echo "note: $lib not found (static build?): checking the header's declarations only"
fi
funcs=$(printf '%s\n' "$funcs" | sort -u)

types=$(sed -n \
	-e 's/^typedef struct \(connect_[a-z0-9_]*\) \1;.*/\1/p' \
	-e 's/^typedef .*(\*\(connect_[a-z0-9_]*\)).*/\1/p' \
	-e 's/^enum \(connect_[a-z0-9_]*\) {.*/\1/p' "$header" | sort -u)

consts=$( {
	sed -n 's/^[ \t]*\(CONNECT_[A-Z0-9_]*\)[ \t]*=.*/\1/p' "$header"
	sed -n 's/.*XX(\([A-Z0-9_]*\), *-\{0,1\}[0-9].*/CONNECT_\1/p' "$header"
	sed -n 's/^#define \(CONNECT_[A-Z0-9_]*\).*/\1/p' "$header" "$verhdr"
	} | grep -v -E '^CONNECT_(API|CONNECT_H|VERSION_H)$|_$' | sort -u)

# The page a NAME.3 file stands for: itself, or the target of its .so line.
resolve() {
	first=$(sed -n '1p' "$1")
	case $first in
	.so\ *)
		target=${first#.so }
		echo "$man3/${target##*/}" ;;
	*)
		echo "$1" ;;
	esac
}

nfuncs=0
for f in $funcs; do
	nfuncs=$((nfuncs + 1))
	if ! test -f "$man3/$f.3"; then
		problem "function $f has no manual page $f.3"
		continue
	fi
	page=$(resolve "$man3/$f.3")
	if ! test -f "$page"; then
		problem "$f.3 links to $page, which does not exist"
	elif ! grep -q -E "^\\.Nm $f( ,)?\$" "$page"; then
		problem "${page##*/} (page of $f) does not list $f in NAME (.Nm $f)"
	fi
done

ntypes=0
for t in $types; do
	ntypes=$((ntypes + 1))
	if ! test -f "$man3/$t.3"; then
		problem "type $t has no manual page $t.3"
		continue
	fi
	page=$(resolve "$man3/$t.3")
	if ! test -f "$page"; then
		problem "$t.3 links to $page, which does not exist"
	elif ! grep -q -w "$t" "$page"; then
		problem "${page##*/} (page of type $t) does not mention $t"
	fi
done

# shellcheck disable=SC2086 # $pages are globs
alltext=$(cat $pages 2>/dev/null)
nconsts=0
for c in $consts; do
	nconsts=$((nconsts + 1))
	printf '%s\n' "$alltext" | grep -q -w "$c" ||
		problem "constant $c appears in no manual page"
done

# Dangling links.
for p in $pages; do
	test -f "$p" || continue
	page=$(resolve "$p")
	test -f "$page" || problem "${p##*/} links to $page, which does not exist"
done

# Every page in the tree is listed in doc/local.mk (so it is installed and
# distributed).
if test -z "${MANDIR:-}" && test -f "$srcdir/doc/local.mk"; then
	for p in "$srcdir"/doc/man/*.[137]; do
		grep -q -F "doc/man/${p##*/}" "$srcdir/doc/local.mk" ||
			problem "doc/man/${p##*/} is not listed in doc/local.mk"
	done
fi

# mandoc's linter, where it is installed (warnings and errors only).
if test -z "${MANDIR:-}" && command -v mandoc >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	lint=$(for p in $pages "$srcdir"/doc/man/*.1; do
		head -n 1 "$p" | grep -q '^\.so ' || mandoc -Tlint -W warning "$p"
	done 2>&1)
	if test -n "$lint"; then
		printf '%s\n' "$lint"
		problem "mandoc -Tlint reports warnings"
	fi
fi

if test $fail -ne 0; then
	echo "FAIL: see above; pages are in doc/man and listed in doc/local.mk"
	exit 1
fi
echo "PASS: $nfuncs functions, $ntypes types and $nconsts constants have manual pages"
exit 0
