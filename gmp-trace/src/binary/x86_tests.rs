//! The amd64 rules on hand-assembled bytes: each stack-check shape, malformed code, the
//! instruction classes the kernel emulates, and a result followed (or lost) after a call.
use super::*;

const BASE: u64 = 0x45_0b00;

fn site_of(code: &[u8]) -> Result<(u64, String, bool), (u64, String)> {
    let insns = decode(code, BASE).map_err(|e| (0, e))?;
    let i = choose_probe_site(&insns)?;
    let insn = &insns[i];
    Ok((insn.ip() - BASE, format_insn(insn), is_one_trap(insn)))
}

/// cmp rsp,[r14+0x10] ; jbe tail ; push rbp ; mov rbp,rsp ; pop rbp ; ret ; nop*4 ;
/// tail: call . ; jmp <back>
fn small_frame(jmp_back_to: u8) -> Vec<u8> {
    let mut c = vec![
        0x49, 0x3b, 0x66, 0x10, 0x76, 0x0a, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3,
    ];
    c.extend_from_slice(&[0x90; 4]);
    c.extend_from_slice(&[0xe8, 0, 0, 0, 0]);
    // jmp rel8 at 0x15, next ip 0x17.
    c.extend_from_slice(&[0xeb, jmp_back_to.wrapping_sub(0x17)]);
    c
}

#[test]
fn after_small_frame_check() {
    assert_eq!(site_of(&small_frame(0)), Ok((6, "push rbp".into(), true)));
    // The tail returning to the site itself is fine too.
    assert_eq!(site_of(&small_frame(6)).map(|s| s.0), Ok(6));
    // Returning to the JBE is not: the check would be half-run.
    let e = site_of(&small_frame(4)).unwrap_err();
    assert_eq!(e.0, BASE + 0x15);
    assert!(e.1.contains("inside the stack check"), "{}", e.1);
}

#[test]
fn after_big_and_huge_frame_checks() {
    // lea r12,[rsp-0xa0] ; cmp r12,[r14+0x10] ; jbe +0 ; push rbp ; ret
    let big = [
        0x4c, 0x8d, 0xa4, 0x24, 0x60, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0, 0,
        0, 0, 0x55, 0xc3,
    ];
    assert_eq!(site_of(&big), Ok((18, "push rbp".into(), true)));
    // mov r12,rsp ; sub r12,0x2000 ; jb tail ; cmp r12,[r14+0x10] ; jbe tail ; push rbp ;
    // tail: ret
    let huge = [
        0x49, 0x89, 0xe4, 0x49, 0x81, 0xec, 0, 0x20, 0, 0, 0x72, 7, 0x4d, 0x3b, 0x66, 0x10, 0x76,
        1, 0x55, 0xc3,
    ];
    assert_eq!(site_of(&huge), Ok((18, "push rbp".into(), true)));
    // Go 1.19/1.20 style frame setup after the check: SUB RSP is single-stepped.
    let old = [
        0x49, 0x3b, 0x66, 0x10, 0x76, 0, 0x48, 0x83, 0xec, 0x18, 0xc3,
    ];
    assert_eq!(site_of(&old), Ok((6, "sub rsp,0x18".into(), false)));
}

#[test]
fn without_stack_check_or_with_a_different_guard() {
    // NOSPLIT: push rbp ; mov rbp,rsp ; pop rbp ; ret
    assert_eq!(
        site_of(&[0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3]),
        Ok((0, "push rbp".into(), true))
    );
    // cmp rsp,[r14+0x18] is stackguard1 (system-stack functions): a stack check too.
    let guard1 = [0x49, 0x3b, 0x66, 0x18, 0x76, 0, 0x55, 0xc3];
    assert_eq!(site_of(&guard1).map(|s| s.0), Ok(6));
    // cmp rsp,[r14+0x20] is no guard at all.
    let other = [0x49, 0x3b, 0x66, 0x20, 0x76, 0, 0x55, 0xc3];
    assert_eq!(site_of(&other).map(|s| s.0), Ok(0));
    // cmp rsp,[r14+0x10] followed by something other than JBE.
    let no_jbe = [0x49, 0x3b, 0x66, 0x10, 0x55, 0xc3];
    assert_eq!(site_of(&no_jbe).map(|s| s.0), Ok(0));
}

#[test]
fn malformed_code() {
    // Ends right after the JBE.
    assert!(site_of(&[0x49, 0x3b, 0x66, 0x10, 0x76, 0x00]).is_err());
    // Truncated instruction, an invalid opcode, nothing at all.
    assert!(site_of(&[0x49, 0x3b]).is_err());
    assert!(site_of(&[0x0f, 0x0b, 0x06]).is_err());
    assert!(site_of(&[]).is_err());
}

/// `site_after_call` on `code` whose first instruction is the call.
fn after_call(code: &[u8]) -> Result<(u64, String, ResultLoc), String> {
    let insns = decode(code, BASE)?;
    let (j, loc) = site_after_call(&insns, 0)?;
    Ok((insns[j].ip() - BASE, format_insn(&insns[j]), loc))
}

