//! A cable cut that takes no lock: a ten-instruction BPF program on a host's bridge port
//! (tcx ingress, attached when the cut is first asked for) drops every frame the host sends
//! while a one-value array map says so. Setting the map is one `bpf(2)` call, where taking a
//! link down takes the kernel's RTNL lock, which every namespace of the machine shares: a
//! crash modelled so would hold up the survivor's own address change, as the death of a
//! host on another machine never does.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

// bpf(2) commands, types and attach points (linux/bpf.h).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// The bridge-side end of a host's cable, and the switch that cuts it.
pub struct Cable {
    map: OwnedFd,
    _program: OwnedFd,
    _link: OwnedFd,
}

/// `bpf(cmd, attr)` with `attr` as a zero-padded 128-byte union.
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<RawFd> {
    // SAFETY: the kernel reads (and for some commands writes) at most `attr`'s size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as RawFd)
}

fn put(attr: &mut [u8; 128], at: usize, bytes: &[u8]) {
    attr[at..at + bytes.len()].copy_from_slice(bytes);
}

/// One instruction: opcode, registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut i = [0u8; 8];
    i[0] = code;
    i[1] = dst | (src << 4);
    i[2..4].copy_from_slice(&off.to_le_bytes());
    i[4..].copy_from_slice(&imm.to_le_bytes());
    i
}

impl Cable {
    /// Attaches to interface `ifindex` of the calling thread's network namespace, passing.
    pub fn attach(ifindex: u32) -> io::Result<Self> {
        let mut attr = [0u8; 128];
        put(&mut attr, 0, &BPF_MAP_TYPE_ARRAY.to_ne_bytes());
        put(&mut attr, 4, &4u32.to_ne_bytes());
        put(&mut attr, 8, &4u32.to_ne_bytes());
        put(&mut attr, 12, &1u32.to_ne_bytes());
        // SAFETY: a new descriptor from the kernel, ours alone.
        let map = unsafe { OwnedFd::from_raw_fd(bpf(BPF_MAP_CREATE, &mut attr)?) };
        // key = 0; r0 = lookup(map, &key); if r0 && *r0: drop (TCX_DROP = 2); else the next
        // program, or the stack (TCX_NEXT = -1).
        let program: Vec<[u8; 8]> = vec![
            insn(0x62, 10, 0, -4, 0),
            insn(0xbf, 2, 10, 0, 0),
            insn(0x07, 2, 0, 0, -4),
            insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map.as_raw_fd()),
            insn(0, 0, 0, 0, 0),
            insn(0x85, 0, 0, 0, 1),
            insn(0x15, 0, 0, 4, 0),
            insn(0x61, 1, 0, 0, 0),
            insn(0x15, 1, 0, 2, 0),
            insn(0xb7, 0, 0, 0, 2),
            insn(0x95, 0, 0, 0, 0),
            insn(0xb7, 0, 0, 0, -1),
            insn(0x95, 0, 0, 0, 0),
        ];
        let code: Vec<u8> = program.concat();
        let license = c"GPL";
        let mut attr = [0u8; 128];
        put(&mut attr, 0, &BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
        put(&mut attr, 4, &(program.len() as u32).to_ne_bytes());
        put(&mut attr, 8, &(code.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
        // SAFETY: as above.
        let program = unsafe { OwnedFd::from_raw_fd(bpf(BPF_PROG_LOAD, &mut attr)?) };
        let mut attr = [0u8; 128];
        put(&mut attr, 0, &(program.as_raw_fd() as u32).to_ne_bytes());
        put(&mut attr, 4, &ifindex.to_ne_bytes());
        put(&mut attr, 8, &BPF_TCX_INGRESS.to_ne_bytes());
        // SAFETY: as above.
        let link = unsafe { OwnedFd::from_raw_fd(bpf(BPF_LINK_CREATE, &mut attr)?) };
        Ok(Cable {
            map,
            _program: program,
            _link: link,
        })
    }

    /// Cuts the cable (`cut`) or mends it: one map update, no lock.
    pub fn set_cut(&self, cut: bool) -> io::Result<()> {
        let (key, value) = (0u32, u32::from(cut));
        let mut attr = [0u8; 128];
        put(&mut attr, 0, &(self.map.as_raw_fd() as u32).to_ne_bytes());
        put(&mut attr, 8, &(&key as *const u32 as u64).to_ne_bytes());
        put(&mut attr, 16, &(&value as *const u32 as u64).to_ne_bytes());
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
    }
}
