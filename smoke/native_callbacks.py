"""Native capsule API: ABI/feature checks and native start/yield/resume callbacks.

Compiles a tiny C extension against this interpreter's headers.  It includes
only ``Python.h`` and the self-contained ``cpython/retrace_probe.h`` (what a
third-party extension would copy), imports the ``_retrace._C_API`` capsule,
registers native scheduling callbacks and logs (event, thread id, hash) in C.
"""

import _thread
import importlib.util
import itertools
import os
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

import retrace
from _common import check

SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include "Python.h"
#include "cpython/retrace_probe.h"

#define MAX_EVENTS 200000

typedef struct { int kind; uint64_t tid; uint64_t hash; } Event;

static const RetraceProbeAPI *api;
static Event events[MAX_EVENTS];
static Py_ssize_t nevents, dropped;
static int userdata_ok = 1;
static int marker;

static void
log_event(void *userdata, int kind, void *tstate, uint64_t hash)
{
    if (userdata != &marker) {
        userdata_ok = 0;
    }
    if (nevents == MAX_EVENTS) {
        dropped++;
        return;
    }
    events[nevents].kind = kind;
    events[nevents].tid = api->thread_id(tstate);
    events[nevents].hash = hash;
    nevents++;
}

static void
on_start(void *u, void *interp, void *ts, uint64_t h)
{
    (void)interp;
    log_event(u, 0, ts, h);
}

static void
on_yield(void *u, void *interp, void *ts, uint64_t h)
{
    (void)interp;
    log_event(u, 1, ts, h);
}

static void
on_resume(void *u, void *interp, void *ts, uint64_t h)
{
    (void)interp;
    log_event(u, 2, ts, h);
}

static PyObject *
load(PyObject *self, PyObject *noargs)
{
    api = (const RetraceProbeAPI *)PyCapsule_Import(RETRACE_PROBE_CAPSULE_NAME, 0);
    if (api == NULL) {
        return NULL;
    }
    return Py_BuildValue("(IIIn)", api->abi_version, api->feature_flags, api->size,
                         (Py_ssize_t)sizeof(RetraceProbeAPI));
}

static PyObject *
install(PyObject *self, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);
    if (on < 0) {
        return NULL;
    }
    if (api->set_thread_start_callback(on ? &marker : NULL, on ? on_start : NULL) != 0
        || api->set_thread_yield_callback(on ? &marker : NULL, on ? on_yield : NULL) != 0
        || api->set_thread_resume_callback(on ? &marker : NULL, on ? on_resume : NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "a set_*_callback call failed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
take(PyObject *self, PyObject *noargs)
{
    PyObject *list = PyList_New(nevents);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nevents; i++) {
        PyObject *item = Py_BuildValue("(iKK)", events[i].kind,
                                       (unsigned long long)events[i].tid,
                                       (unsigned long long)events[i].hash);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    PyObject *result = Py_BuildValue("(Nni)", list, dropped, userdata_ok);
    nevents = 0;
    dropped = 0;
    return result;
}

static PyObject *
ids(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("(KK)", (unsigned long long)api->thread_id(NULL),
                         (unsigned long long)api->location_hash(NULL));
}

static PyMethodDef methods[] = {
    {"load", load, METH_NOARGS, NULL},
    {"install", install, METH_O, NULL},
    {"take", take, METH_NOARGS, NULL},
    {"ids", ids, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "retrace_native_probe",
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_retrace_native_probe(void)
{
    return PyModule_Create(&def);
}
"""

KIND = {0: "start", 1: "yield", 2: "resume"}


def include_dirs():
    """Include/ of the source tree and the directory holding pyconfig.h."""
    if sysconfig.is_python_build():
        src = Path(sysconfig.get_config_var("srcdir"))
        return [src / "Include", Path(sysconfig.get_config_var("abs_builddir"))]
    inc = Path(sysconfig.get_paths()["include"])
    return [inc, Path(sysconfig.get_config_var("CONFINCLUDEPY") or inc)]


def build(tmp):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = Path(tmp) / f"retrace_native_probe{suffix}"
    src = Path(tmp) / "retrace_native_probe.c"
    src.write_text(SOURCE)
    cc = os.environ.get("CC") or "cc"
    flags = ["-shared", "-fPIC", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror"]
    flags.append("-Wno-unused-parameter")  # METH_NOARGS/METH_O signatures, as in CPython
    incs = [f"-I{d}" for d in include_dirs()]
    proc = subprocess.run(
        [cc, *flags, *incs, str(src), "-o", str(out)], capture_output=True, text=True
    )
    check(proc.returncode == 0, f"compiling the native probe extension failed:\n{proc.stderr}")
    spec = importlib.util.spec_from_file_location("retrace_native_probe", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def busy(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


with tempfile.TemporaryDirectory() as tmp:
    native = build(tmp)

abi, flags, size, expected_size = native.load()
check(abi == retrace.ABI_VERSION, f"capsule ABI {abi} != module ABI {retrace.ABI_VERSION}")
check(flags == retrace.FEATURE_FLAGS, f"capsule flags {flags:#x} != {retrace.FEATURE_FLAGS:#x}")
check(flags & 1, "capsule lacks THREAD_SCHEDULING")
check(size == expected_size, f"capsule struct size {size} != header size {expected_size}")
tid, _ = native.ids()
check(tid == _thread.get_ident(), "capsule thread_id(NULL) is not _thread.get_ident()")

sys.setswitchinterval(1e-5)
native.install(True)
threads = [threading.Thread(target=busy, args=(300_000,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
native.install(False)
events, dropped, userdata_ok = native.take()
busy(50_000)  # no callback may arrive once cleared
late, _, _ = native.take()

check(userdata_ok, "a native callback received the wrong userdata pointer")
check(dropped == 0, f"{dropped} native events did not fit the log")
check(late == [], f"{len(late)} native callbacks after they were cleared")
workers = {t.ident for t in threads}
by_thread = {}
for kind, tid, _hash in events:
    by_thread.setdefault(tid, []).append(KIND[kind])
starts = [tid for kind, tid, _ in events if KIND[kind] == "start"]
check(sorted(starts) == sorted(workers), f"start callbacks {starts} != workers {workers}")
check(set(by_thread) <= workers | {_thread.get_ident()}, "callback from an unknown thread")
switches = 0
for tid, seq in by_thread.items():
    if tid in workers:
        check(seq[0] == "start", f"thread {tid}: first native event is {seq[0]}")
        seq = seq[1:]
    for a, b in itertools.pairwise(seq):
        check((a, b) in {("yield", "resume"), ("resume", "yield")}, f"thread {tid}: {a} then {b}")
    check(not seq or seq[0] == "yield", f"thread {tid}: resume before any yield")
    switches += seq.count("yield")
check(switches >= 4, f"only {switches} native yields under 4 busy threads")
hashes = {h for _, _, h in events}
check(len(hashes) > 1, "native callbacks all saw one coordinate hash")
print("ok")
