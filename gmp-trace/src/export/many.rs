//! Outputs of a run that traces several processes at once (`--pid` repeated, `--all`): each
//! process has its own pipeline and model, and this module joins what they produce. Event
//! streams share one file through [`SharedOut`] (each process's writer pushes whole records at
//! its flushes, so lines and packets never interleave); the summary JSON becomes
//! `{"mode", "processes": [...], "not_traced": [...]}` with each process's usual keys plus its
//! identity; the graph gets every process's nodes under a `PID/` prefix and the process tree.
use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::graph::{Edge, Graph, Node};
use super::summary::Summary;
use crate::process::discover::ProcessIdentity;

/// One output shared by several writers on one thread.
pub type Shared = Rc<RefCell<Box<dyn Write>>>;

/// A writer's view of a [`Shared`] output: what it writes is held until its `flush`, which the
/// pipeline calls between events only, and then goes out in one piece. So each process's
/// records reach the file whole, and the held bytes are at most one drain interval's.
pub struct SharedOut {
    held: Vec<u8>,
    out: Shared,
}

impl SharedOut {
    pub fn new(out: Shared) -> SharedOut {
        SharedOut {
            held: Vec::new(),
            out,
        }
    }
}

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut out = self.out.borrow_mut();
        out.write_all(&self.held)?;
        self.held.clear();
        out.flush()
    }
}

impl Drop for SharedOut {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            // The pipeline flushes before it lets go; this only catches an error path.
            let _ = self.flush();
        }
    }
}

/// What one traced process left: who it was, its summary, and its graph if one was asked for.
pub struct ProcessReport {
    pub identity: ProcessIdentity,
    /// The nearest ancestor that was traced too (the process tree's edge).
    pub parent: Option<u32>,
    pub summary: Summary,
    pub graph: Option<Graph>,
    /// `--follow`: how long the process was held stopped at its exec while its probes went in.
    pub exec_held_ns: Option<u64>,
    /// Which image of its pid this report is in the run: 0 the first, 1 after its exec of a
    /// new image (traced again under `-f` or `--all`), ...
    pub image: u32,
}

/// A process that was selected but could not be traced, and why. `--follow`'s execs of a
/// non-Go image are one entry per executable: `pid` the first, `count` how many.
#[derive(Clone, Debug, Serialize)]
pub struct NotTraced {
    pub pid: u32,
    pub exe: String,
    pub reason: String,
    pub count: u64,
}

impl NotTraced {
    /// One process.
    pub fn one(pid: u32, exe: String, reason: String) -> NotTraced {
        NotTraced {
            pid,
            exe,
            reason,
            count: 1,
        }
    }
}

/// The combined summary: each process's usual keys plus its identity (`pid`, `exe`, `comm`,
/// `go_version`, `module_path`, `cgroup`, `container_id`, `ns_pid`, `parent_pid`).
pub fn summary_json(mode: &str, reports: &[ProcessReport], not_traced: &[NotTraced]) -> Value {
    let processes: Vec<Value> = reports.iter().map(process_json).collect();
    let mut top = Map::new();
    top.insert("mode".into(), Value::from(mode));
    top.insert("processes".into(), Value::Array(processes));
    top.insert(
        "not_traced".into(),
        serde_json::to_value(not_traced).unwrap_or(Value::Null),
    );
    Value::Object(top)
}

fn process_json(r: &ProcessReport) -> Value {
    let mut v = serde_json::to_value(&r.summary).unwrap_or_else(|_| Value::Object(Map::new()));
    if let Value::Object(m) = &mut v {
        let id = &r.identity;
        m.insert("pid".into(), Value::from(id.pid));
        m.insert("exe".into(), Value::from(id.exe.display().to_string()));
        m.insert("comm".into(), Value::from(id.comm.clone()));
        m.insert("go_version".into(), Value::from(id.go_version.clone()));
        m.insert("module_path".into(), Value::from(id.module_path.clone()));
        m.insert("cgroup".into(), Value::from(id.cgroup.clone()));
        m.insert("container_id".into(), Value::from(id.container_id.clone()));
        m.insert("ns_pid".into(), Value::from(id.ns_pid));
        m.insert("parent_pid".into(), Value::from(r.parent));
        if let Some(ns) = r.exec_held_ns {
            m.insert("exec_held_ns".into(), Value::from(ns));
        }
    }
    v
}

/// The line that opens a process's block in the human summary.
pub fn text_header(id: &ProcessIdentity) -> String {
    let module = id
        .module_path
        .as_deref()
        .map(|m| format!(", {m}"))
        .unwrap_or_default();
    let container = id
        .container_id
        .as_deref()
        .map(|c| format!(", container {}", &c[..c.len().min(12)]))
        .unwrap_or_default();
    format!(
        "\n=== pid {} {} ({}{module}{container}) ===\n",
        id.pid,
        id.exe.display(),
        id.go_version
    )
}

