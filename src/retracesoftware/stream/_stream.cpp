// Native core of retracesoftware.stream: value encoder/decoder, framed file
// writer with a background flusher, and a bounds-checked reader.
//
// The format is specified in docs/format.md; the opcode values below are
// normative and must stay in sync with that document.

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "eventlog_api.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define RETRACE_HAVE_HW_CRC 1
#endif

namespace {

// ---------------------------------------------------------------- constants

constexpr uint8_t MAGIC[8] = {0x89, 'R', 'T', 'R', 'C', '\r', '\n', 0x1a};
constexpr uint8_t END_MARKER[8] = {'R', 'T', 'R', 'C', 'E', 'N', 'D', '\n'};
constexpr unsigned VERSION_MAJOR = 1;
constexpr unsigned VERSION_MINOR = 0;
constexpr uint8_t DUMPS_VERSION = 1;
constexpr int MAX_DEPTH = 1000;
constexpr size_t FRAME_HEADER = 13;
constexpr size_t TRAILER_SIZE = 24;
constexpr uint64_t MAX_FRAME = 0xFFFFFFFFull;

enum FrameKind : uint8_t { FRAME_HEADER_KIND = 0x01, FRAME_DATA = 0x02, FRAME_END = 0x03 };

enum Op : uint8_t {
    OP_NONE = 0x00,
    OP_FALSE = 0x01,
    OP_TRUE = 0x02,
    OP_INT_POS = 0x03,
    OP_INT_NEG = 0x04,
    OP_INT_BIG = 0x05,
    OP_FLOAT = 0x06,
    OP_FLOAT_SAME = 0x07,
    OP_FLOAT_XOR = 0x08,  // 0x08..0x0E: k = op - 0x07 low bytes of (bits ^ previous)
    OP_FLOAT_HI = 0x0F,   // 0x0F..0x16: k = op - 0x0F high bytes of bits
    OP_COMPLEX = 0x17,
    OP_STR = 0x18,
    OP_STR_INTERN = 0x19,
    OP_STR_REF = 0x1A,
    OP_BYTES = 0x1B,
    OP_BYTEARRAY = 0x1C,
    OP_TUPLE = 0x1D,
    OP_LIST = 0x1E,
    OP_DICT = 0x1F,
    OP_SET = 0x20,
    OP_FROZENSET = 0x21,
    OP_MEMO = 0x22,
    OP_REPLACE = 0x23,
    OP_HANDLE = 0x24,
    OP_CUSTOM_DEF = 0x25,
    OP_CUSTOM = 0x26,
    OP_THREAD = 0x30,
    OP_BIND = 0x31,
    OP_DEAD = 0x32,
    OP_TUPLE_SMALL = 0x40,  // 0x40..0x4F: tuple of op - 0x40 items
    OP_SMALL_INT = 0x80,    // 0x80..0xFF: int op - 0xA0 (-32..95)
};
constexpr int SMALL_INT_MIN = -32;
constexpr int SMALL_INT_MAX = 95;
constexpr int SMALL_INT_BIAS = 0xA0;

// ----------------------------------------------------------- error classes

PyObject *StreamError, *NotARecordingError, *UnsupportedVersionError, *TruncatedError,
    *CorruptError, *UnsupportedTypeError, *UnknownTypeError;

// Raise cls(message, path=path, offset=offset); chains the current exception
// (if any) as __cause__.
void raise_stream(PyObject* cls, PyObject* path, long long offset, const char* fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    PyObject *cause_t = nullptr, *cause_v = nullptr, *cause_tb = nullptr;
    PyErr_Fetch(&cause_t, &cause_v, &cause_tb);
    if (cause_t) {
        PyErr_NormalizeException(&cause_t, &cause_v, &cause_tb);
        if (cause_tb && cause_v) PyException_SetTraceback(cause_v, cause_tb);
    }
    PyObject* msg;
    if (path && path != Py_None)
        msg = PyUnicode_FromFormat("%S: %s", path, detail);
    else
        msg = PyUnicode_FromString(detail);
    PyObject* exc = nullptr;
    if (msg) {
        PyObject* kw = Py_BuildValue("{s:O,s:L}", "path", path ? path : Py_None, "offset", offset);
        PyObject* args = PyTuple_Pack(1, msg);
        if (kw && args) exc = PyObject_Call(cls, args, kw);
        Py_XDECREF(kw);
        Py_XDECREF(args);
        Py_DECREF(msg);
    }
    if (!exc) {
        Py_XDECREF(cause_t);
        Py_XDECREF(cause_v);
        Py_XDECREF(cause_tb);
        return;
    }
    if (cause_v) {
        Py_INCREF(cause_v);
        PyException_SetContext(exc, cause_v);
        PyException_SetCause(exc, cause_v);  // steals
    }
    Py_XDECREF(cause_t);
    Py_XDECREF(cause_v);
    Py_XDECREF(cause_tb);
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
    Py_DECREF(exc);
}

// ------------------------------------------------------------------ CRC32C

uint32_t crc_table[8][256];

void crc_init() {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
}

uint32_t crc_sw(uint32_t crc, const uint8_t* p, size_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                             uint32_t(p[3]) << 24);
        uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 |
                      uint32_t(p[7]) << 24;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#ifdef RETRACE_HAVE_HW_CRC
__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t crc, const uint8_t* p, size_t n) {
    uint64_t c = ~crc & 0xffffffffu;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = static_cast<uint32_t>(c);
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
bool use_hw_crc = false;
#endif

inline uint32_t crc32c(uint32_t crc, const uint8_t* p, size_t n) {
#ifdef RETRACE_HAVE_HW_CRC
    if (use_hw_crc) return crc_hw(crc, p, n);
#endif
    return crc_sw(crc, p, n);
}

// ----------------------------------------------------------- little endian

inline void put_le32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = uint8_t(v >> (8 * i));
}
inline void put_le64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = uint8_t(v >> (8 * i));
}
inline uint32_t get_le32(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t get_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

inline uint64_t double_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}
inline double bits_double(uint64_t b) {
    double d;
    memcpy(&d, &b, 8);
    return d;
}

// ================================================================= encoder

struct Encoder {
    uint8_t* buf = nullptr;
    size_t len = 0;
    size_t cap = 0;
    std::mutex* grow_lock = nullptr;  // held while the buffer moves (writer only)

    PyObject* interned = nullptr;  // dict str -> int index
    std::vector<PyObject*> intern_order;  // borrowed; the dict owns them
    size_t intern_max_len = 64;
    size_t intern_max_count = size_t(1) << 18;

    struct Slot {
        PyObject* key;
        uint32_t idx;
        uint32_t gen;
    };
    std::vector<Slot> memo_table;
    uint32_t memo_gen = 1;
    std::vector<PyObject*> memo_refs;  // strong; memo index == position

    PyObject* encoders = nullptr;  // borrowed dict type -> (name bytes, encode)
    std::unordered_map<PyObject*, uint32_t> type_ids;
    std::vector<PyObject*> type_order;  // strong refs to the types

    std::unordered_map<PyObject*, uint64_t> binds;  // strong refs held

    uint64_t prev_float = 0;
    int depth = 0;

    Encoder() = default;
    Encoder(const Encoder&) = delete;
    Encoder& operator=(const Encoder&) = delete;

    ~Encoder() {
        free(buf);
        reset_memo();
        Py_XDECREF(interned);
        for (PyObject* t : type_order) Py_DECREF(t);
        for (auto& kv : binds) Py_DECREF(kv.first);
    }

    bool init() {
        interned = PyDict_New();
        return interned != nullptr;
    }

    bool grow(size_t n) {
        if (n > SIZE_MAX / 4 - len) {
            PyErr_NoMemory();
            return false;
        }
        size_t need = len + n;
        size_t nc = cap ? cap : 4096;
        while (nc < need) nc *= 2;
        if (grow_lock) grow_lock->lock();
        void* nb = realloc(buf, nc);
        if (nb) {
            buf = static_cast<uint8_t*>(nb);
            cap = nc;
        }
        if (grow_lock) grow_lock->unlock();
        if (!nb) {
            PyErr_NoMemory();
            return false;
        }
        return true;
    }
    inline bool reserve(size_t n) { return len + n <= cap || grow(n); }
    inline void raw_u8(uint8_t v) { buf[len++] = v; }
    inline void raw_varint(uint64_t v) {
        while (v >= 0x80) {
            buf[len++] = uint8_t(v) | 0x80;
            v >>= 7;
        }
        buf[len++] = uint8_t(v);
    }
    inline bool put_op_varint(uint8_t op, uint64_t v) {
        if (!reserve(11)) return false;
        raw_u8(op);
        raw_varint(v);
        return true;
    }
    inline bool put_op_bytes(uint8_t op, const void* data, size_t n) {
        if (!reserve(11 + n)) return false;
        raw_u8(op);
        raw_varint(n);
        memcpy(buf + len, data, n);
        len += n;
        return true;
    }

    // ---- memo (identity within one value)
    static inline size_t hash_ptr(PyObject* p) {
        uint64_t x = reinterpret_cast<uintptr_t>(p) >> 4;
        x *= 0x9E3779B97F4A7C15ull;
        return size_t(x >> 32);
    }
    long memo_find(PyObject* o) const {
        if (memo_refs.empty()) return -1;
        size_t mask = memo_table.size() - 1;
        for (size_t i = hash_ptr(o) & mask;; i = (i + 1) & mask) {
            const Slot& s = memo_table[i];
            if (s.gen != memo_gen) return -1;
            if (s.key == o) return long(s.idx);
        }
    }
    void memo_insert_slot(PyObject* o, uint32_t idx) {
        size_t mask = memo_table.size() - 1;
        size_t i = hash_ptr(o) & mask;
        while (memo_table[i].gen == memo_gen) i = (i + 1) & mask;
        memo_table[i] = Slot{o, idx, memo_gen};
    }
    void memo_add(PyObject* o) {
        if ((memo_refs.size() + 1) * 2 > memo_table.size()) {
            size_t ns = memo_table.empty() ? 64 : memo_table.size() * 2;
            memo_table.assign(ns, Slot{nullptr, 0, 0});
            if (++memo_gen == 0) memo_gen = 1;
            for (size_t k = 0; k < memo_refs.size(); k++) memo_insert_slot(memo_refs[k], uint32_t(k));
        }
        Py_INCREF(o);
        memo_refs.push_back(o);
        memo_insert_slot(o, uint32_t(memo_refs.size() - 1));
    }
    void reset_memo() {
        if (memo_refs.empty()) return;
        for (PyObject* o : memo_refs) Py_DECREF(o);
        memo_refs.clear();
        if (++memo_gen == 0) {
            memo_gen = 1;
            for (Slot& s : memo_table) s.gen = 0;
        }
    }

    bool enter() {
        if (++depth > MAX_DEPTH) {
            raise_stream(StreamError, nullptr, -1,
                         "cannot write a value nested deeper than %d levels", MAX_DEPTH);
            return false;
        }
        return true;
    }

    // A tuple, frozenset or custom object gets its memo index once complete.  If
    // it was already completed inside itself (a cycle through a mutable
    // container), the outer copy is marked to be replaced by the inner one.
    bool finish_post(PyObject* o, size_t start) {
        long m = memo_find(o);
        if (m < 0) {
            memo_add(o);
            return true;
        }
        if (!reserve(12)) return false;
        memmove(buf + start + 1, buf + start, len - start);
        buf[start] = OP_REPLACE;
        len++;
        raw_varint(uint64_t(m));
        return true;
    }

