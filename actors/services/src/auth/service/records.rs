//! The identity service's part in medical records: the policy facts of a record and its chart,
//! asking the policies without enforcing (list filters, choosing the way in), and minting the
//! tokens of signed links.

use std::time::SystemTime;

use careport_domain::Error;
use careport_domain::time::now_ms;
use careport_policy::{Claims, Narrowing, StoreFact};
use uuid::Uuid;

use super::{Auth, patient_facts};
use crate::auth::{Caller, store_err};

impl Auth {
    /// Whether the policies allow `operation` on `(kind, id)` with these facts — asked, not
    /// enforced: nothing is audited (a handler choosing between two ways in, or filtering a
    /// list to what its caller may open).
    pub fn permits(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        facts: &[StoreFact],
    ) -> Result<bool, Error> {
        if caller.token.claims().mfa_pending {
            return Ok(false);
        }
        self.decide(caller, operation, kind, id, facts)
    }

    /// The facts about a medical record: its chart and the chart's care team, whether nurses may
    /// read it, and — with `grants` — the caller's live grants on it (the uploader may delete).
    pub async fn document_facts(
        &self,
        caller: &Caller,
        record: &careport_store::vault::RecordRow,
        grants: bool,
    ) -> Result<Vec<StoreFact>, Error> {
        let chart = self.chart_facts(record.patient_id).await?;
        self.record_facts(caller, record, &chart, grants).await
    }

    /// The care-team facts of a chart (`assigned`, `patient_department`), to reuse for each of
    /// its records with [`Auth::record_facts`].
    pub async fn chart_facts(&self, patient: Uuid) -> Result<Vec<StoreFact>, Error> {
        let mut facts = Vec::new();
        patient_facts(&self.inner.db, patient, &mut facts).await?;
        Ok(facts)
    }

    /// [`Auth::document_facts`] with the chart's facts already at hand.
    pub async fn record_facts(
        &self,
        caller: &Caller,
        record: &careport_store::vault::RecordRow,
        chart: &[StoreFact],
        grants: bool,
    ) -> Result<Vec<StoreFact>, Error> {
        let id = record.id.to_string();
        let mut facts = vec![StoreFact::DocumentPatient { document: id.clone(), patient: record.patient_id }];
        if !record.sensitive {
            facts.push(StoreFact::DocumentUnrestricted { document: id.clone() });
        }
        facts.extend_from_slice(chart);
        if grants {
            let live = careport_store::vault::live_grant_keys(&self.inner.db, record.id, caller.user(), now_ms())
                .await
                .map_err(store_err)?;
            let grant = |operation: &str| StoreFact::Grant {
                user: caller.user(),
                kind: "document".into(),
                id: id.clone(),
                operation: operation.into(),
            };
            if !live.is_empty() {
                facts.push(grant("read"));
            }
            if record.uploaded_by == caller.user() {
                facts.push(grant("delete"));
            }
        }
        Ok(facts)
    }

    /// The address users reach the portal at (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// A signed link's token: the caller's identity, valid until `expires_at`, narrowed by an
    /// attenuation block to reading one resource. It has a session of its own (a link outlives
    /// the login that made it, not the caller's right to read: the policies still run with the
    /// caller's claims at each use), and it is refused once its time is up.
    pub fn mint_link(&self, caller: &Caller, kind: &str, id: &str, expires_at: SystemTime) -> Result<String, Error> {
        let c = caller.token.claims();
        let claims = Claims {
            user: c.user,
            role: c.role,
            staff_role: c.staff_role,
            department: c.department.clone(),
            session: Uuid::now_v7(),
            expires_at,
            mfa_pending: false,
        };
        let minted =
            self.inner.keys.mint(&claims).map_err(|e| Error::internal(anyhow::anyhow!("minting a link: {e}")))?;
        let token = self.authenticate(&minted)?;
        careport_policy::attenuate(
            &token,
            &Narrowing {
                operations: Some(vec!["read".to_owned()]),
                resources: Some(vec![(kind.to_owned(), id.to_owned())]),
                expires_at: Some(expires_at),
            },
        )
        .map_err(|e| Error::internal(anyhow::anyhow!("attenuating a link: {e}")))
    }
}
