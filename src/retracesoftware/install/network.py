"""Network adapters: sockets, TLS and ``socketserver`` loops as crossings.

``network.toml`` names the plain functions (``getaddrinfo``, ``select.select``,
``select.epoll``...).  What a TOML list cannot express lives here:

* ``socket`` — patches ``_socket.socket`` in place: every C method and attribute (``_accept``
  included) becomes a crossing, so a replayed program never creates, connects or reads a real
  socket.  The ``*_into`` methods, which fill a buffer the program owns, are replaced by Python
  methods that call the recorded ``recv``/``recvfrom``/``recvmsg`` and copy the bytes into the
  buffer (the engine does not replay writes into lent buffers).  ``socket.sendfile`` always
  takes its ``send`` fallback, so ``os.sendfile`` never sees a replayed descriptor.
* ``selectors`` — the selector classes create their ``poll``/``epoll`` objects through the
  patched ``select`` functions, so those objects are replayed proxies too.
* ``ssl`` — ``_ssl._SSLContext._wrap_socket``/``_wrap_bio`` become crossings: the TLS object
  they return is a proxy whose handshake, reads and writes are recorded (no handshake happens on
  replay).  ``SSLSocket.read``/``SSLObject.read`` with a buffer read through the recorded
  ``read(n)`` and copy.
* ``socketserver`` — the shutdown flag that ``BaseServer.serve_forever`` polls is set by another
  thread with no crossing in between; its reads are recorded so that the replayed loop stops at
  the same iteration as the recorded one.
"""

from __future__ import annotations

import types

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .patching import Installation

__all__ = ["selectors_adapter", "socket_adapter", "socketserver_adapter", "ssl_adapter"]

#: ``_socket.socket`` methods replaced by Python code instead of crossings.
_INTO_METHODS = ("recv_into", "recvfrom_into", "recvmsg_into")
#: Private C methods that reach the network.
_PRIVATE_SOCKET_METHODS = ("_accept",)


def _writable_view(buffer: Any) -> memoryview:
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("a writable bytes-like object is required")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _size(view: memoryview, nbytes: int) -> int:
    if nbytes < 0:
        raise ValueError("negative buffersize in recv_into")
    if nbytes > view.nbytes:
        raise ValueError("buffer too small for requested bytes")
    return nbytes or view.nbytes


