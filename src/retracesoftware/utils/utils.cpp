// _utils: low-level CPython tools for the record/replay engine.
//
//   Gate          per-thread state word (+ integer tag) owned by one user
//   GateScope     context manager that sets a gate state and restores it
//   WithFlags     context manager that sets type flags and restores them
//   WithoutFlags  context manager that clears type flags and restores them
//   EventLog      append-only list of events with a read cursor
//   Boundary      shared context of a set of Crossings (gate, mode, log, slow paths)
//   Crossing      callable wrapper implementing the boundary fast path
//   StackFactory  cheap capture of (filename, lineno, function) frames
//   InterceptDict dict subclass reporting item assignment and deletion
//   patch_hash / unpatch_hash   sequence-based identity hashing
//   fingerprint   the argument fingerprint used by Crossing (for the slow path)
//
// The module keeps its state in static globals: it supports one interpreter.

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "eventlog_api.h"

// Static type objects are filled in by setup_types(); only their header is initialised here.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

// ---------------------------------------------------------------------------
// Small helpers

struct SavedError {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = nullptr;
    void fetch() { exc = PyErr_GetRaisedException(); }
    void restore() { PyErr_SetRaisedException(exc); exc = nullptr; }
    PyObject *value() const { return exc; }
    void clear() { Py_CLEAR(exc); }
#else
    PyObject *type = nullptr, *val = nullptr, *tb = nullptr;
    void fetch() {
        PyErr_Fetch(&type, &val, &tb);
        PyErr_NormalizeException(&type, &val, &tb);
        if (tb != nullptr && val != nullptr) PyException_SetTraceback(val, tb);
    }
    void restore() { PyErr_Restore(type, val, tb); type = val = tb = nullptr; }
    PyObject *value() const { return val; }
    void clear() { Py_CLEAR(type); Py_CLEAR(val); Py_CLEAR(tb); }
#endif
};

// ---------------------------------------------------------------------------
// Gates

enum GateState : int { OFF = 0, INSIDE = 1, OUTSIDE = 2, DISABLED = 3 };
constexpr int MAX_GATES = 256;

struct Slot {
    uint64_t serial;
    int state;
    long long tag;
};

thread_local Slot tls_slots[MAX_GATES];
uint64_t next_serial = 1;
bool slot_used[MAX_GATES];

struct GateObject {
    PyObject_HEAD
    int index;
    uint64_t serial;
};

inline Slot &gate_slot(GateObject *g) {
    Slot &s = tls_slots[g->index];
    if (s.serial != g->serial) {
        s.serial = g->serial;
        s.state = OFF;
        s.tag = -1;
    }
    return s;
}

bool valid_state(long v) { return v >= OFF && v <= DISABLED; }

PyObject *Gate_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Gate", const_cast<char **>(kwlist))) {
        return nullptr;
    }
    int index = -1;
    for (int i = 0; i < MAX_GATES; ++i) {
        if (!slot_used[i]) {
            index = i;
            break;
        }
    }
    if (index < 0) {
        PyErr_Format(PyExc_RuntimeError, "too many live Gate objects (the limit is %d)",
                     MAX_GATES);
        return nullptr;
    }
    auto *self = reinterpret_cast<GateObject *>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    slot_used[index] = true;
    self->index = index;
    self->serial = next_serial++;
    return reinterpret_cast<PyObject *>(self);
}

void Gate_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<GateObject *>(op);
    slot_used[self->index] = false;
    Py_TYPE(op)->tp_free(op);
}

PyObject *Gate_get(PyObject *op, PyObject *) {
    return PyLong_FromLong(gate_slot(reinterpret_cast<GateObject *>(op)).state);
}

PyObject *Gate_set(PyObject *op, PyObject *arg) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return nullptr;
    if (!valid_state(v)) {
        PyErr_Format(PyExc_ValueError, "invalid gate state %ld (expected 0..3)", v);
        return nullptr;
    }
    Slot &s = gate_slot(reinterpret_cast<GateObject *>(op));
    int prev = s.state;
    s.state = static_cast<int>(v);
    return PyLong_FromLong(prev);
}

PyObject *Gate_get_tag(PyObject *op, void *) {
    return PyLong_FromLongLong(gate_slot(reinterpret_cast<GateObject *>(op)).tag);
}

int Gate_set_tag(PyObject *op, PyObject *value, void *) {
    if (value == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete the gate tag");
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred()) return -1;
    gate_slot(reinterpret_cast<GateObject *>(op)).tag = v;
    return 0;
}

PyObject *GateScope_create(GateObject *gate, int state, bool has_tag, long long tag);

PyObject *Gate_scope(PyObject *op, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"state", "tag", nullptr};
    int state;
    PyObject *tag = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|O:scope", const_cast<char **>(kwlist),
                                     &state, &tag)) {
        return nullptr;
    }
    if (!valid_state(state)) {
        PyErr_Format(PyExc_ValueError, "invalid gate state %d (expected 0..3)", state);
        return nullptr;
    }
    long long t = -1;
    if (tag != Py_None) {
        t = PyLong_AsLongLong(tag);
        if (t == -1 && PyErr_Occurred()) return nullptr;
    }
    return GateScope_create(reinterpret_cast<GateObject *>(op), state, tag != Py_None, t);
}

PyMethodDef Gate_methods[] = {
    {"get", Gate_get, METH_NOARGS, "The calling thread's state."},
    {"set", Gate_set, METH_O, "Set the calling thread's state; return the previous one."},
    {"scope", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(Gate_scope)),
     METH_VARARGS | METH_KEYWORDS,
     "Context manager: set state (and tag) for the calling thread, restore on exit."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Gate_getset[] = {
    {"tag", Gate_get_tag, Gate_set_tag, "The calling thread's integer tag (-1 when unset).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject Gate_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

// GateScope ------------------------------------------------------------------

struct GateScopeObject {
    PyObject_HEAD
    GateObject *gate;
    int state;
    bool has_tag;
    long long tag;
    bool active;
    int prev_state;
    long long prev_tag;
};

PyTypeObject GateScope_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject *GateScope_create(GateObject *gate, int state, bool has_tag, long long tag) {
    auto *self = PyObject_New(GateScopeObject, &GateScope_Type);
    if (self == nullptr) return nullptr;
    self->gate = reinterpret_cast<GateObject *>(Py_NewRef(reinterpret_cast<PyObject *>(gate)));
    self->state = state;
    self->has_tag = has_tag;
    self->tag = tag;
    self->active = false;
    self->prev_state = OFF;
    self->prev_tag = -1;
    return reinterpret_cast<PyObject *>(self);
}

void GateScope_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<GateScopeObject *>(op);
    Py_DECREF(reinterpret_cast<PyObject *>(self->gate));
    PyObject_Free(op);
}

PyObject *GateScope_enter(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<GateScopeObject *>(op);
    if (self->active) {
        PyErr_SetString(PyExc_RuntimeError, "GateScope is not re-entrant");
        return nullptr;
    }
    Slot &s = gate_slot(self->gate);
    self->prev_state = s.state;
    self->prev_tag = s.tag;
    s.state = self->state;
    if (self->has_tag) s.tag = self->tag;
    self->active = true;
    return Py_NewRef(op);
}

PyObject *GateScope_exit(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<GateScopeObject *>(op);
    if (self->active) {
        Slot &s = gate_slot(self->gate);
        s.state = self->prev_state;
        s.tag = self->prev_tag;
        self->active = false;
    }
    Py_RETURN_FALSE;
}

PyMethodDef GateScope_methods[] = {
    {"__enter__", GateScope_enter, METH_NOARGS, nullptr},
    {"__exit__", GateScope_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

// ---------------------------------------------------------------------------
// WithFlags / WithoutFlags

struct FlagsObject {
    PyObject_HEAD
    PyTypeObject *type;
    unsigned long flags;
    unsigned long saved;  // original value of the managed bits
    int depth;
    bool set;  // true: WithFlags, false: WithoutFlags
};

void flags_restore(FlagsObject *self) {
    unsigned long cur = self->type->tp_flags;
    self->type->tp_flags = (cur & ~self->flags) | self->saved;
    PyType_Modified(self->type);
}

int Flags_init_common(PyObject *op, PyObject *args, PyObject *kwds, bool set) {
    static const char *kwlist[] = {"type", "flags", nullptr};
    PyObject *type;
    unsigned long flags;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!k", const_cast<char **>(kwlist),
                                     &PyType_Type, &type, &flags)) {
        return -1;
    }
    auto *self = reinterpret_cast<FlagsObject *>(op);
    if (self->depth > 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise an active flags context");
        return -1;
    }
    Py_XSETREF(self->type, reinterpret_cast<PyTypeObject *>(Py_NewRef(type)));
    self->flags = flags;
    self->saved = 0;
    self->set = set;
    return 0;
}

int WithFlags_init(PyObject *op, PyObject *args, PyObject *kwds) {
    return Flags_init_common(op, args, kwds, true);
}
int WithoutFlags_init(PyObject *op, PyObject *args, PyObject *kwds) {
    return Flags_init_common(op, args, kwds, false);
}

void Flags_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<FlagsObject *>(op);
    if (self->type != nullptr && self->depth > 0) {
        flags_restore(self);  // guarantee restoration even if __exit__ never ran
    }
    Py_XDECREF(reinterpret_cast<PyObject *>(self->type));
    Py_TYPE(op)->tp_free(op);
}

PyObject *Flags_enter(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<FlagsObject *>(op);
    if (self->type == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "flags context is not initialised");
        return nullptr;
    }
    if (self->depth == 0) {
        self->saved = self->type->tp_flags & self->flags;
        if (self->set) {
            self->type->tp_flags |= self->flags;
        } else {
            self->type->tp_flags &= ~self->flags;
        }
        PyType_Modified(self->type);
    }
    self->depth++;
    return Py_NewRef(reinterpret_cast<PyObject *>(self->type));
}

PyObject *Flags_exit(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<FlagsObject *>(op);
    if (self->depth > 0 && --self->depth == 0) flags_restore(self);
    Py_RETURN_FALSE;
}

PyObject *Flags_active(PyObject *op, void *) {
    return PyBool_FromLong(reinterpret_cast<FlagsObject *>(op)->depth > 0);
}

