//! Cluster URL normalisation: the one form in which argomap compares destination URLs.

/// Canonical form of a cluster URL, used for every comparison: scheme and host lower-cased,
/// default port and trailing `/` dropped, path and query kept (argocd-agent's `?agentName=`
/// URLs are distinct destinations), fragment dropped. A string that is no URL is kept
/// (trimmed, without trailing `/`) so that it still compares equal to itself.
pub fn normalize_url(raw: &str) -> String {
    let trimmed = raw.trim();
    let Ok(url) = url::Url::parse(trimmed) else {
        return trimmed.trim_end_matches('/').to_string();
    };
    let Some(host) = url.host_str() else {
        return trimmed.trim_end_matches('/').to_string();
    };
    // `Url` already lower-cases scheme and host and drops the scheme's default port.
    let mut out = format!("{}://{}", url.scheme(), host.to_ascii_lowercase());
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(url.path().trim_end_matches('/'));
    if let Some(q) = url.query().filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_scheme_and_host_and_keeps_path_case() {
        assert_eq!(normalize_url("HTTPS://API.Example.COM/Path/X"), "https://api.example.com/Path/X");
    }

    #[test]
    fn normalize_drops_default_ports_only() {
        assert_eq!(normalize_url("https://a.example.com:443"), "https://a.example.com");
        assert_eq!(normalize_url("http://a.example.com:80/"), "http://a.example.com");
        assert_eq!(normalize_url("https://a.example.com:80"), "https://a.example.com:80");
        assert_eq!(normalize_url("https://10.0.0.1:6443"), "https://10.0.0.1:6443");
    }

    #[test]
    fn normalize_drops_trailing_slashes() {
        assert_eq!(normalize_url("https://a.example.com/"), "https://a.example.com");
        assert_eq!(
            normalize_url("https://a.example.com/k8s/clusters/c-1/"),
            "https://a.example.com/k8s/clusters/c-1"
        );
        assert_eq!(normalize_url("  https://a.example.com//  "), "https://a.example.com");
    }

    #[test]
    fn normalize_keeps_query_so_agent_urls_stay_distinct() {
        let a = normalize_url("https://argocd-agent-resource-proxy:9090?agentName=prod");
        let b = normalize_url("https://argocd-agent-resource-proxy:9090/?agentName=staging");
        assert_eq!(a, "https://argocd-agent-resource-proxy:9090?agentName=prod");
        assert_eq!(b, "https://argocd-agent-resource-proxy:9090?agentName=staging");
        assert_ne!(a, b);
    }

    #[test]
    fn normalize_ipv6_and_fragment() {
        assert_eq!(normalize_url("https://[::1]:6443/#frag"), "https://[::1]:6443");
    }

    #[test]
    fn normalize_keeps_non_urls_comparable() {
        assert_eq!(normalize_url("kubernetes.default.svc/"), "kubernetes.default.svc");
        assert_eq!(normalize_url(""), "");
    }
}
