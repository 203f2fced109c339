//! The clinic directory and scheduling rules: free slots, booking, rescheduling, reminders.
//!
//! [`Clinic`] is a cheap-to-clone service handle, not an actor: it holds no mutable state of its
//! own (the store does, and its unique indexes settle races between nodes), so a mailbox would
//! only add a hop to every request. Reminders run as durable jobs ([`ReminderHandler`]).

pub mod reminders;
pub mod slots;

use std::sync::Arc;

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::appointments::{self, AppointmentRow, BookError};
use careport_store::{Db, JobQueue, NewJob, clinicians};
use jiff::tz::TimeZone;
use serde::Deserialize;
use uuid::Uuid;

pub use reminders::ReminderHandler;
use slots::{Refusal, Span};

/// `[clinic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicConfig {
    /// IANA zone of the clinic (`Europe/Paris`); working hours are local to it.
    pub time_zone: String,
    /// Reminder e-mails go out this many hours before an appointment (one per entry).
    pub reminder_hours_before: Vec<u32>,
    /// How far ahead appointments may be booked.
    pub booking_horizon_days: u32,
    /// The longest window one slots request may cover.
    pub max_slot_window_days: u32,
    /// A patient booking for themself may hold at most this many scheduled future
    /// appointments with one clinician, and this many in all (staff booking for a patient are
    /// not limited: they book what care needs).
    #[serde(default = "default_open_per_clinician")]
    pub max_open_per_clinician: i64,
    #[serde(default = "default_open_total")]
    pub max_open_total: i64,
    /// Booking requests a patient may make for themself per hour (on every node together when
    /// Redis is configured); more answer 429 with `Retry-After`.
    #[serde(default = "default_bookings_per_hour")]
    pub bookings_per_hour: u32,
    /// The clinic's currency (ISO 4217): bill amounts are integers in its minor units.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Who signs a diagnosis report off: `author` (the doctor who wrote it may) or
    /// `second_reader` (another doctor of the patient's care team must).
    #[serde(default = "default_sign_off")]
    pub report_sign_off: String,
}

fn default_currency() -> String {
    "EUR".into()
}
fn default_sign_off() -> String {
    "author".into()
}

fn default_open_per_clinician() -> i64 {
    3
}
fn default_open_total() -> i64 {
    10
}
fn default_bookings_per_hour() -> u32 {
    20
}

impl Default for ClinicConfig {
    fn default() -> Self {
        Self {
            time_zone: "UTC".into(),
            reminder_hours_before: vec![24],
            booking_horizon_days: 180,
            max_slot_window_days: 31,
            max_open_per_clinician: default_open_per_clinician(),
            max_open_total: default_open_total(),
            bookings_per_hour: default_bookings_per_hour(),
            currency: default_currency(),
            report_sign_off: default_sign_off(),
        }
    }
}

/// The job kind of appointment reminders.
pub const REMINDER_JOB: &str = "appointment.reminder";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn store(e: impl Into<anyhow::Error>) -> Error {
    Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1)
}

/// The clinic's scheduling service.
#[derive(Clone)]
pub struct Clinic {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cache: careport_store::Cache,
    queue: JobQueue,
    tz: TimeZone,
    cfg: ClinicConfig,
    /// Patients' own booking requests per hour.
    bookings: crate::identity::throttle::Throttle,
}

/// A booking request, checked by [`Clinic::book`].
pub struct Booking {
    pub patient: Uuid,
    pub clinician: Uuid,
    pub starts_at: i64,
    pub reason: String,
    pub booked_by: Uuid,
}

impl Clinic {
    /// Fails if the time zone is unknown.
    pub fn new(
        db: Db,
        queue: JobQueue,
        cache: careport_store::Cache,
        redis: Option<careport_store::Redis>,
        cfg: ClinicConfig,
    ) -> anyhow::Result<Self> {
        let tz = time_zone(&cfg.time_zone)?;
        anyhow::ensure!(
            matches!(cfg.report_sign_off.as_str(), "author" | "second_reader"),
            "clinic.report_sign_off must be \"author\" or \"second_reader\", not {:?}",
            cfg.report_sign_off
        );
        anyhow::ensure!(
            cfg.currency.len() == 3 && cfg.currency.bytes().all(|b| b.is_ascii_uppercase()),
            "clinic.currency must be an ISO 4217 code of three capital letters (EUR, USD, GBP), not {:?}",
            cfg.currency
        );
        let limits = crate::identity::throttle::ThrottleConfig {
            account_max_failures: cfg.bookings_per_hour.max(1),
            account_lock_failures: cfg.bookings_per_hour.max(1),
            ip_max_failures: cfg.bookings_per_hour.max(1),
            window_secs: 3600,
            lockout_secs: 3600,
            mail_per_address_per_hour: 0,
            mail_per_client_per_hour: 0,
            usual_client_days: 0,
            usual_client_max_wait_secs: 0,
        };
        let bookings = crate::identity::throttle::Throttle::new(limits, redis);
        Ok(Self { inner: Arc::new(Inner { db, cache, queue, tz, cfg, bookings }) })
    }

