/* gradcheck.c: backprop gradients checked against double-precision finite differences. */
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Samples per block of the double forward pass: the whole default benchmark batch, so that W1
 * streams from memory once per pass; the block's pre-activations (GC_BLOCK, hidden) stay in L2. */
#define GC_BLOCK 64
/* Register tile of the pre-activation product: GC_TS samples by GC_NV vectors of hidden units,
 * accumulated in vector registers (GCC vector extensions: one AVX-512 register per vector when
 * the build targets it, halves of it otherwise) while the inputs stream past. */
#if defined(__AVX512F__)
#define GC_VL 8
#elif defined(__AVX__)
#define GC_VL 4
#else
#define GC_VL 2
#endif
#define GC_TS 4
#define GC_NV 2
#define GC_TJ (GC_NV * GC_VL)
#define GC_PREFETCH_ROWS 8
typedef double gc_vd __attribute__((vector_size(GC_VL * sizeof(double))));
/* The same vector at double alignment, for loads and stores anywhere in a row. */
typedef double gc_vdu __attribute__((vector_size(GC_VL * sizeof(double)), aligned(8), may_alias));

/* Default relative step (central differences). Measured on 20-7-4 blobs and 784-H-10
 * Fashion-MNIST nets against an exact double gradient: truncation error O(h^2) and rounding
 * error O(eps / h) meet near 1e-10..1e-9 relative for steps 3e-5..1e-4, far below float
 * backprop's own ~1e-7. Forward differences (truncation O(h)) want about 1e-7, near sqrt(eps),
 * which callers choosing BPROP_FD_FORWARD set themselves. */
#define GC_STEP_CENTRAL 1e-4

void bprop_gradcheck_config_default(bprop_gradcheck_config *c)
{
    if (!c)
        return;
    *c = (bprop_gradcheck_config){
        .method = BPROP_FD_CENTRAL,
        .step = GC_STEP_CENTRAL,
        .samples = 0,
        .seed = 42,
        .threads = 0,
    };
}

/* ------------------------------------------------------------------------------------------ */
/* The double-precision forward pass: the reference that finite differences differentiate. */

/* The model and the samples whose loss is differentiated. */
typedef struct gc_data {
    const bprop_model *m;
    const float *x;    /* (n, inputs) */
    const int32_t *y;  /* (n) */
    size_t n;
} gc_data;

/* z[s][j] = b1[j] + sum_i x[s][i] W1[i][j] for s in [s_lo, s_hi), j in [j_lo, j_hi): row-wise
 * updates, for the edges that do not fill a register tile (and all of a net narrower than one). */
static void preact_rows(const bprop_model *m, const double *theta, const float *x, size_t s_lo,
                        size_t s_hi, size_t j_lo, size_t j_hi, double *z /* (nb, hidden) */)
{
    size_t in = m->inputs, hid = m->hidden;
    const double *w1 = theta + m->layout.offset[BPROP_W1]; // (inputs, hidden)
    const double *b1 = m->has_bias ? theta + m->layout.offset[BPROP_B1] : NULL;
    for (size_t s = s_lo; s < s_hi; s++)
        for (size_t j = j_lo; j < j_hi; j++)
            z[s * hid + j] = b1 ? b1[j] : 0.0;
    for (size_t i = 0; i < in; i++) {
        const double *wrow = w1 + i * hid;
        for (size_t s = s_lo; s < s_hi; s++) {
            double xv = (double)x[s * in + i], *zs = z + s * hid;
            for (size_t j = j_lo; j < j_hi; j++)
                zs[j] += xv * wrow[j];
        }
    }
}

/* One GC_TS x GC_TJ tile of pre-activations, samples s0.., units j0.., summed in the same order
 * as preact_rows (bias, then inputs ascending). */
