/* cli_option.c: what each kind of option row does with its value: parse it from the command
 * line, print its help, show it in messages, record it in a checkpoint's settings and read it
 * back. */
#include "cli_option.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Help text starts in this column (counted from 0): "  --name ARG" is padded up to it. */
#define HELP_TEXT_COLUMN 23

int cli_option_is(const cli_option *r, const char *spelling)
{
    return strcmp(spelling, r->name) == 0 || (r->alias && strcmp(spelling, r->alias) == 0) ||
           (r->negation && strcmp(spelling, r->negation) == 0);
}

const cli_option *cli_option_find(const cli_option *rows, const char *spelling)
{
    for (const cli_option *r = rows; spelling && r->name; r++)
        if (cli_option_is(r, spelling))
            return r;
    return NULL;
}

static void *field_at(const cli_option *r, void *base) { return (char *)base + r->field; }

static const void *cfield_at(const cli_option *r, const void *base)
{
    return (const char *)base + r->field;
}

static int schedule_arg(cli_args *a, bprop_schedule *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (!rc && bprop_schedule_parse(s, out) != BPROP_OK)
        rc = cli_usage(a->rt, a->cmd, "%s: expected constant, step or cosine, got '%s'", a->opt, s);
    return rc;
}

static int parallel_arg(cli_args *a, bprop_parallel *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (!rc && bprop_parallel_parse(s, out) != BPROP_OK)
        rc = cli_usage(a->rt, a->cmd, "%s: expected auto, data or hidden, got '%s'", a->opt, s);
    return rc;
}

int cli_option_parse(const cli_option *r, cli_args *a, void *base)
{
    void *p = field_at(r, base);
    switch (r->kind) {
    case CLI_OPT_FLAG:
        *(int *)p = r->negation && strcmp(a->opt, r->negation) == 0 ? !r->set : r->set;
        return cli_flag(a);
    case CLI_OPT_SIZE:
        return cli_size(a, r->min, r->max, p);
    case CLI_OPT_INT:
        return cli_int(a, (int)r->min, (int)r->max, p);
    case CLI_OPT_U64:
        return cli_u64(a, p);
    case CLI_OPT_FLOAT:
        return cli_float(a, r->range, p);
    case CLI_OPT_REAL:
        return cli_real(a, r->range, p);
    case CLI_OPT_STRING:
        return cli_value(a, p);
    case CLI_OPT_SCHEDULE:
        return schedule_arg(a, p);
    case CLI_OPT_PARALLEL:
        return parallel_arg(a, p);
    }
    return cli_usage(a->rt, a->cmd, "%s: unknown option kind", a->opt);
}

/* The value as text: exact (as many digits as the type holds, for messages and the settings
 * text) or short (%g, for the help's defaults). Flags read "on"/"off", strings as they are. */
static const char *format(const cli_option *r, const void *base, int exact, char *buf, size_t n)
{
    const void *p = cfield_at(r, base);
    switch (r->kind) {
    case CLI_OPT_FLAG:
        return *(const int *)p ? "on" : "off";
    case CLI_OPT_SIZE:
        snprintf(buf, n, "%zu", *(const size_t *)p);
        break;
    case CLI_OPT_INT:
        snprintf(buf, n, "%d", *(const int *)p);
        break;
    case CLI_OPT_U64:
        snprintf(buf, n, "%" PRIu64, *(const uint64_t *)p);
        break;
    case CLI_OPT_FLOAT:
        snprintf(buf, n, exact ? "%.9g" : "%g", (double)*(const float *)p);
        break;
    case CLI_OPT_REAL:
        snprintf(buf, n, exact ? "%.17g" : "%g", *(const double *)p);
        break;
    case CLI_OPT_STRING:
        return *(const char *const *)p;
    case CLI_OPT_SCHEDULE:
        return bprop_schedule_name(*(const bprop_schedule *)p);
    case CLI_OPT_PARALLEL:
        return bprop_parallel_name(*(const bprop_parallel *)p);
    }
    return buf;
}

