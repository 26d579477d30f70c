//! Thespian's `test_troupe*.py` (reference §7, §10) on every base, with Thespian 3.9.8+
//! behaviour: one message goes to one worker and the reply comes from it; `max_count` holds
//! under a burst of 100; `idle_count` workers stay after it and the extra ones are dismissed;
//! the work of a worker killed mid-work completes on another; work in progress keeps its
//! worker; the status and settings commands answer Thespian's texts; the leader's exit takes
//! every worker; 10,000 messages are each handled exactly once. Beyond Thespian: a bounded
//! pending queue sheds load as `PoisonMessage`, failing work returns to its sender as poison,
//! and work with an affinity key stays with one worker.
//!
//! Determinism without timing: the burst uses work in progress ([`Job`], finished only by a
//! [`Finish`] the scenario sends), so which worker holds what is decided by messages, never by
//! how fast a worker runs. Each worker is a process on the multi-process bases, so the troupes
//! here stay at three workers or fewer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{ActorStatus, StatusRequest};
use thespian_troupe::{
    Troupe, TroupeMember, TroupeSettings, TroupeStatus, TroupeStatusRequest, UpdateTroupeSettings,
};

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_until, assert_gone, describe, listen_env, listen_none, start, NO_REPLY_TIMEOUT,
    REPLY_TIMEOUT,
};

/// Work that stays in progress until the worker gets a [`Finish`]; the worker answers
/// [`Started`] at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job(u32);

/// Finishes a worker's job in progress; the worker answers [`Finished`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Finish;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Started {
    job: u32,
    worker: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Finished {
    job: u32,
    worker: ActorAddress,
}

/// Work with an affinity key.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Keyed {
    key: u64,
    seq: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyedDone {
    key: u64,
    seq: u32,
    worker: ActorAddress,
}

message!(
    Job = "conformance.troupe.Job",
    Finish = "conformance.troupe.Finish",
    Started = "conformance.troupe.Started",
    Finished = "conformance.troupe.Finished",
    Keyed = "conformance.troupe.Keyed",
    KeyedDone = "conformance.troupe.KeyedDone",
);

/// The dismissal debounce of the troupes here: short, so extras go quickly.
const DISMISS_AFTER: Duration = Duration::from_millis(20);

/// A troupe member: a `u32` is answered with itself, `"fail"` fails, `"whoami"` answers the
/// worker's address, a [`Job`] stays in progress until a [`Finish`], a [`Keyed`] is answered
/// with a [`KeyedDone`].
#[derive(Default)]
struct Member {
    job: Option<(u32, ActorAddress)>,
}

impl Actor for Member {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let me = ctx.my_address().clone();
        if let Some(n) = env.try_get::<u32>() {
            ctx.send(env.sender(), *n)?;
        } else if let Some(text) = env.try_get::<String>() {
            match text.as_str() {
                "fail" => return Err("asked to fail".into()),
                "whoami" => ctx.send(env.sender(), me)?,
                _ => {}
            }
        } else if let Some(job) = env.try_get::<Job>() {
            self.job = Some((job.0, env.sender().clone()));
            ctx.send(
                env.sender(),
                Started {
                    job: job.0,
                    worker: me,
                },
            )?;
        } else if env.is::<Finish>() {
            if let Some((job, client)) = self.job.take() {
                ctx.send(&client, Finished { job, worker: me })?;
            }
        } else if let Some(keyed) = env.try_get::<Keyed>() {
            let done = KeyedDone {
                key: keyed.key,
                seq: keyed.seq,
                worker: me,
            };
            ctx.send(env.sender(), done)?;
        }
        Ok(())
    }
}

impl TroupeMember for Member {
    fn troupe_settings() -> TroupeSettings {
        TroupeSettings::default()
            .max_count(3)
            .idle_count(1)
            .dismiss_after(DISMISS_AFTER)
    }

    fn work_in_progress(&self) -> bool {
        self.job.is_some()
    }

    fn affinity_key(env: &Envelope) -> Option<u64> {
        env.try_get::<Keyed>().map(|k| k.key)
    }
}

/// A member whose troupe has one worker and room for two waiting jobs.
#[derive(Default)]
struct Shedder(Member);

impl Actor for Shedder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        self.0.receive(env, ctx)
    }
}

impl TroupeMember for Shedder {
    fn troupe_settings() -> TroupeSettings {
        Member::troupe_settings().max_count(1).pending_limit(2)
    }

    fn work_in_progress(&self) -> bool {
        self.0.work_in_progress()
    }
}

