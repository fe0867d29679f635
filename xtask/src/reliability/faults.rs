//! Faults: the tracer or the target killed, stopped, doubled; attach/detach in a loop.

pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
