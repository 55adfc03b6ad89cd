// Native backend of retracesoftware.functional.
//
// Every combinator is a small heap type whose instances are called through
// vectorcall.  They all share one object layout (`Fn`): a handful of object
// slots whose meaning depends on the type, plus three integers.  Behaviour,
// messages and repr match the pure-Python twin in _pure.py exactly; the
// shared test-suite checks both.

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <cstddef>
#include <initializer_list>

namespace {

struct Fn {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *a;  // functions tuple, func, predicate, value, cls or wrapped function
    PyObject *b;  // partial args, branches, then, function
    PyObject *c;  // partial keywords, default, otherwise, memoize cache
    Py_ssize_t n;       // arg index, memoize maxsize (-1: unbounded)
    Py_ssize_t hits;    // memoize statistics
    Py_ssize_t misses;
};

constexpr char kPrefix[] = "retracesoftware.functional.";

// Module-level state (single-phase module; created once at import).
PyObject *g_kwmark = nullptr;        // separates args from kwargs in memoize keys
PyObject *g_ordered_dict = nullptr;  // collections.OrderedDict
PyObject *g_str_move_to_end = nullptr;
PyObject *g_str_popitem = nullptr;
PyObject *g_str_name = nullptr;

// ---------------------------------------------------------------------------
// Shared object protocol

vectorcallfunc call_for(PyTypeObject *type);

// Allocate an instance and give it its type's vectorcall entry point.
Fn *fn_alloc(PyTypeObject *type) {
    auto *self = reinterpret_cast<Fn *>(PyType_GenericAlloc(type, 0));
    if (self != nullptr) {
        self->vectorcall = call_for(type);
        self->n = -1;
    }
    return self;
}

// A new instance whose first slot holds (a new reference to) `a`.
PyObject *fn_new_holding(PyTypeObject *type, PyObject *a) {
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        return nullptr;
    }
    self->a = Py_NewRef(a);
    return reinterpret_cast<PyObject *>(self);
}

int fn_traverse(PyObject *op, visitproc visit, void *arg) {
    auto *self = reinterpret_cast<Fn *>(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->a);
    Py_VISIT(self->b);
    Py_VISIT(self->c);
    return 0;
}

int fn_clear(PyObject *op) {
    auto *self = reinterpret_cast<Fn *>(op);
    Py_CLEAR(self->a);
    Py_CLEAR(self->b);
    Py_CLEAR(self->c);
    return 0;
}

void fn_dealloc(PyObject *op) {
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    fn_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

// Name of a combinator type without the module prefix ("compose").
const char *short_name(PyObject *self) {
    const char *name = Py_TYPE(self)->tp_name;
    const char *dot = nullptr;
    for (const char *p = name; *p != '\0'; ++p) {
        if (*p == '.') {
            dot = p;
        }
    }
    return dot != nullptr ? dot + 1 : name;
}

// "name(r1, r2, k=v)" from a tuple of positional values and an optional dict.
PyObject *call_repr(const char *name, PyObject *positional, PyObject *keywords) {
    PyObject *parts = PyList_New(0);
    if (parts == nullptr) {
        return nullptr;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(positional);
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject *r = PyObject_Repr(PyTuple_GET_ITEM(positional, i));
        if (r == nullptr || PyList_Append(parts, r) < 0) {
            Py_XDECREF(r);
            Py_DECREF(parts);
            return nullptr;
        }
        Py_DECREF(r);
    }
    if (keywords != nullptr) {
        Py_ssize_t pos = 0;
        PyObject *key;
        PyObject *value;
        while (PyDict_Next(keywords, &pos, &key, &value)) {
            Py_INCREF(key);
            Py_INCREF(value);
            PyObject *r = PyUnicode_FromFormat("%U=%R", key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (r == nullptr || PyList_Append(parts, r) < 0) {
                Py_XDECREF(r);
                Py_DECREF(parts);
                return nullptr;
            }
            Py_DECREF(r);
        }
    }
    PyObject *sep = PyUnicode_FromString(", ");
    if (sep == nullptr) {
        Py_DECREF(parts);
        return nullptr;
    }
    PyObject *joined = PyUnicode_Join(sep, parts);
    Py_DECREF(sep);
    Py_DECREF(parts);
    if (joined == nullptr) {
        return nullptr;
    }
    PyObject *result = PyUnicode_FromFormat("%s(%U)", name, joined);
    Py_DECREF(joined);
    return result;
}

// Repr of a combinator whose constructor arguments are (a, b, c) minus NULLs.
PyObject *slots_repr(PyObject *op) {
    auto *self = reinterpret_cast<Fn *>(op);
    PyObject *items[3];
    Py_ssize_t count = 0;
    for (PyObject *slot : {self->a, self->b, self->c}) {
        if (slot != nullptr) {
            items[count++] = slot;
        }
    }
    PyObject *tuple = PyTuple_New(count);
    if (tuple == nullptr) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(items[i]));
    }
    PyObject *result = call_repr(short_name(op), tuple, nullptr);
    Py_DECREF(tuple);
    return result;
}

// Repr of a combinator holding a tuple of functions in `a`.
PyObject *functions_repr(PyObject *op) {
    return call_repr(short_name(op), reinterpret_cast<Fn *>(op)->a, nullptr);
}

// ---------------------------------------------------------------------------
// Argument checking shared by the constructors and calls

