//! OAuth 2.1 resource-server mode: bearer JWTs from an external authorization server,
//! checked against its published keys (JWKS: fetched, cached, refetched on an unknown `kid`)
//! and the configured issuer and audience, with roles taken from a claim.
//! Owns: [`OAuth`]. Never: accepts unsigned or HMAC-signed tokens, or a key the issuer did
//! not publish.
//! Limits: a refetch at most every [`MIN_REFETCH_INTERVAL`], so tokens with made-up `kid`s
//! cannot make the server hammer the authorization server; JWKS responses of at most
//! [`MAX_JWKS_BYTES`], fetched within [`FETCH_TIMEOUT`].

use super::{AuthError, Principal, Role};
use crate::config::OAuthConfig;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Shortest time between two JWKS fetches.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long fetched keys are trusted before they are fetched again on next use.
pub const JWKS_TTL: Duration = Duration::from_secs(600);
/// Largest JWKS response accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Time allowed for one JWKS fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// A signing key: what it verifies and with which algorithms.
struct SigningKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys fetched last, and when.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<SigningKey>>,
    fetched: Option<Instant>,
}

/// Checks bearer JWTs.
pub struct OAuth {
    config: OAuthConfig,
    cache: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each
    /// starting their own.
    fetching: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
}

/// The algorithms a key of this kind may verify: asymmetric ones only.
fn algorithms_for(parameters: &AlgorithmParameters) -> Vec<Algorithm> {
    match parameters {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => vec![Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        // A shared secret in a public key set is a misconfiguration; never trust it.
        _ => Vec::new(),
    }
}

impl OAuth {
    /// A checker for `config`; keys are fetched on first use.
    pub fn new(config: OAuthConfig) -> OAuth {
        OAuth {
            config,
            cache: RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
        }
    }

    /// The RFC 9728 protected-resource metadata.
    pub fn metadata(&self) -> Value {
        let prefix = &self.config.scope_prefix;
        json!({
            "resource": self.config.audience,
            "authorization_servers": [self.config.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": [
                format!("{prefix}reader"),
                format!("{prefix}caller"),
                format!("{prefix}admin"),
            ],
            "resource_name": "Waygate",
        })
    }

    /// Where the metadata is served: the resource's origin, at the well-known path.
    pub fn metadata_url(&self) -> String {
        let audience = &self.config.audience;
        let origin_end = audience
            .find("://")
            .and_then(|scheme| audience[scheme + 3..].find('/').map(|p| p + scheme + 3))
            .unwrap_or(audience.len());
        format!(
            "{}/.well-known/oauth-protected-resource",
            &audience[..origin_end]
        )
    }

    fn cached(&self, kid: Option<&str>) -> Option<Arc<SigningKey>> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.fetched.is_none_or(|at| at.elapsed() > JWKS_TTL) {
            return None;
        }
        match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            // A token without a `kid` is only usable against a set of one key.
            None if cache.keys.len() == 1 => cache.keys.values().next().cloned(),
            None => None,
        }
    }

    /// Fetches the key set again, unless one was fetched within [`MIN_REFETCH_INTERVAL`].
    async fn refetch(&self) {
        let _fetching = self.fetching.lock().await;
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < MIN_REFETCH_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        match fetch_jwks(&self.config.jwks_uri).await {
            Ok(set) => {
                let keys: HashMap<String, Arc<SigningKey>> = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        // Keys published for something else (encryption) never verify.
                        let for_signing = jwk
                            .common
                            .public_key_use
                            .as_ref()
                            .is_none_or(|u| *u == PublicKeyUse::Signature);
                        let mut algorithms = algorithms_for(&jwk.algorithm);
                        // A key that names its algorithm verifies with that one only.
                        if let Some(named) = jwk.common.key_algorithm {
                            algorithms.retain(|a| format!("{a:?}") == format!("{named:?}"));
                        }
                        let key = DecodingKey::from_jwk(jwk).ok()?;
                        let kid = jwk.common.key_id.clone().unwrap_or_default();
                        (for_signing && !algorithms.is_empty())
                            .then(|| (kid, Arc::new(SigningKey { key, algorithms })))
                    })
                    .collect();
                tracing::info!(keys = keys.len(), jwks_uri = %self.config.jwks_uri, "fetched the authorization server's keys");
                let mut cache = self
                    .cache
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
            }
            Err(error) => {
                tracing::error!(%error, jwks_uri = %self.config.jwks_uri, "cannot fetch the authorization server's keys");
            }
        }
    }

    /// The principal a bearer token stands for.
    ///
    /// # Errors
    ///
    /// [`AuthError::Invalid`] for any token that does not check out, with the reason at
    /// debug level only.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = |why: &dyn std::fmt::Display| {
            tracing::debug!(reason = %why, "bearer token refused");
            AuthError::Invalid
        };
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let kid = header.kid.as_deref();
        let key = match self.cached(kid) {
            Some(key) => key,
            None => {
                self.refetch().await;
                self.cached(kid)
                    .ok_or_else(|| invalid(&"no published key for the token's kid"))?
            }
        };
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid(&format!(
                "algorithm {:?} does not fit the key",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| invalid(&e))?
            .claims;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&"no sub claim"))?
            .to_owned();
        let values: Vec<&str> = match claims.get(&self.config.role_claim) {
            Some(Value::String(text)) => text.split_whitespace().collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let role = values
            .iter()
            .filter_map(|v| v.strip_prefix(self.config.scope_prefix.as_str()))
            .filter_map(|r| Role::parse(r).ok())
            .max()
            .ok_or_else(|| invalid(&"no role in the role claim"))?;
        Ok(Principal {
            key_id: None,
            name: subject.clone(),
            subject: Some(subject),
            role,
            plugins: None,
        })
    }
}

/// GETs a JWK Set over HTTP(S) with the Mozilla root store.
async fn fetch_jwks(url: &str) -> Result<JwkSet, String> {
    let body = tokio::time::timeout(FETCH_TIMEOUT, get(url))
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))??;
    serde_json::from_slice(&body).map_err(|e| format!("not a JWK Set: {e}"))
}

async fn get(url: &str) -> Result<hyper::body::Bytes, String> {
    let request = hyper::Request::get(url)
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Full::default())
        .map_err(|e| format!("bad URL: {e}"))?;
    let response = crate::http_client::send(request, MAX_JWKS_BYTES).await?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    Ok(response.into_body())
}
