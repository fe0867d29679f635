//! CPU profiles in pprof's format (google/pprof proto/profile.proto, gzip-compressed), the file
//! `go tool pprof` opens: the sampler's stacks become samples over shared Location and Function
//! tables, shaped like the profiles Go's runtime/pprof writes (two sample types, samples/count
//! and cpu/nanoseconds; one Location per pc with its inlined calls as extra Lines; one Mapping
//! for the binary). Each sample also carries who ran it, as labels `go tool pprof -tags`,
//! `-tagfocus` and `-tagshow` read: `goid`, `p` and `m` as numeric labels (so that
//! `-tagfocus goid=N` selects goroutine N: pprof reads a number there as a numeric filter and
//! never matches it against string labels) and `start_function` as a string label.
//!
//! The writer is a pure function of [`CpuProfile`], so it is tested without root, against the
//! real `go tool pprof`.
use std::io::Write;
use std::sync::Arc;

use prost::Message as _;

use crate::fasthash::FastMap;
use crate::model::dump::Frame;

/// A CPU profile as the sampler hands it over.
#[derive(Clone, Debug, Default)]
pub struct CpuProfile {
    pub samples: Vec<ProfileSample>,
    /// Nanoseconds of CPU time one sample stands for: 1e9 / the sample rate in Hz.
    pub period_ns: i64,
    /// How long the profile was collected.
    pub duration_ns: i64,
    /// When collection started (CLOCK_REALTIME, ns since the Unix epoch).
    pub time_nanos: i64,
    /// The profiled executable's path: the mapping's filename, shown as `File:` by pprof.
    pub binary: String,
    /// Its build id (Go's or the GNU note), shown as `Build ID:`; empty when unknown.
    pub build_id: String,
    /// Free-text notes kept in the profile (`go tool pprof -comments`): lost samples say so here.
    pub comments: Vec<String>,
}

/// Samples taken at one stack by one goroutine on one thread and P.
#[derive(Clone, Debug, Default)]
pub struct ProfileSample {
    /// Innermost first, inlined calls as frames of their own (as `model::dump` holds them).
    pub frames: Arc<[Frame]>,
    /// 0 when the thread ran no goroutine (g0, a non-Go thread): the sample gets no goid label.
    pub goid: u64,
    pub start_function: Option<Arc<str>>,
    /// p.id, negative when the thread held no P (no `p` label then).
    pub p: i32,
    /// m.id, negative when unknown (no `m` label then).
    pub m: i64,
    /// How many samples this entry stands for.
    pub count: i64,
}

/// Writes `p` gzip-compressed, as `go tool pprof` expects it on disk.
pub fn write_cpu_profile(p: &CpuProfile, w: &mut dyn Write) -> std::io::Result<()> {
    let bytes = build_profile(p).encode_to_vec();
    // Go's runtime/pprof compresses at BestSpeed too: profiles are written while the target
    // runs, and the file is small either way.
    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

/// The profile message for `p` (what [`write_cpu_profile`] compresses).
pub fn build_profile(p: &CpuProfile) -> Profile {
    let mut b = Builder::default();
    b.strings.intern(""); // string_table[0] must be "".
    let samples_count = b.value_type("samples", "count");
    let cpu_ns = b.value_type("cpu", "nanoseconds");
    let keys = LabelKeys {
        goid: b.strings.intern("goid"),
        start_function: b.strings.intern("start_function"),
        p: b.strings.intern("p"),
        m: b.strings.intern("m"),
        id_unit: b.strings.intern(ID_UNIT),
    };
    for s in &p.samples {
        b.add_sample(s, &keys, p.period_ns);
    }
    let mapping = Mapping {
        id: MAPPING_ID,
        memory_start: b.pc_range.map_or(0, |(lo, _)| lo),
        memory_limit: b.pc_range.map_or(0, |(_, hi)| hi.saturating_add(1)),
        file_offset: 0,
        filename: b.strings.intern(&p.binary),
        build_id: b.strings.intern(&p.build_id),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    };
    let comment = p.comments.iter().map(|c| b.strings.intern(c)).collect();
    Profile {
        comment,
        sample_type: vec![samples_count, cpu_ns.clone()],
        sample: b.samples,
        mapping: vec![mapping],
        location: b.locations,
        function: b.functions,
        string_table: b.strings.table,
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_ns,
        period_type: Some(cpu_ns),
        period: p.period_ns,
        ..Profile::default()
    }
}

/// The one mapping: the executable. Shared libraries and the vdso are not told apart (the
/// sampler symbolizes Go code only), so every location points here.
const MAPPING_ID: u64 = 1;

/// The unit of the numeric labels. Without one, pprof drops a label whose number is 0 (P 0,
/// M 0: proto3 leaves the zero out, and pprof takes a label with neither string, number nor
/// unit for an empty one). A unit pprof does not know is shown as a bare number, and
/// `-tagfocus goid=5` (no unit) still matches it.
const ID_UNIT: &str = "id";

/// String-table indexes of the label keys, and of the unit of the numeric ones.
struct LabelKeys {
    goid: i64,
    start_function: i64,
    p: i64,
    m: i64,
    id_unit: i64,
}

/// What makes two samples one: the same stack (by content) and the same labels.
#[derive(PartialEq, Eq, Hash)]
struct SampleKey {
    stack: u32,
    goid: u64,
    start_function: i64,
    p: i32,
    m: i64,
}

/// The tables under construction. Borrows every string from the input, so interning allocates
/// only the table itself.
#[derive(Default)]
struct Builder<'a> {
    strings: Strings<'a>,
    functions: Vec<Function>,
    function_ids: FastMap<(&'a str, &'a str), u64>,
    locations: Vec<Location>,
    location_ids: FastMap<(u64, Vec<(u64, i64)>), u64>,
    /// Stacks as location ids, by content.
    stacks: Vec<Vec<u64>>,
    stack_ids: FastMap<Vec<u64>, u32>,
    /// Stack ids by the frames' allocation: the sampler interns stacks, so most samples share
    /// their `Arc<[Frame]>` with many others and skip symbol work entirely. The address is
    /// stable and unique while `p` is borrowed.
    by_arc: FastMap<(usize, usize), u32>,
    samples: Vec<Sample>,
    sample_ids: FastMap<SampleKey, usize>,
    /// The lowest and highest pc seen: the mapping's range.
    pc_range: Option<(u64, u64)>,
}