PyMethodDef Flags_methods[] = {
    {"__enter__", Flags_enter, METH_NOARGS, "Apply the flag change; return the type."},
    {"__exit__", Flags_exit, METH_VARARGS, "Restore the managed flag bits."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Flags_getset[] = {
    {"active", Flags_active, nullptr, "True while the change is applied.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject WithFlags_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyTypeObject WithoutFlags_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

// ---------------------------------------------------------------------------
// Fingerprint of scalar arguments (FNV-1a, 32 bits)

constexpr uint32_t FNV_OFFSET = 2166136261u;
constexpr uint32_t FNV_PRIME = 16777619u;
constexpr Py_ssize_t PREFIX = 64;  // characters / bytes of str / bytes fed to the digest

inline void feed_byte(uint32_t &h, unsigned char b) {
    h ^= b;
    h *= FNV_PRIME;
}
inline void feed_u64(uint32_t &h, uint64_t v) {
    for (int i = 0; i < 8; ++i) feed_byte(h, static_cast<unsigned char>(v >> (8 * i)));
}

// Feed one exact scalar.  Returns its shape code, 0 if obj is not a fast-path scalar.
// On a Python error returns 0 with the error cleared (the slow path recomputes).
char feed_scalar(uint32_t &h, PyObject *obj) {
    PyTypeObject *t = Py_TYPE(obj);
    if (obj == Py_None) {
        feed_byte(h, 'N');
        return 'N';
    }
    if (t == &PyBool_Type) {
        feed_byte(h, 'b');
        feed_byte(h, obj == Py_True ? 1 : 0);
        return 'b';
    }
    if (t == &PyLong_Type) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow != 0) return 0;
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        feed_byte(h, 'i');
        feed_u64(h, static_cast<uint64_t>(v));
        return 'i';
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(obj);
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        feed_byte(h, 'f');
        feed_u64(h, bits);
        return 'f';
    }
    if (t == &PyUnicode_Type) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(obj);
        int kind = PyUnicode_KIND(obj);
        const void *data = PyUnicode_DATA(obj);
        feed_byte(h, 's');
        feed_u64(h, static_cast<uint64_t>(n));
        Py_ssize_t m = n < PREFIX ? n : PREFIX;
        for (Py_ssize_t i = 0; i < m; ++i) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            for (int k = 0; k < 4; ++k) feed_byte(h, static_cast<unsigned char>(c >> (8 * k)));
        }
        return 's';
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(obj);
        const auto *p = reinterpret_cast<const unsigned char *>(PyBytes_AS_STRING(obj));
        feed_byte(h, 'y');
        feed_u64(h, static_cast<uint64_t>(n));
        Py_ssize_t m = n < PREFIX ? n : PREFIX;
        for (Py_ssize_t i = 0; i < m; ++i) feed_byte(h, p[i]);
        return 'y';
    }
    return 0;
}

inline bool is_plain_scalar(PyObject *obj) {
    PyTypeObject *t = Py_TYPE(obj);
    return obj == Py_None || t == &PyBool_Type || t == &PyLong_Type || t == &PyFloat_Type ||
           t == &PyUnicode_Type || t == &PyBytes_Type;
}

inline bool is_scalar_value(PyObject *obj) {
    return is_plain_scalar(obj) || Py_TYPE(obj) == &PyComplex_Type;
}

constexpr int PLAIN_DEPTH = 32;  // nesting the engine's Python code also treats as plain data

// A copy of plain data for the recording or the program: scalars, and tuples holding only
// shared items, are shared; lists, dicts and sets are new.  Plain data is exact None, bool,
// int, float, complex, str, bytes, tuple, list, dict with scalar keys, set of scalars.
// Returns nullptr with error == false when value is not plain data (nothing was allocated),
// nullptr with error == true (and a Python exception) on failure.
PyObject *plain_copy(PyObject *v, int depth, bool &error) {
    if (is_scalar_value(v)) return Py_NewRef(v);
    if (depth >= PLAIN_DEPTH) return nullptr;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyTuple_Type || t == &PyList_Type) {
        bool tuple = t == &PyTuple_Type;
        Py_ssize_t n = tuple ? PyTuple_GET_SIZE(v) : PyList_GET_SIZE(v);
        PyObject *out = tuple ? PyTuple_New(n) : PyList_New(n);
        if (out == nullptr) {
            error = true;
            return nullptr;
        }
        bool same = true;
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject *item = tuple ? PyTuple_GET_ITEM(v, i) : PyList_GET_ITEM(v, i);
            PyObject *c = plain_copy(item, depth + 1, error);
            if (c == nullptr) {
                Py_DECREF(out);
                return nullptr;
            }
            same = same && c == item;
            if (tuple) {
                PyTuple_SET_ITEM(out, i, c);
            } else {
                PyList_SET_ITEM(out, i, c);
            }
        }
        if (tuple && same) {
            Py_DECREF(out);
            return Py_NewRef(v);
        }
        return out;
    }
    if (t == &PyDict_Type) {
        PyObject *out = PyDict_New();
        if (out == nullptr) {
            error = true;
            return nullptr;
        }
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(v, &pos, &key, &value)) {
            if (!is_scalar_value(key)) {
                Py_DECREF(out);
                return nullptr;
            }
            PyObject *c = plain_copy(value, depth + 1, error);
            if (c == nullptr) {
                Py_DECREF(out);
                return nullptr;
            }
            int rc = PyDict_SetItem(out, key, c);
            Py_DECREF(c);
            if (rc < 0) {
                Py_DECREF(out);
                error = true;
                return nullptr;
            }
        }
        return out;
    }
    if (t == &PySet_Type) {
        PyObject *it = PyObject_GetIter(v);
        if (it == nullptr) {
            error = true;
            return nullptr;
        }
        PyObject *item;
        bool plain = true;
        while ((item = PyIter_Next(it)) != nullptr) {
            plain = plain && is_scalar_value(item);
            Py_DECREF(item);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            error = true;
            return nullptr;
        }
        if (!plain) return nullptr;
        PyObject *out = PySet_New(v);
        if (out == nullptr) error = true;
        return out;
    }
    return nullptr;
}

// True when a call argument is a tuple, list or dict that the engine's slow path would lend
// nothing from: only scalars and such containers inside, nested at most 4 deep.
bool plain_argument(PyObject *v, int depth) {
    if (depth >= 4) return false;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyTuple_Type || t == &PyList_Type) {
        bool tuple = t == &PyTuple_Type;
        Py_ssize_t n = tuple ? PyTuple_GET_SIZE(v) : PyList_GET_SIZE(v);
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject *item = tuple ? PyTuple_GET_ITEM(v, i) : PyList_GET_ITEM(v, i);
            if (!is_scalar_value(item) && !plain_argument(item, depth + 1)) return false;
        }
        return true;
    }
    if (t == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(v, &pos, &key, &value)) {
            if (!is_scalar_value(key)) return false;
            if (!is_scalar_value(value) && !plain_argument(value, depth + 1)) return false;
        }
        return true;
    }
    return false;
}

// fingerprint(args) -> (shape, digest) or None when an argument is not a fast-path scalar
PyObject *py_fingerprint(PyObject *, PyObject *args) {
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O!:fingerprint", &PyTuple_Type, &seq)) return nullptr;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    std::vector<char> shape(static_cast<size_t>(n));
    uint32_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < n; ++i) {
        char c = feed_scalar(h, PyTuple_GET_ITEM(seq, i));
        if (c == 0) Py_RETURN_NONE;
        shape[static_cast<size_t>(i)] = c;
    }
    return Py_BuildValue("(s#k)", n == 0 ? "" : shape.data(), n, static_cast<unsigned long>(h));
}

// fnv1a(data: bytes, start: int = FNV_OFFSET) -> int: the same hash, for the slow path
PyObject *py_fnv1a(PyObject *, PyObject *args) {
    Py_buffer buf;
    unsigned long start = FNV_OFFSET;
    if (!PyArg_ParseTuple(args, "y*|k:fnv1a", &buf, &start)) return nullptr;
    uint32_t h = static_cast<uint32_t>(start);
    const auto *p = static_cast<const unsigned char *>(buf.buf);
    for (Py_ssize_t i = 0; i < buf.len; ++i) feed_byte(h, p[i]);
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLong(h);
}

// ---------------------------------------------------------------------------
// EventLog
//
// Events are stored unboxed: (kind, thread) as C integers plus up to three object fields, so
// the fast path appends without allocating (and without feeding the cyclic GC).  The log is
// not GC-tracked: recorded values are plain data and never refer back to it.

constexpr int MAX_FIELDS = 3;

struct Event {
    long kind;
    long long tag;
    int n;
    PyObject *f[MAX_FIELDS];
    uint64_t aux;  // CALL events: the digest (f[2]) unboxed, for the replay fast path
};

// Events in fixed-size chunks: appending never moves existing events (no reallocation copy).
class EventStore {
  public:
    static constexpr size_t CHUNK = 4096;
    ~EventStore() {
        for (Event *c : chunks_) delete[] c;
    }
    size_t size() const { return size_; }
    Event &operator[](size_t i) { return chunks_[i / CHUNK][i % CHUNK]; }
    const Event &operator[](size_t i) const { return chunks_[i / CHUNK][i % CHUNK]; }
    void push_back(const Event &e) {  // may throw std::bad_alloc
        if (size_ == chunks_.size() * CHUNK) {
            chunks_.reserve(chunks_.size() + 1);
            chunks_.push_back(new Event[CHUNK]);
        }
        (*this)[size_++] = e;
    }
    template <class F>
    void for_each(F f) {
        for (size_t i = 0; i < size_; ++i) f((*this)[i]);
    }
    // Forget the first k events (their references are the caller's), keeping at most the
    // chunks the remaining events need (at least one).
    void erase_prefix(size_t k) {
        if (k == 0) return;
        size_t rest = size_ - k;
        for (size_t j = 0; j < rest; ++j) (*this)[j] = (*this)[k + j];
        size_ = rest;
        size_t keep = rest == 0 ? 1 : (rest + CHUNK - 1) / CHUNK;
        while (chunks_.size() > keep) {
            delete[] chunks_.back();
            chunks_.pop_back();
        }
    }

  private:
    std::vector<Event *> chunks_;
    size_t size_ = 0;
};

struct EventLogObject {
    PyObject_HEAD
    EventStore *items;
    Py_ssize_t pos;
};

uint64_t digest_of(const Event &e) {
    if (e.kind != 1 || e.n != 3 || !PyLong_CheckExact(e.f[2])) return UINT64_MAX;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(e.f[2], &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return UINT64_MAX;
    }
    if (overflow != 0 || v < 0 || v > 0xFFFFFFFFLL) return UINT64_MAX;
    return static_cast<uint64_t>(v);
}

PyTypeObject EventLog_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

