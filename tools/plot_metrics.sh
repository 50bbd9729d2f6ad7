#!/usr/bin/env bash
# Plots a training run's curves as a PNG with three panels, against the update count: training loss and
# accuracy per metrics.csv row (update,epoch,train_loss,train_acc,lr,images_per_sec,seconds; a row every few
# updates), test loss and accuracy per evaluations.csv row (update,epoch,train_loss,train_acc,test_loss,
# test_acc,images_per_sec,seconds), and the learning rate. So a run of one short epoch still draws curves.
# Usage: tools/plot_metrics.sh RUN_DIR [out.png]      (needs gnuplot: apt-get install gnuplot-nox)
set -euo pipefail

dir=${1:?usage: plot_metrics.sh RUN_DIR [out.png]}
png=${2:-$dir/curves.png}
metrics=$dir/metrics.csv
evaluations=$dir/evaluations.csv
[ -f "$metrics" ] || { echo "plot_metrics: no $metrics" >&2; exit 1; }
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot_metrics: gnuplot is not installed (sudo apt-get install gnuplot-nox); the numbers stay in $dir" >&2
  exit 2
fi
rows=$(($(wc -l <"$metrics") - 1))
[ "$rows" -ge 1 ] || { echo "plot_metrics: $metrics has no rows yet" >&2; exit 1; }
evaluated=0
[ -f "$evaluations" ] && evaluated=$(($(wc -l <"$evaluations") - 1))
test_plot() {  # the evaluations' column $1 (scaled by $2), when there are any
  [ "$evaluated" -ge 1 ] && echo ", \"$evaluations\" using 1:(\$$1*$2) with linespoints pt 7 lw 2 title \"test\""
  true
}

gnuplot <<GNUPLOT
set datafile separator ","
set terminal pngcairo size 1500,450 font ",11" noenhanced
set output "$png"
set key autotitle columnhead
set multiplot layout 1,3 title "$(basename "$(realpath "$dir")")"
set xlabel "update"
set grid
set title "loss"
plot "$metrics" using 1:3 with lines lw 2 title "train"$(test_plot 5 1)
set title "accuracy"
set key bottom right
set format y "%.0f%%"
plot "$metrics" using 1:(\$4*100) with lines lw 2 title "train"$(test_plot 6 100)
set title "learning rate"
set key top right
set format y "%g"
plot "$metrics" using 1:5 with lines lw 2 title "lr"
unset multiplot
GNUPLOT
echo "plot_metrics: wrote $png"
