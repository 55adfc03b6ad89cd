"""Network: record -> take the network away -> replay, and prove replay opens no socket.

Every program runs with a ``sitecustomize`` that installs an audit hook logging the
interpreter's ``socket.*`` audit events (raised by the real C socket functions: creating,
binding, connecting, sending, resolving) to a file.  The recorded run must log some, the replay
none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from retracesoftware import exitcodes

from .conftest import Run, write

SITECUSTOMIZE = """
import os, sys

def _install(path=os.environ.get("NET_AUDIT_LOG"), open_=os.open, write=os.write):
    if not path:
        return
    fd = open_(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def hook(event, args, fd=fd, write=write):
        if event.startswith("socket."):
            write(fd, (event + "\\n").encode())

    sys.addaudithook(hook)

_install()
del _install
"""


@pytest.fixture
def audited(tmp_path: Path) -> dict[str, str]:
    """Environment that makes every Python process log its socket audit events."""
    site = tmp_path / "site"
    site.mkdir()
    write(site / "sitecustomize.py", SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def socket_events(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def record_replay(
    retrace: Run,
    tmp_path: Path,
    audited: dict[str, str],
    source: str,
    *args: str,
    change=None,
):
    """Record *source*, run *change*, replay; assert identical output and no replayed socket."""
    script = write(tmp_path / "prog.py", textwrap.dedent(source))
    rec_log, rep_log = tmp_path / "record.audit", tmp_path / "replay.audit"
    rec = retrace(
        "record", "-o", "net.retrace", "--", str(script), *args,
        env={**audited, "NET_AUDIT_LOG": str(rec_log)},
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    if change is not None:
        change()
    rep = retrace("replay", "net.retrace", env={**audited, "NET_AUDIT_LOG": str(rep_log)})
    assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, rec.returncode)
    assert "socket.__new__" in socket_events(rec_log)  # the hook works: it saw the real run
    assert socket_events(rep_log) == []  # replay made no real socket call at all
    return rec, rep


def test_tcp_udp_socketpair_select_selectors(retrace: Run, tmp_path: Path, audited) -> None:
    rec, _ = record_replay(
        retrace,
        tmp_path,
        audited,
        """
        import select, selectors, socket, threading
        a, b = socket.socketpair()
        a.sendall(b"hello")
        print(b.recv(10))
        buf = bytearray(8)
        a.sendall(b"xyz")
        print(b.recv_into(buf), bytes(buf))
        print(select.select([b], [a], [], 0)[1] == [a])
        srv = socket.create_server(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]

        def serve():
            conn, addr = srv.accept()
            with conn:
                line = conn.makefile("rb").readline()
                conn.sendall(b"echo:" + line)

        t = threading.Thread(target=serve)
        t.start()
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"ping\\n")
        print(c.recv(100), c.getpeername()[1] == port)
        twin = c.dup()
        print(twin.getpeername() == c.getpeername())
        twin.close()
        t.join()
        sel = selectors.DefaultSelector()
        sel.register(b, selectors.EVENT_READ, data="b")
        print(sel.select(0))
        a.send(b"!")
        print([(key.data, events) for key, events in sel.select(1)], b.recv(1))
        sel.close()
        poller = select.poll()
        poller.register(b, select.POLLIN)
        a.send(b"?")
        print(poller.poll(1000))
        print(socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][:2])
        print(socket.gethostbyname("localhost"))
        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u1.bind(("127.0.0.1", 0))
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2.sendto(b"dgram", u1.getsockname())
        data, addr = u1.recvfrom(100)
        print(data, addr == u2.getsockname())
        u2.sendto(b"into", u1.getsockname())
        view = bytearray(10)
        print(u1.recvfrom_into(view)[0], bytes(view))
        for s in (a, b, c, srv, u1, u2):
            s.close()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError as exc:
            print("refused:", exc.errno)
        """,
    )
    assert "echo:ping" in rec.stdout and "refused:" in rec.stdout


HTTP_IN_THREAD = """
import http.client, http.server, json, threading, urllib.request

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
thread.start()
for i in range(3):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/item/{i}", timeout=5) as r:
        print(r.status, r.headers["Content-Type"], r.read())
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
conn.request("GET", "/direct")
print(conn.getresponse().read())
conn.close()
server.shutdown()
server.server_close()
thread.join()
print("done")
"""


def test_http_server_in_a_thread_of_the_program(retrace: Run, tmp_path: Path, audited) -> None:
    rec, _ = record_replay(retrace, tmp_path, audited, HTTP_IN_THREAD)
    assert rec.stdout.count("200 application/json") == 3
    assert '"GET /direct HTTP/1.1" 200' in rec.stderr  # the server's log, replayed too


SERVER = """
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"served {self.path} by a separate process".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_server(tmp_path: Path, source: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    script = write(tmp_path / "server.py", textwrap.dedent(source))
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    assert port.isdigit(), "the server did not start"
    return proc, port


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)


