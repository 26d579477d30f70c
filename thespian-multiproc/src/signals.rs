//! Unix signals for the multi-process roles, turned into channel messages.
//!
//! A signal handler may do almost nothing safely, so it only writes the signal's number into
//! a pipe; a thread reads the pipe and sends the numbers on a channel, where the admin's loop
//! (SIGCHLD: reap children) or an actor's host (SIGTERM and friends: exit gracefully) picks
//! them up like any other event.

use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};

use crossbeam_channel::Receiver;

/// The pipe's write end, for the handler (-1 until installed).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full pipe
        // drops the byte (the fd is non-blocking), which only loses a duplicate wake-up.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Routes `signals` to the returned channel (once per process; later calls add signals to the
/// same pipe but return a channel that sees nothing).
pub(crate) fn route(signals: &[libc::c_int]) -> std::io::Result<Receiver<libc::c_int>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (mut reader, writer) = std::io::pipe()?;
    let write_fd = std::os::fd::IntoRawFd::into_raw_fd(writer);
    // SAFETY: `write_fd` is the pipe's write end, which this process now owns for good.
    unsafe {
        let flags = libc::fcntl(write_fd, libc::F_GETFL);
        libc::fcntl(write_fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    PIPE_WRITE.store(write_fd, Ordering::Release);
    std::thread::Builder::new()
        .name("thespian-signals".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if tx.send(libc::c_int::from(b)).is_err() {
                        return;
                    }
                }
            }
        })?;
    for &signal in signals {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler only calls
        // write(2) (see `on_signal`), and SA_RESTART keeps interrupted system calls going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(rx)
}

/// Asks the kernel to kill this process when the thread that started it ends (the admin, for
/// an actor process), and returns false when that parent is already gone.
pub(crate) fn die_with_parent(expected_parent: u32) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes only this process's
    // own death signal; getppid cannot fail.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid() as u32 == expected_parent
    }
}

/// Starts a new session, so the daemon has no controlling terminal and no terminal signal
/// (Ctrl-C in the starter's shell) reaches it.
pub(crate) fn detach_session() {
    // SAFETY: setsid has no memory effects; failing (already a group leader) is harmless.
    unsafe {
        libc::setsid();
    }
}

/// True while a process with this id exists.
pub(crate) fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; nothing is sent.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Waits until the process `pid` has ended, at most `timeout`: true when it has (or was
/// already gone). Waits on the kernel's exit event (a pidfd); where pidfds are missing
/// (Linux before 5.3) it checks every 10 ms instead.
pub(crate) fn wait_exit(pid: u32, timeout: std::time::Duration) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let deadline = std::time::Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags, returns a new descriptor or -1, and touches
    // no memory of ours.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return true;
        }
        while process_exists(pid) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        return true;
    }
    // SAFETY: `raw` is the descriptor pidfd_open just returned, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready > 0 {
            return true;
        }
        let interrupted =
            ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        if !interrupted || left.is_zero() {
            return false;
        }
    }
}
