/* reference.c: one SGD step in plain double precision: the math bprop computes. */
#include "reference.h"

#include <math.h>
#include <string.h>

/* One sample's buffers. */
typedef struct sample_work {
    double *h;  /* (H) hidden activations relu(a), a = W1^T x + b1 */
    double *p;  /* (C) logits z = W2^T h + b2, then softmax(z), then dz = softmax(z) - onehot */
    double *dh; /* (H) dL/da: (W2 dz) where a > 0, else 0 */
} sample_work;

/* Forward: h (H) = relu(W1^T x + b1), z (C) = W2^T h + b2, into w->h and w->p. */
static void forward(const bp_ref_net *net, const float *x, sample_work *w)
{
    const size_t D = net->D, H = net->H, C = net->C;
    const bprop_layout *L = &net->layout;
    const double *w1 = net->theta + L->offset[BPROP_W1]; /* (D, H) */
    const double *w2 = net->theta + L->offset[BPROP_W2]; /* (H, C) */
    const int bias = L->count[BPROP_B1] > 0;
    const double *b1 = net->theta + L->offset[BPROP_B1]; /* (H) when bias */
    const double *b2 = net->theta + L->offset[BPROP_B2]; /* (C) when bias */
    for (size_t j = 0; j < H; j++) {
        double a = bias ? b1[j] : 0.0;
        for (size_t k = 0; k < D; k++)
            a += (double)x[k] * w1[k * H + j];
        w->h[j] = a > 0.0 ? a : 0.0;
    }
    for (size_t c = 0; c < C; c++) {
        double z = bias ? b2[c] : 0.0;
        for (size_t j = 0; j < H; j++)
            z += w->h[j] * w2[j * C + c];
        w->p[c] = z;
    }
}

/* Softmax cross-entropy of the logits p (C) against label y: returns the loss
 * log(sum_c exp z_c) - z_y and leaves dL/dz = softmax(z) - onehot(y) in p. The largest logit is
 * subtracted first so that no exponent overflows. */
static double softmax_xent(double *p, size_t C, int32_t y)
{
    double zmax = p[0], sum = 0.0;
    for (size_t c = 1; c < C; c++)
        zmax = p[c] > zmax ? p[c] : zmax;
    const double zy = p[y];
    for (size_t c = 0; c < C; c++) {
        p[c] = exp(p[c] - zmax);
        sum += p[c];
    }
    for (size_t c = 0; c < C; c++)
        p[c] /= sum;
    p[y] -= 1.0;
    return zmax + log(sum) - zy;
}

/* Backward: adds this sample's gradient to grad (layout.total), given x (D), h (H) and
 * dz (C) in w->p:
 *   dW2 (H, C) += h dz^T      db2 (C) += dz
 *   dh (H) = (W2 dz) where h > 0 (relu's derivative; h > 0 exactly where a > 0)
 *   dW1 (D, H) += x dh^T      db1 (H) += dh */
static void backward(const bp_ref_net *net, const float *x, sample_work *w, double *grad)
{
    const size_t D = net->D, H = net->H, C = net->C;
    const bprop_layout *L = &net->layout;
    const double *w2 = net->theta + L->offset[BPROP_W2]; /* (H, C) */
    double *g_w1 = grad + L->offset[BPROP_W1], *g_w2 = grad + L->offset[BPROP_W2]; /* (D, H), (H, C) */
    double *g_b1 = grad + L->offset[BPROP_B1], *g_b2 = grad + L->offset[BPROP_B2]; /* (H), (C) */
    const int bias = L->count[BPROP_B1] > 0;
    const double *dz = w->p;
    for (size_t j = 0; j < H; j++) {
        double s = 0.0;
        for (size_t c = 0; c < C; c++) {
            g_w2[j * C + c] += w->h[j] * dz[c];
            s += w2[j * C + c] * dz[c];
        }
        w->dh[j] = w->h[j] > 0.0 ? s : 0.0;
        if (bias)
            g_b1[j] += w->dh[j];
    }
    for (size_t c = 0; bias && c < C; c++)
        g_b2[c] += dz[c];
    for (size_t k = 0; k < D; k++)
        for (size_t j = 0; j < H; j++)
            g_w1[k * H + j] += (double)x[k] * w->dh[j];
}

bprop_status bp_ref_loss_grad(const bp_ref_net *net, const float *x, const int32_t *y, size_t nb,
                              double *loss, double *grad)
{
    const size_t H = net->H, C = net->C, P = net->layout.total;
    sample_work w = {bp_alloc(H, sizeof(double)), bp_alloc(C, sizeof(double)),
                     bp_alloc(H, sizeof(double))};
    bprop_status st = w.h && w.p && w.dh ? BPROP_OK : BPROP_E_NOMEM;
    double sum = 0.0;
    memset(grad, 0, P * sizeof(double));
    for (size_t s = 0; st == BPROP_OK && s < nb; s++) {
        const float *xs = x + s * net->D; /* (D) */
        forward(net, xs, &w);
        sum += softmax_xent(w.p, C, y[s]);
        backward(net, xs, &w, grad);
    }
    for (size_t i = 0; i < P; i++) /* the sums become the batch's mean */
        grad[i] /= (double)nb;
    *loss = sum / (double)nb;
    bp_free(w.h);
    bp_free(w.p);
    bp_free(w.dh);
    return st;
}

/* Whether parameter i of the flat block is in W1 or W2, the tensors weight decay applies to. */
static int decays(const bprop_layout *L, size_t i)
{
    const size_t w1 = L->offset[BPROP_W1], w2 = L->offset[BPROP_W2];
    return (i >= w1 && i < w1 + L->count[BPROP_W1]) || (i >= w2 && i < w2 + L->count[BPROP_W2]);
}

bprop_status bp_ref_step(bp_ref_net *net, const float *x, const int32_t *y, size_t nb,
                         const bp_ref_sgd *p, double *loss)
{
    const size_t P = net->layout.total;
    double *u = bp_alloc(P, sizeof(double)); /* (P) the gradient, then the update direction */
    if (!u)
        return BPROP_E_NOMEM;
    bprop_status st = bp_ref_loss_grad(net, x, y, nb, loss, u);
    if (st != BPROP_OK) {
        bp_free(u);
        return st;
    }
    double norm2 = 0.0;
    for (size_t i = 0; i < P; i++) {
        if (decays(&net->layout, i))
            u[i] += p->weight_decay * net->theta[i];
        norm2 += u[i] * u[i];
    }
    const double norm = sqrt(norm2);
    const double clip = p->clip_norm > 0.0 && norm > p->clip_norm ? p->clip_norm / norm : 1.0;
    for (size_t i = 0; i < P; i++) {
        const double ui = u[i] * clip;
        double *v = &net->velocity[i];
        *v = p->momentum * *v + ui;
        net->theta[i] -= p->lr * (p->nesterov ? ui + p->momentum * *v : *v);
    }
    bp_free(u);
    return BPROP_OK;
}
