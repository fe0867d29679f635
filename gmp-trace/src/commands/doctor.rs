//! `gmp-trace doctor`: can this machine run the tracer, and if not, what to change. One line
//! per check (ok, warn, FAIL, skip) with the fix; exit 1 when a check the tracer needs fails.
//! The trace command calls [`with_findings`] when loading or attaching its probes fails, so
//! that error carries the failed checks and points here.
//!
//! The checks read files (/proc, /sys, the kernel config) and ask the kernel directly (a
//! trivial BPF program, a ring buffer, the embedded object's programs through the verifier);
//! each judgement is a pure function of what was read, tested below without root.
use std::io::{Read as _, Write as _};

use clap::Parser;
use serde::Serialize;

use super::version::kernel_release;
use crate::probes::features::{load_embedded_object, say, Features};

/// Check whether this machine can run gmp-trace (kernel, config, privileges, limits, lockdown,
/// container) and say what to fix; exits 1 if something the tracer needs is missing.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace doctor")]
pub struct DoctorArgs {
    /// Print the checks as a JSON array of {check, status, detail, fix}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, with a cost or a limit worth knowing.
    Warn,
    /// The tracer cannot run until this is fixed.
    Fail,
    /// Could not be checked here (another check covers it).
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do; empty when nothing needs doing.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn check(check: &'static str, status: Status, detail: impl Into<String>, fix: &str) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
        fix: fix.to_string(),
    }
}

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What the checks read from this machine; `None` where it was not readable.
struct Facts {
    kernel: String,
    config: Option<(String, String)>,
    caps: u64,
    euid: Option<u32>,
    memlock: Option<String>,
    lockdown: Option<String>,
    unprivileged_bpf: Option<String>,
    perf_paranoid: Option<String>,
    container: Option<String>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `Field:` of /proc/self/status.
fn status_field(status: &str, field: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// The kernel's build config, from /proc/config.gz (CONFIG_IKCONFIG_PROC) or
/// /boot/config-RELEASE: (where it came from, its text).
fn kernel_config(release: &str) -> Option<(String, String)> {
    if let Ok(f) = std::fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(f)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(("/proc/config.gz".into(), text));
        }
    }
    let boot = format!("/boot/config-{release}");
    std::fs::read_to_string(&boot).ok().map(|t| (boot, t))
}

/// The soft limit of a /proc/self/limits line's values (`soft hard units`): `8388608 bytes`.
fn soft_limit(values: &str) -> String {
    let v: Vec<&str> = values.split_whitespace().collect();
    match (v.first(), v.get(2)) {
        (Some(soft), Some(unit)) if *soft != "unlimited" => format!("{soft} {unit}"),
        (Some(soft), _) => soft.to_string(),
        _ => "unknown".into(),
    }
}

/// A container's name for itself: the runtime's marker files, or a container cgroup.
fn container() -> Option<String> {
    if std::path::Path::new("/.dockerenv").exists() {
        return Some("docker (/.dockerenv)".into());
    }
    if std::path::Path::new("/run/.containerenv").exists() {
        return Some("podman (/run/.containerenv)".into());
    }
    let cgroup = read("/proc/self/cgroup")?;
    ["docker", "kubepods", "containerd", "crio", "libpod", "lxc"]
        .into_iter()
        .find(|k| cgroup.contains(k))
        .map(|k| format!("{k} (cgroup)"))
}

impl Facts {
    fn read() -> Facts {
        let kernel = kernel_release();
        let status = read("/proc/self/status").unwrap_or_default();
        Facts {
            config: kernel_config(&kernel),
            caps: status_field(&status, "CapEff:")
                .and_then(|v| u64::from_str_radix(&v, 16).ok())
                .unwrap_or(0),
            euid: status_field(&status, "Uid:")
                .and_then(|v| v.split_whitespace().nth(1).and_then(|u| u.parse().ok())),
            memlock: read("/proc/self/limits").and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max locked memory"))
                    .map(|l| soft_limit(&l["Max locked memory".len()..]))
            }),
            lockdown: read("/sys/kernel/security/lockdown"),
            unprivileged_bpf: read("/proc/sys/kernel/unprivileged_bpf_disabled"),
            perf_paranoid: read("/proc/sys/kernel/perf_event_paranoid"),
            container: container(),
            kernel,
        }
    }

    fn has(&self, cap: u32) -> bool {
        self.caps & (1u64 << cap) != 0
    }

    /// Can load and attach uprobes: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON (5.8+).
    fn privileged(&self) -> bool {
        self.has(CAP_SYS_ADMIN) || (self.has(CAP_BPF) && self.has(CAP_PERFMON))
    }
}

