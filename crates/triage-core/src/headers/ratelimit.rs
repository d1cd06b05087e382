//! The IETF `RateLimit` and `RateLimit-Policy` fields
//! (draft-ietf-httpapi-ratelimit-headers-11): Structured-Field lists, read
//! without allocating.
//!
//! ```
//! use std::time::Duration;
//! use triage_core::headers::{most_restrictive, policy_entries};
//!
//! let entry = most_restrictive(r#""burst";r=0;t=7, "daily";r=900;t=3600"#).unwrap();
//! assert_eq!((entry.policy, entry.remaining, entry.reset), ("burst", 0, Some(Duration::from_secs(7))));
//!
//! let quota: Vec<u64> = policy_entries(r#""burst";q=100;w=60,"daily";q=1000;w=86400"#).map(|p| p.quota).collect();
//! assert_eq!(quota, [100, 1000]);
//! ```

use std::time::Duration;

use super::MAX_DELAY;

/// At most this many list members are read.
const MAX_MEMBERS: usize = 16;

/// One member of a `RateLimit` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitEntry<'a> {
    /// The policy name.
    pub policy: &'a str,
    /// `r`: the quota left.
    pub remaining: u64,
    /// `t`: seconds until the quota resets.
    pub reset: Option<Duration>,
    /// `pk`: the partition key (the Byte Sequence's base64 text).
    pub partition_key: Option<&'a str>,
}

/// The unit of a policy's quota.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuotaUnit {
    /// Requests (the default).
    #[default]
    Requests,
    /// Bytes of content.
    ContentBytes,
    /// Requests in flight at once.
    ConcurrentRequests,
    /// A unit this parser does not know.
    Other,
}

/// One member of a `RateLimit-Policy` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyEntry<'a> {
    /// The policy name.
    pub policy: &'a str,
    /// `q`: the quota.
    pub quota: u64,
    /// `qu`: the quota's unit.
    pub unit: QuotaUnit,
    /// `w`: the window.
    pub window: Option<Duration>,
    /// `pk`: the partition key.
    pub partition_key: Option<&'a str>,
}

/// The members of a `RateLimit` field; malformed members are skipped.
pub fn ratelimit_entries(value: &str) -> RateLimitEntries<'_> {
    RateLimitEntries {
        members: Members::new(value),
    }
}

/// The members of a `RateLimit-Policy` field; malformed members are skipped.
pub fn policy_entries(value: &str) -> PolicyEntries<'_> {
    PolicyEntries {
        members: Members::new(value),
    }
}

/// The member with the least quota left (ties: the longer reset).
pub fn most_restrictive(value: &str) -> Option<RateLimitEntry<'_>> {
    ratelimit_entries(value).reduce(|best, e| {
        if (e.remaining, std::cmp::Reverse(e.reset))
            < (best.remaining, std::cmp::Reverse(best.reset))
        {
            e
        } else {
            best
        }
    })
}

/// Iterator returned by [`ratelimit_entries`].
#[derive(Debug, Clone)]
pub struct RateLimitEntries<'a> {
    members: Members<'a>,
}

impl<'a> Iterator for RateLimitEntries<'a> {
    type Item = RateLimitEntry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        for (policy, params) in self.members.by_ref() {
            let mut entry = RateLimitEntry {
                policy,
                remaining: u64::MAX,
                reset: None,
                partition_key: None,
            };
            let mut has_r = false;
            let mut valid = true;
            for (key, value) in params_of(params) {
                match key {
                    "r" => match integer(value) {
                        Some(r) => (entry.remaining, has_r) = (r, true),
                        None => valid = false,
                    },
                    "t" => match integer(value)
                        .map(Duration::from_secs)
                        .filter(|d| *d <= MAX_DELAY)
                    {
                        Some(t) => entry.reset = Some(t),
                        None => valid = false,
                    },
                    "pk" => entry.partition_key = byte_sequence(value),
                    _ => {}
                }
            }
            if has_r && valid {
                return Some(entry);
            }
        }
        None
    }
}

/// Iterator returned by [`policy_entries`].
#[derive(Debug, Clone)]
pub struct PolicyEntries<'a> {
    members: Members<'a>,
}

