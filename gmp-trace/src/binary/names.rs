//! TEMPORARY stand-in until the names branch lands.
pub const G_SCAN: u32 = 0x1000;
pub fn g_status_name(status: u32) -> &'static str {
    [
        "idle",
        "runnable",
        "running",
        "syscall",
        "waiting",
        "moribund_unused",
        "dead",
        "enqueue_unused",
        "copystack",
        "preempted",
    ]
    .get((status & !G_SCAN) as usize)
    .copied()
    .unwrap_or("???")
}
pub fn wait_reason(_minor: u32, code: u8) -> Option<&'static str> {
    (code != 0).then_some("waiting")
}
pub fn p_status_name(status: u32) -> &'static str {
    ["idle", "running", "syscall", "gcstop", "dead"]
        .get(status as usize)
        .copied()
        .unwrap_or("???")
}
pub fn is_system_goroutine(_minor: u32, f: &str) -> bool {
    f.starts_with("runtime.") && f != "runtime.main"
}
