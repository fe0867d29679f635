//! Our tables against Go's: each installed toolchain's `runtime` sources are parsed with plain
//! text matching (constant blocks counted the way `iota` counts) and compared entry by entry.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::binary::test_support::all_versions;

/// (minor, GOROOT/src/runtime) of every installed toolchain.
fn runtimes() -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    for v in all_versions() {
        let go = gmp_trace_tests::go_binary(v);
        let o = Command::new(&go)
            .args(["env", "GOROOT"])
            .env("GOTOOLCHAIN", "local")
            .output()
            .expect("run go env GOROOT");
        assert!(o.status.success(), "go env GOROOT failed for {v}");
        let root = String::from_utf8(o.stdout).expect("utf-8 GOROOT");
        let minor: u32 = v
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("minor");
        out.push((minor, Path::new(root.trim()).join("src").join("runtime")));
    }
    assert!(!out.is_empty(), "no Go toolchain installed");
    out
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

/// The identifiers of the const block whose first line contains `first`, in iota order, up to
/// (not including) the first identifier starting with `stop` or the block's end.
fn iota_block(src: &str, first: &str, stop: &str) -> Vec<String> {
    let mut lines = src.lines().skip_while(|l| !l.contains(first));
    let mut out = Vec::new();
    let head = lines.next().expect("const block");
    out.push(head.split_whitespace().next().expect("ident").to_string());
    for l in lines {
        let t = l.trim();
        if t == ")" {
            break;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        let ident = t.split_whitespace().next().expect("ident");
        if !stop.is_empty() && ident.starts_with(stop) {
            break;
        }
        assert!(
            !t.contains('='),
            "explicit value in an iota block, the parser would miscount: {t}"
        );
        out.push(ident.to_string());
    }
    out
}

/// `ident: "text"` entries of the keyed array literal starting at `var <name> = [...]string{`.
fn keyed_strings(src: &str, name: &str) -> Vec<(String, String)> {
    let start = format!("var {name} = [...]string{{");
    let mut out = Vec::new();
    for l in src.lines().skip_while(|l| !l.starts_with(&start)).skip(1) {
        let t = l.trim();
        if t == "}" {
            break;
        }
        let (key, rest) = t.split_once(':').expect("key: value");
        let text = rest.trim().trim_end_matches(',');
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
        out.push((key.trim().to_string(), text.expect("quoted").to_string()));
    }
    assert!(!out.is_empty(), "{name} not found");
    out
}

/// The body of Go function `name` in `src`.
fn func_body<'a>(src: &'a str, name: &str) -> &'a str {
    let start = src
        .find(&format!("\nfunc {name}("))
        .unwrap_or_else(|| panic!("func {name} not found"));
    let body = &src[start..];
    &body[..body.find("\n}\n").expect("func end")]
}

#[test]
fn wait_reasons_match_every_toolchain() {
    for (minor, dir) in runtimes() {
        let src = read(&dir, "runtime2.go");
        let order = iota_block(&src, "waitReasonZero ", "");
        let texts = keyed_strings(&src, "waitReasonStrings");
        let go: Vec<&str> = order
            .iter()
            .map(|id| {
                let t = texts.iter().find(|(k, _)| k == id);
                t.unwrap_or_else(|| panic!("1.{minor}: no string for {id}"))
                    .1
                    .as_str()
            })
            .collect();
        assert_eq!(wait_reasons(minor), go.as_slice(), "Go 1.{minor}");
        assert_eq!(wait_reason(minor, 0), None);
        for (code, text) in go.iter().enumerate().skip(1) {
            assert_eq!(
                wait_reason(minor, code as u8),
                Some(*text),
                "1.{minor} #{code}"
            );
        }
        assert_eq!(
            wait_reason(minor, go.len() as u8),
            None,
            "1.{minor} past the end"
        );
    }
}

#[test]
fn g_status_names_match_every_toolchain() {
    for (minor, dir) in runtimes() {
        let consts = iota_block(&read(&dir, "runtime2.go"), "_Gidle = iota", "_Gscan");
        let names = keyed_strings(&read(&dir, "traceback.go"), "gStatusStrings");
        // Go's array: as long as the highest key + 1, "" in the holes.
        let mut go: Vec<&str> = Vec::new();
        for (key, text) in &names {
            let value = consts.iter().position(|c| c == key).expect("status const");
            if go.len() <= value {
                go.resize(value + 1, "");
            }
            go[value] = text;
        }
        for status in 0..20u32 {
            let want = go.get(status as usize).copied().unwrap_or("???");
            assert_eq!(g_status_name_in(minor, status), want, "1.{minor} {status}");
            assert_eq!(g_status_name_in(minor, status | G_SCAN), want);
        }
        assert_eq!(consts.iter().position(|c| c == "_Gwaiting"), Some(4));
        // The version-free lookup agrees wherever a release names the status.
        for (status, name) in go.iter().enumerate() {
            assert_eq!(g_status_name(status as u32), *name);
        }
    }
}

