#!/usr/bin/env bash
# netns-soak.sh: libconnect between two hosts over a lossy, then dead, link.
#
#     tests/soak/netns-soak.sh [short|long]     (as root; or: make soak-short,
#                                                make soak)
#
# Creates two network namespaces joined by a veth pair (10.231.0.1 and
# 10.231.0.2, fd00:231::1 and fd00:231::2: these addresses exist only
# inside the namespaces made here, and nothing else is ever a target),
# makes the link hostile (random loss on both ingresses with nftables
# `numgen random`, a rate limit with the tbf qdisc, and delay with netem
# where the kernel has it), then:
#
#  1. soak: tests/soak/soak runs as server in one namespace and client in
#     the other, each sending SOAK_COUNT datagrams (1 B .. 64 KiB, sequence
#     numbers, CRC-32, every byte checked) to the other, over TCP and over
#     TLS (the certificate is verified for the name "localhost"); nothing
#     may be lost, duplicated, reordered or corrupted, and both closes must
#     report success;
#  2. dead peer: for each of TCP_USER_TIMEOUT (steady traffic), TCP
#     keepalive (an idle connection) and the receive-idle timeout
#     (heartbeats), over TCP and TLS: once traffic flows the link is cut
#     (every packet dropped both ways) and stays cut; both ends must report
#     CONNECT_EDEADPEER (never CONNECT_EEOF, never a hang) within the
#     configured time plus SOAK_MARGIN_MS.  Another error code (the
#     header promises CONNECT_EDEADPEER) is a warning, or a failure with
#     SOAK_STRICT_CODE=1.
#
# Every process runs under `timeout`, every wait is bounded, and the
# namespaces are removed on exit (trap).  Exit status: 0 all passed, 1 a
# failure, 77 skipped (not root, or no network namespaces / veth /
# nftables here); SOAK_REQUIRE=1 turns a skip into a failure.
#
# Environment (defaults: short / long):
#   SOAK_BIN        the soak program (default: next to this script)
#   CERTDIR         test certificates (default: ../certs from here)
#   SOAK_COUNT      datagrams each way per soak run (100000 / 1000000)
#   SOAK_LOSS       random loss in percent on each ingress, 0..100, of
#                   the runs that do not name theirs (2 / 3)
#   SOAK_RATE       tbf rate of each direction (200mbit)
#   SOAK_DELAY      netem delay when netem exists, e.g. "5ms 1ms" (2ms 1ms)
#   SOAK_RUNS       soak runs, TRANSPORT/FAMILY[/LOSS] words ("tcp/4 tls/4
#                   tcp/6" / "tcp/4/5 tls/4/5 tcp/6/1 tls/6/1")
#   SOAK_CUTS       dead-peer cases ("user-timeout keepalive recv-idle")
#   SOAK_CUT_TRANSPORTS  ("tcp tls")
#   SOAK_CUT_REPEAT run the dead-peer cases this many times (1)
#   SOAK_STRICT_CODE 1 (default): a dead peer reported with another code than
#                   CONNECT_EDEADPEER fails (default 1; 0: a warning)
#   SOAK_UT_MS      TCP_USER_TIMEOUT of the user-timeout case (3000)
#   SOAK_KEEPALIVE  idle,interval,count of the keepalive case (2,1,3)
#   SOAK_IDLE_MS    receive-idle timeout of the recv-idle case (2000)
#   SOAK_MARGIN_MS  allowed beyond the configured time (3000)
#   SOAK_RUN_TIMEOUT seconds allowed per soak run (600 / 5400)
#   SOAK_LOGDIR     keep the logs there (default: a temporary directory,
#                   removed unless something failed)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -u

mode=${1:-short}
case $mode in
short)
	: "${SOAK_COUNT:=100000}" "${SOAK_LOSS:=2}"
	: "${SOAK_RUNS=tcp/4 tls/4 tcp/6}" "${SOAK_RUN_TIMEOUT:=600}"
	;;
long)
	: "${SOAK_COUNT:=1000000}" "${SOAK_LOSS:=3}"
	: "${SOAK_RUNS=tcp/4/5 tls/4/5 tcp/6/1 tls/6/1}"
	: "${SOAK_RUN_TIMEOUT:=5400}"
	;;
*)
	echo "usage: $0 [short|long]" >&2
	exit 2
	;;
esac
: "${SOAK_RATE:=200mbit}" "${SOAK_DELAY:=2ms 1ms}"
: "${SOAK_CUTS=user-timeout keepalive recv-idle}"
: "${SOAK_CUT_TRANSPORTS:=tcp tls}" "${SOAK_CUT_REPEAT:=1}"
: "${SOAK_STRICT_CODE:=1}"
: "${SOAK_UT_MS:=3000}" "${SOAK_KEEPALIVE:=2,1,3}" "${SOAK_IDLE_MS:=2000}"
: "${SOAK_MARGIN_MS:=3000}"