impl<'a> Iterator for PolicyEntries<'a> {
    type Item = PolicyEntry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        for (policy, params) in self.members.by_ref() {
            let mut entry = PolicyEntry {
                policy,
                quota: 0,
                unit: QuotaUnit::Requests,
                window: None,
                partition_key: None,
            };
            let mut has_q = false;
            let mut valid = true;
            for (key, value) in params_of(params) {
                match key {
                    "q" => match integer(value) {
                        Some(q) => (entry.quota, has_q) = (q, true),
                        None => valid = false,
                    },
                    "w" => match integer(value).filter(|w| *w > 0).map(Duration::from_secs) {
                        Some(w) if w <= MAX_DELAY => entry.window = Some(w),
                        _ => valid = false,
                    },
                    "qu" => {
                        entry.unit = match sf_string(value) {
                            Some("requests") => QuotaUnit::Requests,
                            Some("content-bytes") => QuotaUnit::ContentBytes,
                            Some("concurrent-requests") => QuotaUnit::ConcurrentRequests,
                            _ => QuotaUnit::Other,
                        }
                    }
                    "pk" => entry.partition_key = byte_sequence(value),
                    _ => {}
                }
            }
            if has_q && valid {
                return Some(entry);
            }
        }
        None
    }
}

/// Splits a list into (name, parameters) members at top-level commas.
#[derive(Debug, Clone)]
struct Members<'a> {
    rest: &'a str,
    taken: usize,
}

impl<'a> Members<'a> {
    fn new(value: &'a str) -> Members<'a> {
        let rest = if value.len() > 4096 { "" } else { value };
        Members { rest, taken: 0 }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while self.taken < MAX_MEMBERS && !self.rest.is_empty() {
            self.taken += 1;
            let end = member_end(self.rest);
            let member = self.rest[..end].trim();
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if let Some(split) = name_and_params(member) {
                return Some(split);
            }
        }
        None
    }
}

/// Index of the first comma outside a quoted string, or the length.
fn member_end(s: &str) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return i,
            _ => {}
        }
    }
    s.len()
}

/// The member's name (an sf-string's inner text, or a bare token) and the
/// text of its parameters.
fn name_and_params(member: &str) -> Option<(&str, &str)> {
    if let Some(inner) = member.strip_prefix('"') {
        let mut escaped = false;
        for (i, b) in inner.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => return Some((&inner[..i], &inner[i + 1..])),
                _ => {}
            }
        }
        None
    } else {
        let end = member.find(';').unwrap_or(member.len());
        let name = member[..end].trim();
        (!name.is_empty()).then(|| (name, &member[end..]))
    }
}

/// `;key=value` pairs; a bare key has the value `?1`.
fn params_of(params: &str) -> impl Iterator<Item = (&str, &str)> {
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(16)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (p, "?1"),
        })
}

fn integer(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn sf_string(value: &str) -> Option<&str> {
    value.strip_prefix('"')?.strip_suffix('"')
}

fn byte_sequence(value: &str) -> Option<&str> {
    value.strip_prefix(':')?.strip_suffix(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ratelimit_members() {
        let e: Vec<_> = ratelimit_entries(
            r#""default";r=50;t=30, "daily";r=999;t=3600;pk=:cHJvamVjdC0xMjM=:;acme-x=1"#,
        )
        .collect();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            RateLimitEntry {
                policy: "default",
                remaining: 50,
                reset: Some(Duration::from_secs(30)),
                partition_key: None
            }
        );
        assert_eq!(e[1].partition_key, Some("cHJvamVjdC0xMjM="));
        // Missing r, negative r, bad t: skipped.
        let e: Vec<_> =
            ratelimit_entries(r#""a";t=1, "b";r=-1, "c";r=1;t=x, "d";r=2, plain;r=3"#).collect();
        assert_eq!(
            e.iter().map(|e| e.policy).collect::<Vec<_>>(),
            ["d", "plain"]
        );
        // Quoted names with commas and escapes.
        let e: Vec<_> = ratelimit_entries(r#""a,\"b";r=1"#).collect();
        assert_eq!(e[0].policy, r#"a,\"b"#);
    }

    #[test]
    fn policy_members() {
        let p: Vec<_> =
            policy_entries(r#""burst";q=100;w=60,"daily";q=1000;w=86400;qu="content-bytes""#)
                .collect();
        assert_eq!(p[0].quota, 100);
        assert_eq!(p[0].window, Some(Duration::from_secs(60)));
        assert_eq!(p[0].unit, QuotaUnit::Requests);
        assert_eq!(p[1].unit, QuotaUnit::ContentBytes);
        assert_eq!(policy_entries(r#""x";q=1;w=0"#).count(), 0);
    }

    #[test]
    fn most_restrictive_picks_least_left() {
        let e = most_restrictive(r#""a";r=5;t=1, "b";r=0;t=7, "c";r=0;t=9"#).unwrap();
        assert_eq!(e.policy, "c");
        assert!(most_restrictive("garbage").is_none());
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(s in "\\PC{0,300}") {
            prop_assert!(ratelimit_entries(&s).count() <= MAX_MEMBERS);
            prop_assert!(policy_entries(&s).count() <= MAX_MEMBERS);
            if let Some(e) = most_restrictive(&s) {
                prop_assert!(e.reset.is_none_or(|t| t <= MAX_DELAY));
            }
        }
    }
}
