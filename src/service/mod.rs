//! The verifier service (`qtjudge serve`) in its own room: the HTTP API
//! and pages, the job store, the workers that run verifications, the
//! callbacks, and the HTTP server under them.

pub mod api;
pub mod callbacks;
pub mod data_dir_lock;
pub mod engine_watch;
pub mod http_server;
pub mod jobs;
pub mod metrics;
pub mod store;
pub mod workers;