    // ---- scalars
    bool enc_float(double d) {
        if (!reserve(9)) return false;
        uint64_t bits = double_bits(d);
        uint64_t x = bits ^ prev_float;
        prev_float = bits;
        if (x == 0) {
            raw_u8(OP_FLOAT_SAME);
            return true;
        }
        int kx = 8 - __builtin_clzll(x) / 8;                        // low bytes needed
        int kh = bits ? 8 - __builtin_ctzll(bits) / 8 : 0;          // high bytes needed
        if (kh <= kx && kh < 8) {
            raw_u8(uint8_t(OP_FLOAT_HI + kh));
            uint64_t v = kh ? bits >> (64 - 8 * kh) : 0;
            for (int i = 0; i < kh; i++) buf[len++] = uint8_t(v >> (8 * i));
        } else if (kx < 8) {
            raw_u8(uint8_t(OP_FLOAT_XOR + kx - 1));
            for (int i = 0; i < kx; i++) buf[len++] = uint8_t(x >> (8 * i));
        } else {
            raw_u8(OP_FLOAT);
            put_le64(buf + len, bits);
            len += 8;
        }
        return true;
    }

    // A C integer, encoded exactly as enc_int encodes the int of the same value.
    bool enc_ll(long long v) {
        if (v >= SMALL_INT_MIN && v <= SMALL_INT_MAX) {
            if (!reserve(1)) return false;
            raw_u8(uint8_t(v + SMALL_INT_BIAS));
            return true;
        }
        if (v >= 0) return put_op_varint(OP_INT_POS, uint64_t(v));
        return put_op_varint(OP_INT_NEG, uint64_t(-1 - v));
    }

    bool enc_int(PyObject* o) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (!overflow) {
            if (v == -1 && PyErr_Occurred()) return false;
            if (v >= SMALL_INT_MIN && v <= SMALL_INT_MAX) {
                if (!reserve(1)) return false;
                raw_u8(uint8_t(v + SMALL_INT_BIAS));
                return true;
            }
            if (v >= 0) return put_op_varint(OP_INT_POS, uint64_t(v));
            return put_op_varint(OP_INT_NEG, uint64_t(-1 - v));
        }
#if PY_VERSION_HEX >= 0x030D0000
        // Public API from 3.13 on; the size query may over-estimate, so trim below.
        Py_ssize_t need = PyLong_AsNativeBytes(o, nullptr, 0, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
        if (need < 0) return false;
        size_t nbytes = size_t(need);
#else
        size_t nbits = _PyLong_NumBits(o);
        if (nbits == size_t(-1) && PyErr_Occurred()) return false;
        size_t nbytes = nbits / 8 + 1;
#endif
        if (!reserve(11 + nbytes)) return false;
        uint8_t* tmp = buf + len + 11;  // convert past the header, then move into place
#if PY_VERSION_HEX >= 0x030D0000
        if (PyLong_AsNativeBytes(o, tmp, Py_ssize_t(nbytes), Py_ASNATIVEBYTES_LITTLE_ENDIAN) < 0)
            return false;
#else
        if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(o), tmp, nbytes, 1, 1) < 0)
            return false;
#endif
        // Minimal two's complement: drop top bytes that only repeat the sign.
        while (nbytes > 1 && ((tmp[nbytes - 1] == 0x00 && !(tmp[nbytes - 2] & 0x80)) ||
                              (tmp[nbytes - 1] == 0xFF && (tmp[nbytes - 2] & 0x80))))
            nbytes--;
        raw_u8(OP_INT_BIG);
        raw_varint(nbytes);
        memmove(buf + len, tmp, nbytes);
        len += nbytes;
        return true;
    }

    bool enc_str(PyObject* o) {
        Py_ssize_t ncp = PyUnicode_GET_LENGTH(o);
        bool intern = size_t(ncp) <= intern_max_len;
        if (intern) {
            PyObject* idx = PyDict_GetItemWithError(interned, o);
            if (idx) return put_op_varint(OP_STR_REF, PyLong_AsUnsignedLongLong(idx));
            if (PyErr_Occurred()) return false;
            intern = intern_order.size() < intern_max_count;
        }
        const char* data;
        Py_ssize_t n;
        PyObject* tmp = nullptr;
        if (PyUnicode_IS_ASCII(o)) {
            data = static_cast<const char*>(PyUnicode_DATA(o));
            n = ncp;
        } else {
            data = PyUnicode_AsUTF8AndSize(o, &n);
            if (!data) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return false;
                PyErr_Clear();
                tmp = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
                if (!tmp) return false;
                data = PyBytes_AS_STRING(tmp);
                n = PyBytes_GET_SIZE(tmp);
            }
        }
        bool ok = put_op_bytes(intern ? OP_STR_INTERN : OP_STR, data, size_t(n));
        Py_XDECREF(tmp);
        if (!ok) return false;
        if (intern) {
            PyObject* idx = PyLong_FromSize_t(intern_order.size());
            if (!idx) return false;
            int r = PyDict_SetItem(interned, o, idx);
            Py_DECREF(idx);
            if (r < 0) return false;
            intern_order.push_back(o);
        }
        return true;
    }

    // ---- containers
    bool enc_seq_header(uint8_t op, Py_ssize_t n) { return put_op_varint(op, uint64_t(n)); }

    bool enc_tuple(PyObject* o) {
        long m = memo_find(o);
        if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
        Py_ssize_t n = PyTuple_GET_SIZE(o);
        size_t start = len;
        if (n <= 15) {
            if (!reserve(1)) return false;
            raw_u8(uint8_t(OP_TUPLE_SMALL + n));
        } else if (!enc_seq_header(OP_TUPLE, n)) {
            return false;
        }
        if (!enter()) return false;
        for (Py_ssize_t i = 0; i < n; i++)
            if (!encode(PyTuple_GET_ITEM(o, i))) return false;
        depth--;
        return finish_post(o, start);
    }

    bool enc_list(PyObject* o) {
        long m = memo_find(o);
        if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
        Py_ssize_t n = PyList_GET_SIZE(o);
        if (!enc_seq_header(OP_LIST, n)) return false;
        memo_add(o);
        if (!enter()) return false;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i >= PyList_GET_SIZE(o)) return changed(o);
            PyObject* item = PyList_GET_ITEM(o, i);
            Py_INCREF(item);
            bool ok = encode(item);
            Py_DECREF(item);
            if (!ok) return false;
        }
        if (PyList_GET_SIZE(o) != n) return changed(o);
        depth--;
        return true;
    }

    bool changed(PyObject* o) {
        raise_stream(StreamError, nullptr, -1, "%.100s changed size while it was being written",
                     Py_TYPE(o)->tp_name);
        return false;
    }

    bool enc_dict(PyObject* o) {
        long m = memo_find(o);
        if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
        Py_ssize_t n = PyDict_GET_SIZE(o);
        if (!enc_seq_header(OP_DICT, n)) return false;
        memo_add(o);
        if (!enter()) return false;
        Py_ssize_t pos = 0, count = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (++count > n) return changed(o);
            Py_INCREF(k);
            Py_INCREF(v);
            bool ok = encode(k) && encode(v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (!ok) return false;
        }
        if (count != n || PyDict_GET_SIZE(o) != n) return changed(o);
        depth--;
        return true;
    }

    bool enc_set(PyObject* o, bool frozen) {
        long m = memo_find(o);
        if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
        Py_ssize_t n = PySet_GET_SIZE(o);
        size_t start = len;
        if (!enc_seq_header(frozen ? OP_FROZENSET : OP_SET, n)) return false;
        if (!frozen) memo_add(o);
        if (!enter()) return false;
        PyObject* it = PyObject_GetIter(o);
        if (!it) return false;
        Py_ssize_t count = 0;
        PyObject* item;
        while ((item = PyIter_Next(it))) {
            bool ok = ++count <= n && encode(item);
            Py_DECREF(item);
            if (!ok) {
                Py_DECREF(it);
                return PyErr_Occurred() ? false : changed(o);
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) return false;
        if (count != n) return changed(o);
        depth--;
        return frozen ? finish_post(o, start) : true;
    }

    bool enc_custom(PyObject* o) {
        long m = memo_find(o);
        if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
        PyObject* tp = reinterpret_cast<PyObject*>(Py_TYPE(o));
        PyObject* entry = encoders ? PyDict_GetItemWithError(encoders, tp) : nullptr;
        if (!entry) {
            if (PyErr_Occurred()) return false;
            PyObject* mod = PyObject_GetAttrString(tp, "__module__");
            PyErr_Clear();
            PyObject* qn = PyObject_GetAttrString(tp, "__qualname__");
            PyErr_Clear();
            const char* ms = mod && PyUnicode_Check(mod) ? PyUnicode_AsUTF8(mod) : nullptr;
            const char* qs = qn && PyUnicode_Check(qn) ? PyUnicode_AsUTF8(qn) : nullptr;
            PyErr_Clear();
            char full[300];
            if (ms && qs && strcmp(ms, "builtins") != 0)
                snprintf(full, sizeof full, "%.140s.%.140s", ms, qs);
            else
                snprintf(full, sizeof full, "%.280s", qs ? qs : Py_TYPE(o)->tp_name);
            Py_XDECREF(mod);
            Py_XDECREF(qn);
            raise_stream(UnsupportedTypeError, nullptr, -1,
                         "cannot write a value of type '%s': it is not a supported value type "
                         "and no encoder is registered for it "
                         "(see retracesoftware.stream.register)",
                         full);
            return false;
        }
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(entry, 0))) {
            PyErr_SetString(PyExc_TypeError, "malformed type registry entry");
            return false;
        }
        Py_INCREF(entry);
        PyObject* state = PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 1), o);
        if (!state) {
            Py_DECREF(entry);
            return false;
        }
        bool ok;
        size_t start = len;
        auto it = type_ids.find(tp);
        if (it == type_ids.end()) {
            PyObject* name = PyTuple_GET_ITEM(entry, 0);
            ok = put_op_bytes(OP_CUSTOM_DEF, PyBytes_AS_STRING(name), size_t(PyBytes_GET_SIZE(name)));
            if (ok) {
                Py_INCREF(tp);
                type_order.push_back(tp);
                type_ids.emplace(tp, uint32_t(type_order.size() - 1));
            }
        } else {
            ok = put_op_varint(OP_CUSTOM, it->second);
        }
        Py_DECREF(entry);
        ok = ok && enter() && encode(state);
        Py_DECREF(state);
        if (!ok) return false;
        depth--;
        return finish_post(o, start);
    }

    bool encode(PyObject* o) {
        PyTypeObject* t = Py_TYPE(o);
        if (t == &PyFloat_Type) return enc_float(PyFloat_AS_DOUBLE(o));
        if (t == &PyLong_Type) return enc_int(o);
        if (t == &PyUnicode_Type) return enc_str(o);
        if (o == Py_None || t == &PyBool_Type) {
            if (!reserve(1)) return false;
            raw_u8(o == Py_None ? OP_NONE : o == Py_True ? OP_TRUE : OP_FALSE);
            return true;
        }
        if (t == &PyBytes_Type)
            return put_op_bytes(OP_BYTES, PyBytes_AS_STRING(o), size_t(PyBytes_GET_SIZE(o)));
        if (t == &PyComplex_Type) {
            if (!reserve(17)) return false;
            Py_complex c = PyComplex_AsCComplex(o);
            raw_u8(OP_COMPLEX);
            put_le64(buf + len, double_bits(c.real));
            put_le64(buf + len + 8, double_bits(c.imag));
            len += 16;
            return true;
        }
        if (!binds.empty()) {
            auto it = binds.find(o);
            if (it != binds.end()) return put_op_varint(OP_HANDLE, it->second);
        }
        if (t == &PyTuple_Type) return enc_tuple(o);
        if (t == &PyList_Type) return enc_list(o);
        if (t == &PyDict_Type) return enc_dict(o);
        if (t == &PySet_Type) return enc_set(o, false);
        if (t == &PyFrozenSet_Type) return enc_set(o, true);
        if (t == &PyByteArray_Type) {
            long m = memo_find(o);
            if (m >= 0) return put_op_varint(OP_MEMO, uint64_t(m));
            if (!put_op_bytes(OP_BYTEARRAY, PyByteArray_AS_STRING(o), size_t(PyByteArray_GET_SIZE(o))))
                return false;
            memo_add(o);
            return true;
        }
        return enc_custom(o);
    }

    // ---- event rollback
    struct Mark {
        size_t len, interned, types;
        uint64_t prev_float;
    };
    Mark mark() const { return Mark{len, intern_order.size(), type_order.size(), prev_float}; }
    void rollback(const Mark& m) {
        len = m.len;
        prev_float = m.prev_float;
        while (intern_order.size() > m.interned) {
            PyObject* s = intern_order.back();
            intern_order.pop_back();
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            if (PyDict_DelItem(interned, s) < 0) PyErr_Clear();
            PyErr_Restore(t, v, tb);
        }
        while (type_order.size() > m.types) {
            PyObject* tp = type_order.back();
            type_order.pop_back();
            type_ids.erase(tp);
            Py_DECREF(tp);
        }
        depth = 0;
        reset_memo();
    }
};

