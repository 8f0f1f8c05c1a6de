//! `<service> healthcheck`: asks the running service's `/readyz` on its own listen address and
//! exits 0 when it answers 200. Container images carry no curl; the binary checks itself, and
//! through `/readyz` it checks NATS too (ready means connected, streams in place).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Probes `http://<listen>/readyz` (a wildcard address is asked on loopback).
pub fn probe(listen: SocketAddr) -> anyhow::Result<()> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| anyhow::anyhow!("nothing answers on {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    s.take(4096).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ready");
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
        anyhow::bail!("not ready ({status}): {body}")
    }
}

/// For binaries without subcommands: when the first argument is `healthcheck`, probes the
/// address in `LISTEN_ADDR` (or `default`) and exits.
pub fn exit_if_asked(default: &str) {
    if std::env::args().nth(1).as_deref() != Some("healthcheck") {
        return;
    }
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| default.to_owned());
    let code = match listen
        .parse::<SocketAddr>()
        .map_err(|e| anyhow::anyhow!("LISTEN_ADDR {listen:?}: {e}"))
        .and_then(probe)
    {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    };
    std::process::exit(code);
}
