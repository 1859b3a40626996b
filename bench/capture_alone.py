"""The capture alone, for comparison with an idle camd: read the source at its rate, do nothing else.

Prints the CPU it used as JSON. ``--source test`` renders camd's test pattern
(no JPEG encoding); ``--source file:PATH`` reads an MJPEG recording's packets as
they are (passthrough), or decodes them with ``--passthrough off``.

    python -m bench.capture_alone --source test --width 640 --height 480 --fps 30 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from camd.sources import FFmpegSource, Source, TestPatternSource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="test")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--passthrough", default="on", choices=("on", "off"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to run before measuring")
    args = parser.parse_args(argv)
    source: Source
    if args.source == "test":
        source = TestPatternSource(args.width, args.height, args.fps)
    else:
        path = args.source.removeprefix("file:")
        source = FFmpegSource(path, recording=True, passthrough=args.passthrough, fps=args.fps)
    source.open()
    start = time.monotonic() + args.settle
    while time.monotonic() < start:
        source.read()
    before, frames = os.times(), 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        if source.read() is not None:
            frames += 1
    after = os.times()
    source.close()
    cpu = (after.user + after.system) - (before.user + before.system)
    print(json.dumps({"cpu_s": round(cpu, 3), "cpu_pct": round(100 * cpu / args.seconds, 2), "frames": frames}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
