//! Batch operations on a hash map: many entries in one `bpf(2)` call (aya 0.14 has none).
//! A takeover of 255 instances changes 255 `VRIDS` entries and as many `VIPS` entries at
//! once; one system call per map keeps that burst off the advert loop's worst iteration.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::maps::MapData;
use aya_obj::generated::{bpf_attr, bpf_cmd};

fn batch(
    cmd: bpf_cmd,
    map: &MapData,
    keys: *const u8,
    values: *const u8,
    count: usize,
) -> io::Result<u32> {
    // SAFETY: bpf_attr is plain old data; zeroed is a valid value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the `batch` member of a zeroed union.
    let b = unsafe { &mut attr.batch };
    b.keys = keys as u64;
    b.values = values as u64;
    b.count = u32::try_from(count).map_err(|_| io::Error::other("batch too large"))?;
    b.map_fd = map.fd().as_fd().as_raw_fd() as u32;
    // SAFETY: the key and value arrays hold `count` entries each and outlive the call; the
    // kernel reads only as much of attr as its size says.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading back the member written above; the kernel sets how many it did.
    Ok(unsafe { attr.batch.count })
}

/// Inserts or replaces every `(key, value)` in one call.
pub fn update<K: aya::Pod, V: aya::Pod>(map: &MapData, entries: &[(K, V)]) -> io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<K>, Vec<V>) = entries.iter().copied().unzip();
    let done = batch(
        bpf_cmd::BPF_MAP_UPDATE_BATCH,
        map,
        keys.as_ptr().cast(),
        values.as_ptr().cast(),
        entries.len(),
    )?;
    complete(done, entries.len())
}

fn complete(done: u32, wanted: usize) -> io::Result<()> {
    if done as usize == wanted {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the kernel did {done} of {wanted}"
        )))
    }
}
