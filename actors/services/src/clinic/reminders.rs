//! Appointment reminder e-mails: a durable job per reminder, queued at booking for its hour.
//!
//! The job re-reads the appointment when it runs: cancelled, completed or moved since (the job's
//! `starts_at` differs), it ends without sending. The e-mail names the time and the clinician,
//! never the reason for the visit.

use std::sync::Arc;

use careport_store::{Db, Job, appointments, clinicians, patients, users};
use futures_util::future::BoxFuture;
use jiff::tz::TimeZone;
use uuid::Uuid;

use super::REMINDER_JOB;
use crate::jobs::{JobError, JobHandler};
use crate::mail::{Mail, Mailer};

/// Sends appointment reminders.
pub struct ReminderHandler {
    db: Db,
    mailer: Arc<Mailer>,
    tz: TimeZone,
    public_url: String,
}

impl ReminderHandler {
    pub fn new(db: Db, mailer: Arc<Mailer>, tz: TimeZone, public_url: String) -> Self {
        Self { db, mailer, tz, public_url }
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    appointment_id: Uuid,
    starts_at: i64,
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(format!("store unavailable: {e}"))
}

impl JobHandler for ReminderHandler {
    fn kind(&self) -> &'static str {
        REMINDER_JOB
    }

    fn concurrency(&self) -> usize {
        4
    }

    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        let db = self.db.clone();
        let mailer = self.mailer.clone();
        let tz = self.tz.clone();
        let url = self.public_url.clone();
        Box::pin(async move {
            let p: Payload = serde_json::from_str(&job.payload)
                .map_err(|_| JobError::Permanent("reminder payload is not valid".into()))?;
            let Some(a) = appointments::get(&db, p.appointment_id).await.map_err(retry)? else { return Ok(()) };
            if a.status != "scheduled" || a.starts_at != p.starts_at {
                return Ok(());
            }
            // The account's address (verified), else the one on the clinic's record.
            let account = users::find(&db, a.patient_id).await.map_err(retry)?;
            let record = patients::get(&db, a.patient_id).await.map_err(retry)?;
            if record.as_ref().is_some_and(|r| r.deleted_at.is_some()) {
                return Ok(());
            }
            let to = account.filter(|u| u.is_active()).map(|u| u.email).or_else(|| record.and_then(|r| r.email));
            let Some(to) = to else { return Ok(()) };
            let clinician = clinicians::get(&db, a.clinician_id)
                .await
                .map_err(retry)?
                .and_then(|c| c.full_name)
                .unwrap_or_else(|| "your clinician".into());
            let when = jiff::Timestamp::from_millisecond(a.starts_at)
                .map(|t| t.to_zoned(tz.clone()).strftime("%A %-d %B %Y at %H:%M (%Z)").to_string())
                .unwrap_or_default();
            let body = format!(
                "Hello,\r\n\r\nThis is a reminder of your appointment with {clinician} on {when}.\r\n\r\n\
                 To see, move or cancel it, sign in at {url}.\r\n\r\n-- careport\r\n"
            );
            mailer
                .send(Mail { to, subject: "Appointment reminder".into(), body })
                .await
                .map_err(|e| JobError::Retry(format!("mail not sent: {}", e.code().as_str())))
        })
    }
}
