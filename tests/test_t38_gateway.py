"""Many T.38 calls on one event loop (the short form of bench/test_t38_gateway_bench.py):
10 of our senders to 10 of our receivers over 127.0.0.1 UDP at once, ECM, one fine page
each, line clocks at 4x. Every call ends OK and every page arrives bit for bit; the
endpoints share one deadline heap, and each answers only its own peer. The oracle is the
page sent.
"""

from __future__ import annotations

import asyncio

from fastfax import samples
from fastfax.t30.result import Cause
from fastfax.t30.station import create
from fastfax.t38.sdp import T38Params
from fastfax.t38.terminal import T38Terminal
from fastfax.transport.t38 import run_call

PAIRS = 10
SPEED = 4.0


async def calls(pages) -> list:
    loop = asyncio.get_running_loop()
    params = T38Params(version=0, error_correction="redundancy")

    async def one(k: int):
        bound = loop.create_future()
        rx = T38Terminal(create(calling=False, ecm=True), params=params, speed=SPEED)
        receiving = asyncio.create_task(
            run_call(rx, bind=("127.0.0.1", 0), wait_for_call=30, on_bound=bound.set_result)
        )
        port = (await bound)[1]
        await asyncio.sleep(0.05 * k)
        tx = T38Terminal(create(calling=True, pages=[pages[k]], ecm=True), params=params,
                         speed=SPEED)  # fmt: skip
        sent = await run_call(tx, bind=("127.0.0.1", 0), peer=("127.0.0.1", port), timeout=60)
        return sent, await receiving

    return await asyncio.gather(*(one(k) for k in range(PAIRS)))


def test_ten_pairs_of_calls_on_one_loop_all_bit_exact() -> None:
    pages = [samples.text_page(resolution="fine", seed=k, height=600) for k in range(PAIRS)]
    results = asyncio.run(calls(pages))
    for k, (sent, received) in enumerate(results):
        assert sent.cause is Cause.OK and received.cause is Cause.OK, (k, sent, received)
        assert received.ecm
        assert received.pages == [pages[k]]  # each receiver got its own sender's page
