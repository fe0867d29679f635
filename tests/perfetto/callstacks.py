#!/usr/bin/env python3
"""Reads a .pftrace with Perfetto's own trace schema (PyPI `perfetto`'s generated
perfetto_trace_pb2, v59 protos) and resolves every track event's callstack the way a trace
processor does: through the interned tables of the event's packet sequence (callstacks ->
frames -> function names, source paths, mapping), honouring incremental-state resets.

    PYTHONPATH=<tools>/perfetto-py python3 tests/perfetto/callstacks.py TRACE.pftrace

Prints one JSON object: {"events": [{"name", "stack", "callstack": [[fn, file, line], ...]
outermost first, or null}], "problems": [...]}. A reference that does not resolve, an iid
defined twice with different contents, a frame outside a defined mapping or an empty
callstack is a problem."""
import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

CLEARED = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED

TABLES = ("event_names", "debug_annotation_names", "function_names", "source_paths",
          "mapping_paths", "mappings", "frames", "callstacks")


def main(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())
    seqs = {}
    events, problems = [], []
    for i, p in enumerate(trace.packet):
        seq = p.trusted_packet_sequence_id
        if p.sequence_flags & CLEARED or seq not in seqs:
            seqs[seq] = {t: {} for t in TABLES}
        tables = seqs[seq]
        if p.HasField("interned_data"):
            for t in TABLES:
                for entry in getattr(p.interned_data, t):
                    old = tables[t].get(entry.iid)
                    if old is not None and old != entry:
                        problems.append(f"packet {i}: {t} iid {entry.iid} redefined")
                    tables[t][entry.iid] = entry
        if not p.HasField("track_event"):
            continue
        ev = p.track_event
        name = ""
        if ev.HasField("name_iid"):
            n = tables["event_names"].get(ev.name_iid)
            name = n.name if n is not None else f"?{ev.name_iid}"
        stack = None
        for a in ev.debug_annotations:
            key = tables["debug_annotation_names"].get(a.name_iid)
            if key is not None and key.name == "stack":
                stack = a.string_value
        callstack = None
        if ev.HasField("callstack_iid"):
            callstack = resolve(tables, ev.callstack_iid, i, problems)
        if stack is not None or callstack is not None:
            events.append({"name": name, "stack": stack, "callstack": callstack})
    json.dump({"events": events, "problems": problems}, sys.stdout)


def text(table, iid, what, i, problems):
    s = table.get(iid)
    if s is None:
        problems.append(f"packet {i}: {what} iid {iid} not interned")
        return None
    return s.str.decode()


def resolve(tables, iid, i, problems):
    cs = tables["callstacks"].get(iid)
    if cs is None:
        problems.append(f"packet {i}: callstack_iid {iid} not interned")
        return None
    if not cs.frame_ids:
        problems.append(f"packet {i}: callstack {iid} is empty")
    out = []
    for fid in cs.frame_ids:
        fr = tables["frames"].get(fid)
        if fr is None:
            problems.append(f"packet {i}: frame {fid} not interned")
            continue
        m = tables["mappings"].get(fr.mapping_id)
        if m is None:
            problems.append(f"packet {i}: frame {fid}'s mapping {fr.mapping_id} not interned")
        else:
            for p in m.path_string_ids:
                text(tables["mapping_paths"], p, "mapping path", i, problems)
        fn = text(tables["function_names"], fr.function_name_id, "function name", i, problems)
        src = ""
        if fr.HasField("source_path_iid"):
            src = text(tables["source_paths"], fr.source_path_iid, "source path", i, problems)
        out.append([fn, src, fr.line_number])
    return out


if __name__ == "__main__":
    main(sys.argv[1])
