//! The `careport` binary: parse the command line and run it inside an actix System.

use std::process::ExitCode;

fn main() -> ExitCode {
    one_thread_per_engine();
    actix_web::rt::System::new().block_on(async {
        match careport::cli::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Tesseract parallelises inside a page with OpenMP; careport reads pages side by side on its own
/// worker threads instead (about twice as fast here), so each engine must get one thread. OpenMP
/// reads `OMP_THREAD_LIMIT` once, when the library starts, and setting a variable in a running
/// process is unsafe (which this workspace forbids): without it, the process starts itself again
/// with it set. An operator's own value is kept.
fn one_thread_per_engine() {
    #[cfg(unix)]
    if std::env::var_os("OMP_THREAD_LIMIT").is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("OMP_THREAD_LIMIT", "1").exec();
        // Only reached when the exec failed: carry on with OpenMP's default.
        eprintln!("warning: could not restart with OMP_THREAD_LIMIT=1 ({err}); OCR will be slower");
    }
}
