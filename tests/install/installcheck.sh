#!/bin/sh
# installcheck.sh: build programs against an INSTALLED libconnect through
# pkg-config, exactly as a user would, and run them against an installed
# example echo server.
#
#   - libconnect.pc is found, and needs nothing but GnuTLS (privately):
#     not liburcu, which neither the header nor the library exposes;
#   - the README's "Hello world" program, cut out of the README, is built
#     with the README's own command (cc hello.c $(pkg-config --cflags
#     --libs libconnect));
#   - tests/install/threaded.c (several threads on one connection) is
#     built with the README's two-step commands (cc -c ..., cc -o ...);
#   - tcp-echo-server is started on 127.0.0.1 port 0, its port read from
#     its "listening on 127.0.0.1:PORT" line, and both programs must get
#     their echoes; the server must then exit cleanly by itself.
#
# Run by `make installcheck` (so by `make distcheck`) against the
# installed tree, and against an installed Debian package:
#     sh tests/install/installcheck.sh \
#         --server /usr/libexec/libconnect/tcp-echo-server
#
# Options:
#   --server PATH            the echo server to run (required)
#   --pkg-config-path DIR    put DIR first in PKG_CONFIG_PATH
#   --libdir DIR             run the programs with DIR first in
#                            LD_LIBRARY_PATH, and check that they load
#                            libconnect from there
#   --readme FILE            the README (default: beside this script)
#   --source FILE            threaded.c (default: beside this script)
# Environment: CC (default cc), PKG_CONFIG (default pkg-config), TMPDIR.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -u

here=$(cd "$(dirname "$0")" && pwd)
readme=$here/../../README
source=$here/threaded.c
server=
libdir=
pcpath=
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

while test $# -gt 0; do
	case $1 in
	--server) server=$2; shift 2 ;;
	--pkg-config-path) pcpath=$2; shift 2 ;;
	--libdir) libdir=$2; shift 2 ;;
	--readme) readme=$2; shift 2 ;;
	--source) source=$2; shift 2 ;;
	*) echo "installcheck: unknown argument $1" >&2; exit 2 ;;
	esac
done

fail() {
	echo "installcheck: FAIL: $*" >&2
	exit 1
}

test -n "$server" || fail "--server PATH is required"
test -x "$server" || fail "$server is not an executable"
test -r "$readme" || fail "$readme not found"
test -r "$source" || fail "$source not found"

if test -n "$pcpath"; then
	PKG_CONFIG_PATH=$pcpath${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
	export PKG_CONFIG_PATH
fi
if test -n "$libdir"; then
	LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libconnect-installcheck.XXXXXX") ||
	exit 1
spid=
cleanup() {
	if test -n "$spid"; then
		kill "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# ---- pkg-config -------------------------------------------------------
"$PKG_CONFIG" --exists --print-errors libconnect ||
	fail "pkg-config does not find libconnect"
echo "installcheck: libconnect $("$PKG_CONFIG" --modversion libconnect):" \
	"cflags '$("$PKG_CONFIG" --cflags libconnect)'," \
	"libs '$("$PKG_CONFIG" --libs libconnect)'"
reqs=$("$PKG_CONFIG" --print-requires --print-requires-private libconnect) ||
	fail "pkg-config --print-requires libconnect failed"
case $reqs in
*urcu*) fail "libconnect.pc requires liburcu: $reqs" ;;
esac

# ---- the README's hello world, built with the README's command ---------
# The program is the indented block after the "Hello world" heading, up to
# the "Build it with `COMMAND`" line that follows it.
awk '
	/^Hello world$/ { sect = 1; next }
	sect && /^Build it with `/ { exit }
	sect && /^    / { code = 1 }
	sect && code { sub(/^    /, ""); print }
' "$readme" >"$tmp/hello.c"
build=$(sed -n 's/^Build it with `\(cc hello\.c [^`]*\)`.*/\1/p' "$readme")
grep -q 'int main' "$tmp/hello.c" ||
	fail "no hello world program found in $readme"
test -n "$build" || fail "no 'Build it with \`cc hello.c ...\`' line in $readme"
grep -q '"127.0.0.1:7878"' "$tmp/hello.c" ||
	fail "the README's hello world no longer dials \"127.0.0.1:7878\""

# The README's two-step build of an application.
compile=$(sed -n 's/^    \(cc -c app\.c .*\)$/\1/p' "$readme")
link=$(sed -n 's/^    \(cc -o app app\.o .*\)$/\1/p' "$readme")
test -n "$compile" && test -n "$link" ||
	fail "no 'cc -c app.c ...' / 'cc -o app app.o ...' lines in $readme"
cp "$source" "$tmp/app.c"

# Start the installed echo server on a free port; it serves the two
# programs, then exits by itself.
"$server" 127.0.0.1:0 --exit-after 2 >"$tmp/server.out" 2>"$tmp/server.err" &
spid=$!
port=
n=0
while test $n -lt 100; do
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
		"$tmp/server.out")
	test -n "$port" && break
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.1
	n=$((n + 1))
done
if test -z "$port"; then
	cat "$tmp/server.err" >&2
	fail "$server did not say 'listening on 127.0.0.1:PORT'"
fi
addr=127.0.0.1:$port
echo "installcheck: $server listening on $addr"

sed "s/\"127\\.0\\.0\\.1:7878\"/\"$addr\"/" "$tmp/hello.c" >"$tmp/hello.c.new" &&
	mv "$tmp/hello.c.new" "$tmp/hello.c"

cd "$tmp" || exit 1
# The README says "cc"; the build may name another compiler.
echo "installcheck: $build"
sh -c "$CC ${build#cc }" || fail "the README's hello world does not build"
echo "installcheck: $compile -pthread"
sh -c "$CC ${compile#cc } -pthread" || fail "threaded.c does not compile"
echo "installcheck: $link -pthread"
sh -c "$CC ${link#cc } -pthread" || fail "threaded.c does not link"

if test -n "$libdir" && command -v ldd >/dev/null 2>&1; then
	for prog in a.out app; do
		loaded=$(ldd "./$prog" | sed -n 's/.*libconnect\.so[^ ]* => \([^ ]*\).*/\1/p')
		case $loaded in
		"$libdir"/*) echo "installcheck: $prog loads $loaded" ;;
		*) fail "$prog loads libconnect from '$loaded', not from $libdir" ;;
		esac
	done
fi

timeout 60 ./a.out || fail "the README's hello world failed against $addr"
echo "installcheck: hello world: PASS"
timeout 120 ./app "$addr" || fail "threaded program failed against $addr"
echo "installcheck: threaded: PASS"

# The server saw its two clients and must now leave with status 0.
n=0
while kill -0 "$spid" 2>/dev/null && test $n -lt 100; do
	sleep 0.1
	n=$((n + 1))
done
if kill -0 "$spid" 2>/dev/null; then
	fail "$server did not exit after its two clients"
fi
wait "$spid"
rc=$?
spid=
test $rc -eq 0 || {
	cat "$tmp/server.err" >&2
	fail "$server exited with status $rc"
}
echo "installcheck: PASS"
exit 0
