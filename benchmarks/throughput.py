"""Throughput benchmark: ``python benchmarks/throughput.py [options]`` (same as ``weightinit bench``).

See ``weightinit bench --help`` and docs/performance.md.  Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys

from weightinit.cli import bench as _bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    _bench.add_arguments(parser)
    sys.exit(_bench.run(parser.parse_args()))
