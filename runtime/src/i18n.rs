//! The portal's message keys, in one place, with their English text (built in). Language packs
//! (plugins of kind `language-pack`) translate these keys; a test checks every example pack
//! against this list, so a key added here without translations fails the suite.
//!
//! Keys: `error.<code>` for every error code of the API (the `message` of an error answer), the
//! web UI's strings, and the assistant's (`chat.*`, kept in `careport_actors::chat::strings`).
//! A plural key ends in `#<CLDR category>`: English has `#one` and `#other`; a pack provides the
//! categories of its locale (`plural_categories`).

use std::collections::BTreeMap;

use careport_domain::Code;

/// The UI strings, English.
pub const UI: &[(&str, &str)] = &[
    ("nav.dashboard", "Dashboard"),
    ("nav.patients", "Patients"),
    ("nav.appointments", "Appointments"),
    ("nav.records", "Records"),
    ("nav.assistant", "Ask a question"),
    ("nav.settings", "Settings"),
    ("nav.admin", "Administration"),
    ("auth.sign_in", "Sign in"),
    ("auth.sign_out", "Sign out"),
    ("auth.email", "E-mail address"),
    ("auth.password", "Password"),
    ("auth.forgot_password", "Forgot your password?"),
    ("auth.register", "Create an account"),
    ("auth.mfa_code", "Code from your authenticator app"),
    ("patients.search", "Search by name or record number"),
    ("patients.care_team", "Care team"),
    ("patients.date_of_birth", "Date of birth"),
    ("appointments.book", "Book an appointment"),
    ("appointments.cancel", "Cancel the appointment"),
    ("appointments.reschedule", "Choose another time"),
    ("appointments.next", "Your next appointment"),
    ("appointments.none", "You have no upcoming appointments."),
    ("appointments.status.scheduled", "Scheduled"),
    ("appointments.status.completed", "Completed"),
    ("appointments.status.cancelled", "Cancelled"),
    ("appointments.status.no_show", "Missed"),
    ("appointments.upcoming#one", "{count} upcoming appointment"),
    ("appointments.upcoming#other", "{count} upcoming appointments"),
    ("common.save", "Save"),
    ("common.cancel", "Cancel"),
    ("common.loading", "Loading…"),
    ("common.language", "Language"),
];

/// Every key with its English text.
pub fn english() -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> =
        Code::ALL.iter().map(|c| (format!("error.{}", c.as_str()), c.default_message().to_owned())).collect();
    m.extend(UI.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    // The assistant's sentences live with the assistant, which reads their translations itself.
    m.extend(careport_actors::chat::strings::STRINGS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    m
}

/// The key without its plural category (`appointments.upcoming#one` → `appointments.upcoming`).
pub fn base_key(key: &str) -> &str {
    key.split_once('#').map_or(key, |(b, _)| b)
}

/// What a language pack must hold for `categories`: every non-plural key, and each plural key
/// in each of the locale's categories.
pub fn required_keys(categories: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in english().keys() {
        if key.contains('#') {
            let base = base_key(key);
            for c in categories {
                let k = format!("{base}#{c}");
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        } else {
            out.push(key.clone());
        }
    }
    out.sort();
    out
}
