/*
 * Names and sentences for every status code, made from the one table in
 * converge.h so the enum, the names and the texts cannot drift apart.
 */
#include "common.h"

const char *
cvg_strerror(int code)
{
    switch (code) {
    case CVG_OK:
        return "success";
    case CVG_DONE:
        return "no more items";
#define CVG__ERR_TEXT(name, num, text) \
    case CVG_##name:                   \
        return text;
        CVG_ERROR_TABLE(CVG__ERR_TEXT)
#undef CVG__ERR_TEXT
    default:
        return "unknown error code";
    }
}

const char *
cvg_errname(int code)
{
    switch (code) {
    case CVG_OK:
        return "CVG_OK";
    case CVG_DONE:
        return "CVG_DONE";
#define CVG__ERR_NAME(name, num, text) \
    case CVG_##name:                   \
        return "CVG_" #name;
        CVG_ERROR_TABLE(CVG__ERR_NAME)
#undef CVG__ERR_NAME
    default:
        return "CVG_UNKNOWN";
    }
}
