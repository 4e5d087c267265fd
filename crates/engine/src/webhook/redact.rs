//! A webhook URL as it may be shown: in `GET /jobs`, in logs and in traces. Credentials travel in
//! URLs (`https://user:secret@host/`, `?token=secret`), so the user info and every query value
//! are replaced by `***`, and the fragment is dropped. This module must never return any byte of
//! a password or a query value.

/// `url` with its user info and query values masked.
pub fn redact(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = match authority.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => authority.to_string(),
            };
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_show() {
        for (url, shown) in [
            (
                "https://hooks.example.com/alert",
                "https://hooks.example.com/alert",
            ),
            (
                "https://bob:s3cret@hooks.example.com/a",
                "https://***@hooks.example.com/a",
            ),
            ("http://tok@h:8080", "http://***@h:8080"),
            (
                "https://h/a?token=s3cret&x=1&flag",
                "https://h/a?token=***&x=***&flag",
            ),
            ("https://u:p@h/a?k=s3cret#frag", "https://***@h/a?k=***"),
        ] {
            assert_eq!(redact(url), shown);
            assert!(!redact(url).contains("s3cret"));
        }
    }
}
