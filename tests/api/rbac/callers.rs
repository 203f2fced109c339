//! The kinds of caller (`Who`) and how each one's credential is made for a cell: a token minted
//! with the app's key (a session of its own each time), a narrowed token, a signed link (in the
//! query or as a bearer token), or the web UI's cookie with or without its CSRF header.
//!
//! A caller acts as a person of the world (`subject`); for the rows that change the caller's own
//! account (MFA), as a fresh account with the same role, staff role and department, so that one
//! cell's enrolment does not change what the next cell finds.

use std::time::{Duration, SystemTime};

use careport_policy::{KeyPair, KeyRing, Narrowing};
use serde_json::{Value, json};

use super::world::{Person, World, claims};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    PatientSelf,
    PatientOther,
    DoctorAssigned,
    DoctorUnassigned,
    NurseSameDept,
    NurseOtherDept,
    Admin,
    Expired,
    Revoked,
    Forged,
    OtherKey,
    /// The assigned doctor's token narrowed to reading the patient.
    Attenuated,
    /// The assigned doctor's token narrowed to reading their own profile.
    SelfOnly,
    /// The assigned doctor's token narrowed to reading and sharing the record.
    NarrowedSharer,
    /// A signed link to the record made by the assigned doctor, as `?link=` / as a bearer.
    LinkQuery,
    LinkBearer,
    /// A link whose maker was then deactivated, as `?link=` / as a bearer.
    GoneLinkQuery,
    GoneLinkBearer,
    /// A link whose maker was then made a nurse, as `?link=` / as a bearer.
    MovedLinkQuery,
    MovedLinkBearer,
    /// An unassigned doctor with a live grant on the record; one whose grant expired.
    GrantHolder,
    GrantExpired,
    /// The assigned doctor's token while MFA enrolment is pending (`Claims::mfa_pending`).
    MfaPending,
    /// The patient through the web UI's cookie, with the `X-CSRF-Token` header and without it.
    CookieCsrf,
    CookieNoCsrf,
    /// The oncology nurse, on the record marked sensitive.
    NurseSensitive,
    /// The assigned doctor, on the record they uploaded.
    Uploader,
}

pub const EVERYONE: [Who; 28] = [
    Who::Anonymous,
    Who::PatientSelf,
    Who::PatientOther,
    Who::DoctorAssigned,
    Who::DoctorUnassigned,
    Who::NurseSameDept,
    Who::NurseOtherDept,
    Who::Admin,
    Who::Expired,
    Who::Revoked,
    Who::Forged,
    Who::OtherKey,
    Who::Attenuated,
    Who::SelfOnly,
    Who::NarrowedSharer,
    Who::LinkQuery,
    Who::LinkBearer,
    Who::GoneLinkQuery,
    Who::GoneLinkBearer,
    Who::MovedLinkQuery,
    Who::MovedLinkBearer,
    Who::GrantHolder,
    Who::GrantExpired,
    Who::MfaPending,
    Who::CookieCsrf,
    Who::CookieNoCsrf,
    Who::NurseSensitive,
    Who::Uploader,
];

impl Who {
    /// The caller this one is like wherever the difference does not show: the cookie is the
    /// patient, the uploader the assigned doctor, the sensitive record's nurse the oncology
    /// nurse, a grant holder (off the record) an unassigned doctor. Rules match the callers
    /// that differ first.
    pub fn like(self) -> Who {
        match self {
            Who::CookieCsrf | Who::CookieNoCsrf => Who::PatientSelf,
            Who::Uploader | Who::MfaPending => Who::DoctorAssigned,
            Who::NurseSensitive => Who::NurseSameDept,
            Who::GrantHolder | Who::GrantExpired => Who::DoctorUnassigned,
            w => w,
        }
    }

    /// A token narrowed by attenuation (links included).
    pub fn narrowed(self) -> bool {
        matches!(self, Who::Attenuated | Who::SelfOnly | Who::NarrowedSharer | Who::LinkQuery | Who::LinkBearer)
    }
}

/// What a cell presents.
#[derive(Default)]
pub struct Credential {
    pub bearer: Option<String>,
    /// `Cookie` header value, and the `X-CSRF-Token` to send with it.
    pub cookie: Option<(String, Option<String>)>,
    /// A signed link for the `link` query parameter.
    pub link: Option<String>,
}