def test_urllib_against_a_separate_process(retrace: Run, tmp_path: Path, audited) -> None:
    proc, port = start_server(tmp_path, SERVER)
    try:
        rec, _ = record_replay(
            retrace,
            tmp_path,
            audited,
            """
            import sys, urllib.request
            url = f"http://127.0.0.1:{sys.argv[1]}/hello"
            with urllib.request.urlopen(url, timeout=5) as response:
                print(response.status, response.read().decode())
            """,
            port,
            change=lambda: stop(proc),  # the server is gone when the replay runs
        )
    finally:
        stop(proc)
    assert "served /hello by a separate process" in rec.stdout


TLS_SERVER = """
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"tls echo: " + tls.recv(1024))
    except OSError:
        pass
"""


def test_ssl_client(retrace: Run, tmp_path: Path, audited) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr.strip()[:200]}")
    proc, port = start_server(tmp_path, TLS_SERVER, str(cert), str(key))

    def change() -> None:
        stop(proc)
        cert.unlink()  # the CA file the client loaded is gone too
        key.unlink()

    try:
        rec, _ = record_replay(
            retrace,
            tmp_path,
            audited,
            """
            import socket, ssl, sys
            context = ssl.create_default_context(cafile=sys.argv[2])
            with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    print(tls.version(), tls.getpeercert()["subject"])
                    tls.sendall(b"secret")
                    buffer = bytearray(100)
                    n = tls.recv_into(buffer)
                    print(bytes(buffer[:n]))
            """,
            port,
            str(cert),
            change=change,
        )
    finally:
        stop(proc)
    assert "tls echo: secret" in rec.stdout


MISMATCH = """
import socket
a, b = socket.socketpair()
a.sendall(PAYLOAD)
EXTRA
print(b.recv(100))
"""


def mismatch(payload: str, extra: str = "") -> str:
    return MISMATCH.replace("PAYLOAD", payload).replace("EXTRA", extra)


@pytest.mark.parametrize(
    ("payload", "extra", "kind"),
    [
        ("b'changed'", "", "values"),  # same call, different bytes sent
        ("b'hello'", "b.settimeout(1)", "function"),  # a socket call the recording lacks
    ],
)
def test_mismatched_socket_events_diverge(
    retrace: Run, tmp_path: Path, payload: str, extra: str, kind: str
) -> None:
    script = tmp_path / "prog.py"
    write(script, mismatch("b'hello'"))
    assert retrace("record", "-o", "m.retrace", "--", str(script)).returncode == 0
    write(script, mismatch(payload, extra))
    rep = retrace("replay", "m.retrace")
    assert rep.returncode == exitcodes.DIVERGED, rep.stderr
    assert f"replay diverged ({kind})" in rep.stderr
    assert "Traceback" not in rep.stderr


@pytest.mark.parametrize("damage", ["rename", "truncate"])
def test_corrupt_socket_events_are_reported(retrace: Run, tmp_path: Path, damage: str) -> None:
    script = write(tmp_path / "prog.py", mismatch("b'hello-hello'"))
    assert retrace("record", "-o", "c.retrace", "--", str(script)).returncode == 0
    path = tmp_path / "c.retrace"
    data = path.read_bytes()
    at = data.find(b"hello-hello")  # the recorded result of recv()
    assert at > 0
    if damage == "rename":  # the recorded recv call's key is overwritten: checksums catch it
        at = data.rfind(b"_socket.socket.recv", 0, at)
        assert at > 0
        path.write_bytes(data[:at] + b"_socket.socket.XXXX" + data[at + 19 :])
        expected = exitcodes.CORRUPT
    else:  # the recording stops in the middle of the recv result
        path.write_bytes(data[: at + 3])
        expected = exitcodes.TRUNCATED
    rep = retrace("replay", "c.retrace")
    assert rep.returncode == expected, rep.stderr
    assert rep.stderr.startswith("retrace:")
    assert "Traceback" not in rep.stderr


def test_demo_with_http_server_replays_identically(tmp_path: Path) -> None:
    """``nox -s demo``'s program: the HTTP server it started is gone when the replay runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    done = subprocess.run(
        [sys.executable, "-m", "retracesoftware.examples.demo_session", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IDENTICAL" in done.stdout
    assert done.stdout.count("http:       GET /quote -> 200") == 3  # record, plain run, replay


def test_mismatch_with_a_server_thread_is_reported_not_hung(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "prog.py", HTTP_IN_THREAD)
    assert retrace("record", "-o", "h.retrace", "--", str(script)).returncode == 0
    write(script, HTTP_IN_THREAD.replace("/item/{i}", "/other/{i}"))  # asks for other pages
    rep = retrace("replay", "h.retrace")  # the fixture's 60 s timeout catches a hang
    assert rep.returncode == exitcodes.DIVERGED, rep.stderr
    assert rep.stderr.splitlines()[-1].startswith("retrace: replay diverged (values)")
