//! Linux: kvm2 VMs reach the caches over the libvirt bridge, whose firewalld
//! zone (`libvirt`) drops traffic to ports it does not know. drcache keeps a
//! firewalld service, `registry-cache`, that opens the configured cache ports,
//! and adds it to that zone.
//!
//! Decisions are taken from the runtime configuration, which any user may
//! query; changes go to the permanent configuration (as root, or through sudo)
//! followed by a reload, so both stay equal.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use indoc::formatdoc;

use super::{HostEnv, Mode, Options, Os, Privilege, Progress, Report, State};
use crate::errors::{exit, Hinted};
use crate::exec::{Cmd, CommandError, Runner};
use crate::privileged;
use crate::tools;

pub const SERVICE: &str = "registry-cache";
const SHORT: &str = "Registry Cache";
const DESCRIPTION: &str =
    "Local pull-through container registry caches run by drcache, for minikube VMs.";

/// firewall-cmd exit statuses (firewalld's `errors.py`).
mod status {
    pub const NAME_CONFLICT: i32 = 26;
    pub const DBUS_ERROR: i32 = 36;
    pub const INVALID_SERVICE: i32 = 101;
    pub const RUNNING_BUT_FAILED: i32 = 251;
    pub const NOT_RUNNING: i32 = 252;
    pub const NOT_AUTHORIZED: i32 = 253;
}

/// firewalld's port entries for `ports`: one range when they are contiguous,
/// one entry per port otherwise.
pub fn port_entries(ports: &[u16]) -> Vec<String> {
    let ports: BTreeSet<u16> = ports.iter().copied().collect();
    let (Some(&first), Some(&last)) = (ports.first(), ports.last()) else {
        return Vec::new();
    };
    if ports.len() > 1 && usize::from(last - first) + 1 == ports.len() {
        return vec![format!("{first}-{last}/tcp")];
    }
    ports.iter().map(|p| format!("{p}/tcp")).collect()
}

/// The service definition that `firewall-cmd --new-service-from-file` loads.
pub fn render_service(ports: &[u16]) -> String {
    let port_lines: String = port_entries(ports)
        .iter()
        .map(|entry| {
            let port = entry.trim_end_matches("/tcp");
            format!("  <port protocol=\"tcp\" port=\"{port}\"/>\n")
        })
        .collect();
    formatdoc! {r#"
        <?xml version="1.0" encoding="utf-8"?>
        <service>
          <short>{SHORT}</short>
          <description>{DESCRIPTION}</description>
        {port_lines}</service>
    "#}
}

/// `firewall-cmd --info-service=NAME`, as far as drcache cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Port entries such as `5051-5055/tcp`.
    pub ports: Vec<String>,
    /// Every other non-empty setting, as `key: value` (protocols, modules...).
    pub other: Vec<String>,
}

impl ServiceInfo {
    /// The TCP ports it opens; None when it opens anything else (a UDP port,
    /// a protocol, ...), which makes it a service drcache did not write.
    fn tcp_ports(&self) -> Option<BTreeSet<u16>> {
        if !self.other.is_empty() {
            return None;
        }
        let mut ports = BTreeSet::new();
        for entry in &self.ports {
            let range = entry.strip_suffix("/tcp")?;
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            let (low, high): (u16, u16) = (low.parse().ok()?, high.parse().ok()?);
            ports.extend(low..=high);
        }
        Some(ports)
    }
}

/// Parse `firewall-cmd [--permanent] --info-service=NAME`: the name, then
/// indented `key: values` lines.
pub fn parse_service_info(text: &str) -> ServiceInfo {
    let mut info = ServiceInfo::default();
    for line in text.lines().filter(|l| l.starts_with(char::is_whitespace)) {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key {
            "ports" => info.ports = value.split_whitespace().map(str::to_string).collect(),
            _ => info.other.push(format!("{key}: {value}")),
        }
    }
    info
}

/// Parse `firewall-cmd [--permanent] --list-all-zones` into (zone, services).
pub fn parse_zone_services(text: &str) -> Vec<(String, Vec<String>)> {
    let mut zones: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            // "libvirt" or "public (default, active)"
            let name = line.split_whitespace().next().unwrap_or_default();
            zones.push((name.to_string(), Vec::new()));
        } else if let (Some(services), Some(zone)) =
            (line.trim().strip_prefix("services:"), zones.last_mut())
        {
            zone.1 = services.split_whitespace().map(str::to_string).collect();
        }
    }
    zones
}

