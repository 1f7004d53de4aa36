//! Integration tests on the bundled sample data: one test binary, a module per concern.

mod anomaly;
mod bad_input;
mod bench;
mod classify;
mod common;
mod detect;
mod lecture;
mod restore;
mod resume;
mod segment;
mod tour;
