#!/usr/bin/env python3
"""128 longer texts (about 146 tokens each, like a knowledge chunk) for the long-text row of
bench/README.md: each joins 10 of sentences.py's sentences, drawn with a fixed seed.

    python3 bench/torch/long_texts.py > long.txt
    EMBED_BENCH_FILE=long.txt embed_bench MODEL_DIR 1 32       # careport
    python embed.py MODEL_DIR long.txt --threads 1 --batch 32  # torch
"""

import random
import subprocess
import sys
from pathlib import Path

lines = subprocess.run(
    [sys.executable, str(Path(__file__).with_name("sentences.py"))], capture_output=True, text=True, check=True
).stdout.splitlines()
rng = random.Random(7)
for _ in range(128):
    print(" ".join(rng.sample(lines, 10)))
