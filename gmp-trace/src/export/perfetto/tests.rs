//! Tests of the Perfetto writer. Pure layout checks decode the packets here; the `tp_*` tests
//! load the output into Perfetto's own trace processor (offline WebAssembly build driven by
//! tests/perfetto/tp.js) and compare what it reads with what the writer says it wrote. They
//! FAIL, saying to run `cargo xtask bootstrap`, when Node or the trace processor are missing.
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use gmp_trace_common::{phase, Event, EventKind};
use gmp_trace_tests::{trace_processor, trace_processor_raw, PERFETTO_IMPORT_PROBLEMS_SQL};
use prost::Message as _;
use serde_json::{Map, Value};

use super::proto::{TracePacket, CLOCK_MONOTONIC, TYPE_INSTANT, TYPE_SLICE_BEGIN, TYPE_SLICE_END};
use super::sim::{self, Sim, SimSymbols};
use super::{PerfettoStats, PerfettoWriter, TraceMeta};
use crate::binary::NoSymbols;

fn meta(go: &str) -> TraceMeta {
    TraceMeta {
        pid: sim::PID,
        image: 0,
        process_name: "sim".into(),
        go_version: go.into(),
        init_task_name: Some(Box::new(|addr| (addr == 0xa100).then(|| "main".to_owned()))),
    }
}

/// Writes `events` as a trace; returns the bytes and the writer's stats.
fn write(events: &[Event], go: &str) -> (Vec<u8>, PerfettoStats) {
    let mut w = PerfettoWriter::new(Vec::new(), meta(go))
        .unwrap()
        .keep_goroutine_stats();
    for e in events {
        w.event(e, &SimSymbols).unwrap();
    }
    // finish() only closes what is open: the counts do not change.
    let stats = w.stats();
    (w.finish().unwrap(), stats)
}

/// Splits the output into packets (each framed as a one-packet Trace), with timestamps made
/// absolute: MONOTONIC where the packet says so, else a delta on the sequence's clock.
fn packets(mut b: &[u8]) -> Vec<TracePacket> {
    let mut out = Vec::new();
    let mut clock = 0;
    while !b.is_empty() {
        assert_eq!(b[0], 0x0a, "every frame is Trace.packet");
        b = &b[1..];
        let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
        let mut p = TracePacket::decode(&b[..len]).unwrap();
        if let Some(ts) = p.timestamp {
            if p.timestamp_clock_id != Some(CLOCK_MONOTONIC) {
                clock += ts;
                p.timestamp = Some(clock);
            }
        }
        out.push(p);
        b = &b[len..];
    }
    out
}

