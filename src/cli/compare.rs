//! `qtjudge compare RUN_A RUN_B`: two grade runs' folders read back and
//! compared (`grading::compare`), rendered, and the exit code of
//! `--fail-on-regression`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{exit_codes, load_run, CompareArgs};
use crate::render;
use crate::verify::Verification;

pub(super) fn compare_command(args: CompareArgs) -> Result<i32> {
    let a = read_run(&args.run_a, "RUN_A")?;
    let b = read_run(&args.run_b, "RUN_B")?;
    let comparison = render::comparison(&a, &b);
    print!(
        "{}",
        render::compare(
            &comparison,
            &args.run_a.display().to_string(),
            &args.run_b.display().to_string(),
            args.format
        )
    );
    let regressions = match args.fail_on_regression {
        Some(threshold) => comparison.regressions(threshold),
        None => Vec::new(),
    };
    for line in &regressions {
        eprintln!(
            "qtjudge: {}'s pass rate dropped by {:.1} points (more than --fail-on-regression {})",
            line.model,
            -line.pass.delta.unwrap_or(0.0) * 100.0,
            args.fail_on_regression.unwrap_or(0.0)
        );
    }
    Ok(exit_codes::of_compare(regressions.len()))
}

/// A run folder's results; a folder that cannot be read or holds none is
/// a usage error that says what to give.
fn read_run(dir: &Path, which: &str) -> Result<Vec<Verification>> {
    let results = load_run(dir)
        .with_context(|| format!("{which}: give the --run-dir of a `qtjudge grade` run"))?;
    if results.is_empty() {
        bail!(
            "{which}: {} holds no results: give the --run-dir of a `qtjudge grade` run",
            dir.display()
        );
    }
    Ok(results)
}
