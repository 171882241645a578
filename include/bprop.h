/* bprop.h: two-layer ReLU/softmax networks trained with data-parallel minibatch SGD (OpenMP). */
#ifndef BPROP_H
#define BPROP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BPROP_VERSION_MAJOR 0
#define BPROP_VERSION_MINOR 1
#define BPROP_VERSION_PATCH 0
#define BPROP_VERSION_STRING "0.1.0"

/* Symbols the shared library exports; everything else stays hidden. */
#if defined(_WIN32)
#define BPROP_API
#elif defined(__GNUC__)
#define BPROP_API __attribute__((visibility("default")))
#else
#define BPROP_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors. The library never prints and never exits: every fallible call returns a status and,
 * when the caller passes a bprop_error, a one-line message naming the file, the record and what
 * is wrong. */

typedef enum bprop_status {
    BPROP_OK = 0,
    BPROP_E_NOMEM,     /* an allocation failed */
    BPROP_E_ARG,       /* an invalid argument: NULL, negative learning rate, zero batch, ... */
    BPROP_E_SIZE,      /* a size is zero, or a product of sizes would overflow */
    BPROP_E_IO,        /* a file cannot be opened, read or written */
    BPROP_E_FORMAT,    /* malformed input: bad magic, wrong dimensions, truncated data, bad CSV */
    BPROP_E_MISMATCH,  /* two inputs disagree: image/label counts, model/data widths */
    BPROP_E_LABEL,     /* a label outside [0, classes) */
    BPROP_E_NONFINITE, /* NaN or Inf in data, parameters or loss */
    BPROP_E_VERSION,   /* a model file of another format version */
    BPROP_E_CHECKSUM,  /* a model file whose checksum does not match its contents */
    BPROP_E_DIVERGED,  /* training produced a non-finite loss or gradient */
    BPROP_E_CANCELLED, /* a run stopped because its cancellation flag was set */
    BPROP_E_COMM,      /* a collective operation across processes failed */
    BPROP_E_ISA,       /* the kernel set asked for (BPROP_ISA) is unknown or not supported here */
    BPROP_E_COUNT      /* number of codes, not a code */
} bprop_status;

/** Longest message a bprop_error holds, terminator included. */
#define BPROP_ERROR_MAX 512

/** Details of a failure: filled by the call that fails, left untouched by calls that succeed. */
typedef struct bprop_error {
    bprop_status status;
    char message[BPROP_ERROR_MAX]; /* e.g. "train.csv: line 17: expected 785 fields, found 784" */
} bprop_error;

/** Static description of a status code ("invalid argument", ...); never NULL. */
BPROP_API const char *bprop_strerror(bprop_status status);

/* ------------------------------------------------------------------------------------------ */
/* Data sets: n samples of dim features with integer labels. Features are stored either as
 * float32 (x) or as bytes (x8: IDX images, uint8 .npy arrays), which the library turns into the
 * floats b / 255.0f, standardised when x8_mean is set, as it reads each row. A zero-initialised
 * set with x, y and the sizes filled in is a float32 set, as before bytes existed
 * (docs/data.md). */

typedef struct bprop_dataset {
    size_t n;       /* samples */
    size_t dim;     /* features per sample */
    size_t classes; /* labels lie in [0, classes); 0 when the set has no labels */
    float *x;       /* (n, dim) row-major float32 features, owned; NULL when the set holds bytes
                       (x8). 64-byte aligned when allocated; a mapped .npy file's data start */
    int32_t *y;     /* (n) owned; NULL for unlabelled data (predict input) */
    const uint8_t *x8; /* (n, dim) row-major bytes when x is NULL, owned through storage: feature k
                          of a sample is b / 255.0f, then (that - x8_mean[k]) * x8_scale[k] */
    float *x8_mean;    /* (dim) owned: standardisation of the byte features; NULL: none */
    float *x8_scale;   /* (dim) owned, set with x8_mean */
    struct bp_storage *storage; /* private: the file mapping or buffer behind x8 (or x); NULL:
                                   x is the library's own allocation (or the caller's) */
} bprop_dataset;

/**
 * Allocate a dataset with zeroed features (and labels when labelled != 0).
 * @return BPROP_E_SIZE when n or dim is zero or n*dim overflows.
 */
BPROP_API bprop_status bprop_dataset_alloc(size_t n, size_t dim, size_t classes, int labelled,
                                 bprop_dataset **out, bprop_error *err);
/** Free a dataset and everything it owns; NULL is allowed. */
BPROP_API void bprop_dataset_free(bprop_dataset *d);

/**
 * Load IDX images (magic 0x0803, any number of dimensions after the count) and, when
 * labels_path is not NULL, IDX labels (magic 0x0801). Plain or gzip-compressed, detected from
 * the content. Pixels stay bytes (x8, x NULL), read as b / 255.0f, in [0, 1]; a plain file is
 * memory-mapped, a gzip one decompressed once (docs/data.md).
 * @param classes  0: infer as max label + 1; otherwise every label must be < classes.
 */
