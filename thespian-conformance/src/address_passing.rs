//! Thespian's `test_actorAddressPassing.py`: messages routed by the addresses they carry keep
//! every actor's own address and every sender right, including addresses of freshly created
//! children passed between siblings.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, listen_env, listen_none, start, Addrs};

/// Goes through `route`, each hop recording `(its own address, the sender)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Bounce {
    route: Vec<ActorAddress>,
    trail: Vec<(ActorAddress, ActorAddress)>,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Bounced {
    trail: Vec<(ActorAddress, ActorAddress)>,
}

/// Asks an [`Introducer`] to create two children and introduce the first to the second.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Introduce;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meet {
    other: ActorAddress,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hi {
    reply_to: ActorAddress,
}

/// What the second child saw: who greeted it, and its own address.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Met {
    by: ActorAddress,
    me: ActorAddress,
}

message!(
    Bounce = "conformance.passing.Bounce",
    Bounced = "conformance.passing.Bounced",
    Introduce = "conformance.passing.Introduce",
    Meet = "conformance.passing.Meet",
    Hi = "conformance.passing.Hi",
    Met = "conformance.passing.Met",
);

#[derive(Default)]
struct Bouncer;

impl Actor for Bouncer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(bounce) = env.get::<Bounce>() {
            let mut next = bounce.clone();
            next.trail
                .push((ctx.my_address().clone(), env.sender().clone()));
            if next.route.is_empty() {
                ctx.send(&bounce.reply_to, Bounced { trail: next.trail })?;
            } else {
                let to = next.route.remove(0);
                ctx.send(&to, next)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn bouncing_keeps_identities(base: TestBase) {
    let sys = start(base);
    let [a, b, c] = [(); 3].map(|()| sys.create_actor::<Bouncer>().expect("create"));
    let outside = sys.my_address().clone();
    let bounce = Bounce {
        route: vec![b.clone(), c.clone(), a.clone(), b.clone()],
        trail: Vec::new(),
        reply_to: outside.clone(),
    };
    let bounced: Bounced = ask(&sys, &a, bounce);
    assert_eq!(
        bounced.trail,
        vec![
            (a.clone(), outside),
            (b.clone(), a.clone()),
            (c.clone(), b.clone()),
            (a.clone(), c),
            (b, a),
        ]
    );
}

#[derive(Default)]
struct Introducer;

impl Actor for Introducer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<Introduce>() {
            let first = ctx.create_actor::<Sibling>()?;
            let second = ctx.create_actor::<Sibling>()?;
            let meet = Meet {
                other: second.clone(),
                reply_to: env.sender().clone(),
            };
            ctx.send(&first, meet)?;
            ctx.send(env.sender(), Addrs(vec![first, second]))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Sibling;

impl Actor for Sibling {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(meet) = env.get::<Meet>() {
            let hi = Hi {
                reply_to: meet.reply_to.clone(),
            };
            ctx.send(&meet.other, hi)?;
        } else if let Ok(hi) = env.get::<Hi>() {
            let met = Met {
                by: env.sender().clone(),
                me: ctx.my_address().clone(),
            };
            ctx.send(&hi.reply_to, met)?;
        }
        Ok(())
    }
}

pub(crate) fn sibling_addresses_passed_by_the_parent(base: TestBase) {
    let sys = start(base);
    let introducer = sys.create_actor::<Introducer>().expect("create");
    // Two messages come back, from two actors, in either order.
    let envelopes = [ask_env(&sys, &introducer, Introduce), listen_env(&sys)];
    let mut children = None;
    let mut met = None;
    for env in envelopes {
        if let Ok(addrs) = env.get::<Addrs>() {
            assert_eq!(env.sender(), &introducer);
            children = Some(addrs.0.clone());
        } else if let Ok(m) = env.get::<Met>() {
            met = Some((env.sender().clone(), m.clone()));
        }
    }
    let children = children.expect("the introducer replied with its children");
    let (met_sender, met) = met.expect("the second child reported");
    assert_eq!(children.len(), 2);
    assert_ne!(children[0], children[1]);
    assert_eq!(
        met.by, children[0],
        "the second child was greeted by the first"
    );
    assert_eq!(met.me, children[1]);
    assert_eq!(met_sender, children[1]);
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Bouncer, Introducer, Sibling);
