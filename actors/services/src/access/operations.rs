//! The operations a caller can be authorized for, and the pass that proves a decision.
//!
//! Every route, CLI command and chat tool that touches a resource names one of these
//! operations. [`Access::pass`](super::Access::pass) is the only place that makes a [`Pass`],
//! and it makes one only when the policies allow the operation: a service operation that takes
//! a `Pass<O>` cannot run undecided. Adding a route means adding a line here (what it asks the
//! policies) and a rule in `policies/*.datalog` (who may).

use std::marker::PhantomData;

use uuid::Uuid;

use crate::identity::Caller;

/// Where the id of the resource comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The caller's own user id (`/me`, MFA, password change).
    OwnUser,
    /// The caller's current session.
    OwnSession,
    /// A collection or family (`*`): denial answers 403, there is nothing to hide.
    Family,
    /// One resource named by its id: denial answers 404, so existence does not leak.
    Instance,
}

/// An operation: what the policies are asked.
pub trait Operation: 'static {
    const OPERATION: &'static str;
    const KIND: &'static str;
    const TARGET: Target;
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident => $op:literal on $kind:literal at $target:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Operation for $name {
                const OPERATION: &'static str = $op;
                const KIND: &'static str = $kind;
                const TARGET: Target = $target;
            }
        )*
    };
}

