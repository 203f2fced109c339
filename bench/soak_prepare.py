#!/usr/bin/env python3
"""Prepares bench/soak.sh's workload against a running, seeded server (standard library only).

    python3 bench/soak_prepare.py BASE_URL SEED_OUTPUT WORK_DIR UPLOAD_PDF

Signs in every seeded account once (their tokens go to WORK/tokens.txt, one per line), reads
what each may see (patients, records), uploads a few files to download later, adds three
knowledge documents, tries every kind of request once (each must answer 2xx: a plan that would
fail is refused before the load starts), then writes WORK/plan.tsv: 20,000 requests in a
seeded random order, one per line,

    kind <TAB> method <TAB> path <TAB> token index (1-based, 0 = none) <TAB> X-Forwarded-For <TAB> body

where body is `-` (none), a JSON object, or `@upload` (bench/soak.lua makes a unique PDF).
Also WORK/attack.json: the account and client address the attacker's wrong passwords go to.
"""
import hashlib
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE, SEED_OUT, WORK, PDF = sys.argv[1:5]
RNG = random.Random(20261205)

# Requests per 1,000 of the mixed workload.
WEIGHTS = {
    "login": 10,
    "patient_read": 320,
    "patient_list": 110,
    "patient_search": 100,
    "records_list": 120,
    "record_read": 50,
    "download": 140,
    "upload": 40,
    "knowledge_search": 30,
    "appointments": 80,
}
# SOAK_MIX="kind=weight,..." replaces the weights (to find which requests cost what).
if os.environ.get("SOAK_MIX"):
    WEIGHTS = {k: int(w) for k, w in (kv.split("=") for kv in os.environ["SOAK_MIX"].split(","))}
PLAN_LINES = 20000
UPLOAD_TYPE = "laboratory-results"  # read by OCR on upload (a text-layer PDF: no Tesseract)
STORED_TYPE = "imaging-reports"  # the download set: not read on upload


def call(method, path, token=None, body=None, ctype=None, xff=None):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if ctype:
        headers["Content-Type"] = ctype
    if xff:
        headers["X-Forwarded-For"] = xff
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ok(method, path, **kw):
    status, body = call(method, path, **kw)
    if status // 100 != 2:
        sys.exit(f"soak_prepare: {method} {path} answered {status}: {body[:300]!r}")
    return json.loads(body) if body and body[:1] in (b"{", b"[") else body


def all_items(path, token):
    items, cursor = [], None
    sep = "&" if "?" in path else "?"
    while True:
        page = ok("GET", path + sep + "limit=200" + (f"&cursor={cursor}" if cursor else ""), token=token)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def client_address(email):
    h = hashlib.sha256(email.encode()).digest()
    return f"10.{h[0]}.{h[1]}.{h[2] or 1}"


accounts = []
with open(SEED_OUT) as f:
    for line in f:
        m = re.match(r"^(admin|clinician|patient)\s+(\S+@\S+)\s+(\S+)\s*$", line)
        if m:
            accounts.append({"role": m[1], "email": m[2], "password": m[3]})
if not accounts:
    sys.exit("soak_prepare: no accounts in the seed output")

# The attacker's target: one patient account that the workload never signs in with.
patients_with_accounts = [a for a in accounts if a["role"] == "patient"]
victim = patients_with_accounts.pop() if len(patients_with_accounts) > 1 else None
users = [a for a in accounts if a is not victim]

tokens = []
for a in users:
    xff = client_address(a["email"])
    body = json.dumps({"email": a["email"], "password": a["password"]}).encode()
    a["token"] = ok("POST", "/api/v1/auth/login", body=body, ctype="application/json", xff=xff)["access_token"]
    tokens.append(a["token"])
    a["index"] = len(tokens)
    a["xff"] = xff
    a["login_body"] = json.dumps({"email": a["email"], "password": a["password"]})
    a["patients"] = [p["id"] for p in all_items("/api/v1/patients", a["token"])]

doctors = [a for a in users if a["role"] == "clinician" and a["email"].startswith("doctor") and a["patients"]]
nurses = [a for a in users if a["role"] == "clinician" and a["email"].startswith("nurse") and a["patients"]]
admins = [a for a in users if a["role"] == "admin"]
patients = [a for a in users if a["role"] == "patient" and a["patients"]]
if not doctors:
    sys.exit("soak_prepare: no doctor with patients")

# The download set: 4 files on each of 6 of the doctors' patients, 16 KiB to 1 MiB, random
# bytes behind a PNG signature, as a record type OCR does not read on upload.
stored = []  # (doctor, patient, record)
for d in doctors[:3]:
    for p in d["patients"][:2]:
        for _ in range(4):
            size = RNG.choice([16 << 10, 64 << 10, 256 << 10, 1 << 20])
            data = b"\x89PNG\r\n\x1a\n" + RNG.randbytes(size - 8)
            r = ok(
                "POST", f"/api/v1/patients/{p}/records?record_type={STORED_TYPE}&title=soak+download&file_name=f.png",
                token=d["token"], body=data, ctype="image/png",
            )
            stored.append((d, p, r["id"]))

