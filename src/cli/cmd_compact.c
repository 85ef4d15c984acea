/*
 * `converge compact DIR`: the data file rewritten without its free pages
 * (cvg_replica_compact), reported as one line (or a JSON object). Exit 0
 * when the compacted file is in place, 1 with the reason on stderr when
 * not (the file is then as it was), 3 when there is no replica.
 */
#include <string.h>

#include "cli.h"

int
cmd_compact(int argc, char **argv)
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
    cvg_compact_report rep;
    int rc = cvg_replica_compact(dir, &rep);
    if (o.json) {
        printf("{\"ok\":%s,\"code\":\"%s\",\"bytes_before\":%llu,"
               "\"bytes_after\":%llu,\"live_pages\":%llu,\"problem\":",
               rc == CVG_OK ? "true" : "false", cvg_errname(rc),
               (unsigned long long)rep.bytes_before,
               (unsigned long long)rep.bytes_after,
               (unsigned long long)rep.live_pages);
        cli_json_string(stdout, (const uint8_t *)rep.problem,
                        strlen(rep.problem));
        fputs("}\n", stdout);
    } else if (rc == CVG_OK) {
        printf("compacted: %llu bytes to %llu (%llu live pages)\n",
               (unsigned long long)rep.bytes_before,
               (unsigned long long)rep.bytes_after,
               (unsigned long long)rep.live_pages);
    }
    if (rc != CVG_OK) {
        fprintf(stderr, "converge: compact: %s: %s: %s: %s\n", dir,
                cvg_errname(rc), cvg_strerror(rc),
                rep.problem[0] ? rep.problem : "no detail");
        return rc == CVG_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERR;
    }
    return CLI_EXIT_OK;
}
