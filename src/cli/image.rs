//! `qtjudge image`: the sandbox image's tag, and its build.

use anyhow::Result;

use super::{exit_codes, progress_line, ImageAction};
use crate::sandbox::SandboxConfig;

pub(super) async fn image_command(action: ImageAction) -> Result<i32> {
    match action {
        ImageAction::Tag => {
            println!("{}", crate::image::sandbox_tag());
            Ok(exit_codes::OK)
        }
        ImageAction::Build { force } => {
            // Docker's image: the one backend that has one.
            let backend = crate::sandbox::backend(&SandboxConfig::default())?;
            match backend.image(force, &progress_line).await? {
                Some(tag) => println!("{tag}"),
                None => println!("the {} sandbox has no image", backend.name()),
            }
            Ok(exit_codes::OK)
        }
    }
}
