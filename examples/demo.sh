#!/bin/sh
# demo.sh: run libconnect's example programs against each other.
#
#     examples/demo.sh            (after ./configure && make; or: make demo)
#
# Starts tcp-echo-server on 127.0.0.1 port 0, runs tcp-client and
# tcp-client-blaster against it, does the same over [::1] when IPv6
# loopback works, then runs tls-echo-server / tls-client (server
# verification, a wrong name refused, mutual TLS, a client without a
# certificate refused), then mt-echo-server (a pool of workers over one
# inbox) with several clients at once, over TCP and TLS, and sctp- and
# dtls-sctp-echo-server / -client when the library has SCTP.  Only
# loopback addresses are used.  Every wait is
# bounded, every server is stopped on exit, and each step prints one
# PASS/FAIL/SKIP line.  Exits 0 when no step failed.
#
# Where things are (environment overrides):
#   EXAMPLES_DIR (or EXAMPLESDIR)  the built examples; default: the
#                                  directory of this script (in-tree build)
#   CERTS_DIR (or CERTDIR)         test certificates; default:
#                                  <this script's dir>/../tests/certs
#   DEMO_TIMEOUT                   seconds allowed per client (default 30)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -u

here=$(cd "$(dirname "$0")" && pwd)
ex=${EXAMPLES_DIR:-${EXAMPLESDIR:-$here}}
certs=${CERTS_DIR:-${CERTDIR:-$here/../tests/certs}}
# Tidy the path for the messages when it exists.
if [ -d "$certs" ]; then
	certs=$(cd "$certs" && pwd)
fi
tmo=${DEMO_TIMEOUT:-30}
# A server must never outlive the demo by long, even if this shell is
# killed without running its trap.
server_tmo=300

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libconnect-demo.XXXXXX") || exit 1
pids=
failed=0
passed=0
skipped=0
summary=

