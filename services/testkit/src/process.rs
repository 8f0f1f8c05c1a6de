use crate::http::{http_get, wait_until};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Path of a workspace binary in the same target directory as the running test.
///
/// Integration tests of the binary's own crate should prefer `env!("CARGO_BIN_EXE_<name>")`;
/// other crates need the binaries built first (`cargo build --workspace --bins`, which the
/// README's test command does).
pub fn workspace_binary(name: &str) -> PathBuf {
    find_workspace_binary(name)
        .unwrap_or_else(|| panic!("{name} not built: run `cargo build --workspace --bins` first"))
}

/// Like [`workspace_binary`], but `None` when it is not built.
pub fn find_workspace_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // A test runs from target/<profile>/deps/, a binary from target/<profile>/.
    let dir = exe.parent()?;
    [dir, dir.parent()?]
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Peak resident set (VmHWM) of process `pid` in KiB (Linux), for benchmarks' memory figures.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A service binary running as a child process, with its output captured.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Option<Child>,
    addr: String,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ServiceProcess {
    /// Starts `binary` with `--listen 127.0.0.1:<free port>` appended to `args`, and `envs`.
    /// Does not wait; see [`ServiceProcess::wait_ready`].
    pub fn spawn(binary: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_at(binary, &format!("127.0.0.1:{}", free_port()), args, envs)
    }

    /// [`ServiceProcess::spawn`] on a chosen address (another process must know it first).
    pub fn spawn_at(binary: &Path, addr: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let addr = addr.to_owned();
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .arg("--listen")
            .arg(&addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Tests must not pick up the developer's environment by accident.
        for key in ["LEDGERLINE_CONFIG", "LISTEN_ADDR"] {
            cmd.env_remove(key);
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = output.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("{line}");
                    }
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            }));
        }
        Self {
            child: Some(child),
            addr,
            output,
            readers,
        }
    }

    /// Starts the binary and waits (up to 60 s) until `/readyz` answers 200.
    pub fn start(binary: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut p = Self::spawn(binary, args, envs);
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Waits until `/readyz` answers 200; panics with the captured output otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let addr = self.addr.clone();
        let ok = wait_until(timeout, || {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return true;
            }
            matches!(http_get(&addr, "/readyz"), Ok((200, _)))
        });
        if !ok || !self.is_running() {
            panic!(
                "service at {addr} never became ready; output:\n{}",
                self.output()
            );
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET a path on the service.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(&self.addr, path)
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its peak resident set (VmHWM) in KiB, while it runs (Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.as_ref()?.id())
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        self.wait_exit(timeout)
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
            // The pipes close with the process: joining the readers collects its last lines.
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
        }
        status
    }

    /// Kills the process, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
