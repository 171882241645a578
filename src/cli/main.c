/* main.c: the `bprop` program's entry point: dispatch to a command, top-level help and version. */
#include "cli.h"
#include "runtime.h"

#include <errno.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(const cli_runtime *rt, int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a network and optionally save it"},
    {"eval", cmd_eval, "loss, accuracy and confusion matrix of a saved model on a test set"},
    {"predict", cmd_predict, "class probabilities for unlabelled inputs, as CSV"},
    {"gradcheck", cmd_gradcheck, "compare backprop gradients with finite differences"},
    {"info", cmd_info, "shape, training settings and history of a saved model"},
    {"export", cmd_export, "write a saved model's tensors as NumPy .npy files"},
    {"import", cmd_import, "build a model from NumPy .npy files"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fputs("Usage: bprop COMMAND [options]\n"
          "Train and use two-layer ReLU/softmax networks (parallel minibatch SGD).\n\n"
          "Commands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'bprop COMMAND --help' describes a command's options.\n"
          "Exit status: 0 success, 1 runtime error (bad data, unreadable files, divergence),\n"
          "2 bad command line, 3 gradcheck failed its tolerance.\n", f);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int dispatch(const cli_runtime *rt, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("bprop %s\n", BPROP_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        const command *c = find_command(argv[2]);
        if (!c) {
            fprintf(stderr, "bprop: unknown command '%s'\nTry 'bprop --help'.\n", argv[2]);
            return CLI_EXIT_USAGE;
        }
        char flag[] = "--help";
        char *help_argv[] = {argv[2], flag, NULL};
        return c->run(rt, 2, help_argv);
    }
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "bprop: unknown command '%s'\nTry 'bprop --help'.\n", name);
        return CLI_EXIT_USAGE;
    }
    /* BPROP_ISA naming a kernel set this CPU lacks (or none) stops every command: the run would
     * otherwise go on, silently, on other kernels than asked for. */
    bprop_error err;
    if (bprop_isa_check(&err) != BPROP_OK) {
        fprintf(stderr, "bprop: %s\n", err.message);
        return CLI_EXIT_RUNTIME;
    }
    return c->run(rt, argc - 1, argv + 1);
}

/* Output that never arrived (a full disk, a closed pipe) makes a run fail, even when the command
 * itself succeeded: `bprop info m.bpm > /dev/full` must not exit 0. */
static int check_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return CLI_EXIT_OK;
    /* The failed write may have happened earlier, its errno since overwritten. */
    int e = errno;
    fprintf(stderr, "bprop: cannot write to standard output: %s\n", e ? strerror(e) : "write error");
    return CLI_EXIT_RUNTIME;
}

int cli_main(const cli_runtime *rt, int argc, char **argv)
{
    int rc = dispatch(rt, argc, argv);
    return rc == CLI_EXIT_OK ? check_stdout() : rc;
}

#ifndef BPROP_CLI_NO_MAIN /* bprop-mpi has its own main around cli_main */
int main(int argc, char **argv) { return cli_main(&cli_single_process, argc, argv); }
#endif
