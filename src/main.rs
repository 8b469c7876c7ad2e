use std::process::ExitCode;

use clap::Parser;
use keytop::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A log that cannot be opened must not stop a command; keytop runs fine without it.
    let _ = keytop::logging::init(&keytop::paths::log_file());
    cli::main(cli).await
}