// ================================================================= decoder

struct Decoder {
    const uint8_t* p = nullptr;
    const uint8_t* end = nullptr;
    const uint8_t* base = nullptr;
    uint64_t base_off = 0;
    PyObject* path = nullptr;  // borrowed, for messages

    std::vector<PyObject*> strings;  // strong
    std::vector<PyObject*> memo;     // strong, per value
    std::vector<PyObject*> type_decoders;  // strong (decoder callables)
    std::unordered_map<uint64_t, PyObject*> handles;  // strong
    uint64_t next_handle = 0;
    PyObject* decoders = nullptr;  // borrowed dict name -> decode
    uint64_t prev_float = 0;
    int depth = 0;

    Decoder() = default;
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;
    ~Decoder() {
        for (PyObject* s : strings) Py_DECREF(s);
        reset_memo();
        for (PyObject* d : type_decoders) Py_DECREF(d);
        for (auto& kv : handles) Py_DECREF(kv.second);
    }
    void reset_memo() {
        for (PyObject* o : memo) Py_DECREF(o);
        memo.clear();
        depth = 0;
    }

    long long offset(const uint8_t* at) const { return (long long)(base_off + uint64_t(at - base)); }

    PyObject* corrupt_at(const uint8_t* at, const char* fmt, ...) {
        char detail[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        raise_stream(CorruptError, path, offset(at), "corrupt data at offset %lld: %s", offset(at),
                     detail);
        return nullptr;
    }
    PyObject* short_input(const uint8_t* at, const char* what) {
        return corrupt_at(at, "expected %s, found the end of its frame", what);
    }

    bool varint(uint64_t* out, const uint8_t* at) {
        uint64_t v = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            if (p >= end) {
                short_input(at, "a length or index");
                return false;
            }
            uint8_t b = *p++;
            if (shift == 63 && b > 1) {
                corrupt_at(at, "expected a varint below 2**64");
                return false;
            }
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                *out = v;
                return true;
            }
        }
        corrupt_at(at, "expected a varint of at most 10 bytes");
        return false;
    }
    // A count of items that each take at least `min_bytes` bytes.
    bool count(uint64_t* out, const uint8_t* at, uint64_t min_bytes) {
        if (!varint(out, at)) return false;
        if (*out > uint64_t(end - p) / min_bytes) {
            corrupt_at(at, "expected at most %llu items, found a count of %llu",
                       (unsigned long long)(uint64_t(end - p) / min_bytes),
                       (unsigned long long)*out);
            return false;
        }
        return true;
    }
    bool enter(const uint8_t* at) {
        if (++depth > MAX_DEPTH) {
            corrupt_at(at, "expected values nested at most %d levels deep", MAX_DEPTH);
            return false;
        }
        return true;
    }
    PyObject* post(PyObject* o) {
        try {
            memo.push_back(o);
        } catch (const std::bad_alloc&) {
            Py_DECREF(o);
            return PyErr_NoMemory();
        }
        Py_INCREF(o);
        return o;
    }
    // REPLACE <object> <index>: decode a tuple/frozenset/custom object, drop it
    // and its memo entry, and return the earlier-completed copy instead.
    PyObject* dec_replace(const uint8_t* at) {
        if (p >= end) return short_input(at, "a value");
        uint8_t op = *p;
        bool postorder = op == OP_TUPLE || (op >= OP_TUPLE_SMALL && op < OP_TUPLE_SMALL + 16) ||
                         op == OP_FROZENSET || op == OP_CUSTOM || op == OP_CUSTOM_DEF;
        if (!postorder)
            return corrupt_at(p, "expected a tuple, frozenset or custom value, found opcode 0x%02x",
                              op);
        PyObject* v = decode();
        if (!v) return nullptr;
        bool own = !memo.empty() && memo.back() == v;
        Py_DECREF(v);
        if (!own) return corrupt_at(at, "expected a fresh object under REPLACE");
        Py_DECREF(memo.back());
        memo.pop_back();
        const uint8_t* ia = p;
        uint64_t idx;
        if (!varint(&idx, ia)) return nullptr;
        if (idx >= memo.size())
            return corrupt_at(ia, "expected a back-reference below %zu, found %llu", memo.size(),
                              (unsigned long long)idx);
        Py_INCREF(memo[idx]);
        return memo[idx];
    }
    PyObject* build_failed(const uint8_t* at, const char* what) {
        return corrupt_at(at, "expected hashable keys and members, cannot build %s", what);
    }

    PyObject* decode() {
        const uint8_t* at = p;
        if (p >= end) return short_input(at, "a value");
        uint8_t op = *p++;
        if (op >= OP_SMALL_INT) return PyLong_FromLong(long(op) - SMALL_INT_BIAS);
        if (op >= OP_TUPLE_SMALL && op < OP_TUPLE_SMALL + 16) return dec_tuple(at, op - OP_TUPLE_SMALL);
        uint64_t n;
        switch (op) {
            case OP_NONE:
                Py_RETURN_NONE;
            case OP_FALSE:
                Py_RETURN_FALSE;
            case OP_TRUE:
                Py_RETURN_TRUE;
            case OP_INT_POS:
                if (!varint(&n, at)) return nullptr;
                return PyLong_FromUnsignedLongLong(n);
            case OP_INT_NEG:
                if (!varint(&n, at)) return nullptr;
                if (n > uint64_t(INT64_MAX))
                    return corrupt_at(at, "expected a negative int magnitude below 2**63");
                return PyLong_FromLongLong(-1 - (long long)n);
            case OP_INT_BIG:
                if (!varint(&n, at)) return nullptr;
                if (n == 0) return corrupt_at(at, "expected a big int of at least one byte");
                if (n > uint64_t(end - p)) return short_input(at, "a big int");
                p += n;
#if PY_VERSION_HEX >= 0x030D0000
                return PyLong_FromNativeBytes(p - n, size_t(n), Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
                return _PyLong_FromByteArray(p - n, size_t(n), 1, 1);
#endif
            case OP_FLOAT:
                if (end - p < 8) return short_input(at, "a float");
                prev_float = get_le64(p);
                p += 8;
                return PyFloat_FromDouble(bits_double(prev_float));
            case OP_FLOAT_SAME:
                return PyFloat_FromDouble(bits_double(prev_float));
            case OP_COMPLEX: {
                if (end - p < 16) return short_input(at, "a complex");
                double re = bits_double(get_le64(p)), im = bits_double(get_le64(p + 8));
                p += 16;
                return PyComplex_FromDoubles(re, im);
            }
            case OP_STR:
            case OP_STR_INTERN: {
                if (!varint(&n, at)) return nullptr;
                if (n > uint64_t(end - p)) return short_input(at, "a str");
                PyObject* s = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(p), Py_ssize_t(n),
                                                   "surrogatepass");
                if (!s) return corrupt_at(at, "expected UTF-8 text");
                p += n;
                if (op == OP_STR_INTERN) {
                    try {
                        strings.push_back(s);
                    } catch (const std::bad_alloc&) {
                        Py_DECREF(s);
                        return PyErr_NoMemory();
                    }
                    Py_INCREF(s);
                }
                return s;
            }
            case OP_STR_REF:
                if (!varint(&n, at)) return nullptr;
                if (n >= strings.size())
                    return corrupt_at(at, "expected a string index below %zu, found %llu",
                                      strings.size(), (unsigned long long)n);
                Py_INCREF(strings[n]);
                return strings[n];
            case OP_BYTES:
            case OP_BYTEARRAY: {
                if (!varint(&n, at)) return nullptr;
                if (n > uint64_t(end - p)) return short_input(at, "a bytes value");
                p += n;
                const char* d = reinterpret_cast<const char*>(p - n);
                if (op == OP_BYTES) return PyBytes_FromStringAndSize(d, Py_ssize_t(n));
                PyObject* b = PyByteArray_FromStringAndSize(d, Py_ssize_t(n));
                if (!b) return nullptr;
                try {
                    memo.push_back(b);
                } catch (const std::bad_alloc&) {
                    Py_DECREF(b);
                    return PyErr_NoMemory();
                }
                Py_INCREF(b);
                return b;
            }
            case OP_TUPLE:
                if (!count(&n, at, 1)) return nullptr;
                return dec_tuple(at, n);
            case OP_LIST:
                if (!count(&n, at, 1)) return nullptr;
                return dec_list(at, n);
            case OP_DICT:
                if (!count(&n, at, 2)) return nullptr;
                return dec_dict(at, n);
            case OP_SET:
            case OP_FROZENSET:
                if (!count(&n, at, 1)) return nullptr;
                return dec_set(at, n, op == OP_FROZENSET);
            case OP_MEMO:
                if (!varint(&n, at)) return nullptr;
                if (n >= memo.size())
                    return corrupt_at(at, "expected a back-reference below %zu, found %llu",
                                      memo.size(), (unsigned long long)n);
                Py_INCREF(memo[n]);
                return memo[n];
            case OP_HANDLE: {
                if (!varint(&n, at)) return nullptr;
                auto it = handles.find(n);
                if (it == handles.end())
                    return corrupt_at(at, "expected a bound handle, found handle %llu",
                                      (unsigned long long)n);
                Py_INCREF(it->second);
                return it->second;
            }
            case OP_CUSTOM_DEF:
            case OP_CUSTOM:
                return dec_custom(at, op);
            case OP_REPLACE:  // not a level of its own: the object that follows is
                return dec_replace(at);
            default:
                break;
        }
        if (op >= OP_FLOAT_XOR && op < OP_FLOAT_XOR + 7) {
            int k = op - OP_FLOAT_XOR + 1;
            if (end - p < k) return short_input(at, "a float");
            uint64_t x = 0;
            for (int i = 0; i < k; i++) x |= uint64_t(p[i]) << (8 * i);
            p += k;
            prev_float ^= x;
            return PyFloat_FromDouble(bits_double(prev_float));
        }
        if (op >= OP_FLOAT_HI && op < OP_FLOAT_HI + 8) {
            int k = op - OP_FLOAT_HI;
            if (end - p < k) return short_input(at, "a float");
            uint64_t v = 0;
            for (int i = 0; i < k; i++) v |= uint64_t(p[i]) << (8 * i);
            p += k;
            prev_float = k ? v << (64 - 8 * k) : 0;
            return PyFloat_FromDouble(bits_double(prev_float));
        }
        return corrupt_at(at, "expected a value, found opcode 0x%02x", op);
    }

    PyObject* dec_tuple(const uint8_t* at, uint64_t n) {
        if (n > uint64_t(end - p)) return short_input(at, "a tuple");
        if (!enter(at)) return nullptr;
        PyObject* t = PyTuple_New(Py_ssize_t(n));
        if (!t) return nullptr;
        for (uint64_t i = 0; i < n; i++) {
            PyObject* item = decode();
            if (!item) {
                Py_DECREF(t);
                return nullptr;
            }
            PyTuple_SET_ITEM(t, Py_ssize_t(i), item);
        }
        depth--;
        return post(t);
    }

    PyObject* dec_list(const uint8_t* at, uint64_t n) {
        if (!enter(at)) return nullptr;
        PyObject* l = PyList_New(Py_ssize_t(n));
        if (!l) return nullptr;
        Py_SET_SIZE(l, 0);  // items are published one by one: the list may be seen meanwhile
        try {
            memo.push_back(l);
        } catch (const std::bad_alloc&) {
            Py_SET_SIZE(l, Py_ssize_t(n));
            Py_DECREF(l);
            return PyErr_NoMemory();
        }
        for (uint64_t i = 0; i < n; i++) {
            PyObject* item = decode();
            if (!item) return nullptr;  // the memo owns l; items beyond its size are never read
            if (PyList_GET_SIZE(l) != Py_ssize_t(i)) {  // mutated by a decoder hook
                Py_DECREF(item);
                return corrupt_at(at, "expected decoder hooks to leave lists alone (one changed)");
            }
            PyList_SET_ITEM(l, Py_ssize_t(i), item);
            Py_SET_SIZE(l, Py_ssize_t(i + 1));
        }
        depth--;
        Py_INCREF(l);
        return l;
    }

    PyObject* dec_dict(const uint8_t* at, uint64_t n) {
        if (!enter(at)) return nullptr;
        PyObject* d = PyDict_New();
        if (!d) return nullptr;
        try {
            memo.push_back(d);
        } catch (const std::bad_alloc&) {
            Py_DECREF(d);
            return PyErr_NoMemory();
        }
        for (uint64_t i = 0; i < n; i++) {
            PyObject* k = decode();
            if (!k) return nullptr;
            PyObject* v = decode();
            if (!v) {
                Py_DECREF(k);
                return nullptr;
            }
            int r = PyDict_SetItem(d, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (r < 0) return build_failed(at, "a dict");
        }
        depth--;
        Py_INCREF(d);
        return d;
    }

    PyObject* dec_set(const uint8_t* at, uint64_t n, bool frozen) {
        if (!enter(at)) return nullptr;
        PyObject* s = frozen ? PyFrozenSet_New(nullptr) : PySet_New(nullptr);
        if (!s) return nullptr;
        if (!frozen) {
            try {
                memo.push_back(s);
            } catch (const std::bad_alloc&) {
                Py_DECREF(s);
                return PyErr_NoMemory();
            }
            Py_INCREF(s);
        }
        for (uint64_t i = 0; i < n; i++) {
            PyObject* item = decode();
            if (!item) {
                Py_DECREF(s);
                return nullptr;
            }
            int r = PySet_Add(s, item);
            Py_DECREF(item);
            if (r < 0) {
                Py_DECREF(s);
                return build_failed(at, frozen ? "a frozenset" : "a set");
            }
        }
        depth--;
        return frozen ? post(s) : s;
    }

    PyObject* dec_custom(const uint8_t* at, uint8_t op) {
        PyObject* decoder;
        if (op == OP_CUSTOM_DEF) {
            uint64_t n;
            if (!varint(&n, at)) return nullptr;
            if (n > uint64_t(end - p)) return short_input(at, "a type name");
            PyObject* name = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(p), Py_ssize_t(n),
                                                  "strict");
            if (!name) return corrupt_at(at, "expected a UTF-8 type name");
            p += n;
            decoder = decoders ? PyDict_GetItemWithError(decoders, name) : nullptr;
            if (!decoder) {
                if (!PyErr_Occurred()) {
                    const char* s = PyUnicode_AsUTF8(name);
                    if (!s) PyErr_Clear();
                    raise_stream(UnknownTypeError, path, offset(at),
                                 "the recording contains values of type '%.200s' (offset %lld) "
                                 "but no decoder is registered for that name",
                                 s ? s : "?", offset(at));
                }
                Py_DECREF(name);
                return nullptr;
            }
            Py_DECREF(name);
            try {
                type_decoders.push_back(decoder);
            } catch (const std::bad_alloc&) {
                return PyErr_NoMemory();
            }
            Py_INCREF(decoder);
        } else {
            uint64_t idx;
            if (!varint(&idx, at)) return nullptr;
            if (idx >= type_decoders.size())
                return corrupt_at(at, "expected a type index below %zu, found %llu",
                                  type_decoders.size(), (unsigned long long)idx);
            decoder = type_decoders[idx];
        }
        if (!enter(at)) return nullptr;
        PyObject* state = decode();
        if (!state) return nullptr;
        Py_INCREF(decoder);
        PyObject* obj = PyObject_CallOneArg(decoder, state);
        Py_DECREF(decoder);
        Py_DECREF(state);
        if (!obj) return corrupt_at(at, "expected a state the registered decoder accepts (it raised)");
        depth--;
        return post(obj);
    }
};