    /// The limits on a patient booking for themself: the request rate, then the scheduled
    /// future appointments they hold (with this clinician, and in all). A refused request is
    /// 429 `too_many_requests` with `Retry-After`, or 409 `too_many_appointments`. Concurrent
    /// requests may pass the count by the number in flight; the rate bounds that.
    pub async fn check_own_booking(&self, patient: Uuid, clinician: Uuid) -> Result<(), Error> {
        let key = format!("book:{patient}");
        if let Err(locked) = self.inner.bookings.check(&[&key]).await {
            let secs = u32::try_from(locked.retry_after_secs).unwrap_or(u32::MAX);
            return Err(Error::with_message(
                Code::TooManyRequests,
                format!("At most {} booking requests an hour; retry later.", self.inner.cfg.bookings_per_hour),
            )
            .retry_after(secs));
        }
        self.inner.bookings.failed(&[(&key, self.inner.cfg.bookings_per_hour.max(1))]).await;
        let (total, with) =
            appointments::open_future(&self.inner.db, patient, clinician, now_ms()).await.map_err(store)?;
        let cfg = &self.inner.cfg;
        if with >= cfg.max_open_per_clinician || total >= cfg.max_open_total {
            return Err(Error::with_message(
                Code::TooManyAppointments,
                format!(
                    "You already hold {with} upcoming appointments with this clinician and {total} in all \
                     (at most {} and {}); cancel one first or ask the clinic.",
                    cfg.max_open_per_clinician, cfg.max_open_total
                ),
            ));
        }
        Ok(())
    }

    /// The cache namespace of one clinician's directory entry and hours.
    pub fn cache_namespace(clinician: Uuid) -> String {
        format!("clinician:{clinician}")
    }

    /// An active clinician's directory entry (cached).
    pub async fn clinician(&self, id: Uuid) -> Result<Option<clinicians::ClinicianRow>, Error> {
        let db = &self.inner.db;
        self.inner.cache.get_or_load(&Self::cache_namespace(id), "row", || clinicians::get(db, id)).await.map_err(store)
    }

    /// A clinician's weekly hours (cached).
    pub async fn hours(&self, id: Uuid) -> Result<Vec<clinicians::Hours>, Error> {
        let db = &self.inner.db;
        self.inner
            .cache
            .get_or_load(&Self::cache_namespace(id), "hours", || clinicians::hours(db, id))
            .await
            .map_err(store)
    }

    /// Forget the cached entry and hours of a clinician (after a change has committed).
    pub async fn forget_clinician(&self, id: Uuid) {
        self.inner.cache.invalidate(&Self::cache_namespace(id)).await;
    }

    pub fn config(&self) -> &ClinicConfig {
        &self.inner.cfg
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.inner.tz
    }

    /// The clinician's slots in `[from, to)` (not checked here) and their availability inputs.
    async fn calendar(&self, clinician: Uuid, from: i64, to: i64) -> Result<Calendar, Error> {
        let db = &self.inner.db;
        let c = self.clinician(clinician).await?.ok_or_else(|| Error::new(Code::NotFound))?;
        let hours = self.hours(clinician).await?;
        let working = slots::working_slots(&self.inner.tz, &hours, c.slot_minutes, from, to);
        let absences: Vec<Span> = clinicians::exceptions(db, clinician, from, to)
            .await
            .map_err(store)?
            .into_iter()
            .map(|e| (e.starts_at, e.ends_at))
            .collect();
        let busy = appointments::busy(db, clinician, from, to).await.map_err(store)?;
        Ok(Calendar { working, absences, busy })
    }

    /// Free slots of a clinician in `[from, to)`. The window is checked: `from < to`, at most
    /// `max_slot_window_days` long.
    pub async fn free_slots(&self, clinician: Uuid, from: i64, to: i64) -> Result<Vec<Span>, Error> {
        if from >= to {
            return Err(Error::with_message(Code::InvalidQuery, "from must be before to."));
        }
        if to - from > i64::from(self.inner.cfg.max_slot_window_days) * DAY_MS {
            return Err(Error::with_message(
                Code::InvalidQuery,
                format!("The window may cover at most {} days.", self.inner.cfg.max_slot_window_days),
            ));
        }
        let cal = self.calendar(clinician, from, to).await?;
        Ok(slots::free_slots(&cal.working, &cal.absences, &cal.busy, now_ms()))
    }

    /// Whether the clinician has a free slot in `[from, to)`.
    pub async fn has_free_slot(&self, clinician: Uuid, from: i64, to: i64) -> Result<bool, Error> {
        let cal = self.calendar(clinician, from, to).await?;
        Ok(!slots::free_slots(&cal.working, &cal.absences, &cal.busy, now_ms()).is_empty())
    }

