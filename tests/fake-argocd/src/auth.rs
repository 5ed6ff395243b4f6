//! Tokens: minting JWT-shaped bearer tokens and reading their claims back.
//!
//! Nothing is signed: the fake accepts a token because it was registered (`add_token`) or
//! issued by login, which is all a client can observe. Claims still matter for expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Claims in the order golang-jwt's `RegisteredClaims` marshals them.
#[derive(Serialize)]
struct OutClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    nbf: i64,
    iat: i64,
    jti: String,
}

/// What the server needs to know about an accepted token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub jti: String,
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A JWT-shaped token `header.payload.signature` (base64url JSON) with `iss: "argocd"`, the
/// given `sub` (e.g. `admin:login`, `argomap:apiKey`, `proj:p:r`), `iat`/`nbf` = now, `exp`
/// (unix seconds, omitted when `None` like a non-expiring API key) and a unique `jti`.
/// The signature is filler: register the token with `FakeArgoCd::add_token`.
pub fn jwt(sub: &str, exp: Option<i64>) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let now = now_unix();
    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = OutClaims {
        iss: "argocd",
        sub,
        exp,
        nbf: now,
        iat: now,
        jti: format!("00000000-0000-4000-8000-{seq:012x}"),
    };
    let payload = serde_json::to_vec(&claims).expect("claims serialise");
    // Deterministic filler bytes in place of an HMAC-SHA256 signature (same length).
    let sig: Vec<u8> = (0..32u64).map(|i| (seq.wrapping_mul(31).wrapping_add(i * 7) & 0xff) as u8).collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Argo CD only looks at a bearer value that has exactly three dot-separated parts
/// (`util/jwt/jwt.go`); anything else is ignored as if absent.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Decodes the payload of a JWT-shaped token; `None` if it is not base64url JSON.
pub(crate) fn claims_of(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `username` as `/api/v1/session/userinfo` reports it: the capability suffix of local
/// accounts (`:login`, `:apiKey`) is stripped; project tokens keep `proj:<p>:<r>`.
pub(crate) fn username_of(sub: &str) -> &str {
    sub.strip_suffix(":login").or_else(|| sub.strip_suffix(":apiKey")).unwrap_or(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_has_three_parts_and_round_trips_claims() {
        let t = jwt("admin:login", Some(42));
        assert!(looks_like_jwt(&t));
        let c = claims_of(&t).expect("claims");
        assert_eq!(c.sub, "admin:login");
        assert_eq!(c.iss, "argocd");
        assert_eq!(c.exp, Some(42));
        assert_ne!(jwt("a", None), jwt("a", None), "jti makes tokens unique");
        assert_eq!(claims_of(&jwt("a", None)).expect("claims").exp, None);
    }

    #[test]
    fn usernames() {
        assert_eq!(username_of("admin:login"), "admin");
        assert_eq!(username_of("argomap:apiKey"), "argomap");
        assert_eq!(username_of("proj:p:r"), "proj:p:r");
        assert!(!looks_like_jwt("abc"));
        assert!(claims_of("a.b.c").is_none());
    }
}
