//! The `fields` projection of the application list, chosen by the server's version.

/// The `fields` projection: only what attribution needs. Argo CD before v3.5 ignores the
/// `spec.*` sub-keys (it would return no destination), so older or unknown versions get the
/// portable `items.spec`. Never a key together with its parent (v3.5.x fails at random then).
pub fn applications_fields(version: Option<&str>) -> &'static str {
    const NARROW: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination";
    const PORTABLE: &str = "items.metadata.name,items.metadata.namespace,items.spec";
    match version.and_then(parse_version) {
        Some((major, minor)) if (major, minor) >= (3, 5) => NARROW,
        _ => PORTABLE,
    }
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
        assert!(applications_fields(Some("v3.5.1+109ca7c")).contains("items.spec.destination"));
        assert!(applications_fields(Some("v4.0.0")).contains("items.spec.destination"));
        let old = applications_fields(Some("v3.4.9"));
        assert!(old.ends_with("items.spec") && !old.contains("items.spec.destination"));
        assert_eq!(applications_fields(None), old);
    }
}
