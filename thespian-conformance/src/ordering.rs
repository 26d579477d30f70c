//! Reference §3.8: messages from one sender to one receiver arrive in the order sent, whoever
//! else sends to the same receiver meanwhile. (Messages from different senders keep no order
//! between them on a multi-process base, even when one caused the other.)

use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask_caught_up, start};

const COUNT: u32 = 50;

/// Records `(tag, n)` messages; `log?` replies them.
#[derive(Default)]
struct Recorder {
    log: Vec<(String, u32)>,
}

impl Actor for Recorder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(entry) = env.get::<(String, u32)>() {
            self.log.push(entry.clone());
        } else if env.get::<String>().is_ok_and(|t| t == "log?") {
            ctx.send(env.sender(), self.log.clone())?;
        }
        Ok(())
    }
}

/// `(to, tag)`, an address and a tag: sends `(tag, 0..COUNT)` to `to`, then replies `sent`.
#[derive(Default)]
struct Sprayer;

impl Actor for Sprayer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok((to, tag)) = env.get::<(ActorAddress, String)>() {
            for n in 0..COUNT {
                ctx.send(to, (tag.clone(), n))?;
            }
            ctx.send(env.sender(), "sent")?;
        }
        Ok(())
    }
}

pub(crate) fn per_sender_order_is_kept(base: TestBase) {
    let sys = start(base);
    let recorder = sys.create_actor::<Recorder>().expect("create");
    let sprayers = [
        sys.create_actor::<Sprayer>().expect("create"),
        sys.create_actor::<Sprayer>().expect("create"),
    ];
    for n in 0..COUNT / 2 {
        sys.tell(&recorder, ("outside".to_owned(), n))
            .expect("tell");
    }
    for (i, sprayer) in sprayers.iter().enumerate() {
        let spray = (recorder.clone(), format!("sprayer {i}"));
        // Not waiting for the reply yet: the sprayers run while the outside keeps telling.
        sys.tell(sprayer, spray).expect("tell");
    }
    for n in COUNT / 2..COUNT {
        sys.tell(&recorder, ("outside".to_owned(), n))
            .expect("tell");
    }
    for _ in &sprayers {
        let sent: String = crate::helpers::listen(&sys);
        assert_eq!(sent, "sent");
    }
    // Every entry was sent before its sender replied `sent`, but (on a multi-process base) the
    // sprayers' entries travel other connections than this ask: ask until they are all in.
    let log = ask_caught_up::<Vec<(String, u32)>>(base, &sys, &recorder, "log?", |log| {
        log.len() >= 3 * COUNT as usize
    });
    assert_eq!(log.len(), 3 * COUNT as usize);
    for tag in ["outside", "sprayer 0", "sprayer 1"] {
        let sequence: Vec<u32> = log
            .iter()
            .filter(|(t, _)| t == tag)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            sequence,
            (0..COUNT).collect::<Vec<u32>>(),
            "order from {tag}"
        );
    }
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Recorder, Sprayer);
