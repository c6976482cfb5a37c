//! A map's values mapped into the agent's memory (`BPF_F_MMAPABLE` arrays): read and
//! written without a system call.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::MapData;

pub struct Mapping {
    pub ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` bytes of `map`'s values (rounded up to whole pages).
    pub fn new(map: &MapData, len: usize) -> io::Result<Self> {
        let page = 4096;
        let len = len.div_ceil(page) * page;
        // SAFETY: a shared mapping of the map's descriptor, as long as its values; checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast())
            .map(|ptr| Self { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned null"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// SAFETY: plain shared memory; its users take `&mut` of the program or read it through
// volatile reads under the kernel's sequence count.
unsafe impl Send for Mapping {}
