//! What a caller's menu offers: each entry is a question put to the policies ("may this caller
//! list patients?") — and, for the entries about the caller's own chart or clinician profile,
//! whether they have one — not a role compared by hand, so the web UI shows exactly the ways in that
//! the operations behind them would allow. Asked, not enforced: nothing is audited, and every
//! page still goes through its operation, which decides again.

use careport_store::{clinicians, patients};
use serde::Serialize;
use uuid::Uuid;

use crate::access::{
    ListAppointments, ListPatients, ListReports, ManageKnowledge, ManagePlugins, ManageReference, ManageUsers,
    ReadAudit, ReadBilling, ReadOwnAccessLog, ReadPatient, ReadStats, UseChat, WriteClinician,
};
use crate::{Caller, Services};

/// The ways in a caller has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Menu {
    /// Their own chart (a patient's records and access log), by its id.
    pub chart: Option<Uuid>,
    pub access_log: bool,
    /// Their own chart's signed diagnosis reports, and their own bills.
    pub reports: bool,
    pub billing: bool,
    pub patients: bool,
    pub appointments: bool,
    pub chat: bool,
    /// Their own clinician profile (hours and absences), by its id.
    pub hours: Option<Uuid>,
    pub users: bool,
    pub reference: bool,
    pub knowledge: bool,
    pub plugins: bool,
    pub audit: bool,
    pub stats: bool,
}

impl Menu {
    /// Whether any administration entry is open.
    pub fn administers(&self) -> bool {
        self.users || self.reference || self.knowledge || self.plugins || self.audit || self.stats
    }
}

/// Build a caller's menu.
pub async fn menu(services: &Services, caller: &Caller) -> Menu {
    let a = &services.access;
    let db = &services.db;
    let me = Some(caller.user());
    // "My chart" and "my hours" need a chart or a clinician profile of the caller's own: an
    // administrator may read any chart and change any clinician's hours, but has neither.
    let (own_chart, own_profile) = tokio::join!(
        async { patients::get_read(db, caller.user()).await.ok().flatten().is_some_and(|p| p.deleted_at.is_none()) },
        async { clinicians::get(db, caller.user()).await.ok().flatten().is_some() },
    );
    let (chart, access_log, patients, appointments, chat, hours) = tokio::join!(
        async { own_chart && a.allows::<ReadPatient>(caller, me).await },
        async { own_chart && a.allows::<ReadOwnAccessLog>(caller, None).await },
        a.allows::<ListPatients>(caller, None),
        a.allows::<ListAppointments>(caller, None),
        a.allows::<UseChat>(caller, None),
        async { own_profile && a.allows::<WriteClinician>(caller, me).await },
    );
    let (reports, billing) = tokio::join!(async { own_chart && a.allows::<ListReports>(caller, me).await }, async {
        own_chart && a.allows::<ReadBilling>(caller, me).await
    },);
    let (users, reference, knowledge, plugins, audit, stats) = tokio::join!(
        a.allows::<ManageUsers>(caller, None),
        a.allows::<ManageReference>(caller, None),
        a.allows::<ManageKnowledge>(caller, None),
        a.allows::<ManagePlugins>(caller, None),
        a.allows::<ReadAudit>(caller, None),
        a.allows::<ReadStats>(caller, None),
    );
    Menu {
        chart: chart.then_some(caller.user()),
        access_log,
        reports,
        billing,
        // Whoever has a chart of their own opens it directly; the list is for those who see others'.
        patients: patients && !chart,
        appointments,
        chat,
        hours: hours.then_some(caller.user()),
        users,
        reference,
        knowledge,
        plugins,
        audit,
        stats,
    }
}