thespian::register_actors!(Troupe<Member>, Troupe<Shedder>);

/// Takes an envelope's message as a `T`, with a clear panic on another type.
fn expect<T: Message>(env: Envelope) -> T {
    let description = describe(&env);
    env.take::<T>().unwrap_or_else(|e| {
        panic!(
            "expected a {}, got {description} ({})",
            T::wire_name(),
            e.error()
        )
    })
}

fn troupe_status(sys: &ActorSystem, troupe: &ActorAddress) -> TroupeStatus {
    ask(sys, troupe, TroupeStatusRequest)
}

/// Sends `jobs` [`Job`]s to the troupe from a private endpoint and finishes each as it
/// starts; returns the workers that started them. Before finishing any, checks that `max`
/// workers hold work and the rest wait.
fn burst(
    sys: &ActorSystem,
    troupe: &ActorAddress,
    jobs: u32,
    max: usize,
) -> BTreeSet<ActorAddress> {
    let client = sys.private().expect("a private endpoint");
    for j in 0..jobs {
        client.tell(troupe, Job(j)).expect("tell is accepted");
    }
    // The status is asked after the jobs are in (the Started replies go to `client`).
    let status = ask_until(sys, troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.pending + s.workers == jobs as usize
    });
    assert_eq!(status.workers, max, "{status:?}");
    assert_eq!(status.pending, jobs as usize - max, "{status:?}");
    let mut workers = BTreeSet::new();
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    while finished.len() < jobs as usize {
        let env = listen_env(&client);
        if let Some(s) = env.try_get::<Started>() {
            assert!(started.insert(s.job), "job {} started twice", s.job);
            workers.insert(s.worker.clone());
            client.tell(&s.worker, Finish).expect("tell is accepted");
        } else {
            let f = expect::<Finished>(env);
            assert!(finished.insert(f.job), "job {} finished twice", f.job);
        }
    }
    assert_eq!(workers.len(), max, "the burst used {workers:?}");
    workers
}

pub(crate) fn one_message_to_one_worker(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let reply = sys
        .ask(&troupe, 7u32, REPLY_TIMEOUT)
        .expect("ask is accepted")
        .expect("a reply");
    assert_ne!(
        reply.sender(),
        &troupe,
        "the reply comes from the worker, not the leader"
    );
    assert_eq!(expect::<u32>(reply.clone()), 7);
    listen_none(&sys);
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 1
    });
    assert_eq!(status.workers, 1, "{status:?}");
    assert_eq!(status.worker_addresses, vec![reply.sender().clone()]);
}

pub(crate) fn max_count_respected_under_a_burst_of_100(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    burst(&sys, &troupe, 100, 3);
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 100
    });
    assert!(status.workers <= 3, "{status:?}");
}

pub(crate) fn idle_count_kept_after_the_burst(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let reply: String = ask(&sys, &troupe, "troupe:set_idle_count=2".to_string());
    assert_eq!(reply, "Set troupe idle_count to 2");
    burst(&sys, &troupe, 100, 3);
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 100 && s.workers == 2
    });
    assert_eq!(
        (status.idle, status.extra, status.pending),
        (2, 0, 0),
        "{status:?}"
    );
}

pub(crate) fn extra_workers_are_dismissed(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let workers = burst(&sys, &troupe, 100, 3);
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 100 && s.workers == 1
    });
    assert_eq!((status.idle, status.extra), (1, 0), "{status:?}");
    for worker in workers
        .iter()
        .filter(|w| !status.worker_addresses.contains(w))
    {
        assert_gone(&sys, worker);
    }
    // The one left still works.
    let me: ActorAddress = ask(&sys, &troupe, "whoami".to_string());
    assert_eq!(vec![me], status.worker_addresses);
}

pub(crate) fn worker_killed_mid_work_completes_on_another(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    sys.tell(&troupe, Job(1)).expect("tell is accepted");
    let first = expect::<Started>(listen_env(&sys));
    sys.tell(&first.worker, ActorExitRequest::new())
        .expect("tell is accepted");
    let again = expect::<Started>(listen_env(&sys));
    assert_eq!(again.job, 1);
    assert_ne!(
        again.worker, first.worker,
        "the work moved to another worker"
    );
    sys.tell(&again.worker, Finish).expect("tell is accepted");
    let done = expect::<Finished>(listen_env(&sys));
    assert_eq!((done.job, &done.worker), (1, &again.worker));
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 1
    });
    assert_eq!(status.worker_addresses, vec![again.worker], "{status:?}");
    listen_none(&sys);
}

