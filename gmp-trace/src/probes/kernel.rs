//! Facts about the running kernel the probes need, read from its BTF (`/sys/kernel/btf/vmlinux`).
use anyhow::{anyhow, bail, Context as _};
use btf_rs::{Backend, Btf, Type};

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where the probes find things in the kernel's own structures. The fields move between kernel
/// builds (randomized layouts, config options), so they are looked up, never assumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.thread.fsbase`: where x86_64 keeps a thread's fs base (its TLS pointer)
    /// while the kernel runs on its behalf.
    pub task_fsbase: u32,
    /// `task_struct.mm`.
    pub task_mm: u32,
    /// `mm_struct.start_code`: the start of the executable's text as mapped (its lowest
    /// executable PT_LOAD plus the load bias).
    pub mm_start_code: u32,
    /// `linux_binprm.filename`: the path an exec was called with (0 when the BTF lacks it).
    pub binprm_filename: u32,
}

/// Reads the offsets from the running kernel's BTF (mapped, not parsed whole: ~2 ms).
pub fn kernel_offsets() -> anyhow::Result<KernelOffsets> {
    let btf = Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap)
        .or_else(|_| Btf::from_file(VMLINUX_BTF))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading the kernel's BTF from {VMLINUX_BTF}"))?;
    let thread = member_offset(&btf, "task_struct", "thread")?;
    let fsbase = member_offset(&btf, "thread_struct", "fsbase")?;
    Ok(KernelOffsets {
        task_fsbase: (thread + fsbase) / 8,
        task_mm: member_offset(&btf, "task_struct", "mm")? / 8,
        mm_start_code: member_offset(&btf, "mm_struct", "start_code")? / 8,
        binprm_filename: member_offset(&btf, "linux_binprm", "filename").map_or(0, |b| b / 8),
    })
}

/// `task_struct.pid` and `.tgid` in bytes (the `--follow` fork tracepoint tells a new process
/// from a new thread by them).
pub fn task_pid_tgid() -> anyhow::Result<(u32, u32)> {
    let btf = Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap)
        .or_else(|_| Btf::from_file(VMLINUX_BTF))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading the kernel's BTF from {VMLINUX_BTF}"))?;
    Ok((
        member_offset(&btf, "task_struct", "pid")? / 8,
        member_offset(&btf, "task_struct", "tgid")? / 8,
    ))
}

/// Bit offset of `field` in struct `name`, looking through anonymous struct/union members
/// (task_struct wraps most fields in one for layout randomization).
fn member_offset(btf: &Btf, name: &str, field: &str) -> anyhow::Result<u32> {
    for ty in btf
        .resolve_types_by_name(name)
        .map_err(|e| anyhow!("{e}"))?
    {
        if let Type::Struct(s) = ty {
            if let Some(off) = find_member(btf, &s, field, 0)? {
                return Ok(off);
            }
        }
    }
    bail!("the kernel's BTF has no {name}.{field}")
}

fn find_member(
    btf: &Btf,
    s: &btf_rs::Struct,
    field: &str,
    base: u32,
) -> anyhow::Result<Option<u32>> {
    for m in &s.members {
        let off = base + m.bit_offset();
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == field {
            return Ok(Some(off));
        }
        if name.is_empty() {
            match btf.resolve_chained_type(m).map_err(|e| anyhow!("{e}"))? {
                Type::Struct(inner) | Type::Union(inner) => {
                    if let Some(o) = find_member(btf, &inner, field, off)? {
                        return Ok(Some(o));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    /// The offset is plausible: thread_struct sits at the end of task_struct, kilobytes in.
    /// The BPF tests check the value a probe reads through it (a thread's g and M).
    #[test]
    fn offsets_from_this_kernels_btf() {
        if !std::path::Path::new(super::VMLINUX_BTF).exists() {
            eprintln!("skipped: this kernel has no {}", super::VMLINUX_BTF);
            return;
        }
        let k = super::kernel_offsets().unwrap();
        assert!((1024..64 * 1024).contains(&k.task_fsbase), "{k:?}");
        assert!(k.task_mm > 0 && k.task_mm < k.task_fsbase, "{k:?}");
        assert!(k.mm_start_code > 0 && k.mm_start_code < 4096, "{k:?}");
        for off in [k.task_fsbase, k.task_mm, k.mm_start_code] {
            assert_eq!(off % 8, 0, "{k:?}");
        }
    }
}
