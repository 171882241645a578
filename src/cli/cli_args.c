/* cli_args.c: strict option parsing (--opt VALUE / --opt=VALUE) and usage-error reporting. */
#include "cli.h"
#include "runtime.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const cli_range CLI_POSITIVE = {0.0, INFINITY, 1, 1, "a positive number"};
const cli_range CLI_NONNEG = {0.0, INFINITY, 0, 1, "a number >= 0"};
const cli_range CLI_FRACTION = {0.0, 1.0, 0, 1, "a number in [0, 1)"};
const cli_range CLI_GAMMA = {0.0, 1.0, 1, 0, "a number in (0, 1]"};
const cli_range CLI_ANY_REAL = {-INFINITY, INFINITY, 1, 1, "a finite number"};

int cli_usage(const cli_runtime *rt, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (rt->message) {
        char msg[BPROP_ERROR_MAX], text[BPROP_ERROR_MAX + 128];
        vsnprintf(msg, sizeof msg, fmt, ap);
        snprintf(text, sizeof text, "bprop %s: %s\nTry 'bprop %s --help'.\n", cmd, msg, cmd);
        rt->message(rt->ctx, 1, text);
    } else {
        fprintf(stderr, "bprop %s: ", cmd);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\nTry 'bprop %s --help'.\n", cmd);
    }
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_unknown(const cli_args *a)
{
    if (a->pos)
        return cli_usage(a->rt, a->cmd, "unexpected argument '%s'", a->pos);
    return cli_usage(a->rt, a->cmd, "%s: unknown option", a->opt);
}

void cli_args_init(cli_args *a, const cli_runtime *rt, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->rt = rt;
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->next = 1;
}

int cli_args_next(cli_args *a)
{
    a->opt = a->inline_val = a->pos = NULL;
    if (a->next >= a->argc)
        return CLI_ARG_END;
    const char *s = a->argv[a->next++];
    if (!a->options_done && strcmp(s, "--") == 0) {
        a->options_done = 1;
        return cli_args_next(a);
    }
    /* "-" alone names stdin/stdout by convention; single-dash words (-h) are options too. */
    if (a->options_done || s[0] != '-' || s[1] == '\0') {
        a->pos = s;
        return CLI_ARG_POSITIONAL;
    }
    const char *eq = strchr(s, '=');
    if (eq && (size_t)(eq - s) < sizeof a->optbuf) {
        memcpy(a->optbuf, s, (size_t)(eq - s));
        a->optbuf[eq - s] = '\0';
        a->opt = a->optbuf;
        a->inline_val = eq + 1;
    } else {
        a->opt = s;
    }
    return CLI_ARG_OPTION;
}

int cli_is(const cli_args *a, const char *name) { return a->opt && strcmp(a->opt, name) == 0; }

int cli_positional(const cli_args *a, const char **slot)
{
    if (*slot)
        return CLI_NOMATCH;
    *slot = a->pos;
    return 0;
}

int cli_is_help(const cli_args *a) { return cli_is(a, "--help") || cli_is(a, "-h"); }

int cli_flag(cli_args *a)
{
    if (a->inline_val)
        return cli_usage(a->rt, a->cmd, "%s: takes no value, got '%s'", a->opt, a->inline_val);
    return 0;
}

int cli_value(cli_args *a, const char **out)
{
    if (a->inline_val) {
        *out = a->inline_val;
        return 0;
    }
    /* A following "--option" is almost surely a forgotten value, not a file named like that. */
    if (a->next >= a->argc || strncmp(a->argv[a->next], "--", 2) == 0)
        return cli_usage(a->rt, a->cmd, "%s: missing value", a->opt);
    *out = a->argv[a->next++];
    return 0;
}

/* Unsigned decimal with nothing before or after it; 0 on success. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Finite real with nothing before or after it; 0 on success. */
static int parse_real(const char *s, double *out)
{
    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cli_u64(cli_args *a, uint64_t *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    if (parse_u64(s, out))
        return cli_usage(a->rt, a->cmd, "%s: expected an integer in [0, %llu], got '%s'", a->opt,
                         (unsigned long long)UINT64_MAX, s);
    return 0;
}

int cli_size(cli_args *a, size_t min, size_t max, size_t *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    uint64_t v = 0;
    int bad = parse_u64(s, &v);
    if (bad || (min == 1 && v == 0))
        return cli_usage(a->rt, a->cmd, "%s: expected a %s integer, got '%s'", a->opt,
                         min >= 1 ? "positive" : "non-negative", s);
    if (v < min || v > max)
        return cli_usage(a->rt, a->cmd, "%s: expected an integer in [%zu, %zu], got '%s'", a->opt, min, max,
                         s);
    *out = (size_t)v;
    return 0;
}

int cli_int(cli_args *a, int min, int max, int *out)
{
    size_t v = 0;
    int rc = cli_size(a, (size_t)min, (size_t)max, &v);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

int cli_in_range(double v, const cli_range *r)
{
    int lo_ok = r->lo_open ? v > r->lo : v >= r->lo;
    int hi_ok = r->hi_open ? v < r->hi : v <= r->hi;
    return lo_ok && hi_ok;
}

/* cli_real that also hands back the text it parsed, for messages. */
static int real_arg(cli_args *a, const cli_range *r, double *out, const char **text)
{
    int rc = cli_value(a, text);
    if (rc)
        return rc;
    double v = 0.0;
    if (parse_real(*text, &v) || !cli_in_range(v, r))
        return cli_usage(a->rt, a->cmd, "%s: expected %s, got '%s'", a->opt, r->what, *text);
    *out = v;
    return 0;
}

int cli_real(cli_args *a, const cli_range *r, double *out)
{
    const char *text = NULL;
    return real_arg(a, r, out, &text);
}

int cli_float(cli_args *a, const cli_range *r, float *out)
{
    const char *text = NULL;
    double v = 0.0;
    int rc = real_arg(a, r, &v, &text);
    if (rc)
        return rc;
    /* The library stores these as float: refuse what float cannot hold rather than round to 0 or
     * infinity silently. */
    float f = (float)v;
    if (!isfinite(f) || (v != 0.0 && fabs(v) < FLT_MIN) || !cli_in_range((double)f, r))
        return cli_usage(a->rt, a->cmd, "%s: '%s' is out of range for a single-precision number", a->opt,
                         text);
    *out = f;
    return 0;
}

int cli_parse(const cli_runtime *rt, const cli_command *c, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, rt, c->name, argc, argv);
    for (int kind; (kind = cli_args_next(&a)) != CLI_ARG_END;) {
        if (kind == CLI_ARG_OPTION && cli_is_help(&a)) {
            c->help();
            return CLI_DONE;
        }
        int rc = CLI_NOMATCH;
        if (kind == CLI_ARG_OPTION)
            rc = c->option(&a, c->opts);
        else if (c->positional)
            rc = cli_positional(&a, c->positional);
        if (rc == CLI_NOMATCH)
            return cli_unknown(&a);
        if (rc)
            return rc;
    }
    return 0;
}