/// (major, minor) of a release string such as `6.8.0-45-generic`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn check_kernel(release: &str) -> Check {
    let fix = "upgrade to kernel 5.8 or newer (6.6+ for uprobe_multi links)";
    match kernel_version(release) {
        None => check("kernel", Status::Warn, format!("{release}: unparsable"), ""),
        Some(v) if v < (5, 8) => check(
            "kernel",
            Status::Fail,
            format!("{release}: older than 5.8 (no BPF ring buffer, no CAP_BPF)"),
            fix,
        ),
        Some(v) if v < (6, 6) => check(
            "kernel",
            Status::Warn,
            format!(
                "{release}: no uprobe_multi links before 6.6 (attaching and detaching are slower)"
            ),
            fix,
        ),
        Some(_) => check("kernel", Status::Ok, release, ""),
    }
}

/// The options the probes depend on: (option, why).
const CONFIG_NEEDED: &[(&str, &str)] = &[
    ("CONFIG_BPF_SYSCALL", "BPF"),
    ("CONFIG_UPROBES", "uprobes"),
    ("CONFIG_UPROBE_EVENTS", "the uprobe perf PMU"),
    ("CONFIG_BPF_EVENTS", "BPF programs on uprobes"),
];

fn check_config(config: Option<&(String, String)>) -> Check {
    let Some((source, text)) = config else {
        return check(
            "kernel config",
            Status::Skip,
            "neither /proc/config.gz nor /boot/config-RELEASE is readable (the BPF load check \
             below tests the same)",
            "",
        );
    };
    let set = |opt: &str| {
        text.lines()
            .any(|l| l == format!("{opt}=y") || l == format!("{opt}=m"))
    };
    let missing: Vec<String> = CONFIG_NEEDED
        .iter()
        .filter(|(o, _)| !set(o))
        .map(|(o, why)| format!("{o} ({why})"))
        .collect();
    let btf = set("CONFIG_DEBUG_INFO_BTF");
    if !missing.is_empty() {
        return check(
            "kernel config",
            Status::Fail,
            format!("{source}: not set: {}", missing.join(", ")),
            "use a kernel built with these options (every major distribution's is)",
        );
    }
    if !btf {
        return check(
            "kernel config",
            Status::Warn,
            format!("{source}: CONFIG_DEBUG_INFO_BTF is not set"),
            "without kernel BTF, events of Go's assembly entry points carry no G/M",
        );
    }
    check(
        "kernel config",
        Status::Ok,
        format!("{source}: BPF syscall, uprobes, uprobe events, BPF events, BTF"),
        "",
    )
}

fn check_privileges(f: &Facts) -> Check {
    let names: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
    ]
    .into_iter()
    .filter(|(c, _)| f.has(*c))
    .map(|(_, n)| n)
    .collect();
    let who = match f.euid {
        Some(0) => "root".to_string(),
        Some(u) => format!("uid {u}"),
        None => "uid unknown".to_string(),
    };
    let names = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" ")
    };
    let detail = format!("{who}, effective capabilities: {names}");
    if !f.privileged() {
        return check(
            "privileges",
            Status::Fail,
            format!("{detail} (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"),
            "run as root (sudo), or `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep $(command -v gmp-trace)`",
        );
    }
    if !f.has(CAP_SYS_PTRACE) {
        return check(
            "privileges",
            Status::Warn,
            format!("{detail}; no CAP_SYS_PTRACE"),
            "--pid, dump and top read other users' processes only with CAP_SYS_PTRACE",
        );
    }
    check("privileges", Status::Ok, detail, "")
}

