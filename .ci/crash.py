#!/usr/bin/env python3
"""kill -9 during uploads and OCR jobs (issue #21, "Crash").

Starts the real binary (`careport serve`) on a fresh data dir with a small demo clinic; three
client threads upload records into one patient's chart (multipart mostly, raw bodies too) and
ask for OCR, while a killer thread `kill -9`s the server at random moments and starts it again
each time (seeded: the seed is printed, and --seed repeats the schedule, though not the exact
interleaving). Phase 1: a kill every 0.05-0.6 s while the clients work; now and then a kill
during start itself. Phase 2, once every upload is acknowledged: a kill every 0.5-4 s while the
OCR jobs run. The clients wait for the server and carry on; a request whose answer was lost is
sent again (the same bytes for an upload, with the same Idempotency-Key) until it is answered.

Recorded: every upload the server acknowledged (2xx with the record's id) with the sha256 of the
bytes sent, and every OCR job it accepted (202 with the job's id). At the end:

  1. every acknowledged upload downloads byte-identical, and the chart holds exactly the
     acknowledged records: an upload committed whose answer was lost, sent again with its
     Idempotency-Key, is answered with the record it made, never a second one (exactly once);
  2. every accepted OCR job reaches `done` within a bound (its images are good: `failed` is a
     violation, whatever the reason), and its text reads back;
  3. after a restart with `vault.orphan_grace_secs = 0` (the janitor sweeps at start), the
     vault's local directory holds no temporary and no object that no `vault_files` row names,
     every row has its object and belongs to a record, and no `ocr_jobs` row is still queued or
     running;
  4. `careport audit verify` passes;
  5. the server never panicked and never answered 5xx;
  6. the server's log (at `info`: every request) holds neither key (master, token), nor the
     password the clients logged in with, nor their access or refresh token.

Exits 1 naming each violation (the work directory is then kept). Python 3 standard library only.

    python3 .ci/crash.py BINARY [--seed N] [--uploads 100] [--ocr-jobs 50] [--max-kills 30]
                                [--pg postgres://postgres@127.0.0.1:5432/postgres]

With --pg the store is a fresh PostgreSQL database (`careport_crash`, dropped and created; needs
psql); the vault stays in a local directory. Uploads are 1 KiB to 4 MiB of random bytes behind a
PDF or PNG signature (sniffing accepts them; `ocr.auto_record_types = []`, so they are not read
on upload). OCR files are the fixtures of actors/ml/tests/fixtures (a PNG, a two-page TIFF, a
two-page scanned PDF), each made unique so that no upload is a duplicate of another.

Settings of the run: `jobs.lease_secs = 10`, so that the jobs of a killed server are taken up
again within the run; `ocr.max_attempts` one more than --max-kills (--ocr-attempts overrides).
Each kill costs the jobs it interrupts one attempt, and a job that has used them all is given
up as `worker_lost` (the server's guard against a document that kills it; 3 by default): with
more attempts than kills, no job can be given up for this run's kills alone. The attempts each
job used are printed.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "actors", "ml", "tests", "fixtures")
CLIENTS = 3
REQUEST_TIMEOUT = 60
READY_TIMEOUT = 90
JOB_WAIT = 150


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Violation(Exception):
    pass


# --- files -------------------------------------------------------------------------------------


def random_file(rng):
    """Random bytes behind a PDF or PNG signature: 1 KiB to 4 MiB, most of them small."""
    r = rng.random()
    if r < 0.3:
        size = rng.randint(1 << 10, 64 << 10)
    elif r < 0.6:
        size = rng.randint(64 << 10, 1 << 20)
    else:
        size = rng.randint(1 << 20, 4 << 20)
    if rng.random() < 0.5:
        head, media = b"%PDF-1.7\n", "application/pdf"
    else:
        head, media = b"\x89PNG\r\n\x1a\n", "image/png"
    return head + rng.randbytes(size - len(head)), media


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def unique_scan(base, nonce):
    """A copy of an OCR fixture that differs from every other (so none is a duplicate): a PNG
    gets a tEXt chunk before IEND; TIFF and PDF get bytes after their end (TIFF readers follow
    offsets; a PDF ends with a comment after %%EOF, which readers skip)."""
    name, data = base
    tag = nonce.encode()
    if name.endswith(".png"):
        iend = data.rindex(b"IEND") - 4
        return name, data[:iend] + png_chunk(b"tEXt", b"Comment\x00crash-" + tag) + data[iend:]
    if name.endswith(".pdf"):
        return name, data + b"\n%crash-" + tag + b"\n"
    return name, data + b"crash-" + tag


# --- HTTP ----------------------------------------------------------------------------------------


class Lost(Exception):
    """The request's answer never came (the server died, or was not there)."""