// Append a tuple (kind: int, thread: int, *fields) with at most MAX_FIELDS fields.
int log_append_tuple(EventLogObject *self, PyObject *ev) {
    if (!PyTuple_Check(ev) || PyTuple_GET_SIZE(ev) < 2 ||
        PyTuple_GET_SIZE(ev) > 2 + MAX_FIELDS || !PyLong_CheckExact(PyTuple_GET_ITEM(ev, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(ev, 1))) {
        PyErr_SetString(PyExc_ValueError,
                        "an event is a tuple (kind: int, thread: int, *fields) with at most 3 "
                        "fields");
        return -1;
    }
    Event e{};
    e.kind = PyLong_AsLong(PyTuple_GET_ITEM(ev, 0));
    if (e.kind == -1 && PyErr_Occurred()) return -1;
    e.tag = PyLong_AsLongLong(PyTuple_GET_ITEM(ev, 1));
    if (e.tag == -1 && PyErr_Occurred()) return -1;
    e.n = static_cast<int>(PyTuple_GET_SIZE(ev) - 2);
    for (int i = 0; i < e.n; ++i) e.f[i] = Py_NewRef(PyTuple_GET_ITEM(ev, i + 2));
    e.aux = digest_of(e);
    try {
        self->items->push_back(e);
    } catch (const std::bad_alloc &) {
        for (int i = 0; i < e.n; ++i) Py_DECREF(e.f[i]);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

PyObject *event_tuple(const Event &e) {
    PyObject *t = PyTuple_New(2 + e.n);
    if (t == nullptr) return nullptr;
    PyObject *kind = PyLong_FromLong(e.kind);
    PyObject *tag = PyLong_FromLongLong(e.tag);
    if (kind == nullptr || tag == nullptr) {
        Py_XDECREF(kind);
        Py_XDECREF(tag);
        Py_DECREF(t);
        return nullptr;
    }
    PyTuple_SET_ITEM(t, 0, kind);
    PyTuple_SET_ITEM(t, 1, tag);
    for (int i = 0; i < e.n; ++i) PyTuple_SET_ITEM(t, 2 + i, Py_NewRef(e.f[i]));
    return t;
}

PyObject *EventLog_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"events", nullptr};
    PyObject *events = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:EventLog", const_cast<char **>(kwlist),
                                     &events)) {
        return nullptr;
    }
    auto *self = reinterpret_cast<EventLogObject *>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    self->items = new (std::nothrow) EventStore();
    self->pos = 0;
    if (self->items == nullptr) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    if (events != nullptr) {
        PyObject *it = PyObject_GetIter(events);
        if (it == nullptr) {
            Py_DECREF(self);
            return nullptr;
        }
        PyObject *ev;
        while ((ev = PyIter_Next(it)) != nullptr) {
            int rc = log_append_tuple(self, ev);
            Py_DECREF(ev);
            if (rc < 0) break;
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            Py_DECREF(self);
            return nullptr;
        }
    }
    return reinterpret_cast<PyObject *>(self);
}

void EventLog_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (self->items != nullptr) {
        self->items->for_each([](Event &e) {
            for (int i = 0; i < e.n; ++i) Py_DECREF(e.f[i]);
        });
        delete self->items;
        self->items = nullptr;
    }
    Py_TYPE(op)->tp_free(op);
}

PyObject *EventLog_append(PyObject *op, PyObject *ev) {
    if (log_append_tuple(reinterpret_cast<EventLogObject *>(op), ev) < 0) return nullptr;
    Py_RETURN_NONE;
}

PyObject *EventLog_peek(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (self->pos >= static_cast<Py_ssize_t>(self->items->size())) Py_RETURN_NONE;
    return event_tuple((*self->items)[static_cast<size_t>(self->pos)]);
}

PyObject *EventLog_peek_thread(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (self->pos >= static_cast<Py_ssize_t>(self->items->size())) Py_RETURN_NONE;
    return PyLong_FromLongLong((*self->items)[static_cast<size_t>(self->pos)].tag);
}

PyObject *EventLog_take(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (self->pos >= static_cast<Py_ssize_t>(self->items->size())) Py_RETURN_NONE;
    return event_tuple((*self->items)[static_cast<size_t>(self->pos++)]);
}

Py_ssize_t EventLog_len(PyObject *op) {
    return static_cast<Py_ssize_t>(reinterpret_cast<EventLogObject *>(op)->items->size());
}

PyObject *EventLog_item(PyObject *op, Py_ssize_t i) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (i < 0 || i >= static_cast<Py_ssize_t>(self->items->size())) {
        PyErr_SetString(PyExc_IndexError, "EventLog index out of range");
        return nullptr;
    }
    return event_tuple((*self->items)[static_cast<size_t>(i)]);
}

PyObject *EventLog_get_pos(PyObject *op, void *) {
    return PyLong_FromSsize_t(reinterpret_cast<EventLogObject *>(op)->pos);
}

int EventLog_set_pos(PyObject *op, PyObject *value, void *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    if (value == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete pos");
        return -1;
    }
    Py_ssize_t v = PyLong_AsSsize_t(value);
    if (v == -1 && PyErr_Occurred()) return -1;
    auto n = static_cast<Py_ssize_t>(self->items->size());
    if (v < 0 || v > n) {
        PyErr_Format(PyExc_ValueError, "pos %zd outside 0..%zd", v, n);
        return -1;
    }
    self->pos = v;
    return 0;
}

PyObject *EventLog_get_events(PyObject *op, void *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    auto n = static_cast<Py_ssize_t>(self->items->size());
    PyObject *out = PyTuple_New(n);
    if (out == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject *t = event_tuple((*self->items)[static_cast<size_t>(i)]);
        if (t == nullptr) {
            Py_DECREF(out);
            return nullptr;
        }
        PyTuple_SET_ITEM(out, i, t);
    }
    return out;
}

// thread_ends() -> {thread: index of its last event}
PyObject *EventLog_thread_ends(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<EventLogObject *>(op);
    std::unordered_map<long long, size_t> last;
    try {
        for (size_t i = 0; i < self->items->size(); ++i) last[(*self->items)[i].tag] = i;
    } catch (const std::bad_alloc &) {
        return PyErr_NoMemory();
    }
    PyObject *out = PyDict_New();
    if (out == nullptr) return nullptr;
    for (const auto &kv : last) {
        PyObject *k = PyLong_FromLongLong(kv.first);
        PyObject *v = k == nullptr ? nullptr : PyLong_FromSize_t(kv.second);
        int rc = v == nullptr ? -1 : PyDict_SetItem(out, k, v);
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_DECREF(out);
            return nullptr;
        }
    }
    return out;
}

// --- the C interface (eventlog_api.h)

int api_drain(PyObject *op, retrace_event_fn fn, void *ctx) {
    if (!PyObject_TypeCheck(op, &EventLog_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected an EventLog");
        return -1;
    }
    auto *self = reinterpret_cast<EventLogObject *>(op);
    EventStore &items = *self->items;
    size_t end = items.size();  // fn may run Python code that appends: stop at today's end
    size_t i = static_cast<size_t>(self->pos);
    int rc = 0;
    for (; i < end; ++i) {
        const Event &e = items[i];
        if (fn(ctx, e.kind, e.tag, e.n, e.f) < 0) {
            rc = -1;
            break;
        }
    }
    // Forget events [0, i) and release their references once the log is consistent again
    // (a release may run arbitrary code).
    std::vector<PyObject *> refs;
    try {
        refs.reserve(i * MAX_FIELDS);
    } catch (const std::bad_alloc &) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t j = 0; j < i; ++j) {
        const Event &e = items[j];
        for (int k = 0; k < e.n; ++k) refs.push_back(e.f[k]);
    }
    items.erase_prefix(i);
    self->pos = 0;
    for (PyObject *o : refs) Py_DECREF(o);
    return rc;
}

