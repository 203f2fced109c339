//! careport's integration tests: one binary (one link), one module per area.
//! Each test runs on SQLite, and on PostgreSQL when `CAREPORT_TEST_PG_URL` is set.

mod accounts;
mod audit;
mod auth;
mod billing;
mod chat;
mod clinic;
mod cluster;
mod health;
mod imaging;
mod jobs;
mod knowledge;
mod migrations;
mod model;
mod ocr;
mod plugins;
mod rbac;
mod records;
mod reference;
mod reports;
mod resilience;
mod runner;
mod schema;
mod ui;
mod visibility;
