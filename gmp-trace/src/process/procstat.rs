//! /proc/PID/stat, read one way for everyone: its fields after the command name, which is in
//! parentheses and may itself hold spaces and parentheses (so the last `)` ends it).

/// The fields after the command name, as one string (field 0 is the state).
fn after_comm(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(s[s.rfind(')')? + 1..].to_owned())
}

/// Field `n` counted after the command name (0 the state, 1 the ppid, 17 the thread count,
/// 19 the start time in clock ticks); None when the process is gone.
pub fn field(pid: u32, n: usize) -> Option<String> {
    after_comm(pid)?
        .split_whitespace()
        .nth(n)
        .map(str::to_owned)
}

/// Fields `a` and `b`, from one read.
pub fn two_fields(pid: u32, a: usize, b: usize) -> Option<(String, String)> {
    let rest = after_comm(pid)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(a)?.to_string(), f.get(b)?.to_string()))
}

/// Whether `pid` has exited: gone, or a zombie its parent has not reaped yet (its /proc entry
/// is there, its memory and exe are not).
pub fn exited(pid: u32) -> bool {
    field(pid, 0).is_none_or(|state| state == "Z" || state == "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_process_and_of_its_zombie() {
        let me = std::process::id();
        assert_eq!(
            field(me, 1),
            Some(std::os::unix::process::parent_id().to_string())
        );
        assert!(!exited(me));
        let (threads, start) = two_fields(me, 17, 19).unwrap();
        assert!(threads.parse::<u32>().unwrap() >= 1 && start.parse::<u64>().is_ok());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while field(pid, 0).as_deref() != Some("Z") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(exited(pid), "a zombie has exited");
        child.wait().unwrap();
        assert!(exited(pid), "a reaped process has exited");
        assert_eq!(field(u32::MAX - 1, 0), None);
    }
}
