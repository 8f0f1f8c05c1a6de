use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_its_setup_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xero-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--tenants", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(out)
        .lines()
        .take(8)
        .map(Result::unwrap)
        .collect();
    let text = lines.join("\n");
    assert!(
        text.contains("xero-sandbox listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("client id:      ledgerline-sandbox"),
        "{text}"
    );
    assert!(text.contains("client secret:  sandbox-secret"), "{text}");
    assert_eq!(text.matches("tenant ").count(), 2, "{text}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
