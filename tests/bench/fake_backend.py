"""The fake ChatGPT backend in its own process, for benchmarks and multi-process tests.

    python -m tests.bench.fake_backend --account acc-1=<token> [--deltas 392] [--delta-size 64]
                                       [--exact] [--forget]

prints ``READY <url>`` on stdout once it listens and serves until stdin closes or it is killed.
Running it apart from the load generator keeps the two from sharing one interpreter lock.
``--exact`` sends every answer one SSE event per chunk, uncompressed, as the real backend writes
it, instead of the tests' random coalescing, splitting, keep-alives and gzip (which would make the
proxied path inflate answers the direct one gets plain). ``--forget`` keeps only the last few
requests it received (each with its parsed body, as tests read them): a benchmark sends thousands of
bodies of up to megabytes, which the fake need not hold.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque

from tests.fakes import replies
from tests.fakes.runner import serving
from tests.fakes.upstream import make_upstream
from tests.fakes.upstream_shape import WireShape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--account", action="append", default=[], help="ACCOUNT_ID=ACCESS_TOKEN")
    parser.add_argument("--deltas", type=int, default=3, help="delta events per answer")
    parser.add_argument("--delta-size", type=int, default=None, help="characters per delta")
    parser.add_argument("--exact", action="store_true", help="one event per chunk, never gzip")
    parser.add_argument("--forget", action="store_true", help="remember only the last few requests")
    args = parser.parse_args(argv)
    fake = make_upstream()
    if args.exact:
        fake.wire(WireShape.exact())
    if args.forget:
        fake.requests = deque(maxlen=8)  # type: ignore[assignment]  # appended and iterated only
    for spec in args.account:
        account_id, _, token = spec.partition("=")
        fake.add_account(
            account_id, token, default=replies.ok(deltas=args.deltas, delta_size=args.delta_size)
        )
    with serving(fake.app) as server:
        print(f"READY {server.url}", flush=True)
        sys.stdin.read()  # the parent closes our stdin (or kills us) to stop
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
