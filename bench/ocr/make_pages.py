#!/usr/bin/env python3
"""Typed A4 pages with ground truth, for the OCR benchmark (bench/ocr/run.sh).

    python3 bench/ocr/make_pages.py N OUTDIR [--text-layer-pages M] [--seed S]

Writes into OUTDIR:

    page-001.png ... page-N.png   each page rasterised by `pdftoppm -r 300 -gray` (A4,
                                  2480 x 3509, 8-bit grey with a 300 dpi pHYs, as an office
                                  scanner gives; anti-aliased, no noise)
    page-001.txt ... page-N.txt   the page's ground truth: its lines joined by "\\n"
    scanned.pdf                   the same N pages, each one Flate 8-bit grey image, no text layer
    text-layer.pdf                M pages (default N) with a Helvetica 11 pt text layer only;
                                  its first N pages are the pages above
    text-layer-truth.txt          the truth of the M text-layer pages, separated by "\\f"

Python's standard library and `pdftoppm` (poppler-utils) only; no PIL. Deterministic: page i
comes from random.Random(seed * 100003 + i), so the same N, seed give the same files (the page
text does not depend on N). The text is made up: a fictitious laboratory, hospital, clinicians
and patients; the phone numbers are in Ofcom's drama range (01632 960xxx).
"""
import argparse
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import zlib

# A4 in points; text set in Helvetica 11 pt, left margin 60 pt.
PAGE_W, PAGE_H = 595, 842
DPI = 300
FONT_SIZE = 11
LEFT = 60
TOP = PAGE_H - 62
LEADING = 17.5
MAX_LINES = 42
MAX_WIDTH = PAGE_W - 2 * LEFT  # points

# Helvetica advance widths (AFM, per 1000 em) for ASCII 32..126; accented letters are measured
# as their base letter. Only used to wrap sentences so no line runs off the page.
_W = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
      556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
      1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
      667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
      333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
      556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584]
_BASE = str.maketrans("ÀÁÂÄÃÅÇÈÉÊËÌÍÎÏÑÒÓÔÖÕÙÚÛÜàáâäãåçèéêëìíîïñòóôöõùúûüÿ",
                      "AAAAAACEEEEIIIINOOOOOUUUUaaaaaaceeeeiiiinooooouuuuy")


def text_width(s):
    """Width of s in points at FONT_SIZE."""
    total = 0
    for ch in s.translate(_BASE):
        o = ord(ch)
        total += _W[o - 32] if 32 <= o <= 126 else 556
    return total * FONT_SIZE / 1000


def wrap(text, width=MAX_WIDTH * 0.97):
    lines, cur = [], ""
    for word in text.split():
        trial = word if not cur else cur + " " + word
        if text_width(trial) <= width:
            cur = trial
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    return lines


# ---- page text ---------------------------------------------------------------------------------

FIRST = ["Margaret", "David", "Zoë", "José", "Siobhán", "Jürgen", "Priya", "Thomas", "Aisha",
         "François", "Eleanor", "Ana", "Mohammed", "Björn", "Grace", "Rhys", "Inés", "Oliver"]
LAST = ["Thornbury", "Okafor", "Álvarez", "Lefèvre", "Köhler", "Brennan", "Núñez", "Whitcombe",
        "Haddad", "Pemberton", "O'Neill", "Castellanos", "Ashworth", "Moreau", "Lindqvist"]
CLINICIANS = ["Dr H. Marlowe", "Dr S. Varga", "Dr E. Quint", "Dr R. Ansell", "Dr M. Oyelaran",
              "Dr C. Dufresne", "Dr P. Whitlock", "Dr A. Østergaard"]
SITES = [("Careport Clinical Laboratory", "14 Harbour Road, Kingsbridge KB4 2TQ"),
         ("St Aldric's Hospital Pathology", "Level 2, Westgate Wing, Millbrook MB1 7HS"),
         ("Fernhill Medical Centre", "3 Orchard Lane, Fernhill FH9 3DE")]