fn check_memlock(kernel: Option<(u32, u32)>, limit: Option<&str>) -> Check {
    let limit = limit.unwrap_or("unknown");
    // 5.11 charges BPF maps to the memory cgroup instead of RLIMIT_MEMLOCK.
    if kernel.is_some_and(|v| v >= (5, 11)) {
        return check(
            "memlock",
            Status::Ok,
            format!("{limit} (not used: kernel 5.11+ charges BPF memory to the cgroup)"),
            "",
        );
    }
    // The default ring buffer is 8 MiB, plus the maps: 64 MiB leaves room for --buffer-size.
    let bytes = limit
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<u64>().ok());
    match (limit.starts_with("unlimited"), bytes) {
        (true, _) => check("memlock", Status::Ok, "unlimited", ""),
        (false, Some(b)) if b >= 64 << 20 => check("memlock", Status::Ok, limit, ""),
        _ => check(
            "memlock",
            Status::Fail,
            format!("{limit}: too small for the ring buffer on a kernel before 5.11"),
            "raise it: `ulimit -l unlimited` (or LimitMEMLOCK=infinity in a systemd unit)",
        ),
    }
}

fn check_lockdown(lockdown: Option<&str>) -> Check {
    let Some(text) = lockdown else {
        return check("lockdown", Status::Ok, "no lockdown LSM", "");
    };
    let mode = text
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
        .unwrap_or("none");
    match mode {
        "confidentiality" => check(
            "lockdown",
            Status::Fail,
            "confidentiality: BPF may not read kernel memory, which the probes do",
            "boot with lockdown=integrity or none (or turn off Secure Boot's lockdown)",
        ),
        other => check("lockdown", Status::Ok, other, ""),
    }
}

/// unprivileged_bpf_disabled and perf_event_paranoid only matter without privileges.
fn check_sysctls(f: &Facts) -> Vec<Check> {
    let unpriv = f.unprivileged_bpf.as_deref().unwrap_or("unreadable");
    let paranoid = f.perf_paranoid.as_deref().unwrap_or("unreadable");
    let (status, note, fix) = if f.privileged() {
        (
            Status::Ok,
            "; gmp-trace runs privileged, so it does not matter",
            "",
        )
    } else {
        (
            Status::Warn,
            "; limits unprivileged use",
            "gmp-trace needs the capabilities above in any case",
        )
    };
    vec![
        check(
            "unprivileged_bpf_disabled",
            status,
            format!("{unpriv}{note}"),
            fix,
        ),
        check(
            "perf_event_paranoid",
            status,
            format!("{paranoid}{note}"),
            fix,
        ),
    ]
}

fn check_container(f: &Facts) -> Check {
    match (&f.container, f.privileged()) {
        (None, _) => check("container", Status::Ok, "not in a container", ""),
        (Some(c), true) => check(
            "container",
            Status::Ok,
            format!("{c}, with the BPF capabilities; it sees the processes of its pid namespace"),
            "",
        ),
        (Some(c), false) => check(
            "container",
            Status::Fail,
            format!("{c} without CAP_BPF/CAP_PERFMON"),
            "run the container with --cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE (or \
             --privileged), and --pid=host to trace the host's processes",
        ),
    }
}

