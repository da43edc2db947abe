"""What masking secret values costs the output path, next to passing each line through unchanged.

    .venv/bin/python bench/redaction.py [--lines 1000000] [--secrets 20] [--repeats 3]

A Function printing short lines while it has secrets: every line goes through
secrets_vault.redaction.Redactor.redact before it is stored. Also times preparing
a redactor for 100 values, one of them 64 KB. CPU time, best of the repeats: the
figure is the redactor's own cost, not that of busy neighbour processes.
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from secrets_vault.redaction import Redactor  # noqa: E402


def cpu_seconds(function, lines, repeats):
    def once():
        started = time.process_time()
        for line in lines:
            function(line)
        return time.process_time() - started

    return min(once() for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--secrets", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40))) for _ in range(options.secrets)]
    lines = [f"2026-01-01T00:00:00Z INFO processed item {i} of batch {i % 977} ok" for i in range(options.lines)]
    redact = Redactor(values).redact
    assert redact(f"x {values[3]} y") == "x **** y"

    masked = cpu_seconds(redact, lines, options.repeats)
    baseline = cpu_seconds(str, lines, options.repeats)
    print(f"{options.lines:,} lines, {options.secrets} secrets: redact {masked:.3f} s CPU, "
          f"baseline (str() per line) {baseline:.3f} s, redaction adds {masked - baseline:.3f} s "
          f"({(masked - baseline) / options.lines * 1e6:.2f} µs a line; goal: well under a second)")

    big = "".join(rng.choice("abcdefghij") for _ in range(64 * 1024))
    many = [big] + [f"secret-{i:03d}-{rng.random()}" for i in range(99)]
    started = time.process_time()
    Redactor(many)
    print(f"preparing a redactor for 100 values, one of 64 KB: {(time.process_time() - started) * 1000:.1f} ms CPU")


if __name__ == "__main__":
    main()