impl<'a> Builder<'a> {
    fn value_type(&mut self, ty: &'a str, unit: &'a str) -> ValueType {
        ValueType {
            r#type: self.strings.intern(ty),
            unit: self.strings.intern(unit),
        }
    }

    fn add_sample(&mut self, s: &'a ProfileSample, keys: &LabelKeys, period_ns: i64) {
        let stack = self.stack(&s.frames);
        let key = SampleKey {
            stack,
            goid: s.goid,
            start_function: s
                .start_function
                .as_deref()
                .map_or(0, |f| self.strings.intern(f)),
            p: s.p,
            m: s.m,
        };
        if let Some(&i) = self.sample_ids.get(&key) {
            let v = &mut self.samples[i].value;
            v[0] = v[0].saturating_add(s.count);
            v[1] = v[0].saturating_mul(period_ns);
            return;
        }
        let num = |key: i64, num: i64| Label {
            key,
            num,
            num_unit: keys.id_unit,
            str: 0,
        };
        let mut label = Vec::with_capacity(4);
        if key.goid != 0 {
            label.push(num(keys.goid, i64::try_from(key.goid).unwrap_or(i64::MAX)));
        }
        if key.start_function != 0 {
            label.push(Label {
                key: keys.start_function,
                str: key.start_function,
                ..Label::default()
            });
        }
        if key.p >= 0 {
            label.push(num(keys.p, i64::from(key.p)));
        }
        if key.m >= 0 {
            label.push(num(keys.m, key.m));
        }
        self.sample_ids.insert(key, self.samples.len());
        self.samples.push(Sample {
            location_id: self.stacks[stack as usize].clone(),
            value: vec![s.count, s.count.saturating_mul(period_ns)],
            label,
        });
    }

    /// The id of `frames` as a stack of locations.
    fn stack(&mut self, frames: &'a Arc<[Frame]>) -> u32 {
        let arc_key = (frames.as_ptr() as usize, frames.len());
        if let Some(&id) = self.by_arc.get(&arc_key) {
            return id;
        }
        let mut locs = Vec::new();
        let mut rest: &'a [Frame] = frames;
        while !rest.is_empty() {
            // A location is the inlined frames at one pc and the physical frame they sit in.
            let end = rest
                .iter()
                .position(|f| !f.inlined)
                .map_or(rest.len(), |i| i + 1);
            let (group, tail) = rest.split_at(end);
            rest = tail;
            if let Some(id) = self.location(group) {
                locs.push(id);
            }
        }
        let id = match self.stack_ids.get(&locs) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.stacks.len()).unwrap_or(u32::MAX);
                self.stack_ids.insert(locs.clone(), id);
                self.stacks.push(locs);
                id
            }
        };
        self.by_arc.insert(arc_key, id);
        id
    }

    /// The location of one physical frame and the calls inlined into it (innermost first), or
    /// `None` when every frame is a compiler-generated wrapper: Go's runtime.CallersFrames
    /// hides those, so Go's own profiles never show them.
    fn location(&mut self, group: &'a [Frame]) -> Option<u64> {
        let pc = group.last().map_or(0, |f| f.pc);
        let lines: Vec<(u64, i64)> = group
            .iter()
            .filter(|f| !f.wrapper)
            .map(|f| (self.function(f), i64::from(f.line)))
            .collect();
        if lines.is_empty() {
            return None;
        }
        self.pc_range = Some(match self.pc_range {
            None => (pc, pc),
            Some((lo, hi)) => (lo.min(pc), hi.max(pc)),
        });
        let key = (pc, lines);
        if let Some(&id) = self.location_ids.get(&key) {
            return Some(id);
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            mapping_id: MAPPING_ID,
            address: pc,
            line: key
                .1
                .iter()
                .map(|&(function_id, line)| Line { function_id, line })
                .collect(),
            is_folded: false,
        });
        self.location_ids.insert(key, id);
        Some(id)
    }

    fn function(&mut self, f: &'a Frame) -> u64 {
        let key = (&*f.function, &*f.file);
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.strings.intern(key.0);
        self.functions.push(Function {
            id,
            name,
            system_name: name,
            filename: self.strings.intern(key.1),
            // Not known from the frames (Go 1.21+ records it; pprof uses it only for -list).
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }
}

/// The string table: every string once, by first use.
#[derive(Default)]
struct Strings<'a> {
    table: Vec<String>,
    index: FastMap<&'a str, i64>,
}

impl<'a> Strings<'a> {
    fn intern(&mut self, s: &'a str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s, i);
        i
    }
}

// The messages of profile.proto this writer fills, with its field numbers. (Label sets and
// breakdowns, later additions no Go tool reads, are left out.)

#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// Either `str` or `num` (with an optional `num_unit`) is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Innermost first: the last line is the function the others were inlined into.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

#[cfg(test)]
mod tests;
