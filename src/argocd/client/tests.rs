use super::*;

#[test]
fn destinations_missing_from_the_cluster_list_are_noticed() {
    let clusters: Vec<Cluster> =
        serde_json::from_str(r#"[{"server":"https://a.example.com","name":"a"}]"#).expect("clusters");
    let apps = |json: &str| -> AppTally {
        let apps: Vec<crate::argocd::types::Application> = serde_json::from_str(json).expect("apps");
        AppTally::from_apps(&apps)
    };
    assert!(destinations_listed(
        &clusters,
        &apps(
            r#"[{"spec":{"destination":{"server":"https://a.example.com/"}}},{"spec":{"destination":{"name":"a"}}}]"#
        )
    ));
    assert!(destinations_listed(&clusters, &AppTally::default()));
    assert!(!destinations_listed(
        &clusters,
        &apps(r#"[{"spec":{"destination":{"server":"https://b.example.com"}}}]"#)
    ));
    assert!(!destinations_listed(&clusters, &apps(r#"[{"spec":{"destination":{"name":"b"}}}]"#)));
}

#[test]
fn urls_with_user_info_are_refused() {
    let cfg = |url: &str| {
        ClientConfig::new(url, Credentials::Token(SecretString::from("a.b.c")), Duration::from_secs(1))
            .with_max_response_bytes(1024)
    };
    assert!(matches!(Client::new(cfg("https://u:p@argocd.example.com")), Err(ArgoCdError::InvalidUrl(_))));
    assert!(matches!(Client::new(cfg("ftp://argocd.example.com")), Err(ArgoCdError::InvalidUrl(_))));
    for url in [
        "http://host:8080/internal/admin/secret-path?",
        "https://argocd.example.com/x?a=b",
        "https://argocd.example.com/#frag",
    ] {
        assert!(
            matches!(Client::new(cfg(url)), Err(ArgoCdError::InvalidUrl(m)) if m.contains("query")),
            "{url}"
        );
    }
    assert!(Client::new(cfg("https://argocd.example.com/argocd/")).is_ok());
}
