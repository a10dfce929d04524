//! Linux: only the clients the config names reach the caches. drcache keeps
//! an nftables table of its own, `inet drcache`, whose one chain sits on the
//! prerouting hook at priority -150: before the DNAT of podman's published
//! ports (dstnat, -100), so a rootful publish cannot bypass it, and before
//! firewalld's zones, which it leaves alone (firewalld owns the tables named
//! `firewalld`; a separate table coexists with them). It drops TCP to the
//! cache ports unless the packet came in on an allowed interface or from an
//! allowed network. Connections from this host itself never pass prerouting.

use anyhow::Result;

use super::{HostEnv, Mode, Privilege, Progress, Report, State};
use crate::clients::Client;
use crate::exec::{Cmd, Runner};
use crate::privileged;
use crate::tools::Tool;

pub const TABLE: &str = "inet drcache";

pub const NFT: Tool = Tool {
    name: "nft",
    env_var: "DRCACHE_NFT",
    fallback: None,
    install_hint: "install nftables",
};

/// Whether drcache can hold the caches to their `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Nothing to hold: the caches listen on loopback only, or `clients`
    /// lets every network in.
    NotNeeded,
    /// `setup-host` installs the nftables filter here.
    Possible,
    /// No filter drcache can install: why.
    Impossible(String),
}

pub fn enforcement(bind: &str, clients: &[Client], os: crate::hostinfo::HostOs) -> Enforcement {
    use crate::hostinfo::HostOs;
    let loopback = bind
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if loopback || crate::clients::is_open(clients) {
        return Enforcement::NotNeeded;
    }
    match os {
        HostOs::Linux => match privileged::find_installed(&NFT) {
            Ok(Some(_)) => Enforcement::Possible,
            Ok(None) => Enforcement::Impossible(
                "nft is not installed, so drcache cannot filter who connects (install \
                 nftables, then run `drcache setup-host`)"
                    .into(),
            ),
            Err(e) => Enforcement::Impossible(e.message),
        },
        HostOs::Macos => Enforcement::Impossible(
            "on macOS drcache installs no packet filter: gvproxy accepts connections on every \
             interface the application firewall lets it"
                .into(),
        ),
        HostOs::Other => Enforcement::Impossible("drcache knows no filter for this OS".into()),
    }
}

/// For `start`, on every run where the filter cannot be in place: the
/// warning; an error when a cache with a login would run so without the
/// config's explicit opt-in.
pub fn start_check(
    config: &crate::config::Config,
    with_login: &[&str],
) -> Result<Option<String>, crate::errors::Hinted> {
    let Enforcement::Impossible(why) =
        enforcement(&config.bind, &config.clients, crate::hostinfo::host_os())
    else {
        return Ok(None);
    };
    let others = crate::clients::others(&config.clients, &crate::clients::interfaces());
    let open = if others.is_empty() {
        "every interface".to_string()
    } else {
        others.join(", ")
    };
    if !with_login.is_empty() && !config.allow_unfiltered_login {
        return Err(crate::errors::Hinted {
            message: format!(
                "{} log in to their upstream, and their caches would be reachable from other \
                 networks ({open}): {why}",
                with_login.join(", ")
            ),
            hint: "set `allow_unfiltered_login = true` in the config to run them anyway, or \
                   `bind = \"127.0.0.1\"` if only this host's clusters (through loopback) use them"
                .into(),
            code: crate::errors::exit::USAGE,
        });
    }
    Ok(Some(format!(
        "the caches are reachable from other networks ({open}): {why}"
    )))
}

/// The chain's rules, without the table around them.
fn rules(ports: &[u16], clients: &[Client]) -> Vec<String> {
    let mut ports: Vec<u16> = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut out = vec![format!("tcp dport != {{ {} }} accept", list.join(", "))];
    for client in clients {
        out.push(match client {
            Client::Any => continue,
            Client::Interface(name) => format!("iifname \"{name}\" accept"),
            Client::Net(addr, len) if addr.is_ipv4() => format!("ip saddr {addr}/{len} accept"),
            Client::Net(addr, len) => format!("ip6 saddr {addr}/{len} accept"),
        });
    }
    out
}

