//! A patient's care team: who treats them, for which cancer subtype, and every change; and the
//! administrators' assignments. An assignment is what the policies read as `assigned`: a
//! change here changes who may open the patient's record at once.

use careport_domain::{Code, Error, Role};
use careport_store::assignments::{self, Assigned, TeamMember};
use careport_store::{reference, users};
use serde::Serialize;
use uuid::Uuid;

use super::patients::{invalid, live, visible};
use super::store_err;
use super::views::rfc3339;
use crate::Services;
use crate::access::{AssignPatient, Pass, ReadPatient};
use crate::audit::{EventExt, outcome};

/// The care-team operations.
pub struct CareTeam<'a>(pub(crate) &'a Services);

/// One step of the assignment history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryStep {
    pub clinician_id: Uuid,
    pub full_name: Option<String>,
    pub cancer_type_id: Option<String>,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub at: String,
}

/// A care team, and with `history` every change, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub items: Vec<TeamMember>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryStep>>,
}

/// What an assignment did: a new one, a changed subtype, or nothing.
pub use careport_store::assignments::Assigned as AssignOutcome;

impl CareTeam<'_> {
    /// Who treats the patient, for which cancer subtype; with `history`, every change.
    pub async fn read(&self, pass: Pass<ReadPatient>, history: bool) -> Result<Team, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        visible(self.0, caller, id).await?;
        let items = assignments::team(&self.0.db, id).await.map_err(store_err)?;
        let history = if history {
            let steps = assignments::history(&self.0.db, id).await.map_err(store_err)?;
            Some(
                steps
                    .into_iter()
                    .map(|h| HistoryStep {
                        clinician_id: h.clinician_id,
                        full_name: h.full_name,
                        cancer_type_id: h.cancer_type_id,
                        action: h.action,
                        actor_id: h.actor_id,
                        at: rfc3339(h.at),
                    })
                    .collect(),
            )
        } else {
            None
        };
        self.0
            .audit
            .one(caller.ctx.event("patient.care_team_read", outcome::SUCCESS).resource("patient", id).patient(id))
            .await?;
        Ok(Team { items, history })
    }

    /// Assign a clinician to the patient for a cancer subtype (administrators). Assigning the
    /// same clinician again with another subtype changes the assignment; every change is in the
    /// history.
    pub async fn assign(
        &self,
        pass: Pass<AssignPatient>,
        clinician: Uuid,
        cancer_type: &str,
    ) -> Result<(AssignOutcome, Team), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        live(self.0, caller, id).await?;
        let t = reference::cancer_type(&self.0.db, cancer_type)
            .await
            .map_err(store_err)?
            .ok_or_else(|| invalid("cancer_type_id names no cancer type."))?;
        if t.parent_id.is_none() {
            return Err(Error::new(Code::SubtypeRequired));
        }
        if t.retired_at.is_some() {
            return Err(invalid("That cancer type is retired."));
        }
        let c = users::find(&self.0.db, clinician).await.map_err(store_err)?;
        if !c.is_some_and(|c| c.role == Role::Clinician.as_str() && c.is_active()) {
            return Err(invalid("clinician_id names no active clinician."));
        }
        let done = assignments::assign(&self.0.db, clinician, id, Some(&t.id), Some(caller.user()))
            .await
            .map_err(store_err)?;
        let action = match done {
            Assigned::Created => "assignment.create",
            Assigned::Changed => "assignment.change",
            Assigned::Unchanged => "assignment.unchanged",
        };
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event(action, outcome::SUCCESS)
                    .resource("patient", id)
                    .patient(id)
                    .detail(format!("clinician {clinician} type {}", t.id)),
            )
            .await?;
        let items = assignments::team(&self.0.db, id).await.map_err(store_err)?;
        Ok((done, Team { items, history: None }))
    }

    /// End a clinician's assignment to the patient (administrators); 404 if there was none.
    pub async fn unassign(&self, pass: Pass<AssignPatient>, clinician: Uuid) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        visible(self.0, caller, id).await?;
        if !assignments::unassign(&self.0.db, clinician, id, Some(caller.user())).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("assignment.end", outcome::SUCCESS)
                    .resource("patient", id)
                    .patient(id)
                    .detail(format!("clinician {clinician}")),
            )
            .await
    }
}
