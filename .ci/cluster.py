#!/usr/bin/env python3
"""Clustered careport, proven (issue #20): three `careport serve` processes of the real binary on
loopback, one PostgreSQL, one Redis, the S3 server (moto) and HAProxy in front, checking each
node's /readyz. Each scenario starts from a fresh database, bucket and Redis prefix, and is an
assertion, not a log line:

  1. jobs        200 jobs (image previews of uploads sent through every node) each run exactly
                 once in the cluster (done, one attempt), none lost; who ran them is printed.
  2. progress    OCR progress produced on node 1 reaches WebSocket clients on nodes 2 and 3; an
                 embedding job's progress reaches the clients on the nodes that did not run it.
  3. revocation  logout, deactivation and password reset on node 1 refuse the old token on
                 nodes 2 and 3 within one second (the delays are printed).
  4. plugins     a plugin uploaded through node 1 serves on 2 and 3; a disable reaches both.
  5. cache       a clinician's hours changed through node 1 are what node 3 computes slots from,
                 at once (the slots were read, and cached, on node 3 just before).
  6. kill        kill -9 of the node running an OCR job: the job finishes on another node;
                 kill -9 of a node receiving an upload: nothing is left behind after the janitor;
                 kill -9 right after an acknowledged upload: it downloads byte-identical from
                 every other node.
  7. rolling     a rolling restart (SIGTERM, start, ready) of all three nodes behind HAProxy
                 under steady reads, uploads and chat: no failed request the client was not told
                 to retry (503 with Retry-After), no acknowledged upload lost.
  8. outage      Redis stopped 10 s: nodes degraded, still serving reads, uploads and logins,
                 revocation through the store poll, recovery without a restart. PostgreSQL
                 stopped 10 s: /readyz 503, writes refused with 503, nothing lost, recovery
                 without a restart.

PostgreSQL and Redis are the harness's own (initdb into its work directory on port 55432, a
redis-server on 56379), so that stopping them touches nothing else. Needs: the binary, Debian's
PostgreSQL 15 with pgvector, redis-server, haproxy, python3; the S3 server is started with
.ci/start-s3.sh. Python 3 standard library only.

    python3 .ci/cluster.py BINARY [--only jobs,revocation] [--keep]

Exits 1 naming each failed scenario; the work directory (logs of every node) is kept then.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "actors", "ml", "tests", "fixtures")
PG_PORT = 55432
REDIS_PORT = 56379
LB_PORT = 58080
NODE_PORTS = (58081, 58082, 58083)
S3 = "http://127.0.0.1:9000"
READY_TIMEOUT = 120
# HAProxy's check of /readyz, and how long a node keeps serving after SIGTERM (must exceed
# inter × fall so that the balancer has taken it out before its listener closes).
CHECK_INTER_MS = 250
DRAIN_MS = 1200


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


# --- HTTP and WebSocket ------------------------------------------------------------------------


class Lost(Exception):
    """No answer: the connection failed or was cut."""


def call(port, method, path, token=None, body=None, ctype=None, headers=None, timeout=60):
    """One request on a fresh connection: (status, headers as a lower-cased dict, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if ctype:
        h["Content-Type"] = ctype
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=h)
        res = conn.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data
    except (OSError, http.client.HTTPException) as e:
        raise Lost(f"{method} {path.split('?')[0]} on :{port}: {type(e).__name__}: {e}") from None
    finally:
        conn.close()


def jget(port, path, token=None, want=200):
    status, _, body = call(port, "GET", path, token)
    check(status == want, f"GET {path} on :{port} answered {status}: {body[:300]!r}")
    return json.loads(body) if body else None


def jpost(port, path, token, payload, want, method="POST"):
    status, _, body = call(port, method, path, token, body=payload)
    check(status == want, f"{method} {path} on :{port} answered {status} (wanted {want}): {body[:300]!r}")
    return json.loads(body) if body else None


