/* Which library is linked, to compare with the header a program saw. */
#include "common.h"

unsigned
cvg_version_number(void)
{
    return CVG_VERSION_NUMBER;
}

const char *
cvg_version_string(void)
{
    return CVG_VERSION_STRING;
}

cvg_value
cvg_value_string(const char *s)
{
    cvg_value v = {CVG_VALUE_STRING, {0}};
    v.as.bytes.data = (const uint8_t *)s;
    v.as.bytes.len = s ? strlen(s) : 0;
    return v;
}

cvg_value
cvg_value_bytes(const void *data, size_t len)
{
    cvg_value v = {CVG_VALUE_BYTES, {0}};
    v.as.bytes.data = data;
    v.as.bytes.len = len;
    return v;
}

void
cvg_replica_id_hex(const cvg_replica_id *id, char buf[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        buf[2 * i] = hex[id->bytes[i] >> 4];
        buf[2 * i + 1] = hex[id->bytes[i] & 15];
    }
    buf[32] = '\0';
}
