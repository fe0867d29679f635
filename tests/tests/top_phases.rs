//! `gmp-trace top --batch` follows a program that changes over time: tests/go/phases runs two
//! phases of 1.5 s (40 goroutines waiting on a channel receive while main.burnFirst burns CPU,
//! then 40 others sleeping while main.burnSecond burns), and the frames must show the first
//! phase, then the second, never the first again: wait reasons, creation sites and the CPU
//! panel all move with the program.
use std::process::{Command, Stdio};

use gmp_trace_tests::{build_sample, gmp_trace_bin, require_bpf, Variant, GO_VERSIONS};

/// What a frame says about the phases.
#[derive(Debug, Default)]
struct Seen {
    chan_receive: usize,
    sleep: usize,
    /// The first row of "by function" in the CPU panel.
    top_function: Option<String>,
    /// Live goroutines of the sites main.startReceivers and main.startSleepers.
    receivers: usize,
    sleepers: usize,
}

impl Seen {
    fn phase(&self) -> Option<u8> {
        let top = self.top_function.as_deref();
        if self.chan_receive >= 40 && self.sleep < 40 && top == Some("main.burnFirst") {
            Some(1)
        } else if self.sleep >= 40 && self.chan_receive < 40 && top == Some("main.burnSecond") {
            Some(2)
        } else {
            None
        }
    }
}

fn frames(text: &str) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::new();
    let mut in_by_function = false;
    for line in text.lines() {
        if line.starts_with("gmp-trace top - ") {
            out.push(Seen::default());
            in_by_function = false;
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        let w: Vec<&str> = line.split_whitespace().collect();
        let count = w.first().and_then(|c| c.parse::<usize>().ok());
        match (count, &w[..]) {
            (Some(n), [_, "chan", "receive", ..]) => f.chan_receive = n,
            (Some(n), [_, "sleep", ..]) => f.sleep = n,
            (Some(n), [_, _, _, site, ..]) if *site == "main.startReceivers" => f.receivers = n,
            (Some(n), [_, _, _, site, ..]) if *site == "main.startSleepers" => f.sleepers = n,
            _ => {}
        }
        if line.trim() == "by function:" {
            in_by_function = true;
        } else if in_by_function {
            // "    97.3%     36  main.burnFirst"
            f.top_function = w.get(2).map(|s| s.to_string());
            in_by_function = false;
        }
    }
    out
}

#[test]
fn batch_frames_follow_the_programs_phases() {
    require_bpf!();
    let prog = build_sample("phases", GO_VERSIONS[0], Variant::Default);
    let out = Command::new(gmp_trace_bin())
        .args(["top", "--batch", "--interval", "400ms", "--"])
        .arg(&prog)
        .env("PHASE", "1500ms")
        .stdin(Stdio::null())
        .output()
        .expect("run gmp-trace top");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "top failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = frames(&text);
    let phases: Vec<Option<u8>> = seen.iter().map(Seen::phase).collect();
    let first_of = |p| phases.iter().position(|x| *x == Some(p));
    let last_of = |p| phases.iter().rposition(|x| *x == Some(p));
    let (Some(_), Some(last1), Some(first2)) = (first_of(1), last_of(1), first_of(2)) else {
        panic!("both phases should show, got {phases:?} from {seen:#?}:\n{text}");
    };
    assert!(last1 < first2, "phase 1 after phase 2: {phases:?}\n{text}");
    // The creation sites follow: the receivers are gone once the sleepers are there.
    let f1 = &seen[last1];
    assert_eq!((f1.receivers, f1.sleepers), (40, 0), "{f1:?}\n{text}");
    let f2 = &seen[first2];
    assert_eq!((f2.receivers, f2.sleepers), (0, 40), "{f2:?}\n{text}");
}