/// Checks begin/end pairing per track in file order: every END closes an open slice, a track's
/// timestamps never go back, nothing stays open, and M/P tracks never nest slices.
fn check_nesting(pkts: &[TracePacket]) {
    let mut depth: HashMap<u64, (u32, u64)> = HashMap::new();
    for p in pkts {
        let Some(te) = &p.track_event else { continue };
        let track = te.track_uuid.unwrap();
        let ts = p.timestamp.unwrap();
        let d = depth.entry(track).or_default();
        if te.r#type == Some(TYPE_SLICE_BEGIN)
            || te.r#type == Some(TYPE_SLICE_END)
            || te.r#type == Some(TYPE_INSTANT)
        {
            assert!(
                ts >= d.1,
                "track {track:#x} went back in time: {ts} < {}",
                d.1
            );
            d.1 = ts;
        }
        match te.r#type {
            Some(TYPE_SLICE_BEGIN) => {
                d.0 += 1;
                assert_eq!(
                    d.0, 1,
                    "two slices open at once on track {track:#x} at {ts}"
                );
            }
            Some(TYPE_SLICE_END) => {
                assert_eq!(d.0, 1, "END without BEGIN on track {track:#x} at {ts}");
                d.0 -= 1;
            }
            _ => {}
        }
    }
    for (t, (d, _)) in depth {
        assert_eq!(d, 0, "slice left open on track {t:#x}");
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = gmp_trace_tests::workspace_root()
        .join("target")
        .join("perfetto-tests");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn rows_to_map(rows: &[Map<String, Value>], key: &str, val: &str) -> BTreeMap<i64, i64> {
    rows.iter().map(|r| (int(&r[key]), int(&r[val]))).collect()
}

#[test]
fn simulated_run_nests_and_closes() {
    let events: Vec<Event> = Sim::new(7, 40).take(20_000).collect();
    let (bytes, stats) = write(&events, "go1.25.5");
    let pkts = packets(&bytes);
    assert!(
        pkts.len() as u64 > stats.packets,
        "finish() adds the closing packets"
    );
    check_nesting(&pkts);
    assert_eq!(pkts[0].sequence_flags, Some(3));
    assert!(pkts[1..].iter().all(|p| p.sequence_flags == Some(2)));
    assert!(stats.flows_go > 0 && stats.flows_unblock > 0 && stats.flows_newm == 3);
    assert_eq!(stats.thread_tracks, 4);
    assert_eq!(stats.proc_tracks, 4);
    assert_eq!(stats.unknown_events, 0);
}

#[test]
fn wait_reasons_follow_the_go_version() {
    let e = Event {
        ts: 10,
        kind: EventKind::GoCreate as u32,
        tid: 1,
        pid: 1,
        p: 0,
        goid: 5,
        m: 0,
        ..Event::default()
    };
    let names = |go: &str, reason: u64| {
        let mut w = PerfettoWriter::new(Vec::new(), meta(go)).unwrap();
        w.event(&e, &NoSymbols).unwrap();
        let mut s = e;
        s.kind = EventKind::GoStatus as u32;
        s.ts = 20;
        s.arg0 = 1;
        s.arg1 = 4;
        s.arg2 = reason;
        w.event(&s, &NoSymbols).unwrap();
        let bytes = w.finish().unwrap();
        packets(&bytes)
            .into_iter()
            .filter_map(|p| p.interned_data)
            .flat_map(|i| i.event_names)
            .filter_map(|n| n.name)
            .filter(|n| n.starts_with("Waiting"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names("go1.25.5", 14), ["Waiting (chan receive)"]);
    assert_eq!(names("go1.26.6", 19), ["Waiting (chan receive)"]);
    assert_eq!(names("go1.26.6", 14), ["Waiting (sleep)"]);
    assert_eq!(names("go1.30.0", 14), ["Waiting (reason 14)"]);
    assert_eq!(names("go1.21.13", 0), ["Waiting"]);
}

/// 10M events through the writer into a sink that drops the bytes: the writer's state must
/// stay the size of what is alive, not of what happened.
#[test]
fn ten_million_events_in_bounded_memory() {
    struct Sink(u64);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // Debug builds are ~20x slower: a tenth of the events still shows the bound.
    let n: usize = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    let max_live = 200;
    let mut w = PerfettoWriter::new(Sink(0), meta("go1.25.5")).unwrap();
    let mut sim = Sim::new(42, max_live);
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    for (i, e) in sim.by_ref().take(n).enumerate() {
        w.event(&e, &SimSymbols).unwrap();
        if i % 1_000_000 == 0 {
            w.flush().unwrap();
            // Everything kept is per live G, M or P (plus fixed-size vocabularies).
            assert!(w.gs.len() <= max_live + 1, "{} goroutines held", w.gs.len());
            assert!(w.gs.values().all(|g| g.flows.len() <= 4));
        }
    }
    let elapsed = start.elapsed();
    let cpu = (thread_cpu_ns() - cpu_start) as f64 / 1e9;
    let stats = w.stats();
    assert!(stats.max_live_goroutines <= max_live + 1);
    assert!(
        w.gs.capacity() <= 4 * (max_live + 1),
        "capacity {}",
        w.gs.capacity()
    );
    assert_eq!((w.ms.len(), w.ps.len()), (4, 4));
    assert!(w.newm_flows.is_empty());
    assert!(w.wait_names.len() <= 1 && w.stw_names.len() <= 1);
    assert!(w.em.names_len() < 32, "fixed vocabulary only");
    assert!(stats.g_slices.is_empty(), "per-G stats are opt-in");
    let sink = w.finish().unwrap();
    eprintln!(
        "perfetto writer: {n} events in {:.2} s ({:.2} s on this thread's CPU: {:.2} M events/s, \
         generating them included), {:.1} MB written ({:.1} B/event), {} packets \
         ({} counter values), {} goroutines created",
        elapsed.as_secs_f64(),
        cpu,
        n as f64 / cpu / 1e6,
        sink.0 as f64 / 1e6,
        sink.0 as f64 / n as f64,
        stats.packets,
        stats.counter_values,
        stats.goroutine_tracks,
    );
    let start = Instant::now();
    let k = Sim::new(42, max_live).take(n).count();
    eprintln!(
        "(generating the {k} events alone: {:.2} s)",
        start.elapsed().as_secs_f64()
    );
    assert!(
        stats.goroutine_tracks > 10 * max_live as u64,
        "goroutines churned"
    );
}

// ---------- with the real trace processor ----------

/// One scalar from the first row.
fn one(rows: &[Map<String, Value>], col: &str) -> i64 {
    int(&rows[0][col])
}

#[test]
fn tp_reads_back_what_was_written() {
    let mut sim = Sim::new(3, 60);
    let mut events: Vec<Event> = sim.by_ref().take(30_000).collect();
    events.extend(sim.exit());
    let (bytes, stats) = write(&events, "go1.25.5");
    let path = scratch("simulated.pftrace");
    std::fs::write(&path, &bytes).unwrap();

    // Independent expectations from the events themselves.
    let first_ts = events.iter().map(|e| e.ts).min().unwrap();
    let executed: std::collections::HashSet<u64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Execute as u32)
        .map(|e| e.goid)
        .collect();
    let created_then_ran = events
        .iter()
        .filter(|e| e.kind == EventKind::GoCreate as u32 && executed.contains(&e.goid))
        .count() as i64;

    let q = trace_processor(
        &path,
        &[
            PERFETTO_IMPORT_PROBLEMS_SQL,
            // 1: G slices per thread, joined to `thread` by tid.
            "SELECT thread.tid AS tid, COUNT(*) AS n FROM slice \
             JOIN thread_track ON slice.track_id = thread_track.id \
             JOIN thread USING (utid) WHERE slice.name GLOB 'G*' GROUP BY thread.tid",
            // 2: P slices per P.
            "SELECT CAST(SUBSTR(t.name, 2) AS INT) AS p, COUNT(*) AS n FROM slice s \
             JOIN track t ON s.track_id = t.id JOIN track grp ON t.parent_id = grp.id \
             WHERE grp.name = 'Procs' GROUP BY t.name",
            // 3: state slices per goroutine (goid from the track name "G7 main.worker").
            "SELECT CAST(SUBSTR(t.name, 2, INSTR(t.name || ' ', ' ') - 2) AS INT) AS goid, \
             COUNT(*) AS n FROM slice s JOIN track t ON s.track_id = t.id \
             JOIN track grp ON t.parent_id = grp.id WHERE grp.name = 'Goroutines' GROUP BY t.id",
            // 4: flows by the kind of their source.
            "SELECT so.name AS kind, COUNT(*) AS n FROM flow f \
             JOIN slice so ON f.slice_out = so.id JOIN slice si ON f.slice_in = si.id \
             GROUP BY so.name ORDER BY so.name",
            // 5: counters.
            "SELECT t.name AS name, COUNT(*) AS n, MAX(c.value) AS max FROM counter c \
             JOIN counter_track t ON c.track_id = t.id GROUP BY t.name ORDER BY t.name",
            // 6: threads of the process, with their names.
            "SELECT thread.tid AS tid, thread.name AS name, process.pid AS pid, \
             process.name AS process FROM thread JOIN process USING (upid) \
             WHERE thread.tid != 0 ORDER BY thread.tid",
            // 7: times are MONOTONIC ns as written; nothing left unfinished.
            "SELECT MIN(ts) AS first, SUM(dur < 0) AS unfinished, COUNT(*) AS slices FROM slice",
            // 8: lanes.
            "SELECT t.name AS lane, COUNT(*) AS n FROM slice s JOIN track t ON s.track_id = t.id \
             WHERE t.name IN ('Startup', 'GC', 'STW') GROUP BY t.name ORDER BY t.name",
            // 9: flows from "go" end on the created goroutine's first Running slice.
            "SELECT COUNT(*) AS n FROM flow f JOIN slice so ON f.slice_out = so.id \
             JOIN slice si ON f.slice_in = si.id WHERE so.name = 'go' AND si.name = 'Running' \
             AND EXTRACT_ARG(so.arg_set_id, 'debug.goid') = \
             CAST(SUBSTR((SELECT name FROM track WHERE id = si.track_id), 2, \
             INSTR((SELECT name FROM track WHERE id = si.track_id) || ' ', ' ') - 2) AS INT)",
            // 10: M-track slices never nest (depth 0); instants may sit inside them.
            "SELECT MAX(depth) AS d FROM slice s JOIN thread_track tt ON s.track_id = tt.id \
             WHERE s.name GLOB 'G*'",
        ],
    );
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);

    let m_slices: BTreeMap<u32, u64> = rows_to_map(&q[1], "tid", "n")
        .into_iter()
        .map(|(k, v)| (k as u32, v as u64))
        .collect();
    assert_eq!(m_slices, stats.m_slices);
    let p_slices: BTreeMap<i32, u64> = rows_to_map(&q[2], "p", "n")
        .into_iter()
        .map(|(k, v)| (k as i32, v as u64))
        .collect();
    assert_eq!(p_slices, stats.p_slices);
    let g_slices: BTreeMap<u64, u64> = rows_to_map(&q[3], "goid", "n")
        .into_iter()
        .map(|(k, v)| (k as u64, v as u64))
        .collect();
    assert_eq!(g_slices, stats.g_slices);
    assert_eq!(g_slices.len() as u64, stats.goroutine_tracks);

    let flows: BTreeMap<String, i64> = q[4]
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_owned(), int(&r["n"])))
        .collect();
    assert_eq!(flows.get("go").copied(), Some(stats.flows_go as i64));
    assert_eq!(flows.get("go").copied(), Some(created_then_ran));
    assert_eq!(
        flows.get("unblock").copied(),
        Some(stats.flows_unblock as i64)
    );
    assert_eq!(flows.get("newm").copied(), Some(stats.flows_newm as i64));
    assert_eq!(flows.values().sum::<i64>(), stats.flows() as i64);
    assert_eq!(
        one(&q[9], "n"),
        created_then_ran,
        "go flows end on the new G's Running"
    );

    let counters: BTreeMap<String, (i64, f64)> = q[5]
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                (int(&r["n"]), r["max"].as_f64().unwrap()),
            )
        })
        .collect();
    for name in super::COUNTERS {
        assert!(
            counters.contains_key(name),
            "counter {name} missing: {counters:?}"
        );
    }
    // finish() writes every counter's final value once more.
    assert_eq!(
        counters.values().map(|c| c.0 as u64).sum::<u64>(),
        stats.counter_values + super::COUNTERS.len() as u64
    );
    assert_eq!(counters["Threads"].1, 4.0);
    assert_eq!(counters["GOMAXPROCS"].1, 4.0);
    assert_eq!(counters["Lost events"].1, stats.lost_events as f64);

    let threads: Vec<(i64, String, i64)> = q[6]
        .iter()
        .map(|r| {
            (
                int(&r["tid"]),
                r["name"].as_str().unwrap_or_default().to_owned(),
                int(&r["pid"]),
            )
        })
        .collect();
    let want: Vec<(i64, String, i64)> = (0..4)
        .map(|i| {
            let tid = i64::from(sim::PID) + i;
            (tid, format!("M{i} (tid {tid})"), i64::from(sim::PID))
        })
        .collect();
    assert_eq!(threads, want);
    assert_eq!(q[6][0]["process"], "sim");

    assert_eq!(
        one(&q[7], "first"),
        first_ts as i64,
        "MONOTONIC is the trace clock"
    );
    assert_eq!(one(&q[7], "unfinished"), 0);

    let lanes: BTreeMap<String, i64> = q[8]
        .iter()
        .map(|r| (r["lane"].as_str().unwrap().to_owned(), int(&r["n"])))
        .collect();
    assert_eq!(lanes["GC"], stats.gc_slices as i64);
    assert_eq!(lanes["STW"], stats.stw_slices as i64);
    // Startup: its slices plus the exit instant.
    assert_eq!(lanes["Startup"], stats.startup_slices as i64 + 1);
    assert_eq!(one(&q[10], "d"), 0);
}

