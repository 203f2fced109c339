"""Writes the OCR document fixtures of actors/ml/tests/fixtures/ (the tests of careport_ml::ocr):

    python3 scripts/make-ocr-fixtures.py            # from the repository root

Uses only Python's standard library and `pdftoppm` (poppler-utils), so it runs wherever the
tests do; no PIL. Every file comes out byte-for-byte the same on each run (fixed creation data,
no timestamps), so a rerun shows no diff unless this script changed.

How the pages are made: the "scans" are pages of a PDF with a Helvetica text layer, rasterised
by pdftoppm at 300 dpi and thresholded to black and white (as a fax or office scanner does,
and so they compress to a few kilobytes); the raster then goes into PNGs, a TIFF and image-only
PDFs. The text is made up (a fictitious laboratory, no patient). What the tests assert about
each file is in actors/ml/tests/ocr.rs.

    text-layer.pdf    2 pages, a text layer only (Helvetica, WinAnsi); the text is TEXT_PAGES
    scanned.pdf       2 pages, each one image (Flate, 8-bit grey) and no text: SCAN_PAGES
    mixed.pdf         page 1 a text layer, page 2 a scanned image
    scan-2p.tif       2 frames (Deflate, 8-bit grey, 300 dpi): SCAN_PAGES
    scan.jpg          SCAN_PAGES[0] as a grey JPEG at 200 dpi (pdftoppm's own JPEG writer)
    scan.png          SCAN_PAGES[0] upright; scan-rot90.png / scan-rot180.png the same page
                      turned 90 degrees clockwise and upside down
    encrypted.pdf     text-layer.pdf with a standard security handler in its trailer (/Encrypt),
                      whose user password is not empty: nothing opens it without one
    truncated.pdf     the first 300 bytes of text-layer.pdf (cut inside its page tree)
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "actors", "ml", "tests", "fixtures")

# Page size of every fixture: 6 x 4 in. Small pages keep the tests quick (OCR time grows with
# the page) while the type stays at a scan's usual 12 pt.
PAGE_W, PAGE_H = 432, 288
DPI = 300

TEXT_PAGES = [
    [
        "Careport Clinical Laboratory",
        "Discharge summary, ward 4B",
        "Diagnosis: community acquired pneumonia",
        "Résultats vérifiés à 14 h",
    ],
    [
        "Medication on discharge",
        "Amoxicillin 500 mg three times daily for 5 days",
        "Follow-up in clinic after two weeks",
    ],
]

SCAN_PAGES = [
    [
        "CAREPORT CLINICAL LABORATORY",
        "Full blood count, specimen 2024-118",
        "Haemoglobin 13.5 g/dL",
        "White cell count 6.2 x10^9/L",
        "Platelets 250 x10^9/L",
        "Haematocrit 0.41 L/L",
        "Mean cell volume 88 fL",
        "Reviewed by the duty pathologist",
    ],
    [
        "CAREPORT CLINICAL LABORATORY",
        "Renal profile, specimen 2024-119",
        "Sodium 139 mmol/L",
        "Potassium 4.1 mmol/L",
        "Urea 5.4 mmol/L",
        "Creatinine 78 umol/L",
        "Estimated GFR above 90",
        "Reviewed by the duty pathologist",
    ],
]


# ---- PDF writing -------------------------------------------------------------------------------

def pdf_string(text):
    """A PDF literal string in WinAnsi (Latin-1 for the characters used here)."""
    raw = text.encode("latin-1")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def text_content(lines):
    """One BT/ET per line, so a text extractor sees one line each (lopdf breaks lines at ET)."""
    out = []
    y = PAGE_H - 48
    for line in lines:
        out.append(b"BT /F1 12 Tf 36 %d Td %s Tj ET" % (y, pdf_string(line)))
        y -= 22
    return b"\n".join(out) + b"\n"


def stream(dict_body, data):
    return b"<< " + dict_body + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def write_pdf(pages, trailer_extra=b"", extra_objects=()):
    """pages: a list of ("text", lines) or ("image", (width, height, grey bytes)).

    Objects: 1 catalog, 2 page tree, 3 font, then per page its page, content and image.
    """
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    kids = []
    n = 4
    for kind, body in pages:
        page_id, content_id = n, n + 1
        n += 2
        if kind == "text":
            objects[content_id] = stream(b"", text_content(body))
            resources = b"<< /Font << /F1 3 0 R >> >>"
        else:
            width, height, grey = body
            image_id = n
            n += 1
            objects[image_id] = stream(
                b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
                b" /BitsPerComponent 8 /Filter /FlateDecode" % (width, height),
                zlib.compress(grey, 9),
            )
            objects[content_id] = stream(b"", b"q %d 0 0 %d 0 0 cm /Im0 Do Q\n" % (PAGE_W, PAGE_H))
            resources = b"<< /XObject << /Im0 %d 0 R >> >>" % image_id
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources %s /Contents %d 0 R >>"
            % (PAGE_W, PAGE_H, resources, content_id)
        )
        kids.append(b"%d 0 R" % page_id)
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    for body in extra_objects:
        objects[n] = body
        n += 1

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for oid in sorted(objects):
        offsets[oid] = len(out)
        out += b"%d 0 obj\n" % oid + objects[oid] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for oid in range(1, size):
        out += b"%010d 00000 n \n" % offsets[oid]
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer_extra, xref)
    return bytes(out)


# ---- PGM reading, PNG writing --------------------------------------------------------------------

def read_pgm(path):
    """A binary 8-bit PGM (what `pdftoppm -gray` writes) as rows of grey bytes."""
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if not m or m.group(3) != b"255":
        raise ValueError(f"{path}: not an 8-bit binary PGM")
    width, height = int(m.group(1)), int(m.group(2))
    pixels = data[m.end():]
    return [pixels[y * width:(y + 1) * width] for y in range(height)]


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_grey_png(rows):
    height, width = len(rows), len(rows[0])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # pHYs: 300 dpi in pixels per metre, so readers that look for a resolution find the scan's.
    ppm = round(DPI / 0.0254)
    phys = struct.pack(">IIB", ppm, ppm, 1)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"pHYs", phys)
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


# ---- TIFF writing -------------------------------------------------------------------------------

def write_grey_tiff(pages):
    """A little-endian multi-page TIFF: each page one Deflate strip of 8-bit grey (BlackIsZero)."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    ifd_offsets = []
    for index, rows in enumerate(pages):
        height, width = len(rows), len(rows[0])
        strip = zlib.compress(b"".join(rows), 9)
        strip_offset = len(out)
        out += strip
        if len(out) % 2:
            out += b"\x00"
        res_offset = len(out)
        out += struct.pack("<II", DPI, 1)
        entries = [
            (254, 4, 1, 2),                      # NewSubfileType: a page of a multi-page file
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, 1, 8),                      # BitsPerSample
            (259, 3, 1, 8),                      # Compression: Deflate (Adobe)
            (262, 3, 1, 1),                      # Photometric: BlackIsZero
            (273, 4, 1, strip_offset),
            (277, 3, 1, 1),                      # SamplesPerPixel
            (278, 4, 1, height),                 # RowsPerStrip: one strip
            (279, 4, 1, len(strip)),
            (282, 5, 1, res_offset),             # XResolution
            (283, 5, 1, res_offset),             # YResolution
            (296, 3, 1, 2),                      # ResolutionUnit: inch
            (297, 3, 2, index | (len(pages) << 16)),  # PageNumber: this one of n
        ]
        ifd_offsets.append(len(out))
        out += struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            if typ == 3 and count == 1:
                out += struct.pack("<HHIHH", tag, typ, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, typ, count, value)
        out += b"\x00\x00\x00\x00"  # next IFD, patched below
    struct.pack_into("<I", out, 4, ifd_offsets[0])
    for this, following in zip(ifd_offsets, ifd_offsets[1:]):
        count = struct.unpack_from("<H", out, this)[0]
        struct.pack_into("<I", out, this + 2 + 12 * count, following)
    return bytes(out)


