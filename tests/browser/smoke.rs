//! The harness itself, on pages that exist without the web UI: a server-rendered form, and the
//! `__Host-` session cookies set by the JSON API.

use careport_domain::Role;
use careport_tests::spawn_app;
use serde_json::json;

use crate::harness::Browser;

/// An address no other test uses (the SMTP sink of the CI run is shared by every test).
fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[actix_web::test]
async fn smoke_forgot_password_page() {
    if !Browser::available() {
        return;
    }
    let app = spawn_app().await;
    let email = &unique("browser-forgot");
    app.create_user(email, Role::Patient, None, None).await;
    let browser = Browser::start(&app).await;

    browser.goto("/forgot-password").await;
    assert_eq!(browser.text("h1").await, "Forgot your password?");
    assert_eq!(browser.attr("#email", "type").await.as_deref(), Some("email"));
    assert!(browser.exists("label[for=email]").await);
    assert!(!browser.exists("p.ok").await);
    browser.screenshot("forgot-password-form").await;
    browser.axe("forgot-password-form").await;

    browser.fill("#email", "typo@example.org").await;
    browser.fill("#email", email).await;
    browser.click("button[type=submit]").await;
    browser.wait_text("p.ok", "a reset link is on its way").await;
    browser.wait_url("/forgot-password").await;
    assert_eq!(browser.text("h1").await, "Check your e-mail");
    browser.screenshot("forgot-password-sent").await;
    browser.axe("forgot-password-sent").await;

    // The form really went through: the app sent the link, to the address typed last.
    let mail = app.email_to(email).await;
    assert!(mail.contains("/reset-password?token="), "{mail}");
    browser.close().await;
}

#[actix_web::test]
async fn secure_cookie_on_localhost() {
    if !Browser::available() {
        return;
    }
    let app = spawn_app().await;
    let email = &unique("browser-cookie");
    app.create_user(email, Role::Patient, None, None).await;
    let browser = Browser::start(&app).await;
    // A document of the app's origin, so that its fetches are same-origin, and one without a
    // CSP: the server-rendered pages' `default-src 'none'` forbids fetch (no connect-src).
    browser.goto("/healthz").await;
    assert_eq!(browser.url().await, format!("{}/healthz", browser.base()));
    assert!(browser.base().starts_with("http://localhost:"), "{}", browser.base());
    assert_eq!(browser.eval("return window.isSecureContext").await, json!(true));

    let me = "return fetch('/api/v1/auth/me', {credentials: 'same-origin'}).then(r => r.status)";
    assert_eq!(browser.eval(me).await, json!(401), "no session yet");

    let login = browser
        .eval(&format!(
            "return fetch('/api/v1/auth/login', {{method: 'POST', credentials: 'same-origin',
                headers: {{'content-type': 'application/json'}},
                body: JSON.stringify({{email: {email}, password: {password}, use_cookie: true}})}})
              .then(async r => ({{status: r.status, body: await r.json()}}))",
            email = json!(email),
            password = json!(careport_tests::PASSWORD),
        ))
        .await;
    assert_eq!(login["status"], 200, "{login}");
    let csrf = login["body"]["csrf_token"].as_str().expect("a CSRF token with use_cookie").to_owned();

    // The browser kept all three cookies, Secure, for localhost; the CSRF one is readable by
    // the page (it is not HttpOnly), the others are not.
    let cookies = browser.client().get_all_cookies().await.expect("cookies");
    for name in ["__Host-careport_access", "__Host-careport_refresh", "__Host-careport_csrf"] {
        let c = cookies.iter().find(|c| c.name() == name).unwrap_or_else(|| panic!("no {name} in {cookies:?}"));
        assert_eq!(c.secure(), Some(true), "{name}");
        assert_eq!(c.path(), Some("/"), "{name}");
    }
    let page_cookies = browser.eval("return document.cookie").await;
    let page_cookies = page_cookies.as_str().expect("a string");
    assert!(page_cookies.contains(&format!("__Host-careport_csrf={csrf}")), "{page_cookies}");
    assert!(!page_cookies.contains("__Host-careport_access"), "{page_cookies}");

    // The cookie authenticates, and keeps doing so across a navigation.
    let who = "return fetch('/api/v1/auth/me', {credentials: 'same-origin'})
                 .then(async r => ({status: r.status, body: await r.json()}))";
    let res = browser.eval(who).await;
    assert_eq!(res["status"], 200, "{res}");
    assert_eq!(res["body"]["email"], email.as_str(), "{res}");
    browser.goto("/forgot-password").await;
    let again = browser.client().get_all_cookies().await.expect("cookies");
    assert!(again.iter().any(|c| c.name() == "__Host-careport_access"), "after a navigation: {again:?}");
    browser.goto("/healthz").await;
    assert_eq!(browser.eval(me).await, json!(200), "after a navigation");
    browser.close().await;
}

