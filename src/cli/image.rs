//! `qtjudge image`: the sandbox image's tag, and its build.

use anyhow::Result;

use super::{exit_codes, progress_line, ImageAction};

pub(super) async fn image_command(action: ImageAction) -> Result<i32> {
    match action {
        ImageAction::Tag => {
            println!("{}", crate::image::sandbox_tag());
            Ok(exit_codes::OK)
        }
        ImageAction::Build { force } => {
            let docker = crate::sandbox::docker::connect_engine().await?;
            let tag = if force {
                crate::image::build(&docker, &progress_line).await?
            } else {
                crate::image::ensure(&docker, &progress_line).await?
            };
            println!("{tag}");
            Ok(exit_codes::OK)
        }
    }
}