void cli_option_help(FILE *f, const cli_option *r, const void *defaults)
{
    char left[64], value[64];
    if (r->usage)
        snprintf(left, sizeof left, "%s", r->usage);
    else
        snprintf(left, sizeof left, "%s%s%s", r->name, r->metavar ? " " : "", r->metavar ? r->metavar : "");
    /* Two spaces after a left column that reaches the text column. */
    if (strlen(left) + 3 > HELP_TEXT_COLUMN)
        fprintf(f, "  %s  ", left);
    else
        fprintf(f, "  %-*s", HELP_TEXT_COLUMN - 2, left);
    static const char token[] = "{default}";
    for (const char *p = r->help; *p;) {
        if (defaults && strncmp(p, token, sizeof token - 1) == 0) {
            const char *v = format(r, defaults, 0, value, sizeof value);
            fputs(v ? v : "none", f);
            p += sizeof token - 1;
        } else if (*p == '\n') {
            fprintf(f, "\n%*s", HELP_TEXT_COLUMN, "");
            p++;
        } else {
            fputc(*p++, f);
        }
    }
    fputc('\n', f);
}

void cli_option_show(const cli_option *r, const void *base, char *buf, size_t size)
{
    char value[64];
    const char *v = format(r, base, 1, value, sizeof value);
    if (r->kind == CLI_OPT_FLAG)
        snprintf(buf, size, "%s %s", r->noun, v);
    else if (r->kind == CLI_OPT_STRING)
        snprintf(buf, size, "'%s'", v ? v : "(none)");
    else
        snprintf(buf, size, "%s", v);
}

const char *cli_option_record(const cli_option *r, const void *base, char *buf, size_t size)
{
    if (r->kind == CLI_OPT_FLAG) {
        snprintf(buf, size, "%d", *(const int *)cfield_at(r, base));
        return buf;
    }
    const char *v = format(r, base, 1, buf, size);
    return v;
}

/* Unsigned decimal, nothing before or after; 0 on success. */
static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-')
        return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    return *v && !*end && errno == 0 && isfinite(*out) ? 0 : -1;
}

/* The numeric kinds: the value must be one format() could have written. */
static int apply_number(const cli_option *r, void *p, const char *v)
{
    uint64_t u = 0;
    double d = 0.0;
    switch (r->kind) {
    case CLI_OPT_FLAG:
        if (parse_u64(v, &u) || u > 1)
            return -1;
        *(int *)p = (int)u;
        return 0;
    case CLI_OPT_SIZE:
        if (parse_u64(v, &u) || u > SIZE_MAX)
            return -1;
        *(size_t *)p = (size_t)u;
        return 0;
    case CLI_OPT_INT: {
        int neg = v[0] == '-';
        if (parse_u64(v + neg, &u) || u > (uint64_t)INT32_MAX)
            return -1;
        *(int *)p = neg ? -(int)u : (int)u;
        return 0;
    }
    case CLI_OPT_U64:
        return parse_u64(v, p);
    default:
        break;
    }
    if (parse_double(v, &d) || !cli_in_range(d, r->range))
        return -1;
    if (r->kind == CLI_OPT_FLOAT)
        *(float *)p = (float)d;
    else
        *(double *)p = d;
    return 0;
}

int cli_option_apply(const cli_option *r, void *base, const char *value)
{
    void *p = field_at(r, base);
    switch (r->kind) {
    case CLI_OPT_STRING:
        *(const char **)p = value;
        return 0;
    case CLI_OPT_SCHEDULE:
        return bprop_schedule_parse(value, p) == BPROP_OK ? 0 : -1;
    case CLI_OPT_PARALLEL:
        return bprop_parallel_parse(value, p) == BPROP_OK ? 0 : -1;
    default:
        return apply_number(r, p, value);
    }
}

void cli_option_copy(const cli_option *r, void *dst, const void *src)
{
    static const size_t bytes[] = {
        [CLI_OPT_FLAG] = sizeof(int), [CLI_OPT_SIZE] = sizeof(size_t), [CLI_OPT_INT] = sizeof(int),
        [CLI_OPT_U64] = sizeof(uint64_t), [CLI_OPT_FLOAT] = sizeof(float),
        [CLI_OPT_REAL] = sizeof(double), [CLI_OPT_STRING] = sizeof(const char *),
        [CLI_OPT_SCHEDULE] = sizeof(bprop_schedule), [CLI_OPT_PARALLEL] = sizeof(bprop_parallel)};
    memcpy(field_at(r, dst), cfield_at(r, src), bytes[r->kind]);
}