here=$(cd "$(dirname "$0")" && pwd)
bin=${SOAK_BIN:-$here/soak}
certs=${CERTDIR:-$here/../certs}

skip() {
	echo "netns-soak: SKIP: $*"
	if [ "${SOAK_REQUIRE:-0}" = 1 ]; then
		echo "netns-soak: SOAK_REQUIRE=1: a skip is a failure"
		exit 1
	fi
	exit 77
}

if [ "$(id -u)" != 0 ]; then
	skip "needs root to create network namespaces (run as root, e.g." \
		"sudo make soak-short)"
fi
for cmd in ip tc nft timeout awk; do
	command -v "$cmd" >/dev/null 2>&1 ||
		skip "'$cmd' not found (Debian packages: iproute2 nftables" \
			"coreutils gawk|mawk)"
done
if [ ! -x "$bin" ]; then
	echo "netns-soak: FAIL: no soak program at $bin (make" \
		"tests/soak/soak, or set SOAK_BIN)"
	exit 1
fi
certs=$(cd "$certs" 2>/dev/null && pwd) || {
	echo "netns-soak: FAIL: no certificate directory (set CERTDIR)"
	exit 1
}

# Unique names, so that runs side by side never meet.
nsa=lcsoak-$$-a
nsb=lcsoak-$$-b
deva=lcs0
devb=lcs1
ip4a=10.231.0.1
ip4b=10.231.0.2
ip6a=fd00:231::1
ip6b=fd00:231::2

if [ -n "${SOAK_LOGDIR:-}" ]; then
	logs=$SOAK_LOGDIR
	mkdir -p "$logs" || exit 1
	keep_logs=1
else
	logs=$(mktemp -d "${TMPDIR:-/tmp}/netns-soak.XXXXXX") || exit 1
	keep_logs=0
fi

pids=""
failed=0
passed=0
warnings=0
results=()

# shellcheck disable=SC2317 # called through the trap
cleanup() {
	local p
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $pids; do
		local n=0
		while kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	pids=""
	timeout 20 ip netns del "$nsa" 2>/dev/null
	timeout 20 ip netns del "$nsb" 2>/dev/null
	if [ $keep_logs = 0 ] && [ $failed = 0 ]; then
		rm -rf "$logs"
	else
		echo "netns-soak: logs kept in $logs"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A command with a bound (network set-up commands are quick).
t() { timeout 20 "$@"; }
ina() { t ip netns exec "$nsa" "$@"; }
inb() { t ip netns exec "$nsb" "$@"; }

now_ms() { date +%s%3N; }

fail() {
	echo "netns-soak: FAIL: $*"
	failed=$((failed + 1))
	results+=("FAIL  $*")
}

pass() {
	echo "netns-soak: PASS: $*"
	passed=$((passed + 1))
	results+=("PASS  $*")
}

# ---------------------------------------------------------------- the link

t ip netns add "$nsa" 2>"$logs/netns.err" ||
	skip "cannot create a network namespace: $(cat "$logs/netns.err")"
t ip netns add "$nsb" 2>"$logs/netns.err" ||
	skip "cannot create a network namespace: $(cat "$logs/netns.err")"
t ip -n "$nsa" link add "$deva" type veth peer name "$devb" netns "$nsb" \
	2>"$logs/netns.err" ||
	skip "cannot create a veth pair: $(cat "$logs/netns.err")"
for ns in "$nsa" "$nsb"; do
	t ip -n "$ns" link set lo up || skip "cannot configure $ns"
done
if ! { t ip -n "$nsa" addr add $ip4a/24 dev $deva &&
	t ip -n "$nsb" addr add $ip4b/24 dev $devb &&
	t ip -n "$nsa" addr add $ip6a/64 dev $deva nodad &&
	t ip -n "$nsb" addr add $ip6b/64 dev $devb nodad &&
	t ip -n "$nsa" link set $deva gso_max_segs 1 &&
	t ip -n "$nsb" link set $devb gso_max_segs 1 &&
	t ip -n "$nsa" link set $deva up &&
	t ip -n "$nsb" link set $devb up; }; then
	skip "cannot configure the veth pair"
fi

# (gso_max_segs 1: TCP hands the veth packets of one MTU, so that the
# loss below drops segments as a real link would, not 64 KiB aggregates.)

# Shaping on each egress: netem delay (where the kernel has it) and a tbf
# rate limit whose short queue also drops bursts.
netem=no
shape() { # NS DEV
	local ns=$1 dev=$2 parent="root"
	# shellcheck disable=SC2086 # SOAK_DELAY is "TIME [JITTER]"
	if t ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: \
		netem delay $SOAK_DELAY 2>/dev/null; then
		netem=yes
		parent="parent 1:1"
	fi
	# shellcheck disable=SC2086 # parent is two words
	t ip netns exec "$ns" tc qdisc add dev "$dev" $parent handle 10: \
		tbf rate "$SOAK_RATE" burst 64kb latency 20ms
}
shape "$nsa" $deva || skip "tc: no tbf qdisc"
shape "$nsb" $devb || skip "tc: no tbf qdisc"

# The loss: an nftables ingress chain on each veth.  set_link NS DEV
# loss PERCENT | cut | clean.
set_link() {
	local ns=$1 dev=$2 what=$3 arg=${4:-0} rules
	case $what in
	loss)
		rules="meta protocol { ip, ip6 } counter name seen
		       meta protocol { ip, ip6 } numgen random mod 100 < $arg \
				counter name lost drop" ;;
	cut) rules="counter name seen
		   counter name lost drop" ;;
	clean) rules="meta protocol { ip, ip6 } counter name seen" ;;
	esac
	t ip netns exec "$ns" nft -f - <<-EOF
	table netdev soak {
		counter seen { }
		counter lost { }
		chain ingress {
			type filter hook ingress device "$dev" priority 0;
			policy accept;
		}
	}
	flush chain netdev soak ingress
	table netdev soak {
		chain ingress {
			$rules
		}
	}
	EOF
}
set_both() {
	set_link "$nsa" $deva "$@" && set_link "$nsb" $devb "$@"
}
set_both clean 2>"$logs/nft.err" ||
	skip "nftables: no netdev ingress chain or numgen here:" \
		"$(cat "$logs/nft.err")"

