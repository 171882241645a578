/* json.h: a small streaming JSON writer for the CLI's machine-readable output. */
#ifndef BPROP_CLI_JSON_H
#define BPROP_CLI_JSON_H

#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 8

/* Writes one JSON value to f; keys and commas are placed automatically. */
typedef struct json_writer {
    FILE *f;
    int depth;
    int count[JSON_MAX_DEPTH]; /* members written at each open level */
} json_writer;

void json_init(json_writer *j, FILE *f);
/* key is NULL inside arrays and at the top level. */
void json_object_begin(json_writer *j, const char *key);
void json_object_end(json_writer *j);
void json_array_begin(json_writer *j, const char *key);
void json_array_end(json_writer *j);
/* Non-finite numbers become null, which JSON can express and NaN cannot. */
void json_real(json_writer *j, const char *key, double v);
/* A single-precision value: 7 significant digits, so 0.9f prints as 0.9. */
void json_float(json_writer *j, const char *key, float v);
void json_uint(json_writer *j, const char *key, uint64_t v);
void json_int(json_writer *j, const char *key, int64_t v);
void json_bool(json_writer *j, const char *key, int v);
void json_null(json_writer *j, const char *key);
void json_string(json_writer *j, const char *key, const char *s); /* NULL writes null */

#endif /* BPROP_CLI_JSON_H */