/// A short run whose answers are known by construction (pid 100; m0 = tid 100, m1 = tid 101,
/// whose m.id is unknown on its first event).
fn known_run() -> Vec<Event> {
    use EventKind::*;
    let ev = |ts, kind: EventKind, tid: u32, m: i64, p: i32, goid: u64, a: [u64; 3]| Event {
        ts,
        kind: kind as u32,
        tid,
        pid: 100,
        p,
        goid,
        m,
        arg0: a[0],
        arg1: a[1],
        arg2: a[2],
    };
    let chan_receive_1_26 = 19;
    vec![
        ev(900, Phase, 100, 0, -1, 0, [phase::GCENABLE, 0, 0]),
        ev(1000, GoCreate, 100, 0, -1, 1, [0, sim::PC_RUNTIME_MAIN, 0]),
        ev(1010, AcquireP, 100, 0, 0, 0, [0, 0, 0]),
        ev(1020, Execute, 100, 0, 0, 1, [0; 3]),
        ev(1030, GoStatus, 100, 0, 0, 1, [1, 2, 0]),
        ev(1500, Phase, 100, 0, 0, 1, [phase::MAIN_MAIN, 0, 0]),
        ev(
            2000,
            GoCreate,
            100,
            0,
            0,
            10,
            [1, sim::PC_WORKER, sim::PC_MAIN_MAIN],
        ),
        ev(2100, MStart, 101, -1, -1, 0, [101, 0, 0]),
        ev(2110, AcquireP, 101, 1, 1, 0, [1, 0, 0]),
        ev(2200, Execute, 101, 1, 1, 10, [0; 3]),
        ev(
            2300,
            GoCreate,
            101,
            1,
            1,
            12,
            [10, sim::PC_CHILD, sim::PC_IN_WORKER],
        ),
        ev(2400, GoStatus, 101, 1, 1, 10, [2, 4, chan_receive_1_26]),
        ev(2410, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(2420, Execute, 101, 1, 1, 12, [0; 3]),
        ev(
            3000,
            GoCreate,
            100,
            0,
            0,
            11,
            [1, sim::PC_WORKER, sim::PC_MAIN_MAIN],
        ),
        ev(3500, GoStatus, 101, 1, 1, 10, [4, 1, 12 << 8]),
        ev(3600, GoExit, 101, 1, 1, 12, [0; 3]),
        ev(3605, GoStatus, 101, 1, 1, 12, [2, 6, 0]),
        ev(3610, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(3620, Execute, 101, 1, 1, 10, [0; 3]),
        ev(4000, GoExit, 101, 1, 1, 10, [0; 3]),
        ev(4010, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(8000, Execute, 101, 1, 1, 11, [0; 3]),
        ev(8500, GoExit, 101, 1, 1, 11, [0; 3]),
        ev(8510, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(10_000, Phase, 100, 0, 0, 1, [phase::EXIT, 0, 0]),
    ]
}

/// The SQL blocks of docs/perfetto.md marked `-- checked: NAME`, by name.
fn docs_queries() -> BTreeMap<String, String> {
    let doc = gmp_trace_tests::workspace_root()
        .join("docs")
        .join("perfetto.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let mut out = BTreeMap::new();
    for block in text.split("```sql\n").skip(1) {
        let sql = block.split("```").next().unwrap();
        if let Some(name) = sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- checked: "))
        {
            out.insert(name.trim().to_owned(), sql.to_owned());
        }
    }
    out
}

#[test]
fn tp_docs_queries_answer_on_a_known_run() {
    let mut m = meta("go1.26.6");
    m.pid = 100;
    let mut w = PerfettoWriter::new(Vec::new(), m).unwrap();
    for e in known_run() {
        w.event(&e, &SimSymbols).unwrap();
    }
    let path = scratch("known.pftrace");
    std::fs::write(&path, w.finish().unwrap()).unwrap();

    let docs = docs_queries();
    let names = ["longest-latency", "busiest-p", "created-by"];
    assert_eq!(docs.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut n = names.to_vec();
        n.sort_unstable();
        n
    });
    let mut sql: Vec<&str> = names.iter().map(|n| docs[*n].as_str()).collect();
    sql.push(PERFETTO_IMPORT_PROBLEMS_SQL);
    sql.push("SELECT tid, name FROM thread WHERE tid != 0 ORDER BY tid");
    sql.push(
        "SELECT si.ts AS ts, (SELECT name FROM track WHERE id = si.track_id) AS g, \
         EXTRACT_ARG(so.arg_set_id, 'debug.goid') AS goid, \
         EXTRACT_ARG(so.arg_set_id, 'debug.by_goid') AS by_goid \
         FROM flow f JOIN slice so ON f.slice_out = so.id JOIN slice si ON f.slice_in = si.id \
         WHERE so.name = 'unblock'",
    );
    sql.push(
        "SELECT s.name AS name, s.ts AS ts, s.dur AS dur FROM slice s \
         JOIN track t ON s.track_id = t.id WHERE t.name = 'Startup' ORDER BY s.ts",
    );
    sql.push(
        "SELECT s.name AS state FROM slice s JOIN track t ON s.track_id = t.id \
         WHERE t.name = 'G10 main.worker' ORDER BY s.ts",
    );
    let q = trace_processor(&path, &sql);

    // G11 waited from its creation (3000) until it ran (8000).
    assert_eq!(q[0][0]["goroutine"], "G11 main.worker");
    assert_eq!(q[0][0]["runnable_at"], 3000);
    assert_eq!(q[0][0]["latency_ns"], 5000);
    // P0 ran g1 from 1020 to the end (10000); P1 ran 200 + 1180 + 380 + 500.
    assert_eq!(q[1][0]["p"], "P0");
    assert_eq!(q[1][0]["busy_ns"], 10_000 - 1020);
    assert_eq!(q[1][1]["p"], "P1");
    assert_eq!(q[1][1]["busy_ns"], 200 + 1180 + 380 + 500);
    assert_eq!(q[1][1]["runs"], 4);
    let created: Vec<(Value, Value, Value)> = q[2]
        .iter()
        .map(|r| {
            (
                r["created_by"].clone(),
                r["start_fn"].clone(),
                r["goroutines"].clone(),
            )
        })
        .collect();
    assert_eq!(
        created,
        vec![
            ("main.main".into(), "main.worker".into(), 2.into()),
            (Value::Null, "runtime.main".into(), 1.into()),
            ("main.worker".into(), "main.child".into(), 1.into()),
        ]
    );
    assert!(q[3].is_empty(), "import problems: {:?}", q[3]);
    // m1's thread was named once its m.id showed up.
    let threads: Vec<(i64, &str)> = q[4]
        .iter()
        .map(|r| (int(&r["tid"]), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(threads, [(100, "M0 (tid 100)"), (101, "M1 (tid 101)")]);
    // g12 readied g10 at 3500; the arrow ends where g10 runs again.
    assert_eq!(q[5].len(), 1);
    assert_eq!(q[5][0]["ts"], 3620);
    assert_eq!(q[5][0]["g"], "G10 main.worker");
    // The wakeup's args (encoded ahead of the packet) name who woke whom.
    assert_eq!((int(&q[5][0]["goid"]), int(&q[5][0]["by_goid"])), (10, 12));
    let startup: Vec<(&str, i64, i64)> = q[6]
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), int(&r["ts"]), int(&r["dur"])))
        .collect();
    assert_eq!(
        startup,
        [
            ("gcenable", 900, 600),
            ("main.main", 1500, 8500),
            ("exit", 10_000, 0)
        ]
    );
    let states: Vec<&str> = q[7].iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        [
            "Runnable",
            "Running",
            "Waiting (chan receive)",
            "Runnable",
            "Running"
        ]
    );
}

#[test]
fn tp_loads_a_trace_cut_mid_packet_and_read_in_small_pieces() {
    let events: Vec<Event> = Sim::new(11, 30).take(3000).collect();
    let (bytes, stats) = write(&events, "go1.25.5");
    let full = scratch("cut-full.pftrace");
    std::fs::write(&full, &bytes).unwrap();
    // Cut inside a packet, two thirds in.
    let mut cut_at = bytes.len() * 2 / 3;
    let boundaries = frame_ends(&bytes);
    while boundaries.contains(&cut_at) {
        cut_at += 1;
    }
    let cut = scratch("cut.pftrace");
    std::fs::write(&cut, &bytes[..cut_at]).unwrap();
    let sql = [
        "SELECT COUNT(*) AS n, SUM(dur < 0) AS open FROM slice",
        "SELECT value FROM stats WHERE name = 'clock_sync_failure'",
    ];
    let whole = trace_processor_raw(&full, &sql, None);
    let part = trace_processor_raw(&cut, &sql, None);
    let pieces = trace_processor_raw(&full, &sql, Some(7));
    for r in [&whole, &part, &pieces] {
        assert!(r.parse_error.is_none(), "{:?}", r.parse_error);
        assert!(r.results.iter().all(|q| q.error.is_none()), "{r:?}");
    }
    let n = |r: &gmp_trace_tests::TraceQueries, col: &str| int(&r.results[0].rows[0][col]);
    let complete = n(&whole, "n");
    assert!(complete > 1000);
    assert_eq!(n(&whole, "open"), 0);
    // The cut trace has the slices of every whole packet before the cut (some still open).
    let before_cut = boundaries.iter().filter(|&&b| b < cut_at).count();
    assert!(before_cut > 0 && (before_cut as u64) < stats.packets);
    assert!(n(&part, "n") > complete / 2, "{part:?}");
    assert!(n(&part, "n") < complete);
    // Read 7 bytes at a time: the same trace.
    assert_eq!(pieces.results[0].rows, whole.results[0].rows);
    for r in [&whole, &part, &pieces] {
        assert_eq!(r.results[1].rows.len(), 1);
        assert_eq!(int(&r.results[1].rows[0]["value"]), 0);
    }
}

/// Offsets just past each framed packet.
fn frame_ends(mut b: &[u8]) -> Vec<usize> {
    let total = b.len();
    let mut out = Vec::new();
    while !b.is_empty() {
        b = &b[1..];
        let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
        b = &b[len..];
        out.push(total - b.len());
    }
    out
}

/// Events whose timestamps go backwards on one goroutine (readied on one CPU, run on another
/// whose event was stamped earlier) still give ordered slices.
#[test]
fn out_of_order_events_are_clamped_per_track() {
    let mut events = known_run();
    // g10's unblock at 3500 arrives, then its execute stamped 3400 (another CPU).
    let exec = events
        .iter_mut()
        .find(|e| e.kind == EventKind::Execute as u32 && e.goid == 10 && e.ts == 3620)
        .unwrap();
    exec.ts = 3400;
    let (bytes, stats) = write(&events, "go1.26.6");
    check_nesting(&packets(&bytes));
    assert!(stats.clamped_timestamps >= 1);
}

/// Real runs: the recordings in tests/data (Go 1.27 fan-out, Go 1.21 mixed workload) replayed
/// through the writer, read back by the trace processor and compared with the model's summary
/// of the same recording (the golden summary JSON). Symbols come from the sample rebuilt with the
/// same toolchain, as the golden tests do.
fn replay_recording(name: &str, sample: &str, go: &str) {
    use crate::source::recording::Replay;
    use crate::source::Sink;
    struct Collect(Vec<Event>);
    impl Sink for Collect {
        fn event(&mut self, e: &Event) {
            self.0.push(*e);
        }
        fn malformed(&mut self, _len: usize) {}
    }
    let data = gmp_trace_tests::workspace_root().join("tests").join("data");
    let bin = gmp_trace_tests::build_sample(sample, go, gmp_trace_tests::Variant::Default);
    let sym = crate::binary::GoBinary::open(&bin).unwrap();
    let replay = Replay::open(&data.join(format!("{name}.gmpt"))).unwrap();
    let header = replay.header.clone();
    let mut events = Collect(Vec::new());
    replay.run(&mut events).unwrap();
    let events = events.0;
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join(format!("{name}.summary.json"))).unwrap(),
    )
    .unwrap();

    let mut w = PerfettoWriter::new(
        Vec::new(),
        TraceMeta {
            pid: header.pid,
            image: 0,
            process_name: sample.to_owned(),
            go_version: header.go_version.clone(),
            init_task_name: None,
        },
    )
    .unwrap()
    .keep_goroutine_stats();
    for e in &events {
        w.event(e, &sym).unwrap();
    }
    let stats = w.stats();
    let bytes = w.finish().unwrap();
    check_nesting(&packets(&bytes));
    let path = scratch(&format!("{name}.pftrace"));
    std::fs::write(&path, &bytes).unwrap();

    let q = trace_processor(
        &path,
        &[
            PERFETTO_IMPORT_PROBLEMS_SQL,
            // 1
            "SELECT COUNT(*) AS n FROM track t JOIN track grp ON t.parent_id = grp.id \
             WHERE grp.name = 'Goroutines'",
            // 2
            "SELECT thread.tid AS tid, thread.name AS name, COUNT(slice.id) AS n FROM thread \
             JOIN thread_track USING (utid) LEFT JOIN slice ON slice.track_id = thread_track.id \
             AND slice.name GLOB 'G*' GROUP BY thread.tid ORDER BY thread.tid",
            // 3
            "SELECT so.name AS kind, COUNT(*) AS n FROM flow f JOIN slice so ON f.slice_out = so.id \
             GROUP BY so.name",
            // 4
            "SELECT s.name AS name FROM slice s JOIN track t ON s.track_id = t.id \
             WHERE t.name = 'Startup' ORDER BY s.ts",
            // 5
            "SELECT t.name AS name, c.value AS value FROM counter c \
             JOIN counter_track t ON c.track_id = t.id WHERE c.ts = (SELECT MAX(ts) FROM counter)",
            // 6
            "SELECT COUNT(*) AS n FROM slice s JOIN track t ON s.track_id = t.id \
             WHERE t.name GLOB 'G* main.*' AND s.name = 'Running' AND s.depth = 0",
        ],
    );
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);
    assert_eq!(
        one(&q[1], "n"),
        summary["goroutines_created"].as_i64().unwrap(),
        "one track per goroutine created"
    );
    // Threads: the model's list, named by m.id, with the writer's slice counts.
    let threads: Vec<(i64, String, i64)> = q[2]
        .iter()
        .map(|r| {
            (
                int(&r["tid"]),
                r["name"].as_str().unwrap().to_owned(),
                int(&r["n"]),
            )
        })
        .collect();
    let want: Vec<(i64, String, i64)> = summary["thread_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let tid = t["tid"].as_i64().unwrap();
            let n = stats.m_slices.get(&(tid as u32)).copied().unwrap_or(0) as i64;
            (tid, format!("M{} (tid {tid})", t["m"].as_i64().unwrap()), n)
        })
        .collect();
    assert_eq!(threads, want);
    let flows: BTreeMap<String, i64> = q[3]
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_owned(), int(&r["n"])))
        .collect();
    assert_eq!(flows.get("go").copied().unwrap_or(0), stats.flows_go as i64);
    assert_eq!(
        flows.get("unblock").copied().unwrap_or(0),
        stats.flows_unblock as i64
    );
    assert_eq!(
        flows.get("newm").copied().unwrap_or(0),
        stats.flows_newm as i64
    );
    let executed: std::collections::HashSet<u64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Execute as u32)
        .map(|e| e.goid)
        .collect();
    let created_then_ran = events
        .iter()
        .filter(|e| e.kind == EventKind::GoCreate as u32 && executed.contains(&e.goid))
        .count() as u64;
    assert_eq!(stats.flows_go, created_then_ran);
    // One newm arrow per M that started after a newm announced it (one made just before the
    // process exited may never start).
    let started_by_newm = summary["thread_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["created_by"].is_null())
        .count() as u64;
    assert_eq!(stats.flows_newm, started_by_newm);
    assert!(stats.flows_newm <= summary["events_by_kind"]["new_m"].as_u64().unwrap());
    // Startup: the same milestones as the model's timeline, packages named.
    let phases: Vec<String> = q[4]
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases.first().map(String::as_str), Some("exec"));
    assert!(phases.contains(&"main.main".to_owned()), "{phases:?}");
    assert_eq!(phases.last().map(String::as_str), Some("exit"));
    let inits: Vec<String> = phases
        .iter()
        .filter_map(|p| p.strip_prefix("init ").map(str::to_owned))
        .collect();
    let order: Vec<String> = summary["init_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inits, order, "init tasks in the model's order");
    // Goroutines by state at the end, as the model saw them.
    let at_end: BTreeMap<String, f64> = q[5]
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    for (state, n) in summary["states_at_end"].as_object().unwrap() {
        assert_eq!(
            at_end.get(&format!("Goroutines {state}")).copied(),
            Some(n.as_f64().unwrap()),
            "{state} at end: {at_end:?}"
        );
    }
    assert_eq!(at_end["Threads"], summary["threads"].as_f64().unwrap());
    assert_eq!(
        at_end["GOMAXPROCS"],
        summary["gomaxprocs"].as_f64().unwrap()
    );
    // Every user goroutine ran.
    let user = summary["goroutines_by_start_fn"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| f.starts_with("main."))
        .map(|(_, n)| n.as_i64().unwrap())
        .sum::<i64>();
    assert!(one(&q[6], "n") >= user);
}