// ============================================================ frame output

// Write a whole frame (header + payload) at the current file position.
int write_frame(int fd, uint8_t kind, const uint8_t* data, size_t n) {
    uint8_t hdr[FRAME_HEADER];
    hdr[0] = kind;
    put_le32(hdr + 1, uint32_t(n));
    uint32_t crc = crc32c(crc32c(0, hdr, 5), data, n);
    put_le32(hdr + 5, crc);
    put_le32(hdr + 9, crc32c(0, hdr, 9));
    struct iovec iov[2] = {{hdr, FRAME_HEADER}, {const_cast<uint8_t*>(data), n}};
    int cnt = n ? 2 : 1;
    struct iovec* v = iov;
    while (cnt > 0) {
        ssize_t w = writev(fd, v, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        size_t left = size_t(w);
        while (cnt > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = static_cast<uint8_t*>(v->iov_base) + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

// ================================================================== writer

struct WriterCore {
    Encoder enc;
    std::mutex mtx;                    // guards buffer moves, flushed, fd writes, frames
    std::atomic<size_t> committed{0};  // end of the last complete event in enc.buf
    size_t flushed = 0;                // start of the data not yet handed to the OS
    uint64_t frames = 0;
    int fd = -1;
    std::atomic<int> bg_errno{0};
    double interval = 0.1;
    size_t frame_size = 65536;
    bool closed = true;
    bool forked = false;
    bool registered = false;

    uint64_t events = 0;
    uint64_t cur_tid = 0;
    uint64_t last_ident = 0;
    uint64_t last_auto_tid = 0;
    bool have_ident = false;
    std::unordered_map<uint64_t, uint64_t> auto_tids;
    uint64_t next_handle = 0;

    unsigned long busy_owner = 0;
    bool busy = false;

    // Called with mtx held.
    int flush_locked() {
        size_t c = committed.load(std::memory_order_acquire);
        if (c <= flushed || fd < 0) return 0;
        int err = write_frame(fd, FRAME_DATA, enc.buf + flushed, c - flushed);
        if (!err) {
            flushed = c;
            frames++;
        }
        return err;
    }
    void bg_flush() {
        std::lock_guard<std::mutex> lk(mtx);
        if (closed || forked) return;
        int err = flush_locked();
        if (err) bg_errno.store(err);
    }
};

struct Flusher {
    std::mutex m;
    std::condition_variable cv;
    std::vector<WriterCore*> writers;
    bool running = false;
};
Flusher* g_flusher = new Flusher;  // never destroyed: a detached thread may still use it

void flusher_main(Flusher* f) {
    std::unique_lock<std::mutex> lk(f->m);
    while (!f->writers.empty()) {
        double tick = 1.0;
        for (WriterCore* w : f->writers) tick = std::min(tick, w->interval / 2);
        f->cv.wait_for(lk, std::chrono::duration<double>(tick));
        for (WriterCore* w : f->writers) w->bg_flush();
    }
    f->running = false;
}

bool flusher_register(WriterCore* w) {
    Flusher* f = g_flusher;
    std::lock_guard<std::mutex> lk(f->m);
    f->writers.push_back(w);
    if (!f->running) {
        try {
            std::thread(flusher_main, f).detach();
        } catch (const std::exception&) {
            f->writers.pop_back();
            return false;
        }
        f->running = true;
    }
    w->registered = true;
    f->cv.notify_all();  // recompute the tick for this writer's interval
    return true;
}

void flusher_unregister(WriterCore* w) {
    if (!w->registered) return;
    Flusher* f = g_flusher;
    std::lock_guard<std::mutex> lk(f->m);
    for (size_t i = 0; i < f->writers.size(); i++) {
        if (f->writers[i] == w) {
            f->writers.erase(f->writers.begin() + long(i));
            break;
        }
    }
    w->registered = false;
    f->cv.notify_all();
}

void atfork_child() {
    // Only this thread survives; the flusher's and the writers' mutexes may be
    // held by a thread that no longer exists.  Writers inherited from the parent
    // become inert in the child, and the child gets a fresh flusher.
    Flusher* old = g_flusher;
    for (WriterCore* w : old->writers) {
        w->forked = true;
        w->registered = false;
    }
    g_flusher = new Flusher;
}

struct WriterObject {
    PyObject_HEAD
    WriterCore* core;
    PyObject* path;
    PyObject* encoders;
    PyObject* weakrefs;
};

PyObject* os_error(int err, PyObject* path) {
    errno = err;
    return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
}

PyObject* Writer_new(PyTypeObject* type, PyObject*, PyObject*) {
    WriterObject* self = reinterpret_cast<WriterObject*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    self->core = new (std::nothrow) WriterCore;
    if (!self->core) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->core->enc.grow_lock = &self->core->mtx;
    if (!self->core->enc.init()) {
        Py_DECREF(self);
        return nullptr;
    }
    return reinterpret_cast<PyObject*>(self);
}

bool writer_check_open(WriterObject* self) {
    WriterCore* w = self->core;
    if (w->forked) {
        raise_stream(StreamError, self->path, -1,
                     "this writer belongs to the parent process: a forked child must open its own "
                     "recording");
        return false;
    }
    if (w->closed) {
        raise_stream(StreamError, self->path, -1, "the writer is closed");
        return false;
    }
    if (w->bg_errno.load(std::memory_order_relaxed)) {
        os_error(w->bg_errno.exchange(0), self->path);
        return false;
    }
    return true;
}

// Enter the writer's critical section; returns false with an exception set.
bool writer_acquire(WriterObject* self) {
    WriterCore* w = self->core;
    while (w->busy) {
        if (w->busy_owner == PyThread_get_thread_ident()) {
            raise_stream(StreamError, self->path, -1,
                         "the writer was called re-entrantly (from an encoder hook)");
            return false;
        }
        Py_BEGIN_ALLOW_THREADS
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        Py_END_ALLOW_THREADS
    }
    w->busy = true;
    w->busy_owner = PyThread_get_thread_ident();
    return true;
}
inline void writer_release(WriterObject* self) { self->core->busy = false; }

int Writer_init(PyObject* op, PyObject* args, PyObject* kwds) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    static const char* kwlist[] = {"path", "header", "encoders", "flush_interval", "frame_size",
                                   "intern_max_len", nullptr};
    PyObject *path, *header, *encoders;
    double interval = 0.1;
    Py_ssize_t frame_size = 65536, intern_max_len = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UO!O!|dnn", const_cast<char**>(kwlist), &path,
                                     &PyDict_Type, &header, &PyDict_Type, &encoders, &interval,
                                     &frame_size, &intern_max_len))
        return -1;
    WriterCore* w = self->core;
    if (!w->closed || w->fd >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "Writer.__init__ called twice");
        return -1;
    }
    if (!(interval > 0 && interval <= 3600)) {
        PyErr_SetString(PyExc_ValueError, "flush_interval must be in (0, 3600] seconds");
        return -1;
    }
    if (frame_size < 64 || frame_size > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "frame_size must be between 64 bytes and 1 GiB");
        return -1;
    }
    if (intern_max_len < 0) {
        PyErr_SetString(PyExc_ValueError, "intern_max_len must be >= 0");
        return -1;
    }
    w->interval = interval;
    w->frame_size = size_t(frame_size);
    w->enc.intern_max_len = size_t(intern_max_len);
    Py_INCREF(path);
    Py_XSETREF(self->path, path);
    Py_INCREF(encoders);
    Py_XSETREF(self->encoders, encoders);
    w->enc.encoders = encoders;

    // The header is encoded with its own tables so that it is self-contained.
    Encoder henc;
    if (!henc.init()) return -1;
    henc.intern_max_len = 0;
    if (!henc.encode(header)) return -1;
    if (henc.len > MAX_FRAME) {
        raise_stream(StreamError, path, -1, "the header is too large");
        return -1;
    }

    PyObject* fspath = nullptr;
    if (!PyUnicode_FSConverter(path, &fspath)) return -1;
    int fd;
    Py_BEGIN_ALLOW_THREADS
    fd = open(PyBytes_AS_STRING(fspath), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    Py_END_ALLOW_THREADS
    Py_DECREF(fspath);
    if (fd < 0) {
        os_error(errno, path);
        return -1;
    }
    uint8_t pre[12];
    memcpy(pre, MAGIC, 8);
    pre[8] = uint8_t(VERSION_MAJOR);
    pre[9] = uint8_t(VERSION_MAJOR >> 8);
    pre[10] = uint8_t(VERSION_MINOR);
    pre[11] = uint8_t(VERSION_MINOR >> 8);
    int err = 0;
    ssize_t wr = write(fd, pre, sizeof pre);
    if (wr != ssize_t(sizeof pre)) err = wr < 0 ? errno : EIO;
    if (!err) err = write_frame(fd, FRAME_HEADER_KIND, henc.buf, henc.len);
    if (err) {
        close(fd);
        os_error(err, path);
        return -1;
    }
    w->fd = fd;
    if (!w->enc.reserve(std::min<size_t>(size_t(frame_size), size_t(1) << 20) + 1024)) {
        close(fd);
        w->fd = -1;
        return -1;
    }
    w->closed = false;
    if (!flusher_register(w)) {
        raise_stream(StreamError, path, -1, "cannot start the background flusher thread");
        close(fd);
        w->fd = -1;
        w->closed = true;
        return -1;
    }
    return 0;
}

