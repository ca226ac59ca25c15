//! `qtjudge task new NAME [--from ORIGINAL.py]`: a task folder scaffolded
//! (`task_scaffold`) in the tasks dir, and what to do next.

use std::path::PathBuf;

use anyhow::Result;

use super::exit_codes;
use crate::task;
use crate::task_scaffold;

pub(super) fn new_command(
    name: &str,
    from: Option<PathBuf>,
    tasks_dir: Option<PathBuf>,
) -> Result<i32> {
    let dir = tasks_dir.unwrap_or_else(task::default_tasks_dir);
    let made = task_scaffold::scaffold(&dir, name, from.as_deref())?;
    println!("created task {name} in {}", made.dir.display());
    for file in &made.files {
        println!("  {file}");
    }
    if let Some(class) = &made.window_class {
        println!("  (window class read from the original: {class})");
    }
    println!(
        "\nnext: fill in the TODOs of task.toml, then run `qtjudge task check {}`; it says what is still missing:",
        made.dir.display()
    );
    for lack in task_scaffold::missing(&made.dir) {
        println!("  - {lack}");
    }
    Ok(exit_codes::OK)
}
