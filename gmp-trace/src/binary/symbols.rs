//! Function and data symbols from the ELF `.symtab`.
//!
//! Go's linker writes every function, including assembly ones, as an `STT_FUNC` with its real
//! size, so the symtab alone maps names to address ranges and back. Binaries linked with `-s`
//! have no symtab: their function table comes from `.gopclntab` instead (see `pclntab.rs`, which
//! builds the same [`SymbolTable`]); their data symbols are gone for good.

use std::collections::HashMap;

use object::elf;
use object::read::elf::{ElfFile64, Sym as _};
use object::{Endianness, Object, ObjectSymbol, ObjectSymbolTable};

/// A function as the symbol table describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

impl Function {
    /// One past the last byte, saturating (a corrupt size must not wrap around).
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// A data symbol (`STT_OBJECT`): a runtime global such as `runtime.allgs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSymbol {
    pub addr: u64,
    pub size: u64,
}

/// Functions sorted by address, plus a name index; data symbols by name.
#[derive(Debug, Default)]
pub struct SymbolTable {
    /// Sorted by `addr`, then by name so the order is deterministic.
    funcs: Vec<Function>,
    by_name: HashMap<String, usize>,
    objects: HashMap<String, DataSymbol>,
}

impl SymbolTable {
    /// Reads the `STT_FUNC` symbols of `.symtab`; `None` when the binary has no symtab (`-s`).
    pub fn from_elf(file: &ElfFile64<'_, Endianness>) -> Option<SymbolTable> {
        let endian = file.endian();
        let table = file.symbol_table()?;
        let objects = table
            .symbols()
            .filter(|s| s.elf_symbol().st_type() == elf::STT_OBJECT)
            .filter(|s| s.elf_symbol().st_shndx(endian) != elf::SHN_UNDEF)
            .filter_map(|s| {
                let sym = DataSymbol {
                    addr: s.address(),
                    size: s.size(),
                };
                Some((s.name().ok()?.to_string(), sym))
            })
            .collect();
        let funcs = table
            .symbols()
            .filter(|s| s.elf_symbol().st_type() == elf::STT_FUNC)
            .filter(|s| s.elf_symbol().st_shndx(endian) != elf::SHN_UNDEF)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some(Function {
                    name: name.to_string(),
                    addr: s.address(),
                    size: s.size(),
                })
            })
            .collect();
        let mut t = SymbolTable::new(funcs);
        t.objects = objects;
        Some(t)
    }

    pub fn new(mut funcs: Vec<Function>) -> SymbolTable {
        funcs.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
        let mut by_name = HashMap::with_capacity(funcs.len());
        for (i, f) in funcs.iter().enumerate() {
            // With duplicate names (static C functions in cgo binaries) the lowest address wins;
            // Go function names are unique.
            by_name.entry(f.name.clone()).or_insert(i);
        }
        SymbolTable {
            funcs,
            by_name,
            objects: HashMap::new(),
        }
    }

    /// A data symbol by exact name.
    pub fn object(&self, name: &str) -> Option<DataSymbol> {
        self.objects.get(name).copied()
    }

    /// All functions, by address.
    pub fn functions(&self) -> &[Function] {
        &self.funcs
    }

    /// Exact name first, then `name.abi0`: assembly functions (runtime.mstart, ...) only carry
    /// their ABI0 symbol unless Go code also needs an ABIInternal wrapper.
    pub fn function(&self, name: &str) -> Option<&Function> {
        let idx = self
            .by_name
            .get(name)
            .or_else(|| self.by_name.get(&format!("{name}.abi0")))?;
        self.funcs.get(*idx)
    }

    /// The function whose `[addr, addr+size)` contains `pc`. Zero-sized markers such as
    /// runtime.text / runtime.etext never match.
    pub fn containing(&self, pc: u64) -> Option<&Function> {
        // Index of the first function starting after pc; candidates are before it. Go functions
        // do not overlap, but zero-sized markers can share an address with a real function, so
        // walk back over those.
        let after = self.funcs.partition_point(|f| f.addr <= pc);
        self.funcs
            .get(..after)?
            .iter()
            .rev()
            .take_while(|f| f.end() > pc || f.size == 0)
            .find(|f| f.size > 0 && pc < f.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, addr: u64, size: u64) -> Function {
        Function {
            name: name.into(),
            addr,
            size,
        }
    }

    fn table() -> SymbolTable {
        SymbolTable::new(vec![
            f("runtime.newproc", 0x2000, 0x63),
            f("runtime.text", 0x1000, 0),
            f("runtime.rt0_go.abi0", 0x1000, 0x100),
            f("runtime.mstart.abi0", 0x3000, 0x0b),
            f("runtime.etext", 0x4000, 0),
            f("runtime.morestack.abi0", 0x3010, 0x80),
            f("runtime.morestack", 0x3100, 0x20),
        ])
    }

    #[test]
    fn by_name_with_abi0_fallback() {
        let t = table();
        assert_eq!(t.function("runtime.newproc").unwrap().addr, 0x2000);
        assert_eq!(
            t.function("runtime.mstart").unwrap().name,
            "runtime.mstart.abi0"
        );
        // An exact match wins over the .abi0 one.
        assert_eq!(t.function("runtime.morestack").unwrap().addr, 0x3100);
        assert!(t.function("runtime.nothere").is_none());
    }

    #[test]
    fn pc_lookup() {
        let t = table();
        let name = |pc| t.containing(pc).map(|f| f.name.as_str());
        assert_eq!(name(0x1000), Some("runtime.rt0_go.abi0"));
        assert_eq!(name(0x10ff), Some("runtime.rt0_go.abi0"));
        assert_eq!(name(0x1100), None);
        assert_eq!(name(0x2062), Some("runtime.newproc"));
        assert_eq!(name(0x2063), None);
        assert_eq!(name(0x300a), Some("runtime.mstart.abi0"));
        assert_eq!(name(0x3010), Some("runtime.morestack.abi0"));
        assert_eq!(name(0x4000), None);
        assert_eq!(name(0), None);
        assert_eq!(name(u64::MAX), None);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let t = SymbolTable::new(vec![f("a", u64::MAX - 1, u64::MAX)]);
        assert_eq!(
            t.containing(u64::MAX - 1).map(|f| f.name.as_str()),
            Some("a")
        );
        // The end saturates at u64::MAX, which is then outside.
        assert!(t.containing(u64::MAX).is_none());
        assert!(SymbolTable::default().containing(5).is_none());
    }
}
