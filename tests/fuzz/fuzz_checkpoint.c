/* fuzz_checkpoint.c: libFuzzer target for the checkpoint loader: arbitrary bytes must load or
 * fail with one error line, never crash, leak or read out of bounds. */
#define _POSIX_C_SOURCE 200809L
#include "bprop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loader reads files (it checks sizes against the file's length), so go through one. */
    char path[] = "/tmp/bprop-fuzz-ckpt-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(path);
        return 0;
    }
    /* Random bytes almost never carry a right CRC-32, which would stop every input at the
     * checksum: for inputs of even length, write a correct one so the checks after it run. */
    uint8_t crc[4];
    size_t body = size >= 8 && size % 2 == 0 ? size - 4 : size;
    uint32_t c32 = (uint32_t)crc32(0L, data, (uInt)body);
    for (int i = 0; i < 4; i++)
        crc[i] = (uint8_t)(c32 >> (8 * i));
    size_t wrote = body ? fwrite(data, 1, body, f) : 0;
    if (body < size)
        wrote += fwrite(crc, 1, 4, f);
    fclose(f);
    if (wrote == size) {
        bprop_checkpoint *ck = NULL;
        bprop_error err = {0};
        bprop_status st = bprop_checkpoint_load(path, &ck, &err);
        if (st == BPROP_OK) {
            /* A loaded checkpoint must be usable: a trainer takes its state back. */
            bprop_trainer *t = NULL;
            bprop_train_config c = ck->config;
            c.threads = 1;
            if (bprop_trainer_create(ck->model, &c, ck->state.n_train, &t, NULL) == BPROP_OK &&
                bprop_trainer_set_state(t, &ck->state, NULL) != BPROP_OK)
                abort();
            bprop_trainer_free(t);
            bprop_checkpoint_free(ck);
        } else if (!err.message[0] || strchr(err.message, '\n')) {
            abort(); /* every failure explains itself on one line */
        }
        (void)bprop_is_checkpoint(path);
    }
    unlink(path);
    return 0;
}
