//! Host addresses in URLs and `host:port` pairs.

/// `host` as it stands before `:port`: an IPv6 address in brackets.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
