//! Source positions against Go's own: the `frames` sample prints the return PCs of stacks it
//! takes (runtime.Callers) and the frames runtime.CallersFrames makes of them; our tables must
//! give the same frames for the same PCs, on every installed toolchain and build variant
//! (stripped binaries find their inline trees through moduledata alone).
use std::process::Command;

use super::super::test_support::{all_versions, named};
use super::super::GoBinary;
use super::*;
use gmp_trace_tests::Variant;

struct Stack {
    name: String,
    pcs: Vec<u64>,
    frames: Vec<(String, String, u32)>,
}

/// Runs the sample: its load bias (runtime main.main minus the file's) and its stacks.
fn go_stacks(bin_path: &std::path::Path, bin: &GoBinary) -> (u64, Vec<Stack>) {
    let out = Command::new(bin_path)
        .output()
        .expect("run the frames sample");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let first: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let main_main = bin.function("main.main").expect("main.main").addr;
    let bias = first["main_main"].as_u64().unwrap() - main_main;
    let stacks = lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Stack {
                name: v["name"].as_str().unwrap().to_string(),
                pcs: v["pcs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_u64().unwrap())
                    .collect(),
                frames: v["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| {
                        (
                            f["function"].as_str().unwrap().to_string(),
                            f["file"].as_str().unwrap().to_string(),
                            f["line"].as_u64().unwrap() as u32,
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    (bias, stacks)
}

/// Ours for one stack: runtime.Callers gives one PC per logical frame (an inlined call's
/// "PC" is its call site in the outer function, plus one), so each PC's innermost frame is
/// one of Go's frames; expanding a PC whole must give the frames of the PCs after it.
fn check_stack(lines: &Lines<'_>, bias: u64, s: &Stack, what: &str) -> usize {
    let ours: Vec<Vec<SourceFrame>> = s
        .pcs
        .iter()
        .map(|&pc| lines.frames(pc - bias - 1))
        .collect();
    let innermost: Vec<(String, String, u32)> = ours
        .iter()
        .map(|f| {
            let f = f
                .first()
                .unwrap_or_else(|| panic!("{what} {}: a pc in no function", s.name));
            (f.function.clone(), f.file.clone(), f.line)
        })
        .collect();
    assert_eq!(innermost, s.frames, "{what}: stack {}", s.name);
    let mut inlined = 0;
    let mut i = 0;
    while i < ours.len() {
        let whole: Vec<(String, String, u32)> = ours[i]
            .iter()
            .map(|f| (f.function.clone(), f.file.clone(), f.line))
            .collect();
        assert_eq!(
            whole,
            s.frames[i..i + whole.len()],
            "{what}: stack {}, the inlined frames at pc {:#x}",
            s.name,
            s.pcs[i]
        );
        assert!(ours[i][..whole.len() - 1].iter().all(|f| f.inlined));
        assert!(!ours[i][whole.len() - 1].inlined);
        inlined += whole.len() - 1;
        i += whole.len();
    }
    inlined
}

#[test]
fn same_frames_as_callers_frames() {
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            let path = named("frames", v, variant);
            let bin = GoBinary::open(&path).unwrap();
            let lines = bin.lines().unwrap();
            let (bias, stacks) = go_stacks(&path, &bin);
            let what = format!("go{v} {variant:?}");
            assert!(stacks.len() >= 7, "{what}: {} stacks", stacks.len());
            let inlined: usize = stacks
                .iter()
                .map(|s| check_stack(&lines, bias, s, &what))
                .sum();
            // inner and middle are inlined (into outer, and into the goroutine's closure).
            assert!(inlined >= 4, "{what}: only {inlined} inlined frames");
            let deep = stacks.iter().find(|s| s.name == "recursion").unwrap();
            assert!(
                deep.frames.len() > 200,
                "{what}: {} frames",
                deep.frames.len()
            );
        }
    }
}

#[test]
fn sp_delta_is_zero_at_entry_and_the_frame_inside() {
    let path = named("frames", gmp_trace_tests::GO_VERSIONS[0], Variant::Stripped);
    let bin = GoBinary::open(&path).unwrap();
    let lines = bin.lines().unwrap();
    let f = bin.function("main.record").unwrap();
    assert_eq!(lines.sp_delta(f.addr), Some(0));
    assert_eq!(lines.entry(f.addr + 5), Some(f.addr));
    // After the prologue (PUSHQ BP; MOVQ SP, BP; SUBQ $n, SP) the frame is its full size.
    let inside = (f.addr..f.end())
        .filter_map(|pc| lines.sp_delta(pc))
        .max()
        .unwrap();
    assert!(inside >= 16 && inside % 8 == 0, "frame size {inside}");
}

#[test]
fn garbage_gives_no_answer() {
    let layout = Layout {
        file_offset: 0,
        len: 64,
        funcname_off: 8,
        cu_off: 16,
        filetab_off: 24,
        pctab_off: 32,
        pcln_off: 40,
        nfunc: 1_000_000,
        min_lc: 1,
        go120: true,
        text_base: 0x1000,
        gofunc: None,
    };
    let tab = [0xffu8; 64];
    let lines = Lines::new(&tab, &layout, Some(&tab));
    for pc in [0, 0x1000, 0x1001, 0x10_0000, u64::MAX] {
        assert!(lines.frames(pc).is_empty());
        assert_eq!(lines.sp_delta(pc), None);
    }
    let mut p: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(uvarint(&mut p), None);
    let mut p: &[u8] = &[0x96, 0x01, 7];
    assert_eq!(uvarint(&mut p), Some(150));
    assert_eq!(p, &[7]);
}

#[test]
fn gofunc_from_moduledata_is_the_linkers_symbol() {
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Pie] {
            let bin = GoBinary::open(&named("frames", v, variant)).unwrap();
            let sym = ["go:func.*", "go.func.*"]
                .iter()
                .find_map(|n| bin.data_symbol(n))
                .unwrap_or_else(|| panic!("go{v} {variant:?}: no go:func.* symbol"));
            let layout = &bin.pclntab().unwrap().layout;
            assert_eq!(layout.gofunc, Some(sym.addr), "go{v} {variant:?}");
        }
    }
}

