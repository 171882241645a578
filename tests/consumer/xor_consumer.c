/* xor_consumer.c: learns XOR through the installed public API only (the library example). */
#include <bprop.h>

#include <stdio.h>

int main(void)
{
    bprop_dataset *data = NULL;
    bprop_model *model = NULL;
    bprop_trainer *trainer = NULL;
    bprop_error err = {0};
    int rc = 1;

    /* 64 copies of the four XOR cases: two inputs, two classes. */
    if (bprop_dataset_alloc(64, 2, 2, 1, &data, &err) != BPROP_OK)
        goto out;
    for (size_t i = 0; i < data->n; i++) {
        int a = i & 1, b = (i >> 1) & 1;
        data->x[2 * i] = (float)a;
        data->x[2 * i + 1] = (float)b;
        data->y[i] = a ^ b;
    }
    bprop_train_config cfg;
    bprop_train_config_default(&cfg);
    cfg.epochs = 100;
    cfg.batch = 8;
    if (bprop_model_create(2, 16, 2, 1, cfg.seed, &model, &err) != BPROP_OK ||
        bprop_trainer_create(model, &cfg, data->n, &trainer, &err) != BPROP_OK)
        goto out;
    for (size_t e = 0; e < cfg.epochs; e++)
        if (bprop_trainer_epoch(trainer, data, NULL, NULL, NULL, &err) != BPROP_OK)
            goto out;
    bprop_eval ev;
    if (bprop_evaluate(model, data, 0, &ev, NULL, &err) != BPROP_OK)
        goto out;
    printf("xor: loss %.4f accuracy %.2f (bprop %s)\n", ev.loss, ev.accuracy, BPROP_VERSION_STRING);
    rc = ev.accuracy == 1.0 ? 0 : 2;
out:
    if (err.status != BPROP_OK)
        fprintf(stderr, "xor_consumer: %s (%s)\n", err.message, bprop_strerror(err.status));
    bprop_trainer_free(trainer);
    bprop_model_free(model);
    bprop_dataset_free(data);
    return rc;
}