def request(base, method, path, token=None, body=None, content_type=None, timeout=REQUEST_TIMEOUT, headers=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        try:
            data = e.read()
        except (OSError, http.client.HTTPException):
            raise Lost(f"HTTP {e.code} with its body cut off")
        return e.code, data
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise Lost(str(e))


def multipart(fields, file_name, media, data):
    boundary = "crash" + uuid.uuid4().hex
    parts = []
    for k, v in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        f"Content-Type: {media}\r\n\r\n".encode()
    )
    parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- the server ------------------------------------------------------------------------------------


class Server:
    def __init__(self, binary, env, config, log_path, port):
        self.binary, self.env, self.config, self.log_path, self.port = binary, env, config, log_path, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = None
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.starts = 0

    def cmd(self, *args, extra_env=None, stdin=None, check=True):
        env = dict(self.env, **(extra_env or {}))
        out = subprocess.run(
            [self.binary, "--config", self.config, *args], env=env, input=stdin, capture_output=True, text=True
        )
        if check and out.returncode != 0:
            raise Violation(f"`careport {' '.join(args)}` failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        return out

    def start(self, extra_env=None):
        env = dict(self.env, CAREPORT__HTTP__PORT=str(self.port), **(extra_env or {}))
        with open(self.log_path, "a") as f:
            f.write(f"\n===== start #{self.starts + 1} at {time.time():.3f}\n")
            f.flush()
            self.proc = subprocess.Popen(
                [self.binary, "--config", self.config, "serve"], env=env, stdout=f, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Violation(f"the server exited with {self.proc.returncode} while starting (see {self.log_path})")
            try:
                status, body = request(self.base, "GET", "/readyz", timeout=5)
                if status == 200:
                    self.up.set()
                    return json.loads(body)
            except Lost:
                pass
            time.sleep(0.1)
        raise Violation(f"the server was not ready within {timeout} s (see {self.log_path})")

    def kill9(self):
        self.up.clear()
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def stop(self):
        self.up.clear()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Violation("the server did not stop within 40 s of SIGTERM")


# --- the run ---------------------------------------------------------------------------------------


class Run:
    def __init__(self, args, server, token, patient, record_types, scans):
        self.args, self.server, self.token, self.patient = args, server, token, patient
        self.record_types, self.scans = record_types, scans
        self.lock = threading.Lock()
        self.acked = {}  # record id -> (sha256, size)
        self.sent = set()  # sha256 of every body sent, answered or not
        self.jobs = {}  # job id -> record id
        self.ocr_records = set()
        self.lost_answers = 0
        self.replays = 0
        self.statuses = {}
        self.errors = []
        self.tasks = []
        self.finished = threading.Event()
        self.kills = 0

    def note(self, status):
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def call(self, method, path, **kw):
        """A request tried until it is answered: a lost answer waits for the server and goes
        again. Returns (status, body)."""
        for _ in range(200):
            if not self.server.up.wait(timeout=READY_TIMEOUT + 30):
                raise Violation("the server stayed down")
            try:
                status, body = request(self.server.base, method, path, token=self.token, **kw)
            except Lost:
                with self.lock:
                    self.lost_answers += 1
                time.sleep(0.05)
                continue
            self.note(status)
            if status >= 500:
                with self.lock:
                    self.errors.append(f"{method} {path.split('?')[0]} answered {status}: {body[:300]!r}")
            return status, body
        raise Violation(f"{method} {path}: no answer after 200 tries")

    def upload(self, rng, data, media, name):
        digest = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.sent.add(digest)
        record_type = rng.choice(self.record_types)
        title = f"crash {digest[:12]}"
        # One key per upload, sent with every resend of it.
        key = {"Idempotency-Key": f"crash-{uuid.UUID(int=rng.getrandbits(128)).hex}"}
        if rng.random() < 0.75:
            body, ctype = multipart([("record_type", record_type), ("title", title)], name, media, data)
            status, answer = self.call(
                "POST", f"/api/v1/patients/{self.patient}/records", body=body, content_type=ctype, headers=key
            )
        else:
            q = f"record_type={record_type}&title={urllib.request.quote(title)}&file_name={name}"
            status, answer = self.call(
                "POST", f"/api/v1/patients/{self.patient}/records?{q}", body=data, content_type=media, headers=key
            )
        if status not in (200, 201):
            raise Violation(f"an upload ({len(data)} bytes, {media}) answered {status}: {answer[:300]!r}")
        record = json.loads(answer)["id"]
        with self.lock:
            if status == 200:
                self.replays += 1
            if record in self.acked and self.acked[record][0] != digest:
                raise Violation(f"record {record} acknowledged for two different files")
            self.acked[record] = (digest, len(data))
        return record

    def ocr_task(self, rng, n):
        name, data = unique_scan(rng.choice(self.scans), f"{self.args.seed}-{n}")
        media = {"png": "image/png", "tif": "image/tiff", "pdf": "application/pdf"}[name.rsplit(".", 1)[1]]
        record = self.upload(rng, data, media, name)
        status, answer = self.call(
            "POST", f"/api/v1/records/{record}/ocr", body=b'{"language":"en"}', content_type="application/json"
        )
        if status != 202:
            raise Violation(f"OCR of record {record} answered {status}: {answer[:300]!r}")
        job = json.loads(answer)["job_id"]
        with self.lock:
            self.jobs[job] = record
            self.ocr_records.add(record)

    def client(self, i):
        rng = random.Random(f"{self.args.seed}-client-{i}")
        try:
            while True:
                with self.lock:
                    if not self.tasks:
                        return
                    kind, n = self.tasks.pop()
                if kind == "upload":
                    data, media = random_file(rng)
                    self.upload(rng, data, media, f"upload-{n}.{'pdf' if media.endswith('pdf') else 'png'}")
                else:
                    self.ocr_task(rng, n)
        except Violation as e:
            with self.lock:
                self.errors.append(str(e))
        except Exception as e:  # a bug in this script is a failure too
            with self.lock:
                self.errors.append(f"client {i}: {type(e).__name__}: {e}")

    def killer(self, rng, stop_at, stop, lo, hi, phase, limit):
        """`kill -9` every lo..hi seconds after the server is ready (now and then during its
        start instead), start it again, until `stop` is set, `stop_at` passes or the kills are
        all dealt."""
        while not stop.is_set() and time.monotonic() < stop_at and self.kills < limit:
            if rng.random() < 0.15:
                # During start itself: migrations, lease re-claim, the janitor's first pass.
                self.server.kill9()
                self.server.start()
                time.sleep(rng.uniform(0.0, 1.2))
                self.server.kill9()
                self.kills += 1
                log(f"kill #{self.kills} ({phase}, while starting)")
            else:
                if stop.wait(rng.uniform(lo, hi)):
                    break
                self.server.kill9()
                self.kills += 1
                with self.lock:
                    left, acked, jobs = len(self.tasks), len(self.acked), len(self.jobs)
                log(f"kill #{self.kills} ({phase}): {acked} uploads acknowledged, {jobs} OCR jobs accepted, {left} tasks not begun")
            time.sleep(rng.uniform(0.0, 0.3))
            self.server.start()
            self.server.wait_ready()


def db_rows(args, data_dir, sql_sqlite, sql_pg):
    if args.pg:
        out = subprocess.run(
            ["psql", args.pg_url, "-At", "-c", sql_pg], capture_output=True, text=True, check=True
        ).stdout
        return [line.split("|") for line in out.splitlines() if line]
    con = sqlite3.connect(os.path.join(data_dir, "careport.db"))  # the server is stopped
    try:
        return [[str(c) if c is not None else "" for c in row] for row in con.execute(sql_sqlite)]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--uploads", type=int, default=100)
    ap.add_argument("--ocr-jobs", type=int, default=50)
    ap.add_argument("--kill-seconds", type=float, default=100, help="stop killing after this long")
    ap.add_argument("--max-kills", type=int, default=30)
    ap.add_argument(
        "--ocr-attempts", type=int, default=None,
        help="ocr.max_attempts: a job whose node dies this many times while it runs is given up as "
        "worker_lost (the server's guard against a document that kills it); default: one more than "
        "--max-kills, so that no job can be given up for this run's kills alone",
    )
    ap.add_argument("--pg", metavar="ADMIN_URL", help="PostgreSQL admin URL: run on a fresh database")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    binary = os.path.abspath(args.binary)
    log(f"seed {args.seed} (repeat with --seed {args.seed}); store: {'PostgreSQL' if args.pg else 'SQLite'}")
    t0 = time.monotonic()

    work = tempfile.mkdtemp(prefix="careport-crash-")
    data_dir = os.path.join(work, "data")
    config = os.path.join(work, "crash.toml")
    with open(config, "w") as f:
        f.write("[ocr]\nauto_record_types = []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPORT")}
    env.update(
        CAREPORT__DATA_DIR=data_dir,
        # info: each request is in the log, which step 6 searches for secrets.
        CAREPORT__LOG__LEVEL="info",
        CAREPORT__LOG__FORMAT="pretty",
        CAREPORT__ML__EMBEDDING_PROVIDER="off",
        CAREPORT__JOBS__LEASE_SECS="10",
        CAREPORT__JOBS__POLL_INTERVAL_MS="200",
        CAREPORT__JOBS__BACKOFF_BASE_MS="200",
        CAREPORT__JOBS__BACKOFF_MAX_MS="2000",
        OMP_THREAD_LIMIT="1",
    )
    env["CAREPORT__OCR__MAX_ATTEMPTS"] = str(args.ocr_attempts or args.max_kills + 1)
    model = os.environ.get("CAREPORT_TEST_MODEL_DIR") or "/var/cache/careport-ci-data/models/all-MiniLM-L6-v2"
    if os.path.isfile(os.path.join(model, "tokenizer.json")):
        # Not used for embeddings here (provider off); its tokenizer counts the knowledge base's chunks.
        env["CAREPORT__ML__LOCAL__MODEL_DIR"] = model
    if args.pg:
        args.pg_url = args.pg.rsplit("/", 1)[0] + "/careport_crash"
        subprocess.run(
            ["psql", args.pg, "-v", "ON_ERROR_STOP=1", "-qc", "DROP DATABASE IF EXISTS careport_crash WITH (FORCE)",
             "-c", "CREATE DATABASE careport_crash"], check=True
        )
        keys = subprocess.run([binary, "keys", "generate"], capture_output=True, text=True, check=True).stdout
        for line in keys.splitlines():
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
        env["CAREPORT__DATABASE__URL"] = args.pg_url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(binary, env, config, os.path.join(work, "serve.log"), port)
    failures = []
    try:
        seeded = server.cmd(
            "seed-demo", "--admins", "1", "--clinicians", "2", "--patients", "2", "--patient-accounts", "0",
            "--appointments-per-patient", "0",
        ).stdout
        doctor = next(line.split()[1:3] for line in seeded.splitlines() if re.match(r"clinician\s+doctor", line))
        server.start()
        server.wait_ready()
        log(f"server ready after {time.monotonic() - t0:.1f} s (port {port}, data {data_dir})")
        status, body = request(
            server.base, "POST", "/api/v1/auth/login",
            body=json.dumps({"email": doctor[0], "password": doctor[1]}).encode(), content_type="application/json",
        )
        if status != 200:
            raise Violation(f"login answered {status}: {body[:200]!r}")
        login = json.loads(body)
        token = login["access_token"]
        # What must never reach the log (step 6): the password, both tokens.
        secrets_used = {"the doctor's password": doctor[1], "an access token": token,
                        "a refresh token": login.get("refresh_token") or ""}
        status, body = request(
            server.base, "POST", "/api/v1/patients", token=token,
            body=json.dumps({"full_name": "Crash Test Patient"}).encode(), content_type="application/json",
        )
        if status != 201:
            raise Violation(f"creating the patient answered {status}: {body[:200]!r}")
        patient = json.loads(body)["id"]
        status, body = request(server.base, "GET", "/api/v1/record-types", token=token)
        types = json.loads(body)
        types = types["items"] if isinstance(types, dict) else types
        record_types = [t["id"] for t in types if not t.get("retired")][:4] or ["laboratory-results"]
        scans = []
        for name in ("scan.png", "scan-2p.tif", "scanned.pdf"):
            with open(os.path.join(FIXTURES, name), "rb") as f:
                scans.append((name, f.read()))

        run = Run(args, server, token, patient, record_types, scans)
        rng = random.Random(args.seed)
        run.tasks = [("upload", n) for n in range(args.uploads)] + [("ocr", n) for n in range(args.ocr_jobs)]
        rng.shuffle(run.tasks)
        threads = [threading.Thread(target=run.client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        kill_stop_at = time.monotonic() + args.kill_seconds
        kill_error = []

        def killer(stop, lo, hi, phase, limit):
            try:
                run.killer(rng, kill_stop_at, stop, lo, hi, phase, limit)
            except Exception as e:
                kill_error.append(e)
                run.server.up.set()  # let the clients fail rather than wait

        # Phase 1: kills every 0.05-0.6 s while the clients upload and ask for OCR (two thirds of
        # the kills at most).
        k = threading.Thread(target=killer, args=(run.finished, 0.05, 0.6, "uploads", args.max_kills * 2 // 3), daemon=True)
        k.start()
        for t in threads:
            t.join()
        run.finished.set()
        k.join()
        if kill_error:
            raise kill_error[0]
        failures += run.errors
        log(
            f"uploads done after {time.monotonic() - t0:.1f} s: {run.kills} kills, {server.starts} starts; "
            f"{len(run.acked)} uploads acknowledged ({len(run.sent)} files sent), {len(run.jobs)} OCR jobs accepted, "
            f"{run.lost_answers} answers lost to kills; statuses {dict(sorted(run.statuses.items()))}"
        )
        if failures:
            raise Violation("the clients stopped")
        if len(run.acked) < args.uploads + args.ocr_jobs or len(run.jobs) < args.ocr_jobs:
            raise Violation("fewer uploads or jobs were acknowledged than asked for")

        # 2. Every accepted job reaches done. Phase 2: kills every 0.5-4 s while jobs run.
        settled = threading.Event()
        k = threading.Thread(target=killer, args=(settled, 0.5, 4.0, "OCR", args.max_kills), daemon=True)
        k.start()
        deadline = time.monotonic() + JOB_WAIT
        pending = dict(run.jobs)
        states = {}
        while pending and time.monotonic() < deadline:
            for job in list(pending):
                status, body = run.call("GET", f"/api/v1/ocr/jobs/{job}")
                if status != 200:
                    failures.append(f"OCR job {job}: GET answered {status}: {body[:200]!r}")
                    del pending[job]
                    continue
                j = json.loads(body)
                states[job] = j
                if j["status"] in ("done", "failed", "cancelled"):
                    del pending[job]
            if pending:
                time.sleep(1)
        settled.set()
        k.join()
        if kill_error:
            raise kill_error[0]
        by_status = {}
        for job, j in states.items():
            by_status[j["status"]] = by_status.get(j["status"], 0) + 1
        log(f"OCR jobs after {time.monotonic() - t0:.1f} s and {run.kills} kills in all: {by_status}")
        for job in pending:
            j = states.get(job, {})
            failures.append(
                f"OCR job {job} (record {run.jobs[job]}) never finished within {JOB_WAIT} s: "
                f"status {j.get('status')}, pages {j.get('pages_done')}/{j.get('pages_total')}, error {j.get('error')}"
            )
        for job, j in states.items():
            if job in pending:
                continue
            if j["status"] != "done":
                failures.append(f"OCR job {job} (record {run.jobs[job]}) ended {j['status']}: {j.get('error')}")
                continue
            status, body = run.call("GET", f"/api/v1/records/{run.jobs[job]}/text")
            text = json.loads(body).get("text", "") if status == 200 else ""
            if status != 200 or "laboratory" not in text.lower():
                failures.append(f"OCR job {job} is done but its text reads {status}: {body[:200]!r}")

        # 1. Downloads: acknowledged uploads byte-identical; every record one of the files sent.
        for record, (digest, size) in sorted(run.acked.items()):
            status, body = run.call("GET", f"/api/v1/records/{record}/content")
            if status != 200:
                failures.append(f"acknowledged record {record} ({size} bytes) downloads {status}: {body[:200]!r}")
            elif hashlib.sha256(body).hexdigest() != digest:
                failures.append(
                    f"acknowledged record {record} downloads {len(body)} bytes that differ from the "
                    f"{size} uploaded (sha256 {hashlib.sha256(body).hexdigest()[:16]} != {digest[:16]})"
                )
        listed, cursor = [], None
        while True:
            status, body = run.call(
                "GET", f"/api/v1/patients/{patient}/records?limit=200" + (f"&cursor={cursor}" if cursor else "")
            )
            page = json.loads(body)
            listed += [r["id"] for r in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        unacked = [r for r in listed if r not in run.acked]
        if unacked:
            failures.append(
                f"{len(unacked)} records in the chart were never acknowledged: an upload resent with its "
                f"Idempotency-Key made a second record ({sorted(unacked)[:5]})"
            )
        missing = set(run.acked) - set(listed)
        if missing:
            failures.append(f"{len(missing)} acknowledged records are not in the chart: {sorted(missing)[:5]}")
        log(
            f"downloads checked: {len(run.acked)} acknowledged, {len(listed)} records in the chart, "
            f"{run.replays} answered as replays of a send whose answer was lost"
        )

        # 3. The janitor, then the vault's directory against the store.
        vault = os.path.join(data_dir, "vault")

        def inspect():
            temporaries = os.listdir(os.path.join(vault, "tmp"))
            objects = set()
            for shard in os.listdir(os.path.join(vault, "objects")):
                objects.update(os.listdir(os.path.join(vault, "objects", shard)))
            files = {
                r[0].lower()
                for r in db_rows(
                    args, data_dir, "SELECT hex(id) FROM vault_files", "SELECT replace(id::text, '-', '') FROM vault_files"
                )
            }
            records = {
                r[0]: r[1]
                for r in db_rows(
                    args, data_dir,
                    "SELECT lower(hex(id)), lower(hex(file_id)) FROM medical_records",
                    "SELECT replace(id::text, '-', ''), replace(file_id::text, '-', '') FROM medical_records",
                )
            }
            return temporaries, objects, files, records

        server.stop()
        temporaries, objects, files, records = inspect()
        log(
            f"before the janitor: {len(temporaries)} temporaries, {len(objects - files)} orphan objects "
            f"(left by the kills); {len(objects)} objects, {len(files)} file rows"
        )
        server.start(extra_env={"CAREPORT__VAULT__ORPHAN_GRACE_SECS": "0"})
        ready = server.wait_ready()
        deadline = time.monotonic() + 30
        swept = ""
        while True:
            swept = ready.get("components", {}).get("actor.files", {}).get("detail", "")
            if "last sweep" in swept or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            _, body = request(server.base, "GET", "/readyz", timeout=5)
            ready = json.loads(body)
        if "last sweep removed" not in swept:
            failures.append(f"the janitor's sweep did not complete after a restart with no grace: {swept or ready}")
        log(f"janitor: {swept}")
        server.stop()
        temporaries, objects, files, records = inspect()
        orphans = objects - files
        missing_objects = files - objects
        rowless = files - set(records.values())
        if temporaries:
            failures.append(f"{len(temporaries)} temporaries left in {vault}/tmp after the janitor")
        if orphans:
            failures.append(f"{len(orphans)} orphan objects (no vault_files row) after the janitor: {sorted(orphans)[:5]}")
        if missing_objects:
            failures.append(f"{len(missing_objects)} vault_files rows without their object: {sorted(missing_objects)[:5]}")
        if rowless:
            failures.append(f"{len(rowless)} vault_files rows that no record names: {sorted(rowless)[:5]}")
        # Every job has ended by the API's account; its row must say so too (rows still queued or
        # running count against ocr.max_queued, and in the administrators' statistics).
        stale = db_rows(
            args, data_dir,
            "SELECT lower(hex(o.id)), o.state, j.state, j.attempts, coalesce(j.last_error, '') FROM ocr_jobs o "
            "JOIN jobs j ON j.id = o.queue_job WHERE o.state IN ('queued', 'running')",
            "SELECT replace(o.id::text, '-', ''), o.state, j.state, j.attempts, coalesce(j.last_error, '') FROM ocr_jobs o "
            "JOIN jobs j ON j.id = o.queue_job WHERE o.state IN ('queued', 'running')",
        )
        if stale:
            failures.append(
                f"{len(stale)} ocr_jobs rows still queued/running after every job ended (they count against "
                f"ocr.max_queued for ever): " + "; ".join(f"{r[0]} row {r[1]}, queue {r[2]} after {r[3]} attempts ({r[4]})" for r in stale[:5])
            )
        attempts = db_rows(
            args, data_dir,
            "SELECT j.attempts, count(*) FROM ocr_jobs o JOIN jobs j ON j.id = o.queue_job GROUP BY 1 ORDER BY 1",
            "SELECT j.attempts, count(*) FROM ocr_jobs o JOIN jobs j ON j.id = o.queue_job GROUP BY 1 ORDER BY 1",
        )
        log("OCR jobs by attempts used (each kill during a job costs one): " + ", ".join(f"{a}: {n}" for a, n in attempts))
        log(
            f"vault after the janitor: {len(objects)} objects, {len(temporaries)} temporaries; "
            f"{len(files)} file rows, {len(records)} records"
        )

        # 4. The audit chain.
        out = server.cmd("audit", "verify", check=False)
        log(f"audit verify: {(out.stdout + out.stderr).strip().splitlines()[-1:]}")
        if out.returncode != 0:
            failures.append(f"careport audit verify failed ({out.returncode}): {out.stdout}{out.stderr}")

        # 6. No key, password or token in the server's log (DESIGN section 11: key material in logs).
        for k, v in env.items():
            if k.startswith("CAREPORT__SECRETS__") and v:
                secrets_used[k] = v
        secrets_dir = os.path.join(data_dir, "secrets")
        if os.path.isdir(secrets_dir):
            for name in os.listdir(secrets_dir):
                with open(os.path.join(secrets_dir, name)) as f:
                    secrets_used[f"secrets/{name}"] = f.read().strip()
        with open(server.log_path) as f:
            logged = f.read()
        leaked = [what for what, value in secrets_used.items() if len(value) >= 8 and value in logged]
        log(f"secrets searched for in {len(logged)} bytes of log: {len(secrets_used)}; found: {leaked or 'none'}")
        if leaked:
            failures.append(f"the server's log holds {', '.join(leaked)}")

        # 5. Panics.
        with open(server.log_path) as f:
            panics = [line.rstrip() for line in f if "panicked" in line]
        if panics:
            failures.append("the server panicked:\n  " + "\n  ".join(panics[:10]))
    except Violation as e:
        failures.append(str(e))
    finally:
        server.kill9()
        elapsed = time.monotonic() - t0
        if failures:
            print(f"\nCRASH TEST FAILED (seed {args.seed}, {elapsed:.0f} s):", flush=True)
            for f in failures:
                print(f"  - {f}", flush=True)
            try:
                with open(server.log_path) as f:
                    tail = f.readlines()[-40:]
                print("last lines of the server's log:\n" + "".join(tail), flush=True)
            except OSError:
                pass
        else:
            print(f"\ncrash test passed (seed {args.seed}, {elapsed:.0f} s)", flush=True)
        if args.keep or failures:
            print(f"work directory kept: {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
        if args.pg and not failures:
            subprocess.run(["psql", args.pg, "-qc", "DROP DATABASE IF EXISTS careport_crash WITH (FORCE)"])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