BPROP_API bprop_status bprop_dataset_load_idx(const char *images_path, const char *labels_path,
                                    size_t classes, bprop_dataset **out, bprop_error *err);

/**
 * Load NumPy .npy arrays: images C-order '|u1' (uint8, kept as bytes, read as b / 255.0f like
 * IDX pixels) or '<f4' (float32, used as they are) of shape (N, D) or (N, d1, d2, ...) (each
 * sample flattened); labels, when labels_path is not NULL, integers '|u1', '<i4' or '<i8' of
 * shape (N,). Uncompressed files are memory-mapped, not copied (docs/data.md).
 * @param classes  as for bprop_dataset_load_idx.
 */
BPROP_API bprop_status bprop_dataset_load_npy(const char *images_path, const char *labels_path,
                                              size_t classes, bprop_dataset **out,
                                              bprop_error *err);

/**
 * Load CSV (plain or gzip): when labelled, the integer label is the first field and the features
 * follow; otherwise every field is a feature. An optional header line (first line whose fields
 * are not all numeric) is skipped. Every row must have the same field count.
 * @param classes  as for bprop_dataset_load_idx.
 */
BPROP_API bprop_status bprop_dataset_load_csv(const char *path, int labelled, size_t classes,
                                    bprop_dataset **out, bprop_error *err);

/**
 * Load a data file of any format: IDX when the (decompressed) content starts with an IDX
 * image magic, .npy when it starts with the NumPy magic, CSV otherwise. labels_path is used for
 * IDX and .npy only (CSV carries its labels).
 */
BPROP_API bprop_status bprop_dataset_load(const char *path, const char *labels_path, int labelled,
                                size_t classes, bprop_dataset **out, bprop_error *err);

/**
 * Split d into a training and a validation part: a seeded shuffle, then the last
 * round(fraction * n) samples (at least 1 when fraction > 0) go to *val.
 * @param fraction  in [0, 1); 0 leaves *val NULL and *train a copy of d.
 */
BPROP_API bprop_status bprop_dataset_split(const bprop_dataset *d, double fraction, uint64_t seed,
                                 bprop_dataset **train, bprop_dataset **val, bprop_error *err);

/** Copy samples [first, first + count) of d into a new dataset. */
BPROP_API bprop_status bprop_dataset_subset(const bprop_dataset *d, size_t first, size_t count,
                                  bprop_dataset **out, bprop_error *err);

/**
 * Per-feature standardisation statistics of d: mean and scale = 1 / standard deviation (1 for a
 * constant feature), so that a standardised feature is (x - mean) * scale.
 * @param mean, scale  caller-owned arrays of d->dim floats.
 */
BPROP_API bprop_status bprop_dataset_feature_stats(const bprop_dataset *d, float *mean, float *scale);

/**
 * Apply (x - mean) * scale to every sample of d: in place for float32 features; for bytes the
 * statistics are copied into d and applied as rows are read. Bytes that are already
 * standardised are first turned into float32 features (n * dim * 4 bytes).
 * @return BPROP_E_NOMEM when that copy cannot be made (d unchanged), BPROP_E_ARG for NULL.
 */
BPROP_API bprop_status bprop_dataset_standardize(bprop_dataset *d, const float *mean,
                                                 const float *scale);

/**
 * The features of sample i as float32, as training sees them: a pointer into d->x, or buf
 * (dim floats, caller-owned) filled from the bytes. NULL when i >= n.
 */
BPROP_API const float *bprop_dataset_row(const bprop_dataset *d, size_t i, float *buf);

/**
 * Turn byte features into float32 features (d->x allocated and filled with bprop_dataset_row's
 * values, the bytes released); a no-op for a float32 set. For callers that need d->x.
 */
