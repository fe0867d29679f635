//! Whole ELF files: open, runtime offsets (DWARF, else the table), the pclntab fallback and probe
//! placement on both architectures.
#![no_main]

use std::path::Path;

use gmp_trace_fuzz::binary::GoBinary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bin) = GoBinary::from_bytes(data.to_vec(), Path::new("fuzz-input")) else {
        return;
    };
    let _ = std::hint::black_box(bin.runtime_layout());
    let _ = std::hint::black_box(bin.check_table_against_dwarf());
    let _ = std::hint::black_box(bin.struct_field_offset("runtime.schedt", "lock"));
    let _ = std::hint::black_box(bin.pclntab_info());
    for f in ["runtime.schedule", "runtime.casgstatus", "runtime.newproc1"] {
        let _ = std::hint::black_box(bin.probe_site(f));
        let _ = std::hint::black_box(bin.ret_sites(f));
    }
    let _ = std::hint::black_box(bin.func_name_for_pc(0x40_1000));
});
