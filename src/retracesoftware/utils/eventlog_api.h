// The C interface of retracesoftware.utils._utils.EventLog for other extension modules.
//
// utils exports it as the capsule "retracesoftware.utils._utils.eventlog_api"; a higher layer
// (stream) imports the capsule to move events between an EventLog and a recording without
// building an event tuple per event in Python.  Every function needs the GIL.
#ifndef RETRACE_EVENTLOG_API_H
#define RETRACE_EVENTLOG_API_H

#include <Python.h>

#define RETRACE_EVENTLOG_API_CAPSULE "retracesoftware.utils._utils.eventlog_api"
#define RETRACE_EVENTLOG_API_VERSION 1

// Called once per event: kind, thread tag, and the n (<= 3) fields (borrowed references).
// Returns 0 to go on, -1 (exception set) to stop.
typedef int (*retrace_event_fn)(void *ctx, long kind, long long tag, int n,
                                PyObject *const *fields);

struct RetraceEventLogAPI {
    int version;           // RETRACE_EVENTLOG_API_VERSION
    PyTypeObject *type;    // EventLog
    int max_fields;        // most fields an event may have
    // Pass every event from the cursor to the end to fn, in order, then forget them (the log
    // becomes empty, its cursor 0).  If fn fails, the events it accepted are forgotten, the
    // failed one and those after it stay, and -1 is returned.
    int (*drain)(PyObject *log, retrace_event_fn fn, void *ctx);
    // Append one event; the log takes new references to the fields.  -1 with an exception
    // set if n is out of range or memory is exhausted.
    int (*append)(PyObject *log, long kind, long long tag, int n, PyObject *const *fields);
};

#endif