int api_append(PyObject *op, long kind, long long tag, int n, PyObject *const *fields) {
    if (!PyObject_TypeCheck(op, &EventLog_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected an EventLog");
        return -1;
    }
    if (n < 0 || n > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "an event has at most %d fields", MAX_FIELDS);
        return -1;
    }
    Event e{kind, tag, n, {nullptr, nullptr, nullptr}, UINT64_MAX};
    for (int i = 0; i < n; ++i) e.f[i] = Py_NewRef(fields[i]);
    e.aux = digest_of(e);
    try {
        reinterpret_cast<EventLogObject *>(op)->items->push_back(e);
    } catch (const std::bad_alloc &) {
        for (int i = 0; i < n; ++i) Py_DECREF(e.f[i]);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

RetraceEventLogAPI eventlog_api = {RETRACE_EVENTLOG_API_VERSION, &EventLog_Type, MAX_FIELDS,
                                   api_drain, api_append};

PyMethodDef EventLog_methods[] = {
    {"append", EventLog_append, METH_O,
     "Append an event: a tuple (kind: int, thread: int, *fields), at most 3 fields."},
    {"peek", EventLog_peek, METH_NOARGS, "The event at the cursor, or None at the end."},
    {"peek_thread", EventLog_peek_thread, METH_NOARGS,
     "The thread of the event at the cursor, or None at the end."},
    {"take", EventLog_take, METH_NOARGS, "Return the event at the cursor and advance."},
    {"thread_ends", EventLog_thread_ends, METH_NOARGS,
     "{thread: index of the thread's last event} over the whole log."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef EventLog_getset[] = {
    {"pos", EventLog_get_pos, EventLog_set_pos, "Index of the next event to read.", nullptr},
    {"events", EventLog_get_events, nullptr, "A tuple snapshot of every event.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PySequenceMethods EventLog_as_sequence = {
    EventLog_len, nullptr, nullptr, EventLog_item, nullptr, nullptr, nullptr, nullptr,
    nullptr,      nullptr,
};

// ---------------------------------------------------------------------------
// Full fingerprint (every argument kind), identical to the fast path on scalars.

constexpr int MAX_ITEMS = 16;
constexpr int MAX_DEPTH = 4;

struct FingerprintCtx {
    uint32_t h = FNV_OFFSET;
    PyObject *classify;  // classify(obj) -> (code: str, payload: bytes) | None, or nullptr
    std::unordered_map<PyObject *, long long> *handles;  // or nullptr
};

void feed_bytes(uint32_t &h, const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; ++i) feed_byte(h, static_cast<unsigned char>(p[i]));
}

int feed_utf8(uint32_t &h, PyObject *s) {
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (b == nullptr) return -1;
    feed_bytes(h, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return 0;
}

void feed_str_prefix(uint32_t &h, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    feed_u64(h, static_cast<uint64_t>(n));
    Py_ssize_t m = n < PREFIX ? n : PREFIX;
    for (Py_ssize_t i = 0; i < m; ++i) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        for (int k = 0; k < 4; ++k) feed_byte(h, static_cast<unsigned char>(c >> (8 * k)));
    }
}

// Returns the shape code, or 0 with a Python error set.
char feed_any(FingerprintCtx &ctx, PyObject *obj, int depth) {
    uint32_t &h = ctx.h;
    PyTypeObject *t = Py_TYPE(obj);
    if (obj == Py_None || t == &PyBool_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
        t == &PyBytes_Type) {
        return feed_scalar(h, obj);
    }
    if (t == &PyLong_Type) {
        char c = feed_scalar(h, obj);
        if (c != 0) return c;
    }
    bool plain_container = t == &PyTuple_Type || t == &PyList_Type || t == &PyDict_Type ||
                           t == &PySet_Type || t == &PyFrozenSet_Type ||
                           t == &PyComplex_Type || t == &PyLong_Type;
    if (!plain_container) {
        if (ctx.handles != nullptr) {
            auto it = ctx.handles->find(obj);
            if (it != ctx.handles->end()) {
                feed_byte(h, 'o');
                feed_u64(h, static_cast<uint64_t>(it->second));
                return 'o';
            }
        }
        if (ctx.classify != nullptr) {
            PyObject *r = PyObject_CallOneArg(ctx.classify, obj);
            if (r == nullptr) return 0;
            if (r != Py_None) {
                PyObject *code, *payload;
                if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2 ||
                    !PyUnicode_Check(code = PyTuple_GET_ITEM(r, 0)) ||
                    PyUnicode_GET_LENGTH(code) != 1 ||
                    PyUnicode_READ_CHAR(code, 0) > 127 ||
                    !PyBytes_Check(payload = PyTuple_GET_ITEM(r, 1))) {
                    Py_DECREF(r);
                    PyErr_SetString(PyExc_TypeError,
                                    "classify must return None or (code: 1-char str, bytes)");
                    return 0;
                }
                char c = static_cast<char>(PyUnicode_READ_CHAR(code, 0));
                feed_byte(h, static_cast<unsigned char>(c));
                feed_bytes(h, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload));
                Py_DECREF(r);
                return c;
            }
            Py_DECREF(r);
        }
    }
    if (PyLong_Check(obj)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (v == -1 && PyErr_Occurred()) return 0;
        if (overflow == 0) {
            feed_byte(h, 'i');
            feed_u64(h, static_cast<uint64_t>(v));
            return 'i';
        }
        PyObject *s = PyNumber_ToBase(obj, 10);
        if (s == nullptr) return 0;
        feed_byte(h, 'I');
        int rc = feed_utf8(h, s);
        Py_DECREF(s);
        return rc < 0 ? 0 : 'i';
    }
    if (PyFloat_Check(obj)) {
        double d = PyFloat_AS_DOUBLE(obj);
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        feed_byte(h, 'f');
        feed_u64(h, bits);
        return 'f';
    }
    if (PyUnicode_Check(obj)) {
        feed_byte(h, 's');
        feed_str_prefix(h, obj);
        return 's';
    }
    if (PyBytes_Check(obj)) {
        Py_ssize_t n = PyBytes_GET_SIZE(obj);
        feed_byte(h, 'y');
        feed_u64(h, static_cast<uint64_t>(n));
        feed_bytes(h, PyBytes_AS_STRING(obj), n < PREFIX ? n : PREFIX);
        return 'y';
    }
    if (PyComplex_Check(obj)) {
        Py_complex c = PyComplex_AsCComplex(obj);
        if (c.real == -1.0 && PyErr_Occurred()) return 0;
        uint64_t bits;
        feed_byte(h, 'c');
        std::memcpy(&bits, &c.real, sizeof bits);
        feed_u64(h, bits);
        std::memcpy(&bits, &c.imag, sizeof bits);
        feed_u64(h, bits);
        return 'c';
    }
    if (PyTuple_Check(obj) || PyList_Check(obj)) {
        char code = PyTuple_Check(obj) ? 't' : 'l';
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        feed_byte(h, static_cast<unsigned char>(code));
        feed_u64(h, static_cast<uint64_t>(n));
        if (depth < MAX_DEPTH) {
            for (Py_ssize_t i = 0; i < n && i < MAX_ITEMS; ++i) {
                // a list may shrink while a classify callback runs: re-check the size
                if (i >= PySequence_Fast_GET_SIZE(obj)) break;
                PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(obj, i));
                char c = feed_any(ctx, item, depth + 1);
                Py_DECREF(item);
                if (c == 0) return 0;
            }
        }
        return code;
    }
    if (PyDict_Check(obj)) {
        feed_byte(h, 'd');
        feed_u64(h, static_cast<uint64_t>(PyDict_GET_SIZE(obj)));
        if (depth < MAX_DEPTH) {
            PyObject *items = PyDict_Items(obj);  // a snapshot: callbacks cannot disturb it
            if (items == nullptr) return 0;
            Py_ssize_t n = PyList_GET_SIZE(items);
            for (Py_ssize_t i = 0; i < n && i < MAX_ITEMS; ++i) {
                PyObject *kv = PyList_GET_ITEM(items, i);
                if (feed_any(ctx, PyTuple_GET_ITEM(kv, 0), depth + 1) == 0 ||
                    feed_any(ctx, PyTuple_GET_ITEM(kv, 1), depth + 1) == 0) {
                    Py_DECREF(items);
                    return 0;
                }
            }
            Py_DECREF(items);
        }
        return 'd';
    }
    if (PyAnySet_Check(obj)) {
        // Iteration order of a set can differ between processes: only the size counts.
        feed_byte(h, 'S');
        feed_u64(h, static_cast<uint64_t>(PySet_GET_SIZE(obj)));
        return 'S';
    }
    PyObject *mod = PyObject_GetAttrString(reinterpret_cast<PyObject *>(t), "__module__");
    PyObject *qual = mod == nullptr
                         ? nullptr
                         : PyObject_GetAttrString(reinterpret_cast<PyObject *>(t), "__qualname__");
    PyObject *name = qual == nullptr ? nullptr : PyUnicode_FromFormat("%S.%S", mod, qual);
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    if (name == nullptr) return 0;
    feed_byte(h, '?');
    int rc = feed_utf8(h, name);
    Py_DECREF(name);
    return rc < 0 ? 0 : '?';
}

// ---------------------------------------------------------------------------
// Boundary and Crossing

enum EventKind : long { EV_CALL = 1, EV_RESULT = 2 };
enum Mode : int { MODE_OFF = 0, MODE_RECORD = 1, MODE_REPLAY = 2 };

struct BoundaryObject {
    PyObject_HEAD
    GateObject *gate;
    PyObject *slow;           // slow(crossing, args, kwargs) -> result
    PyObject *record_result;  // record_result(crossing, value) -> value for the program
    PyObject *record_error;   // record_error(crossing, exc) -> None
    PyObject *replay_result;  // replay_result(crossing, value) -> value for the program, or null
    EventLogObject *log;      // memory fast path, or nullptr
    std::unordered_map<PyObject *, long long> *handles;  // bound objects (borrowed pointers)
    int mode;
    bool diverged;
};

PyTypeObject Boundary_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject *Boundary_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"gate",         "slow",          "record_result",
                                   "record_error", "replay_result", nullptr};
    PyObject *gate, *slow, *rr, *re, *pr = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOO|O:Boundary", const_cast<char **>(kwlist),
                                     &Gate_Type, &gate, &slow, &rr, &re, &pr)) {
        return nullptr;
    }
    if (!PyCallable_Check(slow) || !PyCallable_Check(rr) || !PyCallable_Check(re) ||
        (pr != Py_None && !PyCallable_Check(pr))) {
        PyErr_SetString(PyExc_TypeError, "Boundary handlers must be callable");
        return nullptr;
    }
    auto *self = reinterpret_cast<BoundaryObject *>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    self->gate = reinterpret_cast<GateObject *>(Py_NewRef(gate));
    self->slow = Py_NewRef(slow);
    self->record_result = Py_NewRef(rr);
    self->record_error = Py_NewRef(re);
    self->replay_result = pr == Py_None ? nullptr : Py_NewRef(pr);
    self->log = nullptr;
    self->handles = new (std::nothrow) std::unordered_map<PyObject *, long long>();
    if (self->handles == nullptr) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->mode = MODE_OFF;
    self->diverged = false;
    return reinterpret_cast<PyObject *>(self);
}

int Boundary_traverse(PyObject *op, visitproc visit, void *arg) {
    auto *self = reinterpret_cast<BoundaryObject *>(op);
    Py_VISIT(reinterpret_cast<PyObject *>(self->gate));
    Py_VISIT(self->slow);
    Py_VISIT(self->record_result);
    Py_VISIT(self->record_error);
    Py_VISIT(self->replay_result);
    Py_VISIT(reinterpret_cast<PyObject *>(self->log));
    return 0;
}

int Boundary_clear(PyObject *op) {
    auto *self = reinterpret_cast<BoundaryObject *>(op);
    Py_CLEAR(self->gate);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->record_result);
    Py_CLEAR(self->record_error);
    Py_CLEAR(self->replay_result);
    Py_CLEAR(self->log);
    return 0;
}

void Boundary_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    Boundary_clear(op);
    delete reinterpret_cast<BoundaryObject *>(op)->handles;
    Py_TYPE(op)->tp_free(op);
}

PyObject *Boundary_get_mode(PyObject *op, void *) {
    return PyLong_FromLong(reinterpret_cast<BoundaryObject *>(op)->mode);
}

int Boundary_set_mode(PyObject *op, PyObject *value, void *) {
    if (value == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete mode");
        return -1;
    }
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < MODE_OFF || v > MODE_REPLAY) {
        PyErr_Format(PyExc_ValueError, "invalid mode %ld (expected 0, 1 or 2)", v);
        return -1;
    }
    reinterpret_cast<BoundaryObject *>(op)->mode = static_cast<int>(v);
    return 0;
}

PyObject *Boundary_get_log(PyObject *op, void *) {
    auto *self = reinterpret_cast<BoundaryObject *>(op);
    if (self->log == nullptr) Py_RETURN_NONE;
    return Py_NewRef(reinterpret_cast<PyObject *>(self->log));
}

int Boundary_set_log(PyObject *op, PyObject *value, void *) {
    auto *self = reinterpret_cast<BoundaryObject *>(op);
    if (value == nullptr || value == Py_None) {
        Py_CLEAR(self->log);
        return 0;
    }
    if (!PyObject_TypeCheck(value, &EventLog_Type)) {
        PyErr_SetString(PyExc_TypeError, "Boundary.log must be an EventLog or None");
        return -1;
    }
    Py_XSETREF(self->log, reinterpret_cast<EventLogObject *>(Py_NewRef(value)));
    return 0;
}

PyObject *Boundary_get_diverged(PyObject *op, void *) {
    return PyBool_FromLong(reinterpret_cast<BoundaryObject *>(op)->diverged);
}

int Boundary_set_diverged(PyObject *op, PyObject *value, void *) {
    if (value == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete diverged");
        return -1;
    }
    int v = PyObject_IsTrue(value);
    if (v < 0) return -1;
    reinterpret_cast<BoundaryObject *>(op)->diverged = v != 0;
    return 0;
}

PyObject *Boundary_get_gate(PyObject *op, void *) {
    return Py_NewRef(reinterpret_cast<PyObject *>(reinterpret_cast<BoundaryObject *>(op)->gate));
}

