/* json.c: a small streaming JSON writer (escaping, nesting, null for non-finite numbers). */
#include "json.h"

#include <inttypes.h>
#include <math.h>

void json_init(json_writer *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
}

static void put_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Comma and key before a value at the current level. */
static void member(json_writer *j, const char *key)
{
    if (j->count[j->depth]++ > 0)
        fputc(',', j->f);
    if (key) {
        put_escaped(j->f, key);
        fputc(':', j->f);
    }
}

static void open_level(json_writer *j, const char *key, char c)
{
    member(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH)
        j->count[++j->depth] = 0;
}

static void close_level(json_writer *j, char c)
{
    fputc(c, j->f);
    if (j->depth > 0)
        j->depth--;
}

void json_object_begin(json_writer *j, const char *key) { open_level(j, key, '{'); }
void json_object_end(json_writer *j) { close_level(j, '}'); }
void json_array_begin(json_writer *j, const char *key) { open_level(j, key, '['); }
void json_array_end(json_writer *j) { close_level(j, ']'); }

void json_real(json_writer *j, const char *key, double v)
{
    member(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.8g", v);
    else
        fputs("null", j->f);
}

void json_float(json_writer *j, const char *key, float v)
{
    member(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.7g", (double)v);
    else
        fputs("null", j->f);
}

void json_uint(json_writer *j, const char *key, uint64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void json_int(json_writer *j, const char *key, int64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRId64, v);
}

void json_bool(json_writer *j, const char *key, int v)
{
    member(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_null(json_writer *j, const char *key)
{
    member(j, key);
    fputs("null", j->f);
}

void json_string(json_writer *j, const char *key, const char *s)
{
    member(j, key);
    if (s)
        put_escaped(j->f, s);
    else
        fputs("null", j->f);
}
