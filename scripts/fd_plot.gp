# fd_plot.gp: time against P (log-log, with fitted lines) and speedup against threads from fd_scaling.
# usage: gnuplot -e "csv='out/fd_scaling.csv'; fits='out/fd_fits.gp'; prefix='out/fd'" scripts/fd_plot.gp
#   optional: speed_h=HIDDEN (width for the speedup plot; default the widest in the CSV),
#             time_threads=T (thread count for the time plot; default 1)
# Writes PREFIX_time.png and PREFIX_speedup.png (SVG when pngcairo is missing).
# CSV columns: 1 method, 2 threads, 3 hidden, 4 params, 5 seconds, 6 forward_passes,
#              7 rel_error, 8 estimated, 9 ratio_vs_backprop, 10 passes_timed, 11 coords, 12 kinks.

if (!exists("csv")) csv = "out/fd_scaling.csv"
if (!exists("fits")) fits = "out/fd_fits.gp"
if (!exists("prefix")) prefix = "out/fd"
if (!exists("time_threads")) time_threads = 1
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) { ext = "png"; term = "pngcairo" } else { ext = "svg"; term = "svg" }
load fits

if (!exists("speed_h")) speed_h = int(system(sprintf( \
    "awk -F, 'NR > 1 && $3 > m { m = $3 } END { print m + 0 }' '%s'", csv)))
maxt = int(system(sprintf("awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' '%s'", csv)))
if (maxt < 2) maxt = 2

# Rows of one method and thread count, measured (est = 0) or extrapolated (est = 1).
rows(m, t, est) = sprintf("< awk -F, '$1 == \"%s\" && $2 == %d && $8 == %d' '%s'", m, t, est, csv)
# Speedup of one method at hidden width h: seconds at one thread over seconds at each count.
speedup(m, h) = sprintf("< awk -F, '$1 == \"%s\" && $3 == %d { t[$2] = $5 } END { for (k in t) if (1 in t) print k, t[1] / t[k] }' '%s' | sort -n", m, h, csv)
val(name) = exists(name) ? value(name) : NaN

set datafile separator ","
set grid
set key top left box opaque
set pointsize 1.3

# ---- time against P ---------------------------------------------------------------------
eval sprintf("set terminal %s size 1000,700 font ',11'", term)
set output sprintf("%s_time.%s", prefix, ext)
set title sprintf("One full gradient of 784-H-10 on a Fashion-MNIST batch, %d thread(s)\n" . \
    "filled: measured in full; open: extrapolated from sampled coordinates; lines: least-squares fits", time_threads)
set xlabel "parameters P"
set ylabel "seconds"
set logscale xy
set samples 400
set format x "10^{%L}"
set format y "10^{%L}"
# Fitted lines: solid over every point, dashed over the wide nets only (the asymptotic regime).
fitline(m, sfx, x) = x < val(sprintf("p_%s_%d%s", m, time_threads, sfx)) ? NaN : \
    exp(val(sprintf("a_%s_%d%s", m, time_threads, sfx))) * x ** val(sprintf("b_%s_%d%s", m, time_threads, sfx))
expo(m, sfx) = val(sprintf("b_%s_%d%s", m, time_threads, sfx))
plot rows("backprop", time_threads, 0) using 4:5 with points pointtype 7 linecolor 1 title "backprop (1 forward + 1 backward)", \
     fitline("backprop", "", x) with lines linecolor 1 title sprintf("fit, all points: P^{%.2f}", expo("backprop", "")), \
     fitline("backprop", "_large", x) with lines dashtype 2 linecolor 1 title sprintf("fit, P ≥ %.0f: P^{%.2f}", val(sprintf("p_backprop_%d_large", time_threads)), expo("backprop", "_large")), \
     rows("forward", time_threads, 0) using 4:5 with points pointtype 5 linecolor 2 title "forward differences (P+1 passes)", \
     rows("forward", time_threads, 1) using 4:5 with points pointtype 4 linecolor 2 notitle, \
     fitline("forward", "", x) with lines linecolor 2 title sprintf("fit, all points: P^{%.2f}", expo("forward", "")), \
     fitline("forward", "_large", x) with lines dashtype 2 linecolor 2 title sprintf("fit, P ≥ %.0f: P^{%.2f}", val(sprintf("p_forward_%d_large", time_threads)), expo("forward", "_large")), \
     rows("central", time_threads, 0) using 4:5 with points pointtype 9 linecolor 3 title "central differences (2P passes)", \
     rows("central", time_threads, 1) using 4:5 with points pointtype 8 linecolor 3 notitle, \
     fitline("central", "", x) with lines linecolor 3 title sprintf("fit, all points: P^{%.2f}", expo("central", "")), \
     fitline("central", "_large", x) with lines dashtype 2 linecolor 3 title sprintf("fit, P ≥ %.0f: P^{%.2f}", val(sprintf("p_central_%d_large", time_threads)), expo("central", "_large"))

# ---- speedup against threads ------------------------------------------------------------
unset logscale
set format x "%g"
set format y "%g"
set datafile separator whitespace
set output sprintf("%s_speedup.%s", prefix, ext)
set title sprintf("Speedup against one thread, 784-%d-10: backprop splits the batch, FD splits the parameters", speed_h)
set xlabel "threads"
set ylabel "speedup"
# Log-log, so the ideal speedup y = x is the straight diagonal, as the data segments are.
set logscale xy 2
set xrange [1:maxt]
set yrange [0.5:maxt * 1.2]
set xtics 2
set ytics 2
plot x with lines dashtype 2 linecolor "black" title "ideal", \
     speedup("backprop", speed_h) using 1:2 with linespoints pointtype 7 linecolor 1 title "backprop", \
     speedup("forward", speed_h) using 1:2 with linespoints pointtype 5 linecolor 2 title "forward differences", \
     speedup("central", speed_h) using 1:2 with linespoints pointtype 9 linecolor 3 title "central differences"
unset output