PyObject *Boundary_bind(PyObject *op, PyObject *args) {
    PyObject *obj;
    long long handle;
    if (!PyArg_ParseTuple(args, "OL:bind", &obj, &handle)) return nullptr;
    if (handle < 0) {
        PyErr_SetString(PyExc_ValueError, "handles are non-negative");
        return nullptr;
    }
    try {
        (*reinterpret_cast<BoundaryObject *>(op)->handles)[obj] = handle;
    } catch (const std::bad_alloc &) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

PyObject *Boundary_unbind(PyObject *op, PyObject *address) {
    // By address: the caller may be a weakref callback of the object, already unreachable.
    void *ptr = PyLong_AsVoidPtr(address);
    if (ptr == nullptr && PyErr_Occurred()) return nullptr;
    reinterpret_cast<BoundaryObject *>(op)->handles->erase(static_cast<PyObject *>(ptr));
    Py_RETURN_NONE;
}

PyObject *Boundary_unbind_all(PyObject *op, PyObject *) {
    reinterpret_cast<BoundaryObject *>(op)->handles->clear();
    Py_RETURN_NONE;
}

PyObject *Boundary_handle_of(PyObject *op, PyObject *obj) {
    auto *h = reinterpret_cast<BoundaryObject *>(op)->handles;
    auto it = h->find(obj);
    if (it == h->end()) Py_RETURN_NONE;
    return PyLong_FromLongLong(it->second);
}

PyMethodDef Boundary_methods[] = {
    {"bind", Boundary_bind, METH_VARARGS,
     "bind(obj, handle): the fast path fingerprints obj as bound object #handle.  The caller "
     "keeps obj alive until unbind_all()."},
    {"unbind", Boundary_unbind, METH_O,
     "unbind(address): forget the binding of the object whose id() is address (if any)."},
    {"unbind_all", Boundary_unbind_all, METH_NOARGS, "Forget every binding."},
    {"handle_of", Boundary_handle_of, METH_O, "The handle bound to obj, or None."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Boundary_getset[] = {
    {"mode", Boundary_get_mode, Boundary_set_mode, "0 off, 1 record, 2 replay.", nullptr},
    {"log", Boundary_get_log, Boundary_set_log, "EventLog used by the fast path, or None.",
     nullptr},
    {"diverged", Boundary_get_diverged, Boundary_set_diverged,
     "Once true, every crossing takes the slow path.", nullptr},
    {"gate", Boundary_get_gate, nullptr, "The Gate consulted by every crossing.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

struct CrossingObject {
    PyObject_HEAD
    PyObject *target;
    PyObject *key;  // str
    BoundaryObject *boundary;
    PyObject *info;     // arbitrary object for the slow path (may be None)
    PyObject *shape;    // last shape string built by the record fast path (cache)
    PyObject *digest;   // last digest int built by the record fast path (cache)
    uint64_t digest_value;
    PyObject *weakrefs;
    vectorcallfunc vectorcall;
};

PyTypeObject Crossing_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject *call_slow(CrossingObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames) {
    PyObject *argtuple = PyTuple_New(nargs);
    if (argtuple == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < nargs; ++i) PyTuple_SET_ITEM(argtuple, i, Py_NewRef(args[i]));
    PyObject *kwargs = Py_None;
    Py_INCREF(kwargs);
    if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
        Py_DECREF(kwargs);
        kwargs = PyDict_New();
        if (kwargs == nullptr) {
            Py_DECREF(argtuple);
            return nullptr;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(argtuple);
                Py_DECREF(kwargs);
                return nullptr;
            }
        }
    }
    PyObject *handler = Py_NewRef(self->boundary->slow);
    PyObject *res = PyObject_CallFunctionObjArgs(handler, reinterpret_cast<PyObject *>(self),
                                                 argtuple, kwargs, nullptr);
    Py_DECREF(handler);
    Py_DECREF(argtuple);
    Py_DECREF(kwargs);
    return res;
}

inline bool str_equal(PyObject *a, PyObject *b) {
    if (a == b) return true;
    if (!PyUnicode_CheckExact(a) || !PyUnicode_CheckExact(b)) return false;
    return PyUnicode_Compare(a, b) == 0;
}

inline bool long_equals(PyObject *obj, long long v) {
    if (!PyLong_CheckExact(obj)) return false;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
    }
    return overflow == 0 && x == v;
}

inline bool shape_equal(PyObject *s, const char *buf, Py_ssize_t n) {
    if (!PyUnicode_CheckExact(s) || PyUnicode_GET_LENGTH(s) != n ||
        PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return false;
    }
    return n == 0 || std::memcmp(PyUnicode_1BYTE_DATA(s), buf, static_cast<size_t>(n)) == 0;
}

constexpr Py_ssize_t MAX_FAST_ARGS = 16;

inline int log_push(EventLogObject *log, long kind, long long tag, int n, PyObject *a,
                    PyObject *b, PyObject *c, uint64_t aux) {
    Event e{kind, tag, n, {a, b, c}, aux};
    for (int i = 0; i < n; ++i) Py_INCREF(e.f[i]);
    try {
        log->items->push_back(e);
    } catch (const std::bad_alloc &) {
        for (int i = 0; i < n; ++i) Py_DECREF(e.f[i]);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

// handler(crossing, value): the Python side of a fast path (the handler and value are held
// for the call, which may run arbitrary code).
PyObject *call_handler(PyObject *handler, CrossingObject *crossing, PyObject *value) {
    Py_INCREF(handler);
    Py_INCREF(value);
    PyObject *r = PyObject_CallFunctionObjArgs(handler, reinterpret_cast<PyObject *>(crossing),
                                               value, nullptr);
    Py_DECREF(value);
    Py_DECREF(handler);
    return r;
}

PyObject *record_fast(CrossingObject *self, Slot &s, PyObject *const *args, size_t nargsf,
                      const char *shapebuf, Py_ssize_t nargs, uint32_t digest) {
    BoundaryObject *b = self->boundary;
    if (!shape_equal(self->shape, shapebuf, nargs)) {
        PyObject *shape = PyUnicode_FromStringAndSize(shapebuf, nargs);
        if (shape == nullptr) return nullptr;
        Py_SETREF(self->shape, shape);
    }
    if (self->digest_value != digest) {
        PyObject *dig = PyLong_FromUnsignedLong(digest);
        if (dig == nullptr) return nullptr;
        Py_SETREF(self->digest, dig);
        self->digest_value = digest;
    }
    long long tag = s.tag;
    if (log_push(b->log, EV_CALL, tag, 3, self->key, self->shape, self->digest, digest) < 0) {
        return nullptr;
    }

    s.state = OUTSIDE;
    PyObject *res = PyObject_Vectorcall(self->target, args, nargsf, nullptr);
    s.state = INSIDE;

    if (res == nullptr) {
        SavedError err;
        err.fetch();
        PyObject *r = call_handler(b->record_error, self, err.value());
        if (r == nullptr) {
            err.clear();
            return nullptr;
        }
        Py_DECREF(r);
        err.restore();
        return nullptr;
    }
    if (is_plain_scalar(res) && b->log != nullptr) {
        if (log_push(b->log, EV_RESULT, tag, 1, res, nullptr, nullptr, UINT64_MAX) < 0) {
            Py_DECREF(res);
            return nullptr;
        }
        return res;
    }
    if (b->log != nullptr) {
        // Plain data: the recording and the program each get their own copy.
        bool error = false;
        PyObject *recorded = plain_copy(res, 0, error);
        if (recorded != nullptr) {
            PyObject *program = plain_copy(res, 0, error);
            Py_DECREF(res);
            if (program == nullptr ||
                log_push(b->log, EV_RESULT, tag, 1, recorded, nullptr, nullptr, UINT64_MAX) < 0) {
                Py_DECREF(recorded);
                Py_XDECREF(program);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "copy failed");
                return nullptr;
            }
            Py_DECREF(recorded);
            return program;
        }
        if (error) {
            Py_DECREF(res);
            return nullptr;
        }
    }
    PyObject *out = call_handler(b->record_result, self, res);
    Py_DECREF(res);
    return out;
}

PyObject *replay_fast(CrossingObject *self, Slot &s, const char *shapebuf, Py_ssize_t nargs,
                      uint32_t digest) {
    EventLogObject *log = self->boundary->log;
    EventStore &items = *log->items;
    auto pos = static_cast<size_t>(log->pos);
    if (pos + 1 >= items.size()) return nullptr;
    const Event &call = items[pos];
    const Event &res = items[pos + 1];
    if (call.kind != EV_CALL || call.n != 3 || call.tag != s.tag || res.kind != EV_RESULT ||
        res.n != 1 || res.tag != s.tag || !str_equal(call.f[0], self->key) ||
        call.aux != digest || !shape_equal(call.f[1], shapebuf, nargs)) {
        return nullptr;
    }
    PyObject *value = res.f[0];
    if (is_plain_scalar(value)) {
        log->pos = static_cast<Py_ssize_t>(pos + 2);
        return Py_NewRef(value);
    }
    bool error = false;
    PyObject *copy = plain_copy(value, 0, error);  // the program gets its own copy
    if (copy != nullptr) {
        log->pos = static_cast<Py_ssize_t>(pos + 2);
        return copy;
    }
    BoundaryObject *b = self->boundary;
    if (error || b->replay_result == nullptr) return nullptr;  // error set, or the slow path
    // Any other recorded result (an external object's handle...): the call matched, so the
    // Python side only turns the value into the program's object.
    log->pos = static_cast<Py_ssize_t>(pos + 2);
    return call_handler(b->replay_result, self, value);
}

PyObject *Crossing_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    BoundaryObject *b = self->boundary;
    if (b == nullptr || self->target == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "Crossing was cleared");
        return nullptr;
    }
    Slot &s = gate_slot(b->gate);
    if (s.state != INSIDE || b->mode == MODE_OFF) {
        return PyObject_Vectorcall(self->target, args, nargsf, kwnames);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (b->log == nullptr || b->diverged || kwnames != nullptr || nargs > MAX_FAST_ARGS) {
        return call_slow(self, args, nargs, kwnames);
    }
    char shapebuf[MAX_FAST_ARGS];
    uint32_t digest = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < nargs; ++i) {
        char c = feed_scalar(digest, args[i]);
        if (c == 0) {
            auto it = b->handles->find(args[i]);
            if (it != b->handles->end()) {
                c = 'o';
                feed_byte(digest, 'o');
                feed_u64(digest, static_cast<uint64_t>(it->second));
            } else if (plain_argument(args[i], 0)) {
                FingerprintCtx ctx;
                ctx.h = digest;
                ctx.classify = nullptr;
                ctx.handles = nullptr;
                c = feed_any(ctx, args[i], 0);
                if (c == 0) return nullptr;
                digest = ctx.h;
            } else {
                return call_slow(self, args, nargs, kwnames);
            }
        }
        shapebuf[i] = c;
    }
    if (b->mode == MODE_RECORD) {
        return record_fast(self, s, args, nargsf, shapebuf, nargs, digest);
    }
    PyObject *r = replay_fast(self, s, shapebuf, nargs, digest);
    if (r != nullptr || PyErr_Occurred()) return r;
    return call_slow(self, args, nargs, kwnames);
}

PyObject *Crossing_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"target", "key", "boundary", "info", nullptr};
    PyObject *target, *key, *boundary, *info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OUO!|O:Crossing", const_cast<char **>(kwlist),
                                     &target, &key, &Boundary_Type, &boundary, &info)) {
        return nullptr;
    }
    if (!PyCallable_Check(target)) {
        PyErr_Format(PyExc_TypeError, "Crossing target must be callable, not %.100s",
                     Py_TYPE(target)->tp_name);
        return nullptr;
    }
    auto *self = reinterpret_cast<CrossingObject *>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    self->target = Py_NewRef(target);
    self->key = Py_NewRef(key);
    self->boundary = reinterpret_cast<BoundaryObject *>(Py_NewRef(boundary));
    self->info = Py_NewRef(info);
    self->shape = PyUnicode_FromStringAndSize("", 0);
    self->digest = PyLong_FromUnsignedLong(FNV_OFFSET);
    self->digest_value = FNV_OFFSET;
    self->weakrefs = nullptr;
    self->vectorcall = Crossing_vectorcall;
    if (self->shape == nullptr || self->digest == nullptr) {
        Py_DECREF(self);
        return nullptr;
    }
    return reinterpret_cast<PyObject *>(self);
}

