//! The `fields` projection of the application list, chosen by the server's version.

/// The `fields` projection: only what attribution needs, and with `health` each application's
/// health and sync (`status.health` is whole in the allow-list: its `message` comes along).
/// Argo CD before v3.5 ignores the `spec.*` sub-keys (it would return no destination), so older
/// or unknown versions get the portable `items.spec`. Never a key together with its parent
/// (v3.5.x fails at random then).
pub fn applications_fields(version: Option<&str>, health: bool) -> &'static str {
    const NARROW: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination";
    const PORTABLE: &str = "items.metadata.name,items.metadata.namespace,items.spec";
    const NARROW_HEALTH: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination,items.status.sync.status,items.status.health";
    const PORTABLE_HEALTH: &str = "items.metadata.name,items.metadata.namespace,items.spec,items.status.sync.status,items.status.health";
    let narrow = matches!(version.and_then(parse_version), Some(v) if v >= (3, 5));
    match (narrow, health) {
        (true, false) => NARROW,
        (false, false) => PORTABLE,
        (true, true) => NARROW_HEALTH,
        (false, true) => PORTABLE_HEALTH,
    }
}

/// The stream's projection (generic JSON paths rooted at `result`, on every version). An
/// event's projected bytes then change only when an application appears, goes, or changes
/// name or destination (or, with `health`, health or sync status), and Argo CD sends nothing
/// for the status-only updates that make up nearly all of its events: `status.health.status`
/// rather than the whole `status.health`, whose message changes more often.
pub fn stream_fields(health: bool) -> &'static str {
    const PLAIN: &str = "result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination";
    const HEALTH: &str = "result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination,result.application.status.sync.status,result.application.status.health.status";
    if health { HEALTH } else { PLAIN }
}

/// `v3.5.1+109ca7c` → (3, 5). Lenient: leading `v`, build metadata and pre-release cut off.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let core = v.trim().trim_start_matches('v');
    let core = core.split(['+', '-']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing_is_lenient() {
        assert_eq!(parse_version("v3.5.1+109ca7c"), Some((3, 5)));
        assert_eq!(parse_version("v3.6.0-rc1"), Some((3, 6)));
        assert_eq!(parse_version("2.14.16"), Some((2, 14)));
        assert_eq!(parse_version("v3.6.0+unknown.dirty"), Some((3, 6)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn projection_follows_the_version() {
        assert!(applications_fields(Some("v3.5.1+109ca7c"), false).contains("items.spec.destination"));
        assert!(applications_fields(Some("v4.0.0"), false).contains("items.spec.destination"));
        let old = applications_fields(Some("v3.4.9"), false);
        assert!(old.ends_with("items.spec") && !old.contains("items.spec.destination"));
        assert_eq!(applications_fields(None, false), old);
    }

    #[test]
    fn health_adds_status_keys_and_never_a_parent_with_its_child() {
        for version in [Some("v3.6.1"), Some("v3.4.2"), None] {
            let plain = applications_fields(version, false);
            assert!(!plain.contains("status"), "{plain}");
            let fields = applications_fields(version, true);
            assert!(fields.starts_with(plain) && fields.contains("items.status.health"), "{fields}");
            let keys: Vec<&str> = fields.split(',').collect();
            for a in &keys {
                for b in &keys {
                    assert!(a == b || !b.starts_with(&format!("{a}.")), "{a} with its child {b}");
                }
            }
        }
        assert!(stream_fields(true).starts_with(stream_fields(false)));
        assert!(stream_fields(true).contains("result.application.status.health.status"));
    }
}