/// The controls the app's pages do not have yet (a file input, a select, late content), on a
/// page of the harness's own.
#[actix_web::test]
async fn harness_controls_on_a_static_page() {
    if !Browser::available() {
        return;
    }
    let app = spawn_app().await;
    let browser = Browser::start(&app).await;
    let html = "<!doctype html><html lang=en><title>controls</title><main>\
        <label for=f>File</label><input id=f type=file>\
        <label for=s>Colour</label><select id=s><option value=r>Red</option><option value=g>Green</option></select>\
        <output id=o></output></main><script>\
        document.getElementById('s').addEventListener('change', e => document.getElementById('o').textContent = 'chose ' + e.target.value);\
        setTimeout(() => { const p = document.createElement('p'); p.id = 'late'; p.textContent = 'here'; document.body.append(p); }, 300);\
        </script></html>";
    browser.goto(&format!("data:text/html,{}", html.replace('#', "%23"))).await;
    assert_eq!(browser.eval("return [window.innerWidth, window.innerHeight]").await, json!([1280, 900]));

    assert!(!browser.exists("#late").await);
    browser.wait_for("#late").await;
    assert_eq!(browser.text("#late").await, "here");

    browser.select("#s", "g").await;
    browser.wait_text("#o", "chose g").await;
    assert_eq!(browser.eval("return document.getElementById('s').value").await, json!("g"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scan.txt");
    std::fs::write(&file, "hello").expect("write");
    browser.upload("#f", &file).await;
    let chosen =
        browser.eval("const f = document.getElementById('f').files[0]; return f.text().then(t => [f.name, t])").await;
    assert_eq!(chosen, json!(["scan.txt", "hello"]));
    assert_eq!(browser.attr("#f", "type").await.as_deref(), Some("file"));
    assert_eq!(browser.attr("#f", "accept").await, None);

    let (desktop, phone) = browser.screenshot("harness-controls").await;
    assert_eq!(png_size(&desktop), (1280, 900));
    assert_eq!(png_size(&phone), (390, 844));
    assert_eq!(browser.eval("return [window.innerWidth, window.innerHeight]").await, json!([1280, 900]));
    browser.close().await;
}

/// axe finds what it should, and `Browser::axe` would fail on it.
#[actix_web::test]
async fn axe_reports_serious_violations() {
    if !Browser::available() {
        return;
    }
    let app = spawn_app().await;
    let browser = Browser::start(&app).await;
    let html = "<!doctype html><html lang=en><title>bad</title><main>\
        <p style='color:%23bbb;background:%23fff'>Faint text</p><img src='data:,'><input id=nolabel></main></html>";
    browser.goto(&format!("data:text/html,{html}")).await;
    let found = browser.axe_violations("harness-axe-bad").await;
    let impact = |id: &str| {
        found
            .iter()
            .find(|v| v["id"] == id)
            .map(|v| v["impact"].clone())
            .unwrap_or_else(|| panic!("no {id} in {found:?}"))
    };
    assert_eq!(impact("color-contrast"), json!("serious"));
    assert_eq!(impact("image-alt"), json!("critical"));
    assert_eq!(impact("label"), json!("critical"));
    let first = found.iter().find(|v| v["id"] == "label").expect("label");
    assert_eq!(first["targets"][0], json!(["#nolabel"]), "{first}");
    browser.close().await;
}

/// Width and height from a PNG's IHDR.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("read the screenshot");
    assert_eq!(bytes.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "{} is a PNG", path.display());
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
    (be(16), be(20))
}