int Crossing_traverse(PyObject *op, visitproc visit, void *arg) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    Py_VISIT(self->target);
    Py_VISIT(reinterpret_cast<PyObject *>(self->boundary));
    Py_VISIT(self->info);
    return 0;
}

int Crossing_clear(PyObject *op) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    Py_CLEAR(self->target);
    Py_CLEAR(self->boundary);
    Py_CLEAR(self->info);
    return 0;
}

void Crossing_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    PyObject_GC_UnTrack(op);
    if (self->weakrefs != nullptr) PyObject_ClearWeakRefs(op);
    Crossing_clear(op);
    Py_CLEAR(self->key);
    Py_CLEAR(self->shape);
    Py_CLEAR(self->digest);
    Py_TYPE(op)->tp_free(op);
}

PyObject *Crossing_call(PyObject *op, PyObject *args, PyObject *kwargs) {
    return PyVectorcall_Call(op, args, kwargs);
}

PyObject *Crossing_descr_get(PyObject *op, PyObject *obj, PyObject *) {
    if (obj == nullptr || obj == Py_None) return Py_NewRef(op);
    return PyMethod_New(op, obj);
}

inline bool crossing_alive(CrossingObject *self) {
    if (self->target == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "Crossing was cleared");
        return false;
    }
    return true;
}

PyObject *Crossing_get_target(PyObject *op, void *) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    return crossing_alive(self) ? Py_NewRef(self->target) : nullptr;
}
PyObject *Crossing_get_key(PyObject *op, void *) {
    return Py_NewRef(reinterpret_cast<CrossingObject *>(op)->key);
}
PyObject *Crossing_get_info(PyObject *op, void *) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    return crossing_alive(self) ? Py_NewRef(self->info) : nullptr;
}
PyObject *Crossing_get_boundary(PyObject *op, void *) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    return crossing_alive(self) ? Py_NewRef(reinterpret_cast<PyObject *>(self->boundary))
                                : nullptr;
}
PyObject *Crossing_forward(PyObject *op, void *name) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    if (!crossing_alive(self)) return nullptr;
    return PyObject_GetAttrString(self->target, static_cast<const char *>(name));
}

// Pickle by reference, like the function it replaces: pickle finds the attribute by the
// target's module and qualified name, which is this crossing while the patch is in place.
PyObject *Crossing_reduce(PyObject *op, PyObject *) {
    auto *self = reinterpret_cast<CrossingObject *>(op);
    if (!crossing_alive(self)) return nullptr;
    return PyObject_GetAttrString(self->target, "__qualname__");
}

PyMethodDef Crossing_methods[] = {
    {"__reduce__", Crossing_reduce, METH_NOARGS, "Pickle by reference (qualified name)."},
    {nullptr, nullptr, 0, nullptr},
};

PyObject *Crossing_repr(PyObject *op) {
    return PyUnicode_FromFormat("<Crossing %U>", reinterpret_cast<CrossingObject *>(op)->key);
}

PyGetSetDef Crossing_getset[] = {
    {"target", Crossing_get_target, nullptr, "The wrapped callable.", nullptr},
    {"__wrapped__", Crossing_get_target, nullptr, "The wrapped callable.", nullptr},
    {"key", Crossing_get_key, nullptr, "Stable name recorded with each call.", nullptr},
    {"info", Crossing_get_info, nullptr, "Object attached for the slow path.", nullptr},
    {"boundary", Crossing_get_boundary, nullptr, "The shared Boundary.", nullptr},
    {"__name__", Crossing_forward, nullptr, nullptr, const_cast<char *>("__name__")},
    {"__qualname__", Crossing_forward, nullptr, nullptr, const_cast<char *>("__qualname__")},
    {"__doc__", Crossing_forward, nullptr, nullptr, const_cast<char *>("__doc__")},
    {"__module__", Crossing_forward, nullptr, nullptr, const_cast<char *>("__module__")},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ---------------------------------------------------------------------------
// fingerprint_full(args, kwargs=None, classify=None, boundary=None) -> (shape, digest)
PyObject *py_fingerprint_full(PyObject *, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"args", "kwargs", "classify", "boundary", nullptr};
    PyObject *seq, *kwargs = Py_None, *classify = Py_None, *boundary = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|OOO:fingerprint_full",
                                     const_cast<char **>(kwlist), &PyTuple_Type, &seq, &kwargs,
                                     &classify, &boundary)) {
        return nullptr;
    }
    if (kwargs != Py_None && !PyDict_Check(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "kwargs must be a dict or None");
        return nullptr;
    }
    if (classify != Py_None && !PyCallable_Check(classify)) {
        PyErr_SetString(PyExc_TypeError, "classify must be callable or None");
        return nullptr;
    }
    if (boundary != Py_None && !PyObject_TypeCheck(boundary, &Boundary_Type)) {
        PyErr_SetString(PyExc_TypeError, "boundary must be a Boundary or None");
        return nullptr;
    }
    FingerprintCtx ctx;
    ctx.classify = classify == Py_None ? nullptr : classify;
    ctx.handles = boundary == Py_None ? nullptr
                                      : reinterpret_cast<BoundaryObject *>(boundary)->handles;
    std::string shape;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); ++i) {
        char c = feed_any(ctx, PyTuple_GET_ITEM(seq, i), 0);
        if (c == 0) return nullptr;
        shape.push_back(c);
    }
    if (kwargs != Py_None && PyDict_GET_SIZE(kwargs) > 0) {
        PyObject *items = PyDict_Items(kwargs);
        if (items == nullptr) return nullptr;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); ++i) {
            PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0);
            PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
            if (!PyUnicode_Check(key)) {
                Py_DECREF(items);
                PyErr_SetString(PyExc_TypeError, "keyword names must be str");
                return nullptr;
            }
            feed_byte(ctx.h, 'k');
            Py_ssize_t n = PyUnicode_GET_LENGTH(key);
            for (Py_ssize_t j = 0; j < n; ++j) {
                Py_UCS4 c = PyUnicode_READ_CHAR(key, j);
                for (int k = 0; k < 4; ++k) {
                    feed_byte(ctx.h, static_cast<unsigned char>(c >> (8 * k)));
                }
            }
            char c = feed_any(ctx, value, 0);
            if (c == 0) {
                Py_DECREF(items);
                return nullptr;
            }
            Py_ssize_t size = 0;
            const char *utf8 = PyUnicode_AsUTF8AndSize(key, &size);
            if (utf8 == nullptr) {
                Py_DECREF(items);
                return nullptr;
            }
            shape.push_back(',');
            shape.append(utf8, static_cast<size_t>(size));
            shape.push_back('=');
            shape.push_back(c);
        }
        Py_DECREF(items);
    }
    return Py_BuildValue("(s#k)", shape.data(), static_cast<Py_ssize_t>(shape.size()),
                         static_cast<unsigned long>(ctx.h));
}

// ---------------------------------------------------------------------------
// StackFactory

struct StackFactoryObject {
    PyObject_HEAD
    PyObject *skip;  // tuple of str prefixes
};

PyTypeObject StackFactory_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject *StackFactory_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"skip", nullptr};
    PyObject *skip = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:StackFactory", const_cast<char **>(kwlist),
                                     &skip)) {
        return nullptr;
    }
    PyObject *tup = skip == nullptr ? PyTuple_New(0) : PySequence_Tuple(skip);
    if (tup == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tup); ++i) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(tup, i))) {
            Py_DECREF(tup);
            PyErr_SetString(PyExc_TypeError, "StackFactory skip must be a sequence of str");
            return nullptr;
        }
    }
    auto *self = reinterpret_cast<StackFactoryObject *>(type->tp_alloc(type, 0));
    if (self == nullptr) {
        Py_DECREF(tup);
        return nullptr;
    }
    self->skip = tup;
    return reinterpret_cast<PyObject *>(self);
}

void StackFactory_dealloc(PyObject *op) {
    Py_XDECREF(reinterpret_cast<StackFactoryObject *>(op)->skip);
    Py_TYPE(op)->tp_free(op);
}

// Returns 1 when filename starts with one of the skip prefixes, 0 if not, -1 on error.
int skipped(PyObject *skip, PyObject *filename) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(skip); ++i) {
        Py_ssize_t r = PyUnicode_Tailmatch(filename, PyTuple_GET_ITEM(skip, i), 0,
                                           PY_SSIZE_T_MAX, -1);
        if (r != 0) return static_cast<int>(r);
    }
    return 0;
}

// factory(limit=0) -> tuple of (filename, lineno, name), innermost first.
PyObject *StackFactory_call(PyObject *op, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"limit", nullptr};
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n:StackFactory", const_cast<char **>(kwlist),
                                     &limit)) {
        return nullptr;
    }
    auto *self = reinterpret_cast<StackFactoryObject *>(op);
    PyObject *out = PyList_New(0);
    if (out == nullptr) return nullptr;
    PyFrameObject *frame = PyEval_GetFrame();
    Py_XINCREF(frame);
    while (frame != nullptr && (limit <= 0 || PyList_GET_SIZE(out) < limit)) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        int sk = skipped(self->skip, code->co_filename);
        if (sk < 0) {
            Py_DECREF(code);
            Py_DECREF(frame);
            Py_DECREF(out);
            return nullptr;
        }
        if (sk == 0) {
            PyObject *entry = Py_BuildValue("(OiO)", code->co_filename,
                                            PyFrame_GetLineNumber(frame), code->co_name);
            if (entry == nullptr || PyList_Append(out, entry) < 0) {
                Py_XDECREF(entry);
                Py_DECREF(code);
                Py_DECREF(frame);
                Py_DECREF(out);
                return nullptr;
            }
            Py_DECREF(entry);
        }
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    PyObject *tup = PyList_AsTuple(out);
    Py_DECREF(out);
    return tup;
}

PyObject *StackFactory_get_skip(PyObject *op, void *) {
    return Py_NewRef(reinterpret_cast<StackFactoryObject *>(op)->skip);
}

