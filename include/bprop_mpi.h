/* bprop_mpi.h: multi-process training over MPI (libbprop_mpi); bprop.h itself needs no MPI. */
#ifndef BPROP_MPI_H
#define BPROP_MPI_H

#include <mpi.h>

#include "bprop.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Make a bprop_comm over the processes of comm (typically MPI_COMM_WORLD). Collective: every
 * rank of comm calls it. The bprop_comm works on a duplicate of comm (so bprop's traffic never
 * meets the caller's) whose errors are returned, not fatal; sum_i64, sum_f64, max_f64 and
 * sum_f32 are MPI_Allreduce with MPI_IN_PLACE (MPI_INT64_T / MPI_DOUBLE / MPI_FLOAT, MPI_SUM /
 * MPI_MAX) and gather_f32 is MPI_Allgather of floats, split into pieces of at most INT_MAX / 2
 * elements; sum_scatter_f32, sum_scatter_i64 and gather_runs_f32 are rings of MPI_Sendrecv and
 * runs_to_owners_f32 a pairwise MPI_Sendrecv exchange; all return 0 or the MPI error code.
 * MPI must be initialised, with MPI_Init_thread asking for MPI_THREAD_SERIALIZED: the trainer
 * calls the callbacks from one thread at a time, which need not be the main thread.
 * @param out  filled on success; release it with bprop_mpi_comm_free before MPI_Finalize.
 * @return BPROP_E_COMM when duplicating comm fails, BPROP_E_NOMEM.
 */
BPROP_API bprop_status bprop_mpi_comm_init(MPI_Comm comm, bprop_comm *out, bprop_error *err);

/** Release what bprop_mpi_comm_init made (collective: MPI_Comm_free); zeroes c. NULL is allowed. */
BPROP_API void bprop_mpi_comm_free(bprop_comm *c);

/** The MPI communicator a bprop_comm from bprop_mpi_comm_init works on (borrowed). */
BPROP_API MPI_Comm bprop_mpi_comm_get(const bprop_comm *c);

/**
 * bprop_trainer_create_comm, and the model's provenance records the process count
 * (m->info.ranks = comm->size; the trainer records the threads). Every rank passes the same
 * model, settings and n_train.
 * @param comm  from bprop_mpi_comm_init; borrowed, must outlive the trainer.
 */
BPROP_API bprop_status bprop_mpi_trainer_create(bprop_model *m, const bprop_train_config *c,
                                                size_t n_train, const bprop_comm *comm,
                                                bprop_trainer **out, bprop_error *err);

/**
 * Agree on the outcome of a step that may fail on some ranks only (collective). Every rank
 * passes its own status and, when it is not BPROP_OK, its message in err. Every rank gets back
 * the status of the lowest-numbered failing rank (BPROP_OK when none failed) and, on failure,
 * err holds on every rank "rank R: <that rank's message>", followed by " (N of S ranks failed)"
 * when several did. Lets a program stop on every rank together, with one message.
 * @return BPROP_E_COMM (with a message) when the exchange itself fails.
 */
BPROP_API bprop_status bprop_mpi_agree(MPI_Comm comm, bprop_status st, bprop_error *err);

/** bprop_dataset_hash(d), the library's one data hash; kept for programs that call it. */
BPROP_API uint64_t bprop_mpi_dataset_hash(const bprop_dataset *d);

/**
 * Check that every rank holds the same value as rank 0 (collective: rank 0 broadcasts its
 * value, each rank compares its own, and bprop_mpi_agree combines the outcomes).
 * @param what  names the value in the message ("training data").
 * @return BPROP_E_MISMATCH on every rank when any rank differs; err then reads "rank R: <what>
 *         differs from rank 0's (hash H, rank 0 has H0)" for the lowest differing rank, plus
 *         " (N of S ranks failed)" when several do. BPROP_E_COMM when the exchange fails.
 */
BPROP_API bprop_status bprop_mpi_check_same(MPI_Comm comm, uint64_t value, const char *what,
                                            bprop_error *err);

/** bprop_mpi_check_same of bprop_dataset_hash(d): every rank holds the same data. */
BPROP_API bprop_status bprop_mpi_check_dataset(MPI_Comm comm, const bprop_dataset *d,
                                               const char *what, bprop_error *err);

#ifdef __cplusplus
}
#endif
#endif /* BPROP_MPI_H */