#[test]
fn tp_real_recording_fanout_go127() {
    replay_recording("fanout-go1.27.3", "fanout", "1.27.3");
}

#[test]
fn tp_real_recording_traced_go121() {
    replay_recording("traced-go1.21.13", "traced", "1.21.13");
}

/// CPU time of the calling thread: a rate that other tests running alongside do not skew.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spinning slices on the M track (from acquirep's spinning flag or stealWork, to
/// resetspinning or releasep), a steal flow to the stolen goroutine's Running slice, and the
/// spinning and failed-steal counters, read back by the trace processor.
#[test]
fn tp_spinning_and_steals() {
    use EventKind::*;
    let ev = |ts, kind: EventKind, tid: u32, m: i64, p: i32, goid: u64, a: [u64; 3]| Event {
        ts,
        kind: kind as u32,
        tid,
        pid: sim::PID,
        p,
        goid,
        m,
        arg0: a[0],
        arg1: a[1],
        arg2: a[2],
    };
    let events = vec![
        ev(1000, GoCreate, 100, 0, -1, 1, [0, sim::PC_RUNTIME_MAIN, 0]),
        ev(1010, AcquireP, 100, 0, 0, 0, [0, 0, 0]),
        ev(1020, Execute, 100, 0, 0, 1, [0; 3]),
        ev(1030, GoStatus, 100, 0, 0, 1, [1, 2, 0]),
        ev(
            2000,
            GoCreate,
            100,
            0,
            0,
            10,
            [1, sim::PC_WORKER, sim::PC_MAIN_MAIN],
        ),
        ev(2050, MStart, 101, 1, -1, 0, [101, 0, 0]),
        // Handed P1 as a spinning M; schedule and stealWork continue the spell.
        ev(2060, AcquireP, 101, 1, 1, 0, [1, 1, 0]),
        ev(2070, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(2080, SpinStart, 101, 1, 1, 0, [0; 3]),
        ev(2100, Steal, 101, 1, 1, 10, [0, 1, 0]),
        ev(2110, SpinEnd, 101, 1, 1, 0, [0; 3]),
        ev(2120, Execute, 101, 1, 1, 10, [0; 3]),
        ev(2130, GoStatus, 101, 1, 1, 10, [1, 2, 0]),
        ev(3000, GoExit, 101, 1, 1, 10, [0; 3]),
        ev(3005, GoStatus, 101, 1, 1, 10, [2, 6, 0]),
        ev(3010, Schedule, 101, 1, 1, 0, [0; 3]),
        ev(3020, SpinStart, 101, 1, 1, 0, [0; 3]),
        ev(3100, ReleaseP, 101, 1, 1, 0, [0; 3]),
        ev(3110, MIdle, 101, 1, -1, 0, [0; 3]),
        ev(3200, StealFailed, 0, -1, -1, 0, [5, 5, 0]),
    ];
    let (bytes, stats) = write(&events, "go1.27.3");
    check_nesting(&packets(&bytes));
    assert_eq!((stats.spin_slices, stats.flows_steal), (2, 1));
    let path = scratch("spin-steal.pftrace");
    std::fs::write(&path, &bytes).unwrap();
    let q = trace_processor(
        &path,
        &[
            PERFETTO_IMPORT_PROBLEMS_SQL,
            "SELECT thread.tid AS tid, s.ts AS ts, s.dur AS dur FROM slice s \
             JOIN thread_track tt ON s.track_id = tt.id JOIN thread USING (utid) \
             WHERE s.name = 'spinning' ORDER BY s.ts",
            "SELECT so.ts AS from_ts, si.ts AS to_ts, \
             (SELECT name FROM track WHERE id = si.track_id) AS g, \
             EXTRACT_ARG(so.arg_set_id, 'debug.victim_p') AS victim, \
             EXTRACT_ARG(so.arg_set_id, 'debug.thief_p') AS thief \
             FROM flow f JOIN slice so ON f.slice_out = so.id JOIN slice si ON f.slice_in = si.id \
             WHERE so.name = 'steal'",
            "SELECT t.name AS name, MAX(c.value) AS max FROM counter c \
             JOIN counter_track t ON c.track_id = t.id \
             WHERE t.name IN ('Spinning Ms', 'Failed steal attempts') GROUP BY t.name \
             ORDER BY t.name",
        ],
    );
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);
    let spins: Vec<(i64, i64, i64)> = q[1]
        .iter()
        .map(|r| (int(&r["tid"]), int(&r["ts"]), int(&r["dur"])))
        .collect();
    assert_eq!(spins, [(101, 2060, 50), (101, 3020, 80)]);
    assert_eq!(q[2].len(), 1, "{:?}", q[2]);
    assert_eq!(
        (
            int(&q[2][0]["from_ts"]),
            int(&q[2][0]["to_ts"]),
            q[2][0]["g"].as_str().unwrap(),
            int(&q[2][0]["victim"]),
            int(&q[2][0]["thief"])
        ),
        (2100, 2120, "G10 main.worker", 0, 1)
    );
    let counters: Vec<(&str, f64)> = q[3]
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["max"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        counters,
        [("Failed steal attempts", 5.0), ("Spinning Ms", 1.0)]
    );
    // The synthetic counter event made no thread track.
    assert_eq!(stats.thread_tracks, 2);
}

