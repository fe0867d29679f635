//! Bad input to the outputs and recordings of a real traced run: flipped bytes inside a
//! recording's events are found and named by offset (never replayed as events), a recording cut
//! short replays to its last whole block, version 1 recordings still replay, an output on a
//! full disk is a clear error that leaves the target alone, and an output path that is a
//! symbolic link planted by another user is refused (docs/formats.md, "Output files").
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gmp_trace_tests::{
    gmp_trace_bin, replay, require_bpf, scratch_dir, workspace_root, Sample, Variant, GO_VERSIONS,
};

/// fanout with this many workers: a recording of several blocks (each 1024 events).
const WORKERS: &str = "3000";
const BLOCK_EVENTS: u64 = 1024;

/// A traced fanout run recorded to `dir/run.gmpt`; returns the sample's binary.
fn record(dir: &Path) -> PathBuf {
    let s = Sample::build("fanout", GO_VERSIONS[0], Variant::Default);
    let run = s
        .trace_in(dir)
        .opts(["--record", dir.join("run.gmpt").to_str().unwrap()])
        .args([WORKERS])
        .no_output()
        .run();
    assert!(run.status.success(), "trace failed: {}", run.stderr);
    s.bin
}

/// The blocks of a version 2 recording: (offset, first event, events).
fn blocks(bytes: &[u8]) -> Vec<(usize, u64, u64)> {
    assert_eq!(&bytes[..8], b"GMPTREC2", "a version 2 recording");
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let mut at = 16 + u32_at(8) as usize;
    let (mut out, mut first) = (Vec::new(), 0);
    while &bytes[at..at + 4] == b"GMPB" {
        let n = u64::from(u32_at(at + 4));
        out.push((at, first, n));
        first += n;
        at += 16 + n as usize * 64;
    }
    assert_eq!(&bytes[at..at + 8], b"GMPTEND2", "footer after the blocks");
    out
}

fn stderr(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "panicked: {e}");
    e
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn flipped_bytes_are_found_and_named_by_offset() {
    require_bpf!();
    let dir = scratch_dir("rec-integrity-flip");
    let bin = record(&dir);
    let rec = dir.join("run.gmpt");
    let good = std::fs::read(&rec).unwrap();
    let blocks = blocks(&good);
    assert!(
        blocks.len() >= 4,
        "{} blocks: too few to test",
        blocks.len()
    );
    let full = dir.join("full.jsonl");
    let o = replay(&rec, &bin, &[("-o", &full)]);
    assert!(o.status.success(), "clean replay failed: {}", stderr(&o));
    let full = lines(&full);
    let bad = dir.join("bad.gmpt");
    let last = blocks.len() - 1;
    // Inside an event of the first, a middle and the last block; in an event's timestamp, kind
    // and last argument.
    for (b, within) in [(0, 16 + 8), (last / 2, 16 + 64 * 100 + 3), (last, 16 + 63)] {
        let (offset, first, n) = blocks[b];
        let mut bytes = good.clone();
        bytes[offset + within] ^= 0x04;
        std::fs::write(&bad, &bytes).unwrap();
        let out = dir.join(format!("bad-{b}.jsonl"));
        let o = replay(&bad, &bin, &[("-o", &out)]);
        let err = stderr(&o);
        assert!(!o.status.success(), "damage in block {b} not reported");
        for needle in [
            format!("at byte {offset}"),
            format!("block {b}, events {first}..={}", first + n - 1),
            "corrupt".to_string(),
        ] {
            assert!(err.contains(&needle), "{needle:?} missing: {err}");
        }
        // The outputs cover the verified events before the damage, and nothing of it on: a
        // prefix of the clean replay's events.
        let got = lines(&out);
        assert!(got.len() < full.len(), "block {b}: damaged events replayed");
        let common = got.iter().zip(&full).take_while(|(a, b)| a == b).count();
        assert!(
            common + 2 >= got.len(),
            "block {b}: output differs from the clean replay at line {common}"
        );
        if b == 0 {
            assert!(got.len() < 10, "events of block 0 replayed: {}", got.len());
        }
    }
}

#[test]
fn recording_cut_short_replays_to_its_last_whole_block() {
    require_bpf!();
    let dir = scratch_dir("rec-integrity-cut");
    let bin = record(&dir);
    let rec = dir.join("run.gmpt");
    let good = std::fs::read(&rec).unwrap();
    let blocks = blocks(&good);
    let (third, first, _) = blocks[2];
    let summary = |cut: usize, name: &str| {
        let p = dir.join(format!("{name}.gmpt"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let s = dir.join(format!("{name}.json"));
        let o = replay(&p, &bin, &[("--summary-json", &s)]);
        let err = stderr(&o);
        assert!(
            o.status.success(),
            "a recording cut short must replay: {err}"
        );
        assert!(err.contains("cut short"), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&s).unwrap()).unwrap();
        v
    };
    // Cut right after block 1, and halfway through block 2: the same replay, of blocks 0-1.
    let sharp = summary(third, "sharp");
    let ragged = summary(third + 16 + 64 * 500 + 17, "ragged");
    assert_eq!(sharp["events"], ragged["events"]);
    assert_eq!(sharp["goroutines"], ragged["goroutines"]);
    assert_eq!(first, 2 * BLOCK_EVENTS);
}

#[test]
fn version_1_recordings_still_replay() {
    // No BPF needed: the committed golden recordings are version 1.
    let data = workspace_root().join("tests/data");
    let rec = data.join("fanout-go1.27.3.gmpt");
    assert_eq!(&std::fs::read(&rec).unwrap()[..8], b"GMPTREC1");
    let dir = scratch_dir("rec-integrity-v1");
    let s = dir.join("summary.json");
    let o = replay(&rec, Path::new("/nonexistent"), &[("--summary-json", &s)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&s).unwrap()).unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("fanout-go1.27.3.summary.json")).unwrap())
            .unwrap();
    assert_eq!(v["events"], golden["events"]);
}

