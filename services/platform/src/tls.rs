//! One TLS crypto provider for the whole process: ring (async-nats and reqwest both use rustls).

/// Installs ring as the process-wide rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client on the workspace's TLS provider, with sane timeouts.
pub fn http_client(user_agent: &str) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
}