static void preact_tile(const bprop_model *m, const double *theta, const float *x, size_t s0,
                        size_t j0, double *z /* (nb, hidden) */)
{
    size_t in = m->inputs, hid = m->hidden;
    const double *w1 = theta + m->layout.offset[BPROP_W1] + j0;
    const float *xs = x + s0 * in;
    gc_vd acc[GC_TS][GC_NV];
    for (int v = 0; v < GC_NV; v++) {
        gc_vd b = {0};
        if (m->has_bias)
            b = *(const gc_vdu *)(theta + m->layout.offset[BPROP_B1] + j0 + v * GC_VL);
        for (int s = 0; s < GC_TS; s++)
            acc[s][v] = b;
    }
    for (size_t i = 0; i < in; i++) {
        const double *w = w1 + i * hid;
        /* Rows lie a page or more apart for wide nets, out of the hardware prefetcher's reach;
         * fetch a few rows ahead so the first sample block does not wait on memory. */
        __builtin_prefetch(w + GC_PREFETCH_ROWS * hid);
        __builtin_prefetch(w + GC_PREFETCH_ROWS * hid + GC_TJ - 1);
        gc_vd wv[GC_NV];
        for (int v = 0; v < GC_NV; v++)
            wv[v] = *(const gc_vdu *)(w + v * GC_VL);
        for (int s = 0; s < GC_TS; s++) {
            double xv = (double)xs[(size_t)s * in + i];
            for (int v = 0; v < GC_NV; v++)
                acc[s][v] += xv * wv[v];
        }
    }
    for (int s = 0; s < GC_TS; s++)
        for (int v = 0; v < GC_NV; v++)
            *(gc_vdu *)(z + (s0 + (size_t)s) * hid + j0 + (size_t)v * GC_VL) = acc[s][v];
}

/* Pre-activations W1^T x + b1 of nb consecutive samples into z: full tiles, then the edges. */
static void block_preact(const bprop_model *m, const double *theta, const float *x, size_t nb,
                         double *z /* (nb, hidden) */)
{
    size_t hid = m->hidden, jt = hid - hid % GC_TJ, st = nb - nb % GC_TS;
    for (size_t j0 = 0; j0 < jt; j0 += GC_TJ)
        for (size_t s0 = 0; s0 < st; s0 += GC_TS)
            preact_tile(m, theta, x, s0, j0, z);
    if (st < nb && jt > 0)
        preact_rows(m, theta, x, st, nb, 0, jt, z);
    if (jt < hid)
        preact_rows(m, theta, x, 0, nb, jt, hid, z);
}

/* Cross-entropy of one sample from its pre-activations, log-softmax shifted by the max logit so
 * that exp never overflows. */
static double sample_loss(const bprop_model *m, const double *theta, const double *zs, int32_t label,
                          double *logit /* (classes) */)
{
    size_t hid = m->hidden, cls = m->classes;
    const double *w2 = theta + m->layout.offset[BPROP_W2]; // (hidden, classes)
    for (size_t c = 0; c < cls; c++)
        logit[c] = m->has_bias ? theta[m->layout.offset[BPROP_B2] + c] : 0.0;
    for (size_t j = 0; j < hid; j++) {
        if (!(zs[j] > 0.0))
            continue; /* ReLU: an inactive unit adds nothing */
        const double a = zs[j], *wr = w2 + j * cls;
        for (size_t c = 0; c < cls; c++)
            logit[c] += a * wr[c];
    }
    double mx = logit[0];
    for (size_t c = 1; c < cls; c++)
        mx = logit[c] > mx ? logit[c] : mx;
    double sum = 0.0;
    for (size_t c = 0; c < cls; c++)
        sum += exp(logit[c] - mx);
    return log(sum) + mx - logit[label];
}

/* Mean loss with caller-provided scratch; the summation order is fixed, so the same theta gives
 * the same bits on every thread. */
static double loss_eval(const gc_data *d, const double *theta, double *z /* (GC_BLOCK, hidden) */,
                        double *logit /* (classes) */)
{
    const bprop_model *m = d->m;
    double total = 0.0;
    for (size_t s0 = 0; s0 < d->n; s0 += GC_BLOCK) {
        size_t nb = d->n - s0 < GC_BLOCK ? d->n - s0 : GC_BLOCK;
        block_preact(m, theta, d->x + s0 * m->inputs, nb, z);
        for (size_t s = 0; s < nb; s++)
            total += sample_loss(m, theta, z + s * m->hidden, d->y[s0 + s], logit);
    }
    return total / (double)d->n;
}

double bprop_loss_double(const bprop_model *m, const double *theta, const float *x,
                         const int32_t *y, size_t n)
{
    if (!m || !theta || !x || !y || n == 0 || m->classes == 0 || m->hidden == 0)
        return NAN;
    for (size_t s = 0; s < n; s++)
        if (y[s] < 0 || (size_t)y[s] >= m->classes)
            return NAN;
    double *z = bp_alloc(GC_BLOCK * m->hidden, sizeof(double));
    double *logit = bp_alloc(m->classes, sizeof(double));
    const gc_data d = {.m = m, .x = x, .y = y, .n = n};
    double loss = (z && logit) ? loss_eval(&d, theta, z, logit) : NAN;
    bp_free(z);
    bp_free(logit);
    return loss;
}

