#!/usr/bin/env python3
"""Scores one run of bench/ocr/run.sh and prints its Markdown table (run.sh calls this).

    python3 bench/ocr/report.py --data DIR --work DIR/run --n N [--baseline-jobs 2]

Reads DIR/page-XXX.txt and DIR/text-layer-truth.txt (the truth), WORK/times.tsv (engine, round,
seconds, exit status, pages), WORK/baseline/out-XXX.txt and WORK/careport-*.jsonl (the last
round's outputs; every round reads the same pages, so they are the same each round).

CER per page is bench/ocr/cer.py's (whitespace-normalised Levenshtein / reference length); a
page an engine gave no text for counts as CER 1.0. The table's CER is the mean over pages.
"""
import argparse
import json
import os
import statistics
import sys
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cer  # noqa: E402

AIM_RATIO = 1.2          # careport pages/s over the baseline's, at a CER no worse
AIM_TEXT_LAYER = 100.0   # text-layer PDF pages/s


def load_times(path):
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            engine, rnd, secs, rc, pages = line.rstrip("\n").split("\t")
            runs.setdefault(engine, []).append((int(rnd), float(secs), int(rc), int(pages)))
    return runs


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def load_jsonl(path):
    out = []
    text = read(path)
    if text is None:
        return out
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def score_pages(truths, hyps):
    """truths, hyps: lists of equal length (hyp None for no output). (mean CER, worst, missing)."""
    rates = [cer.cer(t, h or "") for t, h in zip(truths, hyps)]
    missing = sum(h is None for h in hyps)
    return statistics.fmean(rates), max(rates), missing


