//! Live validation against real running Go programs (children of the test, no root needed).
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;
use crate::binary::test_support::{all_versions, named};
use crate::process::maps::load_bias;
use gmp_trace_tests::Variant;

/// A running `parker -loop`, killed on drop.
struct Parker(std::process::Child);

impl Parker {
    /// Starts it with GOMAXPROCS=3 and waits for its first line: by then main.main runs.
    fn start(path: &std::path::Path) -> Parker {
        let mut child = Command::new(path)
            .arg("-loop")
            .env("GOMAXPROCS", "3")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.starts_with("parker pid"), "{line:?}");
        // Let a few rounds run so goroutines of every kind exist.
        std::thread::sleep(std::time::Duration::from_millis(50));
        Parker(child)
    }
}

impl Drop for Parker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check_report(r: &LiveReport, v: &str, variant: Variant) {
    let what = format!("go{v} {variant:?}");
    assert!(r.skipped.is_none(), "{what}");
    assert_eq!(r.gomaxprocs, 3, "{what}");
    assert_eq!(r.ps.len(), 3, "{what}");
    for (i, p) in r.ps.iter().enumerate() {
        assert_eq!(p.id as usize, i, "{what}");
        // _Pidle 0, _Prunning 1, _Psyscall 2, _Pgcstop 3.
        assert!(p.status <= 3, "{what}: {p:?}");
    }
    assert!(r.gs.len() >= 3, "{what}: {} goroutines", r.gs.len());
    let main = r.gs.iter().find(|g| g.goid == 1).unwrap();
    // g1 is alive, never dead (6), in any of idle..waiting or preempted.
    assert_ne!(main.status & !0x1000, 6, "{what}: {main:?}");
    assert_ne!(main.startpc, 0);
    let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
    assert_eq!(main.parent_goid.is_some(), minor >= 21, "{what}");
    assert!(
        r.gs.iter().any(|g| g.goid > 1 && g.status & !0x1000 != 6),
        "{what}"
    );
    assert!(!r.ms.is_empty(), "{what}");
    let m0 = r.ms.iter().find(|m| m.id == 0).unwrap();
    assert!(m0.procid > 0, "{what}: {m0:?}");
    for m in &r.ms {
        if let Some(p) = m.p_id {
            assert!((0..3).contains(&p), "{what}: {m:?}");
        }
    }
    assert!(r.checked.len() >= 5, "{what}: {:?}", r.checked);
}

#[test]
fn validates_running_processes() {
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Pie] {
            let path = named("parker", v, variant);
            let bin = GoBinary::open(&path).unwrap();
            let child = Parker::start(&path);
            let pid = child.0.id();
            let bias = load_bias(pid, &bin).unwrap();
            if variant == Variant::Default {
                assert_eq!(bias, 0, "go{v}: static executables are not relocated");
            } else {
                assert_ne!(bias, 0, "go{v}: PIE is loaded at a random base");
                assert_eq!(bias % 4096, 0);
            }
            let r = validate_live(pid, &bin, bias).unwrap();
            eprintln!(
                "go{v} {variant:?}: gomaxprocs {} allgs {} Ms {} Ps {:?}",
                r.gomaxprocs,
                r.allgs_len,
                r.ms.len(),
                r.ps.iter().map(|p| (p.id, p.status)).collect::<Vec<_>>()
            );
            check_report(&r, v, variant);
            assert_eq!(r.source, Some(OffsetsSource::Dwarf));
            // A wrong bias cannot pass: every global is somewhere else.
            let e = validate_live(pid, &bin, bias.wrapping_add(0x1000)).unwrap_err();
            assert!(matches!(e, BinaryError::LayoutMismatch { .. }), "{e}");
            drop(child);
        }
    }
}

