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

/// `s` as a server's word may reach status, Events, logs, tables and metric labels: without
/// control characters (a newline forging a log line, an escape sequence for a terminal) or
/// bidirectional overrides, and cut to `max` bytes on a character boundary, marked with `…`.
pub fn printable(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).collect();
    if clean.len() <= max {
        return clean;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &clean[..end])
}

/// The explicit bidirectional formatting characters (embeddings, overrides, isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
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
    fn server_words_lose_control_characters_and_are_cut() {
        assert_eq!(printable("v3.6.1\n2026-01-01 ERROR forged", 64), "v3.6.12026-01-01 ERROR forged");
        assert_eq!(printable("a\u{1b}[31mred\u{7f}\u{202E}b", 64), "a[31mredb");
        let long = printable(&"é".repeat(100), 21);
        assert!(long.len() <= 21 && long.ends_with('…'), "{long}");
        assert_eq!(printable("", 8), "");
        assert_eq!(printable("exactly8", 8), "exactly8");
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
