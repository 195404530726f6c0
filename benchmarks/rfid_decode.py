"""Benchmark ``rfid-decode``: tag notices per second through StreamDecoder + decode_notice.

A seeded stream of realistic notices (SGTIN-96 EPCs, a few with 0xBB/0x7E inside, 1 % corrupted
frames and a sprinkle of line garbage) is cut into serial-read-sized chunks and decoded on one
core, with the tag CRC verified as the driver does. Target: >= 50,000 notices/s.

    python -m benchmarks.rfid_decode [--quick] [--no-crc] [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from edge.rfid import codec

NAME = "rfid-decode"
#: Required throughput. Why: 100 readers' worth of the link-capped ~480 notices/s, on one core.
TARGET_NOTICES_PER_S = 50_000.0


def make_stream(n_notices: int, seed: int = 0) -> tuple[list[bytes], int]:
    """Chunks of a reader byte stream and the number of good notices in it."""
    rng = random.Random(seed)
    frames = []
    for i in range(min(n_notices, 2000)):
        epc = bytes.fromhex("30") + rng.randbytes(11)
        if i % 50 == 0:
            epc = epc[:5] + b"\xbb\x7e" + epc[7:]  # the no-escaping trap, on purpose
        notice = codec.make_notice(epc, -rng.randrange(35, 85), codec.pc_for_epc(epc, 0x0400))
        frames.append(codec.encode_notice(notice))
    out = bytearray()
    good = 0
    for i in range(n_notices):
        frame = frames[i % len(frames)]
        if i % 100 == 99:  # corrupted on the line: flip the checksum
            out += frame[:-2] + bytes(((frame[-2] + 1) & 0xFF,)) + frame[-1:]
            continue
        if i % 250 == 0:
            out += b"\x00\x13\x7e"  # line garbage
        out += frame
        good += 1
    chunks = []
    pos = 0
    while pos < len(out):
        size = rng.randrange(32, 1024)  # what a serial read returns under load
        chunks.append(bytes(out[pos : pos + size]))
        pos += size
    return chunks, good


def run(quick: bool = False, seed: int = 0, verify_crc: bool = True) -> dict[str, Any]:
    n_notices = 30_000 if quick else 300_000
    repeats = 1 if quick else 3
    chunks, good = make_stream(n_notices, seed)
    n_bytes = sum(len(c) for c in chunks)
    best = float("inf")
    decoded = rejected = 0
    for _ in range(repeats):
        decoder = codec.StreamDecoder()
        decode = codec.decode_notice
        decoded = 0
        t0 = time.perf_counter()
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                decode(frame, verify_crc)
                decoded += 1
        best = min(best, time.perf_counter() - t0)
        rejected = decoder.rejected
    if decoded != good:
        raise AssertionError(f"decoded {decoded} notices, expected {good}")
    rate = decoded / best
    return {
        "notices": decoded,
        "notices_per_s": round(rate, 1),
        "us_per_notice": round(1e6 * best / decoded, 3),
        "mbytes_per_s": round(n_bytes / best / 1e6, 2),
        "frames_rejected": rejected,
        "verify_crc": verify_crc,
        "target": {"notices_per_s": TARGET_NOTICES_PER_S},
        "target_met": rate >= TARGET_NOTICES_PER_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=NAME, description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller stream, one pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-crc", action="store_true", help="skip the tag CRC check")
    parser.add_argument("--check", action="store_true", help="exit 1 below the target")
    args = parser.parse_args(argv)
    result = run(args.quick, args.seed, verify_crc=not args.no_crc)
    print(json.dumps({"name": NAME, **result}, indent=2))
    return 1 if args.check and not result["target_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