/// One change to firewalld's permanent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(Vec<String>),
    AddPort(String),
    RemovePort(String),
    AddToZone(String),
    RemoveFromZone(String),
    Delete,
}

impl Change {
    /// What it does, as "would ..." completes it, and as done.
    fn describe(&self) -> (String, String) {
        match self {
            Change::Create(ports) => (
                format!("create service {SERVICE} ({})", ports.join(" ")),
                format!("created service {SERVICE} ({})", ports.join(" ")),
            ),
            Change::AddPort(p) => (
                format!("add port {p} to service {SERVICE}"),
                format!("added port {p} to service {SERVICE}"),
            ),
            Change::RemovePort(p) => (
                format!("remove port {p} from service {SERVICE}"),
                format!("removed port {p} from service {SERVICE}"),
            ),
            Change::AddToZone(z) => (
                format!("add service {SERVICE} to zone {z}"),
                format!("added service {SERVICE} to zone {z}"),
            ),
            Change::RemoveFromZone(z) => (
                format!("remove service {SERVICE} from zone {z}"),
                format!("removed service {SERVICE} from zone {z}"),
            ),
            Change::Delete => (
                format!("delete service {SERVICE}"),
                format!("deleted service {SERVICE}"),
            ),
        }
    }

    /// firewall-cmd's arguments; `file` holds the service for `Create`.
    fn args(&self, file: Option<&Path>) -> Vec<String> {
        let permanent = "--permanent".to_string();
        match self {
            Change::Create(_) => vec![
                permanent,
                format!(
                    "--new-service-from-file={}",
                    file.expect("a service file").display()
                ),
                format!("--name={SERVICE}"),
            ],
            Change::AddPort(p) => vec![
                permanent,
                format!("--service={SERVICE}"),
                format!("--add-port={p}"),
            ],
            Change::RemovePort(p) => vec![
                permanent,
                format!("--service={SERVICE}"),
                format!("--remove-port={p}"),
            ],
            Change::AddToZone(z) => vec![
                permanent,
                format!("--zone={z}"),
                format!("--add-service={SERVICE}"),
            ],
            Change::RemoveFromZone(z) => vec![
                permanent,
                format!("--zone={z}"),
                format!("--remove-service={SERVICE}"),
            ],
            Change::Delete => vec![permanent, format!("--delete-service={SERVICE}")],
        }
    }
}

/// What the running firewalld has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub service: Option<ServiceInfo>,
    pub in_zone: bool,
}

/// A service named like ours that drcache did not write.
fn conflict(info: &ServiceInfo) -> Hinted {
    let contents: Vec<String> = info
        .ports
        .iter()
        .map(|p| format!("port {p}"))
        .chain(info.other.iter().cloned())
        .collect();
    Hinted {
        message: format!(
            "firewalld already has a service named {SERVICE} that drcache did not write \
             ({}); drcache leaves it alone",
            contents.join(", ")
        ),
        hint: format!(
            "see it with `firewall-cmd --info-service={SERVICE}`; if it is not needed, remove it \
             from its zones (`sudo firewall-cmd --permanent --zone=ZONE --remove-service={SERVICE}`), \
             delete it (`sudo firewall-cmd --permanent --delete-service={SERVICE}`), run \
             `sudo firewall-cmd --reload`, then `drcache setup-host` again"
        ),
        code: exit::FAILURE,
    }
}

/// The changes that make `observed` open `want` (port entries) to `zone`.
pub fn plan_setup(observed: &Observed, want: &[String], zone: &str) -> Result<Vec<Change>, Hinted> {
    let Some(info) = &observed.service else {
        return Ok(vec![
            Change::Create(want.to_vec()),
            Change::AddToZone(zone.to_string()),
        ]);
    };
    let have = info.tcp_ports().ok_or_else(|| conflict(info))?;
    let wanted = ServiceInfo {
        ports: want.to_vec(),
        other: Vec::new(),
    };
    let mut changes = Vec::new();
    if Some(have) != wanted.tcp_ports() {
        changes.extend(
            info.ports
                .iter()
                .filter(|p| !want.contains(p))
                .cloned()
                .map(Change::RemovePort),
        );
        changes.extend(
            want.iter()
                .filter(|p| !info.ports.contains(p))
                .cloned()
                .map(Change::AddPort),
        );
    }
    if !observed.in_zone {
        changes.push(Change::AddToZone(zone.to_string()));
    }
    Ok(changes)
}

