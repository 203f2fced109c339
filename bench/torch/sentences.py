#!/usr/bin/env python3
"""Print embed_bench's 1,000 short clinical sentences, one per line, in its order.

A copy of `sentences()` in actors/ml/examples/embed_bench.rs (which cannot print them): every
`who` x `what` x `when`, nested in that order, joined by one space. Keep the two in step.

    python3 bench/torch/sentences.py > sentences.txt
"""

WHO = [
    "The patient",
    "A 54-year-old woman",
    "The child",
    "An elderly man",
    "The resident",
    "She",
    "He",
    "The outpatient",
    "The donor",
    "The athlete",
]
WHAT = [
    "reports chest pain radiating to the left arm",
    "has had a productive cough for three days",
    "presents with fever and night sweats",
    "complains of persistent lower back pain",
    "shows elevated blood pressure at 160 over 95",
    "describes shortness of breath on exertion",
    "has a rash on both forearms",
    "reports nausea after starting metformin",
    "has swelling in the right ankle after a fall",
    "mentions fatigue and unexplained weight loss",
]
WHEN = [
    "since this morning.",
    "for two weeks.",
    "after the last chemotherapy cycle.",
    "at night.",
    "despite treatment.",
    "since the surgery.",
    "during the follow-up visit.",
    "on waking.",
    "after meals.",
    "this week.",
]


def sentences() -> list[str]:
    return [f"{a} {b} {c}" for a in WHO for b in WHAT for c in WHEN]


if __name__ == "__main__":
    print("\n".join(sentences()))
