//! What every handler is given: the jobs, the API's settings, and the HTTP
//! server's connection counters (for `/metrics`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::service::http_server::ConnectionStats;
use crate::service::jobs::Jobs;

/// What the API needs besides the jobs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Required on every `/v1` route when set.
    pub token: Option<String>,
    /// The largest answer (and single-verification body), in bytes.
    pub max_body: usize,
    /// The most answers one batch may carry.
    pub max_batch: usize,
    /// The most bytes a batch's apps may declare they unpack to.
    pub max_batch_unpacked: u64,
    pub tasks_dir: PathBuf,
}

#[derive(Clone)]
pub struct AppState {
    pub jobs: Arc<Jobs>,
    pub config: Arc<ApiConfig>,
    /// What the HTTP server's connections did (for `/metrics`).
    pub connections: Arc<ConnectionStats>,
}
