/* Retrace probe state carried by CPython's core structures.
 *
 * Each patched core type (frame, thread state, interpreter state) holds one
 * field named ``retrace`` of the matching type below.  Only this overlay header
 * defines their shape, so adding state does not touch the per-release patches.
 */
#ifndef Py_CPYTHON_RETRACE_STATE_H
#define Py_CPYTHON_RETRACE_STATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Probe ABI of this overlay: bump when any structure or semantic changes. */
#define RETRACE_PROBE_ABI_VERSION 1
#define RETRACE_PROBE_ABI_NAME "retrace-probe-1"

/* A word that is never a real coordinate word. */
#define _PyRetrace_UNSET UINT64_MAX

/* Frame flags. */
#define _PyRetrace_FRAME_TRANSPARENT 1u

/* Per-frame state.  ``bias`` (in bytes) is added to the byte offset of the
 * current instruction so that the instruction coordinate never decreases
 * inside one activation: only backward jumps and backward exception handler
 * entries change it. */
typedef struct _PyRetraceFrameState {
    int64_t bias;
    uint64_t ordinal;          /* call ordinal of this activation */
    uintptr_t child_key;       /* instr_ptr + bias at which next_child counts */
    uint64_t last_ordinal;     /* thread_delta(): remembered words */
    uint64_t last_coordinate;
    uint32_t next_child;       /* ordinal handed to the next visible child */
    uint32_t flags;
} _PyRetraceFrameState;

#define _PyRetrace_FRAME_INIT(rs) do { \
        (rs)->bias = 0; \
        (rs)->child_key = 0; \
        (rs)->flags = 0; \
        (rs)->last_ordinal = _PyRetrace_UNSET; \
    } while (0)

typedef struct _PyRetraceThreadState {
    uint64_t thread_id;        /* deterministic id; 0 until assigned */
    uint64_t root_ordinal;     /* ordinals of frames without a visible parent */
    uint64_t spawn_count;      /* threads started by this thread */
    uint64_t hash_count;       /* identity hashes handed out by this thread */
    uint64_t native_ident;     /* PyThread ident recorded at start */
    int transparent;           /* > 0 while control-plane code runs */
    int in_callback;           /* scheduling callback re-entrancy guard */
    int delta_started;         /* thread_delta() emitted at least once */
    int reserved;
} _PyRetraceThreadState;

struct _PyRetraceIdentityEntry {
    uintptr_t key;
    int64_t value;
};

typedef void (*_PyRetraceNativeCallback)(void *userdata, void *interp,
                                         void *tstate, uint64_t coordinate_hash);

typedef struct _PyRetraceInterpState {
    /* Python-level scheduling callbacks (strong references or NULL). */
    void *thread_start;
    void *thread_yield;
    void *thread_resume;
    /* Native scheduling callbacks registered through the capsule API. */
    _PyRetraceNativeCallback native_start;
    _PyRetraceNativeCallback native_yield;
    _PyRetraceNativeCallback native_resume;
    void *native_start_data;
    void *native_yield_data;
    void *native_resume_data;
    /* call_at target. */
    int call_at_armed;
    uint64_t call_at_thread;
    uint64_t *call_at_words;
    intptr_t call_at_len;
    void *call_at_callback;
    void *call_at_overshoot;
    /* Deterministic identity hashes: open addressing, pointer -> value. */
    struct _PyRetraceIdentityEntry *id_table;
    uintptr_t id_mask;
    uintptr_t id_used;
    uint64_t foreign_threads;
} _PyRetraceInterpState;

#ifdef __cplusplus
}
#endif
#endif /* !Py_CPYTHON_RETRACE_STATE_H */
