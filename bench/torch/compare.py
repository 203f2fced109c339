#!/usr/bin/env python3
"""Cosine, sentence by sentence, between two sets of vectors of the same sentences.

    python compare.py A B [--sentences FILE]

A and B are either .npy arrays (rows in sentence order, as embed.py writes) or JSON lines, one
vector per line (as `careport embed --json` prints). Prints one line,
    COSINE worst W, mean M over N sentences
then, when --sentences is given, the worst sentence on the next line. Fails when the two sets
differ in count or dimension.
"""

import argparse
import json
import sys

import numpy as np


def load(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path).astype(np.float64)
    with open(path, encoding="utf-8") as f:
        return np.array([json.loads(line) for line in f if line.strip()], dtype=np.float64)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--sentences", help="the sentence file, to name the worst one")
    args = p.parse_args()
    a, b = load(args.a), load(args.b)
    if a.ndim != 2 or a.shape != b.shape:
        print(f"shapes differ: {args.a} {a.shape}, {args.b} {b.shape}", file=sys.stderr)
        return 1
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    worst = int(cos.argmin())
    print(
        f"COSINE worst {cos[worst]:.7f}, mean {cos.mean():.7f} over {len(cos)} sentences"
        f" (1 - worst = {1 - cos[worst]:.1e}; largest component difference {np.abs(a - b).max():.1e})"
    )
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as f:
            texts = f.read().splitlines()
        print(f"  worst: #{worst} {texts[worst]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
