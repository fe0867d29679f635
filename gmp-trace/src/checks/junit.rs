//! The JUnit XML report of `--junit FILE`: what CI systems (GitHub Actions' test reporters,
//! GitLab's `artifacts:reports:junit`, Jenkins) display. One `testsuite` per traced process,
//! one `testcase` per assertion, a `failure` with its message for each that failed.
use std::fmt::Write as _;

use super::{explain, show, who, Outcome};

/// The whole document.
pub fn render(outcomes: &[Outcome]) -> String {
    // Processes in the order their first outcome came (outcomes are by assertion, then process).
    let mut suites: Vec<(String, Vec<&Outcome>)> = Vec::new();
    for o in outcomes {
        let name = match &o.process {
            Some(p) => format!("{} (pid {})", exe_name(&p.exe), p.pid),
            None => who(&o.process),
        };
        match suites.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(o),
            None => suites.push((name, vec![o])),
        }
    }
    let failures = outcomes.iter().filter(|o| !o.ok).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"gmp-trace\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        outcomes.len()
    );
    for (name, cases) in &suites {
        let failed = cases.iter().filter(|o| !o.ok).count();
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\">",
            esc(name),
            cases.len()
        );
        if let Some(p) = &cases[0].process {
            let _ = writeln!(s, "    <properties>");
            let _ = writeln!(s, "      <property name=\"pid\" value=\"{}\"/>", p.pid);
            let _ = writeln!(
                s,
                "      <property name=\"exe\" value=\"{}\"/>",
                esc(&p.exe)
            );
            let _ = writeln!(s, "    </properties>");
        }
        for o in cases {
            testcase(&mut s, o);
        }
        let _ = writeln!(s, "  </testsuite>");
    }
    s.push_str("</testsuites>\n");
    s
}

fn testcase(s: &mut String, o: &Outcome) {
    let class = match &o.process {
        Some(p) => format!("gmp-trace.{}", exe_name(&p.exe)),
        None => "gmp-trace".to_string(),
    };
    let _ = write!(
        s,
        "    <testcase name=\"{}\" classname=\"{}\"",
        esc(&o.expr),
        esc(&class)
    );
    let value = o.value.map_or("no value".to_string(), |v| show(v, o.unit));
    if o.ok {
        let _ = writeln!(s, ">");
        let _ = writeln!(
            s,
            "      <system-out>{}</system-out>",
            esc(&format!("{} = {value}", o.key))
        );
    } else {
        let _ = writeln!(s, ">");
        let msg = explain(o);
        let _ = writeln!(
            s,
            "      <failure message=\"{}\" type=\"AssertionFailed\">{}</failure>",
            esc(&msg),
            esc(&format!("{}\n{}: {msg}", o.expr, who(&o.process)))
        );
    }
    let _ = writeln!(s, "    </testcase>");
}

fn exe_name(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// Text for an XML attribute or element: the five markup characters escaped, line breaks kept
/// (as references, so attribute values keep them too), and the control characters XML 1.0
/// cannot carry at all replaced by U+FFFD.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
