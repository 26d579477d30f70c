//! Errors as values: reading a message as the wrong type is `MessageError::WrongType` (inside
//! actors too), never a panic; a framework capability with a value of the wrong type makes
//! `start()` fail with `ThespianError::Capability`.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{MessageError, Payload, ThespianError};

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, builder, listen_none, start, Echo};

pub(crate) fn wrong_type_is_an_error_not_a_panic(base: TestBase) {
    let sys = start(base);
    let echo = sys.create_actor::<Echo>().expect("create");
    let reply = ask_env(&sys, &echo, "text");
    assert!(!reply.is::<u32>());
    assert_eq!(
        reply.get::<u32>(),
        Err(MessageError::WrongType {
            expected: "u32".into(),
            actual: "String".into(),
        })
    );
    let reply = match reply.take::<u32>() {
        Ok(n) => panic!("a String taken as u32: {n}"),
        Err(e) => {
            assert!(matches!(e.error(), MessageError::WrongType { .. }));
            e.into_inner()
        }
    };
    assert_eq!(reply.sender(), &echo, "the envelope is handed back intact");
    assert_eq!(reply.get::<String>().expect("still a String"), "text");

    // The same for messages that arrive as bytes.
    let (name, bytes) = Payload::new("text").to_wire().expect("encode");
    let wire = Payload::from_wire(name.clone(), bytes);
    assert!(matches!(
        wire.get::<u32>(),
        Err(MessageError::WrongType { .. })
    ));
    assert_eq!(wire.get::<String>().expect("decodes"), "text");
    let garbage = Payload::from_wire(name, vec![0xff, 0xff, 0xff]);
    assert!(matches!(
        garbage.get::<String>(),
        Err(MessageError::Decode { .. })
    ));
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Misread {
    as_string: String,
    as_vec: String,
    value: u32,
}

message!(Misread = "conformance.errors.Misread");

/// Reads every `u32` it gets as other types first, reporting the errors.
#[derive(Default)]
struct Misreader;

impl Actor for Misreader {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(value) = env.get::<u32>() {
            let as_string = match env.get::<String>() {
                Ok(s) => format!("read as String: {s}"),
                Err(e) => format!("{e:?}"),
            };
            let as_vec = match env.get::<Vec<u32>>() {
                Ok(v) => format!("read as Vec: {v:?}"),
                Err(e) => format!("{e:?}"),
            };
            let misread = Misread {
                as_string,
                as_vec,
                value: *value,
            };
            ctx.send(env.sender(), misread)?;
        }
        Ok(())
    }
}

pub(crate) fn wrong_type_inside_an_actor(base: TestBase) {
    let sys = start(base);
    let misreader = sys.create_actor::<Misreader>().expect("create");
    let misread: Misread = ask(&sys, &misreader, 7u32);
    assert_eq!(misread.value, 7);
    assert!(
        misread.as_string.starts_with("WrongType"),
        "{}",
        misread.as_string
    );
    assert!(
        misread.as_vec.starts_with("WrongType"),
        "{}",
        misread.as_vec
    );
    listen_none(&sys); // no poison: nothing failed
}

pub(crate) fn bad_capability_type_fails_start(base: TestBase) {
    let cases: [(&str, CapabilityValue); 4] = [
        ("Admin Port", "1900".into()),
        ("Admin Port", 70_000i64.into()),
        ("Process Startup Method", "fork".into()),
        ("Admin Routing", "yes".into()),
    ];
    for (key, value) in cases {
        match builder(base).capability(key, value.clone()).start() {
            Err(ThespianError::Capability(e)) => {
                assert_eq!(e.key, key);
                assert!(!e.reason.is_empty());
            }
            Ok(sys) => {
                let _ = sys.shutdown();
                panic!("{key} = {value} was accepted");
            }
            Err(other) => panic!("{key} = {value}: expected a Capability error, got {other:?}"),
        }
    }
    // Free-form keys take any value.
    let sys = builder(base)
        .capability("Anything", "goes")
        .start()
        .expect("free-form capabilities are accepted");
    sys.shutdown().expect("shutdown");
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Misreader);