# shellcheck disable=SC2317 # called through the trap
cleanup() {
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	# Give them a moment to close cleanly, then insist.
	n=0
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null && [ "$n" -lt 30 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	pids=
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

say() {
	printf '%s\n' "$*"
}

record() { # record STATUS NAME
	line=$(printf '%-4s  %s' "$1" "$2")
	say "$line"
	summary="$summary$line
"
	case $1 in
	PASS) passed=$((passed + 1)) ;;
	FAIL) failed=$((failed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	esac
}

# Show a file indented, for failures.
show() { # show LABEL FILE
	if [ -s "$2" ]; then
		say "    --- $1"
		sed 's/^/    | /' "$2"
	fi
}

# step NAME CMD...: run a client with a timeout; PASS when it exits 0.
step() {
	name=$1
	shift
	say "==> $name"
	say "    \$ $*"
	timeout "$tmo" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	sed 's/^/    /' "$tmp/out"
	if [ $rc -eq 0 ]; then
		record PASS "$name"
		return 0
	fi
	[ $rc -eq 124 ] && say "    (timed out after $tmo s)"
	say "    exit status $rc"
	show stderr "$tmp/err"
	record FAIL "$name"
	return 1
}

# step_refused NAME PATTERN CMD...: a client that must FAIL, with PATTERN
# (an extended regular expression) in its error output.
step_refused() {
	name=$1
	pattern=$2
	shift 2
	say "==> $name"
	say "    \$ $*"
	timeout "$tmo" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	sed 's/^/    /' "$tmp/out" "$tmp/err"
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -lt 128 ] &&
	    grep -Eq "$pattern" "$tmp/err"; then
		say "    refused as expected"
		record PASS "$name"
		return 0
	fi
	if [ $rc -eq 0 ]; then
		say "    it succeeded, but must be refused"
	else
		say "    exit status $rc, expected an error matching /$pattern/"
	fi
	record FAIL "$name"
	return 1
}

# start_server LABEL CMD...: start a server in the background, wait for its
# "listening on ADDR" line, set $server_pid and $port.
start_server() {
	label=$1
	shift
	say "==> start $label"
	say "    \$ $* &"
	timeout "$server_tmo" "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" &
	server_pid=$!
	pids="$pids $server_pid"
	port=
	n=0
	while [ $n -lt 100 ]; do
		line=$(sed -n '1{/^listening on /p;}' "$tmp/$label.out")
		if [ -n "$line" ]; then
			port=${line##*:}
			break
		fi
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
		n=$((n + 1))
	done
	case $port in
	'' | *[!0-9]*)
		say "    the server did not report a listening address"
		show stdout "$tmp/$label.out"
		show stderr "$tmp/$label.err"
		record FAIL "start $label"
		stop_server "$label" quiet
		port=
		return 1
		;;
	esac
	say "    $line"
	record PASS "start $label"
	return 0
}

# wait_server PID SECONDS: wait for PID to exit; set $server_rc (124 if it
# did not exit in time).
wait_server() {
	n=0
	while kill -0 "$1" 2>/dev/null; do
		if [ $n -ge $(($2 * 10)) ]; then
			server_rc=124
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	wait "$1"
	server_rc=$?
	return 0
}

forget_pid() {
	np=
	for p in $pids; do
		[ "$p" = "$1" ] || np="$np $p"
	done
	pids=$np
}

# stop_server LABEL [quiet|wait]: stop the current server (SIGTERM, or with
# "wait" let it exit by itself after --exit-after) and check it exits 0.
stop_server() {
	label=$1
	how=${2:-term}
	[ "$how" = wait ] || kill -TERM "$server_pid" 2>/dev/null
	wait_server "$server_pid" 10
	if [ $server_rc -eq 124 ]; then
		kill -KILL "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	forget_pid "$server_pid"
	[ "$how" = quiet ] && return 0
	if [ "$how" = wait ]; then
		name="$label exits by itself after its clients"
	else
		name="$label shuts down cleanly on SIGTERM"
	fi
	say "==> $name"
	sed 's/^/    /' "$tmp/$label.out"
	if [ $server_rc -eq 0 ]; then
		record PASS "$name"
	else
		[ $server_rc -eq 124 ] &&
			say "    still running after 10 s: killed"
		say "    exit status $server_rc"
		show stderr "$tmp/$label.err"
		record FAIL "$name"
	fi
}

# ------------------------------------------------------------------------

for prog in tcp-echo-server tcp-client tcp-client-blaster tls-echo-server \
    tls-client mt-echo-server; do
	if [ ! -x "$ex/$prog" ]; then
		say "demo: $ex/$prog not found: build first (make), or set" \
		    "EXAMPLES_DIR" >&2
		exit 2
	fi
done
if ! command -v timeout >/dev/null 2>&1; then
	say "demo: the timeout program (coreutils) is required" >&2
	exit 2
fi
say "examples: $ex"
say "certificates: $certs"

# --- TCP over IPv4: the server stays up for both clients, then SIGTERM.
if start_server tcp4 "$ex/tcp-echo-server" 127.0.0.1:0; then
	step "tcp-client over 127.0.0.1" \
	    "$ex/tcp-client" "127.0.0.1:$port"
	step "tcp-client-blaster over 127.0.0.1 (10,000 datagrams)" \
	    "$ex/tcp-client-blaster" "127.0.0.1:$port"
	stop_server tcp4
fi

# --- TCP over IPv6 loopback, if the machine has it: this time the server
# exits by itself once both clients have come and gone.
have_v6=no
if [ -r /proc/net/if_inet6 ] &&
    grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6; then
	have_v6=yes
fi
if [ $have_v6 = yes ]; then
	if start_server tcp6 "$ex/tcp-echo-server" "[::1]:0" \
	    --exit-after 2; then
		step "tcp-client over [::1]" "$ex/tcp-client" "[::1]:$port"
		step "tcp-client-blaster over [::1] (10,000 datagrams)" \
		    "$ex/tcp-client-blaster" "[::1]:$port"
		stop_server tcp6 wait
	fi
else
	record SKIP "TCP over [::1] (no IPv6 loopback on this machine)"
fi

# --- TLS: the client verifies the server's certificate.
missing=
for f in ca.pem server.pem server-key.pem client.pem client-key.pem; do
	[ -r "$certs/$f" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then
	say "demo: missing in $certs:$missing" >&2
	record FAIL "TLS certificates present"
elif start_server tls "$ex/tls-echo-server" 127.0.0.1:0 \
    "$certs/server.pem" "$certs/server-key.pem"; then
	step "tls-client over 127.0.0.1, server verified as localhost" \
	    "$ex/tls-client" "127.0.0.1:$port" localhost "$certs/ca.pem"
	step_refused "tls-client refuses a server name the certificate lacks" \
	    'ETLSNAMEMISMATCH' \
	    "$ex/tls-client" "127.0.0.1:$port" wrong.example "$certs/ca.pem"
	stop_server tls

	# --- Mutual TLS: the server requires a client certificate.
	if start_server mtls "$ex/tls-echo-server" 127.0.0.1:0 \
	    "$certs/server.pem" "$certs/server-key.pem" "$certs/ca.pem"; then
		step "tls-client with a client certificate (mutual TLS)" \
		    "$ex/tls-client" "127.0.0.1:$port" localhost \
		    "$certs/ca.pem" "$certs/client.pem" "$certs/client-key.pem"
		step_refused "mutual TLS refuses a client without a certificate" \
		    'CONNECT_E(TLS[A-Z]*|EOF|CONNRESET|IO)' \
		    "$ex/tls-client" "127.0.0.1:$port" localhost "$certs/ca.pem"
		stop_server mtls
	fi
fi

# --- The worker-pool server: four clients at once over TCP, then TLS; it
# exits by itself once they have come and gone.
if start_server mt "$ex/mt-echo-server" 127.0.0.1:0 --workers 4 \
    --exit-after 4; then
	bl1="$tmp/mt-blaster1.out"
	bl2="$tmp/mt-blaster2.out"
	timeout "$tmo" "$ex/tcp-client-blaster" "127.0.0.1:$port" \
	    50000 >"$bl1" 2>&1 &
	b1=$!
	timeout "$tmo" "$ex/tcp-client-blaster" "127.0.0.1:$port" \
	    50000 >"$bl2" 2>&1 &
	b2=$!
	step "tcp-client to mt-echo-server while two blasters run" \
	    "$ex/tcp-client" "127.0.0.1:$port"
	if wait $b1 && wait $b2; then
		say "    $(tail -n 1 "$bl1")"
		say "    $(tail -n 1 "$bl2")"
		record PASS "two tcp-client-blasters at once (50,000 datagrams each)"
	else
		show output "$bl1"
		show output "$bl2"
		record FAIL "two tcp-client-blasters at once (50,000 datagrams each)"
	fi
	step "tcp-client-blaster to mt-echo-server (10,000 datagrams)" \
	    "$ex/tcp-client-blaster" "127.0.0.1:$port"
	stop_server mt wait
fi
if [ -z "$missing" ] &&
    start_server mt-tls "$ex/mt-echo-server" 127.0.0.1:0 --workers 4 \
    --tls "$certs/server.pem" "$certs/server-key.pem"; then
	step "tls-client to mt-echo-server --tls, server verified" \
	    "$ex/tls-client" "127.0.0.1:$port" localhost "$certs/ca.pem"
	stop_server mt-tls
fi

# --- SCTP (when the library was built with usrsctp): SCTP over UDP on
# the userspace stack.  The server's stack takes a UDP port that nothing
# holds (not the default 9899, which another program may have); the
# client takes any free one and is told the server's.
udp_port_free() { # udp_port_free PORT: no UDP socket on it (IPv4, IPv6)
	hex=$(printf '%04X' "$1")
	! cat /proc/net/udp /proc/net/udp6 2>/dev/null |
		awk '{ print $2 }' | grep -qi ":$hex\$"
}
if [ -x "$ex/sctp-echo-server" ] && [ -x "$ex/sctp-client" ]; then
	udp=$((20000 + $$ % 20000))
	n=0
	while ! udp_port_free "$udp" && [ $n -lt 200 ]; do
		udp=$((udp + 1))
		n=$((n + 1))
	done
	if start_server sctp "$ex/sctp-echo-server" 127.0.0.1:0 \
	    --udp-port "$udp" --exit-after 2; then
		step "sctp-client over 127.0.0.1 (SCTP over UDP port $udp)" \
		    "$ex/sctp-client" "127.0.0.1:$port" --peer-udp-port "$udp"
		step_refused "sctp-client to an SCTP port nobody listens on" \
		    'ECONNREFUSED' \
		    "$ex/sctp-client" "127.0.0.1:1" --peer-udp-port "$udp"
		step "sctp-client again: the server is still there" \
		    "$ex/sctp-client" "127.0.0.1:$port" --peer-udp-port "$udp"
		stop_server sctp wait
	fi
	# --- DTLS over SCTP: the TLS checks again, over SCTP.
	udp=$((udp + 1))
	while ! udp_port_free "$udp" && [ $n -lt 400 ]; do
		udp=$((udp + 1))
		n=$((n + 1))
	done
	if [ -n "$missing" ]; then
		record SKIP "DTLS over SCTP (certificates missing)"
	elif start_server dtls "$ex/dtls-sctp-echo-server" 127.0.0.1:0 \
	    "$certs/server.pem" "$certs/server-key.pem" "$certs/ca.pem" \
	    --udp-port "$udp"; then
		step "dtls-sctp-client with a client certificate" \
		    "$ex/dtls-sctp-client" "127.0.0.1:$port" localhost \
		    "$certs/ca.pem" "$certs/client.pem" \
		    "$certs/client-key.pem" --peer-udp-port "$udp"
		step_refused "dtls-sctp-client refuses a wrong server name" \
		    'ETLSNAMEMISMATCH' \
		    "$ex/dtls-sctp-client" "127.0.0.1:$port" wrong.example \
		    "$certs/ca.pem" "$certs/client.pem" \
		    "$certs/client-key.pem" --peer-udp-port "$udp"
		step_refused "DTLS refuses a client without a certificate" \
		    'CONNECT_E(TLS[A-Z]*|EOF|CONNRESET|IO)' \
		    "$ex/dtls-sctp-client" "127.0.0.1:$port" localhost \
		    "$certs/ca.pem" --peer-udp-port "$udp"
		stop_server dtls
	fi
else
	record SKIP "SCTP (libconnect built without usrsctp)"
fi

# ------------------------------------------------------------------------

say ""
say "==================== summary ===================="
printf '%s' "$summary"
say "================================================="
if [ $failed -eq 0 ]; then
	say "demo: PASS ($passed passed, $skipped skipped)"
	exit 0
fi
say "demo: FAIL ($failed failed, $passed passed, $skipped skipped)"
exit 1
