//! Blocklist parsing: hosts, plain domain, wildcard and adblock-style lines.
//!
//! Each line is read on its own; the syntax is recognised per line, so one file may mix
//! them. A line that is none of these is counted as bad and skipped, never fatal.
//!
//! | syntax | example | blocks |
//! |---|---|---|
//! | hosts (`/etc/hosts`, hosts(5)) | `0.0.0.0 ads.example` | the name only |
//! | plain domain | `ads.example` | the name only |
//! | wildcard (dnscrypt-proxy style) | `*.ads.example` | the name and its subdomains |
//! | adblock basic rule (Adblock Plus / AdGuard DNS syntax) | `\|\|ads.example^` | the name and its subdomains |
//!
//! Comments (`#`, `!`, `[Adblock Plus ...]`) and empty lines are skipped. Hosts lines may
//! carry several names; the usual local names (`localhost`, `broadcasthost`, ...) are
//! skipped. Adblock exception rules (`@@||x^`) and rules with modifiers other than
//! `$important` cannot be expressed as DNS blocks and count as bad lines.

use crate::domains::{self, DomainSetBuilder, Match};

/// What one line held.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Nothing to do: empty or comment.
    Skip,
    /// One or more names to block (hosts lines may have several).
    Names(Vec<(String, Match)>),
    /// Unparseable; `&str` is the trimmed line, for diagnostics.
    Bad(&'a str),
}

const HOSTS_SKIP: [&str; 8] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-allnodes",
    "ip6-allrouters",
];

/// Parses one line of a blocklist.
pub fn parse_line(line: &str) -> Line<'_> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with('!') || t.starts_with('[') {
        return Line::Skip;
    }
    // Trailing comments in hosts and domain lists.
    let t = match t.find(" #").or_else(|| t.find("\t#")) {
        Some(i) => t[..i].trim_end(),
        None => t,
    };
    if let Some(rest) = t.strip_prefix("||") {
        let (body, mods) = match rest.find('$') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if mods.is_some_and(|m| m != "important") {
            return Line::Bad(t);
        }
        let Some(name) = body.strip_suffix('^').or_else(|| body.strip_suffix("^|")) else {
            return Line::Bad(t);
        };
        return match domains::normalize(name) {
            Some(n) => Line::Names(vec![(n, Match::Subtree)]),
            None => Line::Bad(t),
        };
    }
    if let Some(name) = t.strip_prefix("*.") {
        return match domains::normalize(name) {
            Some(n) => Line::Names(vec![(n, Match::Subtree)]),
            None => Line::Bad(t),
        };
    }
    let mut fields = t.split_ascii_whitespace();
    let first = fields.next().unwrap_or("");
    if first.parse::<std::net::IpAddr>().is_ok() {
        let mut names = Vec::new();
        let mut bad = false;
        for f in fields {
            if HOSTS_SKIP.contains(&f) || f.parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            match domains::normalize(f) {
                Some(n) => names.push((n, Match::Exact)),
                None => bad = true,
            }
        }
        return if bad || (names.is_empty() && t.split_ascii_whitespace().count() < 2) {
            Line::Bad(t)
        } else if names.is_empty() {
            Line::Skip
        } else {
            Line::Names(names)
        };
    }
    if fields.next().is_some() {
        return Line::Bad(t);
    }
    // A plain domain needs at least one dot: a bare word is more likely garbage.
    match domains::normalize(first) {
        Some(n) if n.contains('.') => Line::Names(vec![(n, Match::Exact)]),
        _ => Line::Bad(t),
    }
}

/// Counts from parsing one list.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ParseStats {
    /// Names added (a name listed twice counts twice).
    pub domains: u64,
    /// Lines that could not be read as any syntax.
    pub bad_lines: u64,
    /// Lines read.
    pub lines: u64,
}

/// Parses `text` line by line into `into`, returning the counts.
pub fn parse_into(text: &str, into: &mut DomainSetBuilder) -> ParseStats {
    let mut st = ParseStats::default();
    for line in text.lines() {
        st.lines += 1;
        match parse_line(line) {
            Line::Skip => {}
            Line::Bad(_) => st.bad_lines += 1,
            Line::Names(names) => {
                for (n, how) in names {
                    into.insert(&n, how);
                    st.domains += 1;
                }
            }
        }
    }
    st
}

/// A personal allowlist or denylist pattern: `name` (that name only) or `*.name` (the
/// name and every subdomain).
///
/// # Errors
/// A message saying what is wrong with the pattern.
pub fn parse_pattern(pattern: &str) -> Result<(String, Match), String> {
    let p = pattern.trim();
    let (body, how) = match p.strip_prefix("*.") {
        Some(rest) => (rest, Match::Subtree),
        None => (p, Match::Exact),
    };
    match domains::normalize(body) {
        Some(n) => Ok((n, how)),
        None => Err(format!(
            "{p:?} is not a domain name or a wildcard like *.example.com"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &str) -> Vec<(String, Match)> {
        match parse_line(l) {
            Line::Names(n) => n,
            other => panic!("{l:?} gave {other:?}"),
        }
    }

    #[test]
    fn each_syntax() {
        assert_eq!(
            names("0.0.0.0 Ads.Example.com"),
            [("ads.example.com".into(), Match::Exact)]
        );
        assert_eq!(
            names("127.0.0.1\ta.com b.com # c"),
            [
                ("a.com".into(), Match::Exact),
                ("b.com".into(), Match::Exact)
            ]
        );
        assert_eq!(
            names(":: ads6.example"),
            [("ads6.example".into(), Match::Exact)]
        );
        assert_eq!(
            names("||track.example^"),
            [("track.example".into(), Match::Subtree)]
        );
        assert_eq!(
            names("||track.example^$important"),
            [("track.example".into(), Match::Subtree)]
        );
        assert_eq!(
            names("*.wild.example"),
            [("wild.example".into(), Match::Subtree)]
        );
        assert_eq!(
            names("plain.example."),
            [("plain.example".into(), Match::Exact)]
        );
    }

    #[test]
    fn skips_and_bad_lines() {
        for s in [
            "",
            "  ",
            "# c",
            "! c",
            "[Adblock Plus 2.0]",
            "0.0.0.0 localhost",
            "127.0.0.1 localhost localhost.localdomain",
        ] {
            assert_eq!(parse_line(s), Line::Skip, "{s:?}");
        }
        for b in [
            "@@||ok.example^",
            "||x.example^$third-party",
            "||x.example",
            "0.0.0.0",
            "two words",
            "nodot",
            "0.0.0.0 bad_name!",
            "*.",
            "/regex/",
            "<html>",
        ] {
            assert!(matches!(parse_line(b), Line::Bad(_)), "{b:?}");
        }
    }

    #[test]
    fn garbage_lines_are_counted_not_fatal() {
        let text =
            "0.0.0.0 a.example\n\u{1}\u{2}garbage\n||b.example^\nnot a domain\n%%%\nc.example\n";
        let mut b = DomainSetBuilder::default();
        let st = parse_into(text, &mut b);
        assert_eq!(st.domains, 3);
        assert_eq!(st.bad_lines, 3);
        let set = b.build();
        assert!(set.matches("x.b.example").is_some());
        assert!(set.matches("c.example").is_some());
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("*.Lab.Home").unwrap(),
            ("lab.home".into(), Match::Subtree)
        );
        assert_eq!(
            parse_pattern("x.home").unwrap(),
            ("x.home".into(), Match::Exact)
        );
        assert!(parse_pattern("a*b").is_err());
    }
}