/// What `--check` reports missing for these changes.
fn missing(changes: &[Change], observed: &Observed, want: &[String], zone: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for change in changes {
        let line = match change {
            Change::Create(_) => format!("firewalld has no service {SERVICE}"),
            Change::AddPort(_) | Change::RemovePort(_) => format!(
                "service {SERVICE} opens {}, the configuration needs {}",
                observed
                    .service
                    .as_ref()
                    .map(|s| s.ports.join(" "))
                    .unwrap_or_default(),
                want.join(" ")
            ),
            Change::AddToZone(_) => format!("service {SERVICE} is not in zone {zone}"),
            Change::RemoveFromZone(_) | Change::Delete => continue,
        };
        if !missing.contains(&line) {
            missing.push(line);
        }
    }
    missing
}

enum FirewallState {
    Running,
    NotRunning(&'static str),
}

/// Typed firewall-cmd calls.
struct Firewalld<'a> {
    program: PathBuf,
    runner: &'a Runner,
}

impl Firewalld<'_> {
    fn query<const N: usize>(&self, args: [&str; N]) -> Cmd {
        Cmd::query(&self.program, "firewall-cmd").args(args)
    }

    fn run(&self, cmd: &Cmd) -> Result<crate::exec::Output, CommandError> {
        self.runner.run(cmd).map_err(|mut err| {
            if err.code == Some(status::NOT_AUTHORIZED) {
                err.hint = Some(
                    "firewalld refused this query to your user: run `sudo drcache setup-host`"
                        .into(),
                );
            }
            err
        })
    }

    fn state(&self) -> Result<FirewallState> {
        let out = self.run(&self.query(["--state"]).accept(&[
            status::DBUS_ERROR,
            status::RUNNING_BUT_FAILED,
            status::NOT_RUNNING,
        ]))?;
        match out.code {
            0 => Ok(FirewallState::Running),
            status::NOT_RUNNING => Ok(FirewallState::NotRunning("firewalld is not running")),
            status::DBUS_ERROR => Ok(FirewallState::NotRunning(
                "firewalld is not running (there is no system D-Bus)",
            )),
            _ => Err(Hinted {
                message: "firewalld is running but failed to load its configuration".into(),
                hint:
                    "see firewalld's log (`journalctl -u firewalld`), fix it, and restart firewalld"
                        .into(),
                code: exit::FAILURE,
            }
            .into()),
        }
    }

    fn zones(&self) -> Result<Vec<String>> {
        let out = self.run(&self.query(["--get-zones"]))?;
        Ok(out.stdout.split_whitespace().map(str::to_string).collect())
    }

    fn service_info(&self) -> Result<Option<ServiceInfo>> {
        let out = self.run(
            &self
                .query([&format!("--info-service={SERVICE}")])
                .accept(&[status::INVALID_SERVICE]),
        )?;
        Ok((out.code == 0).then(|| parse_service_info(&out.stdout)))
    }

    fn in_zone(&self, zone: &str) -> Result<bool> {
        let out = self.run(
            &self
                .query([
                    &format!("--zone={zone}"),
                    &format!("--query-service={SERVICE}"),
                ])
                .accept(&[1, status::INVALID_SERVICE]),
        )?;
        Ok(out.code == 0)
    }

    fn observe(&self, zone: &str) -> Result<Observed> {
        let service = self.service_info()?;
        let in_zone = service.is_some() && self.in_zone(zone)?;
        Ok(Observed { service, in_zone })
    }

    /// Zones whose permanent configuration lists the service. Reading the
    /// permanent configuration needs root; a dry run as a user reads the
    /// runtime one instead, which drcache keeps equal.
    fn zones_listing_service(&self, privilege: &Privilege) -> Result<Vec<String>> {
        let out = if privilege.is_root() || !self.runner.dry_run {
            let cmd = privilege.elevate(self.query(["--permanent", "--list-all-zones"]))?;
            self.run(&cmd)?
        } else {
            self.run(&self.query(["--list-all-zones"]))?
        };
        Ok(parse_zone_services(&out.stdout)
            .into_iter()
            .filter(|(_, services)| services.iter().any(|s| s == SERVICE))
            .map(|(zone, _)| zone)
            .collect())
    }
}

