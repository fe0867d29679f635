//! docs/ci.md's GitHub Actions and GitLab CI jobs: parsed (PyYAML), checked for what CI needs
//! (artifacts, the JUnit report), and their build and trace commands run exactly as written on
//! a sample Go package with tests (tests/go/citest).
use std::path::{Path, PathBuf};
use std::process::Command;

use gmp_trace_tests::{
    gmp_trace_bin, go_binary, require_bpf, scratch_dir, workspace_root, GO_VERSIONS,
};
use serde_json::Value;

use super::{junit, python_json};

/// The YAML code blocks of docs/ci.md, parsed (PyYAML), as JSON.
fn ci_doc_jobs() -> Vec<Value> {
    const READ: &str = r#"
import json, re, sys, yaml
doc = open(sys.argv[1]).read()
print(json.dumps([yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)]))
"#;
    python_json(READ, &workspace_root().join("docs/ci.md"))
        .as_array()
        .unwrap()
        .clone()
}

/// Runs CI `commands` (as the job's shell would) in a fresh copy of the sample Go package, with
/// the job's environment, gmp-trace and Go on PATH and `sudo` as a pass-through (we are root).
fn run_ci_commands(name: &str, env: &Value, commands: &[String]) -> PathBuf {
    let dir = scratch_dir(name);
    let src = workspace_root().join("tests/go/citest");
    let o = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", src.display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success());
    let shims = dir.join(".shims");
    std::fs::create_dir_all(&shims).unwrap();
    std::os::unix::fs::symlink(gmp_trace_bin(), shims.join("gmp-trace")).unwrap();
    std::fs::write(shims.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(shims.join("sudo"))
        .status()
        .unwrap();
    assert!(chmod.success());
    let go_bin = go_binary(GO_VERSIONS[0]).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        shims.display(),
        go_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let target = workspace_root().join("target");
    for c in commands {
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-c", c])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", target.join("go-cache"))
            .env("GOPATH", target.join("go-path"));
        for (k, v) in env.as_object().into_iter().flatten() {
            cmd.env(k, v.as_str().unwrap());
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{name}: `{c}` failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    dir
}

/// What a CI job keeps: a Perfetto trace, the summary and a JUnit report with every assertion
/// passing.
fn check_ci_outputs(dir: &Path, asserts: usize) {
    let trace = std::fs::metadata(dir.join("trace.pftrace")).unwrap();
    assert!(trace.len() > 1000, "trace.pftrace is {} bytes", trace.len());
    let j = junit(&dir.join("report.xml"));
    assert_eq!(
        (j["tests"].as_u64(), j["failures"].as_u64()),
        (Some(asserts as u64), Some(0)),
        "{j}"
    );
    let exe = j["suites"][0]["props"]["exe"].as_str().unwrap();
    assert!(
        exe.ends_with("/pkg.test"),
        "traced {exe}, not the test binary"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(v["exit_code"], 0);
}

/// docs/ci.md's GitHub Actions and GitLab CI jobs: well-formed, with the artifacts and the
/// JUnit report wired, and their build and trace commands, exactly as written, run on a real
/// Go package with tests.
#[test]
fn ci_doc_jobs_run_as_written() {
    require_bpf!();
    let docs = ci_doc_jobs();
    assert_eq!(docs.len(), 2, "docs/ci.md should have two YAML jobs");

    let gh = &docs[0];
    // YAML 1.1 (PyYAML) reads the key `on` as true.
    assert!(gh["on"].is_array() || gh["true"].is_array(), "{gh}");
    let (_, job) = gh["jobs"].as_object().unwrap().iter().next().unwrap();
    assert!(job["runs-on"].as_str().unwrap().starts_with("ubuntu"));
    let steps = job["steps"].as_array().unwrap();
    let step = |id: &str| -> String {
        let s = steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}"));
        s["run"].as_str().unwrap().to_string()
    };
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("an upload-artifact step");
    assert_eq!(upload["if"], "always()");
    let paths = upload["with"]["path"].as_str().unwrap();
    assert!(
        paths.contains("trace.pftrace") && paths.contains("report.xml"),
        "{paths}"
    );
    let traced = step("traced-tests");
    let n_asserts = traced.matches("--assert ").count();
    assert!(
        n_asserts >= 3 && traced.contains("--junit report.xml"),
        "{traced}"
    );
    let dir = run_ci_commands(
        "assert-ci-github",
        &job["env"],
        &[step("build-tests"), traced],
    );
    check_ci_outputs(&dir, n_asserts);

    let gl = &docs[1];
    let (_, job) = gl.as_object().unwrap().iter().next().unwrap();
    let artifacts = &job["artifacts"];
    assert_eq!(artifacts["when"], "always");
    assert_eq!(artifacts["reports"]["junit"], "report.xml");
    let kept: Vec<&str> = artifacts["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        kept.contains(&"trace.pftrace") && kept.contains(&"report.xml"),
        "{kept:?}"
    );
    let script: Vec<String> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let n_asserts = script.iter().map(|c| c.matches("--assert ").count()).sum();
    let dir = run_ci_commands("assert-ci-gitlab", &job["variables"], &script);
    check_ci_outputs(&dir, n_asserts);
}
