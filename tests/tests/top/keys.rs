//! The full-screen view's keys and a launched program's output, driven in tmux as a person
//! would: `/` filters the panels by function; a picked creation site or wait reason opens its
//! goroutines' stacks (as `gmp-trace dump` prints them) with the row's count; Esc goes back; a
//! program launched under the full-screen view writes to a file, not over the panels; under
//! `--batch` its output goes to our stderr, the frames alone to stdout.
use super::*;

/// The number in the first column of the marked (`>`) row of the panel to the right of `after`
/// (the text of the row's line up to its box, e.g. "││" for the sites box), and the row.
fn marked_row(screen: &str, right_box: bool) -> Option<(usize, String)> {
    screen.lines().find_map(|l| {
        let cell = if right_box {
            l.split_once("││")?.1
        } else {
            l.strip_prefix('│')?
        };
        let row = cell.strip_prefix('>')?;
        let n = row.split_whitespace().next()?.parse().ok()?;
        Some((n, row.to_string()))
    })
}

/// Sends one key and lets the view read it alone (an Esc followed at once by another key
/// reads as Alt and that key).
fn key(tmux: &Tmux, k: &str) {
    tmux.run(&["send-keys", "-t", "top", k]);
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn slash_filters_the_panels_and_enter_shows_the_picked_rows_stacks() {
    require_bpf!();
    let (_target, pid) = start_leaky(false);
    let Some((tmux, _)) = Tmux::with_top(pid) else {
        return;
    };
    tmux.wait_for("both sites", |s| {
        s.contains("main.startPool") && s.contains("main.leak ")
    });
    key(&tmux, "/");
    tmux.run(&["send-keys", "-t", "top", "-l", "main.leak"]);
    tmux.wait_for("the filter being typed", |s| s.contains("/main.leak_"));
    key(&tmux, "Enter");
    // The pool's site does not pass; the leak's stays, and the status line says the filter.
    let s = tmux.wait_for("the filtered panels", |s| {
        !s.contains("main.startPool") && s.contains("filter \"main.leak\"")
    });
    assert!(
        s.contains("main.leak main.go:"),
        "the leak's site went:\n{s}"
    );
    assert!(
        s.contains("Goroutines: ") && s.contains(" with \"main.leak\""),
        "{s}"
    );
    // Paused, the panels and the read behind them hold still: the counts can be compared.
    key(&tmux, "p");
    let s = tmux.wait_for("the pause", |s| s.contains("PAUSED"));
    let (live, row) = marked_row(&s, true).unwrap_or_else(|| panic!("no picked site:\n{s}"));
    assert!(row.contains("main.leak main.go:"), "picked {row:?}");
    key(&tmux, "Enter");
    let s = tmux.wait_for("the site's stacks", |s| {
        s.contains("goroutines created at main.leak main.go:")
    });
    assert!(s.contains(&format!(": {live} goroutines at frame ")), "{s}");
    // Grouped like `gmp-trace dump --group`: every leaked goroutine in one block.
    assert!(
        s.contains(&format!("{live} goroutines [chan receive]")),
        "{s}"
    );
    assert!(s.contains("main.leaked(...)"), "{s}");
    assert!(s.contains("created by main.leak in goroutine "), "{s}");
    assert!(!s.contains("┌ Ps "), "the panels under the stacks:\n{s}");
    // One by one: as many goroutine headers as the count (the first screenful of them).
    key(&tmux, "g");
    let s = tmux.wait_for("one by one", |s| s.contains("(one by one)"));
    let headers = s.lines().filter(|l| l.starts_with("│goroutine ")).count();
    assert!(
        headers >= live.min(5),
        "{headers} goroutines shown of {live}:\n{s}"
    );
    key(&tmux, "Escape");
    let s = tmux.wait_for("the panels again", |s| s.contains("┌ Creation sites"));
    assert!(
        s.contains("filter \"main.leak\""),
        "Esc in the stacks cleared the filter:\n{s}"
    );
    // The goroutines panel: pick the chan receive wait and open it.
    key(&tmux, "Tab");
    for _ in 0..6 {
        if marked_row(&tmux.screen(), false).is_some_and(|(_, r)| r.contains("chan receive")) {
            break;
        }
        key(&tmux, "Down");
    }
    let s = tmux.screen();
    let (waiting, row) = marked_row(&s, false).unwrap_or_else(|| panic!("no pick:\n{s}"));
    assert!(row.contains("chan receive"), "picked {row:?}:\n{s}");
    // Under the filter the wait counts the leaked goroutines: the site's, and no pool worker.
    assert_eq!(waiting, live, "{s}");
    key(&tmux, "Enter");
    let s = tmux.wait_for("the wait's stacks", |s| {
        s.contains("goroutines waiting on chan receive")
    });
    assert!(
        s.contains(&format!(": {waiting} goroutines at frame ")),
        "{s}"
    );
    assert!(!s.contains("main.poolWorker"), "{s}");
    // q in the stacks goes back, not out; then Esc clears the filter, and q quits.
    key(&tmux, "q");
    tmux.wait_for("the panels after q", |s| s.contains("┌ Creation sites"));
    key(&tmux, "Escape");
    tmux.wait_for("the pool's site back", |s| s.contains("main.startPool"));
    key(&tmux, "?");
    let s = tmux.wait_for("the help box", |s| s.contains("this help"));
    for k in [
        "filter by function",
        "Enter",
        "Tab",
        "Esc/q back",
        "q in the stacks pane",
    ] {
        assert!(s.contains(k), "the help lacks {k:?}:\n{s}");
    }
    tmux.quit_to_shell();
    tmux.run(&["send-keys", "-t", "top", "echo quit-$((40+2))", "Enter"]);
    tmux.wait_for("the shell after q", |s| s.lines().any(|l| l == "quit-42"));
}

/// The pids whose parent is `pid` (from /proc/PID/stat: the field after the command name).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn chatty_leaky() -> std::path::PathBuf {
    build_sample("leaky", GO_VERSIONS[0], Variant::Default)
}

