/*
 * converge/testing.h compiles on its own: this file includes nothing else,
 * is built with the project's strict warnings and only include/ on the
 * path (not src/), and is never linked. A header that needs something its
 * users would have to include first breaks the build here.
 */
#include <converge/testing.h>

unsigned cvg_testing_header_alone(const cvg_link_result *res);

unsigned
cvg_testing_header_alone(const cvg_link_result *res)
{
    cvg_link_options o;
    o.version = CVG_LINK_OPTIONS_VERSION;
    return o.version + (unsigned)res->done + (unsigned)sizeof(cvg_link_stats);
}