/// The person `who` acts as (none for the anonymous caller): a fresh one like them when
/// `fresh` (links stay their maker's: a fresh account could not make them).
pub async fn subject(w: &World, who: Who, fresh: bool) -> Option<Person> {
    let p = match who {
        Who::Anonymous => return None,
        Who::PatientSelf | Who::CookieCsrf | Who::CookieNoCsrf => &w.patient,
        Who::PatientOther => &w.other_patient,
        Who::DoctorAssigned
        | Who::Attenuated
        | Who::SelfOnly
        | Who::NarrowedSharer
        | Who::MfaPending
        | Who::Uploader => &w.doctor,
        Who::LinkQuery | Who::LinkBearer => return Some(w.doctor.clone()),
        Who::GoneLinkQuery | Who::GoneLinkBearer => return Some(w.gone_maker.clone()),
        Who::MovedLinkQuery | Who::MovedLinkBearer => return Some(w.moved_maker.clone()),
        Who::DoctorUnassigned => &w.doctor2,
        Who::NurseSameDept | Who::NurseSensitive => &w.nurse,
        Who::NurseOtherDept => &w.nurse2,
        Who::Admin | Who::Expired | Who::Revoked | Who::Forged | Who::OtherKey => &w.admin,
        Who::GrantHolder => &w.grantee,
        Who::GrantExpired => &w.lapsed,
    };
    Some(if fresh { w.account_like(p).await } else { p.clone() })
}

fn narrow(w: &World, p: &Person, operations: &[&str], resources: &[(&str, String)]) -> String {
    let full = w.token(p);
    let verified = w.app.key_ring().verify(&full).expect("verify");
    careport_policy::attenuate(
        &verified,
        &Narrowing {
            operations: Some(operations.iter().map(|o| (*o).to_owned()).collect()),
            resources: Some(resources.iter().map(|(k, id)| ((*k).to_owned(), id.clone())).collect()),
            expires_at: None,
        },
    )
    .expect("attenuate")
}

/// Log `p` in through the web UI: (`Cookie` header, CSRF token).
pub async fn cookie_login(w: &World, p: &Person) -> (String, String) {
    let body = json!({"email": p.email, "password": careport_tests::PASSWORD, "use_cookie": true});
    let res = w.app.post_json("/api/v1/auth/login", None, &body).await;
    assert_eq!(res.status(), 200, "cookie login");
    let cookie = crate::auth::cookie_named(&res, "__Host-careport_access").expect("access cookie");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let v: Value = res.json().await.expect("json");
    (pair, v["csrf_token"].as_str().expect("csrf").to_owned())
}

/// `who`'s credential, for `subject`.
pub async fn credential(w: &World, who: Who, subject: Option<&Person>) -> Credential {
    let Some(p) = subject else { return Credential::default() };
    let bearer = |t: String| Credential { bearer: Some(t), ..Credential::default() };
    let soon = SystemTime::now() + Duration::from_secs(300);
    match who {
        Who::Anonymous => Credential::default(),
        Who::PatientSelf
        | Who::PatientOther
        | Who::DoctorAssigned
        | Who::DoctorUnassigned
        | Who::NurseSameDept
        | Who::NurseOtherDept
        | Who::Admin
        | Who::GrantHolder
        | Who::GrantExpired
        | Who::NurseSensitive
        | Who::Uploader => bearer(w.token(p)),
        Who::MfaPending => bearer(w.mint(p, true, soon)),
        Who::Expired => bearer(w.mint(p, false, SystemTime::now() - Duration::from_secs(5))),
        Who::Revoked => bearer(w.revoked.clone()),
        Who::Forged => {
            // A token whose signature no longer matches its content.
            let mut t = w.token(p).into_bytes();
            let i = t.len() / 3;
            t[i] = if t[i] == b'Q' { b'R' } else { b'Q' };
            bearer(String::from_utf8(t).expect("utf8"))
        }
        Who::OtherKey => bearer(
            KeyRing::new(w.app.settings.auth.tokens.key_id, KeyPair::new(), Vec::new())
                .mint(&claims(p, false, soon))
                .expect("mint"),
        ),
        Who::Attenuated => bearer(narrow(w, p, &["read"], &[("patient", w.patient.id.to_string())])),
        Who::SelfOnly => bearer(narrow(w, p, &["read"], &[("user", p.id.to_string())])),
        Who::NarrowedSharer => bearer(narrow(w, p, &["read", "share"], &[("document", w.record.to_string())])),
        Who::LinkQuery => Credential { link: Some(w.link(p, w.record).await), ..Credential::default() },
        Who::LinkBearer => bearer(w.link(p, w.record).await),
        Who::GoneLinkQuery => Credential { link: Some(w.gone_link.clone()), ..Credential::default() },
        Who::GoneLinkBearer => bearer(w.gone_link.clone()),
        Who::MovedLinkQuery => Credential { link: Some(w.moved_link.clone()), ..Credential::default() },
        Who::MovedLinkBearer => bearer(w.moved_link.clone()),
        Who::CookieCsrf => {
            let (cookie, csrf) = cookie_login(w, p).await;
            Credential { cookie: Some((cookie, Some(csrf))), ..Credential::default() }
        }
        Who::CookieNoCsrf => {
            let (cookie, _) = cookie_login(w, p).await;
            Credential { cookie: Some((cookie, None)), ..Credential::default() }
        }
    }
}