#[test]
fn p_status_names_match_every_toolchain() {
    for (minor, dir) in runtimes() {
        let consts = iota_block(&read(&dir, "runtime2.go"), "_Pidle = iota", "");
        assert_eq!(consts.len(), 5, "1.{minor}: {consts:?}");
        for (i, c) in consts.iter().enumerate() {
            let name = c.trim_start_matches("_P").trim_end_matches("_unused");
            assert_eq!(p_status_name(i as u32), name, "1.{minor}");
        }
        assert_eq!(p_status_name(5), "???");
    }
}

/// The per-release print rules, checked against the functions that hold them.
#[test]
fn print_rules_follow_every_toolchain() {
    for (minor, dir) in runtimes() {
        let tb = read(&dir, "traceback.go");
        let sys = func_body(&tb, "isSystemGoroutine");
        assert_eq!(
            !is_system_goroutine(minor, "runtime.corostart"),
            sys.contains("FuncID_corostart"),
            "1.{minor} corostart"
        );
        assert!(sys.contains("runtime_main"));
        let show = func_body(&tb, "showfuncinfo");
        assert_eq!(
            shows_frame(minor, "runtime.runFinalizers", true, false),
            show.contains("FuncID_runFinalizers"),
            "1.{minor} runFinalizers"
        );
        let exported = func_body(&tb, "isExportedRuntime");
        assert_eq!(
            is_exported_runtime(minor, "runtime.(*Func).Name"),
            exported.contains("rcvr"),
            "1.{minor} exported methods"
        );
        let want = match elision(minor) {
            Elision::FirstPhysical { max } => {
                let rt2 = read(&dir, "runtime2.go");
                assert!(rt2.contains(&format!("const _TracebackMaxFrames = {max}\n")));
                "print(\"...additional frames elided...\\n\")"
            }
            Elision::InnerOuter { inner, outer } => {
                assert!(tb.contains(&format!("tracebackInnerFrames = {inner}\n")));
                assert!(tb.contains(&format!("tracebackOuterFrames = {outer}\n")));
                "print(\"...\", elide, \" frames elided...\\n\")"
            }
        };
        assert!(tb.contains(want), "1.{minor}: no {want}");
        assert_eq!(elision_line(minor, 7).contains('7'), minor >= 21);
        assert_eq!(
            prints_parent_goid(minor),
            func_body(&tb, "printcreatedby1").contains("\" in goroutine \""),
            "1.{minor} created by ... in goroutine"
        );
        assert!(
            tb.contains("print(\"\\tgoroutine running on other thread; stack unavailable\\n\")")
        );
    }
}

#[test]
fn status_names_and_holes() {
    assert_eq!(g_status_name(0x1004), "waiting");
    assert_eq!(g_status_name(2), "running");
    assert_eq!(g_status_name(5), "");
    assert_eq!(g_status_name(12), "???");
    assert_eq!(g_status_name_in(25, 10), "???");
    assert_eq!(g_status_name_in(26, 10), "leaked");
}

#[test]
fn wait_reason_numbering_differs_by_release() {
    // "chan receive" moved: 14 until 1.25, 19 from 1.26.
    assert_eq!(wait_reason(19, 14), Some("chan receive"));
    assert_eq!(wait_reason(25, 14), Some("chan receive"));
    assert_eq!(wait_reason(26, 19), Some("chan receive"));
    assert_eq!(wait_reason(27, 14), Some("sleep"));
    assert_eq!(wait_reason(21, 32), None);
    assert_eq!(wait_reason(22, 32), Some("flushing proc caches"));
    assert_eq!(wait_reason(27, 255), None);
}

#[test]
fn system_goroutines_and_visible_frames() {
    assert!(!is_system_goroutine(27, "runtime.main"));
    assert!(is_system_goroutine(27, "runtime.gcBgMarkWorker"));
    assert!(is_system_goroutine(21, "runtime.corostart"));
    assert!(!is_system_goroutine(22, "runtime.corostart"));
    assert!(is_system_goroutine(19, "runtime.runfinq"));
    assert!(!is_system_goroutine(27, "main.worker"));

    assert!(!shows_frame(27, "runtime.gopark", false, false));
    assert!(shows_frame(27, "runtime.gopark", false, true));
    assert!(shows_frame(27, "runtime.Goexit", false, false));
    assert!(shows_frame(27, "runtime.gopanic", false, false));
    assert!(!shows_frame(27, "runtime.gopanic", true, false));
    assert!(!shows_frame(22, "runtime.(*Func).Name", false, false));
    assert!(shows_frame(23, "runtime.(*Func).Name", false, false));
    assert!(!shows_frame(23, "runtime.(*hmap).Get", false, false));
    assert!(!shows_frame(24, "runtime.runFinalizers", false, false));
    assert!(shows_frame(25, "runtime.runFinalizers", false, false));
    assert!(shows_frame(19, "main.main", true, false));
    assert!(!shows_frame(19, "nodot", true, false));

    assert!(wrapper_hidden(true, Some("main.T.M"), false));
    assert!(wrapper_hidden(true, None, false));
    assert!(!wrapper_hidden(true, Some("runtime.gopanic"), false));
    assert!(!wrapper_hidden(true, Some("main.T.M"), true));
    assert!(!wrapper_hidden(false, Some("main.T.M"), false));
}
