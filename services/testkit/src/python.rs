//! Python tools from PyPI (schemathesis, kubernetes-validate, ...) in a venv of their own under
//! `target/`, installed once and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The `target/` directory of the running test binary (`target/<profile>/deps/<test>`).
fn target_dir() -> Option<PathBuf> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(t));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

/// A venv at `target/py-<name>` holding `requirement` (e.g. `schemathesis==4.32.5`); returns
/// the venv's `bin/` directory. Installed on first use with `python3 -m venv` and pip; tests in
/// other processes that ask at the same time wait for the first (a lock directory), so pip
/// never runs twice into one venv. Panics with pip's output when the install fails.
pub fn python_tool(name: &str, requirement: &str) -> PathBuf {
    let root = target_dir().expect("the test binary lives under target/");
    let venv = root.join(format!("py-{name}"));
    let bin = venv.join("bin");
    // The marker names the requirement, so a pin change reinstalls.
    let marker = venv.join(".installed");
    let installed = || std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == requirement);
    if installed() {
        return bin;
    }
    std::fs::create_dir_all(&root).expect("target/ is writable");
    let lock = root.join(format!("py-{name}.lock"));
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if installed() {
            return bin;
        }
        // A lock older than the longest install is a crashed installer's.
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
        if stale {
            let _ = std::fs::remove_dir(&lock);
        }
        assert!(Instant::now() < deadline, "waited 10 minutes for {lock:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = install(&venv, requirement);
    if result.is_ok() {
        std::fs::write(&marker, requirement).expect("marker written");
    }
    let _ = std::fs::remove_dir(&lock);
    if let Err(e) = result {
        panic!("installing {requirement} into {venv:?} failed:\n{e}");
    }
    bin
}

fn install(venv: &Path, requirement: &str) -> Result<(), String> {
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let _ = std::fs::remove_dir_all(venv);
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        requirement,
    ]))
}
