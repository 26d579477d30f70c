//! Descriptor watches (reference §3.15, Thespian's `ThespianWatch`): an actor asks to hear when
//! descriptors become readable, and gets a `WatchMessage` naming the ready ones, sent by
//! itself, until its next message. Descriptors belong to the actor's process, so the actor
//! makes its own socket pair. Bases without watches (`Thespian Watch Supported` false) refuse
//! the call instead (`not_supported`).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{keys, ActorError, WatchMessage};

use crate::bases::TestBase;
use crate::helpers::{ask, listen, listen_none, start};

/// What [`SelfWatcher`] saw in a `WatchMessage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ready {
    /// The message's ready descriptors.
    ready: Vec<i32>,
    /// The descriptor the actor watches.
    watched: i32,
    /// The message came from the actor itself.
    from_itself: bool,
    /// Bytes it read from the descriptor.
    read: Vec<u8>,
}

message!(Ready = "conformance.watch.Ready");

/// Watches the reading end of its own socket pair; "poke" writes to the other end.
#[derive(Default)]
struct SelfWatcher {
    pair: Option<(UnixStream, UnixStream)>,
    reporter: Option<ActorAddress>,
}

impl SelfWatcher {
    fn watched(&self) -> Result<i32, ActorError> {
        Ok(self.pair.as_ref().ok_or("not armed")?.1.as_raw_fd())
    }
}

impl Actor for SelfWatcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(watch) = env.get::<WatchMessage>() {
            let (_, reader) = self.pair.as_mut().ok_or("not armed")?;
            let mut read = vec![0u8; 64];
            let n = reader.read(&mut read)?;
            read.truncate(n);
            let report = Ready {
                ready: watch.ready.clone(),
                watched: reader.as_raw_fd(),
                from_itself: env.sender() == ctx.my_address(),
                read,
            };
            ctx.send(self.reporter.as_ref().ok_or("no reporter")?, report)?;
            return Ok(());
        }
        let command = env.get::<String>()?.clone();
        match command.as_str() {
            "arm" => {
                let (writer, reader) = UnixStream::pair()?;
                reader.set_nonblocking(true)?;
                self.pair = Some((writer, reader));
                self.reporter = Some(env.sender().clone());
                ctx.watch(&[self.watched()?])?;
                ctx.send(env.sender(), "watching")?;
            }
            // Writes, and renews the watch (every message ends the one before).
            "poke" => {
                self.pair.as_mut().ok_or("not armed")?.0.write_all(b"x")?;
                ctx.watch(&[self.watched()?])?;
            }
            // Writes without renewing: nobody is told.
            "poke unwatched" => {
                self.pair.as_mut().ok_or("not armed")?.0.write_all(b"y")?;
                ctx.send(env.sender(), "poked")?;
            }
            // Watches again: data already waiting is reported at once.
            "watch" => ctx.watch(&[self.watched()?])?,
            other => return Err(format!("unexpected command {other:?}").into()),
        }
        Ok(())
    }
}

pub(crate) fn readable_descriptor_delivers_a_watch_message(base: TestBase) {
    let sys = start(base);
    if !sys.capabilities().is_truthy(keys::WATCH_SUPPORTED) {
        return;
    }
    let watcher = sys.create_actor::<SelfWatcher>().expect("create");
    assert_eq!(ask::<String>(&sys, &watcher, "arm"), "watching");
    sys.tell(&watcher, "poke").expect("tell");
    let ready = listen::<Ready>(&sys);
    assert_eq!(ready.ready, vec![ready.watched], "{ready:?}");
    assert!(
        ready.from_itself,
        "a WatchMessage comes from the actor itself"
    );
    assert_eq!(ready.read, b"x");
    // The watch ended with that message and was not renewed: more data tells nobody.
    assert_eq!(ask::<String>(&sys, &watcher, "poke unwatched"), "poked");
    listen_none(&sys);
    // Watching again reports the data already waiting.
    sys.tell(&watcher, "watch").expect("tell");
    let ready = listen::<Ready>(&sys);
    assert_eq!(ready.ready, vec![ready.watched]);
    assert_eq!(ready.read, b"y");
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(SelfWatcher);