/// The checks that read files only (cheap, no BPF).
fn file_checks(f: &Facts) -> Vec<Check> {
    let mut v = vec![
        check_kernel(&f.kernel),
        check_config(f.config.as_ref()),
        check_privileges(f),
        check_memlock(kernel_version(&f.kernel), f.memlock.as_deref()),
        check_lockdown(f.lockdown.as_deref()),
    ];
    v.extend(check_sysctls(f));
    v.push(check_container(f));
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    v.push(if btf {
        check("kernel BTF", Status::Ok, "/sys/kernel/btf/vmlinux", "")
    } else {
        check(
            "kernel BTF",
            Status::Warn,
            "no /sys/kernel/btf/vmlinux",
            "events of Go's assembly entry points will carry no G/M (CONFIG_DEBUG_INFO_BTF)",
        )
    });
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/uprobe/type").exists();
    v.push(if pmu {
        check("uprobe PMU", Status::Ok, "perf_event_open's uprobe PMU is there; tracefs is not needed", "")
    } else {
        check(
            "uprobe PMU",
            Status::Fail,
            "no /sys/bus/event_source/devices/uprobe (sysfs not mounted, or no CONFIG_UPROBE_EVENTS)",
            "mount sysfs (-v /sys:/sys in a container) on a kernel with uprobe events",
        )
    });
    v
}

/// The checks that ask the kernel with BPF syscalls; `load_object` also puts the embedded
/// probes through the verifier (~100 ms).
fn bpf_checks(load_object: bool) -> Vec<Check> {
    let feat = Features::detect();
    let fix_load = "see the privileges, lockdown and container lines; `dmesg` may say more";
    let yes_no = |name: &'static str, a: &Result<bool, String>, need: &str| match a {
        Ok(true) => check(name, Status::Ok, "yes", ""),
        Ok(false) => check(name, Status::Fail, format!("no: {need}"), fix_load),
        Err(e) => check(name, Status::Fail, format!("cannot tell: {e}"), fix_load),
    };
    let mut v = vec![
        yes_no(
            "BPF program load",
            &feat.uprobe_program,
            "BPF programs cannot load",
        ),
        yes_no("ring buffer", &feat.ring_buffer, "kernel 5.8+ needed"),
    ];
    v.push(match &feat.uprobe_multi {
        Ok(true) => check(
            "uprobe links",
            Status::Ok,
            "uprobe_multi (process-wide pid filter)",
            "",
        ),
        Ok(false) => check(
            "uprobe links",
            Status::Warn,
            "perf_event only (no process-wide uprobe_multi): one link per probe site",
            "kernel 6.6+ attaches and detaches faster",
        ),
        Err(e) => check("uprobe links", Status::Skip, say(&Err(e.clone())), ""),
    });
    if load_object {
        v.push(match load_embedded_object() {
            Ok((n, ms)) => check(
                "probes verify",
                Status::Ok,
                format!("{n} programs of the embedded object loaded in {ms:.0} ms"),
                "",
            ),
            Err(e) => check("probes verify", Status::Fail, e, fix_load),
        });
    }
    v
}

fn render(c: &Check) -> String {
    let word = match c.status {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    };
    let mut line = format!("{word:<4}  {}: {}", c.check, c.detail);
    if !c.fix.is_empty() {
        line.push_str(&format!(" -> {}", c.fix));
    }
    line
}

pub fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    super::version::quiet_feature_probes();
    let facts = Facts::read();
    let mut checks = file_checks(&facts);
    checks.extend(bpf_checks(true));
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    // Written, not println!'d: `gmp-trace doctor | head` ends with an error, not a panic.
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&checks)?)?;
    } else {
        for c in &checks {
            writeln!(out, "{}", render(c))?;
        }
        match failed {
            0 => writeln!(out, "gmp-trace can trace on this machine")?,
            n => writeln!(
                out,
                "{n} check(s) failed: gmp-trace cannot trace here until they are fixed"
            )?,
        }
    }
    Ok(i32::from(failed > 0))
}

/// For the trace command when loading or attaching its probes failed: the error, then the
/// doctor's failed and warned checks (not the object load, which just failed), then where to
/// look further.
pub fn with_findings(e: anyhow::Error) -> anyhow::Error {
    let facts = Facts::read();
    let mut checks = file_checks(&facts);
    checks.extend(bpf_checks(false));
    let mut msg = format!("{e:#}");
    for c in checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
    {
        msg.push_str(&format!("\n  {}", render(c)));
    }
    msg.push_str("\n  (`gmp-trace doctor` checks this machine and says what to fix)");
    anyhow::anyhow!(msg)
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
