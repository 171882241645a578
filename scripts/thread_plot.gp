# thread_plot.gp: speedup and samples/s against threads from a thread_sweep.sh CSV, one pair of plots per hidden size.
# usage: gnuplot -e "csv='out/thread_sweep.csv'; prefix='out/thread_sweep'" scripts/thread_plot.gp
#        (add term='svg' to force SVG)
# Writes PREFIX_speedup_hH.png and PREFIX_samples_hH.png (SVG when pngcairo is missing).
# CSV columns: 1 impl, 2 threads, 3 batch, 4 hidden, 5 samples_per_s, ..., 9 speedup, ...,
# 13 parallel (bprop's split). With more than one split in the CSV, each is its own series
# (bprop/auto, bprop/data, ...).

if (!exists("csv")) csv = "out/thread_sweep.csv"
if (!exists("prefix")) prefix = (csv[strlen(csv)-3:] eq ".csv") ? csv[1:strlen(csv)-4] : csv
# term may be given too (pngcairo, png or svg); by default pngcairo when this gnuplot has it.
if (!exists("term")) term = (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) ? "pngcairo" : "svg"
ext = (term eq "svg") ? "svg" : "png"

# Distinct values of a column (data rows only), space-separated for `for [v in ...]` loops.
values(col) = system(sprintf("awk -F, 'NR > 1 { print $%d }' '%s' | sort -n | uniq | tr '\\n' ' '", col, csv))
# A row's series: its implementation, and bprop's split when the CSV has several.
nsplits = int(system(sprintf("awk -F, 'NR > 1 && $1 == \"bprop\" && $13 != \"\" { print $13 }' '%s' | sort -u | wc -l", csv)))
series = sprintf("s = ($1 == \"bprop\" && %d > 1) ? $1 \"/\" $13 : $1", nsplits)
# The rows of one series, batch and hidden size, fed to plot through a pipe.
rows(impl, b, h) = sprintf("< awk -F, '{ %s } s == \"%s\" && $3 == %s && $4 == %s' '%s'", series, impl, b, h, csv)

impls = system(sprintf("awk -F, 'NR > 1 { %s; print s }' '%s' | sort | uniq | tr '\\n' ' '", series, csv))
batches = values(3)
hiddens = values(4)
maxt = real(system(sprintf("awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' '%s'", csv)))
if (maxt < 2) maxt = 2

set datafile separator ","
set grid
set logscale x 2
set xrange [1:maxt]
set xtics 2 nomirror
set key top left opaque
set pointsize 1.2

do for [h in hiddens] {
    # Speedup on log-log axes, where the ideal is the diagonal: colour by batch size, solid for
    # bprop and dashed for PyTorch.
    eval sprintf("set terminal %s size 900,650 font ',11'", term)
    set output sprintf("%s_speedup_h%s.%s", prefix, h, ext)
    set title sprintf("Speedup against one thread, 784-%s-10 on Fashion-MNIST", h)
    set xlabel "threads"
    set ylabel "speedup"
    set logscale y 2
    set yrange [*:maxt * 1.1]
    plot x title "ideal" with lines dashtype 2 linecolor "black", \
         for [i = 1:words(impls)] for [k = 1:words(batches)] \
             rows(word(impls, i), word(batches, k), h) using 2:9 with linespoints \
             dashtype i linecolor k pointtype (i == 1 ? 7 : 6) \
             title sprintf("%s, batch %s", word(impls, i), word(batches, k))
    unset output

    # Samples/s: one panel per batch size, bprop against PyTorch.
    eval sprintf("set terminal %s size %d,520 font ',11'", term, 480 * words(batches))
    set output sprintf("%s_samples_h%s.%s", prefix, h, ext)
    set multiplot layout 1, words(batches) title sprintf("Training throughput, 784-%s-10 on Fashion-MNIST", h)
    unset logscale y
    set ylabel "thousand samples/s"
    set yrange [0:*]
    do for [b in batches] {
        set title sprintf("batch %s", b)
        plot for [i = 1:words(impls)] rows(word(impls, i), b, h) using 2:($5 / 1000) with linespoints \
             linecolor i pointtype 7 title word(impls, i)
    }
    unset multiplot
    unset output
}