def multipart(fields, file_name, media, data):
    boundary = "cluster" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        f"Content-Type: {media}\r\n\r\n".encode()
    )
    parts += [data, f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class WebSocket:
    """A minimal RFC 6455 client: text frames, pings answered, close."""

    def __init__(self, port, path, token, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        self.sock.sendall(head.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Lost(f"WebSocket {path} on :{port}: closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status + b" ":
            raise Failed(f"WebSocket {path} on :{port} answered {status.decode(errors='replace')}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Lost("the WebSocket was cut")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, obj):
        self._send(0x1, json.dumps(obj).encode())

    def recv(self):
        """The next text message as JSON, or None when the server closed."""
        message = b""
        while True:
            b1, b2 = self._read(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b2 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                return None
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if b1 & 0x80:
                    return json.loads(message)

    def close(self):
        try:
            self._send(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


# --- files ---------------------------------------------------------------------------------------


def png(width, height, seed):
    """A small grey PNG whose pixels depend on `seed` (so no two are duplicates)."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width)) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def fixture(name, nonce):
    """An OCR fixture made unique (bytes after its end: readers skip them)."""
    with open(os.path.join(FIXTURES, name), "rb") as f:
        data = f.read()
    return data + f"\n%cluster-{nonce}\n".encode()


# --- the parts -----------------------------------------------------------------------------------


def as_postgres(cmd):
    """PostgreSQL refuses to run as root: its tools run as the `postgres` user then."""
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


class Postgres:
    """A PostgreSQL instance of the harness's own (so that stopping it touches nothing else)."""

    def __init__(self, work):
        versions = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(x) for x in v.split(".")])
        self.bin = f"/usr/lib/postgresql/{versions[-1]}/bin"
        self.dir = os.path.join(work, "pg")
        self.log = os.path.join(work, "pg.log")
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
            shutil.chown(self.dir, "postgres")
        subprocess.run(as_postgres([f"{self.bin}/initdb", "-D", self.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
            f.write(f"port = {PG_PORT}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nmax_connections = 300\n")
        self.admin = f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres"

    def start(self):
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "-D", self.dir, "-l", self.log, "-w", "start"]),
                       check=True, capture_output=True)

    def stop(self, mode="fast"):
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "-D", self.dir, "-m", mode, "-w", "stop"]),
                       check=False, capture_output=True)

    def psql(self, db, sql):
        out = subprocess.run(["psql", f"postgres://postgres@127.0.0.1:{PG_PORT}/{db}", "-v", "ON_ERROR_STOP=1",
                              "-At", "-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise Failed(f"psql: {out.stderr.strip()}")
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def fresh(self, db):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        self.psql("postgres", f"CREATE DATABASE {db}")
        self.psql(db, "CREATE EXTENSION IF NOT EXISTS vector")
        return f"postgres://postgres@127.0.0.1:{PG_PORT}/{db}"


class RedisServer:
    def __init__(self, work):
        self.log = os.path.join(work, "redis.log")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
        )
        wait_port(REDIS_PORT, 10, "Redis")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_port(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Failed(f"{what} did not listen on {port} within {timeout} s")


class Balancer:
    """HAProxy in front of the three nodes: it checks each node's /readyz and sends nothing to a
    node that answers 503 (draining, or its store down); a refused connection is retried on
    another node (nothing was sent)."""

    def __init__(self, work):
        self.cfg = os.path.join(work, "haproxy.cfg")
        self.log = os.path.join(work, "haproxy.log")
        servers = "\n".join(
            f"    server node{i + 1} 127.0.0.1:{p} check inter {CHECK_INTER_MS}ms fall 1 rise 2"
            for i, p in enumerate(NODE_PORTS)
        )
        with open(self.cfg, "w") as f:
            f.write(f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout check 2s
    retries 3
    option redispatch
    retry-on conn-failure
    option http-server-close
frontend careport
    bind 127.0.0.1:{LB_PORT}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["haproxy", "-f", self.cfg, "-db"], stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT)
        wait_port(LB_PORT, 10, "HAProxy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Node:
    def __init__(self, cluster, index):
        self.cluster, self.index = cluster, index
        self.port = NODE_PORTS[index]
        self.name = f"node{index + 1}"
        self.data = os.path.join(cluster.dir, self.name)
        self.log = os.path.join(cluster.dir, f"{self.name}.log")
        self.proc = None
        self.extra = {}

    def env(self):
        return dict(self.cluster.env, CAREPORT__DATA_DIR=self.data, CAREPORT__HTTP__PORT=str(self.port),
                    CAREPORT__CLUSTER__NODE_NAME=self.name, **self.extra)

    def start(self, **extra_env):
        with open(self.log, "a") as f:
            f.write(f"\n===== start at {time.time():.3f}\n")
            f.flush()
            self.proc = subprocess.Popen([self.cluster.binary, "--config", self.cluster.run.config, "serve"],
                                         env=dict(self.env(), **extra_env),
                                         stdout=f, stderr=subprocess.STDOUT)

    def ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode} (see {self.log})")
            try:
                status, _, body = call(self.port, "GET", "/readyz", timeout=5)
                if status == 200:
                    return json.loads(body)
            except Lost:
                pass
            time.sleep(0.1)
        raise Failed(f"{self.name} was not ready within {timeout} s (see {self.log})")

    def readyz(self):
        try:
            status, _, body = call(self.port, "GET", "/readyz", timeout=5)
            return status, json.loads(body)
        except (Lost, ValueError):
            return None, None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failed(f"{self.name} did not stop within {timeout} s of SIGTERM")

    def outbox(self):
        """The e-mails this node wrote (no SMTP configured): their text, oldest first."""
        box = os.path.join(self.data, "outbox")
        if not os.path.isdir(box):
            return []
        out = []
        for name in sorted(os.listdir(box), key=lambda n: os.path.getmtime(os.path.join(box, n))):
            with open(os.path.join(box, name), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return out


class Cluster:
    """One scenario's cluster: a fresh database, bucket and Redis prefix; three nodes."""

    def __init__(self, run, name, node_env=None):
        self.run, self.name, self.binary = run, name, run.binary
        self.dir = os.path.join(run.work, name)
        os.makedirs(self.dir)
        db = f"cluster_{name}"
        self.db = db
        self.bucket = f"careport-cluster-{name}-{uuid.uuid4().hex[:8]}"
        check(subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", f"{S3}/{self.bucket}"],
                             capture_output=True, text=True).stdout in ("200", "409"), f"could not create bucket {self.bucket}")
        self.env = dict(run.env)
        self.env.update(
            CAREPORT__DATABASE__URL=run.pg.fresh(db),
            CAREPORT__REDIS__URL=f"redis://127.0.0.1:{REDIS_PORT}/",
            CAREPORT__REDIS__PREFIX=f"careport-{name}-{uuid.uuid4().hex[:8]}:",
            CAREPORT__STORAGE__BACKEND="s3",
            CAREPORT__STORAGE__S3__BUCKET=self.bucket,
            CAREPORT__STORAGE__S3__ENDPOINT=S3,
            CAREPORT__STORAGE__S3__REGION="us-east-1",
            CAREPORT__STORAGE__S3__ALLOW_HTTP="true",
            CAREPORT__STORAGE__S3__ACCESS_KEY_ID="testing",
            CAREPORT__STORAGE__S3__SECRET_ACCESS_KEY="testing",
        )
        self.nodes = [Node(self, i) for i in range(3)]
        for n, extra in zip(self.nodes, node_env or [{}, {}, {}]):
            n.extra = extra
        self.lb = LB_PORT

    def cli(self, *args):
        out = subprocess.run([self.binary, "--config", self.run.config, *args], env=dict(self.nodes[0].env(), CAREPORT__LOG__LEVEL="warn"),
                             capture_output=True, text=True)
        check(out.returncode == 0, f"`careport {' '.join(args)}` failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        return out.stdout

    def up(self, clinicians=2, patients=3):
        seeded = self.cli("seed-demo", "--admins", "1", "--clinicians", str(clinicians), "--patients", str(patients),
                          "--patient-accounts", "2", "--appointments-per-patient", "0")
        self.accounts = parse_seed(seeded)
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.ready()
        self.wait_balanced()

    def wait_balanced(self, timeout=15):
        """Until HAProxy sends to every node (its checks need `rise` good answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen = {self.who(self.lb) for _ in range(9)}
            except (Lost, Failed, ValueError):  # HAProxy's own 503 page while no node is up yet
                seen = set()
            if len(seen) == 3:
                return
            time.sleep(0.2)
        raise Failed("HAProxy did not send to all three nodes")

    def who(self, port):
        """The node that answers on `port` (through the balancer: whichever it picked)."""
        status, headers, body = call(port, "GET", "/readyz", timeout=5)
        return headers.get("x-careport-node") or json.loads(body).get("node")

    def down(self):
        for n in self.nodes:
            try:
                n.stop(timeout=30)
            except Failed:
                pass

    def login(self, who, port=None):
        email, password = self.accounts[who]
        return jpost(port or self.lb, "/api/v1/auth/login", None, {"email": email, "password": password}, 200)

    def token(self, who, port=None):
        return self.login(who, port)["access_token"]

    def sql(self, query):
        return self.run.pg.psql(self.db, query)


def parse_seed(out):
    """`careport seed-demo`'s accounts: "admin", "patient", "clinician doctor", "clinician nurse"
    → (email, password) of the first of each."""
    accounts = {}
    for line in out.splitlines():
        m = re.match(r"^(admin|clinician|patient)\s+(\S+@\S+)\s+(\S+)\s*$", line)
        if not m:
            continue
        role, email, password = m.groups()
        if role == "clinician":
            role = "clinician " + ("nurse" if email.startswith("nurse") else "doctor")
        accounts.setdefault(role, (email, password))
    return accounts


# --- shared steps ------------------------------------------------------------------------------------


def doctor_patient(c, port=None):
    """A doctor's token and a new patient of theirs."""
    token = c.token("clinician doctor", port)
    patient = jpost(port or c.lb, "/api/v1/patients", token, {"full_name": f"Cluster Patient {uuid.uuid4().hex[:6]}"}, 201)
    return token, patient["id"]


def upload(port, token, patient, data, media, name, record_type="laboratory-results", fields=(), key=None):
    """Upload a file into the chart: (status, headers, answer)."""
    body, ctype = multipart([("record_type", record_type), ("title", f"cluster {name}"), *fields], name, media, data)
    headers = {"Idempotency-Key": key} if key else None
    status, headers, answer = call(port, "POST", f"/api/v1/patients/{patient}/records", token, body=body, ctype=ctype,
                                   headers=headers, timeout=120)
    return status, headers, (json.loads(answer) if answer[:1] == b"{" else answer)


def download(port, token, record):
    status, _, body = call(port, "GET", f"/api/v1/records/{record}/content", token, timeout=120)
    check(status == 200, f"record {record} downloads {status} on :{port}: {body[:200]!r}")
    return body


def wait_until(what, fn, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise Failed(f"{what}: not within {timeout} s (last: {last!r})")


# --- 1. jobs ---------------------------------------------------------------------------------------------


def scenario_jobs(run):
    """200 image uploads through the balancer (so through every node) make 200 preview jobs;
    each runs exactly once in the cluster, whichever node claims it."""
    c = run.cluster("jobs")
    token, patient = doctor_patient(c)
    records, lock, errors = [], threading.Lock(), []
    # seed-demo's own images made preview jobs too: those are counted with ours.
    seeded = int(c.sql("SELECT COUNT(*) FROM jobs WHERE kind = 'imaging.preview'")[0][0])
    total = seeded + 200

    def client(i):
        try:
            for n in range(i, 200, 4):
                status, _, answer = upload(c.lb, token, patient, png(24, 16, f"jobs-{n}"), "image/png", f"image-{n}.png",
                                           record_type="medical-images", fields=[("image_kind", "xray")],
                                           key=f"jobs-{n}")
                check(status == 201, f"image upload {n} answered {status}: {str(answer)[:200]}")
                with lock:
                    records.append(answer["id"])
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "; ".join(errors[:3]))
    check(len(set(records)) == 200, f"{len(set(records))} records for 200 uploads")

    def settled():
        rows = c.sql("SELECT state, COUNT(*) FROM jobs WHERE kind = 'imaging.preview' GROUP BY state")
        states = {s: int(n) for s, n in rows}
        return states if states.get("done", 0) >= total or states.get("dead") else None

    states = wait_until("200 preview jobs done", settled, 120, every=0.5)
    check(states == {"done": total}, f"preview jobs by state: {states} (seed-demo's {seeded} and our 200)")
    rows = c.sql("SELECT attempts, COUNT(*) FROM jobs WHERE kind = 'imaging.preview' GROUP BY attempts")
    check(rows == [["1", str(total)]], f"attempts per job (none may run twice): {rows}")
    owners = dict((o, int(n)) for o, n in c.sql(
        "SELECT lease_owner, COUNT(*) FROM jobs WHERE kind = 'imaging.preview' GROUP BY lease_owner ORDER BY 1"))
    check(set(owners) <= {"node1", "node2", "node3"}, f"jobs completed by unknown owners: {owners}")
    check(len(owners) >= 2, f"the jobs were not spread over the nodes: {owners}")
    ids = "', '".join(records)
    previews = c.sql(f"SELECT preview, COUNT(*) FROM record_images WHERE record_id IN ('{ids}') GROUP BY preview")
    check(previews == [["ready", "200"]], f"previews of the 200 acknowledged images: {previews}")
    return f"200 jobs (and seed-demo's {seeded}), each done once (one attempt); run by {owners}"


# --- 2. progress -------------------------------------------------------------------------------------------


def follow(port, path, token, out, key):
    """Collect a job's events from a WebSocket until its terminal event (in a thread)."""
    events = []
    out[key] = events
    try:
        ws = WebSocket(port, path, token)
        while True:
            e = ws.recv()
            if e is None:
                break
            events.append(e)
            if e.get("type") in ("done", "failed", "cancelled"):
                break
        ws.close()
    except Exception as e:
        events.append({"type": "client-error", "error": f"{type(e).__name__}: {e}"})


def scenario_progress(run):
    """OCR runs on node 1 only (the others do not run OCR jobs): its page progress reaches
    WebSocket clients on nodes 2 and 3. An embedding job runs wherever it is claimed: clients on
    every node hear its batches."""
    c = run.cluster("progress", node_env=[{}, {"CAREPORT__OCR__ENABLED": "false"}, {"CAREPORT__OCR__ENABLED": "false"}])
    n1, n2, n3 = c.nodes
    token, patient = doctor_patient(c, n1.port)
    status, _, rec = upload(n1.port, token, patient, fixture("scanned.pdf", uuid.uuid4().hex), "application/pdf", "scan.pdf")
    check(status == 201, f"upload answered {status}: {rec}")
    job = jpost(n1.port, f"/api/v1/records/{rec['id']}/ocr", token, {"language": "en"}, 202)["job_id"]
    out = {}
    threads = [threading.Thread(target=follow, args=(n.port, f"/api/v1/ocr/jobs/{job}/events", token, out, n.name))
               for n in (n2, n3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    owner = c.sql(f"SELECT j.lease_owner FROM ocr_jobs o JOIN jobs j ON j.id = o.queue_job WHERE o.id = '{job}'")
    check(owner == [["node1"]], f"the OCR job ran on {owner}, not node1")
    ocr_summary = {}
    for name in ("node2", "node3"):
        events = out.get(name, [])
        kinds = [e.get("type") for e in events]
        check("progress" in kinds and kinds[-1:] == ["done"], f"OCR events on {name}: {events}")
        ocr_summary[name] = kinds.count("progress")

    admin = c.token("admin")
    text = "\n\n".join(
        f"Section {i}. Patients recovering from chemotherapy should drink water, rest, and call the clinic "
        f"when a fever passes 38 degrees. Note {i} on nausea, fatigue and appetite." for i in range(400))
    doc = jpost(n1.port, "/api/v1/knowledge/documents", admin,
                {"title": "Recovery notes", "text": text, "audience": "all", "language": "en"}, 201)
    kjob = doc["job_id"]
    out = {}
    threads = [threading.Thread(target=follow, args=(n.port, f"/api/v1/knowledge/jobs/{kjob}/events", admin, out, n.name))
               for n in c.nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    owner = c.sql(f"SELECT j.lease_owner FROM knowledge_jobs k JOIN jobs j ON j.id = k.queue_job WHERE k.id = '{kjob}'")
    check(len(owner) == 1, f"the embedding job's queue row: {owner}")
    ran_on = owner[0][0]
    k_summary = {}
    for name, events in out.items():
        kinds = [e.get("type") for e in events]
        check(kinds[-1:] == ["done"], f"embedding events on {name}: {events[-3:]}")
        batches = [e for e in events if e.get("type") == "progress" and e.get("chunks_done", 0) > 0]
        k_summary[name] = len(batches)
        if name != ran_on:
            check(batches, f"no batch progress reached {name} (the job ran on {ran_on}): {kinds}")
    return (f"OCR on node1: progress events heard on node2/node3: {ocr_summary}; "
            f"embedding job on {ran_on}: batch events heard {k_summary}")


# --- 3. revocation ---------------------------------------------------------------------------------------


def refused_within(c, token, nodes, bound, started):
    """Poll `nodes` with `token` until each refuses it (401): the delay of each after `started`."""
    delays = {}

    def poll(node):
        deadline = started + bound + 5
        while time.monotonic() < deadline:
            status, _, _ = call(node.port, "GET", "/api/v1/auth/me", token, timeout=5)
            if status == 401:
                delays[node.name] = time.monotonic() - started
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=poll, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in nodes:
        check(n.name in delays, f"{n.name} still accepted the token {bound + 5:.0f} s later")
        check(delays[n.name] <= bound, f"{n.name} refused the token after {delays[n.name]:.3f} s (bound {bound} s)")
    return delays


def accepted_everywhere(c, token, nodes):
    for n in nodes:
        status, _, body = call(n.port, "GET", "/api/v1/auth/me", token)
        check(status == 200, f"{n.name} refused a live token: {status} {body[:200]!r}")


def scenario_revocation(run):
    c = run.cluster("revocation")
    n1, others = c.nodes[0], c.nodes[1:]
    figures = {}
    # Logout.
    token = c.token("patient", n1.port)
    accepted_everywhere(c, token, c.nodes)
    started = time.monotonic()
    status, _, _ = call(n1.port, "POST", "/api/v1/auth/logout", token, body={})
    check(status == 204, f"logout answered {status}")
    figures["logout"] = refused_within(c, token, others, 1.0, started)
    # Deactivation by an administrator.
    doctor_email = c.accounts["clinician doctor"][0] if "clinician doctor" in c.accounts else None
    token = c.token("clinician doctor", n1.port)
    accepted_everywhere(c, token, c.nodes)
    admin = c.token("admin", n1.port)
    me = jget(n1.port, "/api/v1/auth/me", token)
    started = time.monotonic()
    jpost(n1.port, f"/api/v1/admin/users/{me['id']}", admin, {"active": False}, 200, method="PATCH")
    figures["deactivation"] = refused_within(c, token, others, 1.0, started)
    jpost(n1.port, f"/api/v1/admin/users/{me['id']}", admin, {"active": True}, 200, method="PATCH")
    # Password reset (the link from node 1's outbox).
    email = c.accounts["patient"][0]
    token = c.token("patient", n1.port)
    accepted_everywhere(c, token, c.nodes)
    before = len(n1.outbox())
    status, _, _ = call(n1.port, "POST", "/api/v1/auth/password/forgot", None, body={"email": email})
    check(status == 202, f"forgot answered {status}")
    mails = wait_until("the reset e-mail on node 1", lambda: n1.outbox()[before:] or None, 15)
    link = next((line for m in mails for line in m.splitlines() if "/reset-password?token=" in line), None)
    check(link, "no reset link in the e-mail")
    reset = link.strip().split("token=", 1)[1]
    started = time.monotonic()
    status, _, body = call(n1.port, "POST", "/api/v1/auth/password/reset", None,
                           body={"token": reset, "new_password": f"cluster reset {uuid.uuid4().hex}"})
    check(status == 204, f"reset answered {status}: {body[:200]!r}")
    figures["password reset"] = refused_within(c, token, others, 1.0, started)
    worst = max(d for f in figures.values() for d in f.values())
    run.figures["revocation"] = figures
    return "refused on nodes 2 and 3 after: " + "; ".join(
        f"{k} " + ", ".join(f"{n} {d * 1000:.0f} ms" for n, d in sorted(v.items())) for k, v in figures.items()
    ) + f" (worst {worst * 1000:.0f} ms, bound 1 s)"


# --- 4. plugins ------------------------------------------------------------------------------------------


def scenario_plugins(run):
    c = run.cluster("plugins")
    n1, others = c.nodes[0], c.nodes[1:]
    admin = c.token("admin", n1.port)
    base = os.path.join(ROOT, "plugins", "examples", "redact-phi")
    with open(os.path.join(base, "plugin.toml")) as f:
        manifest = f.read()
    with open(os.path.join(base, "redact_phi.wasm"), "rb") as f:
        module = f.read()
    # The same module under a name of this run's own: a new plugin, not the bundled one.
    name = f"cluster-redact-{uuid.uuid4().hex[:6]}"
    manifest = re.sub(r'(?m)^name\s*=\s*"[^"]*"', f'name = "{name}"', manifest, count=1)
    up = jpost(n1.port, "/api/v1/admin/plugins", admin,
               {"manifest": manifest, "module_base64": base64.b64encode(module).decode()}, 201)
    check(up["name"] == name, f"uploaded {up}")
    call_body = {"text": "Write to jane.doe@example.org", "pages": [], "language": "en"}
    jpost(n1.port, f"/api/v1/admin/plugins/{name}/enable", admin, {}, 200)
    started = time.monotonic()
    served = {}
    for n in others:
        def ok(n=n):
            status, _, body = call(n.port, "POST", f"/api/v1/admin/plugins/{name}/call", admin, body=call_body)
            return status == 200 and "jane.doe@example.org" not in body.decode() and b"email" in body
        wait_until(f"plugin {name} serving on {n.name}", ok, 10, every=0.02)
        served[n.name] = time.monotonic() - started
    jpost(n1.port, f"/api/v1/admin/plugins/{name}/disable", admin, {}, 200)
    started = time.monotonic()
    refused = {}
    for n in others:
        def off(n=n):
            status, _, body = call(n.port, "POST", f"/api/v1/admin/plugins/{name}/call", admin, body=call_body)
            return status == 422 and b"plugin_refused" in body
        wait_until(f"plugin {name} disabled on {n.name}", off, 10, every=0.02)
        refused[n.name] = time.monotonic() - started
    return ("serving on " + ", ".join(f"{k} after {v * 1000:.0f} ms" for k, v in served.items()) +
            "; disabled on " + ", ".join(f"{k} after {v * 1000:.0f} ms" for k, v in refused.items()))


# --- 5. cache --------------------------------------------------------------------------------------------


def scenario_cache(run):
    c = run.cluster("cache")
    n1, n3 = c.nodes[0], c.nodes[2]
    admin = c.token("admin", n1.port)
    doctors = jget(n1.port, "/api/v1/clinicians?staff_role=doctor", admin)["items"]
    check(doctors, "no doctor in the demo clinic")
    doctor = doctors[0]["id"]
    now = time.time()
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 14 * 86400))
    slots = f"/api/v1/clinicians/{doctor}/slots?from={frm}&to={to}"
    every_day = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(1, 8)]
    jpost(n1.port, f"/api/v1/clinicians/{doctor}/hours", admin, {"hours": every_day}, 200, method="PUT")
    before = jget(n3.port, slots, admin)["items"]
    jget(n3.port, slots, admin)  # read twice: the second from the cache when Redis holds it
    check(len(before) > 0, "no slots before the change")
    one_morning = [{"weekday": 3, "start_minute": 540, "end_minute": 600}]
    jpost(n1.port, f"/api/v1/clinicians/{doctor}/hours", admin, {"hours": one_morning}, 200, method="PUT")
    after = jget(n3.port, slots, admin)["items"]  # at once: no wait, no retry
    check(0 < len(after) < len(before), f"node 3 computed {len(after)} slots after the change (before: {len(before)})")
    return f"node 3: {len(before)} slots before, {len(after)} right after the hours changed on node 1"


# --- 6. kill -9 ------------------------------------------------------------------------------------------


def bucket_objects(bucket):
    """The committed objects of the bucket (moto answers unsigned listings)."""
    keys, token = [], None
    while True:
        q = "list-type=2" + (f"&continuation-token={urllib.parse.quote(token)}" if token else "")
        out = subprocess.run(["curl", "-s", f"{S3}/{bucket}?{q}"], capture_output=True, text=True).stdout
        keys += re.findall(r"<Key>([^<]+)</Key>", out)
        m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", out)
        if not m:
            return keys
        token = m.group(1)


def scenario_kill(run):
    # Short leases so that a dead node's job is taken up within the run; a short upload timeout
    # so that the janitor's grace on S3 (upload timeout + 60 s) is short too.
    fast = {"CAREPORT__JOBS__LEASE_SECS": "4", "CAREPORT__VAULT__UPLOAD_TIMEOUT_SECS": "5",
            "CAREPORT__VAULT__ORPHAN_GRACE_SECS": "0", "CAREPORT__VAULT__JANITOR_INTERVAL_SECS": "5"}
    c = run.cluster("kill", node_env=[dict(fast) for _ in range(3)])
    token, patient = doctor_patient(c)
    by_name = {n.name: n for n in c.nodes}
    notes = []

    # a) The node running an OCR job dies: another node finishes the job.
    status, _, rec = upload(c.lb, token, patient, fixture("scanned.pdf", uuid.uuid4().hex), "application/pdf", "scan.pdf")
    check(status == 201, f"upload answered {status}: {rec}")
    job = jpost(c.lb, f"/api/v1/records/{rec['id']}/ocr", token, {"language": "en"}, 202)["job_id"]
    q = f"SELECT j.lease_owner, j.state, o.state FROM ocr_jobs o JOIN jobs j ON j.id = o.queue_job WHERE o.id = '{job}'"

    def running():
        rows = c.sql(q)
        return rows[0][0] if rows and rows[0][1] == "running" and rows[0][0] else None

    victim = by_name[wait_until("the OCR job running", running, 30, every=0.02)]
    victim.kill9()
    killed_at = time.monotonic()
    done = wait_until("the OCR job finished by another node",
                      lambda: (lambda r: r if r and r[0][1] in ("done", "dead") else None)(c.sql(q)), 90, every=0.25)
    check(done[0][1] == "done" and done[0][2] == "done", f"after the kill the OCR job is {done}")
    check(done[0][0] != victim.name, f"the job was finished by {done[0][0]}, the killed node")
    text = jget(c.lb, f"/api/v1/records/{rec['id']}/text", token)
    check("laboratory" in text["text"].lower(), "the OCR text after the takeover")
    notes.append(f"OCR job: {victim.name} killed while running it, {done[0][0]} finished it "
                 f"{time.monotonic() - killed_at:.1f} s later")
    victim.start()
    victim.ready()

    # b) A node dies while receiving an upload: nothing is left of it.
    n2 = c.nodes[1]
    size = 24 << 20
    data = random.Random(6).randbytes(size)
    body, ctype = multipart([("record_type", "laboratory-results"), ("title", "cluster killed upload")],
                            "killed.pdf", "application/pdf", b"%PDF-1.7\n" + data)
    sent, cut = [0], threading.Event()

    def sender():
        try:
            conn = socket.create_connection(("127.0.0.1", n2.port), timeout=30)
            head = (f"POST /api/v1/patients/{patient}/records HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n")
            conn.sendall(head.encode())
            for i in range(0, len(body), 256 << 10):
                conn.sendall(body[i:i + (256 << 10)])
                sent[0] = i
                time.sleep(0.01)
            conn.settimeout(30)
            answer = conn.recv(4096)
            cut.set() if not answer else sent.append(answer)
        except OSError:
            cut.set()

    t = threading.Thread(target=sender)
    t.start()
    wait_until("half the upload sent", lambda: sent[0] > len(body) // 2, 60, every=0.01)
    n2.kill9()
    t.join(timeout=60)
    check(cut.is_set(), f"the killed node answered the upload: {sent[1:]!r}")
    n2.start()
    n2.ready()
    rows = c.sql("SELECT COUNT(*) FROM medical_records WHERE title = 'cluster killed upload'")
    check(rows == [["0"]], f"records of the killed upload: {rows}")

    # c) A node dies right after acknowledging an upload: every other node serves it whole.
    n3 = c.nodes[2]
    payload = b"%PDF-1.7\n" + random.Random(7).randbytes(3 << 20)
    status, _, rec = upload(n3.port, token, patient, payload, "application/pdf", "acked.pdf", key="acked-then-killed")
    check(status == 201, f"the upload answered {status}")
    n3.kill9()
    for n in c.nodes[:2]:
        got = download(n.port, token, rec["id"])
        check(hashlib.sha256(got).digest() == hashlib.sha256(payload).digest(),
              f"the acknowledged upload downloads differently from {n.name}")
    n3.start()
    n3.ready()

    # After the janitor: every object in the bucket is a file the store names (an object
    # committed by the killed node before its transaction would be an orphan: swept after the
    # grace, upload timeout + 60 s, on S3).
    def clean():
        objects = {k.rsplit("/", 1)[-1] for k in bucket_objects(c.bucket)}
        named = {r[0].replace("-", "") for r in c.sql("SELECT id FROM vault_files")}
        return (objects == named, objects - named, named - objects)

    state = clean()
    if not state[0] and not state[2]:
        log(f"kill: {len(state[1])} orphan object(s); waiting for the janitor's grace")
        state = wait_until("the janitor sweeping orphans", lambda: (lambda s: s if s[0] else None)(clean()), 120, every=2)
    check(state[0], f"bucket and store differ: orphans {state[1]}, missing {state[2]}")
    notes.append(f"upload cut at {sent[0] >> 20} MiB of {size >> 20} by kill -9: no record, no object left")
    notes.append("an upload acknowledged just before kill -9 downloads byte-identical from both other nodes")
    return "; ".join(notes)


# --- 7. rolling restart ----------------------------------------------------------------------------------


class Load:
    """Steady reads, uploads and chat through the balancer. A request fails unless it is answered
    2xx, or 503 with Retry-After (the client was told to retry: it does, the same request)."""

    def __init__(self, c, token, patient, patient_token):
        self.c, self.token, self.patient, self.patient_token = c, token, patient, patient_token
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failures, self.counts, self.acked = [], {}, {}
        self.told_to_retry = 0

    def count(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)

    def send(self, kind, method, path, token, **kw):
        """Send until answered with something other than 503 + Retry-After; None if it failed."""
        for _ in range(50):
            try:
                status, headers, body = call(self.c.lb, method, path, token, **kw)
            except Lost as e:
                self.fail(f"{kind}: {e}")
                return None
            if status == 503 and "retry-after" in headers:
                with self.lock:
                    self.told_to_retry += 1
                time.sleep(min(float(headers["retry-after"]), 1.0))
                continue
            if status >= 300:
                self.fail(f"{kind}: {method} {path.split('?')[0]} answered {status}: {body[:200]!r}")
                return None
            self.count(kind)
            return status, headers, body
        self.fail(f"{kind}: still told to retry after 50 tries")
        return None

    def reader(self):
        while not self.stop.is_set():
            self.send("read", "GET", f"/api/v1/patients/{self.patient}", self.token)

    def uploader(self, i):
        n = 0
        while not self.stop.is_set():
            n += 1
            data = b"%PDF-1.7\n" + os.urandom(random.randint(1 << 10, 256 << 10))
            body, ctype = multipart([("record_type", "laboratory-results"), ("title", f"rolling {i}-{n}")],
                                    f"rolling-{i}-{n}.pdf", "application/pdf", data)
            got = self.send("upload", "POST", f"/api/v1/patients/{self.patient}/records", self.token, body=body,
                            ctype=ctype, headers={"Idempotency-Key": f"rolling-{i}-{n}"})
            if got:
                record = json.loads(got[2])["id"]
                with self.lock:
                    self.acked[record] = hashlib.sha256(data).hexdigest()

    def chatter(self):
        while not self.stop.is_set():
            got = self.send("chat session", "POST", "/api/v1/chat/sessions", self.patient_token, body={})
            if not got:
                continue
            session = json.loads(got[2])["id"]
            for q in ("How do I book an appointment?", "What should I eat after chemotherapy?"):
                if self.stop.is_set():
                    break
                self.send("chat answer", "POST", f"/api/v1/chat/sessions/{session}/messages", self.patient_token,
                          body={"text": q})

    def threads(self):
        return [threading.Thread(target=self.reader), threading.Thread(target=self.reader),
                threading.Thread(target=self.uploader, args=(1,)), threading.Thread(target=self.uploader, args=(2,)),
                threading.Thread(target=self.chatter)]


def scenario_rolling(run):
    c = run.cluster("rolling")
    token, patient = doctor_patient(c)
    load = Load(c, token, patient, c.token("patient"))
    threads = load.threads()
    for t in threads:
        t.start()
    time.sleep(2)
    steps = []
    try:
        for n in c.nodes:
            pid = n.proc.pid
            t0 = time.monotonic()
            n.stop()
            stopped = time.monotonic() - t0
            n.start()
            n.ready()
            check(n.proc.pid != pid, f"{n.name} was not restarted")
            c.wait_balanced()
            steps.append(f"{n.name} stopped in {stopped:.1f} s, back in {time.monotonic() - t0:.1f} s")
            time.sleep(1)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=120)
    check(not load.failures, f"{len(load.failures)} failed requests, e.g. {load.failures[:3]}")
    check(load.counts.get("upload", 0) > 0 and load.counts.get("read", 0) > 0 and load.counts.get("chat answer", 0) > 0,
          f"the load did not run: {load.counts}")
    for record, digest in load.acked.items():
        got = download(c.lb, token, record)
        check(hashlib.sha256(got).hexdigest() == digest, f"acknowledged record {record} downloads differently")
    listed = len(c.sql(f"SELECT id FROM medical_records WHERE patient_id = '{patient}' AND deleted_at IS NULL"))
    check(listed == len(load.acked), f"{listed} records in the chart for {len(load.acked)} acknowledged uploads")
    return (f"{'; '.join(steps)}. Requests: {dict(sorted(load.counts.items()))}, 0 failed, "
            f"{load.told_to_retry} answered 503 + Retry-After and retried; {len(load.acked)} uploads acknowledged, "
            "all in the chart, byte-identical")


# --- 8. outage -------------------------------------------------------------------------------------------


def scenario_outage(run):
    c = run.cluster("outage")
    token, patient = doctor_patient(c)
    pids = [n.proc.pid for n in c.nodes]
    notes = []

    # Redis away for ten seconds.
    run.redis.stop()
    gone = time.monotonic()

    def degraded():
        states = [n.readyz() for n in c.nodes]
        return all(s == 200 and b and b["status"] == "degraded" and b["components"]["redis"]["status"] == "down"
                   for s, b in states) and states
    wait_until("every node degraded without Redis", degraded, 10, every=0.2)
    status, _, _ = call(c.lb, "GET", f"/api/v1/patients/{patient}", token)
    check(status == 200, f"a read without Redis answered {status}")
    status, _, rec = upload(c.lb, token, patient, b"%PDF-1.7\n" + os.urandom(4096), "application/pdf", "noredis.pdf")
    check(status == 201, f"an upload without Redis answered {status}: {rec}")
    victim = c.token("patient", c.nodes[0].port)
    accepted_everywhere(c, victim, c.nodes)
    started = time.monotonic()
    status, _, _ = call(c.nodes[0].port, "POST", "/api/v1/auth/logout", victim, body={})
    check(status == 204, f"logout without Redis answered {status}")
    # Without the bus, the other nodes learn of it from the store poll (every 5 s).
    delays = refused_within(c, victim, c.nodes[1:], 6.0, started)
    time.sleep(max(0.0, 10 - (time.monotonic() - gone)))
    run.redis.start()

    def recovered():
        states = [n.readyz() for n in c.nodes]
        return all(s == 200 and b["components"]["redis"]["status"] == "ok" and b["components"]["bus"]["status"] == "ok"
                   for s, b in states) and states
    wait_until("every node back on Redis", recovered, 20, every=0.2)
    victim = c.token("patient", c.nodes[0].port)
    started = time.monotonic()
    call(c.nodes[0].port, "POST", "/api/v1/auth/logout", victim, body={})
    after = refused_within(c, victim, c.nodes[1:], 1.0, started)
    notes.append("Redis stopped 10 s: all nodes degraded (200), reads, uploads and logins served; a logout reached "
                 + ", ".join(f"{k} in {v:.2f} s" for k, v in delays.items()) + " by the store poll; back on Redis "
                 + "without a restart, a logout then reached " + ", ".join(f"{k} in {v * 1000:.0f} ms" for k, v in after.items()))

    # PostgreSQL away for ten seconds.
    acked = {}
    for i in range(3):
        data = b"%PDF-1.7\n" + os.urandom(8192)
        status, _, rec = upload(c.lb, token, patient, data, "application/pdf", f"before-{i}.pdf")
        check(status == 201, f"upload before the outage answered {status}")
        acked[rec["id"]] = hashlib.sha256(data).hexdigest()
    run.pg.stop("fast")
    gone = time.monotonic()
    try:
        wait_until("every node's /readyz 503 without PostgreSQL",
                   lambda: all(n.readyz()[0] == 503 for n in c.nodes), 10, every=0.2)
        status, headers, body = upload(c.nodes[1].port, token, patient, b"%PDF-1.7\n" + os.urandom(4096),
                                       "application/pdf", "during.pdf", key="during-outage")
        check(status == 503 and "retry-after" in headers, f"an upload without the store answered {status} {headers.get('retry-after')}: {body}")
        status, headers, _ = call(c.nodes[2].port, "GET", f"/api/v1/patients/{patient}", token)
        check(status == 503 and "retry-after" in headers, f"a read without the store answered {status}")
        time.sleep(max(0.0, 10 - (time.monotonic() - gone)))
    finally:
        run.pg.start()
    back = time.monotonic()
    wait_until("every node ready again", lambda: all(n.readyz()[0] == 200 for n in c.nodes), 30, every=0.2)
    recovered_in = time.monotonic() - back
    c.wait_balanced()
    check([n.proc.pid for n in c.nodes] == pids and all(n.proc.poll() is None for n in c.nodes),
          "a node restarted or died during the outages")
    for record, digest in acked.items():
        check(hashlib.sha256(download(c.lb, token, record)).hexdigest() == digest, f"record {record} after the outage")
    status, _, rec = upload(c.lb, token, patient, b"%PDF-1.7\n" + os.urandom(4096), "application/pdf", "after.pdf",
                            key="during-outage")
    check(status == 201, f"the refused upload sent again after the outage answered {status}: {rec}")
    notes.append(f"PostgreSQL stopped 10 s: /readyz 503 on all nodes, reads and uploads refused with 503 + Retry-After; "
                 f"ready again {recovered_in:.1f} s after it came back, same processes; the 3 uploads acknowledged "
                 "before it download byte-identical, the refused one succeeds when sent again")
    return "; ".join(notes)


# --- the run ---------------------------------------------------------------------------------------------

SCENARIOS = [
    ("jobs", scenario_jobs),
    ("progress", scenario_progress),
    ("revocation", scenario_revocation),
    ("plugins", scenario_plugins),
    ("cache", scenario_cache),
    ("kill", scenario_kill),
    ("rolling", scenario_rolling),
    ("outage", scenario_outage),
]


class Run:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.binary = os.path.abspath(args.binary)
        self.figures = {}
        self.clusters = []
        self.config = os.path.join(work, "cluster.toml")
        with open(self.config, "w") as f:
            f.write(f"[http]\nhost = \"127.0.0.1\"\ndrain_ms = {DRAIN_MS}\n\n[ocr]\nauto_record_types = []\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPORT")}
        keys = subprocess.run([self.binary, "keys", "generate"], capture_output=True, text=True, check=True).stdout
        for line in keys.splitlines():
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
        env.update(
            CAREPORT_ENV="cluster",
            CAREPORT__LOG__LEVEL="info",
            CAREPORT__JOBS__POLL_INTERVAL_MS="100",
            CAREPORT__JOBS__BACKOFF_BASE_MS="200",
            CAREPORT__JOBS__BACKOFF_MAX_MS="2000",
            CAREPORT__CLUSTER__HEARTBEAT_MS="500",
            CAREPORT__DATABASE__ACQUIRE_TIMEOUT_SECS="2",
            CAREPORT__ML__EMBEDDING_PROVIDER="local",
            CAREPORT__ML__LOCAL__MODEL_DIR=args.model_dir,
            OMP_THREAD_LIMIT="1",
        )
        self.env = env

    def cluster(self, name, node_env=None):
        c = Cluster(self, name, node_env)
        self.clusters.append(c)
        c.up()
        # What an operator sees: every node, ready, through the bus and through the API.
        out = json.loads(c.cli("cluster", "status", "--json"))
        check(sorted(n["node"] for n in out) == ["node1", "node2", "node3"] and all(n["state"] == "ready" for n in out),
              f"careport cluster status: {out}")
        listed = jget(c.lb, "/api/v1/admin/cluster", c.token("admin"))["nodes"]
        check(sorted(n["node"] for n in listed) == ["node1", "node2", "node3"], f"GET /api/v1/admin/cluster: {listed}")
        return c


def logs_name_their_node(run):
    """Every JSON log line of every node names the node that wrote it."""
    bad = []
    for c in run.clusters:
        for n in c.nodes:
            if not os.path.exists(n.log):
                continue
            with open(n.log, errors="replace") as f:
                for line in f:
                    if not line.startswith("{"):
                        continue
                    try:
                        v = json.loads(line)
                    except ValueError:
                        bad.append(f"{n.log}: not JSON: {line[:120]}")
                        continue
                    if v.get("node") != n.name or not v.get("version"):
                        bad.append(f"{n.log}: {line[:160]}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--model-dir", default=os.environ.get("CAREPORT_TEST_MODEL_DIR",
                                                           "/var/cache/careport-ci-data/models/all-MiniLM-L6-v2"))
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.model_dir, "tokenizer.json")):
        sys.exit(f"no embedding model in {args.model_dir} (scripts/install-model.sh; --model-dir)")
    for tool in ("haproxy", "redis-server", "psql", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    wanted = args.only.split(",") if args.only else [n for n, _ in SCENARIOS]
    unknown = set(wanted) - {n for n, _ in SCENARIOS}
    if unknown:
        sys.exit(f"unknown scenarios: {sorted(unknown)}")
    subprocess.run(["bash", os.path.join(ROOT, ".ci", "start-s3.sh")], check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="careport-cluster-")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    run = Run(args, work)
    run.pg = Postgres(work)
    run.redis = RedisServer(work)
    run.lb = Balancer(work)
    results, failed = [], []
    try:
        run.pg.start()
        run.redis.start()
        run.lb.start()
        log(f"PostgreSQL :{PG_PORT}, Redis :{REDIS_PORT}, HAProxy :{LB_PORT} → nodes {NODE_PORTS}; work in {work}")
        for name, scenario in SCENARIOS:
            if name not in wanted:
                continue
            s0 = time.monotonic()
            log(f"scenario {name} …")
            try:
                summary = scenario(run)
                results.append(f"PASS {name} ({time.monotonic() - s0:.0f} s): {summary}")
                log(results[-1])
            except Exception as e:  # a bug in this script fails the run too
                if not isinstance(e, Failed):
                    traceback.print_exc()
                failed.append(name)
                results.append(f"FAIL {name} ({time.monotonic() - s0:.0f} s): {type(e).__name__}: {e}")
                log(results[-1])
            finally:
                if run.clusters:
                    run.clusters[-1].down()
                if run.redis.proc is None or run.redis.proc.poll() is not None:
                    run.redis.start()
        bad = logs_name_their_node(run)
        if bad:
            failed.append("logs")
            results.append(f"FAIL logs: {len(bad)} lines without their node and version, e.g. {bad[:2]}")
        else:
            results.append("PASS logs: every JSON line of every node names its node and version")
    finally:
        for c in run.clusters:
            c.down()
        run.lb.stop()
        run.redis.stop()
        run.pg.stop("immediate")
    print("\n".join(["", f"cluster scenarios in {time.monotonic() - t0:.0f} s:"] + results), flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs kept in {work})")
        sys.exit(1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