operations! {
    /// Read one's own account.
    ReadSelf => "read" on "user" at Target::OwnUser;
    /// Change one's own account (password).
    WriteSelf => "write" on "user" at Target::OwnUser;
    /// List one's own sessions.
    ListOwnSessions => "read" on "sessions" at Target::OwnUser;
    /// Read one's start page (it shows patients' data: not the same as one's own profile).
    ReadDashboard => "read" on "dashboard" at Target::OwnUser;
    /// End one's own current session.
    EndOwnSession => "delete" on "session" at Target::OwnSession;
    /// End one of one's sessions by id.
    DeleteSession => "delete" on "session" at Target::Instance;
    /// Enrol, confirm or disable one's MFA.
    ManageOwnMfa => "manage" on "mfa" at Target::OwnUser;
    /// Read a user record by id.
    ReadUser => "read" on "user" at Target::Instance;
    /// Read a patient (their record summary).
    ReadPatient => "read" on "patient" at Target::Instance;
    /// Read one's own access log (patients).
    ReadOwnAccessLog => "read" on "access_log" at Target::OwnUser;
    /// Manage accounts, invitations and the MFA policy (administrators).
    ManageUsers => "manage" on "users" at Target::Family;
    /// Read the audit trail (administrators).
    ReadAudit => "read" on "audit" at Target::Family;
    /// Read the clinic's reference data (departments, cancer types).
    ReadReference => "read" on "reference" at Target::Family;
    /// Change the clinic's reference data (administrators).
    ManageReference => "manage" on "reference" at Target::Family;
    /// List patients (each caller sees those they may read).
    ListPatients => "list" on "patient" at Target::Family;
    /// Open a new patient record.
    CreatePatient => "create" on "patient" at Target::Family;
    /// Update a patient record.
    WritePatient => "write" on "patient" at Target::Instance;
    /// Soft-delete a patient record.
    DeletePatient => "delete" on "patient" at Target::Instance;
    /// Restore a soft-deleted patient record.
    RestorePatient => "restore" on "patient" at Target::Instance;
    /// Change a patient's care team.
    AssignPatient => "assign" on "patient" at Target::Instance;
    /// Book an appointment for a patient.
    BookForPatient => "book" on "patient" at Target::Instance;
    /// Read the clinician directory.
    ListClinicians => "read" on "clinician" at Target::Family;
    /// Read a clinician's profile, hours and slots.
    ReadClinician => "read" on "clinician" at Target::Instance;
    /// Change a clinician's profile, hours or absences.
    WriteClinician => "write" on "clinician" at Target::Instance;
    /// List appointments (each caller sees those they may read).
    ListAppointments => "list" on "appointment" at Target::Family;
    /// Read an appointment.
    ReadAppointment => "read" on "appointment" at Target::Instance;
    /// Reschedule an appointment or record its outcome.
    WriteAppointment => "write" on "appointment" at Target::Instance;
    /// Cancel an appointment.
    CancelAppointment => "cancel" on "appointment" at Target::Instance;
    /// Read the clinic's statistics (administrators).
    ReadStats => "read" on "stats" at Target::Family;
    /// List, upload, enable, disable and reload plugins (administrators).
    ManagePlugins => "manage" on "plugins" at Target::Family;
    /// Upload a file into a patient's chart.
    UploadToPatient => "upload" on "patient" at Target::Instance;
    /// Accept a DICOM file whose patient identifiers do not match the chart it is uploaded into
    /// (administrators, after checking).
    OverrideImageIdentity => "override" on "image_identity" at Target::Family;
    /// Read a medical record (its metadata and content).
    ReadDocument => "read" on "document" at Target::Instance;
    /// Soft-delete a medical record.
    DeleteDocument => "delete" on "document" at Target::Instance;
    /// Grant access to a medical record, or make a signed link to it.
    ShareDocument => "share" on "document" at Target::Instance;
    /// Erase a patient's files (crypto-shredding; administrators).
    ErasePatient => "erase" on "patient" at Target::Instance;
    /// Make a record's text searchable in the knowledge base (its patient-private scope), or stop.
    IndexDocument => "index" on "document" at Target::Instance;
    /// Search the knowledge base (each caller finds what their scope shows).
    SearchKnowledge => "search" on "knowledge" at Target::Family;
    /// List knowledge documents and read one (each caller sees what their scope shows).
    ListKnowledge => "list" on "knowledge" at Target::Family;
    /// Add, change or delete a knowledge document, or follow, cancel and retry its jobs.
    WriteKnowledge => "write" on "knowledge" at Target::Instance;
    /// Reindex the knowledge base and read its statistics (administrators).
    ManageKnowledge => "manage" on "knowledge" at Target::Family;
    /// Open a chat session and list one's own.
    UseChat => "use" on "chat" at Target::Family;
    /// Read one's own chat session (its messages, its suggestions).
    ReadChatSession => "read" on "chat_session" at Target::Instance;
    /// Write in one's own chat session: rename it, send a message, confirm an action.
    WriteChatSession => "write" on "chat_session" at Target::Instance;
    /// Delete one's own chat session and its messages.
    DeleteChatSession => "delete" on "chat_session" at Target::Instance;
    /// List a chart's diagnosis reports (each caller sees those they may read).
    ListReports => "list" on "reports" at Target::Instance;
    /// Write a new diagnosis report into a chart.
    WriteReports => "write" on "reports" at Target::Instance;
    /// Read one version of a diagnosis report.
    ReadReport => "read" on "report" at Target::Instance;
    /// Change a draft, sign a report off, amend a signed one, export it.
    WriteReport => "write" on "report" at Target::Instance;
    /// Read a chart's workflow: its ordered studies and their log.
    ReadWorkflow => "read" on "workflow" at Target::Instance;
    /// Order a study or test for a patient.
    WriteWorkflow => "write" on "workflow" at Target::Instance;
    /// Move an ordered study on (scheduled, acquired, reported, reviewed, cancelled).
    WriteOrder => "write" on "order" at Target::Instance;
    /// Read a patient's bills and their totals.
    ReadBilling => "read" on "billing" at Target::Instance;
    /// Add a bill item to a patient's account.
    WriteBilling => "write" on "billing" at Target::Instance;
    /// Record a bill item paid, or cancel it.
    SettleBill => "write" on "bill" at Target::Instance;
    /// The clinic's billing figures (revenue by month, outstanding, overdue).
    ReadBillingStats => "read" on "billing" at Target::Family;
}

/// Proof that the policies allowed `O` for this caller on this resource. Only
/// [`Access::pass`](super::Access::pass) makes one, so a function that takes a `Pass<O>` runs
/// only after a successful decision (the shape of qdrant's `VerificationPass`).
pub struct Pass<O: Operation> {
    caller: Caller,
    id: Uuid,
    _op: PhantomData<fn() -> O>,
}

impl<O: Operation> Pass<O> {
    pub(super) fn new(caller: Caller, id: Uuid) -> Self {
        Self { caller, id, _op: PhantomData }
    }

    /// Who was allowed.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The resource the decision was about: the instance's id, the caller's own user or
    /// session id, or the nil id for a family.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl<O: Operation> std::fmt::Debug for Pass<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass").field("operation", &O::OPERATION).field("kind", &O::KIND).field("id", &self.id).finish()
    }
}