/* ------------------------------------------------------------------------------------------ */
/* Finite differences over a list of coordinates, parallel over the coordinates. */

typedef struct gc_job {
    gc_data d;
    bprop_fd_method method;
    double step;
    const double *theta;  // (total) the point of expansion
    const double *z0;     // (n, hidden) pre-activations at theta, for kink detection
    double base_loss;     // L(theta), used by forward differences only
    const size_t *coord;  // (count) flat parameter indices to differentiate
    size_t count;
    double *numeric;      // (count) output
    unsigned char *kink;  // (count) output: 1 when a hidden unit crosses zero
} gc_job;

/* Does moving parameter idx from theta by dm .. dp move any hidden pre-activation across zero?
 * Only W1[i][j] and b1[j] touch a pre-activation, and only unit j's, by d * x_i (or d): n
 * multiply-adds instead of a forward pass. */
static int crosses_zero(const gc_job *jb, size_t idx, double dm, double dp)
{
    const bprop_model *m = jb->d.m;
    const bprop_layout *L = &m->layout;
    size_t hid = m->hidden, in = m->inputs, i = 0, j;
    int is_w1 = idx < L->offset[BPROP_W1] + L->count[BPROP_W1];
    if (is_w1) {
        i = (idx - L->offset[BPROP_W1]) / hid;
        j = (idx - L->offset[BPROP_W1]) % hid;
    } else if (m->has_bias && idx < L->offset[BPROP_B1] + L->count[BPROP_B1]) {
        j = idx - L->offset[BPROP_B1];
    } else {
        return 0;
    }
    for (size_t s = 0; s < jb->d.n; s++) {
        double z = jb->z0[s * hid + j], dx = is_w1 ? (double)jb->d.x[s * in + i] : 1.0;
        if ((z + dm * dx > 0.0) != (z + dp * dx > 0.0))
            return 1;
    }
    return 0;
}

/* Differentiate coordinate k with th (this thread's copy of theta), restoring th afterwards.
 * Every loss evaluation is a full forward pass over the batch, O(n P), deliberately: perturbing
 * W1[i][j] only moves unit j, and an incremental update would cost O(n C), but the benchmark
 * exists to measure what finite differences cost, so they are done the textbook way. */
static void fd_one(const gc_job *jb, size_t k, double *th, double *z, double *logit)
{
    size_t idx = jb->coord[k];
    double t = th[idx];
    double h = jb->step * fmax(1.0, fabs(t));
    /* Steps as actually represented, so that rounding of t +- h does not bias the quotient. */
    double tp = t + h, tm = jb->method == BPROP_FD_CENTRAL ? t - h : t;
    th[idx] = tp;
    double lp = loss_eval(&jb->d, th, z, logit), lm = jb->base_loss;
    if (jb->method == BPROP_FD_CENTRAL) {
        th[idx] = tm;
        lm = loss_eval(&jb->d, th, z, logit);
    }
    th[idx] = t;
    jb->numeric[k] = (lp - lm) / (tp - tm);
    jb->kink[k] = (unsigned char)crosses_zero(jb, idx, tm - t, tp - t);
}

/* Each thread perturbs its own copy of theta in place; a static schedule over coordinates whose
 * results depend only on theta and the coordinate keeps the output identical for any thread
 * count. @return 0, or -1 when a thread could not allocate its copy. */
