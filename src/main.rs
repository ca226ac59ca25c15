//! The `qtjudge` binary: parse the command line, set up logging, run.

use clap::Parser;

#[tokio::main]
async fn main() {
    // Buffers of an app's size (an unpacked upload, its job line) are
    // mapped and given back to the system when freed: glibc would
    // otherwise raise its threshold after the first and keep later ones in
    // arenas it never shrinks, and the service's RSS would stay at its peak.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, under its lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QTJUDGE_LOG")
                .unwrap_or_else(|_| "warn,qtjudge=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match qtjudge::cli::run(qtjudge::cli::Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("qtjudge: error: {error:#}");
            qtjudge::cli::exit_codes::USAGE_OR_ENVIRONMENT
        }
    };
    std::process::exit(code);
}