int check_no_keywords(const char *owner, PyObject *kwds) {
    if (kwds != nullptr && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", owner);
        return -1;
    }
    return 0;
}

int check_arity(const char *owner, PyObject *args, PyObject *kwds, Py_ssize_t expected) {
    if (check_no_keywords(owner, kwds) < 0) {
        return -1;
    }
    Py_ssize_t given = PyTuple_GET_SIZE(args);
    if (given != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd argument%s (%zd given)", owner,
                     expected, expected == 1 ? "" : "s", given);
        return -1;
    }
    return 0;
}

int check_callable(const char *owner, Py_ssize_t position, PyObject *value) {
    if (!PyCallable_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s() argument %zd must be callable, not %s", owner,
                     position, Py_TYPE(value)->tp_name);
        return -1;
    }
    return 0;
}

// Call-time check used by the one-argument predicates and identity.
int check_one_call_argument(const char *owner, size_t nargsf, PyObject *kwnames) {
    if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", owner);
        return -1;
    }
    Py_ssize_t given = PyVectorcall_NARGS(nargsf);
    if (given != 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly 1 argument (%zd given)", owner, given);
        return -1;
    }
    return 0;
}

// Parse the argument that must be an exact int >= 0 into *out.
int parse_index(const char *owner, const char *what, PyObject *value, Py_ssize_t *out) {
    if (!PyLong_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "%s() %s must be an int%s, not %s", owner, what,
                     what[0] == 'm' ? " or None" : "", Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(value);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t minimum = what[0] == 'm' ? 1 : 0;
    if (n < minimum) {
        PyErr_Format(PyExc_ValueError, "%s() %s must be >= %zd, not %zd", owner, what, minimum,
                     n);
        return -1;
    }
    *out = n;
    return 0;
}

#define FN(op) reinterpret_cast<Fn *>(op)

// ---------------------------------------------------------------------------
// identity

PyObject *identity_call(PyObject *, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (check_one_call_argument("identity", nargsf, kwnames) < 0) {
        return nullptr;
    }
    return Py_NewRef(args[0]);
}

PyObject *identity_repr(PyObject *) { return PyUnicode_FromString("identity"); }

PyObject *identity_get_name(PyObject *, void *) { return PyUnicode_FromString("identity"); }

PyGetSetDef identity_getset[] = {
    {"__name__", identity_get_name, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ---------------------------------------------------------------------------
// Combinators over a tuple of functions: compose, sequence, juxt, first_of,
// and_, or_.

PyObject *new_functions(PyTypeObject *type, PyObject *args, PyObject *kwds, const char *what) {
    const char *owner = type->tp_name + sizeof(kPrefix) - 1;
    if (check_no_keywords(owner, kwds) < 0) {
        return nullptr;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    if (count == 0) {
        PyErr_Format(PyExc_TypeError, "%s() needs at least one %s", owner, what);
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < count; ++i) {
        if (check_callable(owner, i + 1, PyTuple_GET_ITEM(args, i)) < 0) {
            return nullptr;
        }
    }
    return fn_new_holding(type, args);
}

PyObject *functions_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_functions(type, args, kwds, "function");
}

PyObject *predicates_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_functions(type, args, kwds, "predicate");
}

// Call f(arg).  Builtins taking exactly one object (METH_O) are called
// directly, as the interpreter's own specialised CALL does; everything else
// goes through vectorcall.  The caller has entered a recursive call already:
// direct calls made one after another add a single C frame each.
inline PyObject *call_one(PyObject *f, PyObject *arg) {
    if (PyCFunction_CheckExact(f) && PyCFunction_GET_FLAGS(f) == METH_O) {
        return PyCFunction_GET_FUNCTION(f)(PyCFunction_GET_SELF(f), arg);
    }
    PyObject *stack[2] = {nullptr, arg};
    return PyObject_Vectorcall(f, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
}

PyObject *compose_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *functions = FN(op)->a;
    Py_ssize_t count = PyTuple_GET_SIZE(functions);
    if (Py_EnterRecursiveCall(" while calling a Python object")) {
        return nullptr;
    }
    PyObject *result;
    if (PyVectorcall_NARGS(nargsf) == 1 && kwnames == nullptr) {
        result = call_one(PyTuple_GET_ITEM(functions, 0), args[0]);
    } else {
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(functions, 0), args, nargsf, kwnames);
    }
    for (Py_ssize_t i = 1; i < count && result != nullptr; ++i) {
        PyObject *next = call_one(PyTuple_GET_ITEM(functions, i), result);
        Py_DECREF(result);
        result = next;
    }
    Py_LeaveRecursiveCall();
    return result;
}

PyObject *sequence_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *functions = FN(op)->a;
    Py_ssize_t count = PyTuple_GET_SIZE(functions);
    PyObject *result = nullptr;
    for (Py_ssize_t i = 0; i < count; ++i) {
        Py_XDECREF(result);
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(functions, i), args, nargsf, kwnames);
        if (result == nullptr) {
            return nullptr;
        }
    }
    return result;
}

PyObject *juxt_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *functions = FN(op)->a;
    Py_ssize_t count = PyTuple_GET_SIZE(functions);
    PyObject *results = PyTuple_New(count);
    if (results == nullptr) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(functions, i), args, nargsf, kwnames);
        if (r == nullptr) {
            Py_DECREF(results);
            return nullptr;
        }
        PyTuple_SET_ITEM(results, i, r);
    }
    return results;
}

