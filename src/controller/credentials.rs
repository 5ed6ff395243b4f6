//! Reads an ArgoCdInstance's credentials (and CA) from Secrets in its namespace. Secret values
//! stay inside `Credentials`/`TlsSettings`; errors name the Secret and key, never a value.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use secrecy::{ExposeSecret, SecretString};

use crate::argocd::{Credentials, TlsSettings};
use crate::crd::{ALLOWED_URLS_ANNOTATION, ArgoCdInstanceSpec, CREDENTIALS_LABEL, CredentialKeys, Reason};

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum CredentialsError {
    #[error("Secret {name} does not exist in namespace {namespace}")]
    #[strum(serialize = "CredentialsNotFound")]
    SecretNotFound { namespace: String, name: String },
    #[error(
        "Secret {name} is not labelled {label}=true, so argomap does not read it; if it is meant for argomap: kubectl label secret {name} -n {namespace} {label}=true"
    )]
    #[strum(serialize = "CredentialsNotOptedIn")]
    NotOptedIn { namespace: String, name: String, label: &'static str },
    #[error(
        "Secret {name} binds its credentials to other URLs (annotation {annotation}): they are not sent to {url}; list it there if they are meant for it"
    )]
    #[strum(serialize = "CredentialsNotAllowed")]
    UrlNotAllowed { name: String, url: String, annotation: &'static str },
    #[error("Secret {name} has no key {key:?}")]
    #[strum(serialize = "CredentialsNotFound")]
    KeyMissing { name: String, key: String },
    #[error("key {key:?} of Secret {name} is empty or not UTF-8 text")]
    #[strum(serialize = "CredentialsNotFound")]
    BadValue { name: String, key: String },
    #[error("cannot read Secret {name}: {source}")]
    #[strum(serialize = "KubeError")]
    Kube { name: String, source: kube::Error },
}

impl CredentialsError {
    /// Fixed label for metrics and events.
    pub fn category(&self) -> &'static str {
        self.into()
    }

    /// The status reason when this ends a check.
    pub fn reason(&self) -> Reason {
        match self {
            CredentialsError::NotOptedIn { .. } => Reason::CredentialsNotOptedIn,
            CredentialsError::UrlNotAllowed { .. } => Reason::CredentialsNotAllowed,
            CredentialsError::Kube { .. } => Reason::KubernetesApiError,
            _ => Reason::CredentialsNotFound,
        }
    }
}

/// Credentials and TLS material of one instance, and a fingerprint that changes when any of
/// them (or the URL) changes, so the client is rebuilt exactly then.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub credentials: Credentials,
    pub tls: TlsSettings,
    /// UID of the credentials Secret (the read API's `credentials_id`).
    pub secret_uid: Option<String>,
    pub fingerprint: u64,
}

pub async fn load(
    secrets: &Api<Secret>,
    opted_in: &Store<PartialObjectMeta<Secret>>,
    namespace: &str,
    spec: &ArgoCdInstanceSpec,
) -> Result<Resolved, CredentialsError> {
    let name = &spec.credentials.secret_ref.name;
    let secret = get(secrets, opted_in, namespace, name).await?;
    // Whoever may edit the instance chooses spec.url: a Secret bound to URLs goes to no other.
    if let Some(allowed) = secret.metadata.annotations.as_ref().and_then(|a| a.get(ALLOWED_URLS_ANNOTATION))
        && !allows(allowed, &spec.url)
    {
        return Err(CredentialsError::UrlNotAllowed {
            name: name.clone(),
            url: crate::text::printable(&spec.url, 512),
            annotation: ALLOWED_URLS_ANNOTATION,
        });
    }
    let data = secret.data.unwrap_or_default();
    let credentials = from_data(name, &data, spec.credentials.keys())?;
    let tls_spec = spec.tls.clone().unwrap_or_default();
    let ca_pem = match &tls_spec.ca_secret_ref {
        Some(r) => {
            let ca = if &r.name == name {
                data.clone()
            } else {
                get(secrets, opted_in, namespace, &r.name).await?.data.unwrap_or_default()
            };
            let value = ca
                .get(&r.key)
                .ok_or_else(|| CredentialsError::KeyMissing { name: r.name.clone(), key: r.key.clone() })?;
            Some(value.0.clone())
        }
        None => None,
    };
    let tls = TlsSettings {
        insecure_skip_verify: tls_spec.insecure_skip_verify,
        ca_pem,
        server_name: tls_spec.server_name,
    };
    // Health changes the projection the client asks for: a new client too.
    let fingerprint = fingerprint(&spec.url, &spec.timeout, spec.applications.health, &credentials, &tls);
    Ok(Resolved { credentials, tls, secret_uid: secret.metadata.uid, fingerprint })
}