// Flush the buffer as a frame and reset it (writer thread, GIL held).
bool writer_flush_frame(WriterObject* self) {
    WriterCore* w = self->core;
    int err;
    {
        std::lock_guard<std::mutex> lk(w->mtx);
        err = w->flush_locked();
        if (!err) {
            w->enc.len = 0;
            w->flushed = 0;
            w->committed.store(0, std::memory_order_release);
        }
    }
    if (err) {
        os_error(err, self->path);
        return false;
    }
    return true;
}

bool writer_thread_switch(WriterCore* w, PyObject* thread) {
    uint64_t tid;
    if (thread && thread != Py_None) {
        if (!PyLong_CheckExact(thread)) {
            PyErr_SetString(PyExc_TypeError, "thread must be an int");
            return false;
        }
        tid = PyLong_AsUnsignedLongLong(thread);
        if (tid == uint64_t(-1) && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "thread must be an int in [0, 2**64)");
            return false;
        }
    } else {
        // Thread-state ids are never reused, unlike OS thread identifiers.
        uint64_t ident = PyThreadState_GetID(PyThreadState_Get());
        if (w->have_ident && ident == w->last_ident) {
            tid = w->last_auto_tid;
        } else {
            auto it = w->auto_tids.find(ident);
            if (it == w->auto_tids.end())
                it = w->auto_tids.emplace(ident, uint64_t(w->auto_tids.size())).first;
            tid = it->second;
            w->last_ident = ident;
            w->last_auto_tid = tid;
            w->have_ident = true;
        }
    }
    if (tid != w->cur_tid) {
        if (!w->enc.put_op_varint(OP_THREAD, tid)) return false;
        w->cur_tid = tid;
    }
    return true;
}

// Common end of a record: commit, maybe flush; on failure roll back.
PyObject* writer_finish(WriterObject* self, bool ok, const Encoder::Mark& mk, uint64_t old_tid,
                        bool is_event = false) {
    WriterCore* w = self->core;
    if (ok && w->enc.len > MAX_FRAME) {
        raise_stream(StreamError, self->path, -1, "an event larger than 4 GiB cannot be written");
        ok = false;
    }
    if (!ok) {
        w->enc.rollback(mk);
        w->cur_tid = old_tid;
        writer_release(self);
        return nullptr;
    }
    w->enc.reset_memo();
    w->enc.depth = 0;
    if (is_event) w->events++;
    w->committed.store(w->enc.len, std::memory_order_release);
    bool flushed_ok = w->enc.len < w->frame_size || writer_flush_frame(self);
    writer_release(self);
    if (!flushed_ok) return nullptr;
    Py_RETURN_NONE;
}

// Parse (value, thread=None) given positionally or with thread as keyword.
bool parse_value_thread(const char* fname, PyObject* const* args, Py_ssize_t nargs,
                        PyObject* kwnames, PyObject** thread) {
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    *thread = nullptr;
    if (nargs < 1 || nargs + nkw > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes an object and an optional thread", fname);
        return false;
    }
    if (nargs == 2) *thread = args[1];
    if (nkw) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(key) || PyUnicode_CompareWithASCIIString(key, "thread") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, key);
            return false;
        }
        *thread = args[1];
    }
    return true;
}

PyObject* Writer_write(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    PyObject* thread;
    if (!parse_value_thread("write", args, nargs, kwnames, &thread)) return nullptr;
    if (!writer_acquire(self)) return nullptr;
    if (!writer_check_open(self)) {
        writer_release(self);
        return nullptr;
    }
    WriterCore* w = self->core;
    Encoder::Mark mk = w->enc.mark();
    uint64_t old_tid = w->cur_tid;
    bool ok;
    try {
        ok = writer_thread_switch(w, thread) && w->enc.encode(args[0]);
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        ok = false;
    }
    return writer_finish(self, ok, mk, old_tid, true);
}

// ---- events handed over natively by an EventLog (utils, through its capsule)

const RetraceEventLogAPI* g_log_api = nullptr;

const RetraceEventLogAPI* log_api() {
    if (g_log_api) return g_log_api;
    void* p = PyCapsule_Import(RETRACE_EVENTLOG_API_CAPSULE, 0);
    if (!p) return nullptr;
    auto* api = static_cast<const RetraceEventLogAPI*>(p);
    if (api->version != RETRACE_EVENTLOG_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "EventLog C interface version %d, expected %d",
                     api->version, RETRACE_EVENTLOG_API_VERSION);
        return nullptr;
    }
    g_log_api = api;
    return api;
}

bool check_log(const RetraceEventLogAPI* api, PyObject* log) {
    if (!PyObject_TypeCheck(log, api->type)) {
        PyErr_Format(PyExc_TypeError, "expected an EventLog, not %.100s", Py_TYPE(log)->tp_name);
        return false;
    }
    return true;
}

struct LogWrite {
    WriterObject* self;
    uint64_t count;
};

// Write one event as the tuple (kind, tag, *fields) on logical thread tag; commit it.
int write_log_event(void* ctx, long kind, long long tag, int n, PyObject* const* f) {
    auto* lw = static_cast<LogWrite*>(ctx);
    WriterObject* self = lw->self;
    WriterCore* w = self->core;
    Encoder& enc = w->enc;
    if (tag < 0) {
        PyErr_SetString(PyExc_ValueError, "thread must be an int in [0, 2**64)");
        return -1;
    }
    Encoder::Mark mk = enc.mark();
    uint64_t old_tid = w->cur_tid;
    bool ok = true;
    try {
        auto tid = uint64_t(tag);
        if (tid != w->cur_tid) {
            ok = enc.put_op_varint(OP_THREAD, tid);
            if (ok) w->cur_tid = tid;
        }
        ok = ok && enc.reserve(1);
        if (ok) {
            enc.raw_u8(uint8_t(OP_TUPLE_SMALL + 2 + n));
            ok = enc.enter() && enc.enc_ll(kind) && enc.enc_ll(tag);
            for (int i = 0; ok && i < n; i++) ok = enc.encode(f[i]);
        }
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        ok = false;
    }
    if (ok && enc.len > MAX_FRAME) {
        raise_stream(StreamError, self->path, -1, "an event larger than 4 GiB cannot be written");
        ok = false;
    }
    if (!ok) {
        enc.rollback(mk);
        w->cur_tid = old_tid;
        return -1;
    }
    enc.reset_memo();
    enc.depth = 0;
    w->events++;
    lw->count++;
    w->committed.store(enc.len, std::memory_order_release);
    if (enc.len >= w->frame_size && !writer_flush_frame(self)) return -1;
    return 0;
}

PyObject* Writer_write_log(PyObject* op, PyObject* log) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    const RetraceEventLogAPI* api = log_api();
    if (!api || !check_log(api, log)) return nullptr;
    if (!writer_acquire(self)) return nullptr;
    if (!writer_check_open(self)) {
        writer_release(self);
        return nullptr;
    }
    LogWrite lw{self, 0};
    int rc = api->drain(log, write_log_event, &lw);
    writer_release(self);
    if (rc < 0) return nullptr;
    return PyLong_FromUnsignedLongLong(lw.count);
}

PyObject* Writer_bind(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    PyObject* thread;
    if (!parse_value_thread("bind", args, nargs, kwnames, &thread)) return nullptr;
    PyObject* obj = args[0];
    PyTypeObject* t = Py_TYPE(obj);
    if (obj == Py_None || t == &PyBool_Type || t == &PyLong_Type || t == &PyFloat_Type ||
        t == &PyComplex_Type || t == &PyUnicode_Type || t == &PyBytes_Type) {
        raise_stream(StreamError, self->path, -1,
                     "cannot bind a value of type %.100s: such values have no identity to keep",
                     t->tp_name);
        return nullptr;
    }
    if (!writer_acquire(self)) return nullptr;
    if (!writer_check_open(self)) {
        writer_release(self);
        return nullptr;
    }
    WriterCore* w = self->core;
    if (w->enc.binds.count(obj)) {
        writer_release(self);
        raise_stream(StreamError, self->path, -1, "this %.100s object is already bound to handle %llu",
                     t->tp_name, (unsigned long long)w->enc.binds[obj]);
        return nullptr;
    }
    Encoder::Mark mk = w->enc.mark();
    uint64_t old_tid = w->cur_tid;
    bool ok = writer_thread_switch(w, thread) && w->enc.reserve(1);
    uint64_t h = w->next_handle;
    if (ok) {
        w->enc.raw_u8(OP_BIND);
        try {
            w->enc.binds.emplace(obj, h);
        } catch (const std::bad_alloc&) {
            PyErr_NoMemory();
            ok = false;
        }
    }
    if (ok) {
        Py_INCREF(obj);
        w->next_handle++;
    }
    PyObject* r = writer_finish(self, ok, mk, old_tid);
    if (!r) return nullptr;
    Py_DECREF(r);
    return PyLong_FromUnsignedLongLong(h);
}

