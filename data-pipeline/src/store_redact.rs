//! Keeping secrets out of what is shown: an object-store URL with its user information and query
//! string (keys, passwords, SAS tokens) replaced by `***`, also when it does not parse, and every
//! URL inside an error message so redacted. `store` opens URLs and reports their errors through
//! these; a run folder keeps its dataset's address redacted.

/// The URL with any user name, password and query string replaced by `***`, safe to log.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return redact_unparsed(url);
    };
    let userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    if !userinfo && parsed.query().is_none() {
        // As written: parsing would add a `/` to a bare host, and hide a trailing space.
        return url.to_string();
    }
    if userinfo {
        let _ = parsed.set_username("***");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("***"));
    }
    parsed.to_string()
}

/// [`redact_url`] of an address that does not parse, often for the very secret in it (a key's
/// `/` or `+`, a password's `#` or `?`, unescaped): everything between `://` and its last `@`
/// is taken for user information, and the query string starts at the first `?` after that.
fn redact_unparsed(url: &str) -> String {
    let (head, rest) = match url.split_once("://") {
        Some((scheme, after)) => match after.rfind('@') {
            Some(at) => (format!("{scheme}://***@"), &after[at + 1..]),
            None => (format!("{scheme}://"), after),
        },
        None => (String::new(), url),
    };
    match rest.find('?') {
        Some(i) => format!("{head}{}?***", &rest[..i]),
        None => format!("{head}{rest}"),
    }
}

/// Whether `url` is an address as [`redact_url`] writes it (user name or query string `***`):
/// it still names the place, but the secrets needed to open it are gone. A run folder saves its
/// dataset's address so.
pub fn is_redacted(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) => parsed.username() == "***" || parsed.query() == Some("***"),
        Err(_) => url.ends_with("?***") || url.contains("://***@"),
    }
}

/// `text` with every URL in it (`scheme://...`, up to whitespace or a quote, less trailing
/// `:,;.)`) passed through [`redact_url`]: what an error message may safely show whatever the
/// URLs its contexts named.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_len = rest[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .count();
        let start = at - scheme_len;
        let len = rest[start..]
            .find(|c: char| c.is_whitespace() || "\"'`".contains(c))
            .unwrap_or(rest.len() - start);
        let url = rest[start..start + len].trim_end_matches([':', ',', ';', '.', ')']);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(url));
        rest = &rest[start + url.len()..];
    }
    out.push_str(rest);
    out
}

/// Removes from `message` every secret-bearing piece of `url` (user info, query string).
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_string();
    if let Ok(parsed) = url::Url::parse(url) {
        let secrets = [Some(parsed.username()), parsed.password(), parsed.query()];
        for secret in secrets.into_iter().flatten().filter(|s| s.len() >= 3) {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_query() {
        let r = redact_url("s3://AKIAXYZ:s3cr3tvalue@bucket/prefix?token=abcdef");
        assert!(!r.contains("AKIAXYZ"), "{r}");
        assert!(!r.contains("s3cr3tvalue"), "{r}");
        assert!(!r.contains("abcdef"), "{r}");
        assert!(r.contains("bucket/prefix"), "{r}");
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
        assert!(is_redacted(&r));
        assert!(is_redacted(&redact_url("https://host/ecg?sig=abc")));
        assert!(is_redacted("relative/dir?***"));
        for plain in [
            "s3://bucket/prefix",
            "/data/ecg",
            "synth",
            "https://host/ecg?sig=abc",
        ] {
            assert!(!is_redacted(plain), "{plain}");
        }
    }

    /// A secret with a `/`, `#`, `?` or `+` unescaped makes the URL fail to parse: it is
    /// redacted all the same (it was shown whole, and kept in sweep files and SLURM scripts).
    #[test]
    fn an_address_that_does_not_parse_is_redacted_too() {
        for (url, shown) in [
            ("s3://AKID9:Zq7/ret@ecg/cinc", "s3://***@ecg/cinc"),
            ("s3://AKID9:Zq7#ret@ecg/cinc", "s3://***@ecg/cinc"),
            (
                "s3://AKID9:Zq7?ret@ecg/cinc?x=Zq73",
                "s3://***@ecg/cinc?***",
            ),
            ("s3://user:pass@raw:99999/cinc", "s3://***@raw:99999/cinc"),
            ("az://AKID9:Zq7/ret@c/p?sv=1&sig=Zq7", "az://***@c/p?***"),
            ("s3://bucket:99999/x?t=Zq7", "s3://bucket:99999/x?***"),
            // A secret with an `@` of its own: the user information ends at the last `@`.
            ("s3://AKID9:Zq7/r@Zq7@ecg/cinc", "s3://***@ecg/cinc"),
        ] {
            assert!(url::Url::parse(url).is_err(), "{url} parses");
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(is_redacted(shown), "{shown}");
            let err = crate::store::open_url(url).unwrap_err().to_string();
            assert!(
                !err.contains("Zq7") && !err.contains("AKID9") && !err.contains("pass@"),
                "{err}"
            );
        }
    }

    #[test]
    fn urls_inside_a_message_are_redacted_in_place() {
        let text = "opening the dataset file:///tmp/x?sig=SECRET1: not found; `ecgfm eval --data \
                    s3://k:SECRET2@b/p?t=SECRET3 --out /tmp/o` failed (see https://example.com/a)";
        assert_eq!(
            redact_urls_in(text),
            "opening the dataset file:///tmp/x?***: not found; `ecgfm eval --data \
             s3://***@b/p?*** --out /tmp/o` failed (see https://example.com/a)"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in("://odd"), "://odd");
    }
}