pub(crate) fn work_in_progress_keeps_its_worker(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let reply: String = ask(&sys, &troupe, "troupe:set_max_count=1".to_string());
    assert_eq!(reply, "Set troupe max_count to 1");
    sys.tell(&troupe, Job(1)).expect("tell is accepted");
    sys.tell(&troupe, Job(2)).expect("tell is accepted");
    let first = expect::<Started>(listen_env(&sys));
    assert_eq!(first.job, 1);
    // Job 2 waits: the only worker has work in progress.
    listen_none(&sys);
    let status = troupe_status(&sys, &troupe);
    assert_eq!((status.workers, status.pending), (1, 1), "{status:?}");
    sys.tell(&first.worker, Finish).expect("tell is accepted");
    let done = expect::<Finished>(listen_env(&sys));
    assert_eq!(done.job, 1);
    let second = expect::<Started>(listen_env(&sys));
    assert_eq!((second.job, &second.worker), (2, &first.worker));
    sys.tell(&second.worker, Finish).expect("tell is accepted");
    assert_eq!(expect::<Finished>(listen_env(&sys)).job, 2);
}

pub(crate) fn status_and_settings_commands(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let line: String = ask(&sys, &troupe, "troupe:status?".to_string());
    assert_eq!(
        line,
        "Idle=1, Max=3, Troupers [0, 0 idle, 0 extra]: [], Pending=0"
    );
    let reply: String = ask(&sys, &troupe, "troupe:set_max_count=2".to_string());
    assert_eq!(reply, "Set troupe max_count to 2");
    let reply: String = ask(&sys, &troupe, "troupe:set_max_count=nine".to_string());
    assert_eq!(
        reply,
        "Error changing max_count for troupe based on message \"troupe:set_max_count=nine\": \
         invalid literal for int() with base 10: 'nine'"
    );
    let me: ActorAddress = ask(&sys, &troupe, "whoami".to_string());
    let line = ask_until(&sys, &troupe, "troupe:status?".to_string(), |l: &String| {
        l.contains("1 idle")
    });
    assert_eq!(
        line,
        format!("Idle=1, Max=2, Troupers [1, 1 idle, 0 extra]: ['I:{me}'], Pending=0")
    );
    let update = UpdateTroupeSettings::new(Some(4), None).expect("valid");
    let effective: UpdateTroupeSettings = ask(&sys, &troupe, update);
    assert_eq!(
        (effective.max_count, effective.idle_count),
        (Some(4), Some(1))
    );
    assert!(UpdateTroupeSettings::new(None, Some(0)).is_err());
    let status = troupe_status(&sys, &troupe);
    assert_eq!((status.max_count, status.idle_count), (4, 1), "{status:?}");
}

pub(crate) fn leader_exit_exits_every_worker(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let client = sys.private().expect("a private endpoint");
    for j in 0..3 {
        client.tell(&troupe, Job(j)).expect("tell is accepted");
    }
    let workers: Vec<ActorAddress> = (0..3)
        .map(|_| expect::<Started>(listen_env(&client)).worker)
        .collect();
    sys.tell(&troupe, ActorExitRequest::new())
        .expect("tell is accepted");
    await_exit(&sys, &troupe);
    // Children exit first: once the leader is gone, so are its workers.
    for worker in &workers {
        assert_gone(&sys, worker);
    }
}

/// Waits until `actor`, asked to exit, is gone: it may still answer a status request (as
/// exiting) while its children exit first. Each attempt is a status round trip, never a sleep.
fn await_exit(sys: &ActorSystem, actor: &ActorAddress) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let Some(env) = sys
            .ask(actor, StatusRequest, NO_REPLY_TIMEOUT)
            .expect("ask is accepted")
        else {
            return;
        };
        let status = expect::<ActorStatus>(env);
        assert!(
            status.exiting,
            "{actor} was asked to exit but is not exiting"
        );
        assert!(
            Instant::now() < deadline,
            "{actor} still exiting after {REPLY_TIMEOUT:?}"
        );
    }
}