PyObject *first_of_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *functions = FN(op)->a;
    Py_ssize_t count = PyTuple_GET_SIZE(functions);
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(functions, i), args, nargsf, kwnames);
        if (r != Py_None) {
            return r;  // a result or NULL with an exception set
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

// and_ (stop_on == 0) and or_ (stop_on == 1) differ only in the value that
// short-circuits.
PyObject *logical_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                       int stop_on) {
    PyObject *predicates = FN(op)->a;
    Py_ssize_t count = PyTuple_GET_SIZE(predicates);
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(predicates, i), args, nargsf, kwnames);
        if (r == nullptr) {
            return nullptr;
        }
        int truth = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (truth < 0) {
            return nullptr;
        }
        if (truth == stop_on) {
            return PyBool_FromLong(stop_on);
        }
    }
    return PyBool_FromLong(!stop_on);
}

PyObject *and_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    return logical_call(op, args, nargsf, kwnames, 0);
}

PyObject *or_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    return logical_call(op, args, nargsf, kwnames, 1);
}

// ---------------------------------------------------------------------------
// not_, when, if_then_else, constantly, side_effect: fixed-arity constructors

// Build an Fn from exactly `arity` positional arguments stored in a, b, c;
// the first `callables` of them must be callable.
PyObject *new_fixed(PyTypeObject *type, PyObject *args, PyObject *kwds, Py_ssize_t arity,
                    Py_ssize_t callables) {
    const char *owner = type->tp_name + sizeof(kPrefix) - 1;
    if (check_arity(owner, args, kwds, arity) < 0) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < callables; ++i) {
        if (check_callable(owner, i + 1, PyTuple_GET_ITEM(args, i)) < 0) {
            return nullptr;
        }
    }
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        return nullptr;
    }
    PyObject **slots[3] = {&self->a, &self->b, &self->c};
    for (Py_ssize_t i = 0; i < arity; ++i) {
        *slots[i] = Py_NewRef(PyTuple_GET_ITEM(args, i));
    }
    return reinterpret_cast<PyObject *>(self);
}

PyObject *not_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_fixed(type, args, kwds, 1, 1);
}

PyObject *not_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *r = PyObject_Vectorcall(FN(op)->a, args, nargsf, kwnames);
    if (r == nullptr) {
        return nullptr;
    }
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (truth < 0) {
        return nullptr;
    }
    return PyBool_FromLong(!truth);
}

PyObject *when_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_fixed(type, args, kwds, 2, 2);
}

PyObject *if_then_else_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_fixed(type, args, kwds, 3, 3);
}

// when (otherwise == NULL) and if_then_else share their call.
PyObject *conditional_call(PyObject *op, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames) {
    Fn *self = FN(op);
    PyObject *r = PyObject_Vectorcall(self->a, args, nargsf, kwnames);
    if (r == nullptr) {
        return nullptr;
    }
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (truth < 0) {
        return nullptr;
    }
    if (truth) {
        return PyObject_Vectorcall(self->b, args, nargsf, kwnames);
    }
    if (self->c == nullptr) {
        Py_RETURN_NONE;
    }
    return PyObject_Vectorcall(self->c, args, nargsf, kwnames);
}

PyObject *constantly_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_fixed(type, args, kwds, 1, 0);
}

PyObject *constantly_call(PyObject *op, PyObject *const *, size_t, PyObject *) {
    return Py_NewRef(FN(op)->a);
}

PyObject *side_effect_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return new_fixed(type, args, kwds, 1, 1);
}

PyObject *side_effect_call(PyObject *op, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "side_effect() needs at least one positional argument to return");
        return nullptr;
    }
    // Hold the first argument: the call may drop every other reference to it.
    PyObject *first = Py_NewRef(args[0]);
    PyObject *r = PyObject_Vectorcall(FN(op)->a, args, nargsf, kwnames);
    if (r == nullptr) {
        Py_DECREF(first);
        return nullptr;
    }
    Py_DECREF(r);
    return first;
}

// ---------------------------------------------------------------------------
// Wrappers (side_effect, memoize): __name__ and method binding

PyObject *wrapper_get_name(PyObject *op, void *) {
    PyObject *name = PyObject_GetAttr(FN(op)->a, g_str_name);
    if (name == nullptr && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return PyUnicode_FromString(short_name(op));
    }
    return name;
}

PyObject *wrapper_descr_get(PyObject *op, PyObject *instance, PyObject *) {
    if (instance == nullptr || instance == Py_None) {
        return Py_NewRef(op);
    }
    return PyMethod_New(op, instance);
}

PyGetSetDef wrapper_getset[] = {
    {"__name__", wrapper_get_name, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ---------------------------------------------------------------------------
// partial

PyObject *partial_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    if (count == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "partial() needs at least one argument: the function to call");
        return nullptr;
    }
    PyObject *func = PyTuple_GET_ITEM(args, 0);
    if (check_callable("partial", 1, func) < 0) {
        return nullptr;
    }
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        return nullptr;
    }
    self->a = Py_NewRef(func);
    self->b = PyTuple_GetSlice(args, 1, count);
    self->c = kwds != nullptr ? PyDict_Copy(kwds) : PyDict_New();
    if (self->b == nullptr || self->c == nullptr) {
        Py_DECREF(self);
        return nullptr;
    }
    return reinterpret_cast<PyObject *>(self);
}

