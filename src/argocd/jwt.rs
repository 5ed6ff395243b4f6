//! Reads (never verifies) the `exp` claim of a JWT: Argo CD checks its own tokens, argomap
//! only wants to know when they stop working.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;

#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<f64>,
}

/// The expiry of a JWT, or `None` when it has none or is no JWT.
pub fn expiry(token: &str) -> Option<Timestamp> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.exp?;
    if !exp.is_finite() {
        return None;
    }
    Timestamp::from_second(exp as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_exp() {
        let t = token(r#"{"iss":"argocd","sub":"ops:apiKey","exp":1800000000}"#);
        assert_eq!(expiry(&t), Timestamp::from_second(1_800_000_000).ok());
    }

    #[test]
    fn no_exp_or_garbage_is_none() {
        assert_eq!(expiry(&token(r#"{"sub":"ops:apiKey"}"#)), None);
        assert_eq!(expiry("not-a-jwt"), None);
        assert_eq!(expiry("a.!!!.c"), None);
        assert_eq!(expiry(&token("[1,2]")), None);
        assert_eq!(expiry(&token(r#"{"exp":"soon"}"#)), None);
    }

    #[test]
    fn padded_payload_is_accepted() {
        let t = format!("h.{}==.s", URL_SAFE_NO_PAD.encode(r#"{"exp":1}"#));
        assert_eq!(expiry(&t), Timestamp::from_second(1).ok());
    }
}
