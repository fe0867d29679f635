//! A steady server load traced in --pid mode for minutes: the tracer's memory and losses.

pub fn run(_minutes: u64) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