PyObject *partial_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Fn *self = FN(op);
    Py_ssize_t nbound = PyTuple_GET_SIZE(self->b);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
    bool bound_keywords = PyDict_GET_SIZE(self->c) != 0;

    if (nbound == 0 && !bound_keywords) {
        return PyObject_Vectorcall(self->a, args, nargsf, kwnames);
    }

    // Stack: one spare slot (for PY_VECTORCALL_ARGUMENTS_OFFSET), the bound
    // positional arguments, then the call's positional and keyword values.
    constexpr Py_ssize_t kSmall = 10;
    PyObject *small[kSmall];
    Py_ssize_t total = 1 + nbound + nargs + nkw;
    PyObject **stack = small;
    if (total > kSmall) {
        stack = static_cast<PyObject **>(PyMem_Malloc(static_cast<size_t>(total) *
                                                      sizeof(PyObject *)));
        if (stack == nullptr) {
            return PyErr_NoMemory();
        }
    }
    for (Py_ssize_t i = 0; i < nbound; ++i) {
        stack[1 + i] = PyTuple_GET_ITEM(self->b, i);
    }
    for (Py_ssize_t i = 0; i < nargs + nkw; ++i) {
        stack[1 + nbound + i] = args[i];
    }

    PyObject *result;
    if (!bound_keywords) {
        result = PyObject_Vectorcall(self->a, stack + 1,
                                     static_cast<size_t>(nbound + nargs) |
                                         PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     kwnames);
    } else {
        // Bound keywords, overridden by the call's own keywords.
        PyObject *merged = PyDict_Copy(self->c);
        result = nullptr;
        if (merged != nullptr) {
            bool ok = true;
            for (Py_ssize_t i = 0; i < nkw && ok; ++i) {
                ok = PyDict_SetItem(merged, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) == 0;
            }
            if (ok) {
                result = PyObject_VectorcallDict(self->a, stack + 1,
                                                 static_cast<size_t>(nbound + nargs), merged);
            }
            Py_DECREF(merged);
        }
    }
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

PyObject *partial_repr(PyObject *op) {
    Fn *self = FN(op);
    Py_ssize_t nbound = PyTuple_GET_SIZE(self->b);
    PyObject *positional = PyTuple_New(1 + nbound);
    if (positional == nullptr) {
        return nullptr;
    }
    PyTuple_SET_ITEM(positional, 0, Py_NewRef(self->a));
    for (Py_ssize_t i = 0; i < nbound; ++i) {
        PyTuple_SET_ITEM(positional, 1 + i, Py_NewRef(PyTuple_GET_ITEM(self->b, i)));
    }
    // Repr of a keyword value may mutate the dict: iterate over a copy.
    PyObject *keywords = PyDict_Copy(self->c);
    if (keywords == nullptr) {
        Py_DECREF(positional);
        return nullptr;
    }
    PyObject *result = call_repr("partial", positional, keywords);
    Py_DECREF(keywords);
    Py_DECREF(positional);
    return result;
}

// ---------------------------------------------------------------------------
// dispatch

PyObject *dispatch_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (check_no_keywords("dispatch", kwds) < 0) {
        return nullptr;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    if (count < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "dispatch() needs at least one predicate and function pair");
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < count; ++i) {
        if (check_callable("dispatch", i + 1, PyTuple_GET_ITEM(args, i)) < 0) {
            return nullptr;
        }
    }
    Py_ssize_t pairs = count / 2;
    PyObject *branches = PyTuple_New(pairs);
    if (branches == nullptr) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < pairs; ++i) {
        PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(args, 2 * i),
                                      PyTuple_GET_ITEM(args, 2 * i + 1));
        if (pair == nullptr) {
            Py_DECREF(branches);
            return nullptr;
        }
        PyTuple_SET_ITEM(branches, i, pair);
    }
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        Py_DECREF(branches);
        return nullptr;
    }
    self->b = branches;
    self->c = count % 2 ? Py_NewRef(PyTuple_GET_ITEM(args, count - 1)) : nullptr;
    return reinterpret_cast<PyObject *>(self);
}

PyObject *dispatch_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Fn *self = FN(op);
    Py_ssize_t pairs = PyTuple_GET_SIZE(self->b);
    for (Py_ssize_t i = 0; i < pairs; ++i) {
        PyObject *pair = PyTuple_GET_ITEM(self->b, i);
        PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(pair, 0), args, nargsf, kwnames);
        if (r == nullptr) {
            return nullptr;
        }
        int truth = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (truth < 0) {
            return nullptr;
        }
        if (truth) {
            return PyObject_Vectorcall(PyTuple_GET_ITEM(pair, 1), args, nargsf, kwnames);
        }
    }
    if (self->c == nullptr) {
        PyErr_SetString(PyExc_TypeError, "dispatch: no predicate matched and there is no default");
        return nullptr;
    }
    return PyObject_Vectorcall(self->c, args, nargsf, kwnames);
}

