/* How a kernel reports the layout of its structs to its loader (recoworld/kernels/build.py,
 * check_layout), which compares it with the ctypes mirror and refuses a mismatch.
 *
 * For a struct S, a kernel defines
 *
 *     LAYOUT_BEGIN(S)
 *         LAYOUT_FIELD(S, first) LAYOUT_FIELD(S, second) ...
 *     LAYOUT_END(S)
 *
 * which exports int64_t recoworld_layout_S(const char *field, int64_t *size): for a field
 * name, its offset (and its size in *size), -1 if S has no such field listed; for NULL, the
 * number of fields listed (and sizeof(S) in *size).
 */
#ifndef RECOWORLD_LAYOUT_H
#define RECOWORLD_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LAYOUT_BEGIN(S)                                                 \
    int64_t recoworld_layout_##S(const char *field, int64_t *size) {    \
        int64_t count = 0;

#define LAYOUT_FIELD(S, f)                                              \
        count++;                                                        \
        if (field != NULL && strcmp(field, #f) == 0) {                  \
            *size = (int64_t)sizeof(((S *)0)->f);                       \
            return (int64_t)offsetof(S, f);                             \
        }

#define LAYOUT_END(S)                                                   \
        if (field != NULL) return -1;                                   \
        *size = (int64_t)sizeof(S);                                     \
        return count;                                                   \
    }

#endif