static int fd_run(const gc_job *jb, int threads)
{
    const bprop_model *m = jb->d.m;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        double *th = bp_alloc(m->layout.total, sizeof(double));
        double *z = bp_alloc(GC_BLOCK * m->hidden, sizeof(double));
        double *logit = bp_alloc(m->classes, sizeof(double));
        int ok = th && z && logit;
        if (ok)
            memcpy(th, jb->theta, m->layout.total * sizeof(double));
        else {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (size_t k = 0; k < jb->count; k++)
            if (ok)
                fd_one(jb, k, th, z, logit);
        bp_free(th);
        bp_free(z);
        bp_free(logit);
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Choosing coordinates and summarising. */

/* Every coordinate, or per tensor K distinct ones drawn by selection sampling (each index kept
 * with probability needed / remaining), which yields them in ascending order. @return count. */
static size_t choose_coords(const bprop_layout *L, size_t samples, uint64_t seed, size_t *coord)
{
    size_t count = 0;
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (int t = 0; t < BPROP_TENSORS; t++) {
        size_t total = L->count[t], need = samples && samples < total ? samples : total;
        for (size_t i = 0; i < total && need > 0; i++) {
            if (need == total - i || bp_rng_below(&rng, total - i) < need) {
                coord[count++] = L->offset[t] + i;
                need--;
            }
        }
    }
    return count;
}

static size_t coords_needed(const bprop_layout *L, size_t samples)
{
    if (samples == 0)
        return L->total;
    size_t count = 0;
    for (int t = 0; t < BPROP_TENSORS; t++)
        count += L->count[t] < samples ? L->count[t] : samples;
    return count;
}

static int tensor_of(const bprop_layout *L, size_t idx)
{
    int t = BPROP_TENSORS - 1;
    while (t > 0 && (L->count[t] == 0 || idx < L->offset[t]))
        t--;
    return t;
}

/* Keep r->worst sorted by abs_error, largest first; ties keep the smaller (earlier) index. */
static void worst_insert(bprop_gradcheck_tensor *r, bprop_gradcheck_entry e)
{
    size_t pos = r->worst_count;
    while (pos > 0 && r->worst[pos - 1].abs_error < e.abs_error)
        pos--;
    if (pos >= BPROP_GRADCHECK_WORST)
        return;
    size_t last = r->worst_count < BPROP_GRADCHECK_WORST ? r->worst_count : BPROP_GRADCHECK_WORST - 1;
    memmove(&r->worst[pos + 1], &r->worst[pos], (last - pos) * sizeof e);
    r->worst[pos] = e;
    if (r->worst_count < BPROP_GRADCHECK_WORST)
        r->worst_count++;
}

static void summarise(const bprop_layout *L, const gc_job *jb, const float *grad,
                      bprop_gradcheck_report *out)
{
    double na[BPROP_TENSORS] = {0}, nb[BPROP_TENSORS] = {0}, nd[BPROP_TENSORS] = {0};
    for (size_t k = 0; k < jb->count; k++) {
        size_t idx = jb->coord[k];
        int t = tensor_of(L, idx);
        bprop_gradcheck_tensor *r = &out->tensor[t];
        if (jb->kink[k]) {
            r->kinks++;
            continue;
        }
        double a = (double)grad[idx], b = jb->numeric[k], d = fabs(a - b);
        na[t] += a * a;
        nb[t] += b * b;
        nd[t] += d * d;
        r->checked++;
        r->max_abs_error = d > r->max_abs_error ? d : r->max_abs_error;
        worst_insert(r, (bprop_gradcheck_entry){idx - L->offset[t], a, b, d});
    }
    out->max_rel_error = 0.0;
    for (int t = 0; t < BPROP_TENSORS; t++) {
        double den = sqrt(na[t]) + sqrt(nb[t]);
        out->tensor[t].rel_error = den > 0.0 ? sqrt(nd[t]) / den : 0.0;
        if (out->tensor[t].rel_error > out->max_rel_error)
            out->max_rel_error = out->tensor[t].rel_error;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The entry point. */

static bprop_status check_args(const gc_data *d, const bprop_gradcheck_config *c,
                               bprop_gradcheck_report *out, bprop_error *err)
{
    const bprop_model *m = d->m;
    const float *x = d->x;
    const int32_t *y = d->y;
    const size_t n = d->n;
    if (!m || !m->params || !x || !y || !c || !out)
        return bp_fail(err, BPROP_E_ARG, "gradcheck: NULL argument");
    if (n == 0)
        return bp_fail(err, BPROP_E_SIZE, "gradcheck: no samples");
    if (c->method != BPROP_FD_CENTRAL && c->method != BPROP_FD_FORWARD)
        return bp_fail(err, BPROP_E_ARG, "gradcheck: unknown finite-difference method %d", (int)c->method);
    if (!(c->step > 0.0) || !isfinite(c->step))
        return bp_fail(err, BPROP_E_ARG, "gradcheck: step must be a positive number, got %g", c->step);
    if (c->threads < 0)
        return bp_fail(err, BPROP_E_ARG, "gradcheck: threads must be >= 0 (0: OpenMP default), got %d",
                       c->threads);
    for (size_t s = 0; s < n; s++)
        if (y[s] < 0 || (size_t)y[s] >= m->classes)
            return bp_fail(err, BPROP_E_LABEL, "gradcheck: sample %zu: label %d outside [0, %zu)", s,
                           (int)y[s], m->classes);
    for (size_t k = 0; k < n * m->inputs; k++)
        if (!isfinite(x[k]))
            return bp_fail(err, BPROP_E_NONFINITE, "gradcheck: sample %zu, feature %zu: not finite",
                           k / m->inputs, k % m->inputs);
    for (size_t k = 0; k < m->layout.total; k++)
        if (!isfinite(m->params[k])) {
            int t = tensor_of(&m->layout, k);
            return bp_fail(err, BPROP_E_NONFINITE, "gradcheck: parameter %s[%zu] is not finite",
                           bprop_tensor_name((bprop_tensor)t), k - m->layout.offset[t]);
        }
    return BPROP_OK;
}

/* The finite-difference half: theta, z0, coordinates, the parallel run and the summary. */
static bprop_status fd_compare(const gc_data *d, const bprop_gradcheck_config *c, int threads,
                               const float *grad, bprop_gradcheck_report *out, bprop_error *err)
{
    const bprop_model *m = d->m;
    const float *x = d->x;
    const size_t n = d->n;
    const bprop_layout *L = &m->layout;
    size_t count = coords_needed(L, c->samples);
    double *theta = bp_alloc(L->total, sizeof(double));
    double *z0 = bp_alloc(n * m->hidden, sizeof(double)); // (n, hidden)
    double *numeric = bp_alloc(count, sizeof(double));
    size_t *coord = bp_alloc(count, sizeof(size_t));
    unsigned char *kink = bp_alloc(count, 1);
    bprop_status st = BPROP_OK;
    if (!theta || !z0 || !numeric || !coord || !kink) {
        st = bp_fail(err, BPROP_E_NOMEM, "gradcheck: cannot allocate buffers for %zu parameters", L->total);
        goto done;
    }
    for (size_t k = 0; k < L->total; k++)
        theta[k] = (double)m->params[k];
    for (size_t s0 = 0; s0 < n; s0 += GC_BLOCK)
        block_preact(m, theta, x + s0 * m->inputs, n - s0 < GC_BLOCK ? n - s0 : GC_BLOCK,
                     z0 + s0 * m->hidden);
    gc_job jb = {.d = *d, .method = c->method, .step = c->step,
                 .theta = theta, .z0 = z0, .base_loss = 0.0, .coord = coord,
                 .count = choose_coords(L, c->samples, c->seed, coord), .numeric = numeric, .kink = kink};
    out->forward_passes = c->method == BPROP_FD_CENTRAL ? 2 * jb.count : jb.count + 1;
    if (c->method == BPROP_FD_FORWARD)
        jb.base_loss = bprop_loss_double(m, theta, x, d->y, n);
    if (fd_run(&jb, threads) != 0) {
        st = bp_fail(err, BPROP_E_NOMEM, "gradcheck: a thread cannot allocate its copy of %zu parameters",
                     L->total);
        goto done;
    }
    for (size_t k = 0; k < jb.count; k++)
        if (!isfinite(numeric[k])) {
            int t = tensor_of(L, coord[k]);
            st = bp_fail(err, BPROP_E_NONFINITE, "gradcheck: finite difference of %s[%zu] is not finite",
                         bprop_tensor_name((bprop_tensor)t), coord[k] - L->offset[t]);
            goto done;
        }
    summarise(L, &jb, grad, out);
done:
    bp_free(theta);
    bp_free(z0);
    bp_free(numeric);
    bp_free(coord);
    bp_free(kink);
    return st;
}

bprop_status bprop_gradcheck(const bprop_model *m, const float *x, const int32_t *y, size_t n,
                             const bprop_gradcheck_config *c, const float *grad_override,
                             bprop_gradcheck_report *out, bprop_error *err)
{
    const gc_data d = {.m = m, .x = x, .y = y, .n = n};
    bprop_status st = check_args(&d, c, out, err);
    if (st != BPROP_OK)
        return st;
    memset(out, 0, sizeof *out);
    int threads = c->threads > 0 ? c->threads : omp_get_max_threads();
    float *grad = NULL;
    if (!grad_override) {
        grad = bp_alloc(m->layout.total, sizeof(float));
        if (!grad)
            return bp_fail(err, BPROP_E_NOMEM, "gradcheck: cannot allocate a gradient of %zu parameters",
                           m->layout.total);
        double t0 = omp_get_wtime();
        st = bprop_loss_grad(m, x, y, n, threads, NULL, grad, err);
        out->seconds_backprop = omp_get_wtime() - t0;
        if (st != BPROP_OK) {
            bp_free(grad);
            return st;
        }
    }
    double t1 = omp_get_wtime();
    st = fd_compare(&d, c, threads, grad_override ? grad_override : grad, out, err);
    out->seconds_fd = omp_get_wtime() - t1;
    bp_free(grad);
    return st;
}