def score_document(truths, lines, name):
    """A PDF's one JSON line: per page when it has a page for each truth, else as one text."""
    line = next((ln for ln in lines if os.path.basename(str(ln.get("file", ""))) == name), None)
    if line is None:
        return 1.0, 1.0, len(truths), None, "no output"
    pages = sorted(line.get("pages") or [], key=lambda p: p.get("page", 0))
    conf = line.get("mean_confidence")
    if len(pages) == len(truths):
        mean, worst, missing = score_pages(truths, [p.get("text") for p in pages])
        return mean, worst, missing, conf, ""
    whole = cer.cer("\n".join(truths), line.get("text") or "")
    return whole, whole, 0, conf, f"{len(pages)} pages in its output for {len(truths)}: scored as one text"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--baseline-jobs", type=int, default=2)
    args = ap.parse_args()
    n = args.n
    names = [f"page-{i:03d}" for i in range(1, n + 1)]
    truths = [read(os.path.join(args.data, f"{p}.txt")) for p in names]
    if any(t is None for t in truths):
        sys.exit("report.py: ground truth missing in " + args.data)
    tl_truths = read(os.path.join(args.data, "text-layer-truth.txt")).split("\f")
    runs = load_times(os.path.join(args.work, "times.tsv"))

    rows = []  # (key, engine, input, pages, runs, cer mean, worst, confidence, notes)

    # Baseline: tesseract's out-XXX.txt per page.
    hyps = [read(os.path.join(args.work, "baseline", f"out-{p[5:]}.txt")) for p in names]
    mean, worst, missing = score_pages(truths, hyps)
    rows.append(("baseline",
                 f"tesseract CLI, Python way ({args.baseline_jobs} processes, OMP_THREAD_LIMIT=1)",
                 f"{n} PNG files", runs.get("baseline", []), mean, worst, None,
                 f"{missing} pages without output" if missing else ""))

    # careport on the PNGs: one JSON line per file.
    lines = load_jsonl(os.path.join(args.work, "careport-png.jsonl"))
    by_file = {os.path.basename(str(ln.get("file", ""))): ln for ln in lines}
    hyps = [by_file[p + ".png"].get("text") if p + ".png" in by_file else None for p in names]
    mean, worst, missing = score_pages(truths, hyps)
    confs = [ln.get("mean_confidence") for ln in lines if isinstance(ln.get("mean_confidence"), (int, float))]
    rows.append(("careport-png", "careport ocr", f"{n} PNG files", runs.get("careport-png", []),
                 mean, worst, statistics.fmean(confs) if confs else None,
                 f"{missing} pages without output" if missing else ""))

    for key, name, label, tr in (("careport-scanned-pdf", "scanned.pdf", "scanned.pdf (images only)", truths),
                                 ("careport-text-layer-pdf", "text-layer.pdf", "text-layer.pdf", tl_truths)):
        lines = load_jsonl(os.path.join(args.work, key + ".jsonl"))
        mean, worst, missing, conf, note = score_document(tr, lines, name)
        if missing and not note:
            note = f"{missing} pages without text"
        rows.append((key, "careport ocr", label, runs.get(key, []), mean, worst, conf, note))

    def fs(secs):
        return f"{secs:.3f}" if secs < 1 else f"{secs:.2f}"

    def median_secs(rs):
        ok = [s for _, s, rc, _ in rs if rc == 0]
        return statistics.median(ok) if ok else None

    base_runs = runs.get("baseline", [])
    base_secs = median_secs(base_runs)
    base_rate = n / base_secs if base_secs else None
    base_cer = rows[0][4]

    print("| engine | input | pages | seconds (median) | rounds (s) | pages/s | vs baseline pages/s "
          "| CER (mean per page) | worst page CER | mean confidence | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for key, engine, inp, rs, mean, worst, conf, note in rows:
        if not rs:
            print(f"| {engine} | {inp} | | not run | | | | | | | |")
            continue
        pages = rs[0][3]
        secs = median_secs(rs)
        failed = [(r, rc) for r, _, rc, _ in rs if rc != 0]
        if failed:
            err = (read(os.path.join(args.work, key + ".err")) or "").strip().splitlines()
            msg = f"exit {failed[0][1]} in {len(failed)} of {len(rs)} rounds" + (f": {err[0][:160]}" if err else "")
            note = (note + "; " if note else "") + msg.replace("|", "\\|")
        rounds = " / ".join(fs(s) + ("" if rc == 0 else "!") for _, s, rc, _ in sorted(rs))
        if secs is None:
            print(f"| {engine} | {inp} | {pages} | failed | {rounds} | | | | | | {note} |")
            continue
        rate = pages / secs
        ratio = ""
        if key in ("careport-png", "careport-scanned-pdf") and base_rate:
            ratio = f"**{rate / base_rate:.2f}×**"
        elif key == "baseline":
            ratio = "1.00×"
        conf_s = f"{conf:.1f}" if isinstance(conf, (int, float)) else ""
        results[key] = (rate, mean, not failed)
        print(f"| {engine} | {inp} | {pages} | {fs(secs)} | {rounds} | {rate:.2f} | {ratio} "
              f"| {mean:.4f} | {worst:.4f} | {conf_s} | {note} |")
    print()
    print(f"CER: whitespace-normalised Levenshtein distance / reference length ({cer.BACKEND}); "
          "a page without output counts 1.0. `!` marks a round that exited non-zero.")
    print()

    # The aims.
    print("Aims:")
    for key, what in (("careport-png", "PNG pages"), ("careport-scanned-pdf", "scanned PDF")):
        if key in results and base_rate:
            rate, mean, clean = results[key]
            speed_ok = rate / base_rate >= AIM_RATIO
            cer_ok = round(mean, 4) <= round(base_cer, 4)
            verdict = "**met**" if speed_ok and cer_ok and clean else "**not met**"
            print(f"- careport, {what}: {rate / base_rate:.2f}× the baseline's pages/s (aim ≥ {AIM_RATIO}×), "
                  f"CER {mean:.4f} vs the baseline's {base_cer:.4f} (aim: no worse): {verdict}")
        else:
            print(f"- careport, {what}: " + ("failed (see the table)" if runs.get(key) else "not measured"))
    if "careport-text-layer-pdf" in results:
        rate, mean, clean = results["careport-text-layer-pdf"]
        verdict = "**met**" if rate >= AIM_TEXT_LAYER and clean else "**not met**"
        print(f"- careport, text-layer PDF: {rate:.1f} pages/s, process start included "
              f"(aim ≥ {AIM_TEXT_LAYER:.0f}), CER {mean:.4f}: {verdict}")
    else:
        print("- careport, text-layer PDF: "
              + ("failed (see the table)" if runs.get("careport-text-layer-pdf") else "not measured"))

    # A row for bench/README.md's table, to paste (and edit) once the run is a real one.
    n_rounds = max((r for rs in runs.values() for r, _, _, _ in rs), default=0)
    parts = []
    if base_rate:
        parts.append(f"baseline {base_rate:.2f} pages/s, CER {base_cer:.4f}")
    for key, what in (("careport-png", "careport PNG"), ("careport-scanned-pdf", "scanned PDF")):
        if key in results and base_rate:
            rate, mean, _ = results[key]
            parts.append(f"{what} {rate:.2f} pages/s = **{rate / base_rate:.2f}×**, CER {mean:.4f}")
    if "careport-text-layer-pdf" in results:
        parts.append(f"text-layer PDF {results['careport-text-layer-pdf'][0]:.0f} pages/s")
    print()
    print("Row for bench/README.md:")
    print()
    print(f"| OCR, {n} typed A4 pages at 300 dpi: careport `ocr` vs the Python way (tesseract CLI, one "
          f"process per page, {args.baseline_jobs} at a time, `OMP_THREAD_LIMIT=1`), median of "
          f"{n_rounds} alternating rounds | `bash bench/ocr/run.sh {n}` | {'; '.join(parts)} "
          f"| {date.today().isoformat()} |")


if __name__ == "__main__":
    main()
