"""A small program whose output depends on the outside world.

It reads the clock, draws random numbers, reads a data file, asks for its process id, host name
and an environment variable, starts worker threads, serves HTTP on an ephemeral local port and
queries that server with ``urllib`` from a thread, and appends to a log file.  Run it twice and
the output differs; record it once with ``retrace record`` and every replay prints exactly the
recorded output, even after the data file has changed.

    python -m retracesoftware.examples.demo DATA_FILE
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.request
import uuid


class QuoteHandler(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /quote`` with a random price and the server's clock."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"path": self.path, "price": round(random.uniform(10, 20), 4), "at": time.time()}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the demo's output short


def fetch(url: str, out: list[str]) -> None:
    """Query the local server from a thread."""
    with urllib.request.urlopen(url, timeout=5) as response:
        quote = json.loads(response.read())
    out.append(f"http:       GET {quote['path']} -> {response.status}, price {quote['price']}")


def worker(n: int, results: dict[int, str], lock: threading.Lock) -> None:
    """Simulate a job of random length and note when it finished."""
    delay = random.uniform(0.001, 0.01)
    time.sleep(delay)
    with lock:
        results[n] = f"job {n}: slept {delay * 1000:.2f} ms, token {os.urandom(3).hex()}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: demo.py DATA_FILE", file=sys.stderr)
        return 2
    data_path = argv[1]
    started = time.perf_counter()
    print(f"now:        {datetime.datetime.now().isoformat(timespec='microseconds')}")
    print(f"time:       {time.time():.6f}")
    print(f"random:     {random.random():.12f} {random.randint(1, 10**6)}")
    print(f"choice:     {random.choice(['red', 'green', 'blue', 'yellow'])}")
    print(f"uuid4:      {uuid.uuid4()}")
    print(f"pid/host:   {os.getpid()} on {socket.gethostname()}")
    print(f"user env:   DEMO_GREETING={os.environ.get('DEMO_GREETING', '(unset)')}")
    with open(data_path, encoding="utf-8") as fh:
        text = fh.read()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"data file:  {len(text.splitlines())} lines, sha256 {digest}")
    print(f"first line: {text.splitlines()[0] if text else '(empty)'}")

    results: dict[int, str] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(n, results, lock)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in sorted(results):
        print(results[n])

    server = http.server.HTTPServer(("127.0.0.1", 0), QuoteHandler)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    fetched: list[str] = []
    port = server.server_address[1]
    client = threading.Thread(target=fetch, args=(f"http://127.0.0.1:{port}/quote", fetched))
    client.start()
    client.join()
    server.shutdown()
    server.server_close()
    serving.join()
    print(f"server:     listening on an ephemeral port ({port})")
    print(*fetched, sep="\n")

    log_path = data_path + ".log"
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"demo ran at {time.time():.6f}\n")
    print(f"elapsed:    {(time.perf_counter() - started) * 1000:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
