"""`python -m bench [--only abcd] [--peer litellm|floor ...] [--profile DIR] [--output PATH] [--tiny]`: see bench/__init__.py."""

import argparse
import sys
from pathlib import Path

from bench import report
from bench.peer import PEERS
from bench.run import SCENARIOS, Bench, Scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Switchboard's benchmarks (make bench).")
    parser.add_argument("--peer", choices=PEERS, action="append", default=[],
                        help="also run the proxy scenarios against this peer (may be repeated)")  # fmt: skip
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample Daphne with py-spy during each scenario; raw profiles go to DIR")  # fmt: skip
    parser.add_argument("--output", type=Path, default=report.RESULTS, help="where the JSON goes")
    parser.add_argument("--only", default=SCENARIOS, metavar="LETTERS",
                        help="run only these scenarios, e.g. --only b or --only cd (to compare two versions)")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="a few streams and messages: checks the harness only")
    arguments = parser.parse_args(argv)
    if not arguments.only or set(arguments.only) - set(SCENARIOS):
        parser.error(f"--only takes letters among {SCENARIOS}")
    bench = Bench(Scale.tiny() if arguments.tiny else Scale(), profile_dir=arguments.profile, only=arguments.only)
    try:
        result = bench.run(peers=tuple(arguments.peer))
    finally:
        bench.cleanup()
    path = report.write(result, arguments.output)
    print()
    print(report.table(result))
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
