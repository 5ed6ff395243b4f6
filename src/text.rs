//! Bounded text. Every message argomap stores or publishes (status, events, errors) goes
//! through [`cap`], so a server's answer can never grow an object past its budget.

/// Longest message, in bytes.
pub const MESSAGE_CAP: usize = 1024;

/// Cuts `s` to [`MESSAGE_CAP`] bytes on a character boundary, marking the cut with `…`.
pub fn cap(s: &str) -> String {
    if s.len() <= MESSAGE_CAP {
        return s.to_string();
    }
    let mut end = MESSAGE_CAP - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// `s` with every occurrence of each secret replaced by [`REDACTED`]: as it is, and as it
/// appears inside a JSON string (a server quoting a request body escapes it).
pub fn redact(s: &str, secrets: &[String]) -> String {
    let mut out = s.to_string();
    for secret in secrets.iter().filter(|x| !x.is_empty()) {
        out = out.replace(secret.as_str(), REDACTED);
        if let Ok(quoted) = serde_json::to_string(secret) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != secret {
                out = out.replace(escaped, REDACTED);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_capped_on_char_boundaries() {
        let long = "é".repeat(2000);
        let capped = cap(&long);
        assert!(capped.len() <= MESSAGE_CAP);
        assert!(capped.ends_with('…'));
        assert_eq!(cap("short"), "short");
    }

    #[test]
    fn secrets_are_redacted_raw_and_json_escaped() {
        let secrets = vec!["eyJ.tok.en".to_string(), r#"pa"ss\word"#.to_string(), String::new()];
        let text = r#"bad Authorization "Bearer eyJ.tok.en" body {"password":"pa\"ss\\word"}"#;
        let out = redact(text, &secrets);
        assert!(!out.contains("eyJ.tok.en") && !out.contains("ss\\"), "{out}");
        assert_eq!(out, r#"bad Authorization "Bearer [redacted]" body {"password":"[redacted]"}"#);
        assert_eq!(redact("nothing here", &secrets), "nothing here");
    }
}
