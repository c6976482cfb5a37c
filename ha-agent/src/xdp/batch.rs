//! Batch operations on a hash map: many entries in one `bpf(2)` call (aya 0.14 has none).
//! A takeover of 255 instances changes 255 `VRIDS` entries and as many `VIPS` entries at
//! once, and 255 sleeping backups read their masters' adverts from `PEERS` together: one
//! system call per map keeps those bursts off the advert loop.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::maps::MapData;
use aya_obj::generated::{bpf_attr, bpf_cmd};

/// One batch call; `cursor` (lookups) is the kernel's position in the map, in and out.
fn batch(
    cmd: bpf_cmd,
    map: &MapData,
    keys: *const u8,
    values: *const u8,
    count: usize,
    cursor: Option<(Option<&u32>, &mut u32)>,
) -> io::Result<u32> {
    // SAFETY: bpf_attr is plain old data; zeroed is a valid value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the `batch` member of a zeroed union.
    let b = unsafe { &mut attr.batch };
    b.keys = keys as u64;
    b.values = values as u64;
    if let Some((from, next)) = cursor {
        b.in_batch = from.map_or(0, |f| f as *const u32 as u64);
        b.out_batch = next as *mut u32 as u64;
    }
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
    // SAFETY: reading back the member written above; the kernel sets how many it did.
    let done = unsafe { attr.batch.count };
    if rc < 0 {
        let e = io::Error::last_os_error();
        // ENOENT from a lookup: the map's end, with `done` entries in this last batch.
        if e.raw_os_error() == Some(libc::ENOENT) && cmd == bpf_cmd::BPF_MAP_LOOKUP_BATCH {
            return Ok(done | END);
        }
        return Err(e);
    }
    Ok(done)
}

/// Set in a lookup's count when the map's end was reached.
const END: u32 = 1 << 31;

/// Every entry of a hash map, in as few calls as `chunk` entries at a time allow (one, for
/// a map of up to `chunk` entries).
pub fn lookup_all<K: aya::Pod + Default, V: aya::Pod + Default>(
    map: &MapData,
    chunk: usize,
) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let (mut keys, mut values) = (vec![K::default(); chunk], vec![V::default(); chunk]);
    let mut cursor: Option<u32> = None;
    loop {
        let mut next = 0u32;
        let got = batch(
            bpf_cmd::BPF_MAP_LOOKUP_BATCH,
            map,
            keys.as_mut_ptr().cast_const().cast(),
            values.as_mut_ptr().cast_const().cast(),
            chunk,
            Some((cursor.as_ref(), &mut next)),
        )?;
        let n = (got & !END) as usize;
        out.extend(keys.iter().copied().zip(values.iter().copied()).take(n));
        if got & END != 0 {
            return Ok(out);
        }
        cursor = Some(next);
    }
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
        None,
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
