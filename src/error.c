/* error.c: status descriptions and the error-detail helper. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_text[BPROP_E_COUNT] = {
    [BPROP_OK] = "success",
    [BPROP_E_NOMEM] = "out of memory",
    [BPROP_E_ARG] = "invalid argument",
    [BPROP_E_SIZE] = "size is zero or too large",
    [BPROP_E_IO] = "input/output error",
    [BPROP_E_FORMAT] = "malformed input",
    [BPROP_E_MISMATCH] = "inputs do not match",
    [BPROP_E_LABEL] = "label out of range",
    [BPROP_E_NONFINITE] = "NaN or infinite value",
    [BPROP_E_VERSION] = "unsupported model file version",
    [BPROP_E_CHECKSUM] = "checksum mismatch",
    [BPROP_E_DIVERGED] = "training diverged",
    [BPROP_E_CANCELLED] = "cancelled",
    [BPROP_E_COMM] = "communication between processes failed",
    [BPROP_E_ISA] = "kernel set not available",
};

const char *bprop_strerror(bprop_status status)
{
    if ((int)status < 0 || status >= BPROP_E_COUNT)
        return "unknown error";
    return status_text[status];
}

bprop_status bp_fail(bprop_error *err, bprop_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}
