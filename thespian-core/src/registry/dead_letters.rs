//! Dead-letter routing: the one handler of a system, and where a message to a dead actor goes.
//!
//! Both registries of thespian-rs (the in-process [`Registry`](super::Registry) and the
//! multi-process admin) keep a [`DeadLetters`] and carry out its [`DeadLetterRoute`]s.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::address::ActorAddress;
use crate::message::Payload;
use crate::system_messages::{is_never_dead_lettered, DeadEnvelope, PoisonMessage};

/// Where an undeliverable message goes.
#[derive(Debug)]
pub enum DeadLetterRoute {
    /// To the dead-letter handler, wrapped in a `DeadEnvelope`.
    Handler {
        /// The handler.
        handler: ActorAddress,
        /// The `DeadEnvelope`.
        payload: Payload,
    },
    /// Back to the sender as `PoisonMessage(message, "Child Aborted")`: the target never started.
    ChildAborted {
        /// The original sender.
        sender: ActorAddress,
        /// The `PoisonMessage`.
        payload: Payload,
    },
    /// Nowhere: logged (at debug) and dropped.
    Drop,
}

/// The dead-letter handler of one system and the actors that never started.
///
/// One handler per system: the latest registration wins, only the current handler can
/// unregister, and a handler that exits is unregistered. A message to an actor that never
/// started returns to its sender as `Child Aborted` poison (unless it is poison itself, or a
/// message that is never dead-lettered); any other dead letter goes to the handler, wrapped in a
/// `DeadEnvelope`, unless the dead target is the handler itself, or there is none: then it is
/// logged at debug and dropped. `DeadEnvelope` and `ChildActorExited` are never dead-lettered.
#[derive(Debug, Default)]
pub struct DeadLetters {
    handler: Option<ActorAddress>,
    aborted: HashSet<ActorAddress>,
    /// Dead letters routed so far (a counter for status reports; relaxed, never a scan).
    routed: AtomicU64,
}

impl DeadLetters {
    /// No handler, no aborted actors.
    pub fn new() -> DeadLetters {
        DeadLetters::default()
    }

    /// Registers (`enable`) `actor` as the handler (latest wins), or unregisters it if it is
    /// the current one.
    pub fn handle(&mut self, actor: &ActorAddress, enable: bool) {
        if enable {
            self.handler = Some(actor.clone());
        } else if self.handler.as_ref() == Some(actor) {
            self.handler = None;
        }
    }

    /// The current handler.
    pub fn handler(&self) -> Option<&ActorAddress> {
        self.handler.as_ref()
    }

    /// `actor` exited: if it was the handler, there is none now.
    pub fn exited(&mut self, actor: &ActorAddress) {
        if self.handler.as_ref() == Some(actor) {
            self.handler = None;
        }
    }

    /// Forgets the handler, whoever it is (the system's actors are gone).
    pub fn unregister(&mut self) {
        self.handler = None;
    }

    /// The actor planned at `actor` never started: messages to it return as `Child Aborted`.
    pub fn never_started(&mut self, actor: ActorAddress) {
        self.aborted.insert(actor);
    }

    /// Dead letters routed so far (those never dead-lettered, such as `ChildActorExited`,
    /// excluded).
    pub fn count(&self) -> u64 {
        self.routed.load(Ordering::Relaxed)
    }

    /// True when `actor` was planned and never started.
    pub fn is_aborted(&self, actor: &ActorAddress) -> bool {
        self.aborted.contains(actor)
    }