fn unknown_zone(zone: &str, zones: &[String]) -> Hinted {
    Hinted {
        message: format!(
            "firewalld has no zone {zone:?}; its zones: {}",
            zones.join(", ")
        ),
        hint: "name the zone of your VMs' network with `--zone` (kvm2 VMs use `libvirt`, which \
               libvirt installs: is libvirt installed and its network started?)"
            .into(),
        code: exit::USAGE,
    }
}

pub fn run(env: &HostEnv, opts: &Options) -> Result<Report> {
    let mut report = Report::new(Os::Linux, opts.mode);
    // Changes run it as root: only a firewall-cmd root owns will do.
    let Some(program) = privileged::find_installed(&tools::FIREWALL_CMD)? else {
        return Ok(report.finish(
            State::NotNeeded,
            "firewalld is not installed (no firewall-cmd in the system directories): \
             no firewall rule is needed",
        ));
    };
    env.ui
        .detail(&format!("firewall-cmd: {}", program.display()));
    let fw = Firewalld {
        program,
        runner: env.runner,
    };
    if let FirewallState::NotRunning(why) = fw.state()? {
        return Ok(report.finish(
            State::NotNeeded,
            format!(
                "{why}: no firewall rule is needed (run `drcache setup-host` again after starting it)"
            ),
        ));
    }
    let ports: Vec<u16> = env.ports.clone();
    let want = port_entries(&ports);
    report.facts.push(("firewall", "firewalld".into()));
    report.facts.push(("zone", opts.zone.clone()));
    report.facts.push(("service", SERVICE.into()));
    report.facts.push(("ports", want.join(" ")));
    let privilege = Privilege::detect(env.dry_run);
    let target = format!("zone {} opens {} to the caches", opts.zone, want.join(" "));

    if opts.mode == Mode::Undo {
        return undo(env, &fw, &privilege, report);
    }
    let zones = fw.zones()?;
    if !zones.contains(&opts.zone) {
        return Err(unknown_zone(&opts.zone, &zones).into());
    }
    let observed = fw.observe(&opts.zone)?;
    let changes = plan_setup(&observed, &want, &opts.zone)?;
    if changes.is_empty() {
        return Ok(report.finish(State::Done, format!("already set up: {target}")));
    }
    if opts.mode == Mode::Check {
        report.missing = missing(&changes, &observed, &want, &opts.zone);
        return Ok(report.finish(State::Missing, "not set up: run `drcache setup-host`"));
    }

    let mut progress = Progress::new(env);
    apply(&fw, &privilege, &mut progress, &changes, &ports)?;
    report.changes = progress.done.clone();
    if env.dry_run {
        return Ok(report.finish(State::WouldChange, "dry run: nothing was changed"));
    }
    let after = fw.observe(&opts.zone)?;
    if !plan_setup(&after, &want, &opts.zone)?.is_empty() {
        anyhow::bail!(
            "firewalld does not show the changes after the reload (service: {:?}, in zone {}: {})",
            after.service,
            opts.zone,
            after.in_zone
        );
    }
    Ok(report.finish(State::Changed, format!("set up: {target}")))
}