PyObject* Writer_unbind(PyObject* op, PyObject* obj) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    if (!writer_acquire(self)) return nullptr;
    if (!writer_check_open(self)) {
        writer_release(self);
        return nullptr;
    }
    WriterCore* w = self->core;
    auto it = w->enc.binds.find(obj);
    if (it == w->enc.binds.end()) {
        writer_release(self);
        raise_stream(StreamError, self->path, -1, "this %.100s object is not bound",
                     Py_TYPE(obj)->tp_name);
        return nullptr;
    }
    Encoder::Mark mk = w->enc.mark();
    if (!w->enc.put_op_varint(OP_DEAD, it->second)) return writer_finish(self, false, mk, w->cur_tid);
    uint64_t h = it->second;
    w->enc.binds.erase(it);
    Py_DECREF(obj);
    PyObject* r = writer_finish(self, true, mk, w->cur_tid);
    if (!r) return nullptr;
    Py_DECREF(r);
    return PyLong_FromUnsignedLongLong(h);
}

PyObject* Writer_flush(PyObject* op, PyObject*) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    if (!writer_acquire(self)) return nullptr;
    bool ok = writer_check_open(self) && writer_flush_frame(self);
    writer_release(self);
    if (!ok) return nullptr;
    Py_RETURN_NONE;
}

// Close: flush, trailer, fsync.  Safe to call repeatedly.
bool writer_close(WriterObject* self, bool sync) {
    WriterCore* w = self->core;
    if (w->closed || w->forked) {
        if (w->forked && w->fd >= 0) {
            close(w->fd);
            w->fd = -1;
        }
        w->closed = true;
        return true;
    }
    flusher_unregister(w);
    int err = w->bg_errno.exchange(0);
    uint8_t trailer[TRAILER_SIZE];
    {
        std::lock_guard<std::mutex> lk(w->mtx);
        if (!err) err = w->flush_locked();
        put_le64(trailer, w->events);
        put_le64(trailer + 8, w->frames);
        memcpy(trailer + 16, END_MARKER, 8);
        if (!err) err = write_frame(w->fd, FRAME_END, trailer, TRAILER_SIZE);
        w->closed = true;
    }
    if (!err && sync) {
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = fsync(w->fd);
        Py_END_ALLOW_THREADS
        if (r < 0 && errno != EINVAL && errno != EROFS) err = errno;
    }
    if (close(w->fd) < 0 && !err && errno != EINTR) err = errno;
    w->fd = -1;
    if (err) {
        os_error(err, self->path);
        return false;
    }
    return true;
}

PyObject* Writer_close(PyObject* op, PyObject*) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    if (!writer_acquire(self)) return nullptr;
    bool ok = writer_close(self, true);
    writer_release(self);
    if (!ok) return nullptr;
    Py_RETURN_NONE;
}

int Writer_traverse(PyObject* op, visitproc visit, void* arg) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->encoders);
    if (self->core) {
        for (auto& kv : self->core->enc.binds) Py_VISIT(kv.first);
        for (PyObject* t : self->core->enc.type_order) Py_VISIT(t);
    }
    return 0;
}

int Writer_clear(PyObject* op) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    if (self->core) {
        self->core->enc.encoders = nullptr;
        auto binds = std::move(self->core->enc.binds);
        self->core->enc.binds.clear();
        for (auto& kv : binds) Py_DECREF(kv.first);
        auto types = std::move(self->core->enc.type_order);
        self->core->enc.type_order.clear();
        self->core->enc.type_ids.clear();
        for (PyObject* t : types) Py_DECREF(t);
    }
    Py_CLEAR(self->encoders);
    return 0;
}

void Writer_dealloc(PyObject* op) {
    WriterObject* self = reinterpret_cast<WriterObject*>(op);
    PyTypeObject* tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakrefs) PyObject_ClearWeakRefs(op);
    if (self->core) {
        if (!self->core->closed && !self->core->forked) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            if (!writer_close(self, false)) PyErr_WriteUnraisable(op);
            PyErr_Restore(t, v, tb);
        } else if (self->core->forked && self->core->fd >= 0) {
            close(self->core->fd);
            self->core->fd = -1;
        }
        if (self->core->forked) {
            // Its mutex may be locked by a thread of the parent: leak the core
            // rather than destroy a locked mutex; release the Python refs only.
            self->core->enc.reset_memo();
        } else {
            delete self->core;
        }
        self->core = nullptr;
    }
    Writer_clear(op);
    Py_CLEAR(self->path);
    tp->tp_free(op);
    Py_DECREF(tp);
}

PyObject* Writer_get_events(PyObject* op, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<WriterObject*>(op)->core->events);
}
PyObject* Writer_get_closed(PyObject* op, void*) {
    return PyBool_FromLong(reinterpret_cast<WriterObject*>(op)->core->closed);
}
PyObject* Writer_get_path(PyObject* op, void*) {
    PyObject* p = reinterpret_cast<WriterObject*>(op)->path;
    return Py_NewRef(p ? p : Py_None);
}

PyMethodDef Writer_methods[] = {
    {"write", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Writer_write)),
     METH_FASTCALL | METH_KEYWORDS, "write(value, thread=None): append one event."},
    {"bind", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Writer_bind)),
     METH_FASTCALL | METH_KEYWORDS, "bind(obj, thread=None) -> handle"},
    {"unbind", Writer_unbind, METH_O, "unbind(obj) -> handle: announce that obj's handle is dead."},
    {"flush", Writer_flush, METH_NOARGS, "Hand buffered events to the operating system."},
    {"write_log", Writer_write_log, METH_O,
     "write_log(log) -> count: write every event of a utils.EventLog as the value "
     "(kind, thread, *fields) on its thread, in order, and empty the log."},
    {"close", Writer_close, METH_NOARGS, "Flush, write the trailer, fsync and close."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Writer_getset[] = {
    {"events_written", Writer_get_events, nullptr, "Number of events written.", nullptr},
    {"closed", Writer_get_closed, nullptr, "True once closed.", nullptr},
    {"path", Writer_get_path, nullptr, "Path of the recording.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ================================================================== reader

struct ReaderCore {
    int fd = -1;
    Py_buffer view{};
    bool has_view = false;
    uint64_t size = 0;
    std::vector<uint8_t> frame_buf;
    uint64_t next_off = 0;     // offset of the next frame header
    uint64_t frames = 0;       // data frames loaded
    uint64_t cur_frame = 0;    // index of the frame being decoded
    Decoder dec;
    uint64_t events = 0;
    uint64_t cur_thread = 0;
    uint64_t last_thread = 0;
    long long last_offset = -1;
    long long last_frame = -1;
    bool finished = false;
    unsigned major = 0, minor = 0;
    bool busy = false;

    ~ReaderCore() {
        if (fd >= 0) close(fd);
    }
};

struct ReaderObject {
    PyObject_HEAD
    ReaderCore* core;
    PyObject* path;  // str used in messages
    PyObject* decoders;
    PyObject* on_bind;
    PyObject* handle_type;
    PyObject* header;
    PyObject* failure;
    PyObject* weakrefs;
};

PyObject* Reader_new(PyTypeObject* type, PyObject*, PyObject*) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    self->core = new (std::nothrow) ReaderCore;
    if (!self->core) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return reinterpret_cast<PyObject*>(self);
}

// Read exactly n bytes at off into dst (file) or return a pointer (memory).
const uint8_t* reader_fetch(ReaderObject* self, uint64_t off, size_t n, std::vector<uint8_t>& dst) {
    ReaderCore* r = self->core;
    static const uint8_t empty = 0;
    if (n == 0) return &empty;
    if (r->has_view) return static_cast<const uint8_t*>(r->view.buf) + off;
    try {
        dst.resize(n);
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return nullptr;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k;
        Py_BEGIN_ALLOW_THREADS
        k = pread(r->fd, dst.data() + got, n - got, off_t(off + got));
        Py_END_ALLOW_THREADS
        if (k < 0) {
            if (errno == EINTR) continue;
            os_error(errno, self->path);
            return nullptr;
        }
        if (k == 0) {
            raise_stream(TruncatedError, self->path, (long long)(off + got),
                         "the file shrank while it was being read (offset %llu): the recording "
                         "was interrupted",
                         (unsigned long long)(off + got));
            return nullptr;
        }
        got += size_t(k);
    }
    return dst.data();
}

// Read the frame at r->next_off.  Returns the payload and its kind; nullptr on error.
const uint8_t* reader_frame(ReaderObject* self, uint8_t* kind, size_t* plen, bool header) {
    ReaderCore* r = self->core;
    uint64_t off = r->next_off;
    uint64_t left = r->size - off;
    unsigned long long uoff = (unsigned long long)off;
    if (left < FRAME_HEADER) {
        if (header)
            raise_stream(TruncatedError, self->path, (long long)off,
                         "the header frame at offset %llu is incomplete (the file ends at offset "
                         "%llu): the recording was interrupted",
                         uoff, (unsigned long long)r->size);
        else if (left == 0)
            raise_stream(TruncatedError, self->path, (long long)off,
                         "the recording ends at offset %llu after %llu events without its "
                         "trailer: the recording was interrupted (the writer did not close it)",
                         uoff, (unsigned long long)r->events);
        else
            raise_stream(TruncatedError, self->path, (long long)off,
                         "the frame header at offset %llu is incomplete (the file ends at offset "
                         "%llu), after %llu events: the recording was interrupted",
                         uoff, (unsigned long long)r->size, (unsigned long long)r->events);
        return nullptr;
    }
    std::vector<uint8_t> hbuf;
    const uint8_t* h = reader_fetch(self, off, FRAME_HEADER, hbuf);
    if (!h) return nullptr;
    uint32_t hcrc = crc32c(0, h, 9);
    if (hcrc != get_le32(h + 9)) {
        raise_stream(CorruptError, self->path, (long long)off,
                     "corrupt frame header at offset %llu: expected header checksum 0x%08x, "
                     "found 0x%08x",
                     uoff, hcrc, get_le32(h + 9));
        return nullptr;
    }
    uint8_t k = h[0];
    uint32_t n = get_le32(h + 1);
    uint32_t want = get_le32(h + 5);
    bool kind_ok = header ? k == FRAME_HEADER_KIND : (k == FRAME_DATA || k == FRAME_END);
    if (!kind_ok) {
        raise_stream(CorruptError, self->path, (long long)off,
                     "corrupt frame at offset %llu: expected a %s frame, found kind 0x%02x", uoff,
                     header ? "header" : "data or end", k);
        return nullptr;
    }
    if (uint64_t(n) > left - FRAME_HEADER) {
        raise_stream(TruncatedError, self->path, (long long)off,
                     "the frame at offset %llu declares %u bytes but only %llu remain, after %llu "
                     "events: the recording was interrupted",
                     uoff, n, (unsigned long long)(left - FRAME_HEADER),
                     (unsigned long long)r->events);
        return nullptr;
    }
    uint8_t hcopy[5];
    memcpy(hcopy, h, 5);
    const uint8_t* payload = reader_fetch(self, off + FRAME_HEADER, n, r->frame_buf);
    if (!payload) return nullptr;
    uint32_t got = crc32c(crc32c(0, hcopy, 5), payload, n);
    if (got != want) {
        raise_stream(CorruptError, self->path, (long long)off,
                     "corrupt frame at offset %llu: expected checksum 0x%08x, computed 0x%08x", uoff,
                     want, got);
        return nullptr;
    }
    *kind = k;
    *plen = n;
    return payload;
}

// Load the next data frame into the decoder.  1: loaded, 0: end of recording, -1: error.
int reader_next_frame(ReaderObject* self) {
    ReaderCore* r = self->core;
    uint8_t kind;
    size_t n;
    uint64_t off = r->next_off;
    const uint8_t* payload = reader_frame(self, &kind, &n, false);
    if (!payload) return -1;
    r->next_off = off + FRAME_HEADER + n;
    if (kind == FRAME_DATA) {
        r->dec.base = r->dec.p = payload;
        r->dec.end = payload + n;
        r->dec.base_off = off + FRAME_HEADER;
        r->cur_frame = r->frames++;
        return 1;
    }
    unsigned long long uoff = (unsigned long long)off;
    if (n != TRAILER_SIZE || memcmp(payload + 16, END_MARKER, 8) != 0) {
        raise_stream(CorruptError, self->path, (long long)off,
                     "corrupt trailer at offset %llu: expected %zu bytes ending with the end "
                     "marker",
                     uoff, TRAILER_SIZE);
        return -1;
    }
    uint64_t ev = get_le64(payload), fr = get_le64(payload + 8);
    if (ev != r->events || fr != r->frames) {
        raise_stream(CorruptError, self->path, (long long)off,
                     "corrupt trailer at offset %llu: expected %llu events in %llu frames, read "
                     "%llu events in %llu frames",
                     uoff, (unsigned long long)ev, (unsigned long long)fr,
                     (unsigned long long)r->events, (unsigned long long)r->frames);
        return -1;
    }
    if (r->next_off != r->size) {
        raise_stream(CorruptError, self->path, (long long)r->next_off,
                     "corrupt recording: expected the end of the file after the trailer at offset "
                     "%llu, found %llu more bytes",
                     (unsigned long long)r->next_off, (unsigned long long)(r->size - r->next_off));
        return -1;
    }
    r->finished = true;
    return 0;
}

int Reader_init(PyObject* op, PyObject* args, PyObject* kwds) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    static const char* kwlist[] = {"source", "name", "decoders", "on_bind", "handle_type", nullptr};
    PyObject *source, *name, *decoders, *on_bind, *handle_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OUO!OO", const_cast<char**>(kwlist), &source,
                                     &name, &PyDict_Type, &decoders, &on_bind, &handle_type))
        return -1;
    ReaderCore* r = self->core;
    if (r->fd >= 0 || r->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "Reader.__init__ called twice");
        return -1;
    }
    Py_INCREF(name);
    Py_XSETREF(self->path, name);
    Py_INCREF(decoders);
    Py_XSETREF(self->decoders, decoders);
    Py_INCREF(on_bind);
    Py_XSETREF(self->on_bind, on_bind);
    Py_INCREF(handle_type);
    Py_XSETREF(self->handle_type, handle_type);
    r->dec.decoders = decoders;
    r->dec.path = self->path;

    if (PyObject_CheckBuffer(source)) {
        if (PyObject_GetBuffer(source, &r->view, PyBUF_SIMPLE) < 0) return -1;
        r->has_view = true;
        r->size = uint64_t(r->view.len);
    } else {
        PyObject* fspath = nullptr;
        if (!PyUnicode_FSConverter(source, &fspath)) return -1;
        int fd;
        Py_BEGIN_ALLOW_THREADS
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        fd = open(PyBytes_AS_STRING(fspath), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        Py_END_ALLOW_THREADS
        Py_DECREF(fspath);
        if (fd < 0) {
            os_error(errno, source);
            return -1;
        }
        r->fd = fd;
        struct stat st;
        if (fstat(fd, &st) < 0) {
            os_error(errno, source);
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            raise_stream(NotARecordingError, self->path, 0, "not a regular file");
            return -1;
        }
        r->size = uint64_t(st.st_size);
    }
    std::vector<uint8_t> pre;
    size_t have = size_t(std::min<uint64_t>(r->size, 12));
    if (have == 0) {
        raise_stream(NotARecordingError, self->path, 0, "the file is empty: not a Retrace recording");
        return -1;
    }
    const uint8_t* p = reader_fetch(self, 0, have, pre);
    if (!p) return -1;
    size_t cmp = std::min<size_t>(have, 8);
    if (memcmp(p, MAGIC, cmp) != 0) {
        raise_stream(NotARecordingError, self->path, 0,
                     "not a Retrace recording: expected the magic number 89 52 54 52 43 0D 0A 1A "
                     "at offset 0");
        return -1;
    }
    if (have < 12) {
        raise_stream(TruncatedError, self->path, (long long)have,
                     "the file ends at offset %zu inside its header: the recording was "
                     "interrupted",
                     have);
        return -1;
    }
    r->major = unsigned(p[8]) | unsigned(p[9]) << 8;
    r->minor = unsigned(p[10]) | unsigned(p[11]) << 8;
    if (r->major != VERSION_MAJOR) {
        raise_stream(UnsupportedVersionError, self->path, 8,
                     "the recording uses format version %u.%u, but this reader supports version "
                     "%u.x (%u.%u)",
                     r->major, r->minor, VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR);
        return -1;
    }
    r->next_off = 12;
    uint8_t kind;
    size_t n;
    const uint8_t* hp = reader_frame(self, &kind, &n, true);
    if (!hp) return -1;
    Decoder hdec;
    hdec.path = self->path;
    hdec.base = hdec.p = hp;
    hdec.end = hp + n;
    hdec.base_off = r->next_off + FRAME_HEADER;
    PyObject* header = hdec.decode();
    if (!header) return -1;
    if (hdec.p != hdec.end || !PyDict_CheckExact(header)) {
        Py_DECREF(header);
        raise_stream(CorruptError, self->path, (long long)hdec.base_off,
                     "corrupt header at offset %llu: expected exactly one dict",
                     (unsigned long long)hdec.base_off);
        return -1;
    }
    Py_XSETREF(self->header, header);
    r->next_off += FRAME_HEADER + n;
    r->dec.base = r->dec.p = r->dec.end = nullptr;
    return 0;
}