WARDS = ["4B", "7A", "2C", "Acute Medical Unit", "Respiratory", "Cardiology", "Renal"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

# name, unit, low, high, decimals
TESTS = [
    ("Haemoglobin", "g/dL", 11.5, 16.5, 1), ("White cell count", "x10^9/L", 4.0, 11.0, 1),
    ("Platelets", "x10^9/L", 150, 400, 0), ("Haematocrit", "L/L", 0.36, 0.46, 2),
    ("Mean cell volume", "fL", 80, 100, 0), ("Neutrophils", "x10^9/L", 2.0, 7.5, 1),
    ("Lymphocytes", "x10^9/L", 1.5, 4.0, 1), ("Sodium", "mmol/L", 133, 146, 0),
    ("Potassium", "mmol/L", 3.5, 5.3, 1), ("Urea", "mmol/L", 2.5, 7.8, 1),
    ("Creatinine", "µmol/L", 59, 104, 0), ("C-reactive protein", "mg/L", 0, 5, 0),
    ("Alanine aminotransferase", "U/L", 7, 56, 0), ("Alkaline phosphatase", "U/L", 30, 130, 0),
    ("Bilirubin", "µmol/L", 0, 21, 0), ("Albumin", "g/L", 35, 50, 0),
    ("Glucose (fasting)", "mmol/L", 3.9, 5.8, 1), ("HbA1c", "mmol/mol", 20, 41, 0),
    ("TSH", "mU/L", 0.27, 4.2, 2), ("Free T4", "pmol/L", 12, 22, 1),
    ("Total cholesterol", "mmol/L", 3.0, 5.0, 1), ("Ferritin", "µg/L", 30, 400, 0),
    ("Vitamin B12", "ng/L", 197, 771, 0), ("INR", "", 0.8, 1.2, 1),
    ("Calcium (adjusted)", "mmol/L", 2.20, 2.60, 2), ("Magnesium", "mmol/L", 0.70, 1.00, 2),
]
PANELS = ["Full blood count", "Renal profile", "Liver function tests", "Bone profile",
          "Thyroid function", "Lipid profile", "Coagulation screen", "Haematinics"]
SYMPTOMS = ["breathlessness on exertion", "intermittent chest pain", "a productive cough",
            "lower back pain", "fatigue and weight loss", "recurrent headaches",
            "swelling of both ankles", "palpitations", "abdominal discomfort after meals"]
DIAGNOSES = ["community acquired pneumonia", "an exacerbation of COPD", "heart failure with "
             "preserved ejection fraction", "iron deficiency anaemia", "type 2 diabetes",
             "a urinary tract infection", "paroxysmal atrial fibrillation", "hypothyroidism"]
DRUGS = [("Amoxicillin", "500 mg", "three times daily"), ("Ramipril", "2.5 mg", "once daily"),
         ("Metformin", "500 mg", "twice daily"), ("Bisoprolol", "1.25 mg", "once daily"),
         ("Furosemide", "40 mg", "each morning"), ("Levothyroxine", "50 micrograms", "once daily"),
         ("Ferrous fumarate", "210 mg", "twice daily"), ("Atorvastatin", "20 mg", "at night"),
         ("Paracetamol", "1 g", "up to four times daily"), ("Apixaban", "5 mg", "twice daily")]
SENTENCES = [
    "Thank you for referring this {age}-year-old {sex} with a {weeks}-week history of {symptom}.",
    "On examination the chest was clear and the heart sounds were normal.",
    "Blood pressure was {sys}/{dia} mmHg and the pulse {pulse} beats per minute, regular.",
    "Temperature {temp} °C, oxygen saturation {sat}% on room air.",
    "The results above are consistent with {diagnosis}.",
    "We discussed the diagnosis and the plan with the patient, who agreed to it.",
    "Please repeat the renal profile in {weeks} weeks and adjust the dose if needed.",
    "An echocardiogram has been requested and will be sent out by post.",
    "The patient was reviewed in clinic on {date} and reported feeling much better.",
    "No further investigations are required at this stage.",
    "Please note the raised {test}; a repeat sample in {weeks} weeks would be helpful.",
    "She was discharged home on day {day} with the medication listed below.",
    "He lives alone, walks with a stick and manages his own medication.",
    "Allergies: {allergy}. Smoking: {smoking}. Alcohol: {units} units a week.",
    "The specimen was received haemolysed; potassium should be interpreted with caution.",
    "If symptoms return, please refer back to the department directly.",
    "Her weight today was {kg} kg, body mass index {bmi}.",
    "A chest X-ray on admission showed {xray}.",
    "Follow-up in the clinic in {weeks} weeks, or sooner if needed.",
    "Results were telephoned to the ward at {hh}:{mm} and read back.",
]


def date_of(rng, style=None, years=(2023, 2025)):
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(*years)
    style = style if style is not None else rng.randint(0, 2)
    if style == 0:
        return f"{d:02d}/{m:02d}/{y}"
    if style == 1:
        return f"{d} {MONTHS[m - 1]} {y}"
    return f"{y}-{m:02d}-{d:02d}"


def fmt(x, dec):
    return f"{x:.{dec}f}"


def sentence(rng):
    s = rng.choice(SENTENCES)
    return s.format(
        age=rng.randint(19, 94), sex=rng.choice(["man", "woman"]), weeks=rng.randint(2, 12),
        symptom=rng.choice(SYMPTOMS), sys=rng.randint(104, 168), dia=rng.randint(60, 98),
        pulse=rng.randint(52, 112), temp=fmt(rng.uniform(36.1, 38.9), 1), sat=rng.randint(89, 99),
        diagnosis=rng.choice(DIAGNOSES), date=date_of(rng, 1), test=rng.choice(TESTS)[0].lower(),
        day=rng.randint(2, 14), allergy=rng.choice(["none known", "penicillin (rash)", "latex"]),
        smoking=rng.choice(["never", "ex-smoker, 20 pack-years", "10 a day"]),
        units=rng.randint(0, 28), kg=fmt(rng.uniform(48, 118), 1), bmi=fmt(rng.uniform(18, 39), 1),
        xray=rng.choice(["right lower zone consolidation", "no acute changes",
                         "small bilateral effusions", "cardiomegaly"]),
        hh=f"{rng.randint(0, 23):02d}", mm=f"{rng.randint(0, 59):02d}",
    )


def patient(rng):
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return name, f"CP{rng.randint(100000, 999999)}", date_of(rng, 0, (1928, 2006))


def result_line(rng, test):
    name, unit, low, high, dec = test
    span = high - low
    value = rng.uniform(low - 0.25 * span, high + 0.25 * span)
    value = max(value, 0)
    flag = " H" if value > high else (" L" if value < low and low > 0 else "")
    v, lo, hi = fmt(value, dec), fmt(low, dec), fmt(high, dec)
    unit_part = f" {unit}" if unit else ""
    style = rng.randint(0, 2)
    if style == 0:
        return f"{name} {v}{unit_part} ({lo} - {hi}){flag}"
    if style == 1:
        return f"{name}: {v}{unit_part}, reference {lo}-{hi}{flag}"
    return f"{name} {v}{unit_part}{flag}"


def lab_report(rng):
    site, address = rng.choice(SITES)
    name, number, dob = patient(rng)
    lines = [site.upper(), address, f"Tel 01632 960{rng.randint(0, 999):03d}",
             f"Patient: {name}   Hospital no. {number}   DOB {dob}",
             f"Requested by {rng.choice(CLINICIANS)}, ward {rng.choice(WARDS)}",
             f"Collected {date_of(rng, 0)} {rng.randint(6, 22):02d}:{rng.randint(0, 59):02d}   "
             f"Reported {date_of(rng, 2)}"]
    while len(lines) < 36:
        panel = rng.choice(PANELS)
        lines.append(f"{panel}, specimen {rng.randint(2023, 2025)}-{rng.randint(1, 9999):04d}")
        for test in rng.sample(TESTS, rng.randint(4, 7)):
            lines.append(result_line(rng, test))
        if rng.random() < 0.6:
            lines.extend(wrap("Comment: " + sentence(rng)))
    lines.extend(wrap(sentence(rng)))
    lines.append(f"Authorised by {rng.choice(CLINICIANS)}, consultant pathologist")
    return lines


def letter(rng):
    site, address = rng.choice(SITES)
    name, number, dob = patient(rng)
    gp = rng.choice(CLINICIANS)
    lines = [site, address, f"Clinic date: {date_of(rng, 1)}", f"Dear {gp},",
             f"Re: {name}, date of birth {dob}, hospital number {number}",
             "Diagnosis: " + rng.choice(DIAGNOSES)]
    while len(lines) < 30:
        para = " ".join(sentence(rng) for _ in range(rng.randint(2, 4)))
        lines.extend(wrap(para))
        if rng.random() < 0.35:
            lines.append("Results")
            for test in rng.sample(TESTS, rng.randint(2, 4)):
                lines.append(result_line(rng, test))
    lines.append("Medication on discharge")
    for drug, dose, when in rng.sample(DRUGS, rng.randint(3, 5)):
        lines.append(f"{drug} {dose} {when}")
    lines.extend(wrap(sentence(rng)))
    lines += ["Yours sincerely,", rng.choice(CLINICIANS) + ", specialty registrar"]
    return lines


def page_lines(seed, i):
    """The lines of page i (1-based): 38 to 42 of them."""
    rng = random.Random(seed * 100003 + i)
    lines = (lab_report if rng.random() < 0.5 else letter)(rng)
    lines = [ln for ln in lines if ln.strip()]
    for ln in lines:
        ln.encode("latin-1")  # WinAnsi covers Latin-1's letters
        assert text_width(ln) <= MAX_WIDTH, ln
    target = rng.randint(38, MAX_LINES)
    while len(lines) < target:
        lines.extend(wrap(sentence(rng)))
    return lines[:target]


# ---- PDF writing (as scripts/make-ocr-fixtures.py) ---------------------------------------------

def pdf_string(text):
    raw = text.encode("latin-1")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def text_content(lines):
    out = []
    y = TOP
    for line in lines:
        out.append(b"BT /F1 %d Tf %d %.2f Td %s Tj ET" % (FONT_SIZE, LEFT, y, pdf_string(line)))
        y -= LEADING
    return b"\n".join(out) + b"\n"


def stream(dict_body, data):
    return b"<< " + dict_body + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def write_pdf(path, pages):
    """pages: an iterable of ("text", lines) or ("image", (width, height, grey bytes)).

    Objects: 1 catalog, 2 page tree, 3 font, then per page its page, content and image. Written
    as it goes, so an image-only PDF of many pages never sits in memory whole.
    """
    offsets = {}
    kids = []
    with open(path, "wb") as f:
        def obj(oid, body):
            offsets[oid] = f.tell()
            f.write(b"%d 0 obj\n" % oid + body + b"\nendobj\n")

        f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        obj(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        n = 4
        for kind, body in pages:
            page_id, content_id = n, n + 1
            n += 2
            if kind == "text":
                content = stream(b"/Filter /FlateDecode", zlib.compress(text_content(body), 6))
                resources = b"<< /Font << /F1 3 0 R >> >>"
            else:
                width, height, grey = body
                image_id = n
                n += 1
                obj(image_id, stream(
                    b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
                    b" /BitsPerComponent 8 /Filter /FlateDecode" % (width, height),
                    zlib.compress(grey, 6)))
                content = stream(b"", b"q %d 0 0 %d 0 0 cm /Im0 Do Q\n" % (PAGE_W, PAGE_H))
                resources = b"<< /XObject << /Im0 %d 0 R >> >>" % image_id
            obj(content_id, content)
            obj(page_id, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources %s"
                         b" /Contents %d 0 R >>" % (PAGE_W, PAGE_H, resources, content_id))
            kids.append(b"%d 0 R" % page_id)
        obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids)))
        xref = f.tell()
        size = n
        f.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
        for oid in range(1, size):
            f.write(b"%010d 00000 n \n" % offsets[oid])
        f.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))