/// A traced fanout run with `opts`; the target's own output is checked by the caller.
fn trace(opts: &[&str]) -> Output {
    let s = Sample::build("fanout", GO_VERSIONS[0], Variant::Default);
    Command::new(gmp_trace_bin())
        .args(opts)
        .arg("-q")
        .arg("--")
        .arg(&s.bin)
        .arg("50")
        .output()
        .expect("run gmp-trace")
}

#[test]
fn outputs_on_a_full_disk() {
    require_bpf!();
    // /dev/full, and a 16 KiB tmpfs that a recording (~50 KiB) outgrows part-way.
    let small = scratch_dir("rec-integrity-full").join("mnt");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs as root");
    let rec = small.join("run.gmpt");
    let cases: [&[&str]; 4] = [
        &["-o", "/dev/full", "--format", "jsonl"],
        &["--record", "/dev/full"],
        &["--summary-json", "/dev/full"],
        &["--record", rec.to_str().unwrap()],
    ];
    let mut failures = Vec::new();
    for opts in cases {
        let o = trace(opts);
        let err = stderr(&o);
        let ok = !o.status.success()
            && err.contains("error:")
            && err.contains("No space left on device")
            // The target ran to its end, untouched: fanout prints what it started.
            && String::from_utf8_lossy(&o.stdout).contains("started");
        if !ok {
            failures.push(format!("{opts:?}: {:?}\n{err}", o.status));
        }
    }
    let _ = Command::new("umount").arg(&small).status();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A file that must survive, and a link to it owned by `owner`.
fn planted_link(dir: &Path, name: &str, owner: u32) -> (PathBuf, PathBuf) {
    let precious = dir.join(format!("{name}.precious"));
    std::fs::write(&precious, b"precious\n").unwrap();
    let link = dir.join(name);
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(owner), None).unwrap();
    (link, precious)
}

#[test]
fn output_paths_that_are_links() {
    require_bpf!();
    let dir = scratch_dir("rec-integrity-links");
    let nobody = 65534;
    for (flag, name) in [
        ("-o", "events.jsonl"),
        ("--record", "run.gmpt"),
        ("--summary-json", "summary.json"),
        ("--graph", "graph.dot"),
    ] {
        // Another user's link: refused before the target starts, its file untouched.
        let (link, precious) = planted_link(&dir, name, nobody);
        let o = trace(&[flag, link.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{flag}: a planted link was followed");
        assert!(
            err.contains("refusing") && err.contains("symbolic link"),
            "{flag}: {err}"
        );
        assert!(o.stdout.is_empty(), "{flag}: the target ran");
        assert_eq!(std::fs::read(&precious).unwrap(), b"precious\n");
        // Our own link is followed: the output lands in the file it names.
        std::fs::remove_file(&link).unwrap();
        let (link, precious) = planted_link(&dir, name, 0);
        let o = trace(&[flag, link.to_str().unwrap()]);
        assert!(o.status.success(), "{flag}: {}", stderr(&o));
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_ne!(std::fs::read(&precious).unwrap(), b"precious\n");
    }
    // Replay and profile open their outputs the same way.
    let (link, precious) = planted_link(&dir, "replayed.jsonl", nobody);
    let rec = workspace_root().join("tests/data/fanout-go1.27.3.gmpt");
    let o = replay(&rec, Path::new("/nonexistent"), &[("-o", &link)]);
    assert!(!o.status.success() && stderr(&o).contains("refusing"));
    let (plink, pprecious) = planted_link(&dir, "cpu.pb.gz", nobody);
    let s = Sample::build("fanout", GO_VERSIONS[0], Variant::Default);
    let o = Command::new(gmp_trace_bin())
        .args(["profile", "-d", "1s", "-o", plink.to_str().unwrap(), "--"])
        .arg(&s.bin)
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("refusing"));
    for p in [precious, pprecious] {
        assert_eq!(std::fs::read(&p).unwrap(), b"precious\n");
    }
    // An existing file of another user in a sticky shared directory (/tmp's case) is refused;
    // the same file in a directory of ours is simply replaced.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = shared.join("summary.json");
    std::fs::write(&theirs, b"theirs\n").unwrap();
    std::os::unix::fs::lchown(&theirs, Some(nobody), None).unwrap();
    let o = trace(&["--summary-json", theirs.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("sticky"));
    assert_eq!(std::fs::read(&theirs).unwrap(), b"theirs\n");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = trace(&["--summary-json", theirs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), nobody);
    assert_ne!(std::fs::read(&theirs).unwrap(), b"theirs\n");
}
