//! A traced process that replaces its image (execve) mid-trace. The exec raw tracepoint sends
//! a `phase::EXEC` event and the exec'd path in `ExecPath` pieces; in `--pid` mode every exec,
//! in launch mode every one after the launch itself, means the image the probes were planned
//! for is gone: tracing of the process ends there.
use gmp_trace_common::{phase, Event, EventKind, EXEC_PATH_CHUNK};

/// Where the session is with respect to an exec of a new image.
#[derive(Debug, Default)]
pub enum ExecWatch {
    /// Launch mode before the launch's own exec: the next exec is the traced image's.
    #[default]
    AwaitLaunch,
    /// The traced image runs: an exec replaces it.
    Running,
    /// An exec replaced the image; its path pieces are arriving.
    Replacing {
        at: Event,
        len: usize,
        path: Vec<u8>,
    },
    /// Done: the image was replaced, later events are the new image's.
    Replaced,
}

/// What the watch makes of one event.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// An ordinary event of the traced image.
    Pass,
    /// The launch's own exec: the traced image starts.
    Launched,
    /// An exec of a new image: the path pieces follow (the caller adds them when live).
    ImageReplaced,
    /// A path piece, more to come: kept in the recording only.
    Piece,
    /// The last path piece: the replacement is complete.
    PathComplete(Replacement),
    /// After the image was replaced: not the traced image's.
    Ignore,
}

/// The exec that ended the traced image.
#[derive(Clone, Debug, PartialEq)]
pub struct Replacement {
    pub ts: u64,
    pub tid: u32,
    pub pid: u32,
    /// The new executable, when it could be read (None: the process was gone already).
    pub path: Option<String>,
}

impl ExecWatch {
    pub fn new(launch: bool) -> ExecWatch {
        if launch {
            ExecWatch::AwaitLaunch
        } else {
            ExecWatch::Running
        }
    }

    pub fn replaced(&self) -> bool {
        matches!(self, ExecWatch::Replacing { .. } | ExecWatch::Replaced)
    }

    pub fn see(&mut self, e: &Event) -> Seen {
        let exec = e.kind == EventKind::Phase as u32 && e.arg0 == phase::EXEC;
        let is_piece = e.kind == EventKind::ExecPath as u32;
        // Loss reports stay true whatever the image.
        if e.kind == EventKind::Lost as u32 {
            return Seen::Pass;
        }
        match self {
            // The launch's own path: the command line said it already.
            ExecWatch::AwaitLaunch | ExecWatch::Running if is_piece => Seen::Piece,
            ExecWatch::AwaitLaunch if exec => {
                *self = ExecWatch::Running;
                Seen::Launched
            }
            ExecWatch::AwaitLaunch => Seen::Pass,
            ExecWatch::Running if exec => {
                *self = ExecWatch::Replacing {
                    at: *e,
                    len: 0,
                    path: Vec::new(),
                };
                Seen::ImageReplaced
            }
            ExecWatch::Running => Seen::Pass,
            ExecWatch::Replacing { at, len, path } if is_piece => {
                *len = e.p.max(0) as usize;
                if path.len() == e.goid as usize {
                    path.extend_from_slice(
                        &piece(e)[..EXEC_PATH_CHUNK.min(len.saturating_sub(path.len()))],
                    );
                }
                if path.len() < *len {
                    return Seen::Piece;
                }
                let r = Replacement {
                    ts: at.ts,
                    tid: at.tid,
                    pid: at.pid,
                    path: (*len > 0).then(|| String::from_utf8_lossy(path).into_owned()),
                };
                *self = ExecWatch::Replaced;
                Seen::PathComplete(r)
            }
            ExecWatch::Replacing { .. } | ExecWatch::Replaced => Seen::Ignore,
        }
    }
}

