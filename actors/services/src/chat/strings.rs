//! The chat's own sentences (the labels of a grounded answer, the booking confirmation, the
//! notes when the model fails) in the user's language: English here, the other languages from
//! the enabled language-pack plugins, like every string of the portal. The runtime's message
//! catalogue (`careport::i18n`) lists these keys too, so a pack that lacks one fails its test.
//!
//! The emergency message is not among them: it is built into [`super::safety`] in all six
//! languages, because it must be there even when no pack is installed and no operator can
//! weaken it by uploading a pack.
//!
//! A pack's catalogue is read once per plugin version and kept ([`Plugins::catalogue`]).

use crate::plugins::Plugins;

/// Every chat key with its English text.
pub const STRINGS: &[(&str, &str)] = &[
    ("chat.excerpts_intro", "Here is what the clinic's documents say. These are excerpts, not a personal answer:"),
    ("chat.no_passages", "I could not find anything about this in the clinic's documents. Please ask your care team."),
    ("chat.sources", "Sources"),
    (
        "chat.provider_failed",
        "The assistant's language model could not be reached, so this answer is built from the clinic's documents.",
    ),
    ("chat.step_limit", "I could not finish this answer. Please ask again in other words."),
    ("chat.confirm_booking", "Book an appointment with {clinician} on {when}?"),
    ("chat.booked", "Your appointment is booked for {when}."),
    ("chat.not_booked", "Nothing was booked."),
    ("chat.stopped", "Stopped."),
    (
        "chat.redaction_failed",
        "This question could not be sent to the language model safely, so this answer is built from the clinic's documents.",
    ),
];

/// The English text of `key` (the key itself if it is not a chat key: a bug, visible).
pub fn english(key: &str) -> &str {
    STRINGS.iter().find(|(k, _)| *k == key).map_or(key, |(_, v)| v)
}

/// The chat's sentences in each language.
#[derive(Default)]
pub struct Strings;

impl Strings {
    /// `key` in `language`, with `{name}` placeholders filled from `args`.
    pub async fn get(&self, plugins: &Plugins, language: &str, key: &str, args: &[(&str, &str)]) -> String {
        let translated = match language {
            "en" => None,
            _ => plugins.catalogue(language).await.and_then(|c| c["messages"][key].as_str().map(str::to_owned)),
        };
        let mut text = translated.unwrap_or_else(|| english(key).to_owned());
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}
