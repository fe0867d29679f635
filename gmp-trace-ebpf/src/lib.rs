#![no_std]
// This crate's real output is the BPF object built from main.rs; the library target exists only
// so that gmp-trace can name it as a build-dependency (cargo rebuilds the probes on change).