def socket_adapter(install: Installation) -> None:
    """Patch ``_socket.socket`` (see the module docstring)."""
    import _socket
    import socket

    cls = _socket.socket
    system = install.system
    names = [
        n
        for n, v in cls.__dict__.items()
        if (not n.startswith("_") or n == "__init__" or n in _PRIVATE_SOCKET_METHODS)
        and n not in _INTO_METHODS
        and callable(getattr(v, "__get__", None))
        and not isinstance(v, (staticmethod, classmethod))
    ]
    system.patch_type(cls, names)
    install.patched.append("_socket.socket")

    def recv(sock: Any, n: int, flags: int) -> Any:
        return cls.recv(sock, n, flags)  # looked up at call time: the crossing

    def recv_into(self: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = _writable_view(buffer)
        data = recv(self, _size(view, nbytes), flags)
        view[: len(data)] = data
        return len(data)

    def recvfrom_into(self: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = _writable_view(buffer)
        data, address = cls.recvfrom(self, _size(view, nbytes), flags)
        view[: len(data)] = data
        return len(data), address

    def recvmsg_into(
        self: Any, buffers: Any, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[int, Any, int, Any]:
        views = [_writable_view(b) for b in buffers]
        total = sum(v.nbytes for v in views)
        data, ancdata, msg_flags, address = cls.recvmsg(self, total, ancbufsize, flags)
        offset = 0
        for view in views:
            chunk = data[offset : offset + view.nbytes]
            view[: len(chunk)] = chunk
            offset += len(chunk)
        return len(data), ancdata, msg_flags, address

    replacements = {
        "recv_into": recv_into,
        "recvfrom_into": recvfrom_into,
        "recvmsg_into": recvmsg_into,
    }
    for name, fn in replacements.items():
        if name in cls.__dict__:
            original = cls.__dict__[name]
            fn.__name__ = name
            fn.__qualname__ = f"socket.{name}"
            fn.__doc__ = original.__doc__
            install._set_type(cls, name, fn)

    giveup = getattr(socket, "_GiveupOnSendfile", None)
    if giveup is not None and "_sendfile_use_sendfile" in socket.socket.__dict__:

        def _sendfile_use_sendfile(self: Any, file: Any, offset: int = 0, count: Any = None) -> Any:
            raise giveup("os.sendfile is not used while Retrace is installed")

        install._set_type(socket.socket, "_sendfile_use_sendfile", _sendfile_use_sendfile)


def selectors_adapter(install: Installation) -> None:
    """Make the ``selectors`` classes build their poll objects through the crossings.

    ``EpollSelector`` and friends keep ``select.epoll`` (etc.) in a class attribute bound at
    import, which the module-level patch of ``select`` does not reach.
    """
    import select
    import selectors

    for cls_name, fn_name in (
        ("PollSelector", "poll"),
        ("EpollSelector", "epoll"),
        ("DevpollSelector", "devpoll"),
    ):
        cls = getattr(selectors, cls_name, None)
        if cls is None or not hasattr(select, fn_name):
            continue
        crossing = install.system.patch_function(select, fn_name, key=f"select.{fn_name}")
        install._set_type(cls, "_selector_cls", staticmethod(crossing))


def ssl_adapter(install: Installation) -> None:
    """Make TLS objects recorded proxies (see the module docstring)."""
    import _ssl
    import ssl

    system = install.system
    context = _ssl._SSLContext
    private = [n for n in ("_wrap_socket", "_wrap_bio") if n in context.__dict__]
    system.patch_type(context, private)
    install.patched.extend(f"_ssl._SSLContext.{n}" for n in private)

    for owner in (ssl.SSLSocket, ssl.SSLObject):
        original = owner.__dict__.get("read")
        if original is None:
            continue
        install._set_type(owner, "read", _buffered_read(original))


_len = len  # ``read`` below has a parameter called ``len`` (the stdlib's signature)


def _buffered_read(original: Any) -> Any:
    """``read(len, buffer)`` that reads through ``read(len)`` and copies into *buffer*."""

    def read(self: Any, len: int = 1024, buffer: Any = None) -> Any:
        if buffer is None:
            return original(self, len)
        view = _writable_view(buffer)
        size = len if 0 < len <= view.nbytes else view.nbytes
        data = original(self, size)
        if not data:
            return 0
        view[: _len(data)] = data
        return _len(data)

    read.__name__ = "read"
    read.__qualname__ = getattr(original, "__qualname__", "read")
    read.__doc__ = original.__doc__
    return read


_SHUTDOWN_FLAG = "_BaseServer__shutdown_request"
_SHUTDOWN_STORE = "_retrace_shutdown_request"


def _shutdown_requested(server: Any) -> bool:
    return bool(server.__dict__.get(_SHUTDOWN_STORE, False))


#: Owner of the ``socketserver.shutdown_requested`` crossing.
calls = types.SimpleNamespace(shutdown_requested=_shutdown_requested)


def socketserver_adapter(install: Installation) -> None:
    """Record the reads of ``BaseServer``'s shutdown flag (see the module docstring)."""
    import socketserver

    install.system.patch_function(
        calls, "shutdown_requested", key="socketserver.shutdown_requested"
    )
    install.patched.append("socketserver.shutdown_requested")

    def get(self: Any) -> bool:
        return calls.shutdown_requested(self)

    def set_(self: Any, value: bool) -> None:
        self.__dict__[_SHUTDOWN_STORE] = value

    flag = property(get, set_, doc="BaseServer's shutdown request (reads are recorded)")
    install._set_type(socketserver.BaseServer, _SHUTDOWN_FLAG, flag)
