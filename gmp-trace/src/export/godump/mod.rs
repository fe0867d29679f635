//! TEMPORARY stand-in until the names branch lands.
use crate::model::dump::{Dump, Stack};
pub struct TextOptions {
    pub runtime_frames: bool,
    pub system: bool,
}
pub fn write_text(d: &Dump, _o: &TextOptions, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    for g in &d.goroutines {
        writeln!(
            w,
            "goroutine {} [{}]:",
            g.goid,
            g.wait_reason.unwrap_or(g.status)
        )?;
        if let Stack::Frames { frames } = &g.stack {
            for f in frames.iter() {
                writeln!(w, "{}(...)\n\t{}:{}", f.function, f.file, f.line)?;
            }
        }
        writeln!(w)?;
    }
    Ok(())
}
pub fn write_grouped(d: &Dump, o: &TextOptions, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_text(d, o, w)
}
