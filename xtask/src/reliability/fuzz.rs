//! Fuzzing the recording reader and the event decoder for a bounded time.

pub fn run(_seconds: u64) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