# ---- pages ------------------------------------------------------------------------------------

def scan_of(lines, tmp, name):
    """The page as a scanner would see it: rasterised at 300 dpi, thresholded to 0/255."""
    src = os.path.join(tmp, name + ".pdf")
    with open(src, "wb") as f:
        f.write(write_pdf([("text", lines)]))
    subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-singlefile", src, os.path.join(tmp, name)], check=True)
    rows = read_pgm(os.path.join(tmp, name + ".pgm"))
    table = bytes(0 if v < 160 else 255 for v in range(256))
    return [r.translate(table) for r in rows]


def rotate_cw(rows):
    """Turn a page 90 degrees clockwise: the new row y is the old column y, read bottom-up."""
    height = len(rows)
    return [bytes(rows[height - 1 - x][y] for x in range(height)) for y in range(len(rows[0]))]


def rotate_180(rows):
    return [r[::-1] for r in reversed(rows)]


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        scans = [scan_of(lines, tmp, f"scan{i}") for i, lines in enumerate(SCAN_PAGES)]
        # A photo-like scan as a camera or a phone would send it: grey JPEG, 200 dpi,
        # anti-aliased (not thresholded), moderate quality.
        subprocess.run(["pdftoppm", "-r", "200", "-gray", "-jpeg", "-jpegopt", "quality=60", "-singlefile",
                        os.path.join(tmp, "scan0.pdf"), os.path.join(tmp, "scan-jpeg")], check=True)
        with open(os.path.join(tmp, "scan-jpeg.jpg"), "rb") as f:
            files["scan.jpg"] = f.read()
    images = [("image", (len(s[0]), len(s), b"".join(s))) for s in scans]

    text_layer = write_pdf([("text", lines) for lines in TEXT_PAGES])
    files["text-layer.pdf"] = text_layer
    files["scanned.pdf"] = write_pdf(images)
    files["mixed.pdf"] = write_pdf([("text", TEXT_PAGES[0]), images[0]])
    files["scan-2p.tif"] = write_grey_tiff(scans)
    files["scan.png"] = write_grey_png(scans[0])
    files["scan-rot90.png"] = write_grey_png(rotate_cw(scans[0]))
    files["scan-rot180.png"] = write_grey_png(rotate_180(scans[0]))
    # The standard security handler, revision 2 (RC4, 40 bits). /O and /U are not derived from
    # any password, so the empty user password does not open it: the file is as a reader sees
    # one locked with a password it does not have.
    encrypt = (b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -3904"
               b" /O <" + b"4f" * 32 + b"> /U <" + b"55" * 32 + b"> >>")
    doc_id = b"<" + b"c4" * 16 + b">"
    files["encrypted.pdf"] = write_pdf(
        [("text", lines) for lines in TEXT_PAGES],
        trailer_extra=b" /Encrypt %d 0 R /ID [%s %s]" % (4 + 2 * len(TEXT_PAGES), doc_id, doc_id),
        extra_objects=[encrypt],
    )
    files["truncated.pdf"] = text_layer[:300]

    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name:18} {len(data):>8} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