bool reader_bind(ReaderObject* self, uint64_t tid) {
    ReaderCore* r = self->core;
    uint64_t h = r->dec.next_handle;
    PyObject* obj;
    if (self->on_bind != Py_None) {
        obj = PyObject_CallFunction(self->on_bind, "KK", (unsigned long long)h, (unsigned long long)tid);
    } else {
        obj = PyObject_CallFunction(self->handle_type, "K", (unsigned long long)h);
    }
    if (!obj) return false;
    try {
        r->dec.handles.emplace(h, obj);
    } catch (const std::bad_alloc&) {
        Py_DECREF(obj);
        PyErr_NoMemory();
        return false;
    }
    r->dec.next_handle++;
    return true;
}

// Next value event, or nullptr (with no exception at the end of the recording).
PyObject* reader_next(ReaderObject* self) {
    ReaderCore* r = self->core;
    Decoder& d = r->dec;
    for (;;) {
        if (d.p >= d.end) {
            if (r->finished) return nullptr;
            int k = reader_next_frame(self);
            if (k <= 0) return nullptr;
            continue;
        }
        const uint8_t* at = d.p;
        uint8_t op = *at;
        if (op == OP_THREAD) {
            d.p++;
            uint64_t tid;
            if (!d.varint(&tid, at)) return nullptr;
            r->cur_thread = tid;
            continue;
        }
        if (op == OP_BIND) {
            d.p++;
            if (!reader_bind(self, r->cur_thread)) return nullptr;
            continue;
        }
        if (op == OP_DEAD) {
            d.p++;
            uint64_t h;
            if (!d.varint(&h, at)) return nullptr;
            auto it = d.handles.find(h);
            if (it == d.handles.end())
                return d.corrupt_at(at, "expected a bound handle to announce dead, found handle %llu",
                                    (unsigned long long)h);
            PyObject* o = it->second;
            d.handles.erase(it);
            Py_DECREF(o);
            continue;
        }
        PyObject* v = d.decode();
        d.reset_memo();
        if (!v) return nullptr;
        r->last_offset = d.offset(at);
        r->last_frame = (long long)r->cur_frame;
        r->last_thread = r->cur_thread;
        r->events++;
        return v;
    }
}

PyObject* reader_guarded_next(ReaderObject* self) {
    if (self->failure) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(self->failure)), self->failure);
        return nullptr;
    }
    ReaderCore* r = self->core;
    if (r->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is already reading (re-entrant call)");
        return nullptr;
    }
    if (!r->has_view && r->fd < 0) {
        if (r->finished) return nullptr;
        raise_stream(StreamError, self->path, -1, "the reader is closed");
        return nullptr;
    }
    r->busy = true;
    PyObject* v;
    try {
        v = reader_next(self);
    } catch (const std::bad_alloc&) {
        v = PyErr_NoMemory();
    }
    r->busy = false;
    if (!v && PyErr_Occurred() && PyErr_ExceptionMatches(StreamError)) {
        PyObject *t, *val, *tb;
        PyErr_Fetch(&t, &val, &tb);
        PyErr_NormalizeException(&t, &val, &tb);
        if (tb && val) PyException_SetTraceback(val, tb);
        Py_XINCREF(val);
        Py_XSETREF(self->failure, val);
        PyErr_Restore(t, val, tb);
    }
    return v;
}

PyObject* Reader_iternext(PyObject* op) { return reader_guarded_next(reinterpret_cast<ReaderObject*>(op)); }

// (thread, value) for Python; steals the reference to `v`.
PyObject* thread_and_value(uint64_t thread, PyObject* v) {
    PyObject* tid = PyLong_FromUnsignedLongLong(thread);
    if (!tid) {
        Py_DECREF(v);
        return nullptr;
    }
    PyObject* t = PyTuple_Pack(2, tid, v);
    Py_DECREF(tid);
    Py_DECREF(v);
    return t;
}

PyObject* Reader_next_event(PyObject* op, PyObject*) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    PyObject* v = reader_guarded_next(self);
    if (!v) {
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    return thread_and_value(self->core->last_thread, v);
}

// fill_log(log, min_kind, max_kind): append events shaped (kind, thread, *fields) -- kind an
// int in [min_kind, max_kind], thread the event's own thread, at most max_fields fields -- to
// the EventLog; return (thread, value) of the first other event, None at the end.
PyObject* Reader_fill_log(PyObject* op, PyObject* const* args, Py_ssize_t nargs) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fill_log(log, min_kind, max_kind)");
        return nullptr;
    }
    long lo = PyLong_AsLong(args[1]);
    if (lo == -1 && PyErr_Occurred()) return nullptr;
    long hi = PyLong_AsLong(args[2]);
    if (hi == -1 && PyErr_Occurred()) return nullptr;
    const RetraceEventLogAPI* api = log_api();
    if (!api || !check_log(api, args[0])) return nullptr;
    PyObject* log = args[0];
    for (;;) {
        PyObject* v = reader_guarded_next(self);
        if (!v) {
            if (PyErr_Occurred()) return nullptr;
            Py_RETURN_NONE;
        }
        uint64_t thread = self->core->last_thread;
        if (PyTuple_CheckExact(v) && PyTuple_GET_SIZE(v) >= 2 &&
            PyTuple_GET_SIZE(v) <= 2 + api->max_fields && PyLong_CheckExact(PyTuple_GET_ITEM(v, 0)) &&
            PyLong_CheckExact(PyTuple_GET_ITEM(v, 1))) {
            int overflow = 0;
            long kind = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(v, 0), &overflow);
            long long tag = overflow ? -1 : PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(v, 1), &overflow);
            if (PyErr_Occurred()) {
                Py_DECREF(v);
                return nullptr;
            }
            if (!overflow && kind >= lo && kind <= hi && tag >= 0 && uint64_t(tag) == thread) {
                int n = int(PyTuple_GET_SIZE(v) - 2);
                int rc = api->append(log, kind, tag, n, reinterpret_cast<PyTupleObject*>(v)->ob_item + 2);
                Py_DECREF(v);
                if (rc < 0) return nullptr;
                continue;
            }
        }
        return thread_and_value(thread, v);
    }
}

