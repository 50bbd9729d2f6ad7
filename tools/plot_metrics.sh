#!/usr/bin/env bash
# Plots a training run's metrics.csv (columns epoch,train_loss,train_acc,test_loss,test_acc,images_per_sec,seconds)
# as a PNG with two panels: loss and accuracy per epoch, train and test.
# Usage: tools/plot_metrics.sh metrics.csv [out.png]      (needs gnuplot: apt-get install gnuplot-nox)
set -euo pipefail

csv=${1:?usage: plot_metrics.sh metrics.csv [out.png]}
png=${2:-${csv%.csv}.png}
[ -f "$csv" ] || { echo "plot_metrics: no such file: $csv" >&2; exit 1; }
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot_metrics: gnuplot is not installed (sudo apt-get install gnuplot-nox); the numbers stay in $csv" >&2
  exit 2
fi
rows=$(($(wc -l <"$csv") - 1))
[ "$rows" -ge 1 ] || { echo "plot_metrics: $csv has no epochs yet" >&2; exit 1; }

gnuplot <<GNUPLOT
set datafile separator ","
set terminal pngcairo size 1200,480 font ",11" noenhanced
set output "$png"
set key autotitle columnhead
set multiplot layout 1,2 title "$(basename "$(dirname "$(realpath "$csv")")")"
set xlabel "epoch"
set grid
$( [ "$rows" -le 20 ] && echo "set xtics 1" )
$( [ "$rows" -eq 1 ] && echo "set xrange [0.5:1.5]" )
set title "loss"
plot "$csv" using 1:2 with linespoints lw 2 title "train", "" using 1:4 with linespoints lw 2 title "test"
set title "accuracy"
set yrange [0:100]
set format y "%.0f%%"
plot "$csv" using 1:(\$3*100) with linespoints lw 2 title "train", "" using 1:(\$5*100) with linespoints lw 2 title "test"
unset multiplot
GNUPLOT
echo "plot_metrics: wrote $png"
