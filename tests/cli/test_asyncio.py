"""asyncio: an event loop with sockets, timers and tasks replays identically, with no socket.

The loop's scheduling replays because everything it depends on is recorded: ``loop.time()``
reads the patched ``time.monotonic``, the selector's ``epoll`` object is a replayed proxy whose
``poll`` results come from the recording, and the loop's self-pipe is a recorded socket pair.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import Run
from .test_network import audited, record_replay

__all__ = ["audited"]  # the fixture, re-exported for pytest

STREAMS = """
import asyncio

async def handle(reader, writer):
    line = await reader.readline()
    await asyncio.sleep(0.01)
    writer.write(b"pong " + line)
    await writer.drain()
    writer.close()
    await writer.wait_closed()

async def ticker(n, out):
    for i in range(n):
        await asyncio.sleep(0.003)
        out.append(i)

async def client(port, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping%d\\n" % i)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    order = []
    loop.call_later(0.02, order.append, "call_later")
    loop.call_soon(order.append, "call_soon")
    ticks = []
    tick = asyncio.create_task(ticker(5, ticks))
    replies = await asyncio.gather(*(client(port, i) for i in range(3)))
    done, pending = await asyncio.wait(
        [asyncio.create_task(asyncio.sleep(d, d)) for d in (0.03, 0.001, 0.015)],
        return_when=asyncio.FIRST_COMPLETED,
    )
    print("first:", [t.result() for t in done], len(pending))
    try:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)
    except TimeoutError:
        order.append("timeout")
    await tick
    await asyncio.gather(*pending)
    await asyncio.sleep(0.02)
    print(replies, ticks, order)
    print("loop time advanced:", round(loop.time() - start, 2) > 0)
    server.close()
    await server.wait_closed()

start = 0.0

async def run():
    global start
    start = asyncio.get_running_loop().time()
    await main()

asyncio.run(run())
print("done")
"""


def test_streams_timers_and_tasks(retrace: Run, tmp_path: Path, audited) -> None:
    rec, _ = record_replay(retrace, tmp_path, audited, STREAMS)
    assert "pong ping2" in rec.stdout and "timeout" in rec.stdout


DATAGRAMS = """
import asyncio

class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data.upper(), addr)

class Client(asyncio.DatagramProtocol):
    def __init__(self, done):
        self.done = done

    def datagram_received(self, data, addr):
        self.done.set_result(data)

async def main():
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    done = loop.create_future()
    client, _ = await loop.create_datagram_endpoint(
        lambda: Client(done), remote_addr=("127.0.0.1", port)
    )
    client.sendto(b"hello udp")
    print(await asyncio.wait_for(done, 5))
    client.close()
    server.close()

asyncio.run(main())
"""


def test_datagram_endpoints(retrace: Run, tmp_path: Path, audited) -> None:
    rec, _ = record_replay(retrace, tmp_path, audited, DATAGRAMS)
    assert "HELLO UDP" in rec.stdout


THREADS = """
import asyncio, socket, threading

def work(i):
    return i * i + len(socket.gethostbyname("localhost"))

async def spin(out):
    for i in range(2000):
        await asyncio.sleep(0)
        out.append(i)

async def main():
    loop = asyncio.get_running_loop()
    seen = []

    def worker():
        for i in range(5):
            loop.call_soon_threadsafe(seen.append, i)

    thread = threading.Thread(target=worker)
    thread.start()
    spins = 0
    while len(seen) < 5:
        await asyncio.sleep(0)
        spins += 1
    thread.join()
    print("threadsafe:", seen, spins > 0)
    out = []
    spinner = asyncio.create_task(spin(out))
    results = []
    for i in range(3):  # one job at a time: the executor's single worker runs each
        results.append(await asyncio.to_thread(work, i))
        results.append(len(out))  # how far the spinner got when the job's result arrived
    info = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    await spinner
    print(results, len(info) > 0)

asyncio.run(main())
"""


def test_callbacks_from_other_threads(retrace: Run, tmp_path: Path, audited) -> None:
    rec, _ = record_replay(retrace, tmp_path, audited, THREADS)
    assert "threadsafe: [0, 1, 2, 3, 4]" in rec.stdout
    events = retrace("inspect", "net.retrace")
    assert "asyncio.threadsafe_callbacks" in events.stdout


EXECUTOR_JOBS = """
import asyncio, time

def job(i):
    time.sleep(0.01 * (10 - i))  # later jobs finish first
    return i, round(time.time()) > 0

async def main():
    loop = asyncio.get_running_loop()
    jobs = [loop.run_in_executor(None, job, i) for i in range(4)]
    jobs.append(asyncio.to_thread(job, 9))
    print(await asyncio.gather(*jobs))

asyncio.run(main())
"""


def test_several_executor_jobs_in_flight(retrace: Run, tmp_path: Path, audited) -> None:
    """Which worker takes which job is recorded (the executor's queue hand-offs)."""
    rec, _ = record_replay(retrace, tmp_path, audited, EXECUTOR_JOBS)
    for _ in range(3):
        again = retrace("replay", "net.retrace")
        assert (again.stdout, again.returncode) == (rec.stdout, rec.returncode), again.stderr
