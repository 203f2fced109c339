//! The workflow of a study or test (#18): ordered → scheduled → acquired → reported → reviewed,
//! or cancelled before it is reported. The order row holds only where it stands; every
//! transition, the first included, is an audit event (`workflow.transition`) written by the same
//! call, and the log users read — a chart's, or one user's for an administrator — is read back
//! from the hash-chained trail. There is no second log that could be edited on its own.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::audit::{self as trail, Filter};
use careport_store::workflow::{self, OrderRow};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::store_err;
use super::views::rfc3339;
use crate::access::{Pass, ReadAudit, ReadWorkflow, WriteOrder, WriteWorkflow};
use crate::audit::{EventExt, outcome};
use crate::{Caller, Services};

/// The workflow operations.
pub struct Workflow<'a>(pub(crate) &'a Services);

/// The states, in order.
pub const STATES: [&str; 6] = ["ordered", "scheduled", "acquired", "reported", "reviewed", "cancelled"];

const ACTION: &str = "workflow.transition";

/// Whether an order may move from `from` to `to`: one step forward, or cancelled before it is
/// reported.
pub fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("ordered", "scheduled")
            | ("scheduled", "acquired")
            | ("acquired", "reported")
            | ("reported", "reviewed")
            | ("ordered" | "scheduled" | "acquired", "cancelled")
    )
}

/// A new order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// What is ordered: `xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet`, `biopsy`,
    /// `blood`, `other`.
    pub kind: String,
    pub description: String,
}

/// A move of an order.
#[derive(Debug, Clone)]
pub struct Move {
    pub to: String,
    /// The image or record the acquisition produced (for `acquired`).
    pub record_id: Option<Uuid>,
    /// The signed report (for `reported`).
    pub report_id: Option<Uuid>,
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: String,
    pub description: String,
    pub state: String,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
    pub ordered_by: Uuid,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&OrderRow> for Order {
    fn from(o: &OrderRow) -> Self {
        Order {
            id: o.id,
            patient_id: o.patient_id,
            kind: o.kind.clone(),
            description: o.description.clone(),
            state: o.state.clone(),
            record_id: o.record_id,
            report_id: o.report_id,
            ordered_by: o.ordered_by,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

/// One transition, read from the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// The audit event's sequence number.
    pub seq: i64,
    pub order_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub kind: String,
    /// `null` for the order itself.
    pub from: Option<String>,
    pub to: String,
    pub by: Option<Uuid>,
    pub by_role: Option<String>,
    pub at: String,
}

/// A chart's workflow: its orders, newest first, and the log, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct ChartWorkflow {
    pub orders: Vec<Order>,
    pub log: Vec<Transition>,
}

#[derive(Serialize, Deserialize)]
struct Detail {
    order: Uuid,
    kind: String,
    from: Option<String>,
    to: String,
}

const KINDS: [&str; 9] = ["xray", "mri", "ct", "ultrasound", "mammography", "pet", "biopsy", "blood", "other"];

impl Workflow<'_> {
    async fn log_event(&self, caller: &Caller, o: &OrderRow, from: Option<&str>, to: &str) -> Result<(), Error> {
        let detail = Detail { order: o.id, kind: o.kind.clone(), from: from.map(str::to_owned), to: to.to_owned() };
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event(ACTION, outcome::SUCCESS)
                    .resource("order", o.id)
                    .patient(o.patient_id)
                    .detail(serde_json::to_string(&detail).map_err(Error::internal)?),
            )
            .await
    }

    /// Order a study or test for a patient: `ordered`, logged.
    pub async fn order(&self, pass: Pass<WriteWorkflow>, new: NewOrder) -> Result<Order, Error> {
        let patient = pass.id();
        let kind = new.kind.trim().to_ascii_lowercase();
        if !KINDS.contains(&kind.as_str()) {
            return Err(Error::with_message(Code::InvalidValue, format!("kind must be one of {}.", KINDS.join(", "))));
        }
        let description = new.description.trim();
        if description.is_empty() || description.chars().count() > 500 || description.chars().any(char::is_control) {
            return Err(Error::with_message(Code::InvalidValue, "description must be 1 to 500 characters of text."));
        }
        super::patients::live_chart(self.0, patient).await?;
        let id = Uuid::now_v7();
        workflow::insert(&self.0.db, id, patient, &kind, description, pass.caller().user(), now_ms())
            .await
            .map_err(store_err)?;
        let o = workflow::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        self.log_event(pass.caller(), &o, None, "ordered").await?;
        Ok(Order::from(&o))
    }