PyGetSetDef StackFactory_getset[] = {
    {"skip", StackFactory_get_skip, nullptr, "File-name prefixes left out of captures.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ---------------------------------------------------------------------------
// InterceptDict

struct InterceptDictObject {
    PyDictObject base;
    PyObject *on_set;     // on_set(key, value) after assignment, or nullptr
    PyObject *on_delete;  // on_delete(key) after deletion, or nullptr
};

PyTypeObject InterceptDict_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

int InterceptDict_traverse(PyObject *op, visitproc visit, void *arg) {
    auto *self = reinterpret_cast<InterceptDictObject *>(op);
    Py_VISIT(self->on_set);
    Py_VISIT(self->on_delete);
    return PyDict_Type.tp_traverse(op, visit, arg);
}

int InterceptDict_clear(PyObject *op) {
    auto *self = reinterpret_cast<InterceptDictObject *>(op);
    Py_CLEAR(self->on_set);
    Py_CLEAR(self->on_delete);
    return PyDict_Type.tp_clear(op);
}

void InterceptDict_dealloc(PyObject *op) {
    auto *self = reinterpret_cast<InterceptDictObject *>(op);
    PyObject_GC_UnTrack(op);
    Py_CLEAR(self->on_set);
    Py_CLEAR(self->on_delete);
    PyDict_Type.tp_dealloc(op);
}

int InterceptDict_ass_sub(PyObject *op, PyObject *key, PyObject *value) {
    auto *self = reinterpret_cast<InterceptDictObject *>(op);
    int rc = value == nullptr ? PyDict_DelItem(op, key) : PyDict_SetItem(op, key, value);
    if (rc < 0) return -1;
    PyObject *hook = value == nullptr ? self->on_delete : self->on_set;
    if (hook == nullptr) return 0;
    Py_INCREF(hook);
    PyObject *r = value == nullptr ? PyObject_CallOneArg(hook, key)
                                   : PyObject_CallFunctionObjArgs(hook, key, value, nullptr);
    Py_DECREF(hook);
    if (r == nullptr) return -1;
    Py_DECREF(r);
    return 0;
}

PyObject *hook_get(PyObject *hook) {
    if (hook == nullptr) Py_RETURN_NONE;
    return Py_NewRef(hook);
}

int hook_set(PyObject **slot, PyObject *value) {
    if (value == nullptr || value == Py_None) {
        Py_CLEAR(*slot);
        return 0;
    }
    if (!PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "hook must be callable or None");
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

PyObject *InterceptDict_get_on_set(PyObject *op, void *) {
    return hook_get(reinterpret_cast<InterceptDictObject *>(op)->on_set);
}
int InterceptDict_set_on_set(PyObject *op, PyObject *v, void *) {
    return hook_set(&reinterpret_cast<InterceptDictObject *>(op)->on_set, v);
}
PyObject *InterceptDict_get_on_delete(PyObject *op, void *) {
    return hook_get(reinterpret_cast<InterceptDictObject *>(op)->on_delete);
}
int InterceptDict_set_on_delete(PyObject *op, PyObject *v, void *) {
    return hook_set(&reinterpret_cast<InterceptDictObject *>(op)->on_delete, v);
}

PyGetSetDef InterceptDict_getset[] = {
    {"on_set", InterceptDict_get_on_set, InterceptDict_set_on_set,
     "Called as on_set(key, value) after d[key] = value.", nullptr},
    {"on_delete", InterceptDict_get_on_delete, InterceptDict_set_on_delete,
     "Called as on_delete(key) after del d[key].", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMappingMethods InterceptDict_as_mapping = {nullptr, nullptr, InterceptDict_ass_sub};

// ---------------------------------------------------------------------------
// Deterministic identity hashing

hashfunc identity_hash = nullptr;
PyObject *str_subclasses = nullptr;  // interned "__subclasses__"
PyObject *str_hash = nullptr;        // interned "__hash__"

destructor subtype_dealloc_ptr = nullptr;
std::unordered_map<PyObject *, Py_hash_t> *seq_hashes = nullptr;
std::unordered_map<PyTypeObject *, destructor> *orig_dealloc = nullptr;
std::unordered_map<PyTypeObject *, PyObject *> *patched_hash = nullptr;  // type -> old __hash__
Py_hash_t hash_counter = 0;
thread_local PyObject *dealloc_self = nullptr;
thread_local PyTypeObject *dealloc_owner = nullptr;

void seq_dealloc(PyObject *op) {
    if (seq_hashes != nullptr) seq_hashes->erase(op);
    PyTypeObject *t = Py_TYPE(op);
    if (dealloc_self == op && dealloc_owner != nullptr) t = dealloc_owner->tp_base;
    for (; t != nullptr; t = t->tp_base) {
        auto it = orig_dealloc->find(t);
        if (it != orig_dealloc->end()) {
            PyObject *prev_self = dealloc_self;
            PyTypeObject *prev_owner = dealloc_owner;
            dealloc_self = op;
            dealloc_owner = t;
            it->second(op);
            dealloc_self = prev_self;
            dealloc_owner = prev_owner;
            return;
        }
    }
    // Unreachable while the table is consistent; free the memory rather than leak.
    Py_TYPE(op)->tp_free(op);
}

PyObject *seq_hash_method(PyObject *self, PyObject *) {
    auto it = seq_hashes->find(self);
    if (it != seq_hashes->end()) return PyLong_FromSsize_t(it->second);
    Py_hash_t h = ++hash_counter;
    if (h == -1) h = ++hash_counter;
    seq_hashes->emplace(self, h);
    return PyLong_FromSsize_t(h);
}

PyMethodDef seq_hash_def = {"__hash__", seq_hash_method, METH_NOARGS,
                            "Sequence-based identity hash (installed by patch_hash)."};

int collect_types(PyTypeObject *type, std::vector<PyTypeObject *> &out) {
    for (PyTypeObject *t : out) {
        if (t == type) return 0;
    }
    out.push_back(type);
    // Interned names: CPython's method cache keeps a reference to the looked-up name.
    PyObject *subs = PyObject_CallMethodNoArgs(reinterpret_cast<PyObject *>(type),
                                               str_subclasses);
    if (subs == nullptr) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subs); ++i) {
        if (collect_types(reinterpret_cast<PyTypeObject *>(PyList_GET_ITEM(subs, i)), out) < 0) {
            Py_DECREF(subs);
            return -1;
        }
    }
    Py_DECREF(subs);
    return 0;
}

#if PY_VERSION_HEX >= 0x030C0000
// Set or delete name in the dict attribute lookups really use when it is not tp_dict: from
// 3.13 the static types of extension modules (datetime...) keep their dict per interpreter
// and setattr would write to a fresh tp_dict that no lookup reads.  Returns 1 when done
// there, 0 when tp_dict is the real dict (use setattr), -1 with an exception set.
int set_in_interpreter_dict(PyTypeObject *type, PyObject *name, PyObject *value) {
    PyObject *dict = PyType_GetDict(type);
    if (dict == nullptr) {
        if (PyErr_Occurred()) return -1;
        return 0;
    }
    if (dict == type->tp_dict) {
        Py_DECREF(dict);
        return 0;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(name);
    if (len > 4 && PyUnicode_READ_CHAR(name, 0) == '_' && PyUnicode_READ_CHAR(name, 1) == '_' &&
        PyUnicode_READ_CHAR(name, len - 1) == '_' && PyUnicode_READ_CHAR(name, len - 2) == '_') {
        // a special method would also need the type's slot updated, which has no public API
        Py_DECREF(dict);
        PyErr_Format(PyExc_TypeError,
                     "cannot set the special attribute %R of %.200s on this Python (its type "
                     "dict is per interpreter)",
                     name, type->tp_name);
        return -1;
    }
    int rc;
    if (value != nullptr) {
        rc = PyDict_SetItem(dict, name, value);
    } else {
        rc = PyDict_DelItem(dict, name);
        if (rc < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_AttributeError, "type object '%.200s' has no attribute '%U'",
                         type->tp_name, name);
        }
    }
    Py_DECREF(dict);
    PyType_Modified(type);
    return rc < 0 ? -1 : 1;
}
#endif

int set_type_attr(PyTypeObject *type, PyObject *name, PyObject *value) {
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "attribute name must be a str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX >= 0x030C0000
    int done = set_in_interpreter_dict(type, name, value);
    if (done != 0) return done < 0 ? -1 : 0;
#endif
    unsigned long saved = type->tp_flags & Py_TPFLAGS_IMMUTABLETYPE;
    type->tp_flags &= ~Py_TPFLAGS_IMMUTABLETYPE;
    auto *obj = reinterpret_cast<PyObject *>(type);
    int rc = value == nullptr ? PyObject_DelAttr(obj, name) : PyObject_SetAttr(obj, name, value);
    type->tp_flags |= saved;
    PyType_Modified(type);
    return rc;
}

// set_type_attribute(type, name[, value]): set (or delete) type.name, immutable types too.
PyObject *py_set_type_attribute(PyObject *, PyObject *args) {
    PyObject *type;
    PyObject *name;
    PyObject *value = nullptr;
    if (!PyArg_ParseTuple(args, "O!U|O:set_type_attribute", &PyType_Type, &type, &name,
                          &value)) {
        return nullptr;
    }
    if (set_type_attr(reinterpret_cast<PyTypeObject *>(type), name, value) < 0) return nullptr;
    Py_RETURN_NONE;
}

// patch_hash(type) -> bool: True when the patch was applied, False if already applied.
PyObject *py_patch_hash(PyObject *, PyObject *arg) {
    if (!PyType_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "patch_hash expects a type");
        return nullptr;
    }
    auto *type = reinterpret_cast<PyTypeObject *>(arg);
    if (patched_hash->count(type)) Py_RETURN_FALSE;
    if (type->tp_hash != identity_hash) {
        PyErr_Format(PyExc_TypeError,
                     "patch_hash: %.200s does not use the identity hash (it defines __hash__ "
                     "or inherits another one)",
                     type->tp_name);
        return nullptr;
    }
    std::vector<PyTypeObject *> types;
    if (collect_types(type, types) < 0) return nullptr;
    PyObject *descr = PyDescr_NewMethod(type, &seq_hash_def);
    if (descr == nullptr) return nullptr;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *dict = PyType_GetDict(type);
#else
    PyObject *dict = Py_XNewRef(type->tp_dict);
#endif
    PyObject *old = dict == nullptr ? nullptr : PyDict_GetItemWithError(dict, str_hash);
    if (old == nullptr && PyErr_Occurred()) {
        Py_DECREF(descr);
        Py_XDECREF(dict);
        return nullptr;
    }
    Py_XINCREF(old);
    Py_XDECREF(dict);
    std::vector<PyTypeObject *> users;  // types whose instances will use the new hash
    for (PyTypeObject *t : types) {
        if (t->tp_hash == identity_hash) users.push_back(t);
    }
    if (set_type_attr(type, str_hash, descr) < 0) {
        Py_DECREF(descr);
        Py_XDECREF(old);
        return nullptr;
    }
    Py_DECREF(descr);
    patched_hash->emplace(type, old);
    // Forget an object's hash when it dies: wrap the dealloc that really frees instances of
    // each user type (the first base whose dealloc is not CPython's generic subtype_dealloc).
    for (PyTypeObject *t : users) {
        PyTypeObject *owner = t;
        while (owner->tp_dealloc == subtype_dealloc_ptr && owner->tp_base != nullptr) {
            owner = owner->tp_base;
        }
        if (owner->tp_dealloc != seq_dealloc) {
            orig_dealloc->emplace(owner, owner->tp_dealloc);
            owner->tp_dealloc = seq_dealloc;
        }
    }
    Py_RETURN_TRUE;
}

PyObject *py_unpatch_hash(PyObject *, PyObject *arg) {
    if (!PyType_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "unpatch_hash expects a type");
        return nullptr;
    }
    auto *type = reinterpret_cast<PyTypeObject *>(arg);
    auto it = patched_hash->find(type);
    if (it == patched_hash->end()) Py_RETURN_FALSE;
    PyObject *old = it->second;
    if (set_type_attr(type, str_hash, old) < 0) return nullptr;
    Py_XDECREF(old);
    patched_hash->erase(it);
    if (patched_hash->empty()) {
        for (auto &entry : *orig_dealloc) entry.first->tp_dealloc = entry.second;
        orig_dealloc->clear();
        seq_hashes->clear();
    }
    Py_RETURN_TRUE;
}

PyObject *py_hash_state(PyObject *, PyObject *) {
    return Py_BuildValue("(nn)", hash_counter, static_cast<Py_ssize_t>(seq_hashes->size()));
}

PyObject *py_reset_hash_sequence(PyObject *, PyObject *args) {
    Py_ssize_t start = 0;
    if (!PyArg_ParseTuple(args, "|n:reset_hash_sequence", &start)) return nullptr;
    hash_counter = start;
    seq_hashes->clear();
    Py_RETURN_NONE;
}

// ---------------------------------------------------------------------------
// Module

PyMethodDef module_methods[] = {
    {"fingerprint", py_fingerprint, METH_VARARGS,
     "fingerprint(args: tuple) -> (shape, digest) | None for the scalar fast path."},
    {"fingerprint_full",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_fingerprint_full)),
     METH_VARARGS | METH_KEYWORDS,
     "fingerprint_full(args, kwargs=None, classify=None, boundary=None) -> (shape, digest) "
     "for any arguments."},
    {"fnv1a", py_fnv1a, METH_VARARGS, "fnv1a(data, start=2166136261) -> 32-bit FNV-1a."},
    {"set_type_attribute", py_set_type_attribute, METH_VARARGS,
     "set_type_attribute(type, name[, value]): set (or delete) an attribute of any type."},
    {"patch_hash", py_patch_hash, METH_O, "Give a type sequence-based identity hashes."},
    {"unpatch_hash", py_unpatch_hash, METH_O, "Undo patch_hash for a type."},
    {"hash_state", py_hash_state, METH_NOARGS, "(counter, live entries) of the hash table."},
    {"reset_hash_sequence", py_reset_hash_sequence, METH_VARARGS,
     "Restart the hash sequence (and forget assigned hashes)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_utils", "Low-level CPython tools for retracesoftware.", -1,
    module_methods,        nullptr,  nullptr,
    nullptr,               nullptr,
};

