//! `qtjudge verify`: one answer or app, verified and rendered.

use anyhow::{Context, Result};

use super::answers::{load_input, model_name};
use super::run_dir::sanitize;
use super::task_picker::TaskPicker;
use super::{exit_codes, make_sandbox, VerifyArgs};
use crate::render;
use crate::verify;

pub(super) async fn verify_command(args: VerifyArgs) -> Result<i32> {
    let picker = TaskPicker::new(&args.common)?;
    let loaded = load_input(&args.file, args.entry.as_deref())?;
    let (prepared, choice) = picker.pick(None, &loaded.code())?;
    // One answer: a warm container would only be paid for and thrown away.
    let sandbox = make_sandbox(&args.common, 0).await?;
    let model = model_name(&args.file);
    eprintln!(
        "qtjudge: verifying {} in the {} sandbox (task {}: {})…",
        args.file.display(),
        sandbox.name(),
        choice.task,
        choice.reason
    );
    let mut result =
        crate::verify::verify_guarded(loaded.input(), &model, &prepared, sandbox.as_ref())
            .await
            .unwrap_or_else(|crate::verify::Panicked(v)| v);
    result.task_choice = Some(choice);
    // Its container is removed in the background: wait for that before exiting.
    sandbox.shutdown().await;
    let dir = args
        .artifacts
        .unwrap_or_else(|| std::env::temp_dir().join(format!("qtjudge-{}", sanitize(&model))));
    verify::save_artifacts(&mut result, &dir)
        .with_context(|| format!("saving screenshots under {}", dir.display()))?;
    print!("{}", render::one(&result, args.format));
    Ok(exit_codes::of_verification(result.label))
}