    /// Move an order on. 409 `transition_not_allowed` for a move the workflow has not (or when
    /// someone moved it first); `acquired` may name the record it produced and `reported` must
    /// name a signed report, both of the same chart.
    pub async fn advance(&self, pass: Pass<WriteOrder>, m: Move) -> Result<Order, Error> {
        let db = &self.0.db;
        let o = workflow::get(db, pass.id()).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        let to = m.to.trim();
        if !STATES.contains(&to) {
            return Err(Error::with_message(Code::InvalidValue, format!("to must be one of {}.", STATES.join(", "))));
        }
        if !allowed(&o.state, to) {
            return Err(Error::with_message(
                Code::TransitionNotAllowed,
                format!("A study that is {} cannot become {to}.", o.state),
            ));
        }
        if let Some(r) = m.record_id {
            let ok = matches!(super::records::live_record(self.0, r).await, Ok(rec) if rec.patient_id == o.patient_id);
            if !ok || to != "acquired" {
                return Err(Error::with_message(
                    Code::InvalidValue,
                    "record_id names a record of this chart, when it is acquired.",
                ));
            }
        }
        match (to, m.report_id) {
            ("reported", Some(r)) => {
                let rep = careport_store::reports::get(db, r).await.map_err(store_err)?;
                if rep.is_none_or(|rep| rep.patient_id != o.patient_id || rep.state == "draft") {
                    return Err(Error::with_message(
                        Code::InvalidValue,
                        "report_id must name a signed report of this chart.",
                    ));
                }
            }
            ("reported", None) => {
                return Err(Error::with_message(
                    Code::InvalidValue,
                    "A study is reported with its signed report: report_id is required.",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::with_message(Code::InvalidValue, "report_id is given only when it is reported."));
            }
            _ => {}
        }
        if !workflow::transition(db, o.id, &o.state, to, m.record_id, m.report_id, now_ms()).await.map_err(store_err)? {
            return Err(Error::with_message(
                Code::TransitionNotAllowed,
                "The study was moved by someone else first; reload it.",
            ));
        }
        let moved = workflow::get(db, o.id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        self.log_event(pass.caller(), &moved, Some(&o.state), to).await?;
        Ok(Order::from(&moved))
    }

    fn transitions(events: Vec<trail::EventRow>) -> Vec<Transition> {
        events
            .into_iter()
            .filter_map(|e| {
                let d: Detail = serde_json::from_str(e.detail.as_deref()?).ok()?;
                Some(Transition {
                    seq: e.seq,
                    order_id: d.order,
                    patient_id: e.patient_id,
                    kind: d.kind,
                    from: d.from,
                    to: d.to,
                    by: e.actor_id,
                    by_role: e.actor_role,
                    at: rfc3339(e.at),
                })
            })
            .collect()
    }

    /// A chart's orders and its log (the latest 500 transitions). Audited as a read of the chart.
    pub async fn chart(&self, pass: Pass<ReadWorkflow>) -> Result<ChartWorkflow, Error> {
        let patient = pass.id();
        super::patients::live_chart(self.0, patient).await?;
        let orders = workflow::for_patient(&self.0.db, patient, 500).await.map_err(store_err)?;
        let filter = Filter { patient: Some(patient), action: Some(ACTION.into()), limit: 500, ..Filter::default() };
        let events = trail::list(&self.0.db, &filter).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("workflow.read", outcome::SUCCESS)
                    .resource("workflow", patient)
                    .patient(patient),
            )
            .await?;
        Ok(ChartWorkflow { orders: orders.iter().map(Order::from).collect(), log: Self::transitions(events) })
    }

    /// One user's transitions (administrators), newest first.
    pub async fn by_user(&self, _: Pass<ReadAudit>, user: Uuid, limit: i64) -> Result<Vec<Transition>, Error> {
        let filter = Filter { actor: Some(user), action: Some(ACTION.into()), limit, ..Filter::default() };
        Ok(Self::transitions(trail::list(&self.0.db, &filter).await.map_err(store_err)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_study_moves_one_step_forward_or_is_cancelled_before_its_report() {
        let path = ["ordered", "scheduled", "acquired", "reported", "reviewed"];
        for w in path.windows(2) {
            assert!(allowed(w[0], w[1]), "{w:?}");
            assert!(!allowed(w[1], w[0]), "no way back: {w:?}");
        }
        assert!(!allowed("ordered", "acquired"), "no skipping");
        for s in ["ordered", "scheduled", "acquired"] {
            assert!(allowed(s, "cancelled"));
        }
        for s in ["reported", "reviewed", "cancelled"] {
            assert!(!allowed(s, "cancelled"));
            assert!(STATES.iter().all(|to| !allowed("cancelled", to)));
        }
    }
}