/// Every process's graph in one: node ids prefixed `PID/`, a `process` node per pid, and a
/// `parent_of` edge from each traced process to its traced children. A later image of a pid
/// (it exec'd and was traced again) is `PID.N` with an `execs` edge from the image before it.
pub fn merged_graph(reports: &[ProcessReport]) -> Graph {
    merge(reports.iter().map(|r| Part {
        identity: &r.identity,
        image: r.image,
        parent: r.parent,
        graph: r.graph.as_ref(),
    }))
}

/// One report's share of the merged graph.
struct Part<'a> {
    identity: &'a ProcessIdentity,
    image: u32,
    parent: Option<u32>,
    graph: Option<&'a Graph>,
}

/// How an image of a pid is named in the merged graph.
fn image_key(pid: u32, image: u32) -> String {
    match image {
        0 => pid.to_string(),
        n => format!("{pid}.{n}"),
    }
}

fn merge<'a>(parts: impl Iterator<Item = Part<'a>>) -> Graph {
    let mut g = Graph {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for part in parts {
        let pid = part.identity.pid;
        let key = image_key(pid, part.image);
        g.nodes.push(Node {
            id: format!("process:{key}"),
            kind: "process",
            label: match part.image {
                0 => format!("pid {pid} {}", part.identity.comm),
                n => format!(
                    "pid {pid} {} (image {}, after exec)",
                    part.identity.comm,
                    n + 1
                ),
            },
            count: None,
        });
        let from = match (part.image, part.parent) {
            (0, Some(parent)) => Some((format!("process:{parent}"), "parent_of")),
            (0, None) => None,
            (n, _) => Some((format!("process:{}", image_key(pid, n - 1)), "execs")),
        };
        if let Some((from, kind)) = from {
            g.edges.push(Edge {
                from,
                to: format!("process:{key}"),
                kind,
                count: 1,
                ns: None,
            });
        }
        let Some(sub) = part.graph else { continue };
        for n in &sub.nodes {
            g.nodes.push(Node {
                id: format!("{key}/{}", n.id),
                kind: n.kind,
                label: format!("{key}: {}", n.label),
                count: n.count,
            });
        }
        for e in &sub.edges {
            g.edges.push(Edge {
                from: format!("{key}/{}", e.from),
                to: format!("{key}/{}", e.to),
                kind: e.kind,
                count: e.count,
                ns: e.ns,
            });
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two writers' records reach the shared output whole, in the order they were flushed.
    #[test]
    fn shared_output_keeps_records_whole() {
        let buf: Rc<RefCell<Vec<u8>>> = Rc::default();
        struct Tap(Rc<RefCell<Vec<u8>>>);
        impl Write for Tap {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let shared: Shared = Rc::new(RefCell::new(Box::new(Tap(buf.clone()))));
        let mut a = SharedOut::new(shared.clone());
        let mut b = SharedOut::new(shared);
        a.write_all(b"{\"pid\":1,").unwrap();
        b.write_all(b"{\"pid\":2}\n").unwrap();
        a.write_all(b"\"x\":0}\n").unwrap();
        assert!(buf.borrow().is_empty(), "nothing goes out before a flush");
        b.flush().unwrap();
        a.flush().unwrap();
        assert_eq!(&*buf.borrow(), b"{\"pid\":2}\n{\"pid\":1,\"x\":0}\n");
    }

    #[test]
    fn merged_graph_prefixes_and_links_processes() {
        let id = |pid| ProcessIdentity {
            pid,
            exe: "/bin/x".into(),
            comm: "x".into(),
            go_version: "go1.27.3".into(),
            module_path: None,
            cgroup: None,
            container_id: None,
            ns_pid: None,
        };
        let sub = || Graph {
            nodes: vec![Node {
                id: "M:1".into(),
                kind: "thread",
                label: "M1".into(),
                count: None,
            }],
            edges: Vec::new(),
        };
        let (a, b, sub) = (id(10), id(11), sub());
        let part = |identity, image, parent| Part {
            identity,
            image,
            parent,
            graph: Some(&sub),
        };
        // 11 is 10's child; 11 then exec'd and was traced again.
        let g = merge(
            [
                part(&a, 0, None),
                part(&b, 0, Some(10)),
                part(&b, 1, Some(10)),
            ]
            .into_iter(),
        );
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "process:10",
                "10/M:1",
                "process:11",
                "11/M:1",
                "process:11.1",
                "11.1/M:1"
            ]
        );
        let edges: Vec<(&str, &str, &str)> = g
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
            .collect();
        assert_eq!(
            edges,
            [
                ("process:10", "process:11", "parent_of"),
                ("process:11", "process:11.1", "execs")
            ]
        );
        assert!(g.nodes[4].label.contains("after exec"), "{:?}", g.nodes[4]);
    }
}
