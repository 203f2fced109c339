"""The Python peer of bench/patients.sh: careport's `GET /api/v1/patients/{id}` in FastAPI.

It reads careport's own tables (patients, care_assignments, users, cancer_types) in the same
PostgreSQL database, checks an HS256 bearer token with PyJWT, applies careport's rule for the
cases the benchmark hits (a doctor reads the patients assigned to them, an administrator reads
anyone), writes one row to `peer_audit` per read before it answers, and returns the record with
its care team as careport does. Everything else is 404, like careport's hidden denials.
`GET /healthz` answers once the app has started.

Environment: PEER_DATABASE_URL (postgres://…), PEER_JWT_SECRET, PEER_POOL_SIZE (connections per
worker, default 5). Started by bench/peer/serve.sh; see bench/peer/README.md.
"""

import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import create_async_engine

SECRET = os.environ["PEER_JWT_SECRET"]
ROLES = {"doctor", "nurse", "admin", "patient"}

# careport's tables (migrations/postgres), only the columns read here, and the peer's own.
meta = MetaData()
users = Table(
    "users", meta,
    Column("id", Uuid, primary_key=True),
    Column("full_name", Text), Column("status", Text), Column("staff_role", Text), Column("department", Text),
)
patients = Table(
    "patients", meta,
    Column("id", Uuid, primary_key=True),
    *(Column(c, Text) for c in (
        "mrn", "full_name", "date_of_birth", "sex", "email", "phone", "address", "emergency_contact_name",
        "emergency_contact_phone", "emergency_contact_relation", "preferred_language", "department")),
    *(Column(c, BigInteger) for c in ("created_at", "updated_at", "deleted_at")),
)
care_assignments = Table(
    "care_assignments", meta,
    Column("clinician_id", Uuid), Column("patient_id", Uuid), Column("cancer_type_id", Text),
    Column("created_at", BigInteger),
)
cancer_types = Table("cancer_types", meta, Column("id", Text, primary_key=True), Column("name", Text))
peer_audit = Table(
    "peer_audit", meta,
    Column("id", BigInteger, primary_key=True),  # bigserial
    Column("at", DateTime(timezone=True), server_default=func.now()),
    Column("actor", Uuid), Column("action", Text), Column("patient", Uuid), Column("outcome", Text),
)

# The care team as careport's store reads it: active clinicians assigned to the patient. It is
# also the `assigned(clinician, patient)` fact the doctor's rule needs.
TEAM = (
    select(
        care_assignments.c.clinician_id, users.c.full_name, users.c.staff_role, users.c.department,
        care_assignments.c.cancer_type_id, cancer_types.c.name.label("cancer_type_name"),
        care_assignments.c.created_at.label("since"),
    )
    .join(users, users.c.id == care_assignments.c.clinician_id)
    .outerjoin(cancer_types, cancer_types.c.id == care_assignments.c.cancer_type_id)
    .where(care_assignments.c.patient_id == bindparam("pid"), users.c.status == "active")
    .order_by(care_assignments.c.created_at)
)
# The record, and whether it has an account (a user with the same id).
PATIENT = select(
    patients,
    select(users.c.status).where(users.c.id == patients.c.id).scalar_subquery().label("account_status"),
).where(patients.c.id == bindparam("pid"))
AUDIT = insert(peer_audit)


class EmergencyContact(BaseModel):
    name: str | None
    phone: str | None
    relation: str | None


class TeamMember(BaseModel):
    clinician_id: uuid.UUID
    full_name: str | None
    staff_role: str | None
    department: str | None
    cancer_type_id: str | None
    cancer_type_name: str | None
    since: int


class Patient(BaseModel):
    """careport's patient view (actors/services/src/door/views.rs) with its care team."""

    id: uuid.UUID
    mrn: str
    full_name: str
    date_of_birth: str | None
    sex: str
    email: str | None
    phone: str | None
    address: str | None
    emergency_contact: EmergencyContact
    preferred_language: str
    department: str | None
    has_account: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    care_team: list[TeamMember]


class Caller(BaseModel):
    user: uuid.UUID
    role: str


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def not_found() -> ApiError:
    return ApiError(404, "not_found", "The resource was not found.")


def instant(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


def pg_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


# Autocommit: each statement commits alone, so no BEGIN/COMMIT round trips around the reads and
# the audit row is durable before the answer. Pool per worker process (2 workers × 5 = careport's
# default 10 connections).
engine = create_async_engine(
    pg_url(os.environ["PEER_DATABASE_URL"]),
    isolation_level="AUTOCOMMIT",
    pool_size=int(os.environ.get("PEER_POOL_SIZE", "5")),
    max_overflow=0,
)


@asynccontextmanager
async def lifespan(_: FastAPI):
    # Both workers start at once: a lock keeps their CREATE TABLE IF NOT EXISTS from racing.
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(727001)"))
        await conn.run_sync(lambda sync: peer_audit.create(sync, checkfirst=True))
        await conn.execute(text("SELECT pg_advisory_unlock(727001)"))
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.exception_handler(ApiError)
async def api_error(_: Request, e: ApiError) -> JSONResponse:
    return JSONResponse({"code": e.code, "message": e.message}, status_code=e.status)


def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
    """The user behind `Authorization: Bearer <HS256 JWT>` (signature, expiry, sub, role): else 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "Authentication is required.")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]})
        if claims["role"] not in ROLES:
            raise ValueError("role")
        return Caller(user=uuid.UUID(claims["sub"]), role=claims["role"])
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "The access token has expired; refresh it.") from None
    except (jwt.InvalidTokenError, ValueError):
        raise ApiError(401, "token_invalid", "The access token is not valid.") from None


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Up and serving (after startup): what bench/patients.sh polls before measuring."""
    return {"status": "ok"}


@app.get("/api/v1/patients/{id}")
async def read_patient(id: str, who: Annotated[Caller, Depends(caller)]) -> Patient:
    """A patient's record with their care team, if the caller may read it (else 404), audited."""
    try:
        pid = uuid.UUID(id)
    except ValueError:
        raise not_found() from None
    async with engine.connect() as conn:
        team = (await conn.execute(TEAM, {"pid": pid})).all()
        admin = who.role == "admin"
        allowed = admin or (who.role == "doctor" and any(m.clinician_id == who.user for m in team))
        row = (await conn.execute(PATIENT, {"pid": pid})).first() if allowed else None
        # A deleted record is hidden from everyone but administrators.
        found = row is not None and (row.deleted_at is None or admin)
        outcome = "success" if found else "denied" if not allowed else "not_found"
        # Fail closed: the audit row is written (committed) before any data goes out.
        await conn.execute(AUDIT, {"actor": who.user, "action": "patient.read", "patient": pid, "outcome": outcome})
    if not found:
        raise not_found()
    return Patient(
        id=row.id, mrn=row.mrn, full_name=row.full_name, date_of_birth=row.date_of_birth, sex=row.sex,
        email=row.email, phone=row.phone, address=row.address,
        emergency_contact=EmergencyContact(
            name=row.emergency_contact_name, phone=row.emergency_contact_phone,
            relation=row.emergency_contact_relation,
        ),
        preferred_language=row.preferred_language, department=row.department,
        has_account=row.account_status is not None,
        created_at=instant(row.created_at), updated_at=instant(row.updated_at), deleted_at=instant(row.deleted_at),
        care_team=[TeamMember(**m._mapping) for m in team],
    )