int ready(PyTypeObject *t, const char *name, const char *doc, Py_ssize_t size,
          unsigned long flags) {
    t->tp_name = name;
    t->tp_doc = doc;
    t->tp_basicsize = size;
    t->tp_flags = Py_TPFLAGS_DEFAULT | flags;
    return PyType_Ready(t);
}

int setup_types() {
    Gate_Type.tp_new = Gate_new;
    Gate_Type.tp_dealloc = Gate_dealloc;
    Gate_Type.tp_methods = Gate_methods;
    Gate_Type.tp_getset = Gate_getset;
    if (ready(&Gate_Type, "retracesoftware.utils._utils.Gate",
              "Per-thread state word: OFF, INSIDE, OUTSIDE or DISABLED, plus an integer tag.",
              sizeof(GateObject), 0) < 0) {
        return -1;
    }
    GateScope_Type.tp_dealloc = GateScope_dealloc;
    GateScope_Type.tp_methods = GateScope_methods;
    if (ready(&GateScope_Type, "retracesoftware.utils._utils.GateScope",
              "Context manager returned by Gate.scope().", sizeof(GateScopeObject), 0) < 0) {
        return -1;
    }
    for (PyTypeObject *t : {&WithFlags_Type, &WithoutFlags_Type}) {
        t->tp_new = PyType_GenericNew;
        t->tp_dealloc = Flags_dealloc;
        t->tp_methods = Flags_methods;
        t->tp_getset = Flags_getset;
    }
    WithFlags_Type.tp_init = WithFlags_init;
    WithoutFlags_Type.tp_init = WithoutFlags_init;
    if (ready(&WithFlags_Type, "retracesoftware.utils._utils.WithFlags",
              "WithFlags(type, flags): set flag bits while active, restore them on exit.",
              sizeof(FlagsObject), 0) < 0 ||
        ready(&WithoutFlags_Type, "retracesoftware.utils._utils.WithoutFlags",
              "WithoutFlags(type, flags): clear flag bits while active, restore them on exit.",
              sizeof(FlagsObject), 0) < 0) {
        return -1;
    }
    EventLog_Type.tp_new = EventLog_new;
    EventLog_Type.tp_dealloc = EventLog_dealloc;
    EventLog_Type.tp_methods = EventLog_methods;
    EventLog_Type.tp_getset = EventLog_getset;
    EventLog_Type.tp_as_sequence = &EventLog_as_sequence;
    if (ready(&EventLog_Type, "retracesoftware.utils._utils.EventLog",
              "Append-only list of events with a read cursor.", sizeof(EventLogObject),
              0) < 0) {
        return -1;
    }
    Boundary_Type.tp_new = Boundary_new;
    Boundary_Type.tp_dealloc = Boundary_dealloc;
    Boundary_Type.tp_traverse = Boundary_traverse;
    Boundary_Type.tp_clear = Boundary_clear;
    Boundary_Type.tp_getset = Boundary_getset;
    Boundary_Type.tp_methods = Boundary_methods;
    Boundary_Type.tp_free = PyObject_GC_Del;
    if (ready(&Boundary_Type, "retracesoftware.utils._utils.Boundary",
              "Shared state of a set of Crossings.", sizeof(BoundaryObject),
              Py_TPFLAGS_HAVE_GC) < 0) {
        return -1;
    }
    Crossing_Type.tp_new = Crossing_new;
    Crossing_Type.tp_dealloc = Crossing_dealloc;
    Crossing_Type.tp_traverse = Crossing_traverse;
    Crossing_Type.tp_clear = Crossing_clear;
    Crossing_Type.tp_getset = Crossing_getset;
    Crossing_Type.tp_methods = Crossing_methods;
    Crossing_Type.tp_call = Crossing_call;
    Crossing_Type.tp_descr_get = Crossing_descr_get;
    Crossing_Type.tp_repr = Crossing_repr;
    Crossing_Type.tp_vectorcall_offset = offsetof(CrossingObject, vectorcall);
    Crossing_Type.tp_weaklistoffset = offsetof(CrossingObject, weakrefs);
    Crossing_Type.tp_free = PyObject_GC_Del;
    if (ready(&Crossing_Type, "retracesoftware.utils._utils.Crossing",
              "Crossing(target, key, boundary, info=None): a callable on the sandbox boundary.",
              sizeof(CrossingObject),
              Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR) <
        0) {
        return -1;
    }
    StackFactory_Type.tp_new = StackFactory_new;
    StackFactory_Type.tp_dealloc = StackFactory_dealloc;
    StackFactory_Type.tp_call = StackFactory_call;
    StackFactory_Type.tp_getset = StackFactory_getset;
    if (ready(&StackFactory_Type, "retracesoftware.utils._utils.StackFactory",
              "StackFactory(skip=()): calling it returns ((filename, lineno, name), ...), "
              "innermost first.",
              sizeof(StackFactoryObject), 0) < 0) {
        return -1;
    }
    InterceptDict_Type.tp_base = &PyDict_Type;
    InterceptDict_Type.tp_dealloc = InterceptDict_dealloc;
    InterceptDict_Type.tp_traverse = InterceptDict_traverse;
    InterceptDict_Type.tp_clear = InterceptDict_clear;
    InterceptDict_Type.tp_getset = InterceptDict_getset;
    InterceptDict_Type.tp_as_mapping = &InterceptDict_as_mapping;
    if (ready(&InterceptDict_Type, "retracesoftware.utils._utils.InterceptDict",
              "dict that calls on_set / on_delete after item assignment and deletion.",
              sizeof(InterceptDictObject), Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC) < 0) {
        return -1;
    }
    return 0;
}

int add_int(PyObject *m, const char *name, long v) {
    return PyModule_AddIntConstant(m, name, v);
}

}  // namespace

PyMODINIT_FUNC PyInit__utils(void) {
    if (setup_types() < 0) return nullptr;
    identity_hash = PyBaseObject_Type.tp_hash;
    if (str_hash == nullptr) {
        str_hash = PyUnicode_InternFromString("__hash__");
        str_subclasses = PyUnicode_InternFromString("__subclasses__");
        if (str_hash == nullptr || str_subclasses == nullptr) return nullptr;
    }
    if (seq_hashes == nullptr) {
        seq_hashes = new std::unordered_map<PyObject *, Py_hash_t>();
        orig_dealloc = new std::unordered_map<PyTypeObject *, destructor>();
        patched_hash = new std::unordered_map<PyTypeObject *, PyObject *>();
    }
    // The dealloc of classes made by type() is CPython's private subtype_dealloc:
    // read it from a throwaway class.
    PyObject *probe = PyObject_CallFunction(reinterpret_cast<PyObject *>(&PyType_Type), "s(O){}",
                                            "_probe", &PyBaseObject_Type);
    if (probe == nullptr) return nullptr;
    subtype_dealloc_ptr = reinterpret_cast<PyTypeObject *>(probe)->tp_dealloc;
    Py_DECREF(probe);

    PyObject *m = PyModule_Create(&module_def);
    if (m == nullptr) return nullptr;
    struct {
        const char *name;
        PyTypeObject *type;
    } types[] = {
        {"Gate", &Gate_Type},           {"GateScope", &GateScope_Type},
        {"WithFlags", &WithFlags_Type}, {"WithoutFlags", &WithoutFlags_Type},
        {"EventLog", &EventLog_Type},   {"Boundary", &Boundary_Type},
        {"Crossing", &Crossing_Type},   {"StackFactory", &StackFactory_Type},
        {"InterceptDict", &InterceptDict_Type},
    };
    for (auto &t : types) {
        if (PyModule_AddObjectRef(m, t.name, reinterpret_cast<PyObject *>(t.type)) < 0) {
            Py_DECREF(m);
            return nullptr;
        }
    }
    PyObject *api = PyCapsule_New(&eventlog_api, RETRACE_EVENTLOG_API_CAPSULE, nullptr);
    int api_rc = api == nullptr ? -1 : PyModule_AddObjectRef(m, "eventlog_api", api);
    Py_XDECREF(api);
    if (api_rc < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    if (add_int(m, "OFF", OFF) < 0 || add_int(m, "INSIDE", INSIDE) < 0 ||
        add_int(m, "OUTSIDE", OUTSIDE) < 0 || add_int(m, "DISABLED", DISABLED) < 0 ||
        add_int(m, "MAX_GATES", MAX_GATES) < 0 || add_int(m, "FNV_OFFSET", FNV_OFFSET) < 0 ||
        add_int(m, "DIGEST_PREFIX", PREFIX) < 0 ||
        add_int(m, "TPFLAGS_IMMUTABLETYPE", Py_TPFLAGS_IMMUTABLETYPE) < 0 ||
        add_int(m, "TPFLAGS_BASETYPE", Py_TPFLAGS_BASETYPE) < 0 ||
        add_int(m, "TPFLAGS_HEAPTYPE", Py_TPFLAGS_HEAPTYPE) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
