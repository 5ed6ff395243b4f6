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
}
