//! The `careport` binary: parse the command line and run it inside an actix System.

use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    match careport::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
