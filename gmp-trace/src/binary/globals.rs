//! TEMPORARY stand-in until the globals branch lands.
use super::{BinaryError, GoBinary};
pub struct RuntimeGlobals {
    pub allgs: u64,
    pub allm: u64,
    pub allp: u64,
}
impl GoBinary {
    pub fn runtime_globals(&self) -> Result<RuntimeGlobals, BinaryError> {
        let s = |n: &str| {
            self.data_symbol(n)
                .map(|s| s.addr)
                .ok_or_else(|| BinaryError::Corrupt {
                    path: self.path().to_path_buf(),
                    what: format!("no {n}"),
                })
        };
        Ok(RuntimeGlobals {
            allgs: s("runtime.allgs")?,
            allm: s("runtime.allm")?,
            allp: s("runtime.allp")?,
        })
    }
}
