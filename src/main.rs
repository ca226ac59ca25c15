//! The `qtjudge` binary: parse the command line, set up logging, run.

use clap::Parser;

#[tokio::main]
async fn main() {
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
