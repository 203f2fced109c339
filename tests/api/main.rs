//! careport's integration tests: one binary (one link), one module per area.
//! Each test runs on SQLite, and on PostgreSQL when `CAREPORT_TEST_PG_URL` is set.

mod accounts;
mod audit;
mod auth;
mod chat;
mod clinic;
mod health;
mod jobs;
mod knowledge;
mod migrations;
mod model;
mod ocr;
mod plugins;
mod rbac;
mod records;
mod reference;
mod resilience;
mod runner;
mod schema;
mod ui;
mod visibility;
