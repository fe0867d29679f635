//! The doctor's judgements on made-up machines (no root, no BPF).
use super::*;

fn facts(caps: u64) -> Facts {
    Facts {
        kernel: "6.8.0-45-generic".into(),
        config: None,
        caps,
        euid: Some(1000),
        memlock: Some("8388608 bytes".into()),
        lockdown: None,
        unprivileged_bpf: Some("2".into()),
        perf_paranoid: Some("4".into()),
        container: None,
    }
}

const BPF_PERFMON: u64 = (1 << CAP_BPF) | (1 << CAP_PERFMON);

#[test]
fn kernel_versions() {
    assert_eq!(kernel_version("6.8.0-45-generic"), Some((6, 8)));
    assert_eq!(
        kernel_version("5.15.167.4-microsoft-standard-WSL2"),
        Some((5, 15))
    );
    assert_eq!(kernel_version("6.18.44-fc-v1147"), Some((6, 18)));
    assert_eq!(kernel_version("garbage"), None);
    assert_eq!(check_kernel("4.19.0").status, Status::Fail);
    assert_eq!(check_kernel("5.15.0").status, Status::Warn);
    assert_eq!(check_kernel("6.6.1").status, Status::Ok);
}

#[test]
fn config_options() {
    let all = "CONFIG_BPF_SYSCALL=y\nCONFIG_UPROBES=y\nCONFIG_UPROBE_EVENTS=y\n\
               CONFIG_BPF_EVENTS=y\nCONFIG_DEBUG_INFO_BTF=y\n";
    let c = |t: &str| check_config(Some(&("/proc/config.gz".to_string(), t.to_string())));
    assert_eq!(c(all).status, Status::Ok);
    let no_uprobes = all.replace("CONFIG_UPROBES=y", "# CONFIG_UPROBES is not set");
    let r = c(&no_uprobes);
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.detail.contains("CONFIG_UPROBES (uprobes)"),
        "{}",
        r.detail
    );
    assert!(!r.detail.contains("CONFIG_BPF_SYSCALL"), "{}", r.detail);
    assert_eq!(
        c(&all.replace("CONFIG_DEBUG_INFO_BTF=y", "")).status,
        Status::Warn
    );
    assert_eq!(check_config(None).status, Status::Skip);
}

#[test]
fn privileges_from_capabilities() {
    let r = check_privileges(&facts(0));
    assert_eq!(r.status, Status::Fail);
    assert!(r.fix.contains("setcap cap_bpf,cap_perfmon"), "{}", r.fix);
    // CAP_BPF alone is not enough: perf-event uprobes need CAP_PERFMON.
    assert_eq!(check_privileges(&facts(1 << CAP_BPF)).status, Status::Fail);
    assert_eq!(check_privileges(&facts(BPF_PERFMON)).status, Status::Warn);
    let r = check_privileges(&facts(BPF_PERFMON | (1 << CAP_SYS_PTRACE)));
    assert_eq!(r.status, Status::Ok);
    assert!(
        r.detail.contains("CAP_BPF CAP_PERFMON CAP_SYS_PTRACE"),
        "{}",
        r.detail
    );
    let mut root = facts(u64::MAX >> 23);
    root.euid = Some(0);
    let r = check_privileges(&root);
    assert_eq!(r.status, Status::Ok);
    assert!(r.detail.starts_with("root, "), "{}", r.detail);
}

#[test]
fn memlock_matters_before_5_11_only() {
    assert_eq!(
        soft_limit("  8388608   16777216   bytes  "),
        "8388608 bytes"
    );
    assert_eq!(soft_limit(" unlimited unlimited bytes"), "unlimited");
    let small = Some("65536 bytes");
    assert_eq!(check_memlock(Some((6, 1)), small).status, Status::Ok);
    assert_eq!(check_memlock(Some((5, 10)), small).status, Status::Fail);
    assert_eq!(
        check_memlock(Some((5, 10)), Some("unlimited")).status,
        Status::Ok
    );
    assert_eq!(
        check_memlock(Some((5, 10)), Some("134217728 bytes")).status,
        Status::Ok
    );
}

#[test]
fn lockdown_modes() {
    assert_eq!(check_lockdown(None).status, Status::Ok);
    assert_eq!(
        check_lockdown(Some("[none] integrity confidentiality")).status,
        Status::Ok
    );
    assert_eq!(
        check_lockdown(Some("none [integrity] confidentiality")).status,
        Status::Ok
    );
    let r = check_lockdown(Some("none integrity [confidentiality]"));
    assert_eq!(r.status, Status::Fail);
    assert!(r.fix.contains("lockdown="), "{}", r.fix);
}

#[test]
fn container_without_capabilities_fails() {
    let mut f = facts(0);
    f.container = Some("docker (/.dockerenv)".into());
    let r = check_container(&f);
    assert_eq!(r.status, Status::Fail);
    assert!(r.fix.contains("--cap-add BPF"), "{}", r.fix);
    f.caps = BPF_PERFMON;
    assert_eq!(check_container(&f).status, Status::Ok);
    assert_eq!(check_container(&facts(0)).status, Status::Ok);
}

#[test]
fn sysctls_warn_only_without_privileges() {
    assert!(check_sysctls(&facts(0))
        .iter()
        .all(|c| c.status == Status::Warn));
    let ok = check_sysctls(&facts(BPF_PERFMON));
    assert!(ok.iter().all(|c| c.status == Status::Ok));
    assert!(ok[1].detail.starts_with("4;"), "{}", ok[1].detail);
}

#[test]
fn rendered_lines_and_json() {
    let c = check_lockdown(Some("none integrity [confidentiality]"));
    let line = render(&c);
    assert!(
        line.starts_with("FAIL  lockdown: confidentiality"),
        "{line}"
    );
    assert!(line.contains(" -> boot with"), "{line}");
    let ok = render(&check_kernel("6.8.0"));
    assert_eq!(ok, "ok    kernel: 6.8.0");
    let j = serde_json::to_value(&c).unwrap();
    assert_eq!(j["status"], "fail");
    assert_eq!(j["check"], "lockdown");
    assert!(serde_json::to_value(check_kernel("6.8.0"))
        .unwrap()
        .get("fix")
        .is_none());
}

#[test]
fn findings_keep_the_error_and_point_to_doctor() {
    let e = with_findings(anyhow::anyhow!(
        "loading the BPF probes into the kernel failed: EPERM"
    ));
    let text = format!("{e:#}");
    assert!(
        text.starts_with("loading the BPF probes into the kernel failed: EPERM"),
        "{text}"
    );
    assert!(text.contains("`gmp-trace doctor`"), "{text}");
}
