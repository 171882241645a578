/* mpi_consumer.c: learns XOR on every rank of an MPI job through the installed bprop_mpi.h,
 * then checks that all ranks hold the same parameters. */
#include <bprop_mpi.h>

#include <stdio.h>
#include <string.h>

/* FNV-1a over the parameter bytes: equal on every rank when the models are. */
static uint64_t params_hash(const bprop_model *m)
{
    const unsigned char *p = (const unsigned char *)m->params;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m->layout.total * sizeof *m->params; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int train(const bprop_comm *comm, bprop_error *err)
{
    bprop_dataset *data = NULL;
    bprop_model *model = NULL;
    bprop_trainer *trainer = NULL;
    bprop_train_config cfg;
    bprop_train_config_default(&cfg);
    cfg.epochs = 100;
    cfg.batch = 8;
    cfg.threads = 1;
    bprop_status st = bprop_dataset_alloc(64, 2, 2, 1, &data, err);
    for (size_t i = 0; st == BPROP_OK && i < data->n; i++) {
        int a = i & 1, b = (i >> 1) & 1;
        data->x[2 * i] = (float)a;
        data->x[2 * i + 1] = (float)b;
        data->y[i] = a ^ b;
    }
    if (st == BPROP_OK)
        st = bprop_model_create(2, 16, 2, 1, cfg.seed, &model, err);
    /* Every step below either fails on no rank or is agreed on, so no rank waits alone. */
    st = bprop_mpi_agree(bprop_mpi_comm_get(comm), st, err);
    if (st == BPROP_OK)
        st = bprop_mpi_check_dataset(bprop_mpi_comm_get(comm), data, "XOR data", err);
    if (st == BPROP_OK)
        st = bprop_mpi_agree(bprop_mpi_comm_get(comm),
                             bprop_mpi_trainer_create(model, &cfg, data->n, comm, &trainer, err), err);
    for (size_t e = 0; st == BPROP_OK && e < cfg.epochs; e++)
        st = bprop_trainer_epoch(trainer, data, NULL, NULL, NULL, err);
    bprop_eval ev = {0};
    if (st == BPROP_OK)
        st = bprop_evaluate(model, data, 1, &ev, NULL, err);
    if (st == BPROP_OK)
        st = bprop_mpi_check_same(bprop_mpi_comm_get(comm), params_hash(model), "the model", err);
    if (st == BPROP_OK && comm->rank == 0)
        printf("mpi xor: %d ranks (recorded %d), loss %.4f accuracy %.2f\n", comm->size,
               (int)model->info.ranks, ev.loss, ev.accuracy);
    int ok = st == BPROP_OK && ev.accuracy == 1.0 && model->info.ranks == comm->size;
    bprop_trainer_free(trainer);
    bprop_model_free(model);
    bprop_dataset_free(data);
    return st != BPROP_OK ? 1 : ok ? 0 : 2;
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    bprop_comm comm;
    bprop_error err = {0};
    int rc = bprop_mpi_comm_init(MPI_COMM_WORLD, &comm, &err) == BPROP_OK ? train(&comm, &err) : 1;
    if (rc == 1)
        fprintf(stderr, "mpi_consumer: %s\n", err.message);
    bprop_mpi_comm_free(&comm);
    MPI_Finalize();
    return rc;
}
