"""How fast the emulator answers ClientHellos on a Windows profile, enumerated as a scanner
does: per protocol, offer every suite, drop the one chosen, ask again until refused.

    python bench/windows_hellos.py --windows 2012r2 --profile exchange2013 --endpoints 50

The lab runs in its own process (`python -m pop3lab`), as in the benchmark, so client and
server each get a core. Prints hellos/s and fully enumerated endpoints/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time

from scanner._hello import Offer, client_hello, read_answer
from scanner._suites import suites_for
from tests.ports import free_port

# LAB_PROFILER="-m cProfile -o lab.prof" profiles the lab (it stops cleanly on SIGTERM).
PROFILER = os.environ.get("LAB_PROFILER", "").split()
PROTOCOLS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


async def ask(address: str, port: int, offer: Offer) -> int | None:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(client_hello(offer))
        answer = await asyncio.wait_for(read_answer(reader, offer, want_key_exchange=True), 10)
        return answer.suite if answer.protocol == offer.protocol else None
    finally:
        writer.close()


async def enumerate_endpoint(address: str, port: int) -> int:
    """Every suite of every protocol, one hello at a time; returns the hellos sent."""
    sent = 0
    for protocol in PROTOCOLS:
        offered = [suite.code for suite in suites_for(protocol)]
        while offered:
            sent += 1
            chosen = await ask(address, port, Offer(protocol, tuple(offered)))
            if chosen is None:
                break
            offered.remove(chosen)
    return sent


async def main(addresses: list[str], port: int, concurrency: int) -> tuple[int, float]:
    limit = asyncio.Semaphore(concurrency)

    async def one(address: str) -> int:
        async with limit:
            return await enumerate_endpoint(address, port)

    start = time.perf_counter()
    counts = await asyncio.gather(*(one(address) for address in addresses))
    return sum(counts), time.perf_counter() - start


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", default="2012r2")
    parser.add_argument("--profile", default="exchange2013")
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    base = "127.66.0.1"
    lab = subprocess.Popen(
        [sys.executable, *PROFILER, "-m", "pop3lab", "--count", str(args.endpoints), "--base", base,
         "--profile", args.profile, "--windows", args.windows, "--pop3-port", str(free_port()),
         "--pop3s-port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert lab.stdout is not None
        while "ready" not in lab.stdout.readline():
            pass
        from pop3lab.fleet import addresses

        hellos, seconds = asyncio.run(main(addresses(base, args.endpoints), port, args.concurrency))
    finally:
        lab.terminate()
        lab.wait(10)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    lab_cpu = used.ru_utime + used.ru_stime
    print(
        f"{args.windows}: {args.endpoints} endpoints, {hellos} hellos "
        f"({hellos // args.endpoints} each) in {seconds:.2f} s: {hellos / seconds:.0f} hellos/s, "
        f"{args.endpoints / seconds:.1f} endpoints/s; the lab used {lab_cpu:.2f} s of CPU "
        f"(start-up included): {hellos / lab_cpu:.0f} hellos per lab CPU second"
    )


if __name__ == "__main__":
    run()
