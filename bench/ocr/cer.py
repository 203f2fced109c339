#!/usr/bin/env python3
"""Character error rate of an OCR text against its ground truth.

    python3 bench/ocr/cer.py REF.txt HYP.txt        prints the CER, edits and reference length

CER = Levenshtein distance (insertions, deletions, substitutions, each 1, over Unicode code
points) between the two texts after whitespace normalisation (every run of whitespace, line
breaks and form feeds included, becomes one space; leading and trailing whitespace goes),
divided by the length of the normalised reference. It can exceed 1 when the hypothesis is much
longer than the reference. No other normalisation: case, punctuation, accents and ligatures count.

Uses rapidfuzz when it is installed (`pip install --user rapidfuzz`); otherwise a pure-Python
bit-parallel algorithm (Myers 1999 / Hyyrö 2003, Python integers as bit vectors), which gives the
same distances and takes a few milliseconds for a 2,500-character page.
"""
import sys

try:
    from rapidfuzz.distance import Levenshtein as _rf
except ImportError:  # pragma: no cover - depends on the machine
    _rf = None

BACKEND = "rapidfuzz" if _rf is not None else "pure Python (bit-parallel)"


def normalise(text):
    return " ".join(text.split())


def levenshtein_py(a, b):
    """Edit distance of the sequences a and b, bit-parallel over a (Hyyrö's form of Myers)."""
    if len(a) < len(b):
        a, b = b, a  # the longer one as the bit vector: fewer loop turns in Python
    m = len(a)
    if m == 0:
        return len(b)
    if not b:
        return m
    peq = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def levenshtein_dp(a, b):
    """The textbook two-row dynamic programme; slow, kept to check the other two."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def levenshtein(a, b):
    if _rf is not None:
        return _rf.distance(a, b)
    return levenshtein_py(a, b)


def cer_counts(ref, hyp):
    """(edits, reference length) after normalisation."""
    r, h = normalise(ref), normalise(hyp)
    return levenshtein(r, h), len(r)


def cer(ref, hyp):
    """The character error rate of hyp against ref (0.0 is perfect)."""
    edits, n = cer_counts(ref, hyp)
    if n == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / n


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        ref = f.read()
    with open(argv[2], encoding="utf-8", errors="replace") as f:
        hyp = f.read()
    edits, n = cer_counts(ref, hyp)
    rate = edits / n if n else float(edits > 0)
    print(f"CER {rate:.4f} ({edits} edits / {n} reference characters; {BACKEND})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