# Knowledge documents for the searches (the model embeds them when configured).
admin = admins[0]
texts = [
    ("Preparing for chemotherapy", "Eat a light meal before each chemotherapy session. Bring a list of your medicines. "
     "Nausea after treatment is common; anti-sickness tablets help. Call the ward if you have a fever above 38 C."),
    ("Radiotherapy skin care", "Wash the treated skin gently with lukewarm water. Avoid perfumed creams. "
     "Redness and itching in the second week are expected and fade after treatment ends."),
    ("Blood tests explained", "Haemoglobin carries oxygen; a low value causes tiredness. White cells fight infection. "
     "Platelets help the blood clot. Your team checks these before each cycle."),
]
jobs = []
for title, text in texts:
    created = ok(
        "POST", "/api/v1/knowledge/documents", token=admin["token"], ctype="application/json",
        body=json.dumps({"title": title, "text": text, "audience": "all", "language": "en"}).encode(),
    )
    jobs.append(created.get("job_id"))
deadline = time.monotonic() + 120
for job in filter(None, jobs):
    while time.monotonic() < deadline:
        j = ok("GET", f"/api/v1/knowledge/jobs/{job}", token=admin["token"])
        if j.get("status") in ("done", "failed", "cancelled", "dead"):
            break
        time.sleep(0.5)

names = set()
for p in doctors[0]["patients"][:40]:
    names.add(ok("GET", f"/api/v1/patients/{p}", token=doctors[0]["token"])["full_name"].split()[-1][:4])
names = sorted(n for n in names if n) or ["a"]
queries = ["side effects of chemotherapy", "skin care during radiotherapy", "what does a low haemoglobin mean",
           "fever after treatment", "platelets before the next cycle", "nausea tablets"]
staff = doctors + nurses + admins


def line(kind):
    if kind == "login":
        a = RNG.choice(users)
        return (kind, "POST", "/api/v1/auth/login", 0, a["xff"], a["login_body"])
    if kind == "patient_read":
        a = RNG.choice(doctors + nurses + patients if patients else doctors + nurses)
        return (kind, "GET", f"/api/v1/patients/{RNG.choice(a['patients'])}", a["index"], "-", "-")
    if kind == "patient_list":
        a = RNG.choice(staff + patients)
        return (kind, "GET", "/api/v1/patients?limit=50", a["index"], "-", "-")
    if kind == "patient_search":
        a = RNG.choice(staff)
        return (kind, "GET", f"/api/v1/patients?q={urllib.parse.quote(RNG.choice(names))}&limit=20", a["index"], "-", "-")
    if kind == "records_list":
        d, p, _ = RNG.choice(stored)
        return (kind, "GET", f"/api/v1/patients/{p}/records?limit=50", d["index"], "-", "-")
    if kind == "record_read":
        d, _, r = RNG.choice(stored)
        return (kind, "GET", f"/api/v1/records/{r}", d["index"], "-", "-")
    if kind == "download":
        d, _, r = RNG.choice(stored)
        return (kind, "GET", f"/api/v1/records/{r}/content", d["index"], "-", "-")
    if kind == "upload":
        d = RNG.choice(doctors)
        p = RNG.choice(d["patients"])
        return (kind, "POST", f"/api/v1/patients/{p}/records?record_type={UPLOAD_TYPE}&title=soak+upload&file_name=soak.pdf",
                d["index"], "-", "@upload")
    if kind == "knowledge_search":
        a = RNG.choice(users)
        return (kind, "POST", "/api/v1/knowledge/search", a["index"], "-", json.dumps({"query": RNG.choice(queries), "k": 5}))
    if kind == "appointments":
        a = RNG.choice(doctors + patients if patients else doctors)
        return (kind, "GET", "/api/v1/appointments?limit=50", a["index"], "-", "-")
    raise ValueError(kind)


# Every kind once, and every distinct search, by this script before the load: each must
# answer 2xx.
with open(PDF, "rb") as f:
    pdf = f.read()
trials = [line(kind) for kind in WEIGHTS]
trials += [("patient_search", "GET", f"/api/v1/patients?q={urllib.parse.quote(n)}&limit=20", staff[0]["index"], "-", "-")
           for n in names]
for k, method, path, ti, xff, body in trials:
    kind = k
    data = None
    ctype = None
    if body == "@upload":
        data, ctype = pdf + f"\n%soak-prepare-{time.time()}\n".encode(), "application/pdf"
    elif body != "-":
        data, ctype = body.encode(), "application/json"
    status, answer = call(method, path, token=tokens[ti - 1] if ti else None, body=data, ctype=ctype,
                          xff=None if xff == "-" else xff)
    if status // 100 != 2:
        sys.exit(f"soak_prepare: a {kind} request ({method} {path}) answered {status}: {answer[:300]!r}")

kinds = [k for k, w in WEIGHTS.items() for _ in range(w)]
with open(os.path.join(WORK, "tokens.txt"), "w") as f:
    f.write("\n".join(tokens) + "\n")
with open(os.path.join(WORK, "plan.tsv"), "w") as f:
    for _ in range(PLAN_LINES):
        f.write("\t".join(str(x) for x in line(RNG.choice(kinds))) + "\n")
with open(os.path.join(WORK, "attack.json"), "w") as f:
    email = victim["email"] if victim else "nobody@demo.careport.example"
    json.dump({"email": email, "xff": "203.0.113.66"}, f)
print(
    f"prepared: {len(tokens)} signed-in accounts ({len(doctors)} doctors, {len(nurses)} nurses, {len(admins)} admins, "
    f"{len(patients)} patients), {len(stored)} files to download, {len(texts)} knowledge documents, "
    f"{PLAN_LINES} planned requests; attacker's target: {'a patient account' if victim else 'an unknown address'}"
)