#[test]
fn generic_names_print_as_go_prints_them() {
    let p = |s: &str| print_name(Some(s.to_string()));
    assert_eq!(p("main.generic[go.shape.int]"), "main.generic[...]");
    assert_eq!(p("main.(*T[go.shape.string]).m"), "main.(*T[...]).m");
    assert_eq!(p("main.main"), "main.main");
    assert_eq!(p("odd]name["), "odd]name[");
    assert_eq!(print_name(None), "?");
}

/// FUNCDATA_WrapInfo: the wrapper a `go f(x)` statement compiles to (`main.main.gowrap1`, or
/// `main.main.func1` before Go 1.22) names `f`, as the runtime's startPCForTrace finds it, on
/// every release we support; `f` itself and main.main are no wrappers.
#[test]
fn go_statement_wrappers_name_the_function_they_call() {
    let calls = [
        ("main.main", "main.waitChan"),
        ("main.main", "main.waitMutex"),
        ("main.main", "main.waitRead"),
        ("main.spawnHere", "main.worker"),
    ];
    for v in all_versions() {
        for variant in [Variant::Default, Variant::Pie] {
            let bin = GoBinary::open(&named("blockspots", v, variant)).unwrap();
            let lines = bin.lines().unwrap();
            let entry = |n: &str| bin.function(n).unwrap_or_else(|| panic!("go{v}: {n}")).addr;
            let name = |pc: u64| bin.func_name_for_pc(pc).map(str::to_string);
            let mut wrappers = 0;
            for (caller, callee) in calls {
                assert_eq!(lines.wrapped(entry(callee)), None, "go{v} {callee}");
                // The statement's wrapper: a closure of the caller that calls the callee.
                let closures = (1..=4)
                    .flat_map(|i| [format!("{caller}.gowrap{i}"), format!("{caller}.func{i}")]);
                let found: Vec<String> = closures
                    .filter_map(|c| bin.function(&c).map(|f| (c, f.addr)))
                    .filter_map(|(_, addr)| {
                        // The binary's table of wrappers says what the line tables say.
                        assert_eq!(bin.wrapped(addr), lines.wrapped(addr), "go{v}");
                        bin.wrapped(addr)
                    })
                    .filter_map(name)
                    .collect();
                if found.iter().any(|f| f == callee) {
                    wrappers += 1;
                }
            }
            assert_eq!(
                wrappers,
                calls.len(),
                "go{v} {variant:?}: wrappers naming their callee"
            );
            assert_eq!(lines.wrapped(entry("main.main")), None, "go{v}");
        }
    }
}
