//! OAuth resource-server mode on a real server: tokens signed by keys a JWKS endpoint on
//! 127.0.0.1 publishes, checked for signature, issuer, audience, expiry and role; the
//! protected-resource metadata; and a bounded refetch for unknown key ids.

use crate::support::{ServerOptions, TestEnv, TestServer, Upstream, UpstreamReply};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use waygate::config::OAuthConfig;

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "https://mcp.example.test/mcp";

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A P-256 signing key and its JWK.
struct SigningKey {
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let random = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .unwrap()
        .as_ref()
        .to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &random).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                     "x": b64url(&point[1..33]), "y": b64url(&point[33..65])});
    SigningKey { pkcs8, jwk }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn claims(scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "scope": scope,
           "exp": now() + 300, "iat": now()})
}

/// Serves `jwks` at any path on 127.0.0.1 and counts the fetches.
async fn jwks_server(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let body = jwks.to_string();
    let upstream =
        Upstream::start(move |_, _| UpstreamReply::ok("application/json", body.clone())).await;
    (
        format!("http://{}/jwks.json", upstream.addr),
        upstream.requests,
    )
}

async fn server(jwks_uri: String) -> TestServer {
    let env = TestEnv::new();
    env.add_examples();
    let options = ServerOptions {
        oauth: Some(OAuthConfig {
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            jwks_uri,
            role_claim: "scope".to_owned(),
            scope_prefix: "waygate:".to_owned(),
        }),
        ..ServerOptions::default()
    };
    TestServer::start_with(env, options).await
}

async fn status_with(server: &TestServer, token: &str, method: &str, path: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    let body = (method == "POST").then_some(r#"{"action":"echo","params":{"message":"x"}}"#);
    server
        .send(method, path, &[("authorization", &bearer)], body)
        .await
        .status
}

#[tokio::test]
async fn tokens_are_checked_for_signature_issuer_audience_expiry_and_role() {
    let published = signing_key("k1");
    let stranger = signing_key("k2");
    let (jwks_uri, fetches) = jwks_server(json!({"keys": [published.jwk]})).await;
    let server = server(jwks_uri).await;

    let caller = token(&published, "k1", &claims("openid waygate:caller"));
    assert_eq!(
        status_with(&server, &caller, "POST", "/mcp/execute").await,
        200
    );
    assert_eq!(
        status_with(&server, &caller, "GET", "/mcp/commands/history").await,
        403
    );
    let reader = token(&published, "k1", &claims("waygate:reader"));
    assert_eq!(status_with(&server, &reader, "GET", "/plugins").await, 200);
    assert_eq!(
        status_with(&server, &reader, "POST", "/mcp/execute").await,
        403
    );
    let admin = token(
        &published,
        "k1",
        &json!({"iss": ISSUER, "aud": [AUDIENCE, "other"], "sub": "ops",
        "scope": ["waygate:admin"], "exp": now() + 60}),
    );
    assert_eq!(
        status_with(&server, &admin, "GET", "/mcp/commands/history").await,
        200
    );

    let mut refused = vec![
        (
            "expired",
            token(
                &published,
                "k1",
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "scope": "waygate:admin", "exp": now() - 120}),
            ),
        ),
        (
            "not yet valid",
            token(
                &published,
                "k1",
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "scope": "waygate:admin", "exp": now() + 600, "nbf": now() + 300}),
            ),
        ),
        (
            "wrong audience",
            token(
                &published,
                "k1",
                &json!({"iss": ISSUER, "aud": "https://elsewhere/mcp", "sub": "u", "scope": "waygate:admin", "exp": now() + 60}),
            ),
        ),
        (
            "wrong issuer",
            token(
                &published,
                "k1",
                &json!({"iss": "https://evil.test", "aud": AUDIENCE, "sub": "u", "scope": "waygate:admin", "exp": now() + 60}),
            ),
        ),
        (
            "no role",
            token(
                &published,
                "k1",
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "scope": "openid", "exp": now() + 60}),
            ),
        ),
        (
            "unknown key",
            token(&stranger, "k2", &claims("waygate:admin")),
        ),
        (
            "a stranger's key under a published kid",
            token(&stranger, "k1", &claims("waygate:admin")),
        ),
    ];
    // alg none: a header and claims with an empty signature.
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        b64url(claims("waygate:admin").to_string().as_bytes())
    );
    refused.push(("alg none", none));
    // A tampered payload under a genuine signature.
    let genuine = token(&published, "k1", &claims("waygate:reader"));
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = b64url(claims("waygate:admin").to_string().as_bytes());
    refused.push(("tampered", parts.join(".")));
    // HS256 with the public key's bytes as the secret: algorithm confusion.
    let x = published.jwk["x"].as_str().unwrap().as_bytes().to_vec();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".to_owned());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims("waygate:admin"),
        &EncodingKey::from_secret(&x),
    )
    .unwrap();
    refused.push(("HS256 confusion", hmac));
    refused.push(("garbage", "not.a.token".to_owned()));

    for (case, token) in &refused {
        let bearer = format!("Bearer {token}");
        let r = server
            .send("GET", "/plugins", &[("authorization", &bearer)], None)
            .await;
        assert_eq!(r.status, 401, "{case}");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.contains(r#"resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource""#),
            "{challenge}"
        );
    }
    // Unknown kids made the server refetch at most once within the refetch interval.
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "fetched {} times",
        fetches.load(Ordering::SeqCst)
    );

    // API keys still work beside tokens.
    assert_eq!(server.get("/plugins").await.0, 200);
}

#[tokio::test]
async fn the_metadata_names_the_authorization_server_and_mcp_takes_tokens() {
    let published = signing_key("k1");
    let (jwks_uri, _) = jwks_server(json!({"keys": [published.jwk]})).await;
    let server = server(jwks_uri).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = server.send("GET", path, &[("x-api-key", "")], None).await;
        assert_eq!(r.status, 200, "open: {path}");
        let metadata = r.json();
        assert_eq!(metadata["resource"], AUDIENCE);
        assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
        assert!(
            metadata["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("waygate:caller"))
        );
    }
    let caller = token(&published, "k1", &claims("waygate:caller"));
    let bearer = format!("Bearer {caller}");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo__echo", "arguments": {"message": "via oauth"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("authorization", bearer.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo__echo"),
    ];
    let r = server
        .send("POST", "/mcp", &headers, Some(&body.to_string()))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["content"][0]["text"], "via oauth");
}

#[tokio::test]
async fn without_oauth_the_metadata_is_not_there() {
    let env = TestEnv::new();
    let server = TestServer::start(env).await;
    let r = server
        .send("GET", "/.well-known/oauth-protected-resource", &[], None)
        .await;
    assert_eq!(r.status, 404);
}
