//! A real browser for page tests: Debian's `chromium` driven through `chromedriver` (WebDriver)
//! by fantoccini, headless, on a free port; stopped on drop. Screenshots land in
//! `target/test-artifacts/<name>.png`, where a person can look at them.

use hyper_util::client::legacy::connect::HttpConnector;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium session and the chromedriver that serves it.
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver client.
    pub client: fantoccini::Client,
    driver: Child,
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a laptop-sized window (1366 x 900).
    /// Panics with what to install when either is missing (`.ci/run` installs both).
    pub async fn start() -> Self {
        let driver_bin = std::env::var_os("CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| which(&["chromedriver", "chromium-driver"]))
            .expect("chromedriver is not installed: apt-get install chromium chromium-driver (scripts/ensure-chromium.sh)");
        let chrome = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| which(&["chromium", "chromium-browser", "google-chrome"]))
            .expect("chromium is not installed: apt-get install chromium chromium-driver (scripts/ensure-chromium.sh)");
        let port = crate::free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1366,900",
                    "--no-first-run", "--disable-extensions",
                ],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match fantoccini::ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from {driver_bin:?}: {e}"),
            }
        };
        Self { client, driver }
    }

    /// Saves a screenshot of the window as `target/test-artifacts/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("the artifacts directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Ends the session (the driver is stopped on drop either way).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `target/test-artifacts`, beside the test binaries.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/test-artifacts
    exe.parent()
        .and_then(|d| d.parent())
        .and_then(|d| d.parent())
        .map(|t| t.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from("test-artifacts"))
}