PyObject *dispatch_repr(PyObject *op) {
    Fn *self = FN(op);
    Py_ssize_t pairs = PyTuple_GET_SIZE(self->b);
    PyObject *flat = PyTuple_New(2 * pairs + (self->c != nullptr ? 1 : 0));
    if (flat == nullptr) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < pairs; ++i) {
        PyObject *pair = PyTuple_GET_ITEM(self->b, i);
        PyTuple_SET_ITEM(flat, 2 * i, Py_NewRef(PyTuple_GET_ITEM(pair, 0)));
        PyTuple_SET_ITEM(flat, 2 * i + 1, Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    }
    if (self->c != nullptr) {
        PyTuple_SET_ITEM(flat, 2 * pairs, Py_NewRef(self->c));
    }
    PyObject *result = call_repr("dispatch", flat, nullptr);
    Py_DECREF(flat);
    return result;
}

// ---------------------------------------------------------------------------
// is_instance, is_type, arg

bool is_type_tuple(PyObject *value) {
    if (!PyTuple_Check(value)) {
        return false;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(value); ++i) {
        if (!PyType_Check(PyTuple_GET_ITEM(value, i))) {
            return false;
        }
    }
    return true;
}

PyObject *classinfo_new(PyTypeObject *type, PyObject *args, PyObject *kwds, bool allow_tuple) {
    const char *owner = type->tp_name + sizeof(kPrefix) - 1;
    if (check_arity(owner, args, kwds, 1) < 0) {
        return nullptr;
    }
    PyObject *cls = PyTuple_GET_ITEM(args, 0);
    if (!PyType_Check(cls) && !(allow_tuple && is_type_tuple(cls))) {
        PyErr_Format(PyExc_TypeError, "%s() argument must be %s, not %s", owner,
                     allow_tuple ? "a type or a tuple of types" : "a type",
                     Py_TYPE(cls)->tp_name);
        return nullptr;
    }
    return fn_new_holding(type, cls);
}

PyObject *is_instance_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return classinfo_new(type, args, kwds, true);
}

PyObject *is_type_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    return classinfo_new(type, args, kwds, false);
}

PyObject *is_instance_call(PyObject *op, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames) {
    if (check_one_call_argument("is_instance", nargsf, kwnames) < 0) {
        return nullptr;
    }
    int r = PyObject_IsInstance(args[0], FN(op)->a);
    if (r < 0) {
        return nullptr;
    }
    return PyBool_FromLong(r);
}

PyObject *is_type_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (check_one_call_argument("is_type", nargsf, kwnames) < 0) {
        return nullptr;
    }
    return PyBool_FromLong(reinterpret_cast<PyObject *>(Py_TYPE(args[0])) == FN(op)->a);
}

PyObject *arg_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (check_arity("arg", args, kwds, 1) < 0) {
        return nullptr;
    }
    Py_ssize_t index;
    if (parse_index("arg", "index", PyTuple_GET_ITEM(args, 0), &index) < 0) {
        return nullptr;
    }
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        return nullptr;
    }
    self->n = index;
    return reinterpret_cast<PyObject *>(self);
}

PyObject *arg_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *) {
    Py_ssize_t index = FN(op)->n;
    Py_ssize_t given = PyVectorcall_NARGS(nargsf);
    if (index >= given) {
        PyErr_Format(PyExc_TypeError, "arg(%zd) needs at least %zd positional arguments (%zd given)",
                     index, index + 1, given);
        return nullptr;
    }
    return Py_NewRef(args[index]);
}

PyObject *arg_repr(PyObject *op) { return PyUnicode_FromFormat("arg(%zd)", FN(op)->n); }

PyObject *arg_get_index(PyObject *op, void *) { return PyLong_FromSsize_t(FN(op)->n); }

PyGetSetDef arg_getset[] = {
    {"index", arg_get_index, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ---------------------------------------------------------------------------
// memoize
//
// Key: the tuple of positional arguments, followed, when there are keyword
// arguments, by a private marker and the (name, value) pairs in call order.
// Unbounded caches are a dict; bounded ones an OrderedDict kept in LRU order.

PyObject *memoize_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    PyObject *maxsize = count > 1 ? PyTuple_GET_ITEM(args, 1) : Py_None;
    if (kwds != nullptr) {
        Py_ssize_t pos = 0;
        PyObject *key;
        PyObject *value;
        while (PyDict_Next(kwds, &pos, &key, &value)) {
            if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "maxsize") == 0 &&
                count < 2) {
                maxsize = value;
                continue;
            }
            if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "maxsize") == 0) {
                PyErr_SetString(PyExc_TypeError,
                                "memoize() got multiple values for argument 'maxsize'");
            } else {
                PyErr_Format(PyExc_TypeError, "memoize() got an unexpected keyword argument '%S'",
                             key);
            }
            return nullptr;
        }
    }
    if (count < 1 || count > 2) {
        PyErr_Format(PyExc_TypeError, "memoize() takes 1 or 2 positional arguments (%zd given)",
                     count);
        return nullptr;
    }
    PyObject *func = PyTuple_GET_ITEM(args, 0);
    if (check_callable("memoize", 1, func) < 0) {
        return nullptr;
    }
    Py_ssize_t bound = -1;
    if (maxsize != Py_None && parse_index("memoize", "maxsize", maxsize, &bound) < 0) {
        return nullptr;
    }
    Fn *self = fn_alloc(type);
    if (self == nullptr) {
        return nullptr;
    }
    self->a = Py_NewRef(func);
    self->n = bound;
    self->c = bound < 0 ? PyDict_New() : PyObject_CallNoArgs(g_ordered_dict);
    if (self->c == nullptr) {
        Py_DECREF(self);
        return nullptr;
    }
    return reinterpret_cast<PyObject *>(self);
}

