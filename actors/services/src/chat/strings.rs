//! The chat's own sentences (the labels of a grounded answer, the booking confirmation, the
//! notes when the model fails) in the user's language: English here, the other languages from
//! the enabled language-pack plugins, like every string of the portal. The runtime's message
//! catalogue (`careport::i18n`) lists these keys too, so a pack that lacks one fails its test.
//!
//! The emergency message is not among them: it is built into [`super::safety`] in all six
//! languages, because it must be there even when no pack is installed and no operator can
//! weaken it by uploading a pack.
//!
//! A pack's catalogue is read once per plugin version and kept.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// A pack's messages, and the pack (`name@version`) they were read from.
type Catalogue = (String, HashMap<String, String>);

/// Catalogues read from language packs, by locale.
#[derive(Default)]
pub struct Strings {
    cache: Mutex<HashMap<String, Catalogue>>,
}

impl Strings {
    /// `key` in `language`, with `{name}` placeholders filled from `args`.
    pub async fn get(&self, plugins: &Plugins, language: &str, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.lookup(plugins, language, key).await.unwrap_or_else(|| english(key).to_owned());
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    async fn lookup(&self, plugins: &Plugins, language: &str, key: &str) -> Option<String> {
        if language == "en" {
            return None;
        }
        let packs: Vec<_> = plugins.list().into_iter().filter(|p| p.kind == "language-pack" && p.enabled).collect();
        // A cached catalogue whose pack is still enabled at the same version.
        {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((version, messages)) = cache.get(language)
                && packs.iter().any(|p| &format!("{}@{}", p.name, p.version) == version)
            {
                return messages.get(key).cloned();
            }
        }
        for p in packs {
            let Ok(pack) = plugins.call(&p.name, serde_json::json!({})).await else { continue };
            if pack["locale"] != language {
                continue;
            }
            let messages: HashMap<String, String> = pack["messages"]
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
                .unwrap_or_default();
            let found = messages.get(key).cloned();
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(language.to_owned(), (format!("{}@{}", p.name, p.version), messages));
            return found;
        }
        None
    }
}
