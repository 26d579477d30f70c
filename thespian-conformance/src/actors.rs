//! Thespian's `test_actors.py`: unique addresses, printable addresses, address equality (and,
//! unlike Thespian, hashing), sub-actor creation, and a multi-message Romeo & Juliet
//! conversation. (Double shutdown is in `shutdown`.)

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::Payload;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, spawn, start, status, Addrs, ChildrenQuery, Parent, Spawn};

/// Replies `its own address` to `who?`.
#[derive(Default)]
struct Whoami;

impl Actor for Whoami {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "who?") {
            ctx.send(env.sender(), ctx.my_address().clone())?;
        }
        Ok(())
    }
}

pub(crate) fn fifty_actors_have_unique_addresses(base: TestBase) {
    let sys = start(base);
    let addresses: Vec<ActorAddress> = (0..50)
        .map(|_| sys.create_actor::<Whoami>().expect("create"))
        .collect();
    let unique: HashSet<&ActorAddress> = addresses.iter().collect();
    assert_eq!(unique.len(), 50);
    assert!(!unique.contains(sys.my_address()));
    assert!(!unique.contains(&sys.admin_address()));
    for address in &addresses {
        let reply = ask_env(&sys, address, "who?");
        assert_eq!(reply.sender(), address);
        assert_eq!(reply.get::<ActorAddress>().expect("ActorAddress"), address);
    }
}

pub(crate) fn address_text_uses_only_expected_characters(base: TestBase) {
    let sys = start(base);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-~/():., '|>".contains(c);
    for _ in 0..100 {
        let address = sys.create_actor::<Whoami>().expect("create");
        for text in [address.to_string(), format!("{address:?}")] {
            assert!(!text.is_empty());
            assert!(
                text.chars().all(allowed),
                "address text {text:?} has unexpected characters"
            );
        }
    }
    for text in [
        sys.my_address().to_string(),
        sys.admin_address().to_string(),
    ] {
        assert!(text.chars().all(allowed), "{text:?}");
    }
}

pub(crate) fn address_equality_and_hash(base: TestBase) {
    let sys = start(base);
    let a = sys.create_actor::<Whoami>().expect("create");
    let b = sys.create_actor::<Whoami>().expect("create");
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    assert_ne!(b, a, "inequality is commutative");
    // The address the creator got is the one the actor sees as its own.
    assert_eq!(ask::<ActorAddress>(&sys, &a, "who?"), a);
    assert_eq!(ask::<ActorAddress>(&sys, &b, "who?"), b);
    // Addresses are hashable map keys.
    let mut names = HashMap::new();
    names.insert(a.clone(), "a");
    names.insert(b.clone(), "b");
    names.insert(a.clone(), "a again");
    assert_eq!(names.len(), 2);
    assert_eq!(names[&a], "a again");
    // An address that travelled as bytes is still equal (and hashes the same).
    let (name, bytes) = Payload::new(a.clone()).to_wire().expect("encode");
    let decoded = Payload::from_wire(name, bytes)
        .get::<ActorAddress>()
        .expect("decode")
        .clone();
    assert_eq!(decoded, a);
    assert_eq!(names[&decoded], "a again");
}

pub(crate) fn sub_actor_creation(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<Whoami>>().expect("create");
    let child = spawn(&sys, &parent, Spawn::child());
    assert_ne!(child, parent);
    assert_eq!(ask::<ActorAddress>(&sys, &child, "who?"), child);
    assert_eq!(status(&sys, &child).parent_address, parent);
    assert_eq!(ask::<Addrs>(&sys, &parent, ChildrenQuery).0, vec![child]);
}

/// Starts a scene: Romeo speaks first to `partner`; the last speaker tells `reply_to`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Scene {
    partner: ActorAddress,
    lines: u32,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    n: u32,
    last: u32,
    transcript: Vec<String>,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Curtain {
    transcript: Vec<String>,
}

message!(
    Scene = "conformance.actors.Scene",
    Line = "conformance.actors.Line",
    Curtain = "conformance.actors.Curtain",
);

fn speak(
    who: &str,
    line: &Line,
    to: &ActorAddress,
    ctx: &mut Context<'_>,
) -> Result<(), thespian::Error> {
    let mut transcript = line.transcript.clone();
    transcript.push(format!("{who} {}", line.n));
    if line.n == line.last {
        ctx.send(&line.reply_to, Curtain { transcript })
    } else {
        let next = Line {
            n: line.n + 1,
            last: line.last,
            transcript,
            reply_to: line.reply_to.clone(),
        };
        ctx.send(to, next)
    }
}

#[derive(Default)]
struct Romeo {
    juliet: Option<ActorAddress>,
}

impl Actor for Romeo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(scene) = env.get::<Scene>() {
            self.juliet = Some(scene.partner.clone());
            let first = Line {
                n: 0,
                last: scene.lines,
                transcript: Vec::new(),
                reply_to: scene.reply_to.clone(),
            };
            speak("Romeo", &first, &scene.partner, ctx)?;
        } else if let Ok(line) = env.get::<Line>() {
            let juliet = self.juliet.clone().ok_or("Romeo has no Juliet")?;
            if env.sender() != &juliet {
                return Err(format!("a line from {} instead of Juliet", env.sender()).into());
            }
            speak("Romeo", line, &juliet, ctx)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Juliet;

impl Actor for Juliet {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(line) = env.get::<Line>() {
            speak("Juliet", line, env.sender(), ctx)?;
        }
        Ok(())
    }
}

pub(crate) fn romeo_and_juliet(base: TestBase) {
    let sys = start(base);
    let romeo = sys.create_actor::<Romeo>().expect("create");
    let juliet = sys.create_actor::<Juliet>().expect("create");
    for lines in [0u32, 1, 2, 9, 30] {
        let scene = Scene {
            partner: juliet.clone(),
            lines,
            reply_to: sys.my_address().clone(),
        };
        let curtain: Curtain = ask(&sys, &romeo, scene);
        let expected: Vec<String> = (0..=lines)
            .map(|n| format!("{} {n}", if n % 2 == 0 { "Romeo" } else { "Juliet" }))
            .collect();
        assert_eq!(curtain.transcript, expected);
    }
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Whoami, Romeo, Juliet, Parent<Whoami>);
