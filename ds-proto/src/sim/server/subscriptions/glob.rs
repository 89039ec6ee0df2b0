//! Glob patterns over stream-root-relative stream paths (PROTOCOL.md 6.2).
//!
//! A path and a pattern are split at `/` into segments. A pattern segment that is exactly `**`
//! matches zero or more path segments; any other pattern segment matches exactly one path
//! segment, where `*` stands for any run of characters inside that segment (so a lone `*`
//! matches one whole segment, as 6.2 says, and `user-*` matches `user-42`). Every other
//! character matches itself. There is no escaping and no `?` or character classes: 6.2 names
//! only `*` and `**`.
//!
//! Matching is dynamic programming over (pattern segment, path segment) pairs, so patterns
//! with many `**` cost `O(pattern × path)`, never exponential time.

/// Whether `path` (normalized: no leading or trailing `/`) matches `pattern`.
pub(super) fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    // ok[j]: the pattern prefix handled so far matches the first j path segments.
    let mut ok = vec![false; segs.len() + 1];
    ok[0] = true;
    for p in &pat {
        let mut next = vec![false; segs.len() + 1];
        if *p == "**" {
            // Zero or more segments: reachable from any earlier reachable position.
            let mut reachable = false;
            for j in 0..=segs.len() {
                reachable |= ok[j];
                next[j] = reachable;
            }
        } else {
            for j in 0..segs.len() {
                if ok[j] && segment_matches(p, segs[j]) {
                    next[j + 1] = true;
                }
            }
        }
        ok = next;
    }
    ok[segs.len()]
}

/// Whether one path segment matches one pattern segment, `*` standing for any run of
/// characters (greedy with backtracking to the last star: linear in practice).
fn segment_matches(pattern: &str, segment: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), segment.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == s[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(matches("events/*", "events/abc"));
        assert!(!matches("events/*", "events/abc/def"));
        assert!(!matches("events/*", "events"));
        assert!(!matches("events/*", "other/abc"));
        assert!(matches("*/x", "a/x"));
        assert!(!matches("*/x", "a/b/x"));
        assert!(matches("events/user-*", "events/user-42"));
        assert!(!matches("events/user-*", "events/admin-1"));
        assert!(matches("a*c", "abbbc"));
        assert!(!matches("a*c", "abbbd"));
    }

    #[test]
    fn double_star_matches_any_number_of_segments() {
        assert!(matches("events/**", "events/a"));
        assert!(matches("events/**", "events/a/b/c"));
        // Zero segments.
        assert!(matches("events/**", "events"));
        assert!(matches("**", "anything/at/all"));
        assert!(matches("a/**/z", "a/z"));
        assert!(matches("a/**/z", "a/b/c/z"));
        assert!(!matches("a/**/z", "a/b/c/y"));
        assert!(matches("**/leaf", "x/y/leaf"));
        assert!(matches("a/**/b/**/c", "a/b/c"));
        assert!(matches("a/**/b/**/c", "a/x/b/y/z/c"));
        assert!(!matches("a/**/b/**/c", "a/x/y/z/c"));
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("events/abc", "events/abc"));
        assert!(!matches("events/abc", "events/abcd"));
        assert!(!matches("events/abc", "events/ab"));
    }

    #[test]
    fn many_double_stars_stay_fast() {
        let pattern = vec!["**"; 40].join("/") + "/never";
        let path = vec!["x"; 200].join("/");
        assert!(!matches(&pattern, &path));
    }
}
