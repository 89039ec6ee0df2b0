//! Request URLs: query parameters sorted by key and percent-encoded (PROTOCOL.md 8, 10.1).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is encoded in a query component.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one query key or value, or one path segment (everything but RFC 3986
/// unreserved characters).
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, QUERY_COMPONENT).to_string()
}

/// Builds `stream_url?k=v&...` with the given parameters added to those already in the URL,
/// all sorted by (encoded) key, stable for equal keys. Parameters are percent-encoded; the ones
/// already in `stream_url` are kept as written. Any fragment is dropped.
pub fn with_query<K: AsRef<str>, V: AsRef<str>>(stream_url: &str, params: &[(K, V)]) -> String {
    let without_fragment = stream_url.split('#').next().unwrap_or(stream_url);
    let (base, existing) = match without_fragment.split_once('?') {
        Some((b, q)) => (b, q),
        None => (without_fragment, ""),
    };
    let mut pairs: Vec<(String, String)> = existing
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|seg| match seg.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (seg.to_owned(), String::new()),
        })
        .collect();
    pairs.extend(
        params
            .iter()
            .map(|(k, v)| (encode_component(k.as_ref()), encode_component(v.as_ref()))),
    );
    if pairs.is_empty() {
        return base.to_owned();
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(base.len() + 16 * pairs.len());
    out.push_str(base);
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Resolves a stream path against a client's base URL; an absolute `http(s)://` URL is kept.
/// `("http://h:1/", "a")` and `("http://h:1", "/a")` both give `http://h:1/a`.
pub fn resolve(base: &str, path_or_url: &str) -> String {
    if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
        return path_or_url.to_owned();
    }
    let base = base.trim_end_matches('/');
    if path_or_url.starts_with('/') {
        format!("{base}{path_or_url}")
    } else {
        format!("{base}/{path_or_url}")
    }
}

/// The stream URL without query or fragment (what errors report).
pub fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// The path component of an absolute URL (`http://h:1/a/b?x` gives `/a/b`).
pub fn path_of(url: &str) -> &str {
    let no_query = strip_query(url);
    let after_scheme = no_query
        .find("://")
        .map(|i| &no_query[i + 3..])
        .unwrap_or(no_query);
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_sorted_and_encoded() {
        let url = with_query(
            "http://h/s",
            &[("offset", "a b&c"), ("live", "long-poll"), ("cursor", "12")],
        );
        assert_eq!(url, "http://h/s?cursor=12&live=long-poll&offset=a%20b%26c");
    }

    #[test]
    fn existing_query_is_merged() {
        let url = with_query("http://h/s?token=x%2Fy&a=1#frag", &[("offset", "-1")]);
        assert_eq!(url, "http://h/s?a=1&offset=-1&token=x%2Fy");
        assert_eq!(with_query::<&str, &str>("http://h/s", &[]), "http://h/s");
    }

    #[test]
    fn resolves_paths_against_the_base() {
        assert_eq!(resolve("http://h:1/", "a"), "http://h:1/a");
        assert_eq!(resolve("http://h:1", "/a/b"), "http://h:1/a/b");
        assert_eq!(resolve("http://h:1", "https://o/x"), "https://o/x");
    }

    #[test]
    fn paths() {
        assert_eq!(
            path_of("http://127.0.0.1:9/v1/stream/x?o=1"),
            "/v1/stream/x"
        );
        assert_eq!(path_of("http://h"), "/");
        assert_eq!(strip_query("http://h/a?b#c"), "http://h/a");
    }
}
