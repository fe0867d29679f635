//! Golden tests of the model and the exporters, from recordings of real runs kept in
//! tests/data/. No root needed: a recording replays through exactly the code a live trace uses.
//! The sample binaries are rebuilt with the same toolchain (Go builds are reproducible), so the
//! recorded code addresses resolve to the same function names.
//! `UPDATE_GOLDEN=1 cargo test --release -p gmp-trace-tests --test golden` rewrites the goldens.
use std::path::Path;
use std::process::Command;

use gmp_trace_tests::{build_sample, replay, scratch_dir, workspace_root, Variant};

fn check(name: &str, sample: &str, go: &str) {
    let data = workspace_root().join("tests/data");
    let rec = data.join(format!("{name}.gmpt"));
    let bin = build_sample(sample, go, Variant::Default);
    let dir = scratch_dir(&format!("golden-{name}"));
    let outs = [
        ("summary.json", "--summary-json"),
        ("events.jsonl", "-o"),
        ("graph.dot", "--graph"),
    ];
    let outputs: Vec<_> = outs
        .iter()
        .map(|(file, flag)| (*flag, dir.join(file)))
        .collect();
    let o = replay(&rec, &bin, &outputs);
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (file, _) in outs {
        let got = std::fs::read_to_string(dir.join(file)).unwrap();
        let golden = data.join(format!("{name}.{file}"));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 makes it)", golden.display()));
        if got != want {
            let diff = Command::new("diff")
                .arg("-u")
                .arg(&golden)
                .arg(dir.join(file))
                .output()
                .unwrap();
            panic!(
                "{} differs from its golden:\n{}",
                file,
                String::from_utf8_lossy(&diff.stdout)
                    .lines()
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[test]
fn fanout_go127() {
    check("fanout-go1.27.3", "fanout", "1.27.3");
}

#[test]
fn traced_go121() {
    check("traced-go1.21.13", "traced", "1.21.13");
}

#[test]
fn recordings_are_small() {
    for e in std::fs::read_dir(workspace_root().join("tests/data")).unwrap() {
        let p = e.unwrap().path();
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(
            len < 2 << 20,
            "{} is {len} bytes: keep test data small",
            p.display()
        );
        let _ = Path::new(&p);
    }
}