/// A stripped parker has no data symbols: its globals come from the runtime's code, its offsets
/// from the table, and the same invariants hold (g0 and m0 included: rt0_go names them).
#[test]
fn validates_stripped_processes() {
    for v in all_versions() {
        let path = named("parker", v, Variant::Stripped);
        let bin = GoBinary::open(&path).unwrap();
        assert!(bin.data_symbol("runtime.allgs").is_none());
        let child = Parker::start(&path);
        let pid = child.0.id();
        assert_eq!(load_bias(pid, &bin).unwrap(), 0);
        let r = validate_live(pid, &bin, 0).unwrap();
        check_report(&r, v, Variant::Stripped);
        assert_eq!(r.source, Some(OffsetsSource::Table), "go{v}");
        assert_eq!(r.checked, CHECKS.to_vec(), "go{v}: g0/m0 checks left out");
        let e = validate_live(pid, &bin, 0x1000).unwrap_err();
        assert!(matches!(e, BinaryError::LayoutMismatch { .. }), "{e}");
        drop(child);
    }
}

/// When the code does not show where the globals are (here: runtime.allgadd overwritten with
/// NOPs in a copy of a stripped parker), validation is skipped with the reason, not failed.
#[test]
fn stripped_is_skipped_not_failed() {
    let path = named("parker", "1.27.3", Variant::Stripped);
    let bin = GoBinary::open(&path).unwrap();
    let f = bin.function("runtime.allgadd").unwrap();
    let off = bin.vaddr_to_file_offset(f.addr).unwrap() as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[off..off + f.size as usize].fill(0x90);
    let mangled = GoBinary::from_bytes(bytes, &path).unwrap();
    let child = Parker::start(&path);
    let pid = child.0.id();
    assert_eq!(load_bias(pid, &mangled).unwrap(), 0);
    let r = validate_live(pid, &mangled, 0).unwrap();
    let why = r.skipped.as_deref().unwrap();
    assert!(
        why.contains("skipped") && why.contains("runtime.allg"),
        "{r:?}"
    );
    assert!(r.gs.is_empty() && r.ms.is_empty() && r.ps.is_empty());
    // The untouched binary is validated.
    assert!(validate_live(pid, &bin, 0).unwrap().skipped.is_none());
}

/// Wrong offsets (the 1.23 row on a 1.27 binary moves goid and status by 8) are caught.
#[test]
fn wrong_layout_is_caught() {
    let path = named("parker", "1.27.3", Variant::Default);
    let bin = GoBinary::open(&path).unwrap();
    let child = Parker::start(&path);
    let pid = child.0.id();
    let mut wrong = crate::binary::table_layout(23).unwrap();
    // 1.23's m.curg/m.p/m.id differ from 1.27's too.
    wrong.m_alllink = bin.runtime_layout().unwrap().m_alllink;
    let g0 = bin.data_symbol("runtime.g0").unwrap().addr;
    let m0 = bin.data_symbol("runtime.m0").unwrap().addr;
    let mem = Mem {
        remote: Remote::new(pid),
    };
    let mut r = LiveReport::default();
    let addrs = [
        g0,
        m0,
        bin.data_symbol("runtime.allgs").unwrap().addr,
        bin.data_symbol("runtime.allm").unwrap().addr,
        bin.data_symbol("runtime.allp").unwrap().addr,
        bin.data_symbol("runtime.gomaxprocs").unwrap().addr,
    ];
    let walked = walk(&mem, &wrong, addrs, &mut r);
    let problems = check(&r, g0, m0, &mem, &wrong);
    assert!(walked.is_err() || !problems.is_empty(), "{r:?}");
}

#[test]
fn no_such_process() {
    let bin = GoBinary::open(&named("parker", "1.27.3", Variant::Default)).unwrap();
    // Not position-independent: loaded at its link addresses, nothing to read.
    assert_eq!(load_bias(u32::MAX - 1, &bin).unwrap(), 0);
    let pie = GoBinary::open(&named("parker", "1.27.3", Variant::Pie)).unwrap();
    let e = load_bias(u32::MAX - 1, &pie).unwrap_err();
    assert!(matches!(e, BinaryError::Process { .. }), "{e}");
    let e = validate_live(u32::MAX - 1, &bin, 0).unwrap_err();
    assert!(matches!(e, BinaryError::Process { .. }), "{e}");
}
