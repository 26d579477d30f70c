//! File-descriptor watches (Thespian's `ThespianWatch` → `WatchMessage`) on one mio poller.
//!
//! This module exists because an actor that serves sockets must not block a worker waiting for
//! them; the Queue base (behind its `watch` feature) and the actor processes of the
//! multi-process bases both watch this way. `ctx.watch(&fds)` asks for a `WatchMessage` when any of `fds` is readable, until
//! the actor's next message: the worker registers the fds here after that `receive` returns, and
//! clears them before the actor's next message. One poller thread (started with the first
//! watch) waits on a `mio::Poll`; when fds of an actor become readable it drops the actor's whole
//! watch and delivers one `WatchMessage { ready }` naming them. mio is edge-triggered, but a
//! watch is registered afresh for every message, and registering an fd that is already
//! readable reports it at once, so an actor that leaves data unread hears of it again. Invalid
//! or closed fds are dropped with a warning, as in Thespian.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use thespian_core::system_messages::Fd;
use thespian_core::ActorAddress;

/// The poller's own wake-up token.
const WAKE: Token = Token(usize::MAX);

#[derive(Default)]
struct Table {
    next_token: usize,
    by_token: HashMap<usize, (ActorAddress, Fd)>,
    by_actor: HashMap<u64, Vec<(usize, Fd)>>,
    by_fd: HashMap<Fd, u64>,
    stop: bool,
}

/// The registrations of all watching actors, and the handle to wake the poller thread.
pub struct Watcher {
    registry: Registry,
    waker: Waker,
    table: Mutex<Table>,
}

impl Watcher {
    /// A watcher and the `Poll` its thread must run ([`Watcher::run`]).
    pub fn new() -> io::Result<(Watcher, Poll)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        Ok((
            Watcher {
                registry,
                waker,
                table: Mutex::new(Table::default()),
            },
            poll,
        ))
    }

    /// The table, whatever a panicking holder left (every update keeps it consistent).
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces `actor`'s watch with `fds`. False when none of them could be watched.
    pub fn set(&self, actor: &ActorAddress, fds: &[Fd]) -> bool {
        let mut table = self.table();
        self.clear_locked(&mut table, actor.id());
        let mut registered = Vec::new();
        for &fd in fds {
            if registered.iter().any(|&(_, f)| f == fd) {
                continue;
            }
            if let Some(owner) = table.by_fd.get(&fd) {
                log::warn!("{actor}: fd {fd} is already watched by actor #{owner}; not watched");
                continue;
            }
            let token = table.next_token;
            table.next_token = (table.next_token + 1) % WAKE.0;
            let mut source = SourceFd(&fd);
            let result = match self
                .registry
                .register(&mut source, Token(token), Interest::READABLE)
            {
                // Registered earlier and never removed (e.g. a dup of a closed fd): re-arm it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.registry
                        .reregister(&mut source, Token(token), Interest::READABLE)
                }
                other => other,
            };
            match result {
                Ok(()) => {
                    table.by_token.insert(token, (actor.clone(), fd));
                    table.by_fd.insert(fd, actor.id());
                    registered.push((token, fd));
                }
                Err(e) => log::warn!("{actor}: cannot watch fd {fd} ({e}); dropped"),
            }
        }
        if registered.is_empty() {
            return false;
        }
        table.by_actor.insert(actor.id(), registered);
        true
    }

    /// Drops `actor`'s watch, if any.
    pub fn clear(&self, actor_id: u64) {
        let mut table = self.table();
        self.clear_locked(&mut table, actor_id);
    }

    fn clear_locked(&self, table: &mut Table, actor_id: u64) {
        if let Some(registrations) = table.by_actor.remove(&actor_id) {
            for (token, fd) in registrations {
                table.by_token.remove(&token);
                table.by_fd.remove(&fd);
                // A closed fd has already left the epoll set; nothing to undo then.
                let _ = self.registry.deregister(&mut SourceFd(&fd));
            }
        }
    }

    /// Actors with an active watch.
    #[cfg(test)]
    fn watching(&self) -> usize {
        self.table().by_actor.len()
    }

    /// Makes [`Watcher::run`] return.
    pub fn stop(&self) {
        self.table().stop = true;
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the watch poller: {e}");
        }
    }

    /// The poller thread: waits for readiness and calls `deliver(actor, ready_fds)` once per
    /// actor whose watched fds became readable (its watch is dropped first).
    pub fn run(&self, mut poll: Poll, mut deliver: impl FnMut(ActorAddress, Vec<Fd>)) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("watch poller failed ({e}); fd watches stop working");
                return;
            }
            let mut ready: HashMap<u64, (ActorAddress, Vec<Fd>)> = HashMap::new();
            {
                let mut table = self.table();
                if table.stop {
                    return;
                }
                for event in events.iter() {
                    if event.token() == WAKE {
                        continue;
                    }
                    if let Some((actor, fd)) = table.by_token.get(&event.token().0) {
                        ready
                            .entry(actor.id())
                            .or_insert_with(|| (actor.clone(), Vec::new()))
                            .1
                            .push(*fd);
                    }
                }
                for id in ready.keys() {
                    self.clear_locked(&mut table, *id);
                }
            }
            for (_, (actor, mut fds)) in ready {
                fds.sort_unstable();
                fds.dedup();
                deliver(actor, fds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use thespian_core::SystemId;

    #[test]
    fn readable_fd_is_reported_once_then_forgotten() {
        let (watcher, poll) = Watcher::new().unwrap();
        let watcher = std::sync::Arc::new(watcher);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let watcher = watcher.clone();
            std::thread::spawn(move || watcher.run(poll, |a, fds| tx.send((a, fds)).unwrap()))
        };
        let (mut a, b) = UnixStream::pair().unwrap();
        let actor = ActorAddress::new(SystemId::from_raw(9), 3);
        assert!(watcher.set(&actor, &[b.as_raw_fd(), b.as_raw_fd()]));
        assert!(!watcher.set(&ActorAddress::new(SystemId::from_raw(9), 4), &[-1]));
        a.write_all(b"x").unwrap();
        let (who, fds) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!((who, fds), (actor.clone(), vec![b.as_raw_fd()]));
        assert_eq!(watcher.watching(), 0, "a delivered watch is dropped");
        // Still readable: watching again reports it at once.
        assert!(watcher.set(&actor, &[b.as_raw_fd()]));
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
        watcher.stop();
        thread.join().unwrap();
    }
}