# nft counter value: counter NS NAME -> packets
counter() {
	t ip netns exec "$1" nft list counter netdev soak "$2" 2>/dev/null |
		awk '/packets/ { for (i = 1; i < NF; i++)
			if ($i == "packets") print $(i + 1) }'
}
# /proc/net/snmp Tcp field of a namespace: snmp NS RetransSegs
snmp() {
	t ip netns exec "$1" cat /proc/net/snmp |
		awk -v f="$2" '$1 == "Tcp:" { if (!n) { for (i = 2; i <= NF;
			i++) if ($i == f) c = i; n = 1 } else print $c }'
}
field() { # LINE KEY -> value of KEY=value
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

echo "netns-soak: mode $mode, namespaces $nsa ($ip4a, $ip6a) and $nsb" \
	"($ip4b, $ip6b)"
echo "netns-soak: link: random loss on each ingress (nftables numgen)," \
	"tbf $SOAK_RATE each way, netem delay:" \
	"$([ $netem = yes ] && echo "$SOAK_DELAY" || echo "absent")"

port=7100
url_of() { # TRANSPORT FAMILY PORT
	local scheme=tcp host=$ip4a
	[ "$1" = tls ] && scheme=tls+tcp
	[ "$2" = 6 ] && host="[$ip6a]"
	echo "$scheme://$host:$3"
}

# ----------------------------------------------------------------- 1. soak

run_soak() { # TRANSPORT FAMILY LOSS
	local tr=$1 fam=$2 loss=$3 url name seen0 lost0 seen1 lost1 rt0 rt1 \
		out0 out1 t0 t1 rca rcb la lb
	port=$((port + 1))
	url=$(url_of "$tr" "$fam" $port)
	name="soak $tr/IPv$fam ${loss}% loss"
	set_both loss "$loss" || { fail "$name: nft"; return; }
	seen0=$(( $(counter "$nsa" seen) + $(counter "$nsb" seen) ))
	lost0=$(( $(counter "$nsa" lost) + $(counter "$nsb" lost) ))
	rt0=$(( $(snmp "$nsa" RetransSegs) + $(snmp "$nsb" RetransSegs) ))
	out0=$(( $(snmp "$nsa" OutSegs) + $(snmp "$nsb" OutSegs) ))
	la=$logs/soak-$tr$fam-$loss-server.log
	lb=$logs/soak-$tr$fam-$loss-client.log
	echo "netns-soak: $name: $SOAK_COUNT datagrams each way ($url) ..."
	t0=$(now_ms)
	local common=(--url "$url" --count "$SOAK_COUNT" --certs "$certs"
		--deadline-s $((SOAK_RUN_TIMEOUT - 15)) --stall-s 60
		--progress-s 60 --label "$tr/$fam")
	ip netns exec "$nsa" timeout -k 5 "$SOAK_RUN_TIMEOUT" \
		"$bin" server "${common[@]}" >"$la" 2>&1 &
	local pa=$!
	pids="$pids $pa"
	ip netns exec "$nsb" timeout -k 5 "$SOAK_RUN_TIMEOUT" \
		"$bin" client "${common[@]}" >"$lb" 2>&1 &
	local pb=$!
	pids="$pids $pb"
	wait $pa
	rca=$?
	wait $pb
	rcb=$?
	pids=""
	t1=$(now_ms)
	seen1=$(( $(counter "$nsa" seen) + $(counter "$nsb" seen) ))
	lost1=$(( $(counter "$nsa" lost) + $(counter "$nsb" lost) ))
	rt1=$(( $(snmp "$nsa" RetransSegs) + $(snmp "$nsb" RetransSegs) ))
	out1=$(( $(snmp "$nsa" OutSegs) + $(snmp "$nsb" OutSegs) ))
	set_both clean
	local sa sb
	sa=$(grep '^soak: ' "$la" | tail -n 1)
	sb=$(grep '^soak: ' "$lb" | tail -n 1)
	local pk=$((seen1 - seen0)) dr=$((lost1 - lost0))
	local stats
	stats=$(awk -v p=$pk -v d=$dr -v r=$((rt1 - rt0)) \
		-v o=$((out1 - out0)) -v ms=$((t1 - t0)) 'BEGIN {
		printf "packets %d, dropped %d (%.2f%%), TCP retransmits %d " \
			"(%.2f%% of segments sent), %.1f s",
			p, d, p ? 100 * d / p : 0, r, o ? 100 * r / o : 0,
			ms / 1000 }')
	echo "  server: ${sa:-no summary}"
	echo "  client: ${sb:-no summary}"
	echo "  link:   $stats"
	if [ $rca = 0 ] && [ $rcb = 0 ] &&
		[ "$(field "$sa" result)" = PASS ] &&
		[ "$(field "$sb" result)" = PASS ]; then
		pass "$name: $SOAK_COUNT datagrams each way," \
			"server recv $(field "$sa" recv_MBps) MB/s," \
			"client recv $(field "$sb" recv_MBps) MB/s; $stats"
	else
		fail "$name: server exit $rca, client exit $rcb" \
			"(124: killed by timeout); see below"
		echo "---- $la"; tail -n 40 "$la"
		echo "---- $lb"; tail -n 40 "$lb"
	fi
}

# ------------------------------------------------------------ 2. dead peer

# Wait until FILE has a line starting with WORD, at most SECS seconds.
wait_line() {
	local file=$1 word=$2 secs=$3 i=0
	while [ $i -lt $((secs * 10)) ]; do
		grep -q "^$word" "$file" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

run_cut() { # CASE TRANSPORT
	local case=$1 tr=$2 url name opts bound_ms la lb
	port=$((port + 1))
	url=$(url_of "$tr" 4 $port)
	name="cut $case/$tr"
	case $case in
	user-timeout)
		# Steady traffic both ways: after the cut everything sent
		# stays unacknowledged.
		opts=(--user-timeout-ms "$SOAK_UT_MS" --count 0 --pace-ms 2)
		bound_ms=$SOAK_UT_MS ;;
	keepalive)
		# A few datagrams, then an idle connection: only keepalive
		# probes can notice.
		opts=(--keepalive "$SOAK_KEEPALIVE" --count 20 --pace-ms 5)
		local ki kn kc
		IFS=, read -r ki kn kc <<<"$SOAK_KEEPALIVE"
		bound_ms=$(( (ki + kn * kc) * 1000 )) ;;
	recv-idle)
		# Heartbeats every 100 ms; the default (long) retransmission
		# timeout would take many minutes.
		opts=(--recv-idle-ms "$SOAK_IDLE_MS" --count 0 --pace-ms 100)
		bound_ms=$SOAK_IDLE_MS ;;
	*) fail "$name: unknown case"; return ;;
	esac
	local limit=$(( bound_ms / 1000 + 40 ))
	set_both clean || { fail "$name: nft"; return; }
	la=$logs/cut-$case-$tr-$rep-server.log
	lb=$logs/cut-$case-$tr-$rep-client.log
	local common=(--url "$url" --certs "$certs" --expect-error
		--accept any --deadline-s "$limit"
		--label "$case" "${opts[@]}")
	ip netns exec "$nsa" timeout -k 5 $((limit + 20)) \
		"$bin" server "${common[@]}" >"$la" 2>&1 &
	local pa=$!
	pids="$pids $pa"
	ip netns exec "$nsb" timeout -k 5 $((limit + 20)) \
		"$bin" client "${common[@]}" >"$lb" 2>&1 &
	local pb=$!
	pids="$pids $pb"
	if ! wait_line "$la" soak-ready 30 || ! wait_line "$lb" soak-ready 30
	then
		fail "$name: the connection did not come up"
		kill "$pa" "$pb" 2>/dev/null
		wait $pa; wait $pb
		pids=""
		echo "---- $la"; tail -n 20 "$la"
		echo "---- $lb"; tail -n 20 "$lb"
		return
	fi
	# Let the traffic settle (keepalive: the connection goes idle).
	sleep 1
	local t_cut
	t_cut=$(now_ms)
	set_both cut
	echo "netns-soak: $name: link cut at $t_cut, bound ${bound_ms} ms" \
		"+ ${SOAK_MARGIN_MS} ms"
	local rca rcb
	wait $pa
	rca=$?
	wait $pb
	rcb=$?
	pids=""
	set_both clean
	local sa sb da db ok=1 why="" warn=""
	sa=$(grep '^soak-cut: ' "$la" | tail -n 1)
	sb=$(grep '^soak-cut: ' "$lb" | tail -n 1)
	echo "  server: ${sa:-no summary}"
	echo "  client: ${sb:-no summary}"
	for side in server client; do
		local line rc at err d
		if [ $side = server ]; then line=$sa rc=$rca
		else line=$sb rc=$rcb; fi
		err=$(field "$line" recv_error)
		at=$(field "$line" recv_error_at_ms)
		if [ -z "$line" ] || [ "${at:-0}" = 0 ]; then
			ok=0 why="$why $side: no error reported (exit $rc);"
			continue
		fi
		d=$((at - t_cut))
		[ $side = server ] && da=$d || db=$d
		case $err in
		CONNECT_EDEADPEER) ;;
		CONNECT_EEOF | CONNECT_ECLOSED | none)
			ok=0 why="$why $side: $err on a cut link;" ;;
		*)
			# An error, but not the one the header promises
			# for these timeouts.
			if [ "$SOAK_STRICT_CODE" = 1 ]; then
				ok=0 why="$why $side: $err, not CONNECT_EDEADPEER;"
			else
				warn="$warn $side: $err (reason: $(printf '%s\n' \
					"$line" | sed -n 's/.*reason="\([^"]*\)".*/\1/p'))"
			fi ;;
		esac
		if [ $d -lt 0 ]; then
			ok=0 why="$why $side: failed ${d#-} ms BEFORE the cut;"
		elif [ $d -gt $((bound_ms + SOAK_MARGIN_MS)) ]; then
			ok=0 why="$why $side: noticed after $d ms;"
		fi
		if [ $rc != 0 ] || [ "$(field "$line" result)" != PASS ]; then
			ok=0 why="$why $side: exit $rc, $(field "$line" result);"
		fi
	done
	if [ $ok = 1 ] && [ -n "$warn" ]; then
		pass "$name: both ends failed, server after $da ms, client" \
			"after $db ms (bound $bound_ms ms); WARNING: not" \
			"CONNECT_EDEADPEER:$warn"
		warnings=$((warnings + 1))
	elif [ $ok = 1 ]; then
		pass "$name: both ends CONNECT_EDEADPEER, server after" \
			"$da ms, client after $db ms (bound $bound_ms ms)"
	else
		fail "$name:$why"
		echo "---- $la"; tail -n 20 "$la"
		echo "---- $lb"; tail -n 20 "$lb"
	fi
}

t_all=$SECONDS
for run in $SOAK_RUNS; do
	IFS=/ read -r tr fam loss <<<"$run"
	run_soak "$tr" "${fam:-4}" "${loss:-$SOAK_LOSS}"
done
for ((rep = 1; rep <= SOAK_CUT_REPEAT; rep++)); do
	for case in $SOAK_CUTS; do
		for tr in $SOAK_CUT_TRANSPORTS; do
			run_cut "$case" "$tr"
		done
	done
done

echo
echo "netns-soak: summary ($mode mode, $((SECONDS - t_all)) s)"
printf '  %s\n' "${results[@]}"
if [ $warnings -gt 0 ]; then
	echo "netns-soak: $warnings dead-peer case(s) reported an error" \
		"other than CONNECT_EDEADPEER (SOAK_STRICT_CODE=1 fails them)"
fi
echo "netns-soak: $passed passed, $failed failed"
[ $failed = 0 ]
