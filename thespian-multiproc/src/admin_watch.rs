//! Notices at once that the admin's process ended, so a program's waits fail instead of
//! running out their timeouts.
//!
//! A program attached to an admin learns its pid from `Welcome`, and runs on the same host
//! (it finds the admin on its own address). The kernel announces the admin's end on a pidfd,
//! which one thread waits on in a mio poll, with a waker to stop it when the program's system
//! goes away: no polling loop, no timer, and the same for every transport (a killed admin's
//! TCP connection may never be used again, and UDP has no connection at all).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

const ADMIN_EXITED: Token = Token(0);
const STOP: Token = Token(1);

/// Watches one process until it exits (then runs the callback once) or the watch is dropped.
pub(crate) struct AdminWatch {
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminWatch").finish_non_exhaustive()
    }
}

/// A descriptor that becomes readable when process `pid` exits.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags, returns a new descriptor or -1, and touches no
    // memory of ours.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is the descriptor pidfd_open just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) })
}

impl AdminWatch {
    /// Starts watching process `pid`; `on_exit` runs on the watch's thread when it ends (at
    /// once when it is already gone). An error means the kernel offers no exit event for it
    /// (no pidfds): the transport's own failure detection remains.
    pub(crate) fn start(pid: u32, on_exit: impl FnOnce() + Send + 'static) -> io::Result<Self> {
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                on_exit();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&pidfd.as_raw_fd()),
            ADMIN_EXITED,
            Interest::READABLE,
        )?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let thread = std::thread::Builder::new()
            .name("thespian-admin-watch".into())
            .spawn(move || {
                let _pidfd = pidfd; // Open for as long as the poll uses it.
                let mut events = Events::with_capacity(4);
                loop {
                    match poll.poll(&mut events, None) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log::warn!("watching the admin's process failed: {e}");
                            return;
                        }
                    }
                    for event in events.iter() {
                        if event.token() == STOP {
                            return;
                        }
                        if event.token() == ADMIN_EXITED {
                            on_exit();
                            return;
                        }
                    }
                }
            })?;
        Ok(AdminWatch {
            waker,
            thread: Some(thread),
        })
    }
}

impl Drop for AdminWatch {
    fn drop(&mut self) {
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_end_of_a_watched_process_is_told_at_once() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep starts");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _watch = AdminWatch::start(child.id(), move || {
            let _ = tx.send(());
        })
        .expect("pidfds are supported");
        assert!(rx.try_recv().is_err(), "told before the process ended");
        child.kill().expect("kill");
        let _ = child.wait();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the exit is told");
    }

    #[test]
    fn a_dropped_watch_stops_its_thread_and_tells_nothing() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep starts");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let watch = AdminWatch::start(child.id(), move || {
            let _ = tx.send(());
        })
        .expect("pidfds are supported");
        drop(watch); // Joins the thread: it has stopped, and dropped the callback unrun.
        child.kill().expect("kill");
        let _ = child.wait();
        assert_eq!(
            rx.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
    }
}
