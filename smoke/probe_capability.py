"""The patched interpreter exposes _retrace, retrace and the native capsule."""

import ctypes
import importlib.util
import sys

from _common import check

check("_retrace" in sys.builtin_module_names, "_retrace is not a builtin module")
check(importlib.util.find_spec("_retrace") is not None, "find_spec('_retrace') is None")

import _retrace  # noqa: E402
import retrace  # noqa: E402

for name in (
    "coordinates",
    "thread_delta",
    "hash",
    "exclude",
    "include",
    "callbacks",
    "call_at",
    "ThreadHandoff",
    "identity_hash",
    "thread_id",
    "main_thread_id",
):
    check(hasattr(retrace, name), f"retrace.{name} is missing")

check(_retrace.ABI_VERSION == 1, f"unexpected ABI version {_retrace.ABI_VERSION}")
check(_retrace.ABI_NAME == "retrace-probe-1", f"unexpected ABI name {_retrace.ABI_NAME}")
wanted = (
    _retrace.PROBE_THREAD_SCHEDULING
    | _retrace.PROBE_COORDINATES
    | _retrace.PROBE_CALL_AT
    | _retrace.PROBE_THREAD_IDS
    | _retrace.PROBE_IDENTITY_HASH
)
check(_retrace.FEATURE_FLAGS & wanted == wanted, "feature flags incomplete")

# Read the capsule the way a native extension would.
get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
get_pointer.restype = ctypes.c_void_p
get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
address = get_pointer(_retrace._C_API, b"_retrace._C_API")
check(address, "capsule pointer is NULL")


class Api(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("feature_flags", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("userdata", ctypes.c_void_p),
        ("set_thread_start_callback", ctypes.c_void_p),
        ("set_thread_yield_callback", ctypes.c_void_p),
        ("set_thread_resume_callback", ctypes.c_void_p),
        ("thread_id", ctypes.PYFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)),
        ("location_hash", ctypes.PYFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)),
    ]


api = Api.from_address(address)
check(api.abi_version == _retrace.ABI_VERSION, "capsule ABI version differs from the module's")
check(api.feature_flags == _retrace.FEATURE_FLAGS, "capsule feature flags differ")
check(api.size == ctypes.sizeof(Api), f"capsule struct size {api.size} != {ctypes.sizeof(Api)}")
check(api.thread_id(None) == retrace.thread_id(), "capsule thread_id() disagrees")

import _thread  # noqa: E402

check(_thread.get_ident() == retrace.thread_id(), "_thread.get_ident() is not the retrace id")
check(retrace.thread_id() == retrace.main_thread_id(), "main thread id is not the seeded id")
print("ok")