PyObject *memoize_key(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *key = PyTuple_New(nargs + (nkw != 0 ? 1 + 2 * nkw : 0));
    if (key == nullptr) {
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) {
        PyTuple_SET_ITEM(key, i, Py_NewRef(args[i]));
    }
    if (nkw != 0) {
        PyTuple_SET_ITEM(key, nargs, Py_NewRef(g_kwmark));
        for (Py_ssize_t i = 0; i < nkw; ++i) {
            PyTuple_SET_ITEM(key, nargs + 1 + 2 * i, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
            PyTuple_SET_ITEM(key, nargs + 2 + 2 * i, Py_NewRef(args[nargs + i]));
        }
    }
    return key;
}

// Replace a TypeError raised while hashing the key by a clearer one that
// keeps the original as its cause.
void explain_unhashable() {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
        return;
    }
    PyObject *type;
    PyObject *cause;
    PyObject *tb;
    PyErr_Fetch(&type, &cause, &tb);
    PyErr_NormalizeException(&type, &cause, &tb);
    if (tb != nullptr) {
        PyException_SetTraceback(cause, tb);
    }
    PyErr_Format(PyExc_TypeError, "memoize: arguments must be hashable (%S)", cause);
    PyObject *new_type;
    PyObject *exc;
    PyObject *new_tb;
    PyErr_Fetch(&new_type, &exc, &new_tb);
    PyErr_NormalizeException(&new_type, &exc, &new_tb);
    PyException_SetContext(exc, Py_NewRef(cause));
    PyException_SetCause(exc, cause);  // steals cause
    PyErr_Restore(new_type, exc, new_tb);
    Py_DECREF(type);
    Py_XDECREF(tb);
}

int lru_touch(PyObject *cache, PyObject *key) {
    PyObject *stack[2] = {cache, key};
    PyObject *r = PyObject_VectorcallMethod(g_str_move_to_end, stack, 2, nullptr);
    if (r == nullptr) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

PyObject *memoize_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Fn *self = FN(op);
    PyObject *key = memoize_key(args, PyVectorcall_NARGS(nargsf), kwnames);
    if (key == nullptr) {
        return nullptr;
    }
    // Keep the cache alive: a reentrant cache_clear() cannot free it under us,
    // but holding it makes every path below independent of that reasoning.
    PyObject *cache = Py_NewRef(self->c);
    PyObject *result = PyDict_GetItemWithError(cache, key);
    if (result != nullptr) {
        Py_INCREF(result);
        self->hits++;
        if (self->n >= 0 && lru_touch(cache, key) < 0) {
            Py_CLEAR(result);
        }
        Py_DECREF(cache);
        Py_DECREF(key);
        return result;
    }
    if (PyErr_Occurred()) {
        explain_unhashable();
        Py_DECREF(cache);
        Py_DECREF(key);
        return nullptr;
    }
    self->misses++;
    result = PyObject_Vectorcall(self->a, args, nargsf, kwnames);
    if (result != nullptr) {
        bool ok = PyObject_SetItem(cache, key, result) == 0;
        if (ok && self->n >= 0) {
            ok = lru_touch(cache, key) == 0;
            while (ok && PyObject_Size(cache) > self->n) {
                PyObject *popped = PyObject_CallMethodObjArgs(cache, g_str_popitem, Py_False,
                                                              nullptr);
                ok = popped != nullptr;
                Py_XDECREF(popped);
            }
        }
        if (!ok) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(cache);
    Py_DECREF(key);
    return result;
}

PyObject *memoize_cache_info(PyObject *op, PyObject *) {
    Fn *self = FN(op);
    Py_ssize_t size = PyObject_Size(self->c);
    if (size < 0) {
        return nullptr;
    }
    if (self->n < 0) {
        return Py_BuildValue("(nnOn)", self->hits, self->misses, Py_None, size);
    }
    return Py_BuildValue("(nnnn)", self->hits, self->misses, self->n, size);
}

PyObject *memoize_cache_clear(PyObject *op, PyObject *) {
    Fn *self = FN(op);
    // Swap in an empty cache first: clearing may run arbitrary __del__ code.
    PyObject *fresh = self->n < 0 ? PyDict_New() : PyObject_CallNoArgs(g_ordered_dict);
    if (fresh == nullptr) {
        return nullptr;
    }
    PyObject *old = self->c;
    self->c = fresh;
    self->hits = 0;
    self->misses = 0;
    Py_DECREF(old);
    Py_RETURN_NONE;
}

PyObject *memoize_repr(PyObject *op) {
    Fn *self = FN(op);
    PyObject *positional = PyTuple_Pack(1, self->a);
    if (positional == nullptr) {
        return nullptr;
    }
    PyObject *keywords = nullptr;
    if (self->n >= 0) {
        keywords = Py_BuildValue("{s:n}", "maxsize", self->n);
        if (keywords == nullptr) {
            Py_DECREF(positional);
            return nullptr;
        }
    }
    PyObject *result = call_repr("memoize", positional, keywords);
    Py_XDECREF(keywords);
    Py_DECREF(positional);
    return result;
}

PyMethodDef memoize_methods[] = {
    {"cache_info", memoize_cache_info, METH_NOARGS,
     PyDoc_STR("Return (hits, misses, maxsize, currsize).")},
    {"cache_clear", memoize_cache_clear, METH_NOARGS,
     PyDoc_STR("Forget every cached result and reset the statistics.")},
    {nullptr, nullptr, 0, nullptr},
};

// ---------------------------------------------------------------------------
// Type table

#define VECTORCALL_MEMBER \
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Fn, vectorcall), READONLY, nullptr}
#define MEMBER(name, field) {name, T_OBJECT, offsetof(Fn, field), READONLY, nullptr}
#define END_MEMBERS {nullptr, 0, 0, 0, nullptr}