/// call rel32 to somewhere outside the snippet.
const CALL: [u8; 5] = [0xe8, 0, 0x10, 0, 0];

#[test]
fn result_followed_after_the_call() {
    let with = |rest: &[u8]| [&CALL[..], rest].concat();
    // test rax,rax ; jne +0: the Jcc, result still in RAX.
    let (off, insn, loc) = after_call(&with(&[0x48, 0x85, 0xc0, 0x75, 0x00])).unwrap();
    assert_eq!((off, loc), (8, ResultLoc::Reg(Register::RAX)), "{insn}");
    // newproc.func1: mov rdx,[r14+0x30] ; mov rbx,rax ; mov ecx,1 ; mov rax,rdx ;
    // nop dword [rax+rax] (5 bytes): the result moved to RBX.
    let moved = with(&[
        0x49, 0x8b, 0x56, 0x30, 0x48, 0x89, 0xc3, 0xb9, 1, 0, 0, 0, 0x48, 0x89, 0xd0, 0x0f, 0x1f,
        0x44, 0, 0,
    ]);
    let (off, insn, loc) = after_call(&moved).unwrap();
    assert_eq!((off, loc), (20, ResultLoc::Reg(Register::RBX)), "{insn}");
    // mov [rsp+0x28],rax ; lea rax,[rip] ; call: only the stack slot still holds it.
    let spilled = with(&[
        0x48, 0x89, 0x44, 0x24, 0x28, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0,
    ]);
    assert_eq!(after_call(&spilled).unwrap().2, ResultLoc::Stack(0x28));
    assert_eq!(ResultLoc::Stack(0x28).cookie(), (1 << 32) | 0x28);
    assert_eq!(ResultLoc::Reg(Register::RBX).cookie(), 1);
    // The slot overwritten (mov qword [rsp+0x28],0) as well: nothing left.
    let lost = with(&[
        0x48, 0x89, 0x44, 0x24, 0x28, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0xc7, 0x44, 0x24, 0x28,
        0, 0, 0, 0, 0xe8, 0, 0, 0, 0,
    ]);
    assert!(after_call(&lost).unwrap_err().contains("overwritten"));
    // xor eax,eax right away.
    assert!(after_call(&with(&[0x31, 0xc0, 0xe8, 0, 0, 0, 0])).is_err());
}

#[test]
fn no_site_when_something_else_reaches_it() {
    // test rax,rax ; jne +0 ; jmp back to the TEST (a loop into the window).
    let looped = [&CALL[..], &[0x48, 0x85, 0xc0, 0x75, 0x00, 0xeb, 0xf9]].concat();
    assert!(after_call(&looped).unwrap_err().contains("lands between"));
    // A jump table anywhere in the caller: targets unknown.
    let table = [&CALL[..], &[0x48, 0x85, 0xc0, 0x75, 0x00, 0xff, 0xe0]].concat();
    let e = after_call(&table).unwrap_err();
    assert!(e.contains("indirect"), "{e}");
    // RSP moves (sub rsp,8) before any site; a RET comes first.
    assert!(
        after_call(&[&CALL[..], &[0x48, 0x83, 0xec, 8, 0x90]].concat())
            .unwrap_err()
            .contains("RSP")
    );
    assert!(after_call(&[&CALL[..], &[0xc3, 0x90]].concat()).is_err());
    // Nothing emulated within reach.
    let far = [
        &CALL[..],
        &[0x48, 0x85, 0xc0].repeat(MAX_AFTER_CALL + 1)[..],
    ]
    .concat();
    assert!(after_call(&far).is_err());
}

#[test]
fn one_trap_classes() {
    let one = |b: &[u8]| is_one_trap(&decode(b, BASE).unwrap()[0]);
    assert!(one(&[0x55])); // push rbp
    assert!(one(&[0x41, 0x54])); // push r12
    assert!(one(&[0x90])); // nop
    assert!(one(&[0x0f, 0x1f, 0x44, 0, 0])); // nop dword [rax+rax]
    assert!(one(&[0xeb, 0])); // jmp rel8
    assert!(one(&[0xe9, 0, 0, 0, 0])); // jmp rel32
    assert!(one(&[0x74, 0])); // je rel8
    assert!(one(&[0x0f, 0x86, 0, 0, 0, 0])); // jbe rel32
    assert!(one(&[0xe8, 0, 0, 0, 0])); // call rel32
    assert!(!one(&[0xc3])); // ret: run out of line
    assert!(!one(&[0xc2, 8, 0])); // ret 8
    assert!(!one(&[0x49, 0x3b, 0x66, 0x10])); // cmp
    assert!(!one(&[0x48, 0x89, 0xe5])); // mov rbp,rsp
    assert!(!one(&[0xff, 0xd0])); // call rax
    assert!(!one(&[0xf3, 0x90])); // pause
}