/// What identifies this rule set in the listed table.
pub fn tag(ports: &[u16], clients: &[Client]) -> String {
    format!(
        "drcache {}",
        crate::digest::short_sha256(rules(ports, clients).join("\n").as_bytes())
    )
}

/// The `nft -f -` input that replaces drcache's table in one transaction.
pub fn render(ports: &[u16], clients: &[Client]) -> String {
    let mut text = format!("table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{\n");
    text.push_str("\tchain clients {\n");
    text.push_str("\t\ttype filter hook prerouting priority -150; policy accept;\n");
    for rule in rules(ports, clients) {
        text.push_str(&format!("\t\t{rule}\n"));
    }
    text.push_str(&format!(
        "\t\tmeta l4proto tcp drop comment \"{}\"\n",
        tag(ports, clients)
    ));
    text.push_str("\t}\n}\n");
    text
}

/// The table as nft lists it, or None when there is none.
fn listed(runner: &Runner, privilege: &Privilege, nft: &std::path::Path) -> Result<Option<String>> {
    let cmd = Cmd::query(nft, "nft")
        .args(["list", "table", "inet", "drcache"])
        .accept(&[1]);
    let cmd = privilege.elevate(cmd)?;
    let out = runner.run(&cmd)?;
    match out.code {
        0 => Ok(Some(out.stdout)),
        // nft says "No such file or directory" for a table that is not there.
        _ if out.stderr.contains("No such file or directory") => Ok(None),
        code => anyhow::bail!(
            "`{}` failed (exit status {code}): {}",
            cmd.display(),
            out.stderr.trim()
        ),
    }
}