/// `--stacks`: a stack is interned once on the sequence (its frames outermost first, shared
/// frames and names once), before or with the first event naming it; events whose layout
/// draws nothing for them do not ask for it; a lost stack gets no callstack.
#[test]
fn callstacks_are_interned_once_and_named_by_their_events() {
    use crate::export::stacks::StackFrame;
    let frame = |f: &str, line, pc| StackFrame {
        function: f.into(),
        file: "main.go".into(),
        line,
        inlined: false,
        pc,
    };
    // Innermost first, as the pipeline gives them; stack 3 is lost.
    let stack_of = |id: u32| match id {
        3 => None,
        _ => Some(vec![
            frame(&format!("main.leaf{id}"), 10 + id, 0x1000 + u64::from(id)),
            frame("main.main", 5, 0x2000),
        ]),
    };
    let mut w = PerfettoWriter::new(Vec::new(), meta("go1.27.3")).unwrap();
    let mut asked = HashMap::<u32, u32>::new();
    for e in Sim::new(3, 40).take(20_000) {
        let id = (e.ts % 4) as u32;
        w.set_stack(id, || {
            *asked.entry(id).or_default() += 1;
            stack_of(id)
        });
        w.event(&e, &SimSymbols).unwrap();
    }
    assert!(
        asked.values().all(|&n| n == 1),
        "each stack made once: {asked:?}"
    );
    let pkts = packets(&w.finish().unwrap());
    let (mut names, mut frames, mut stacks) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut named = HashMap::<u64, usize>::new();
    for p in &pkts {
        if let Some(d) = &p.interned_data {
            for s in &d.function_names {
                assert!(names
                    .insert(s.iid.unwrap(), s.str.clone().unwrap())
                    .is_none());
            }
            for f in &d.frames {
                assert_eq!(f.mapping_id, Some(1));
                assert!(frames.insert(f.iid.unwrap(), f.clone()).is_none());
            }
            for c in &d.callstacks {
                assert!(stacks.insert(c.iid.unwrap(), c.frame_ids.clone()).is_none());
            }
            assert!(d.mappings.len() <= 1 && d.mapping_paths.len() <= 1);
        }
        if let Some(iid) = p.track_event.as_ref().and_then(|e| e.callstack_iid) {
            assert!(
                stacks.contains_key(&iid),
                "callstack {iid} interned before use"
            );
            *named.entry(iid).or_default() += 1;
        }
    }
    assert_eq!(stacks.len(), 3, "stacks 0, 1 and 2; the lost one has none");
    assert_eq!(names.len(), 4, "main.leaf0..2 and main.main, once each");
    for ids in stacks.values() {
        let fs: Vec<(&str, u32)> = ids
            .iter()
            .map(|i| {
                (
                    names[&frames[i].function_name_id.unwrap()].as_str(),
                    frames[i].line_number.unwrap(),
                )
            })
            .collect();
        assert_eq!(fs[0], ("main.main", 5), "outermost first: {fs:?}");
        assert!(fs[1].0.starts_with("main.leaf"));
    }
    assert!(
        named.len() == 3 && named.values().all(|&n| n > 10),
        "{named:?}"
    );
}
