//! Pinning a thread to one CPU core (Linux `sched_setaffinity`; a no-op elsewhere). Called once
//! when a loop thread starts, never on the hot path.

/// Pins the calling thread to `core`.
#[cfg(target_os = "linux")]
pub fn pin_to_core(core: usize) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero bytes is the empty set; CPU_SET
    // writes inside it for any `core < CPU_SETSIZE`, which is checked first; the call only reads
    // the set we pass, for the calling thread (pid 0).
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("core {core} is beyond CPU_SETSIZE"),
            ));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins the calling thread to `core` (not supported on this platform: does nothing).
#[cfg(not(target_os = "linux"))]
pub fn pin_to_core(_core: usize) -> std::io::Result<()> {
    Ok(())
}
