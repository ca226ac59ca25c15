//! The grading room: everything that turns evidence into a verdict and
//! does no IO (no files, no network, no async runtime): the answer's
//! extraction, the static comparison with the original, the layout
//! comparison, the screen's pixels, the programs the app started, the
//! tier rules, and what many verdicts add up to (samples, leaderboard).
//! The sandbox and the service bring the evidence; this room only reads
//! it (checked by `tests/it/tidy.rs`).

/// A code of the JSON contract (a failure code, a tier's label): a plain
/// enum, ordered and hashable, serialised as its variants' snake_case
/// names. Written once so that every such code derives the same traits.
macro_rules! contract_code {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variants:tt)* }) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(rename_all = "snake_case")]
        $(#[$meta])*
        $vis enum $name { $($variants)* }
    };
}

pub mod compare;
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
