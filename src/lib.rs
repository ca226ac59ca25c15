//! qtjudge: verifies LLM-written refactorings of a PyQt5 app by running them
//! in a locked-down sandbox and grading them into the experiment's tiers.
//! See ARCHITECTURE.md for the codemap.

pub mod bundle;
pub mod cli;
pub mod client;
pub mod generate;
pub mod gold;
pub mod grading;
pub mod harness;
pub mod image;
pub mod render;
pub mod report_channel;
pub mod sandbox;
pub mod scenario;
pub mod service;
pub mod task;
pub mod task_scaffold;
pub mod timings;
pub mod turns;
pub mod verify;
