/* scratch.c: a kernel scratch's layout, sized from its set's tile sizes (compiled once). */
#include "kernels.h"
#include "internal.h"

/* Pixel tiles of the backward lists: whole tiles of bwd_mr pixels, then single pixels up to D. */
static size_t bwd_tiles(const bp_kernels *k, size_t D) { return D / k->bwd_mr + D % k->bwd_mr; }

/* Floats of the widest panel of either pass: the packed buffers hold one panel. */
static size_t panel_max(const bp_kernels *k)
{
    return (k->fwd_nv > k->bwd_nv ? k->fwd_nv : k->bwd_nv) * k->vl;
}

int bp_scratch_alloc(bp_scratch *sc, const bp_kernels *k, size_t D, size_t H, size_t C)
{
    const size_t fwd_tiles = (BP_BLOCK + k->fwd_mr - 1) / k->fwd_mr, bwd = bwd_tiles(k, D);
    const size_t pw = panel_max(k);
    *sc = (bp_scratch){.k = k};
    sc->part = bp_alloc(((H + BP_HBLOCK - 1) / BP_HBLOCK) * BP_BLOCK * C, sizeof(float));
    sc->fwd_k = bp_alloc(fwd_tiles * D + 8, sizeof(uint32_t)); /* + set_bits' spill */
    sc->fwd_n = bp_alloc(fwd_tiles, sizeof(uint32_t));
    sc->bwd_s = bp_alloc(bwd * BP_BLOCK, sizeof(uint8_t));
    sc->bwd_n = bp_alloc(bwd, sizeof(uint32_t));
    sc->wpad = bp_alloc(D * pw, sizeof(float));
    sc->bpad = bp_alloc(pw, sizeof(float));
    sc->hpad = bp_alloc((size_t)BP_BLOCK * pw, sizeof(float));
    sc->nzb = bp_alloc((size_t)BP_BLOCK * NZ_WORDS(D), sizeof(uint64_t));
    sc->bwd_x = bp_alloc(bwd * BP_BLOCK * k->bwd_mr, sizeof(float));
    sc->nz_rows = bp_alloc(BP_BLOCK, sizeof *sc->nz_rows);
    sc->fwd_xr = bp_alloc(BP_BLOCK, sizeof *sc->fwd_xr);
    sc->fwd_rows = bp_alloc(BP_BLOCK, sizeof *sc->fwd_rows);
    sc->fwd_u = bp_alloc(NZ_WORDS(D), sizeof(uint64_t));
    return sc->part && sc->fwd_k && sc->fwd_n && sc->bwd_s && sc->bwd_n && sc->wpad && sc->bpad &&
           sc->hpad && sc->nzb && sc->bwd_x && sc->nz_rows && sc->fwd_xr && sc->fwd_rows &&
           sc->fwd_u;
}

void bp_scratch_free(bp_scratch *sc)
{
    bp_free(sc->part);
    bp_free(sc->fwd_k);
    bp_free(sc->fwd_n);
    bp_free(sc->bwd_s);
    bp_free(sc->bwd_n);
    bp_free(sc->wpad);
    bp_free(sc->bpad);
    bp_free(sc->hpad);
    bp_free(sc->nzb);
    bp_free(sc->bwd_x);
    bp_free(sc->nz_rows);
    bp_free(sc->fwd_xr);
    bp_free(sc->fwd_rows);
    bp_free(sc->fwd_u);
}

size_t bp_w1_packed_size(const bp_kernels *k, size_t D, size_t H)
{
    return k->fwd_pack ? D * ((H + k->vl - 1) / k->vl * k->vl) : 0;
}