BPROP_API bprop_status bprop_dataset_to_float(bprop_dataset *d, bprop_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Training settings. */

typedef enum bprop_schedule {
    BPROP_SCHEDULE_CONSTANT = 0, /* lr throughout */
    BPROP_SCHEDULE_STEP,         /* lr * step_gamma^(epoch / step_epochs) */
    BPROP_SCHEDULE_COSINE        /* lr * (1 + cos(pi * step / total_steps)) / 2, per step */
} bprop_schedule;

/** How one SGD step is split over threads. With reproducible sums every mode gives bitwise the
 * same parameters; with float sums each is deterministic for its thread count, and the hidden
 * split gives one thread's parameters. */
typedef enum bprop_parallel {
    BPROP_PARALLEL_AUTO = 0, /* pick per (batch, shape, threads, ranks, kernel set) from a cost
                                model of the step, never from a timing */
    BPROP_PARALLEL_DATA,     /* each thread takes whole blocks of the batch's samples */
    BPROP_PARALLEL_HIDDEN    /* each thread owns a slice of hidden units for the whole batch */
} bprop_parallel;

typedef struct bprop_train_config {
    size_t epochs;           /* passes over the training set */
    size_t batch;            /* samples per SGD step; the last step of an epoch may be smaller */
    float lr;                /* base learning rate, > 0 */
    float momentum;          /* in [0, 1) */
    int nesterov;            /* 1: Nesterov momentum (needs momentum > 0) */
    float weight_decay;      /* L2 coefficient on W1 and W2 (not on biases), >= 0 */
    bprop_schedule schedule; /* learning-rate schedule */
    size_t step_epochs;      /* BPROP_SCHEDULE_STEP: epochs between decays, >= 1 */
    float step_gamma;        /* BPROP_SCHEDULE_STEP: decay factor in (0, 1] */
    float clip_norm;         /* clip the global gradient norm to this; 0 disables */
    uint64_t seed;           /* shuffling (and, through bprop_model_create, initialisation) */
    int shuffle;             /* 1: reshuffle the training set every epoch from the seed */
    int threads;             /* OpenMP threads; 0: omp_get_max_threads() (OMP_NUM_THREADS) */
    bprop_parallel parallel; /* how a step is split over threads: the same result for every
                                choice with reproducible = 1; with 0 the hidden split gives one
                                thread's result and the data split its own */
    int reproducible;        /* 1: the same parameters for every thread count and process layout
                                (blocks of samples combined in exact fixed point); 0 (default):
                                each layout deterministic on its own, float sums, faster with
                                several threads at batch 128 (docs/parallel.md, "Determinism") */
} bprop_train_config;

/** Fill c with the defaults: 10 epochs, batch 128, lr 0.1, Nesterov momentum 0.9, no decay,
 * cosine schedule (step: every 3 epochs by 0.1), no clipping, seed 42, shuffling, all threads. */
BPROP_API void bprop_train_config_default(bprop_train_config *c);

/** Check c; on failure the message names the offending field and its value. */
BPROP_API bprop_status bprop_train_config_check(const bprop_train_config *c, bprop_error *err);

/** Name of a parallel mode ("auto", "data", "hidden"); parse the same names back.
 * @return BPROP_E_ARG for an unknown name. */
BPROP_API const char *bprop_parallel_name(bprop_parallel p);
BPROP_API bprop_status bprop_parallel_parse(const char *name, bprop_parallel *out);

/** Name of a schedule ("constant", "step", "cosine"); parse the same names back.
 * @return BPROP_E_ARG for an unknown name. */
BPROP_API const char *bprop_schedule_name(bprop_schedule s);
BPROP_API bprop_status bprop_schedule_parse(const char *name, bprop_schedule *out);

/* ------------------------------------------------------------------------------------------ */
/* The model: logits = W2^T relu(W1^T x + b1) + b2, softmax cross-entropy. */

/** Parameter tensors in their order in the flat block. */
typedef enum bprop_tensor { BPROP_W1 = 0, BPROP_B1, BPROP_W2, BPROP_B2, BPROP_TENSORS } bprop_tensor;

/** Where each tensor lives in the flat parameter block; biases have count 0 without biases. */
typedef struct bprop_layout {
    size_t offset[BPROP_TENSORS]; /* first index of each tensor */
    size_t count[BPROP_TENSORS];  /* W1: inputs*hidden, b1: hidden, W2: hidden*classes, b2: classes */
    size_t total;                 /* number of parameters */
} bprop_layout;

/** How a model was trained (stored in the model file, shown by `bprop info`). */
typedef struct bprop_provenance {
    bprop_train_config config; /* settings of the last training run */
    uint64_t epochs_done;      /* epochs completed over the model's life */
    uint64_t samples_seen;     /* training samples processed over the model's life */
    int32_t threads;           /* threads used by the last run */
    float train_loss, train_acc; /* last epoch's running averages */
    float test_loss, test_acc;   /* last evaluation on held-out data; NaN when none */
    int64_t created_unix;        /* when the model was first created (seconds since 1970) */
    int64_t saved_unix;          /* when it was last saved */
    char data[256];              /* what it was trained on (paths), NUL-terminated */
    char isa[16];                /* kernel set of the last run ("avx2", ...); "" when unknown */
    int32_t ranks;               /* processes of the last run (1 without MPI; 0 when unknown) */
} bprop_provenance;

/** A plain value: shape, parameters, standardisation and provenance. The buffers of a
 * computation belong to whoever runs it (a trainer, a workspace, or the call itself). */
typedef struct bprop_model {
    size_t inputs, hidden, classes;
    int has_bias;       /* 0: b1 and b2 are absent (and count 0 in the layout) */
    bprop_layout layout;
    float *params;      /* (layout.total) owned, 64-byte aligned: W1 (inputs, hidden) | b1 (hidden)
                           | W2 (hidden, classes) | b2 (classes) */
    float *std_mean;    /* (inputs) owned, NULL when inputs are used as given */
    float *std_scale;   /* (inputs) owned, NULL with std_mean */
    bprop_provenance info;
} bprop_model;

/** The layout of a model of this shape. @return BPROP_E_SIZE on zero or overflowing sizes. */
BPROP_API bprop_status bprop_layout_make(size_t inputs, size_t hidden, size_t classes, int has_bias,
                               bprop_layout *out);

/**
 * Create a model: W1 He-normal, N(0, 2/inputs); W2 N(0, 1/hidden), so the logits start with
 * about unit variance; zero biases. Draws come from the library's own generator seeded with seed.
 * @param out  receives a model the caller frees with bprop_model_free.
 */
BPROP_API bprop_status bprop_model_create(size_t inputs, size_t hidden, size_t classes, int has_bias,
                                uint64_t seed, bprop_model **out, bprop_error *err);
/** Deep copy. */
BPROP_API bprop_status bprop_model_clone(const bprop_model *m, bprop_model **out, bprop_error *err);
BPROP_API void bprop_model_free(bprop_model *m);

/** Pointer to tensor t inside m->params (W1, b1, W2, b2); NULL for an absent bias. */
BPROP_API float *bprop_model_tensor(const bprop_model *m, bprop_tensor t);
/** "W1", "b1", "W2", "b2". */
BPROP_API const char *bprop_tensor_name(bprop_tensor t);

/** Store standardisation statistics (copied) in the model; NULL mean removes them. */
BPROP_API bprop_status bprop_model_set_standardization(bprop_model *m, const float *mean, const float *scale);

/**
 * Make d ready for m: checks d->dim == m->inputs and labels < m->classes, then applies the
 * model's standardisation (if any) to d in place.
 */
BPROP_API bprop_status bprop_model_prepare_data(const bprop_model *m, bprop_dataset *d, bprop_error *err);

/**
 * Save m to path in the bprop model format (versioned, CRC-32 checked). The file is written to a
 * temporary name beside path and renamed over it, so an existing file is never half-written.
 */
BPROP_API bprop_status bprop_model_save(const bprop_model *m, const char *path, bprop_error *err);
/** Load a model saved by bprop_model_save. */
BPROP_API bprop_status bprop_model_load(const char *path, bprop_model **out, bprop_error *err);

/* ------------------------------------------------------------------------------------------ */
/* NumPy interop: a model as a directory of .npy files (little-endian float32, C order), one per
 * tensor, which numpy.load reads as they are. */

/** The files of an exported model; also the bits of bprop_model_import_npy's *rounded. */
typedef enum bprop_npy_file {
    BPROP_NPY_W1 = 0, /* W1.npy (inputs, hidden) */
    BPROP_NPY_B1,     /* b1.npy (hidden), only with biases */
    BPROP_NPY_W2,     /* W2.npy (hidden, classes) */
    BPROP_NPY_B2,     /* b2.npy (classes), only with biases */
    BPROP_NPY_MEAN,   /* mean.npy (inputs), only with standardisation */
    BPROP_NPY_SCALE,  /* scale.npy (inputs), only with standardisation */
    BPROP_NPY_FILES   /* number of files, not a file */
} bprop_npy_file;

/** "W1.npy", "b1.npy", "W2.npy", "b2.npy", "mean.npy", "scale.npy". */
BPROP_API const char *bprop_npy_file_name(bprop_npy_file f);

/**
 * Write m's tensors (and standardisation statistics) to dir as .npy files ('<f4', format 1.0),
 * creating dir and its missing parents. Each file is written atomically (temporary + rename);
 * b1/b2 (mean/scale) left in dir by an earlier export are removed when m has none, so dir always
 * describes exactly m.
 * @return BPROP_E_NONFINITE for a NaN or infinite value (nothing is written), BPROP_E_IO.
 */
BPROP_API bprop_status bprop_model_export_npy(const bprop_model *m, const char *dir, bprop_error *err);

/**
 * Build a model from a directory written by bprop_model_export_npy or by numpy.save: W1.npy and
 * W2.npy required, b1.npy and b2.npy both or neither, mean.npy and scale.npy both or neither.
 * Each file: NPY format 1.0, 2.0 or 3.0, dtype '<f4' or '<f8' (rounded to float32), C order,
 * the shapes chaining as above, data exactly as long as the shape, every value finite. The model
 * gets fresh provenance: created now, data = dir, default settings, no training history.
 * @param out      receives a model the caller frees with bprop_model_free; NULL on failure.
 * @param rounded  NULL, or receives bit (1u << f) for each bprop_npy_file f that held float64.
 * @return BPROP_E_IO (a file missing or unreadable), BPROP_E_FORMAT (header, dtype, order,
 *         length), BPROP_E_MISMATCH (shapes that do not chain, half a pair),
 *         BPROP_E_NONFINITE, BPROP_E_SIZE; the message names the file and what is wrong.
 */
BPROP_API bprop_status bprop_model_import_npy(const char *dir, bprop_model **out, unsigned *rounded,
                                    bprop_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Inference and gradients. These calls only read the model: several threads may call them on
 * one model at once and get bit for bit the results of calls made one at a time. */

typedef struct bprop_eval {
    double loss;      /* mean cross-entropy */
    double accuracy;  /* fraction correct, in [0, 1] */
    size_t n;         /* samples evaluated */
} bprop_eval;

/**
 * Mean loss and accuracy of m on labelled d (already prepared). Parallel over samples.
 * @param confusion  NULL, or caller-owned (classes, classes) counts: [true][predicted].
 * @param threads    0: omp_get_max_threads().
 */
BPROP_API bprop_status bprop_evaluate(const bprop_model *m, const bprop_dataset *d, int threads,
                            bprop_eval *out, uint64_t *confusion, bprop_error *err);

/**
 * Class probabilities for n samples.
 * @param x      (n, inputs), already standardised if the model is
 * @param probs  caller-owned (n, classes) output
 */
BPROP_API bprop_status bprop_predict(const bprop_model *m, const float *x, size_t n, int threads,
                           float *probs, bprop_error *err);

/**
 * Mean loss over (x, y) and its gradient with respect to every parameter, through the same
 * parallel code path as training (thread-local buffers, fixed-order reduction), with no update.
 * @param grad  caller-owned (layout.total) output; loss may be NULL.
 */
BPROP_API bprop_status bprop_loss_grad(const bprop_model *m, const float *x, const int32_t *y, size_t n,
                             int threads, double *loss, float *grad, bprop_error *err);

/**
 * Compute buffers for bprop_evaluate_ws, bprop_predict_ws and bprop_loss_grad_ws. The plain
 * calls above build and free their buffers on every call; a caller that makes many calls may
 * keep a workspace and pass it instead, so that repeated calls allocate nothing. A workspace
 * fits itself to each call's model shape and thread count (rebuilding its buffers when they
 * change) and serves one call at a time: a call that finds it in use by another thread fails
 * with BPROP_E_ARG. The model stays a plain value that concurrent calls may share.
 */
typedef struct bprop_workspace bprop_workspace;

BPROP_API bprop_status bprop_workspace_create(bprop_workspace **out, bprop_error *err);
/** Free a workspace and its buffers; NULL is allowed. */
BPROP_API void bprop_workspace_free(bprop_workspace *ws);

/** bprop_evaluate with the buffers of ws; the same results bit for bit. */
BPROP_API bprop_status bprop_evaluate_ws(bprop_workspace *ws, const bprop_model *m,
                                         const bprop_dataset *d, int threads, bprop_eval *out,
                                         uint64_t *confusion, bprop_error *err);
/** bprop_predict with the buffers of ws; the same results bit for bit. */
BPROP_API bprop_status bprop_predict_ws(bprop_workspace *ws, const bprop_model *m, const float *x,
                                        size_t n, int threads, float *probs, bprop_error *err);
/** bprop_loss_grad with the buffers of ws; the same results bit for bit. */
BPROP_API bprop_status bprop_loss_grad_ws(bprop_workspace *ws, const bprop_model *m, const float *x,
                                          const int32_t *y, size_t n, int threads, double *loss,
                                          float *grad, bprop_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Training. */

typedef struct bprop_epoch_stats {
    size_t epoch;            /* 1-based epoch index within this trainer */
    size_t steps;            /* SGD steps taken in the epoch */
    double train_loss;       /* running mean of the batch losses over the epoch */
    double train_acc;        /* running accuracy over the epoch */
    double seconds;          /* wall time of the epoch */
    double samples_per_s;    /* training samples per second */
    double reduce_seconds;   /* part of seconds spent summing buffers and updating parameters */
    double lr;               /* learning rate of the epoch's last step */
    double grad_norm[BPROP_TENSORS]; /* RMS over steps of each tensor's loss-gradient norm */
} bprop_epoch_stats;

/** Called by one thread between steps; return non-zero to stop the epoch early (the epoch then
 * returns BPROP_OK with the steps done so far). It must not touch the model, nor read it:
 * during an epoch the model's W1 (and the trainer's momentum) may lag behind the steps, which
 * a hidden split keeps in buffers of its own; both are current whenever bprop_trainer_epoch
 * has returned. With several
 * processes (bprop_trainer_create_comm) the answers are not combined: every rank must return
 * the same value at the same step, or the ranks fall out of step. To stop from any one rank,
 * use bprop_trainer_set_cancel, whose flags the trainer combines over the ranks. */
typedef int (*bprop_progress_fn)(void *user, size_t step, size_t steps, double loss, double acc);

typedef struct bprop_trainer bprop_trainer;

/**
 * Set up training of m with c: thread-local gradient buffers, momentum, a permutation of
 * n_train samples; nothing is allocated per step afterwards. The trainer borrows m (which must
 * outlive it) and updates m->info as epochs complete.
 */
BPROP_API bprop_status bprop_trainer_create(bprop_model *m, const bprop_train_config *c, size_t n_train,
                                  bprop_trainer **out, bprop_error *err);
/**
 * One epoch over train (prepared, train->n == n_train). Deterministic: the same model, settings,
 * data and thread count give bitwise-identical parameters.
 * @param progress  NULL or a callback; stats may be NULL.
 * @return BPROP_E_DIVERGED when the loss becomes non-finite (parameters are then unusable).
 */
BPROP_API bprop_status bprop_trainer_epoch(bprop_trainer *t, const bprop_dataset *train,
                                 bprop_progress_fn progress, void *user,
                                 bprop_epoch_stats *stats, bprop_error *err);
/**
 * A group of processes that train one model together; bprop_mpi.h makes one from an MPI
 * communicator. Every callback returns 0 on success and works in place on every rank.
 * sum_f32 and gather_f32 may be NULL. Without sum_f32, float-sum training widens its gradient
 * to double for sum_f64 (twice the bytes); given, it must return the same bits on every rank, and
 * the same bits for the same inputs on the same layout. Without gather_f32, exact sums always
 * travel as int64 through sum_i64; with it, a step where no rank holds more than one block of
 * samples (on up to 3 ranks) sends each rank's block as floats instead, with the same result.
 * The optional run callbacks below split the update over the ranks (each rank updates a run of
 * the parameters) without changing a bit of the result.
 */
typedef struct bprop_comm {
    int rank, size;  /* this process, and how many take part */
    void *ctx;       /* passed to the callbacks; owned by whoever made the comm */
    int (*sum_i64)(void *ctx, int64_t *buf, size_t n); /* elementwise sum (exact in any order) */
    int (*sum_f64)(void *ctx, double *buf, size_t n);  /* elementwise sum (statistics only) */
    int (*max_f64)(void *ctx, double *buf, size_t n);  /* elementwise maximum */
    int (*sum_f32)(void *ctx, float *buf, size_t n);   /* elementwise float sum (gradients of
                                                          float-sum training), or NULL */
    int (*gather_f32)(void *ctx, const float *mine, float *all, size_t n); /* every rank's n
                            values: rank r's at all + r n, all (size, n); or NULL */
    /* The next two split the update of float-sum training over the ranks when both are given:
     * buf holds counts[0] + ... + counts[size - 1] floats, rank r's run starting after the
     * runs of ranks 0 .. r - 1; every count is below 2^31. */
    int (*sum_scatter_f32)(void *ctx, float *buf, const size_t *counts); /* this rank's run
                            becomes the elementwise sum over ranks (the bits sum_f32 would give
                            it); the rest of buf is undefined after; or NULL */
    int (*gather_runs_f32)(void *ctx, float *buf, const size_t *counts); /* in place: every
                            rank's run of buf from that rank; or NULL */
    /* The next two, with gather_runs_f32, split the update of exact-sum (--reproducible)
     * training over the ranks, on the same runs. */
    int (*sum_scatter_i64)(void *ctx, int64_t *buf, const size_t *counts); /* this rank's run
                            becomes the elementwise sum over ranks (exact); the rest of buf is
                            undefined after; or NULL */
    int (*runs_to_owners_f32)(void *ctx, const float *mine, float *out, const size_t *counts);
                            /* every rank's values of this rank's run r: rank q's counts[r]
                               values at out + q counts[r], out (size, counts[r]); or NULL */
} bprop_comm;

/**
 * bprop_trainer_create for one rank of a multi-process run: every rank holds the same model,
 * settings and training data; each takes a fixed share of every batch, and gradients are
 * combined through comm so that the parameters are bitwise those of a single process.
 * @param comm  borrowed, must outlive the trainer; NULL is a single process.
 */
BPROP_API bprop_status bprop_trainer_create_comm(bprop_model *m, const bprop_train_config *c,
                                       size_t n_train, const bprop_comm *comm,
                                       bprop_trainer **out, bprop_error *err);

/**
 * Let the caller stop a run: the trainer reads *flag between steps, and when it is non-zero
 * finishes the step in progress and returns BPROP_E_CANCELLED from bprop_trainer_epoch, with
 * bprop_trainer_state describing the exact point reached (so a checkpoint taken then resumes
 * bitwise). A signal handler may set the flag. NULL removes it. With several processes the
 * ranks' flags are combined in each step's collective: a flag raised on any rank stops every
 * rank after the same step.
 */
BPROP_API void bprop_trainer_set_cancel(bprop_trainer *t, const volatile sig_atomic_t *flag);

/** Where a run stands, for checkpoints: scalars are copies, arrays point into the trainer. */
typedef struct bprop_trainer_state {
    uint64_t epoch;          /* epochs completed by this trainer */
    uint64_t step;           /* steps done in the epoch in progress (0 at an epoch boundary) */
    uint64_t rng[4];         /* shuffling generator */
    size_t n_train;          /* length of perm */
    const size_t *perm;      /* (n_train) sample order of the epoch in progress */
    size_t params;           /* length of velocity */
    const float *velocity;   /* (params) momentum buffer */
    /* Running sums of the epoch in progress, so its statistics come out as without a stop. */
    uint64_t seen, correct;
    double loss, reduce_seconds, seconds;
    double norm2_sum[BPROP_TENSORS];
} bprop_trainer_state;

/** Fill s; its pointers stay valid until the next call on t. */
BPROP_API void bprop_trainer_get_state(const bprop_trainer *t, bprop_trainer_state *s);
/**
 * Put t where s says (from bprop_trainer_get_state of a trainer with the same settings, data
 * size and model shape): the next bprop_trainer_epoch continues the interrupted epoch.
 * @return BPROP_E_MISMATCH when n_train or params differ from t's.
 */
BPROP_API bprop_status bprop_trainer_set_state(bprop_trainer *t, const bprop_trainer_state *s,
                                     bprop_error *err);

/** Threads the trainer asks OpenMP for (the team that ran is in model->info.threads). */
BPROP_API int bprop_trainer_threads(const bprop_trainer *t);
BPROP_API void bprop_trainer_free(bprop_trainer *t);

/* ------------------------------------------------------------------------------------------ */
/* Checkpoints: everything a training run needs to continue, bitwise, where it stopped. */

/**
 * Told the name of the temporary file a save is writing (once it exists) and then NULL (once it
 * has been renamed into place or removed). Lets a signal handler remove a half-written file: the
 * call happens on the saving thread, and tmp stays valid until the NULL call.
 */
typedef void (*bprop_tempfile_fn)(void *user, const char *tmp);

/** bprop_model_save, telling on_temp (may be NULL) the temporary file's name. */
BPROP_API bprop_status bprop_model_save_notify(const bprop_model *m, const char *path,
                                               bprop_tempfile_fn on_temp, void *user,
                                               bprop_error *err);

/** A data set as a checkpoint describes it, so a resumed run can tell whether it sees the same
 * data. n = 0 means the run has no such set. */
typedef struct bprop_data_desc {
    uint64_t n, dim, classes;
    uint64_t hash; /* bprop_dataset_hash of the set as the trainer saw it (prepared) */
} bprop_data_desc;

/**
 * The data hash: 64 bits over a data set's n, dim and classes, the bit pattern of every feature
 * (row-major, as the float the trainer reads) and every label. Checkpoints record it for each
 * of their sets (bprop_data_desc.hash), and bprop-mpi compares it across ranks
 * (bprop_mpi_check_dataset). Equal sets hash equally on every platform; changing any one
 * feature or label always changes the hash. Not cryptographic: it detects changed data, not
 * forged data. The algorithm is part of the checkpoint format and fixed (docs/formats.md, "The
 * data hash").
 * @return 0 for NULL.
 */
BPROP_API uint64_t bprop_dataset_hash(const bprop_dataset *d);
/** n, dim, classes and hash of d; all zero for NULL. */
BPROP_API bprop_data_desc bprop_data_describe(const bprop_dataset *d);

/** One finished epoch's figures, as `bprop train` reports them; NaN for a figure not measured. */
typedef struct bprop_epoch_record {
    uint64_t epoch, steps;
    int32_t threads;
    double train_loss, train_acc, test_loss, test_acc, val_loss, val_acc;
    double samples_per_s, seconds, reduce_seconds, lr;
    double grad_norm[BPROP_TENSORS];
} bprop_epoch_record;

/** Longest settings text a checkpoint holds, in bytes. */
#define BPROP_CHECKPOINT_SETTINGS_MAX ((size_t)1 << 20)

/**
 * A training run at one point: model, run settings, trainer state, data description, the
 * figures of the epochs finished so far and the caller's own settings.
 * For bprop_checkpoint_save every pointer is borrowed. From bprop_checkpoint_load the checkpoint
 * owns everything it points to (model, state.perm, state.velocity, records, settings): free it
 * with bprop_checkpoint_free, or take the model by setting ck->model to NULL first.
 */
typedef struct bprop_checkpoint {
    bprop_model *model;          /* parameters, standardisation and provenance */
    bprop_train_config config;   /* the run's settings (config.epochs: the schedule's length) */
    bprop_trainer_state state;   /* from bprop_trainer_get_state */
    uint64_t steps_per_epoch;    /* ceil(state.n_train / config.batch): with state.epoch and
                                    state.step, where the run stands in its schedule */
    bprop_data_desc train, val, test;
    size_t n_records;
    const bprop_epoch_record *records; /* (n_records) the finished epochs' figures, in order */
    const char *settings;        /* NULL, or the caller's own settings as NUL-terminated text
                                    (the CLI writes key=value lines), at most
                                    BPROP_CHECKPOINT_SETTINGS_MAX bytes */
    int64_t saved_unix;          /* load: when the file was written; ignored by save */
} bprop_checkpoint;

/**
 * Write ck to path (format: docs/formats.md, "Checkpoint files"): versioned, little-endian, CRC-32
 * checked, written to a temporary file beside path and renamed over it, so path always holds
 * either its old contents or the whole new checkpoint.
 * @param on_temp  NULL, or told the temporary file's name (see bprop_tempfile_fn)
 * @return BPROP_E_NONFINITE for a NaN or infinite parameter or momentum (nothing is written),
 *         BPROP_E_ARG for inconsistent sizes (state against model, data or batch).
 */
BPROP_API bprop_status bprop_checkpoint_save(const bprop_checkpoint *ck, const char *path,
                                             bprop_tempfile_fn on_temp, void *user,
                                             bprop_error *err);
/**
 * Read a checkpoint written by bprop_checkpoint_save, checking magic, version, header, sizes
 * against the file length (before allocating), CRC-32, trailing bytes, finite values and that
 * the permutation is one.
 * @param out  receives a checkpoint the caller frees with bprop_checkpoint_free.
 */
BPROP_API bprop_status bprop_checkpoint_load(const char *path, bprop_checkpoint **out,
                                             bprop_error *err);
/** Free a loaded checkpoint and everything it owns (its model unless set to NULL); NULL is
 * allowed. */
BPROP_API void bprop_checkpoint_free(bprop_checkpoint *ck);
/** 1 when the file at path starts with the checkpoint magic "BPROPCKP", else 0. */
BPROP_API int bprop_is_checkpoint(const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Kernels. Each hot loop is compiled once per x86-64 level (generic vectors, AVX2+FMA,
 * AVX-512F); the widest the CPU supports is used, or the one named by the environment variable
 * BPROP_ISA (generic, avx2, avx512). The choice is made from the environment and the CPU when a
 * trainer, or the buffers of an evaluate, predict or loss_grad call, are set up; nothing of it
 * is kept process-wide. */

/** Name of the kernel set that BPROP_ISA and the CPU choose now ("generic", "avx2" or "avx512"). */
BPROP_API const char *bprop_isa(void);
/**
 * Check that the kernel set chosen is the one asked for: BPROP_E_ISA with a message when
 * BPROP_ISA names an unknown set or one this CPU cannot run (the generic kernels are then used,
 * so nothing dies of an illegal instruction). Programs call it once at startup.
 */
BPROP_API bprop_status bprop_isa_check(bprop_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Gradient checking: backprop against finite differences in double precision. */

typedef enum bprop_fd_method { BPROP_FD_CENTRAL = 0, BPROP_FD_FORWARD } bprop_fd_method;

/** How many worst entries each tensor report keeps. */
#define BPROP_GRADCHECK_WORST 5

typedef struct bprop_gradcheck_config {
    bprop_fd_method method;
    double step;       /* relative step: h = step * max(1, |theta|); default 1e-4 central,
                          1e-7 forward */
    size_t samples;    /* 0: check every parameter; K: K random parameters per tensor */
    uint64_t seed;     /* choice of the sampled parameters */
    int threads;       /* 0: omp_get_max_threads() */
} bprop_gradcheck_config;

typedef struct bprop_gradcheck_entry {
    size_t index;      /* index within the tensor */
    double backprop;   /* analytic gradient (float backprop, widened) */
    double numeric;    /* finite-difference gradient (double precision) */
    double abs_error;  /* |backprop - numeric| */
} bprop_gradcheck_entry;

typedef struct bprop_gradcheck_tensor {
    size_t checked;    /* entries compared (kinks excluded) */
    size_t kinks;      /* entries skipped: a perturbation moved a hidden unit across zero */
    double rel_error;  /* ||a - b|| / (||a|| + ||b||) over the compared entries; 0 if both 0 */
    double max_abs_error;
    size_t worst_count;
    bprop_gradcheck_entry worst[BPROP_GRADCHECK_WORST]; /* largest abs_error first */
} bprop_gradcheck_tensor;

typedef struct bprop_gradcheck_report {
    bprop_gradcheck_tensor tensor[BPROP_TENSORS];
    double max_rel_error;   /* largest rel_error over the tensors */
    size_t forward_passes;  /* loss evaluations the finite differences used */
    double seconds_backprop, seconds_fd;
} bprop_gradcheck_report;

BPROP_API void bprop_gradcheck_config_default(bprop_gradcheck_config *c);

/**
 * Compare bprop_loss_grad with finite differences of the double-precision loss on (x, y).
 * @param grad_override  NULL, or a (layout.total) gradient to check instead of backprop's
 *                       (lets a test plant an error).
 */
BPROP_API bprop_status bprop_gradcheck(const bprop_model *m, const float *x, const int32_t *y, size_t n,
                             const bprop_gradcheck_config *c, const float *grad_override,
                             bprop_gradcheck_report *out, bprop_error *err);

/** Mean cross-entropy of parameters theta (layout of m, double precision) on (x, y): the
 * reference that finite differences use. */
BPROP_API double bprop_loss_double(const bprop_model *m, const double *theta, const float *x,
                         const int32_t *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* BPROP_H */
