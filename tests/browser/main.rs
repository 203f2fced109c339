//! careport's browser tests: headless Chromium over WebDriver against a real app
//! (`harness.rs`). One binary; each test starts its own app, chromedriver and browser.
//!
//! They need `/usr/bin/chromium` and `/usr/bin/chromedriver` (`bash .ci/install-browser.sh`).
//! Without them a test is skipped, except under CI (env `CI` set), where it fails.
//! Screenshots and axe reports go to `$CAREPORT_TEST_SCREENSHOTS` (default
//! `$CARGO_TARGET_DIR/screenshots`).

mod harness;
mod journeys;
mod smoke;