def read_pgm(path):
    """A binary 8-bit PGM (what `pdftoppm -gray` writes): (width, height, pixels)."""
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if not m or m.group(3) != b"255":
        raise ValueError(f"{path}: not an 8-bit binary PGM")
    width, height = int(m.group(1)), int(m.group(2))
    return width, height, data[m.end():m.end() + width * height]


def png_chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def grey_png(width, height, grey):
    """An 8-bit greyscale PNG (filter None on every row) with a 300 dpi pHYs chunk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ppm = round(DPI / 0.0254)
    raw = b"".join(b"\x00" + grey[y * width:(y + 1) * width] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
            + png_chunk(b"IDAT", zlib.compress(raw, 6)) + png_chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int, help="number of scanned pages")
    ap.add_argument("outdir")
    ap.add_argument("--text-layer-pages", type=int, default=None, metavar="M",
                    help="pages in text-layer.pdf (default N)")
    ap.add_argument("--seed", type=int, default=20261126)
    args = ap.parse_args()
    n, m = args.n, max(args.text_layer_pages or args.n, args.n)
    if n < 1:
        ap.error("N must be at least 1")
    os.makedirs(args.outdir, exist_ok=True)
    out = args.outdir
    pages = [page_lines(args.seed, i) for i in range(1, m + 1)]

    for i, lines in enumerate(pages[:n], 1):
        with open(os.path.join(out, f"page-{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    with open(os.path.join(out, "text-layer-truth.txt"), "w", encoding="utf-8") as f:
        f.write("\f".join("\n".join(lines) for lines in pages))
    write_pdf(os.path.join(out, "text-layer.pdf"), (("text", lines) for lines in pages))

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "pages.pdf")
        write_pdf(src, (("text", lines) for lines in pages[:n]))

        # One raster per page, by pdftoppm (-gray: 8-bit grey PGM; its -png output comes out
        # as RGB whatever -gray says), written out as a grey PNG and kept for scanned.pdf.
        def images():
            for i in range(1, n + 1):
                base = os.path.join(tmp, "g")
                subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-f", str(i), "-l", str(i),
                                "-singlefile", src, base], check=True)
                width, height, grey = read_pgm(base + ".pgm")
                os.remove(base + ".pgm")
                with open(os.path.join(out, f"page-{i:03d}.png"), "wb") as f:
                    f.write(grey_png(width, height, grey))
                yield "image", (width, height, grey)

        write_pdf(os.path.join(out, "scanned.pdf"), images())

    chars = sum(len(" ".join(" ".join(p).split())) for p in pages[:n])
    print(f"{out}: {n} pages ({chars} characters of truth, {chars // n} a page), "
          f"scanned.pdf, text-layer.pdf ({m} pages)", file=sys.stderr)


if __name__ == "__main__":
    main()
