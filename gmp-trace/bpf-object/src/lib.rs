//! The BPF object (gmp-trace-ebpf built for the BPF target by build.rs), for the loader in
//! gmp-trace/src/probes. A crate of its own so that the BPF build runs early in a fresh build,
//! alongside gmp-trace's dependencies (see Cargo.toml).
#![no_std]

/// ELF64 objects have 8-byte aligned headers and BPF instructions are 8 bytes each: the object
/// is parsed in place, so its bytes start on an 8-byte boundary (as `aya::include_bytes_aligned!`
/// lays them out, without depending on aya here).
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/gmp-trace")));

/// The ELF object with every BPF program and map of gmp-trace-ebpf, 8-byte aligned.
pub static BPF_OBJECT: &[u8] = &ALIGNED.0;

#[cfg(test)]
mod tests {
    use super::BPF_OBJECT;

    #[test]
    fn is_an_aligned_little_endian_bpf_elf64_object() {
        assert_eq!(
            BPF_OBJECT.as_ptr() as usize % 8,
            0,
            "aya parses it in place"
        );
        assert_eq!(&BPF_OBJECT[..4], b"\x7fELF");
        assert_eq!(BPF_OBJECT[4], 2, "ELFCLASS64");
        assert_eq!(BPF_OBJECT[5], 1, "ELFDATA2LSB (bpfel)");
        // e_machine: EM_BPF.
        assert_eq!(u16::from_le_bytes([BPF_OBJECT[18], BPF_OBJECT[19]]), 247);
    }
}
