//! An app as it was uploaded: checked from its directory and headers
//! alone when a request brings it, unpacked only by a worker.

use serde::{Deserialize, Serialize};

use super::tar_gz::gzip_declared;
use super::zip_archive::zip_declared;
use super::{base64_bytes, Bundle, BundleError, InputKind};

/// An app as it was uploaded (a zip, a .tar.gz or a notebook): kept
/// compressed where it rests and unpacked only when a worker runs it, so
/// that neither a request nor the store ever holds what it unpacks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub kind: InputKind,
    /// The upload's file name (a notebook's script is named after it).
    pub name: String,
    pub entry: Option<String>,
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

impl Upload {
    /// Checks what can be checked without unpacking, and returns the bytes
    /// the upload says it unpacks to: a zip's directory (names, kinds,
    /// sizes, the entry), a .tar.gz's gzip header and size trailer, a
    /// notebook's own size. What only unpacking shows (a member lying
    /// about its size, a tar's names) is checked by [`Upload::unpack`].
    pub fn check(&self) -> Result<u64, BundleError> {
        match self.kind {
            InputKind::Zip => zip_declared(&self.bytes, self.entry.as_deref()),
            InputKind::TarGz => gzip_declared(&self.bytes),
            InputKind::Notebook => {
                std::str::from_utf8(&self.bytes)
                    .map_err(|e| BundleError::BadNotebook(format!("not UTF-8: {e}")))?;
                Ok(self.bytes.len() as u64)
            }
            InputKind::Answer => Err(BundleError::BadArchive {
                format: "known".into(),
                detail: format!("`{}` is not a .zip, .tar.gz or .ipynb", self.name),
            }),
        }
    }

    /// The app, unpacked with every limit applied.
    pub fn unpack(&self) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(self.kind, &self.name, &self.bytes, self.entry.as_deref())
    }
}
