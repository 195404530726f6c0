"""Benchmark `ble-parse`: advertisements/s through `edge.ble.frames.parse_advertisement`.

The mix imitates what a scanner in a shop hears: mostly phones' Apple Continuity messages
and other vendors' data (ignored), the store's Eddystone-EID fobs and apps, a few iBeacons
and telemetry frames, and a rare malformed payload, each handled as the edge node does.
Target: >= 100,000 advertisements/s on one core.
"""

from __future__ import annotations

import random
import time

from edge.ble.frames import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID,
    BleFrameError,
    EddystoneEID,
    EddystoneTLM,
    EddystoneUID,
    IBeacon,
    encode_eddystone,
    encode_ibeacon,
    parse_advertisement,
)

NAME = "ble-parse"
TARGET_ADVERTISEMENTS_PER_S = 100_000.0

Advert = tuple[dict[int, bytes], dict[str, bytes]]


def make_mix(n: int, seed: int = 7) -> list[Advert]:
    """``n`` advertisements in bleak's split form, in a typical proportion."""
    rng = random.Random(seed)
    fast_pair = "0000fe2c-0000-1000-8000-00805f9b34fb"

    def one() -> Advert:
        r = rng.random()
        if r < 0.35:  # iPhone "nearby info" / handoff: Apple, not an iBeacon
            return {APPLE_COMPANY_ID: bytes((0x10, 0x05)) + rng.randbytes(5)}, {}
        if r < 0.55:  # the store's customers: Eddystone-EID
            eid = EddystoneEID(rng.randrange(-30, 0), rng.randbytes(8))
            return {}, {EDDYSTONE_SERVICE_UUID: encode_eddystone(eid)}
        if r < 0.65:  # staff badges / legacy fobs: iBeacon
            b = IBeacon(
                "f7826da6-4fa2-4e98-8024-bc5b71e0893e", rng.randrange(65536), rng.randrange(65536), -59
            )
            return {APPLE_COMPANY_ID: encode_ibeacon(b)}, {}
        if r < 0.70:  # telemetry and UID frames from fixed beacons
            f = (
                EddystoneTLM(0, 3000, 21.5, rng.randrange(10**6), 1234.5)
                if r < 0.675
                else (EddystoneUID(-20, "0123456789abcdef0123", rng.randbytes(6).hex()))
            )
            return {}, {EDDYSTONE_SERVICE_UUID: encode_eddystone(f)}
        if r < 0.995:  # other vendors: Microsoft CDP, Samsung, Google Fast Pair, nothing at all
            return rng.choice([
                ({0x0006: rng.randbytes(27)}, {}),
                ({0x0075: rng.randbytes(20)}, {}),
                ({}, {fast_pair: rng.randbytes(3)}),
                ({}, {}),
            ])  # fmt: skip
        return {}, {EDDYSTONE_SERVICE_UUID: bytes((0x30, 0xEC)) + rng.randbytes(5)}  # truncated EID

    return [one() for _ in range(n)]


def _pass(adverts: list[Advert]) -> tuple[int, int]:
    frames = rejects = 0
    for mfr, svc in adverts:
        try:
            frames += len(parse_advertisement(mfr, svc))
        except BleFrameError:
            rejects += 1
    return frames, rejects


def run(quick: bool = False) -> dict:
    n = 20_000 if quick else 200_000
    repeats = 1 if quick else 5
    adverts = make_mix(n)
    best = float("inf")
    frames = rejects = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        frames, rejects = _pass(adverts)
        best = min(best, time.perf_counter() - t0)
    rate = n / best
    return {
        "advertisements": n,
        "advertisements_per_s": round(rate, 1),
        "frames_per_s": round(frames / best, 1),
        "us_per_advertisement": round(1e6 * best / n, 3),
        "frames_per_advertisement": round(frames / n, 3),
        "rejects_per_advertisement": round(rejects / n, 4),
        "target": {"advertisements_per_s": TARGET_ADVERTISEMENTS_PER_S},
        "target_met": rate >= TARGET_ADVERTISEMENTS_PER_S,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps({"name": NAME, **run(quick="--quick" in sys.argv)}, indent=2))
