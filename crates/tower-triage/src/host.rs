//! The host and port of a URI, read by one scan of its authority: for
//! profile detection, events and spans (`Uri::host` parses the authority
//! anew each time it is called, several times the cost).

use http::Uri;

/// The URI's host, without user info or port (`Uri::host` parses more
/// carefully and costs several times as much; profile detection needs no
/// more than this).
pub(crate) fn host_of(uri: &Uri) -> &str {
    host_port(uri).0
}

/// The URI's host and explicit port, in one scan of the authority from
/// its end: the last ':' outside an IP literal ends the host, an '@'
/// starts it. All three are ASCII, so every cut falls on a character
/// boundary.
pub(crate) fn host_port(uri: &Uri) -> (&str, Option<u16>) {
    let Some(authority) = uri.authority() else {
        return ("", None);
    };
    let a = authority.as_str();
    // A byte loop: `rfind` goes through `memrchr`, slower on a short text.
    let mut end = a.len();
    let mut port_seen = false;
    for (i, &b) in a.as_bytes().iter().enumerate().rev() {
        match b {
            b'@' => return (&a[i + 1..end], port(a, end)),
            // A ':' inside `[...]` is the IPv6 literal's own.
            b':' if !port_seen => {
                end = i;
                port_seen = true;
            }
            b']' => port_seen = true,
            _ => {}
        }
    }
    (&a[..end], port(a, end))
}

/// The port after the host that ends at `end` in authority `a`.
fn port(a: &str, end: usize) -> Option<u16> {
    a.get(end + 1..).and_then(|p| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_agrees_with_uri_host() {
        for uri in [
            "https://api.openai.com/v1/models",
            "https://API.OpenAI.com:443/v1",
            "http://user:pw@api.anthropic.com:8080/x",
            "http://127.0.0.1:9/",
            "http://svc.test/",
            "/relative/only",
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(host_of(&uri), uri.host().unwrap_or(""), "{uri}");
            assert_eq!(host_port(&uri).1, uri.port_u16(), "{uri}");
        }
        // IP literals keep their brackets; they match no built-in profile.
        for literal in [
            "http://[::1]:8080/",
            "http://[::1]/",
            "http://u:p@[::1]:80/",
        ] {
            let uri: Uri = literal.parse().unwrap();
            assert_eq!(host_of(&uri), "[::1]", "{literal}");
            assert_eq!(host_port(&uri).1, uri.port_u16(), "{literal}");
        }
        let uri: Uri = "http://[::1]:8080/".parse().unwrap();
        assert!(std::ptr::eq(
            triage_core::Profile::detect(host_of(&uri)),
            triage_core::Profile::generic()
        ));
    }
}