/// The path bytes one piece carries (all of them; the length says how many count).
fn piece(e: &Event) -> [u8; EXEC_PATH_CHUNK] {
    let mut b = [0u8; EXEC_PATH_CHUNK];
    for (i, w) in [e.m as u64, e.arg0, e.arg1, e.arg2].iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// The `ExecPath` events the exec probe sends for `path` after the exec event `at` (one with
/// length 0 when the path is unknown).
#[cfg(test)]
pub fn path_events(at: &Event, path: Option<&[u8]>) -> Vec<Event> {
    let path = path.unwrap_or_default();
    let base = Event {
        ts: at.ts,
        kind: EventKind::ExecPath as u32,
        tid: at.tid,
        pid: at.pid,
        p: path.len().min(i32::MAX as usize) as i32,
        ..Event::default()
    };
    if path.is_empty() {
        return vec![base];
    }
    path.chunks(EXEC_PATH_CHUNK)
        .enumerate()
        .map(|(i, c)| {
            let mut b = [0u8; EXEC_PATH_CHUNK];
            b[..c.len()].copy_from_slice(c);
            let w = |k: usize| u64::from_le_bytes(b[k * 8..k * 8 + 8].try_into().unwrap_or([0; 8]));
            Event {
                goid: (i * EXEC_PATH_CHUNK) as u64,
                m: w(0) as i64,
                arg0: w(1),
                arg1: w(2),
                arg2: w(3),
                ..base
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(ts: u64) -> Event {
        Event {
            ts,
            kind: EventKind::Phase as u32,
            tid: 7,
            pid: 7,
            arg0: phase::EXEC,
            ..Event::default()
        }
    }

    fn other(ts: u64) -> Event {
        Event {
            ts,
            kind: EventKind::GoCreate as u32,
            ..Event::default()
        }
    }

    #[test]
    fn launch_exec_then_replacement_with_a_long_path_round_trips() {
        let mut w = ExecWatch::new(true);
        assert_eq!(w.see(&other(1)), Seen::Pass);
        assert_eq!(w.see(&exec(2)), Seen::Launched);
        for p in path_events(&exec(2), Some(b"./execer")) {
            assert_eq!(w.see(&p), Seen::Piece, "the launch's own path");
        }
        assert_eq!(w.see(&other(3)), Seen::Pass);
        assert_eq!(w.see(&exec(4)), Seen::ImageReplaced);
        let path = "/tmp/a/rather/long/directory/name/for/the/new/image/prog-2".as_bytes();
        let pieces = path_events(&exec(4), Some(path));
        assert_eq!(pieces.len(), path.len().div_ceil(EXEC_PATH_CHUNK));
        let (last, first) = pieces.split_last().unwrap();
        for p in first {
            assert_eq!(w.see(p), Seen::Piece);
        }
        let want = Replacement {
            ts: 4,
            tid: 7,
            pid: 7,
            path: Some(String::from_utf8(path.to_vec()).unwrap()),
        };
        assert_eq!(w.see(last), Seen::PathComplete(want));
        assert_eq!(w.see(&other(5)), Seen::Ignore);
        assert_eq!(w.see(&exec(6)), Seen::Ignore);
        let lost = Event {
            kind: EventKind::Lost as u32,
            ..Event::default()
        };
        assert_eq!(w.see(&lost), Seen::Pass);
    }

    #[test]
    fn attach_mode_first_exec_replaces_and_an_unknown_path_is_none() {
        let mut w = ExecWatch::new(false);
        assert_eq!(w.see(&exec(2)), Seen::ImageReplaced);
        assert_eq!(w.see(&other(3)), Seen::Ignore, "events before the path");
        let pieces = path_events(&exec(2), None);
        assert_eq!(pieces.len(), 1);
        let want = Replacement {
            ts: 2,
            tid: 7,
            pid: 7,
            path: None,
        };
        assert_eq!(w.see(&pieces[0]), Seen::PathComplete(want));
    }

    #[test]
    fn a_path_of_exactly_one_piece() {
        let mut w = ExecWatch::new(false);
        w.see(&exec(2));
        let path = [b'x'; EXEC_PATH_CHUNK];
        let pieces = path_events(&exec(2), Some(&path));
        assert_eq!(pieces.len(), 1);
        match w.see(&pieces[0]) {
            Seen::PathComplete(r) => assert_eq!(r.path.unwrap().len(), EXEC_PATH_CHUNK),
            s => panic!("{s:?}"),
        }
    }
}