/// The versions of the Secrets `spec` references, as the opted-in Secrets' watch has them:
/// it changes with every create, update, deletion or (un)labelling of any of them, which is
/// what makes a change of the Secret check at once.
pub fn version(
    opted_in: &Store<PartialObjectMeta<Secret>>,
    namespace: &str,
    spec: &ArgoCdInstanceSpec,
) -> String {
    let of = |name: &str| {
        opted_in.get(&ObjectRef::new(name).within(namespace)).map_or_else(
            || format!("{name}:-"),
            |s| {
                let m = &s.metadata;
                format!(
                    "{name}:{}/{}",
                    m.uid.as_deref().unwrap_or(""),
                    m.resource_version.as_deref().unwrap_or("")
                )
            },
        )
    };
    let mut v = of(&spec.credentials.secret_ref.name);
    if let Some(ca) = spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        v.push(';');
        v.push_str(&of(&ca.name));
    }
    v
}

/// Reads a Secret, but only one labelled [`CREDENTIALS_LABEL`]. The label is checked on its
/// metadata first (the opted-in Secrets are in `opted_in`, the metadata watch's store; one just
/// labelled may not be there yet), so an unlabelled Secret's data is never fetched.
async fn get(
    secrets: &Api<Secret>,
    opted_in: &Store<PartialObjectMeta<Secret>>,
    namespace: &str,
    name: &str,
) -> Result<Secret, CredentialsError> {
    let kube = |source| CredentialsError::Kube { name: name.into(), source };
    if opted_in.get(&ObjectRef::new(name).within(namespace)).is_none() {
        match secrets.get_metadata_opt(name).await.map_err(kube)? {
            None => {
                return Err(CredentialsError::SecretNotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Some(meta) if !is_opted_in(&meta.metadata) => {
                return Err(CredentialsError::NotOptedIn {
                    namespace: namespace.into(),
                    name: name.into(),
                    label: CREDENTIALS_LABEL,
                });
            }
            Some(_) => {}
        }
    }
    let secret = get_labelled(secrets, namespace, name).await?;
    // Labelled between the two reads, or unlabelled since the watch last saw it.
    if !is_opted_in(&secret.metadata) {
        return Err(CredentialsError::NotOptedIn {
            namespace: namespace.into(),
            name: name.into(),
            label: CREDENTIALS_LABEL,
        });
    }
    Ok(secret)
}

/// Whether `url` is one of the base URLs `allowed` lists (comma or space separated), or below
/// one of them: same scheme, host and port, and a path under the listed one. An entry that is
/// not a URL allows nothing. Pure.
pub fn allows(allowed: &str, url: &str) -> bool {
    let Ok(url) = url::Url::parse(url.trim()) else { return false };
    let path = |u: &url::Url| u.path().trim_end_matches('/').to_owned();
    allowed
        .split([',', ' ', '\n', '\t'])
        .filter(|e| !e.is_empty())
        .filter_map(|e| url::Url::parse(e).ok())
        .any(|a| {
            a.scheme() == url.scheme()
                && a.host_str() == url.host_str()
                && a.port_or_known_default() == url.port_or_known_default()
                && {
                    let (a, u) = (path(&a), path(&url));
                    u == a || u.starts_with(&format!("{a}/"))
                }
        })
}

/// Whether the Secret carries `argomap.io/credentials: "true"`.
pub fn is_opted_in(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().and_then(|l| l.get(CREDENTIALS_LABEL)).is_some_and(|v| v == "true")
}

async fn get_labelled(
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
) -> Result<Secret, CredentialsError> {
    match secrets.get_opt(name).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(CredentialsError::SecretNotFound { namespace: namespace.into(), name: name.into() }),
        Err(source) => Err(CredentialsError::Kube { name: name.into(), source }),
    }
}

/// Picks the credentials out of a Secret's data. Values are trimmed: a token written with
/// `echo` into a file ends in a newline.
pub fn from_data(
    name: &str,
    data: &BTreeMap<String, ByteString>,
    keys: CredentialKeys<'_>,
) -> Result<Credentials, CredentialsError> {
    let value = |key: &str| -> Result<String, CredentialsError> {
        let raw = data
            .get(key)
            .ok_or_else(|| CredentialsError::KeyMissing { name: name.into(), key: key.into() })?;
        let text = std::str::from_utf8(&raw.0).map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Err(CredentialsError::BadValue { name: name.into(), key: key.into() });
        }
        Ok(text.to_string())
    };
    match keys {
        CredentialKeys::Token(key) => Ok(Credentials::Token(SecretString::from(value(key)?))),
        CredentialKeys::Login { username, password } => Ok(Credentials::Login {
            username: value(username)?,
            password: SecretString::from(value(password)?),
        }),
    }
}