    /// Decides where `payload`, sent by `sender` to the dead `target`, goes.
    pub fn route(
        &self,
        target: &ActorAddress,
        sender: ActorAddress,
        payload: Payload,
    ) -> DeadLetterRoute {
        if is_never_dead_lettered(&payload) {
            log::debug!("discarding {} to dead {target}", payload.type_name());
            return DeadLetterRoute::Drop;
        }
        self.routed.fetch_add(1, Ordering::Relaxed);
        if self.aborted.contains(target) && !payload.has_type::<PoisonMessage>() {
            let poison = Payload::new(PoisonMessage::new(payload, "Child Aborted"));
            return DeadLetterRoute::ChildAborted {
                sender,
                payload: poison,
            };
        }
        match &self.handler {
            Some(handler) if handler != target => DeadLetterRoute::Handler {
                handler: handler.clone(),
                payload: Payload::new(DeadEnvelope::new(target.clone(), payload)),
            },
            _ => {
                log::debug!("dead letter to {target} dropped (no handler): {payload:?}");
                DeadLetterRoute::Drop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::SystemId;
    use crate::system_messages::ChildActorExited;

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(1), id)
    }

    /// The route in short: `(to, original text)` for a handler or a sender, `None` for a drop.
    fn route(dl: &DeadLetters, target: u64, payload: Payload) -> Option<(ActorAddress, String)> {
        match dl.route(&a(target), a(100), payload) {
            DeadLetterRoute::Handler { handler, payload } => {
                let envelope = payload.get::<DeadEnvelope>().expect("a DeadEnvelope");
                assert_eq!(envelope.dead_address, a(target));
                let text = envelope.dead_message.get::<String>().expect("text").clone();
                Some((handler, text))
            }
            DeadLetterRoute::ChildAborted { sender, payload } => {
                let poison = payload.get::<PoisonMessage>().expect("poison");
                assert_eq!(poison.details, "Child Aborted");
                let text = poison.poison_message.get::<String>().expect("text").clone();
                Some((sender, text))
            }
            DeadLetterRoute::Drop => None,
        }
    }

    fn text(s: &str) -> Payload {
        Payload::new(s.to_owned())
    }

    #[test]
    fn the_latest_handler_wins_and_only_the_current_one_unregisters() {
        let mut dl = DeadLetters::new();
        assert_eq!(route(&dl, 5, text("lost")), None);
        dl.handle(&a(1), true);
        dl.handle(&a(2), true);
        assert_eq!(dl.handler(), Some(&a(2)));
        assert_eq!(route(&dl, 5, text("x")), Some((a(2), "x".into())));
        dl.handle(&a(1), false);
        assert_eq!(dl.handler(), Some(&a(2)));
        dl.exited(&a(1));
        assert_eq!(dl.handler(), Some(&a(2)));
        // A dead letter to the dead handler itself is dropped, never sent to it.
        assert_eq!(route(&dl, 2, text("x")), None);
        dl.handle(&a(2), false);
        assert_eq!(dl.handler(), None);
        dl.handle(&a(3), true);
        dl.exited(&a(3));
        assert_eq!(dl.handler(), None);
        dl.handle(&a(4), true);
        dl.unregister();
        assert_eq!(dl.handler(), None);
    }

    #[test]
    fn messages_to_an_actor_that_never_started_return_as_child_aborted() {
        let mut dl = DeadLetters::new();
        dl.handle(&a(1), true);
        dl.never_started(a(7));
        assert!(dl.is_aborted(&a(7)) && !dl.is_aborted(&a(8)));
        assert_eq!(route(&dl, 7, text("hi")), Some((a(100), "hi".into())));
        // Poison is not returned again (no ping-pong): it goes to the handler.
        let poison = Payload::new(PoisonMessage::new(text("p"), "Child Aborted"));
        assert!(matches!(
            dl.route(&a(7), a(100), poison),
            DeadLetterRoute::Handler { handler, .. } if handler == a(1)
        ));
        assert_eq!(route(&dl, 8, text("hi")), Some((a(1), "hi".into())));
    }

    #[test]
    fn dead_envelopes_and_child_exits_are_never_dead_lettered() {
        let mut dl = DeadLetters::new();
        dl.handle(&a(1), true);
        dl.never_started(a(7));
        for target in [5, 7] {
            let envelope = Payload::new(DeadEnvelope::new(a(9), text("x")));
            assert!(matches!(
                dl.route(&a(target), a(100), envelope),
                DeadLetterRoute::Drop
            ));
            let exited = Payload::new(ChildActorExited::new(a(9)));
            assert!(matches!(
                dl.route(&a(target), a(100), exited),
                DeadLetterRoute::Drop
            ));
        }
    }
}
