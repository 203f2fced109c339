#!/usr/bin/env python3
"""all-MiniLM-L6-v2 with sentence-transformers on CPU torch, timed the way embed_bench times
careport's MiniLM (bench/torch/README.md).

    python embed.py MODEL_DIR SENTENCES [--batch 32 --batch 1] [--threads 1] [--vectors OUT.npy]

MODEL_DIR is careport's model directory (scripts/install-model.sh: config.json, tokenizer.json,
model.safetensors; no sentence-transformers files), so the pipeline is built as the upstream
model defines it: BERT, mean pooling over the attention mask, L2 normalisation, max_seq_length
256 — what actors/ml/src/minilm.rs does. SENTENCES is one sentence per line.

For each --batch, in the order given: warm up on the first batch, then encode every sentence in
consecutive chunks of that size, in file order (embed_bench's method: same chunks, same padding
to each chunk's longest), and print one JSON line:
    {"impl": "torch", "threads": 1, "batch": 32, "sentences": 1000, "seconds": …, "sentences_per_s": …}
--vectors writes the vectors of the first --batch run as a float32 .npy array (rows in file order).
"""

import argparse
import json
import os
import resource
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("sentences")
    p.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 32)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vectors", help="write the first run's vectors here (.npy, float32)")
    args = p.parse_args()
    batches = args.batch or [32]
    threads = str(args.threads)

    # Thread pools are sized when the libraries load: set them before importing torch.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = threads
    # HF tokenizers' batch encoding runs on its own rayon pool; careport tokenizes on the one thread.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Everything is local: never ask the hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import numpy as np
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers 6 (the pinned one)
        from sentence_transformers.base.modules.normalize import Normalize
        from sentence_transformers.base.modules.transformer import Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # older releases
        from sentence_transformers.models import Normalize, Pooling, Transformer

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)

    with open(args.sentences, encoding="utf-8") as f:
        texts = f.read().splitlines()
    if not texts:
        print(f"no sentences in {args.sentences}", file=sys.stderr)
        return 1

    start = time.perf_counter()
    word = Transformer(args.model_dir, max_seq_length=256)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    model = SentenceTransformer(modules=[word, Pooling(dim(), "mean"), Normalize()], device="cpu")
    model.eval()
    load_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "impl": "torch",
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "load_s": round(load_s, 3),
            }
        ),
        flush=True,
    )

    def encode(chunk):
        return model.encode(
            chunk, batch_size=len(chunk), convert_to_numpy=True, show_progress_bar=False
        )

    for n, batch in enumerate(batches):
        encode(texts[:batch])  # warm up
        start = time.perf_counter()
        out = [encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "impl": "torch",
                    "threads": args.threads,
                    "batch": batch,
                    "sentences": len(texts),
                    "seconds": round(seconds, 4),
                    "sentences_per_s": round(len(texts) / seconds, 2),
                    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                }
            ),
            flush=True,
        )
        if n == 0 and args.vectors:
            np.save(args.vectors, np.concatenate(out).astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
