//! `GET /api/v1/i18n/{locale}`: the portal's message catalogue for a locale (public: the sign-in
//! page needs it). English is built in (`careport::i18n`); other locales come from enabled
//! language-pack plugins. Keys a pack lacks fall back to English and are listed in `fallback`.

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_domain::{Code, Error};
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// The catalogue of a locale.
#[utoipa::path(get, path = "/api/v1/i18n/{locale}", tag = "reference",
    params(("locale" = String, Path, description = "A language code: en, or one a language pack provides (es, fr, ar, zh, hi)")),
    responses((status = 200, description = "`{locale, name, direction, plural_categories, plural_rule, messages, fallback}`"),
        (status = 404, description = "No pack for this locale", body = super::error::ErrorBody)))]
pub async fn catalogue(services: web::Data<Services>, locale: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let english = crate::i18n::english();
    let locale = locale.into_inner();
    if locale == "en" {
        return Ok(HttpResponse::Ok().json(json!({
            "locale": "en", "name": "English", "direction": "ltr", "plural_categories": ["one", "other"],
            "plural_rule": "one: i = 1 and v = 0; other", "messages": english, "fallback": [],
        })));
    }
    if locale.len() > 16 || !locale.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::new(Code::NotFound).into());
    }
    // Catalogues are read once per pack version: an unknown locale runs no plugin.
    if let Some(pack) = services.plugins.catalogue(&locale).await {
        let mut pack = (*pack).clone();
        let categories: Vec<String> = pack["plural_categories"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_else(|| vec!["other".into()]);
        let mut messages: Map<String, Value> = pack["messages"].as_object().cloned().unwrap_or_default();
        let mut fallback = Vec::new();
        for key in crate::i18n::required_keys(&categories) {
            if !messages.contains_key(&key) {
                let base = crate::i18n::base_key(&key);
                let text =
                    english.get(&key).or_else(|| english.get(&format!("{base}#other"))).cloned().unwrap_or_default();
                messages.insert(key.clone(), Value::String(text));
                fallback.push(key);
            }
        }
        pack["messages"] = Value::Object(messages);
        pack["fallback"] = json!(fallback);
        return Ok(HttpResponse::Ok().json(pack));
    }
    Err(Error::with_message(Code::NotFound, "No language pack provides this locale.").into())
}

/// Register the route.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    cfg.service(web::resource("/api/v1/i18n/{locale}").get(catalogue).default_service(web::to(method_not_allowed)));
}
