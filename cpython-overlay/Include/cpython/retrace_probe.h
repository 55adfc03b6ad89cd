/* Retrace native probe API, reached through the capsule "_retrace._C_API".
 *
 * This header is self-contained on purpose: a native extension that wants the
 * probes copies it, imports the capsule at runtime and treats any failure as
 * "probes unavailable", so the same binary still imports on vanilla CPython.
 * Check abi_version and the feature flags before using a member.
 */
#ifndef Py_CPYTHON_RETRACE_PROBE_H
#define Py_CPYTHON_RETRACE_PROBE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RETRACE_PROBE_CAPSULE_NAME "_retrace._C_API"

#ifndef RETRACE_PROBE_ABI_VERSION
#  define RETRACE_PROBE_ABI_VERSION 1
#endif

/* feature_flags bits */
#define RETRACE_PROBE_THREAD_SCHEDULING (1u << 0)
#define RETRACE_PROBE_COORDINATES       (1u << 1)
#define RETRACE_PROBE_CALL_AT           (1u << 2)
#define RETRACE_PROBE_THREAD_IDS        (1u << 3)
#define RETRACE_PROBE_IDENTITY_HASH     (1u << 4)

/* Called on the thread it describes, with the GIL held.  *interp* and
 * *tstate* are the PyInterpreterState and PyThreadState of that thread;
 * coordinate_hash is the thread's current coordinate-location hash. */
typedef void (*RetraceProbeCallback)(void *userdata, void *interp, void *tstate,
                                     uint64_t coordinate_hash);

typedef struct {
    uint32_t abi_version;
    uint32_t feature_flags;
    uint32_t size;              /* sizeof(RetraceProbeAPI) of the provider */
    void *userdata;
    /* Install (or clear with NULL) a native scheduling callback for the
     * current interpreter.  Must be called with the GIL held.  Return 0. */
    int (*set_thread_start_callback)(void *userdata, RetraceProbeCallback callback);
    int (*set_thread_yield_callback)(void *userdata, RetraceProbeCallback callback);
    int (*set_thread_resume_callback)(void *userdata, RetraceProbeCallback callback);
    /* Deterministic thread id / coordinate hash of *tstate* (NULL: current). */
    uint64_t (*thread_id)(void *tstate);
    uint64_t (*location_hash)(void *tstate);
} RetraceProbeAPI;

#ifdef __cplusplus
}
#endif
#endif /* !Py_CPYTHON_RETRACE_PROBE_H */
