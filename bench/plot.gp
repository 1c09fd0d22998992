# bench/plot.gp: charts from the CSV of connect-bench (the "median" rows).
# SPDX-License-Identifier: LGPL-2.1-or-later
#
#     gnuplot -e "csv='bench-results.csv'; outdir='bench-plots'" bench/plot.gp
#
# (make bench-plot runs this.)  Writes into outdir:
#     throughput.png    messages/s against message size, one connection
#     bandwidth.png     payload MB/s against message size, one connection
#     latency.png       round trip p50 and p99 against message size
#     many.png          messages/s into one receiver from N connections
# Error bars: the lowest and highest run; points: the median.

if (!exists("csv")) csv = "bench-results.csv"
if (!exists("outdir")) outdir = "."

set datafile separator comma
set datafile commentschars "#"
set terminal pngcairo size 1000,640 font "sans,10" noenhanced
set logscale xy
set grid xtics ytics mytics lc rgb "#dddddd"
set key outside right top
set xlabel "message size (payload bytes)"
set xtics ("16 B" 16, "256 B" 256, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576)
set xrange [10:1700000]

systems = "connect-tcp connect-tls zmq nng-tcp nng-tls limit-tcp limit-tls"
array label[7] = ["libconnect TCP", "libconnect TLS", "ZeroMQ TCP", \
		  "nng pair1 TCP", "nng pair1 TLS (Mbed TLS)", \
		  "plain TCP (limit)", "bare GnuTLS (limit)"]
array color[7] = ["#c0392b", "#e67e22", "#2471a3", "#27ae60", "#82e0aa", \
		  "#555555", "#aaaaaa"]
array dash[7] = [1, 1, 1, 1, 1, 2, 2]
array width[7] = [3, 3, 2, 2, 2, 2, 2]

# A median row of measure m for system i (and, for "many", n senders).
sel(i, m) = strcol(1) eq "median" && strcol(3) eq m && \
	    strcol(4) eq word(systems, i)
seln(s, m, n) = strcol(1) eq "median" && strcol(3) eq m && \
		strcol(4) eq s && column(6) == n

set output outdir."/throughput.png"
set title "One-way throughput, one connection (receiver side, every message checked)"
set ylabel "messages per second"
plot for [i=1:words(systems)] csv \
	using (sel(i, "tput") ? column(5) : NaN):10:19:20 \
	with yerrorlines lc rgb color[i] dt dash[i] lw width[i] pt 7 ps 0.7 \
	title label[i]

set output outdir."/bandwidth.png"
set title "One-way throughput, one connection: payload bandwidth"
set ylabel "MB/s (10^6 bytes)"
plot for [i=1:words(systems)] csv \
	using (sel(i, "tput") ? column(5) : NaN):11 \
	with linespoints lc rgb color[i] dt dash[i] lw width[i] pt 7 ps 0.7 \
	title label[i]

set output outdir."/latency.png"
set terminal pngcairo size 1000,900 font "sans,10" noenhanced
set multiplot layout 2,1 title "Round trip, one message outstanding (lower is better)"
set title "p50"
set ylabel "microseconds"
plot for [i=1:words(systems)] csv \
	using (sel(i, "lat") ? column(5) : NaN):12:21:22 \
	with yerrorlines lc rgb color[i] dt dash[i] lw width[i] pt 7 ps 0.7 \
	title label[i]
set title "p99"
plot for [i=1:words(systems)] csv \
	using (sel(i, "lat") ? column(5) : NaN):13 \
	with linespoints lc rgb color[i] dt dash[i] lw width[i] pt 7 ps 0.7 \
	title label[i]
unset multiplot

set output outdir."/many.png"
set terminal pngcairo size 1000,640 font "sans,10" noenhanced
set title "N connections into one receiving thread: messages per second, all senders together"
set ylabel "messages per second"
manysys = "connect-tcp connect-inbox zmq"
array manylabel[3] = ["libconnect TCP", "libconnect TCP inbox", "ZeroMQ TCP"]
array manycolor[3] = ["#c0392b", "#e67e22", "#2471a3"]
nlist = "1 16 256"
plot for [j=1:words(nlist)] for [i=1:3] csv \
	using (seln(word(manysys, i), "many", word(nlist, j) + 0) ? \
	       column(5) : NaN):10:19:20 \
	with yerrorlines lc rgb manycolor[i] dt j lw 2 pt (4 + 2 * j) ps 0.8 \
	title sprintf("%s N=%s", manylabel[i], word(nlist, j))