fn fingerprint(url: &str, timeout: &str, health: bool, credentials: &Credentials, tls: &TlsSettings) -> u64 {
    let mut h = DefaultHasher::new();
    url.hash(&mut h);
    timeout.hash(&mut h);
    health.hash(&mut h);
    match credentials {
        Credentials::Token(t) => ("token", t.expose_secret()).hash(&mut h),
        Credentials::Login { username, password } => {
            ("login", username, password.expose_secret()).hash(&mut h)
        }
    }
    tls.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_bound_to_urls_allows_those_and_paths_below_them_only() {
        let allowed = "https://argocd.example.com/argocd, http://10.0.0.5:8080";
        for ok in [
            "https://argocd.example.com/argocd",
            "https://argocd.example.com/argocd/",
            "https://ARGOCD.example.com:443/argocd/sub",
            "http://10.0.0.5:8080",
            "http://10.0.0.5:8080/x",
        ] {
            assert!(allows(allowed, ok), "{ok}");
        }
        for refused in [
            "https://argocd.example.com",
            "https://argocd.example.com/argocdx",
            "http://argocd.example.com/argocd",
            "https://argocd.example.com:8443/argocd",
            "https://evil.example.com/argocd",
            "https://argocd.example.com.evil.example/argocd",
            "http://10.0.0.5:8081",
            "not a url",
        ] {
            assert!(!allows(allowed, refused), "{refused}");
        }
        assert!(!allows("", "https://argocd.example.com"), "an empty list allows nothing");
        assert!(!allows("argocd.example.com", "https://argocd.example.com"), "a bare host is no URL");
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn token_is_trimmed() {
        let c =
            from_data("s", &data(&[("token", "a.b.c\n")]), CredentialKeys::Token("token")).expect("token");
        match c {
            Credentials::Token(t) => assert_eq!(t.expose_secret(), "a.b.c"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_and_empty_keys_name_the_key_not_the_value() {
        let err =
            from_data("argocd-readonly", &data(&[("apiToken", "x.y.z")]), CredentialKeys::Token("token"))
                .expect_err("missing");
        assert_eq!(err.to_string(), "Secret argocd-readonly has no key \"token\"");
        assert_eq!(err.category(), "CredentialsNotFound");
        let err =
            from_data("s", &data(&[("token", "  \n")]), CredentialKeys::Token("token")).expect_err("empty");
        assert!(matches!(err, CredentialsError::BadValue { .. }));
        let err = from_data(
            "s",
            &data(&[("username", "ops"), ("pw", "hunter2")]),
            CredentialKeys::Login { username: "username", password: "password" },
        )
        .expect_err("no password");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn fingerprint_moves_with_every_input() {
        let tok = |t: &str| Credentials::Token(SecretString::from(t.to_string()));
        let base = fingerprint("https://a", "10s", false, &tok("a.b.c"), &TlsSettings::default());
        assert_eq!(base, fingerprint("https://a", "10s", false, &tok("a.b.c"), &TlsSettings::default()));
        assert_ne!(base, fingerprint("https://b", "10s", false, &tok("a.b.c"), &TlsSettings::default()));
        assert_ne!(base, fingerprint("https://a", "10s", false, &tok("a.b.d"), &TlsSettings::default()));
        assert_ne!(base, fingerprint("https://a", "20s", false, &tok("a.b.c"), &TlsSettings::default()));
        assert_ne!(base, fingerprint("https://a", "10s", true, &tok("a.b.c"), &TlsSettings::default()));
        let insecure = TlsSettings { insecure_skip_verify: true, ..Default::default() };
        assert_ne!(base, fingerprint("https://a", "10s", false, &tok("a.b.c"), &insecure));
    }
}
