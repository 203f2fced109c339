//! The door: every operation on the clinic's data, one module per domain.
//!
//! An operation takes the caller — as a [`Pass`](crate::access::Pass) when the decision can be
//! made before the input is read, or as a [`Caller`](crate::Caller) when the decision needs the
//! rows the operation loads anyway — and typed input, and does the whole job in one call:
//! decide (through [`crate::access`]), do the store work (in one transaction where it writes),
//! invalidate caches, publish events, write the audit event (failing closed for reads of
//! patient data), and return domain types or a domain [`Error`]. HTTP handlers, the CLI and chat
//! tools are adapters over these operations: none of them touches the store, checks a role or
//! writes an audit event itself (`.ci/check-architecture.sh` enforces it for `runtime/src/http`).
//!
//! # Layout
//! - [`patients`]: patients' records, a user's record, a patient's access log.
//! - [`care_team`]: care teams and assignments.
//! - [`clinicians`]: the clinician directory, profiles, hours, absences, free slots.
//! - [`appointments`]: booking, the list, rescheduling, outcomes, cancelling.
//! - [`records`]: medical records (upload, list, read, content, delete).
//! - [`sharing`]: grants, signed links and erasure.
//! - [`ocr`]: records' text — asking for OCR, following and cancelling jobs, reading the text.
//! - [`knowledge`]: the knowledge base — documents, embedding jobs, records opted in, search.
//! - [`chat`]: the assistant — sessions, an exchange (the agent and its tools), confirmations.
//! - [`reports`]: diagnosis reports — drafts, sign-off, amendments, the PDF.
//! - [`workflow`]: ordered studies and tests, their transitions, the log over the audit trail.
//! - [`billing`]: bill items, paying and cancelling, totals and the clinic's figures.
//! - [`reference`]: languages, departments, cancer types, record types.
//! - [`admin`]: accounts, invitations, the MFA policy, the audit trail.
//! - [`plugins`]: plugin administration.
//! - [`dashboard`]: each role's start page and the clinic's statistics.
//! - [`menu`]: the ways in a caller has, asked of the policies (the web UI's navigation).
//! - [`page`]: cursor pagination, the same on every list.
//! - [`views`]: what operations return, shaped as the API shows it.

pub mod page;

use careport_domain::Error;

pub use page::{Page, PageRequest};

/// 503 `store_unavailable` (retry in a second) for a store failure: the one mapping.
pub fn store_err(e: impl Into<anyhow::Error>) -> Error {
    Error::store(e)
}

pub mod admin;
pub mod appointments;
pub mod care_team;
pub mod clinicians;
pub mod dashboard;
pub mod menu;
pub mod patients;
pub mod plugins;
pub mod reference;
pub mod views;

impl crate::Services {
    /// Patients' records, a user's record, a patient's access log.
    pub fn patients(&self) -> patients::Patients<'_> {
        patients::Patients(self)
    }

    /// Care teams and assignments.
    pub fn care_team(&self) -> care_team::CareTeam<'_> {
        care_team::CareTeam(self)
    }

    /// The clinician directory.
    pub fn clinicians(&self) -> clinicians::Clinicians<'_> {
        clinicians::Clinicians(self)
    }

    /// Appointments.
    pub fn appointments(&self) -> appointments::Appointments<'_> {
        appointments::Appointments(self)
    }

    /// Reference data.
    pub fn reference(&self) -> reference::Reference<'_> {
        reference::Reference(self)
    }

    /// Administration.
    pub fn admin(&self) -> admin::Admin<'_> {
        admin::Admin(self)
    }

    /// Plugin administration.
    pub fn plugins(&self) -> plugins::Plugins<'_> {
        plugins::Plugins(self)
    }

    /// Start pages and statistics.
    pub fn dashboard(&self) -> dashboard::Dashboard<'_> {
        dashboard::Dashboard(self)
    }
}

pub mod billing;
pub mod chat;
pub mod images;
pub mod knowledge;
pub mod ocr;
pub mod records;
mod report_pdf;
pub mod reports;
pub mod sharing;
pub mod workflow;

impl crate::Services {
    /// Medical images: a chart's images, an image's previews.
    pub fn images(&self) -> images::Images<'_> {
        images::Images(self)
    }

    /// Medical records: upload, a chart's list, metadata, content, delete.
    pub fn records(&self) -> records::Records<'_> {
        records::Records(self)
    }

    /// Grants, signed links and erasing a patient's files.
    pub fn sharing(&self) -> sharing::Sharing<'_> {
        sharing::Sharing(self)
    }

    /// Records' text: asking for OCR, its jobs, reading the text, OCR statistics.
    pub fn text(&self) -> ocr::Text<'_> {
        ocr::Text(self)
    }

    /// The knowledge base: documents, embedding jobs, records opted in, reindexing, search.
    pub fn knowledge(&self) -> knowledge::KnowledgeBase<'_> {
        knowledge::KnowledgeBase(self)
    }

    /// Chat: sessions, exchanges, confirmations, suggestions.
    pub fn chats(&self) -> chat::ChatSessions<'_> {
        chat::ChatSessions(self)
    }

    /// Diagnosis reports: drafts, sign-off, amendments, the PDF.
    pub fn reports(&self) -> reports::Reports<'_> {
        reports::Reports(self)
    }

    /// The workflow of ordered studies and tests, and its log (a view over the audit trail).
    pub fn workflow(&self) -> workflow::Workflow<'_> {
        workflow::Workflow(self)
    }

    /// Bills: a patient's account, paying and cancelling, the clinic's figures.
    pub fn billing(&self) -> billing::Billing<'_> {
        billing::Billing(self)
    }
}
