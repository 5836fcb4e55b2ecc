//! The TLS client settings of every outbound HTTPS connection (JWKS fetches, plugins'
//! granted `wasi:http` requests): Mozilla's root store (webpki-roots) and `ring`.
//! Never: reads the system's certificate store or the environment (no proxy variables).

use std::sync::{Arc, OnceLock};

/// The shared client configuration, built once.
pub fn config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // `ring` supports every safe default version; failing here is a build error.
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
