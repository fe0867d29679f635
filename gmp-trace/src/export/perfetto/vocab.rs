//! The layout's fixed vocabulary: event names and debug annotation names known in advance.
//! They are interned all at once in the trace's first packet, so an iid is the name's position
//! plus one and the hot path never looks a name up. (Names made at run time, such as
//! "G7 main.worker" or a wait reason, get iids after these.)

/// Declares a vocabulary: an enum and the text of each variant, in the same order.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every name, in iid order (iid 1 first).
            pub const TEXT: &'static [&'static str] = &[$($text,)*];

            pub fn iid(self) -> u64 {
                self as u64 + 1
            }
        }
    };
}

vocabulary! {
    /// Slice and instant names.
    Name {
        Running = "Running",
        Runnable = "Runnable",
        Syscall = "Syscall",
        Go = "go",
        Unblock = "unblock",
        Steal = "steal",
        Spinning = "spinning",
        NewM = "newm",
        MStart = "mstart",
        LostEvents = "lost events",
        Gomaxprocs = "GOMAXPROCS",
        Gc = "GC",
        Exec = "exec",
        Rt0Go = "rt0_go",
        Schedinit = "schedinit",
        MStartM0 = "mstart_m0",
        Gcenable = "gcenable",
        MainMain = "main.main",
        Exit = "exit",
    }
}

vocabulary! {
    /// Debug annotation names (`args` keys `debug.<name>`).
    ArgName {
        Goid = "goid",
        ByGoid = "by_goid",
        M = "m",
        Tid = "tid",
        StartFn = "start_fn",
        ParentGoid = "parent_goid",
        CreatedBy = "created_by",
        ThiefP = "thief_p",
        VictimP = "victim_p",
        Goroutines = "goroutines",
        NewM = "new_m",
        NewMP = "new_m_p",
        Fn = "fn",
        Lost = "lost",
        Nprocs = "nprocs",
        Reason = "reason",
        Trigger = "trigger",
        Code = "code",
        Task = "task",
        Stack = "stack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iids_follow_the_text_order() {
        assert_eq!(Name::TEXT[Name::Go.iid() as usize - 1], "go");
        assert_eq!(Name::TEXT[Name::Exit.iid() as usize - 1], "exit");
        assert_eq!(ArgName::TEXT[ArgName::Task.iid() as usize - 1], "task");
        let mut names = Name::TEXT.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Name::TEXT.len(), "no name twice");
    }
}