PyMemberDef functions_members[] = {VECTORCALL_MEMBER, MEMBER("functions", a), END_MEMBERS};
PyMemberDef plain_members[] = {VECTORCALL_MEMBER, END_MEMBERS};
PyMemberDef not_members[] = {VECTORCALL_MEMBER, MEMBER("predicate", a), END_MEMBERS};
PyMemberDef when_members[] = {VECTORCALL_MEMBER, MEMBER("predicate", a), MEMBER("function", b),
                              END_MEMBERS};
PyMemberDef if_then_else_members[] = {VECTORCALL_MEMBER, MEMBER("predicate", a),
                                      MEMBER("then", b), MEMBER("otherwise", c), END_MEMBERS};
PyMemberDef constantly_members[] = {VECTORCALL_MEMBER, MEMBER("value", a), END_MEMBERS};
PyMemberDef classinfo_members[] = {VECTORCALL_MEMBER, MEMBER("cls", a), END_MEMBERS};
PyMemberDef wrapper_members[] = {VECTORCALL_MEMBER, MEMBER("__wrapped__", a), END_MEMBERS};
PyMemberDef partial_members[] = {VECTORCALL_MEMBER, MEMBER("func", a), MEMBER("args", b),
                                 MEMBER("keywords", c), END_MEMBERS};
PyMemberDef dispatch_members[] = {VECTORCALL_MEMBER, MEMBER("branches", b), MEMBER("default", c),
                                  END_MEMBERS};

struct TypeDef {
    const char *name;  // qualified name (static: CPython 3.11 keeps the pointer)
    const char *doc;
    vectorcallfunc call;
    newfunc new_;
    reprfunc repr;
    PyMemberDef *members;
    PyGetSetDef *getset = nullptr;
    PyMethodDef *methods = nullptr;
    descrgetfunc descr_get = nullptr;
};

PyObject *create_type(PyObject *module, const TypeDef &def, PyTypeObject **out) {
    PyType_Slot slots[] = {
        {Py_tp_doc, const_cast<char *>(def.doc)},
        {Py_tp_new, reinterpret_cast<void *>(def.new_)},
        {Py_tp_repr, reinterpret_cast<void *>(def.repr)},
        {Py_tp_call, reinterpret_cast<void *>(PyVectorcall_Call)},
        {Py_tp_members, def.members},
        {Py_tp_dealloc, reinterpret_cast<void *>(fn_dealloc)},
        {Py_tp_traverse, reinterpret_cast<void *>(fn_traverse)},
        {Py_tp_clear, reinterpret_cast<void *>(fn_clear)},
        {Py_tp_getset, def.getset},
        {Py_tp_methods, def.methods},
        {Py_tp_descr_get, reinterpret_cast<void *>(def.descr_get)},
        {0, nullptr},
    };
    // Drop optional slots that are not used (a NULL slot value is an error).
    PyType_Slot used[sizeof(slots) / sizeof(slots[0])];
    size_t count = 0;
    for (const PyType_Slot &slot : slots) {
        if (slot.slot == 0 || slot.pfunc != nullptr) {
            used[count++] = slot;
        }
    }
    PyType_Spec spec = {
        def.name,
        static_cast<int>(sizeof(Fn)),
        0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
            Py_TPFLAGS_IMMUTABLETYPE,
        used,
    };
    PyObject *type = PyType_FromSpec(&spec);
    if (type == nullptr) {
        return nullptr;
    }
    *out = reinterpret_cast<PyTypeObject *>(type);
    if (PyModule_AddObjectRef(module, def.name + sizeof(kPrefix) - 1, type) < 0) {
        Py_DECREF(type);
        return nullptr;
    }
    return type;
}

// Instances record which vectorcall entry point their type uses.
struct CallOf {
    PyTypeObject *type;
    vectorcallfunc call;
};
CallOf g_calls[32];
size_t g_ncalls = 0;

vectorcallfunc call_for(PyTypeObject *type) {
    for (size_t i = 0; i < g_ncalls; ++i) {
        if (g_calls[i].type == type) {
            return g_calls[i].call;
        }
    }
    return nullptr;
}

