//! Host addresses in URLs and `host:port` pairs.

/// `host` as it stands before `:port`: an IPv6 address in brackets.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The host and port of a URL's authority (`quay.io`, `10.0.0.1:5000`,
/// `[::1]`, `[::1]:5000`), the host without its brackets. `None` when the
/// authority is malformed: an unclosed or empty bracket, text after it that
/// is not `:port`, or a bare IPv6 address (a URL must bracket it).
pub fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        if host.is_empty() {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            after => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_authorities_with_and_without_ports() {
        assert_eq!(split_authority("quay.io"), Some(("quay.io", None)));
        assert_eq!(
            split_authority("10.0.0.1:5000"),
            Some(("10.0.0.1", Some("5000")))
        );
        assert_eq!(split_authority("[::1]"), Some(("::1", None)));
        assert_eq!(split_authority("[::1]:5000"), Some(("::1", Some("5000"))));
        assert_eq!(split_authority("[fd00::1]:"), Some(("fd00::1", Some(""))));
        for bad in [
            "::1",
            "fd00::1:5000",
            "[::1",
            "[]:5000",
            "[::1]5000",
            "a:b:c",
        ] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_bare_ipv6_gets_brackets() {
        assert_eq!(bracketed("::1"), "[::1]");
        assert_eq!(bracketed("fd00::1"), "[fd00::1]");
        assert_eq!(bracketed("[::1]"), "[::1]");
        assert_eq!(bracketed("127.0.0.1"), "127.0.0.1");
        assert_eq!(
            bracketed("host.minikube.internal"),
            "host.minikube.internal"
        );
    }
}