    /// The free slot starting at `start`, or why there is none. `ignore` is a booking to leave
    /// out of the busy times (the appointment being moved).
    async fn check(&self, clinician: Uuid, start: i64, ignore: Option<Span>) -> Result<Span, Error> {
        let now = now_ms();
        if start > now + i64::from(self.inner.cfg.booking_horizon_days) * DAY_MS {
            return Err(Error::with_message(
                Code::OutsideWorkingHours,
                format!("Appointments can be booked at most {} days ahead.", self.inner.cfg.booking_horizon_days),
            ));
        }
        // A window around the start wide enough for any slot length (at most 4 hours).
        let mut cal = self.calendar(clinician, start - DAY_MS, start + DAY_MS).await?;
        if let Some(own) = ignore
            && let Some(i) = cal.busy.iter().position(|b| *b == own)
        {
            cal.busy.remove(i);
        }
        slots::check_start(start, now, &cal.working, &cal.absences, &cal.busy).map_err(|r| match r {
            Refusal::InThePast => Error::new(Code::InThePast),
            Refusal::OutsideWorkingHours => Error::new(Code::OutsideWorkingHours),
            Refusal::Away => Error::new(Code::ClinicianUnavailable),
            Refusal::Taken => Error::new(Code::SlotTaken),
        })
    }

    /// Book a free slot. Of two bookings racing for one slot, exactly one succeeds; the other
    /// gets `slot_taken` (the store's unique index decides, on every backend and node).
    pub async fn book(&self, b: Booking) -> Result<AppointmentRow, Error> {
        let slot = self.check(b.clinician, b.starts_at, None).await?;
        let now = now_ms();
        let row = AppointmentRow {
            id: Uuid::now_v7(),
            patient_id: b.patient,
            clinician_id: b.clinician,
            starts_at: slot.0,
            ends_at: slot.1,
            status: "scheduled".into(),
            reason: b.reason,
            cancel_reason: None,
            booked_by: Some(b.booked_by),
            created_at: now,
            updated_at: now,
        };
        // Reminders are queued before the booking commits: a booking the caller is told about
        // always has its reminders. A reminder whose booking failed finds no appointment and ends.
        self.queue_reminders(&row).await?;
        appointments::insert(&self.inner.db, &row).await.map_err(book_error)?;
        Ok(row)
    }

    /// Move a scheduled appointment to another free slot of the same clinician.
    pub async fn reschedule(&self, current: &AppointmentRow, starts_at: i64) -> Result<AppointmentRow, Error> {
        if current.status != "scheduled" {
            return Err(Error::new(Code::AppointmentNotScheduled));
        }
        let slot = self.check(current.clinician_id, starts_at, Some((current.starts_at, current.ends_at))).await?;
        let mut moved = current.clone();
        moved.starts_at = slot.0;
        moved.ends_at = slot.1;
        self.queue_reminders(&moved).await?;
        if !appointments::reschedule(&self.inner.db, current.id, slot.0, slot.1).await.map_err(book_error)? {
            return Err(Error::new(Code::AppointmentNotScheduled));
        }
        appointments::get(&self.inner.db, current.id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// One durable job per configured reminder that is still in the future. The job carries the
    /// start it reminds of: after a move, the old reminders find a different start and end.
    async fn queue_reminders(&self, a: &AppointmentRow) -> Result<(), Error> {
        let now = now_ms();
        for hours in &self.inner.cfg.reminder_hours_before {
            let run_at = a.starts_at - i64::from(*hours) * HOUR_MS;
            if run_at <= now {
                continue;
            }
            let mut job = NewJob::new(
                REMINDER_JOB,
                serde_json::json!({ "appointment_id": a.id, "starts_at": a.starts_at, "hours_before": hours }),
            );
            job.run_at = Some(run_at);
            job.dedup_key = Some(format!("reminder:{}:{}:{}", a.id, a.starts_at, hours));
            self.inner.queue.enqueue(job).await.map_err(store)?;
        }
        Ok(())
    }
}

struct Calendar {
    working: Vec<Span>,
    absences: Vec<Span>,
    busy: Vec<Span>,
}

fn book_error(e: BookError) -> Error {
    match e {
        BookError::SlotTaken => Error::new(Code::SlotTaken),
        BookError::Store(e) => store(e),
    }
}

/// The zone named in config: an IANA name, from the database bundled into the binary.
pub fn time_zone(name: &str) -> anyhow::Result<TimeZone> {
    TimeZone::get(name).map_err(|e| anyhow::anyhow!("clinic.time_zone {name:?} is not a known IANA time zone: {e}"))
}

/// An instant as RFC 3339 in UTC (`2026-11-30T08:00:00Z`), as the API answers times.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// Parse an RFC 3339 instant (with an offset or `Z`) to milliseconds.
pub fn parse_instant(field: &str, s: &str) -> Result<i64, Error> {
    s.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|_| {
        Error::with_message(
            Code::InvalidValue,
            format!("{field} must be an RFC 3339 time such as 2026-12-01T09:00:00Z."),
        )
    })
}
