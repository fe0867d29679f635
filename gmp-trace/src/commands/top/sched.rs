//! The global run queue's length, the one scheduler number the state read (process/snapshot.rs)
//! does not take: runtime.sched.runqsize up to Go 1.24, runtime.sched.runq.size from 1.25 (the
//! count moved into the gQueue). Where it is comes from the symbol table (runtime.sched) and the
//! DWARF (the field's offset), so a stripped binary, or one built with -w, shows `-`: there is no
//! measured table for it as there is for the fields the dump needs.
use crate::binary::GoBinary;
use crate::process::memory::Remote;

/// Where the int32 count lives in the process.
#[derive(Clone, Copy, Debug)]
pub struct GlobalRunq {
    addr: u64,
    mem: Remote,
}

impl GlobalRunq {
    /// `None` when the binary lacks runtime.sched's symbol or the field's DWARF.
    pub fn locate(bin: &GoBinary, bias: u64, pid: u32) -> Option<GlobalRunq> {
        let sched = bin.data_symbol("runtime.sched")?.addr;
        let off = match bin.struct_field_offset("runtime.schedt", "runqsize") {
            Ok(off) => off,
            Err(_) => {
                bin.struct_field_offset("runtime.schedt", "runq").ok()?
                    + bin.struct_field_offset("runtime.gQueue", "size").ok()?
            }
        };
        Some(GlobalRunq {
            addr: sched.wrapping_add(bias).wrapping_add(off),
            mem: Remote::new(pid),
        })
    }

    /// The count now; `None` if the read failed (the process is exiting).
    pub fn read(&self) -> Option<u32> {
        let b = self.mem.read(self.addr, 4).ok()?;
        let n = i32::from_le_bytes(b.try_into().ok()?);
        // Read without the scheduler's lock: a negative or absurd value is a torn read.
        u32::try_from(n).ok()
    }
}