fn undo(
    env: &HostEnv,
    fw: &Firewalld,
    privilege: &Privilege,
    mut report: Report,
) -> Result<Report> {
    let Some(info) = fw.service_info()? else {
        return Ok(report.finish(
            State::Done,
            format!("nothing to undo: firewalld has no service {SERVICE}"),
        ));
    };
    if info.tcp_ports().is_none() {
        return Err(conflict(&info).into());
    }
    // A zone that still names a deleted service makes every reload fail:
    // take it out of every zone, not only --zone.
    let mut changes: Vec<Change> = fw
        .zones_listing_service(privilege)?
        .into_iter()
        .map(Change::RemoveFromZone)
        .collect();
    changes.push(Change::Delete);
    let mut progress = Progress::new(env);
    apply(fw, privilege, &mut progress, &changes, &[])?;
    report.changes = progress.done.clone();
    if env.dry_run {
        return Ok(report.finish(State::WouldChange, "dry run: nothing was changed"));
    }
    if fw.service_info()?.is_some() {
        anyhow::bail!("firewalld still has service {SERVICE} after the reload");
    }
    Ok(report.finish(
        State::Changed,
        format!("undone: firewalld has no service {SERVICE}"),
    ))
}

/// Make the permanent changes, then reload so that they take effect.
fn apply(
    fw: &Firewalld,
    privilege: &Privilege,
    progress: &mut Progress,
    changes: &[Change],
    ports: &[u16],
) -> Result<()> {
    let ui = progress.env.ui.clone();
    for change in changes {
        let (what, done) = change.describe();
        progress.step(&what, &done, || {
            let file = match change {
                Change::Create(_) => Some(service_file(ports)?),
                _ => None,
            };
            let cmd = Cmd::mutation(&fw.program, "firewall-cmd")
                .args(change.args(file.as_ref().map(|f| f.path())));
            privilege.run(fw.runner, cmd).map_err(|err| {
                let conflict = err
                    .downcast_ref::<CommandError>()
                    .is_some_and(|e| e.code == Some(status::NAME_CONFLICT));
                if matches!(change, Change::Create(_)) && conflict {
                    err.context(Hinted {
                        message: format!(
                            "firewalld's permanent configuration has a service {SERVICE} that the \
                             running firewalld has not loaded"
                        ),
                        hint: "run `sudo firewall-cmd --reload`, then `drcache setup-host` again"
                            .into(),
                        code: exit::FAILURE,
                    })
                } else {
                    err
                }
            })?;
            if let (true, Some(file)) = (fw.runner.dry_run, &file) {
                let text = render_service(ports);
                ui.info(&format!(
                    "{} would hold:\n{}",
                    file.path().display(),
                    text.trim_end()
                ));
            }
            Ok(())
        })?;
    }
    progress.step("reload firewalld", "reloaded firewalld", || {
        let cmd = Cmd::mutation(&fw.program, "firewall-cmd").arg("--reload");
        privilege.run(fw.runner, cmd).map(drop)
    })
}