const TypeDef kTypes[] = {
    {"retracesoftware.functional.compose", "compose(f, g, ...)(*args, **kw) == ...g(f(*args, **kw)): left to right.",
     compose_call, functions_new, functions_repr, functions_members},
    {"retracesoftware.functional.sequence", "sequence(f, g, ...)(*a, **k): call each with the same arguments; last result.",
     sequence_call, functions_new, functions_repr, functions_members},
    {"retracesoftware.functional.juxt", "juxt(f, g, ...)(*a, **k) == (f(*a, **k), g(*a, **k), ...)", juxt_call,
     functions_new, functions_repr, functions_members},
    {"retracesoftware.functional.first_of", "first_of(f, g, ...)(*a, **k): the first result that is not None, else None.",
     first_of_call, functions_new, functions_repr, functions_members},
    {"retracesoftware.functional.and_", "and_(p, q, ...)(*a, **k): True when every predicate is true (short-circuits).",
     and_call, predicates_new, functions_repr, functions_members},
    {"retracesoftware.functional.or_", "or_(p, q, ...)(*a, **k): True when any predicate is true (short-circuits).", or_call,
     predicates_new, functions_repr, functions_members},
    {"retracesoftware.functional.not_", "not_(p)(*a, **k) == (not p(*a, **k))", not_call, not_new, slots_repr, not_members},
    {"retracesoftware.functional.when", "when(p, f)(*a, **k) == (f(*a, **k) if p(*a, **k) else None)", conditional_call,
     when_new, slots_repr, when_members},
    {"retracesoftware.functional.if_then_else", "if_then_else(p, f, g)(*a, **k) == (f if p(*a, **k) else g)(*a, **k)",
     conditional_call, if_then_else_new, slots_repr, if_then_else_members},
    {"retracesoftware.functional.constantly", "constantly(v)(*a, **k) == v", constantly_call, constantly_new, slots_repr,
     constantly_members},
    {"retracesoftware.functional.is_instance", "is_instance(cls)(x) == isinstance(x, cls)", is_instance_call,
     is_instance_new, slots_repr, classinfo_members},
    {"retracesoftware.functional.is_type", "is_type(cls)(x) == (type(x) is cls)", is_type_call, is_type_new, slots_repr,
     classinfo_members},
    {"retracesoftware.functional.arg", "arg(n)(*a, **k) == a[n]: select one positional argument.", arg_call, arg_new,
     arg_repr, plain_members, arg_getset},
    {"retracesoftware.functional.partial", "partial(f, *args, **kw)(*more, **kw2) == f(*args, *more, **{**kw, **kw2})",
     partial_call, partial_new, partial_repr, partial_members},
    {"retracesoftware.functional.dispatch",
     "dispatch(p1, f1, p2, f2, ..., [default]): call the function of the first matching "
     "predicate.",
     dispatch_call, dispatch_new, dispatch_repr, dispatch_members},
    {"retracesoftware.functional.side_effect", "side_effect(f)(x, *a, **k) calls f(x, *a, **k) and returns x.",
     side_effect_call, side_effect_new, slots_repr, wrapper_members, wrapper_getset, nullptr,
     wrapper_descr_get},
    {"retracesoftware.functional.memoize", "memoize(f, maxsize=None): cache f's results by its (hashable) arguments.",
     memoize_call, memoize_new, memoize_repr, wrapper_members, wrapper_getset, memoize_methods,
     wrapper_descr_get},
};

PyObject *no_new(PyTypeObject *, PyObject *, PyObject *) {
    PyErr_SetString(PyExc_TypeError, "cannot create 'identity_type' instances");
    return nullptr;
}

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "retracesoftware.functional._functional",
    "Native backend of retracesoftware.functional.",
    -1,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

int init_globals() {
    g_kwmark = PyObject_CallNoArgs(reinterpret_cast<PyObject *>(&PyBaseObject_Type));
    g_str_move_to_end = PyUnicode_InternFromString("move_to_end");
    g_str_popitem = PyUnicode_InternFromString("popitem");
    g_str_name = PyUnicode_InternFromString("__name__");
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections != nullptr) {
        g_ordered_dict = PyObject_GetAttrString(collections, "OrderedDict");
        Py_DECREF(collections);
    }
    if (g_kwmark == nullptr || g_str_move_to_end == nullptr || g_str_popitem == nullptr ||
        g_str_name == nullptr || g_ordered_dict == nullptr) {
        return -1;
    }
    return 0;
}

}  // namespace

PyMODINIT_FUNC PyInit__functional() {
    if (g_kwmark == nullptr && init_globals() < 0) {
        return nullptr;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == nullptr) {
        return nullptr;
    }
    g_ncalls = 0;
    for (const TypeDef &def : kTypes) {
        PyTypeObject *type;
        PyObject *created = create_type(module, def, &type);
        if (created == nullptr) {
            Py_DECREF(module);
            return nullptr;
        }
        g_calls[g_ncalls++] = {type, def.call};
        Py_DECREF(created);  // the module keeps its reference
    }

    // identity is the single instance of a type that cannot be instantiated.
    TypeDef identity_def = {"retracesoftware.functional.identity_type", "identity(x) -> x", identity_call, no_new,
                            identity_repr, plain_members, identity_getset};
    PyTypeObject *identity_type;
    PyObject *created = create_type(module, identity_def, &identity_type);
    if (created == nullptr) {
        Py_DECREF(module);
        return nullptr;
    }
    g_calls[g_ncalls++] = {identity_type, identity_call};
    PyObject *identity = reinterpret_cast<PyObject *>(fn_alloc(identity_type));
    Py_DECREF(created);
    if (identity == nullptr || PyModule_AddObject(module, "identity", identity) < 0) {
        Py_XDECREF(identity);
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
