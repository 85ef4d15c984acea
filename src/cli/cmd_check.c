/*
 * `converge check DIR`: the full check of a replica (cvg_replica_check),
 * printed as one summary line (or a JSON object). Exit 0 when the replica
 * is sound, 1 with the problem on stderr when it is damaged or cannot be
 * checked, 3 when there is no replica.
 */
#include <string.h>

#include "cli.h"

static void
print_json(const cvg_check_report *rep, int rc)
{
    printf(
        "{\"ok\":%s,\"code\":\"%s\",\"pages\":%llu,\"records\":%llu,"
        "\"log_blocks\":%llu,\"log_ops\":%llu,\"state_records\":%llu,"
        "\"origins\":%llu,\"problem\":",
        rc == CVG_OK ? "true" : "false", cvg_errname(rc),
        (unsigned long long)rep->pages, (unsigned long long)rep->records,
        (unsigned long long)rep->log_blocks, (unsigned long long)rep->log_ops,
        (unsigned long long)rep->state_records,
        (unsigned long long)rep->origins);
    cli_json_string(stdout, (const uint8_t *)rep->problem,
                    strlen(rep->problem));
    fputs("}\n", stdout);
}

int
cmd_check(int argc, char **argv)
{
    cli_opts o;
    char *dir;
    int n;
    int code = cli_parse_opts(argc, argv, CLI_OPT_JSON, &o, &dir, 1, &n);
    if (code != CLI_EXIT_OK) {
        return code;
    }
    if (n != 1) {
        return cli_usage(argv[0], "expected DIR");
    }
    cvg_check_report rep;
    int rc = cvg_replica_check(dir, &rep);
    if (o.json) {
        print_json(&rep, rc);
    } else if (rc == CVG_OK) {
        printf(
            "ok: %llu pages, %llu records, %llu ops in %llu log blocks, "
            "%llu state records, %llu origins\n",
            (unsigned long long)rep.pages, (unsigned long long)rep.records,
            (unsigned long long)rep.log_ops, (unsigned long long)rep.log_blocks,
            (unsigned long long)rep.state_records,
            (unsigned long long)rep.origins);
    }
    if (rc != CVG_OK) {
        fprintf(stderr, "converge: check: %s: %s: %s: %s\n", dir,
                cvg_errname(rc), cvg_strerror(rc),
                rep.problem[0] ? rep.problem : "no detail");
        return rc == CVG_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERR;
    }
    return CLI_EXIT_OK;
}