#[test]
fn a_launched_programs_output_goes_to_a_file_not_over_the_view() {
    require_bpf!();
    let Some(tmux) = Tmux::start(120, 40) else {
        return;
    };
    let cmd = format!(
        "POOL={POOL} LEAK_EVERY_MS=50 PRINT_EVERY_MS=20 {} top --interval 300ms -- {}",
        gmp_trace_bin().display(),
        chatty_leaky().display()
    );
    tmux.run(&["send-keys", "-t", "top", &cmd, "Enter"]);
    tmux.wait_for("the panels", |s| s.contains("main.leak "));
    // A second of "out N" / "err N" lines every 20 ms meanwhile.
    std::thread::sleep(Duration::from_millis(1000));
    let s = tmux.wait_for("a frame", |s| s.contains("main.leak "));
    let chatter = |l: &str| {
        l.split(|c: char| !c.is_ascii_alphanumeric())
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| (w[0] == "out" || w[0] == "err") && w[1].parse::<u64>().is_ok())
    };
    assert!(
        !s.lines().any(chatter),
        "the program wrote over the view:\n{s}"
    );
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].starts_with("gmp-trace top - leaky"), "{s}");
    // Every line between the title and the footer belongs to a box.
    let footer = lines
        .iter()
        .position(|l| l.starts_with("samples lost:"))
        .unwrap_or_else(|| panic!("no footer:\n{s}"));
    for l in &lines[1..footer] {
        assert!(
            l.starts_with(['│', '┌', '└']),
            "a line outside the boxes: {l:?}\n{s}"
        );
    }
    let path = lines[footer + 1]
        .split("program output: ")
        .nth(1)
        .and_then(|r| r.split(" - ").next())
        .unwrap_or_else(|| panic!("the status line names no output file:\n{s}"))
        .to_string();
    key(&tmux, "q");
    // top waits for the program it launched; Ctrl-C reaches the program.
    tmux.wait_for("the wait for the program", |s| {
        s.contains("waiting for leaky")
    });
    let s = tmux.screen();
    assert!(
        s.contains(&format!("gmp-trace top: program output: {path}")),
        "{s}"
    );
    tmux.run(&["send-keys", "-t", "top", "C-c"]);
    tmux.run(&["send-keys", "-t", "top", "echo done-$((40+2))", "Enter"]);
    tmux.wait_for("the shell", |s| s.lines().any(|l| l == "done-42"));
    let out = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let _ = std::fs::remove_file(&path);
    assert!(out.lines().any(|l| l == format!("ready {POOL}")), "{out}");
    for stream in ["out", "err"] {
        let n = out
            .lines()
            .filter(|l| l.starts_with(&format!("{stream} ")))
            .count();
        assert!(
            n >= 20,
            "{n} {stream} lines in a second and more at 20 ms:\n{out}"
        );
    }
}

#[test]
fn in_batch_mode_a_launched_programs_output_goes_to_stderr() {
    require_bpf!();
    let dir = gmp_trace_tests::scratch_dir("top-launch-batch");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut top = Command::new(gmp_trace_bin())
        .args(["top", "--batch", "-n", "2", "--interval", "300ms", "--"])
        .arg(chatty_leaky())
        .env("POOL", POOL.to_string())
        .env("PRINT_EVERY_MS", "20")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // After its frames top waits for the program (Ctrl-C at a terminal would end it).
    let start = Instant::now();
    while !std::fs::read_to_string(&err_path)
        .unwrap()
        .contains("waiting for leaky")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "top did not finish its frames"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in children_of(top.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is top's child, leaky.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
    }
    let status = top.wait().unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(status.success(), "top failed: {err}");
    // The frames alone on stdout; the program's two streams on stderr.
    assert_eq!(parse_frames(&out).len(), 2, "{out}");
    assert!(
        !out.lines()
            .any(|l| l.starts_with("out ") || l.starts_with("ready")),
        "{out}"
    );
    assert!(err.lines().any(|l| l == format!("ready {POOL}")), "{err}");
    assert!(
        err.lines().any(|l| l == "out 0") && err.lines().any(|l| l == "err 0"),
        "{err}"
    );
}