/// The service definition in a private temporary file (removed on drop),
/// named `*.xml` as firewall-cmd requires.
fn service_file(ports: &[u16]) -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{SERVICE}-"))
        .suffix(".xml")
        .tempfile()
        .context("cannot create a temporary file for the firewalld service")?;
    file.write_all(render_service(ports).as_bytes())
        .and_then(|()| file.flush())
        .context("cannot write the firewalld service file")?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ports_render_as_one_range_when_contiguous() {
        assert_eq!(
            port_entries(&[5053, 5051, 5052, 5055, 5054]),
            ["5051-5055/tcp"]
        );
        assert_eq!(
            port_entries(&[5051, 5052, 5060]),
            ["5051/tcp", "5052/tcp", "5060/tcp"]
        );
        assert_eq!(port_entries(&[5051]), ["5051/tcp"]);
        assert_eq!(port_entries(&[]), Vec::<String>::new());
    }

    #[test]
    fn shipped_service_file_is_the_default_rendering() {
        let config = crate::config::load(None).unwrap();
        let ports: Vec<u16> = config.registries.iter().map(|r| r.port).collect();
        assert_eq!(
            include_str!("../../linux/registry-cache.xml"),
            render_service(&ports),
            "linux/registry-cache.xml must be `render_service` of the default ports"
        );
    }

    #[test]
    fn non_contiguous_ports_render_one_element_each() {
        let xml = render_service(&[5060, 5051]);
        assert!(xml.contains(indoc! {r#"
              <description>Local pull-through container registry caches run by drcache, for minikube VMs.</description>
              <port protocol="tcp" port="5051"/>
              <port protocol="tcp" port="5060"/>
            </service>
        "#}), "{xml}");
    }

    // Real output of firewall-cmd 1.3.3.
    const INFO_OURS: &str = indoc! {"
        registry-cache
          ports: 5051-5055/tcp 6000/tcp
          protocols: 
          source-ports: 
          modules: 
          destination: 
          includes: 
          helpers: 
    "};

    #[test]
    fn service_info_parses_ports_and_other_contents() {
        let info = parse_service_info(INFO_OURS);
        assert_eq!(info.ports, ["5051-5055/tcp", "6000/tcp"]);
        assert!(info.other.is_empty());
        assert_eq!(info.tcp_ports().unwrap().len(), 6);

        let foreign = parse_service_info(
            "registry-cache\n  ports: 5000/udp\n  protocols: gre\n  modules: \n",
        );
        assert_eq!(foreign.other, ["protocols: gre"]);
        assert_eq!(foreign.tcp_ports(), None);
        let udp = parse_service_info("registry-cache\n  ports: 5000/udp\n");
        assert_eq!(udp.tcp_ports(), None);
    }

    #[test]
    fn zone_listing_parses_services_per_zone() {
        let text = indoc! {"
            block
              target: %%REJECT%%
              services: 
              ports: 

            libvirt (active)
              target: ACCEPT
              services: dhcp dns registry-cache ssh
            public (default)
              services: ssh registry-cache
        "};
        assert_eq!(
            parse_zone_services(text),
            vec![
                ("block".to_string(), vec![]),
                (
                    "libvirt".to_string(),
                    entries(&["dhcp", "dns", "registry-cache", "ssh"])
                ),
                ("public".to_string(), entries(&["ssh", "registry-cache"])),
            ]
        );
    }

    #[test]
    fn plan_creates_then_adds_to_zone() {
        let want = entries(&["5051-5055/tcp"]);
        let plan = plan_setup(&Observed::default(), &want, "libvirt").unwrap();
        assert_eq!(
            plan,
            [
                Change::Create(want.clone()),
                Change::AddToZone("libvirt".into())
            ]
        );
        assert_eq!(
            plan[0].args(Some(Path::new("/tmp/s.xml"))),
            [
                "--permanent",
                "--new-service-from-file=/tmp/s.xml",
                "--name=registry-cache"
            ]
        );
        assert_eq!(
            plan[1].args(None),
            [
                "--permanent",
                "--zone=libvirt",
                "--add-service=registry-cache"
            ]
        );
    }

    #[test]
    fn plan_is_empty_when_ports_match_in_any_spelling() {
        let observed = Observed {
            service: Some(ServiceInfo {
                ports: entries(&["5051/tcp", "5052/tcp", "5053/tcp"]),
                other: vec![],
            }),
            in_zone: true,
        };
        assert_eq!(
            plan_setup(&observed, &entries(&["5051-5053/tcp"]), "libvirt").unwrap(),
            []
        );
    }

    #[test]
    fn plan_updates_ports_and_zone() {
        let observed = Observed {
            service: Some(parse_service_info(INFO_OURS)),
            in_zone: false,
        };
        let want = entries(&["5051-5055/tcp"]);
        let plan = plan_setup(&observed, &want, "libvirt").unwrap();
        assert_eq!(
            plan,
            [
                Change::RemovePort("6000/tcp".into()),
                Change::AddToZone("libvirt".into())
            ]
        );
        assert_eq!(
            missing(&plan, &observed, &want, "libvirt"),
            [
                "service registry-cache opens 5051-5055/tcp 6000/tcp, the configuration needs 5051-5055/tcp",
                "service registry-cache is not in zone libvirt",
            ]
        );
        assert_eq!(
            plan[0].args(None),
            [
                "--permanent",
                "--service=registry-cache",
                "--remove-port=6000/tcp"
            ]
        );
    }

    #[test]
    fn plan_refuses_a_foreign_service() {
        let observed = Observed {
            service: Some(parse_service_info(
                "registry-cache\n  ports: 5051/tcp\n  protocols: gre\n",
            )),
            in_zone: true,
        };
        let err = plan_setup(&observed, &entries(&["5051/tcp"]), "libvirt").unwrap_err();
        assert!(
            err.message.contains("(port 5051/tcp, protocols: gre)"),
            "{}",
            err.message
        );
        assert!(err.hint.contains("--delete-service=registry-cache"));
    }
}