/// Set up, check or undo the filter; the firewalld part is reported apart.
pub fn run(env: &HostEnv, mode: Mode, report: &mut Report) -> Result<State> {
    let open = crate::clients::is_open(&env.clients);
    let Some(nft) = privileged::find_installed(&NFT)? else {
        report
            .facts
            .push(("filter", "none (nft is not installed)".into()));
        if !open {
            env.ui.warn(
                "nft is not installed: drcache cannot limit who reaches the caches, so they \
                 are reachable from other networks; install nftables and run \
                 `drcache setup-host` again",
            );
        }
        return Ok(State::NotNeeded);
    };
    env.ui.detail(&format!("nft: {}", nft.display()));
    if open && mode == Mode::Check {
        report.facts.push(("clients", "*".into()));
        return Ok(State::NotNeeded);
    }
    let privilege = Privilege::detect(env.dry_run);
    if mode == Mode::Check && !privilege.is_root() {
        // Listing a table needs root, and a check never asks for a password.
        report.missing.push(format!(
            "whether nftables table {TABLE} is in place cannot be told without root: \
             run `sudo drcache setup-host --check`"
        ));
        return Ok(State::Missing);
    }
    let current = listed(env.runner, &privilege, &nft)?;
    let want = tag(&env.ports, &env.clients);
    let clients: Vec<String> = env.clients.iter().map(|c| c.to_string()).collect();
    report
        .facts
        .push(("filter", format!("nftables table {TABLE}")));
    report.facts.push(("clients", clients.join(" ")));
    let up_to_date = current
        .as_deref()
        .is_some_and(|t| t.contains(&format!("comment \"{want}\"")));
    let mut progress = Progress::new(env);
    let delete = |progress: &mut Progress| {
        progress.step(
            &format!("delete nftables table {TABLE}"),
            &format!("deleted nftables table {TABLE}"),
            || {
                let cmd = Cmd::mutation(&nft, "nft").args(["delete", "table", "inet", "drcache"]);
                privilege.run(env.runner, cmd).map(drop)
            },
        )
    };
    let state = match (mode, open) {
        (Mode::Undo, _) | (Mode::Setup, true) => {
            if current.is_none() {
                return Ok(if open { State::NotNeeded } else { State::Done });
            }
            delete(&mut progress)?;
            State::Changed
        }
        (Mode::Check, true) => State::Done,
        (Mode::Check, false) if up_to_date => State::Done,
        (Mode::Check, false) => {
            report.missing.push(match current {
                None => format!(
                    "nftables has no table {TABLE}: the caches are reachable from other networks"
                ),
                Some(_) => format!(
                    "nftables table {TABLE} does not allow exactly the configured clients ({})",
                    clients.join(" ")
                ),
            });
            State::Missing
        }
        (Mode::Setup, false) if up_to_date => State::Done,
        (Mode::Setup, false) => {
            let text = render(&env.ports, &env.clients);
            progress.step(
                &format!(
                    "let only {} reach the cache ports (nftables table {TABLE})",
                    clients.join(" ")
                ),
                &format!(
                    "let only {} reach the cache ports (nftables table {TABLE})",
                    clients.join(" ")
                ),
                || {
                    let cmd = Cmd::mutation(&nft, "nft")
                        .args(["-f", "-"])
                        .stdin_bytes(text.clone().into_bytes());
                    privilege.run(env.runner, cmd).map(drop)
                },
            )?;
            if env.dry_run {
                env.ui
                    .info(&format!("nft -f - would read:\n{}", text.trim_end()));
            }
            State::Changed
        }
    };
    report.changes.extend(progress.done);
    if env.dry_run && state == State::Changed {
        return Ok(State::WouldChange);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_chain_before_podmans_dnat() {
        let clients: Vec<Client> = ["lo", "virbr*", "192.0.2.0/24", "2001:db8::/32"]
            .iter()
            .map(|c| crate::clients::parse(c).unwrap())
            .collect();
        let text = render(&[5052, 5051], &clients);
        let tag = tag(&[5051, 5052], &clients);
        assert_eq!(
            text,
            format!(
                "table inet drcache\ndelete table inet drcache\ntable inet drcache {{\n\
                 \tchain clients {{\n\
                 \t\ttype filter hook prerouting priority -150; policy accept;\n\
                 \t\ttcp dport != {{ 5051, 5052 }} accept\n\
                 \t\tiifname \"lo\" accept\n\
                 \t\tiifname \"virbr*\" accept\n\
                 \t\tip saddr 192.0.2.0/24 accept\n\
                 \t\tip6 saddr 2001:db8::/32 accept\n\
                 \t\tmeta l4proto tcp drop comment \"{tag}\"\n\
                 \t}}\n}}\n"
            )
        );
        assert_ne!(tag, super::tag(&[5051], &clients), "ports change the tag");
        assert_ne!(tag, super::tag(&[5051, 5052], &clients[..1]), "clients too");
    }

    #[test]
    fn only_an_exposed_cache_with_limited_clients_needs_a_filter() {
        use crate::hostinfo::HostOs;
        let local: Vec<Client> = vec![crate::clients::parse("virbr*").unwrap()];
        let any: Vec<Client> = vec![crate::clients::parse("*").unwrap()];
        for os in [HostOs::Macos, HostOs::Other] {
            assert_eq!(enforcement("127.0.0.1", &local, os), Enforcement::NotNeeded);
            assert_eq!(enforcement("::1", &local, os), Enforcement::NotNeeded);
            assert_eq!(enforcement("0.0.0.0", &any, os), Enforcement::NotNeeded);
            assert!(matches!(
                enforcement("0.0.0.0", &local, os),
                Enforcement::Impossible(_)
            ));
            assert!(matches!(
                enforcement("", &local, os),
                Enforcement::Impossible(_)
            ));
        }
    }
}