PyObject* Reader_bound(PyObject* op, PyObject* arg) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    unsigned long long h = PyLong_AsUnsignedLongLong(arg);
    if (h == (unsigned long long)-1 && PyErr_Occurred()) return nullptr;
    auto it = self->core->dec.handles.find(h);
    if (it == self->core->dec.handles.end()) {
        PyErr_Format(PyExc_KeyError, "handle %llu is not bound", h);
        return nullptr;
    }
    return Py_NewRef(it->second);
}

void reader_release_source(ReaderCore* r) {
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    if (r->has_view) {
        PyBuffer_Release(&r->view);
        r->has_view = false;
    }
    r->dec.p = r->dec.end = nullptr;
}

PyObject* Reader_close(PyObject* op, PyObject*) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    if (self->core->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot close the reader while it is reading");
        return nullptr;
    }
    reader_release_source(self->core);
    Py_RETURN_NONE;
}

int Reader_traverse(PyObject* op, visitproc visit, void* arg) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->decoders);
    Py_VISIT(self->on_bind);
    Py_VISIT(self->handle_type);
    Py_VISIT(self->header);
    Py_VISIT(self->failure);
    if (self->core) {
        for (auto& kv : self->core->dec.handles) Py_VISIT(kv.second);
        for (PyObject* d : self->core->dec.type_decoders) Py_VISIT(d);
    }
    return 0;
}

int Reader_clear(PyObject* op) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    if (self->core) {
        self->core->dec.decoders = nullptr;
        auto handles = std::move(self->core->dec.handles);
        self->core->dec.handles.clear();
        for (auto& kv : handles) Py_DECREF(kv.second);
        auto decoders = std::move(self->core->dec.type_decoders);
        self->core->dec.type_decoders.clear();
        for (PyObject* d : decoders) Py_DECREF(d);
    }
    Py_CLEAR(self->decoders);
    Py_CLEAR(self->on_bind);
    Py_CLEAR(self->handle_type);
    Py_CLEAR(self->header);
    Py_CLEAR(self->failure);
    return 0;
}

void Reader_dealloc(PyObject* op) {
    ReaderObject* self = reinterpret_cast<ReaderObject*>(op);
    PyTypeObject* tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakrefs) PyObject_ClearWeakRefs(op);
    Reader_clear(op);
    if (self->core) {
        reader_release_source(self->core);
        delete self->core;
        self->core = nullptr;
    }
    Py_CLEAR(self->path);
    tp->tp_free(op);
    Py_DECREF(tp);
}

PyObject* Reader_get_header(PyObject* op, void*) {
    PyObject* h = reinterpret_cast<ReaderObject*>(op)->header;
    return Py_NewRef(h ? h : Py_None);
}
PyObject* Reader_get_version(PyObject* op, void*) {
    ReaderCore* r = reinterpret_cast<ReaderObject*>(op)->core;
    return Py_BuildValue("(II)", r->major, r->minor);
}
PyObject* Reader_get_thread(PyObject* op, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<ReaderObject*>(op)->core->last_thread);
}
PyObject* Reader_get_position(PyObject* op, void*) {
    ReaderCore* r = reinterpret_cast<ReaderObject*>(op)->core;
    if (r->events == 0) Py_RETURN_NONE;
    return Py_BuildValue("(LKL)", r->last_frame, (unsigned long long)(r->events - 1), r->last_offset);
}
PyObject* Reader_get_events(PyObject* op, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<ReaderObject*>(op)->core->events);
}
PyObject* Reader_get_finished(PyObject* op, void*) {
    return PyBool_FromLong(reinterpret_cast<ReaderObject*>(op)->core->finished);
}
PyObject* Reader_get_name(PyObject* op, void*) {
    PyObject* p = reinterpret_cast<ReaderObject*>(op)->path;
    return Py_NewRef(p ? p : Py_None);
}

PyMethodDef Reader_methods[] = {
    {"next_event", Reader_next_event, METH_NOARGS,
     "Return (thread, value) for the next event, or None at the end."},
    {"bound", Reader_bound, METH_O, "Return the object bound to a live handle."},
    {"fill_log", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Reader_fill_log)),
     METH_FASTCALL,
     "fill_log(log, min_kind, max_kind) -> (thread, value) | None: append engine-shaped "
     "events to a utils.EventLog; return the first other event, None at the end."},
    {"close", Reader_close, METH_NOARGS, "Release the file or buffer."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Reader_getset[] = {
    {"header_dict", Reader_get_header, nullptr, "The decoded metadata header.", nullptr},
    {"version", Reader_get_version, nullptr, "(major, minor) format version of the file.", nullptr},
    {"thread", Reader_get_thread, nullptr, "Logical thread of the last event read.", nullptr},
    {"_position", Reader_get_position, nullptr, "(frame, event, offset) of the last event.", nullptr},
    {"events_read", Reader_get_events, nullptr, "Number of events read so far.", nullptr},
    {"finished", Reader_get_finished, nullptr, "True once the trailer has been verified.", nullptr},
    {"name", Reader_get_name, nullptr, "Name of the source used in messages.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// ========================================================== module functions

PyObject* mod_dumps(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "dumps(value, encoders: dict)");
        return nullptr;
    }
    Encoder enc;
    if (!enc.init()) return nullptr;
    enc.encoders = args[1];
    bool ok;
    try {
        ok = enc.reserve(1);
        if (ok) {
            enc.raw_u8(DUMPS_VERSION);
            ok = enc.encode(args[0]);
        }
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        ok = false;
    }
    if (!ok) return nullptr;
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(enc.buf), Py_ssize_t(enc.len));
}

PyObject* mod_loads(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "loads(data, decoders: dict)");
        return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    PyObject* result = nullptr;
    const uint8_t* b = static_cast<const uint8_t*>(view.buf);
    size_t n = size_t(view.len);
    if (n == 0) {
        raise_stream(CorruptError, nullptr, 0, "corrupt data at offset 0: expected a value, found no data");
    } else if (b[0] != DUMPS_VERSION) {
        raise_stream(UnsupportedVersionError, nullptr, 0,
                     "the data uses value encoding %u, but this reader supports encoding %u", b[0],
                     DUMPS_VERSION);
    } else {
        Decoder dec;
        dec.decoders = args[1];
        dec.base = b;
        dec.p = b + 1;
        dec.end = b + n;
        try {
            result = dec.decode();
        } catch (const std::bad_alloc&) {
            result = PyErr_NoMemory();
        }
        if (result && dec.p != dec.end) {
            Py_CLEAR(result);
            dec.corrupt_at(dec.p, "expected the end of the data, found %zu more bytes",
                           size_t(dec.end - dec.p));
        }
    }
    PyBuffer_Release(&view);
    return result;
}

PyObject* mod_crc32c(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "crc32c(data, crc=0)");
        return nullptr;
    }
    unsigned long crc = 0;
    if (nargs == 2) {
        crc = PyLong_AsUnsignedLong(args[1]);
        if (crc == (unsigned long)-1 && PyErr_Occurred()) return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    uint32_t r = crc32c(uint32_t(crc), static_cast<const uint8_t*>(view.buf), size_t(view.len));
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(r);
}

PyObject* mod_crc32c_sw(PyObject*, PyObject* arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return nullptr;
    uint32_t r = crc_sw(0, static_cast<const uint8_t*>(view.buf), size_t(view.len));
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(r);
}

PyObject* mod_flusher_threads(PyObject*, PyObject*) {
    Flusher* f = g_flusher;
    std::lock_guard<std::mutex> lk(f->m);
    return Py_BuildValue("(nO)", Py_ssize_t(f->writers.size()), f->running ? Py_True : Py_False);
}

PyMethodDef module_methods[] = {
    {"dumps", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(mod_dumps)),
     METH_FASTCALL, "dumps(value, encoders) -> bytes"},
    {"loads", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(mod_loads)),
     METH_FASTCALL, "loads(data, decoders) -> value"},
    {"crc32c", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(mod_crc32c)),
     METH_FASTCALL, "crc32c(data, crc=0) -> int (CRC-32C, Castagnoli)"},
    {"_crc32c_software", mod_crc32c_sw, METH_O, "Portable CRC-32C (for tests)."},
    {"_flusher_state", mod_flusher_threads, METH_NOARGS,
     "(registered writers, flusher thread running) — for tests."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef Writer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(WriterObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};
PyMemberDef Reader_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ReaderObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot Writer_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(Writer_new)},
    {Py_tp_init, reinterpret_cast<void*>(Writer_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(Writer_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(Writer_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(Writer_clear)},
    {Py_tp_methods, Writer_methods},
    {Py_tp_getset, Writer_getset},
    {Py_tp_members, Writer_members},
    {Py_tp_doc, const_cast<char*>("Native recording writer (use retracesoftware.stream.Writer).")},
    {0, nullptr},
};
PyType_Spec Writer_spec = {
    "retracesoftware.stream._stream.Writer", sizeof(WriterObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Writer_slots,
};

PyType_Slot Reader_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(Reader_new)},
    {Py_tp_init, reinterpret_cast<void*>(Reader_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(Reader_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(Reader_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(Reader_clear)},
    {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(Reader_iternext)},
    {Py_tp_methods, Reader_methods},
    {Py_tp_getset, Reader_getset},
    {Py_tp_members, Reader_members},
    {Py_tp_doc, const_cast<char*>("Native recording reader (use retracesoftware.stream.Reader).")},
    {0, nullptr},
};
PyType_Spec Reader_spec = {
    "retracesoftware.stream._stream.Reader", sizeof(ReaderObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Reader_slots,
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_stream", "Native core of retracesoftware.stream.", -1, module_methods,
    nullptr, nullptr, nullptr, nullptr,
};

bool load_error(PyObject* errors, const char* name, PyObject** slot) {
    *slot = PyObject_GetAttrString(errors, name);
    return *slot != nullptr;
}

}  // namespace

PyMODINIT_FUNC PyInit__stream(void) {
    crc_init();
#ifdef RETRACE_HAVE_HW_CRC
    __builtin_cpu_init();
    use_hw_crc = __builtin_cpu_supports("sse4.2");
#endif
    static bool atfork_done = false;
    if (!atfork_done) {
        if (pthread_atfork(nullptr, nullptr, atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return nullptr;
        }
        atfork_done = true;
    }
    PyObject* errors = PyImport_ImportModule("retracesoftware.stream._errors");
    if (!errors) return nullptr;
    bool ok = load_error(errors, "StreamError", &StreamError) &&
              load_error(errors, "NotARecordingError", &NotARecordingError) &&
              load_error(errors, "UnsupportedVersionError", &UnsupportedVersionError) &&
              load_error(errors, "TruncatedError", &TruncatedError) &&
              load_error(errors, "CorruptError", &CorruptError) &&
              load_error(errors, "UnsupportedTypeError", &UnsupportedTypeError) &&
              load_error(errors, "UnknownTypeError", &UnknownTypeError);
    Py_DECREF(errors);
    if (!ok) return nullptr;
    PyObject* m = PyModule_Create(&module_def);
    if (!m) return nullptr;
    PyObject* wt = PyType_FromSpec(&Writer_spec);
    if (!wt || PyModule_AddObject(m, "Writer", wt) < 0) {
        Py_XDECREF(wt);
        Py_DECREF(m);
        return nullptr;
    }
    PyObject* rt = PyType_FromSpec(&Reader_spec);
    if (!rt || PyModule_AddObject(m, "Reader", rt) < 0) {
        Py_XDECREF(rt);
        Py_DECREF(m);
        return nullptr;
    }
    if (PyModule_AddIntConstant(m, "VERSION_MAJOR", VERSION_MAJOR) < 0 ||
        PyModule_AddIntConstant(m, "VERSION_MINOR", VERSION_MINOR) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0 ||
        PyModule_AddObject(m, "MAGIC", PyBytes_FromStringAndSize(reinterpret_cast<const char*>(MAGIC), 8)) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