pub(crate) fn ten_thousand_messages_each_handled_once(base: TestBase) {
    const N: u32 = 10_000;
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    // At most `WINDOW` messages outstanding, so the replies never fill the bounded queues
    // on their way back (a reply over a full queue would return to the worker, not here): half
    // the Udp base's 128 unacknowledged datagrams per peer, which the workers' replies share.
    const WINDOW: u32 = 64;
    let mut seen = vec![false; N as usize];
    let mut received = 0;
    let mut to_send: VecDeque<u32> = (0..N).collect();
    let mut outstanding = 0;
    while received < N {
        if outstanding < WINDOW {
            if let Some(&n) = to_send.front() {
                // A full queue (SPEC §8.13) is back-pressure: take a reply, then try again.
                match sys.tell(&troupe, n) {
                    Ok(()) => {
                        to_send.pop_front();
                        outstanding += 1;
                        continue;
                    }
                    Err(thespian::Error::QueueFull { .. }) => {}
                    Err(e) => panic!("tell {n} failed: {e}"),
                }
            }
        }
        let Some(env) = sys.listen(REPLY_TIMEOUT).expect("listen is accepted") else {
            let status = troupe_status(&sys, &troupe);
            panic!(
                "no reply within {REPLY_TIMEOUT:?} with {received} of {N} received and \
                 {outstanding} outstanding; the troupe: {status:?}"
            );
        };
        outstanding -= 1;
        if let Some(poison) = env.try_get::<PoisonMessage>() {
            // A full queue on the way returns the message undelivered: send it again.
            let n = *poison.poison_message.get::<u32>().expect("a returned u32");
            assert!(poison.details.contains("full"), "{}", poison.details);
            to_send.push_back(n);
            continue;
        }
        let n = expect::<u32>(env);
        assert!(
            !std::mem::replace(&mut seen[n as usize], true),
            "{n} handled twice"
        );
        received += 1;
    }
    listen_none(&sys);
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == u64::from(N)
    });
    assert!(status.workers <= 3, "{status:?}");
    assert_eq!(status.pending, 0);
}

pub(crate) fn pending_bound_sheds_load_as_poison(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Shedder>>().expect("created");
    for j in 0..4 {
        sys.tell(&troupe, Job(j)).expect("tell is accepted");
    }
    // Job 0 is with the one worker, jobs 1 and 2 wait, job 3 is over the bound.
    let mut poisoned = None;
    let mut started = None;
    while poisoned.is_none() || started.is_none() {
        let env = listen_env(&sys);
        if let Some(s) = env.try_get::<Started>() {
            started = Some(s.clone());
        } else {
            poisoned = Some(expect::<PoisonMessage>(env));
        }
    }
    let poison = poisoned.expect("poison");
    assert_eq!(poison.poison_message.get::<Job>().expect("a job").0, 3);
    assert!(
        poison.details.contains("pending limit"),
        "{}",
        poison.details
    );
    let mut worker = started.expect("started").worker;
    for j in 0..3 {
        sys.tell(&worker, Finish).expect("tell is accepted");
        assert_eq!(expect::<Finished>(listen_env(&sys)).job, j);
        if j < 2 {
            let next = expect::<Started>(listen_env(&sys));
            assert_eq!(next.job, j + 1);
            worker = next.worker;
        }
    }
    let status = ask_until(&sys, &troupe, TroupeStatusRequest, |s: &TroupeStatus| {
        s.handled == 3
    });
    assert_eq!(status.rejected, 1, "{status:?}");
}

pub(crate) fn failing_work_returns_to_its_sender_as_poison(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    let poison: PoisonMessage = ask(&sys, &troupe, "fail".to_string());
    assert_eq!(
        poison.poison_message.get::<String>().expect("a string"),
        "fail"
    );
    // The worker goes on with the next work.
    assert_eq!(ask::<u32>(&sys, &troupe, 5u32), 5);
}

/// Work of one key is done in the order it was sent, whichever worker takes it. (That a key
/// stays with its worker while work of it waits or is there, and is unbound after, is the
/// policy's rule, checked by thespian-troupe's property tests: here the items of a key may
/// find it unbound between two of them, as the transport spaces them.)
pub(crate) fn keyed_work_keeps_its_order(base: TestBase) {
    let sys = start(base);
    let troupe = sys.create_actor::<Troupe<Member>>().expect("created");
    for seq in 0..10 {
        for key in 0..3 {
            sys.tell(&troupe, Keyed { key, seq })
                .expect("tell is accepted");
        }
    }
    let mut next: BTreeMap<u64, u32> = BTreeMap::new();
    for _ in 0..30 {
        let done = expect::<KeyedDone>(listen_env(&sys));
        let expected = next.entry(done.key).or_insert(0);
        assert_eq!(done.seq, *expected, "key {} out of order", done.key);
        *expected += 1;
    }
    assert_eq!(next.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
    listen_none(&sys);
}
