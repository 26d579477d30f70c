//! Which descriptor watcher the runtime drives: `thespian-io`'s mio poller with the `watch`
//! feature, none without it.
//!
//! This module exists so the worker loop reads the same with and without the feature: it keeps
//! an optional watcher and clears or stops it when there is one. Without the feature the
//! watcher type has no values, so there never is one, and `ctx.watch` is the `Services`
//! default, a `NotSupported` error, as on any base without watches.

#[cfg(feature = "watch")]
pub(crate) use thespian_io::watch::Watcher;

#[cfg(not(feature = "watch"))]
pub(crate) use none::Watcher;

#[cfg(not(feature = "watch"))]
mod none {
    use thespian_core::system_messages::Fd;
    use thespian_core::ActorAddress;

    /// No watcher can exist without the `watch` feature: this type has no values.
    pub(crate) enum Watcher {}

    impl Watcher {
        pub(crate) fn set(&self, _actor: &ActorAddress, _fds: &[Fd]) -> bool {
            match *self {}
        }

        pub(crate) fn clear(&self, _actor_id: u64) {
            match *self {}
        }

        pub(crate) fn stop(&self) {
            match *self {}
        }
    }
}
