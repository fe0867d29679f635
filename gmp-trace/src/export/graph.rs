//! `--graph FILE`: the scheduler graph as Graphviz DOT (`.dot`/`.gv`) or JSON (`.json`).
//! Nodes: goroutine groups (by start function), threads (Ms), processors (Ps). Edges: creates
//! (count), runs-on (runs, time), holds (acquires, time), steals_from (thief P -> victim P:
//! successful run-queue steals).
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::Symbolize;
use crate::model::views::start_name;
use crate::model::Model;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Json,
}

impl GraphFormat {
    pub fn from_path(p: &Path) -> Result<GraphFormat, String> {
        match p.extension().and_then(|e| e.to_str()) {
            Some("dot") | Some("gv") => Ok(GraphFormat::Dot),
            Some("json") => Ok(GraphFormat::Json),
            _ => Err(format!(
                "--graph {}: name the file *.dot (Graphviz) or *.json",
                p.display()
            )),
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Node {
    pub id: String,
    pub kind: &'static str,
    pub label: String,
    /// Goroutine groups: how many were created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns: Option<u64>,
}

pub fn build(m: &Model, sym: &dyn Symbolize) -> Graph {
    let gnode = |pc: u64| {
        if pc == 0 {
            "runtime".to_string()
        } else {
            format!("G:{}", start_name(sym, pc))
        }
    };
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String, &'static str), (u64, u64)> = BTreeMap::new();
    let add_g = |nodes: &mut BTreeMap<String, Node>, pc: u64, created: u64| {
        let id = gnode(pc);
        let label = if pc == 0 {
            "runtime (g0)".to_string()
        } else {
            start_name(sym, pc)
        };
        let n = nodes.entry(id.clone()).or_insert(Node {
            id: id.clone(),
            kind: "goroutines",
            label,
            count: Some(0),
        });
        *n.count.get_or_insert(0) += created;
        id
    };
    for (&(ppc, cpc), &n) in &m.graph.creates {
        let from = add_g(&mut nodes, ppc, 0);
        let to = add_g(&mut nodes, cpc, n);
        edges.entry((from, to, "creates")).or_default().0 += n;
    }
    for (&(spc, tid), &(runs, ns)) in &m.graph.runs_on {
        let from = add_g(&mut nodes, spc, 0);
        let to = thread_node(&mut nodes, m, tid);
        let e = edges.entry((from, to, "runs_on")).or_default();
        e.0 += runs;
        e.1 += ns;
    }
    for (&(tid, p), &(acq, ns)) in &m.graph.holds {
        let from = thread_node(&mut nodes, m, tid);
        let to = proc_node(&mut nodes, p);
        let e = edges.entry((from, to, "holds")).or_default();
        e.0 += acq;
        e.1 += ns;
    }
    for (&(thief, victim), &(n, _gs)) in &m.steal_pairs {
        if victim < 0 {
            continue; // began before tracing: no victim to draw
        }
        let [from, to] = [thief, victim].map(|p| proc_node(&mut nodes, p));
        edges.entry((from, to, "steals_from")).or_default().0 += n;
    }
    Graph {
        nodes: nodes.into_values().collect(),
        edges: edges
            .into_iter()
            .map(|((from, to, kind), (count, ns))| Edge {
                from,
                to,
                kind,
                count,
                ns: (!matches!(kind, "creates" | "steals_from")).then_some(ns),
            })
            .collect(),
    }
}

/// The node of thread `tid` (labelled with its M), added on first use; its id.
fn thread_node(nodes: &mut BTreeMap<String, Node>, m: &Model, tid: u32) -> String {
    let id = format!("M:{tid}");
    nodes.entry(id.clone()).or_insert_with(|| {
        let mid = m
            .threads
            .get(&tid)
            .and_then(|t| t.m)
            .map_or("M?".to_string(), |id| format!("M{id}"));
        Node {
            id: id.clone(),
            kind: "thread",
            label: format!("{mid} (tid {tid})"),
            count: None,
        }
    });
    id
}

/// The node of P `p`, added on first use; its id.
fn proc_node(nodes: &mut BTreeMap<String, Node>, p: i32) -> String {
    let id = format!("P:{p}");
    nodes.entry(id.clone()).or_insert(Node {
        id: id.clone(),
        kind: "proc",
        label: format!("P{p}"),
        count: None,
    });
    id
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn write(g: &Graph, format: GraphFormat, out: &mut dyn Write) -> io::Result<()> {
    match format {
        GraphFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, g)?;
            writeln!(out)
        }
        GraphFormat::Dot => {
            writeln!(
                out,
                "digraph gmp {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];"
            )?;
            for n in &g.nodes {
                let (shape, label) = match (n.kind, n.count) {
                    ("goroutines", Some(c)) if c > 0 => ("box", format!("{} ×{c}", n.label)),
                    ("goroutines", _) => ("box", n.label.clone()),
                    ("thread", _) => ("ellipse", n.label.clone()),
                    _ => ("diamond", n.label.clone()),
                };
                writeln!(
                    out,
                    "  {} [shape={shape}, label={}];",
                    dot_id(&n.id),
                    dot_id(&label)
                )?;
            }
            for e in &g.edges {
                let label = match e.ns {
                    Some(ns) => format!("{} {} ({:.3} ms)", e.kind, e.count, ns as f64 / 1e6),
                    None => format!("{} {}", e.kind, e.count),
                };
                let style = match e.kind {
                    "creates" => "solid",
                    "runs_on" => "dashed",
                    _ => "dotted",
                };
                writeln!(
                    out,
                    "  {} -> {} [label={}, style={style}];",
                    dot_id(&e.from),
                    dot_id(&e.to),
                    dot_id(&label)
                )?;
            }
            writeln!(out, "}}")
        }
    }
}
