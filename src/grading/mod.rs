//! The grading room: everything that turns evidence into a verdict and
//! does no IO (no files, no network, no async runtime): the answer's
//! extraction, the static comparison with the original, the layout
//! comparison, the screen's pixels, the programs the app started, the
//! tier rules, and what many verdicts add up to (samples, leaderboard).
//! The sandbox and the service bring the evidence; this room only reads
//! it (checked by `tests/it/tidy.rs`).

pub mod extract;
pub mod failure;
pub mod layout_diff;
pub mod leaderboard;
pub mod lines;
pub mod pixels;
pub mod programs;
pub mod samples;
pub mod screen;
pub mod static_grade;
pub mod verdict;

pub use failure::FailureCode;
