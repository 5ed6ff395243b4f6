//! Username/password sessions: argomap logs in once and keeps the JWT in memory, and replaces
//! it shortly before it expires.

use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;

/// Log in again when the session JWT has less than this left.
const SESSION_RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A session JWT and when it was issued.
pub struct Session {
    pub token: SecretString,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// Whether a session JWT should be replaced: 5 minutes before it expires, or after 80% of its
/// lifetime for short-lived sessions, whichever comes later.
pub fn session_needs_renewal(issued_at: Timestamp, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    let Some(exp) = expires_at else { return false };
    let lifetime = exp.as_second() - issued_at.as_second();
    let renew_at = (exp.as_second() - SESSION_RENEW_BEFORE.as_secs() as i64)
        .max(issued_at.as_second() + lifetime * 4 / 5);
    now.as_second() >= renew_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_renew_near_expiry() {
        let t = |s: i64| Timestamp::from_second(s).expect("ts");
        // A 24 h session: renewed 5 minutes before it ends.
        let day = Some(t(86_400));
        assert!(!session_needs_renewal(t(0), day, t(86_400 - 301)));
        assert!(session_needs_renewal(t(0), day, t(86_400 - 300)));
        // A 60 s session: renewed after 48 s, not at once.
        let minute = Some(t(60));
        assert!(!session_needs_renewal(t(0), minute, t(0)));
        assert!(!session_needs_renewal(t(0), minute, t(47)));
        assert!(session_needs_renewal(t(0), minute, t(48)));
        // Expired, or no expiry at all.
        assert!(session_needs_renewal(t(100), Some(t(50)), t(100)));
        assert!(!session_needs_renewal(t(0), None, t(1_000_000)));
    }
}
