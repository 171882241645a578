/* progress.c: a rate-limited one-line progress bar (loss, samples/s, ETA) for terminals. */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include "cli.h"

#include <string.h>
#include <unistd.h>

/* Redraws per second: enough to look live, few enough to cost nothing. */
#define PROGRESS_HZ 10.0
#define BAR_WIDTH 24

void cli_progress_init(cli_progress *p, FILE *f, int enabled, size_t epochs, size_t batch)
{
    memset(p, 0, sizeof *p);
    p->f = (enabled && f && isatty(fileno(f))) ? f : NULL;
    p->epochs = epochs;
    p->batch = batch;
}

void cli_progress_epoch(cli_progress *p, size_t epoch)
{
    p->epoch = epoch;
    p->start = cli_now();
    p->last_draw = 0.0;
}

static void format_eta(double s, char *buf, size_t size)
{
    if (!(s >= 0.0) || s > 1e7) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

int cli_progress_cb(void *user, size_t step, size_t steps, double loss, double acc)
{
    cli_progress *p = user;
    if (!p->f || steps == 0)
        return 0;
    double now = cli_now();
    if (step < steps && now - p->last_draw < 1.0 / PROGRESS_HZ)
        return 0;
    p->last_draw = now;
    double elapsed = now - p->start;
    double per_step = step ? elapsed / (double)step : 0.0;
    /* Remaining steps of this epoch plus the epochs still to come (evaluation not counted). */
    double left = (double)(steps - step) + (double)(p->epochs - p->epoch) * (double)steps;
    char eta[32], bar[BAR_WIDTH + 1];
    format_eta(step ? per_step * left : -1.0, eta, sizeof eta);
    size_t fill = step * BAR_WIDTH / steps;
    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    double rate = elapsed > 0.0 ? (double)(step * p->batch) / elapsed : 0.0;
    fprintf(p->f, "\r\033[Kepoch %zu/%zu [%s] %3zu%%  loss %.4f  acc %.4f  %.0f samples/s  ETA %s",
            p->epoch, p->epochs, bar, step * 100 / steps, loss, acc, rate, eta);
    fflush(p->f);
    p->drawn = 1;
    return 0;
}

void cli_progress_clear(cli_progress *p)
{
    if (p->f && p->drawn) {
        fputs("\r\033[K", p->f);
        fflush(p->f);
    }
    p->drawn = 0;
}
