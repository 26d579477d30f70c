//! `Troupe<W>`: the actor that is a troupe's leader or one of its workers, a thin driver over
//! [`TroupePolicy`].
//!
//! As in Thespian, one actor type plays both roles, so a multi-process base that can create
//! the troupe can create its workers: the instance a user creates becomes the leader at its
//! first ordinary message; the instances the leader creates become workers at their first
//! [`TroupeWork`]. Workers run the member's own `receive` with the original sender, so replies
//! go straight from the worker to whoever sent the work.

use thespian_core::{
    Actor, ActorAddress, ActorError, ActorExitRequest, ActorResult, Capabilities, ChildActorExited,
    Context, CreateRequest, Envelope, NewActor, Payload, PoisonMessage, RequireCapability,
    Requirements, WakeupMessage,
};

use crate::messages::{
    TroupeReady, TroupeStatus, TroupeStatusRequest, TroupeWork, UpdateTroupeSettings,
};
use crate::policy::{Action, TroupePolicy, TroupeSettings, WorkId};

/// An actor type that can serve in a troupe: any actor, with the troupe's settings and the
/// per-member hooks as provided methods.
///
/// ```
/// use thespian_core::{Actor, ActorResult, Context, Envelope};
/// use thespian_troupe::{TroupeMember, TroupeSettings};
///
/// #[derive(Default)]
/// struct Squarer;
///
/// impl Actor for Squarer {
///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
///         let n: u64 = *env.get::<u64>()?;
///         ctx.send(env.sender(), n * n)?;
///         Ok(())
///     }
/// }
///
/// impl TroupeMember for Squarer {
///     fn troupe_settings() -> TroupeSettings {
///         TroupeSettings::default().max_count(4).idle_count(1)
///     }
/// }
/// // `ctx.create_actor::<Troupe<Squarer>>()` (or `sys.create_actor`) creates the troupe.
/// ```
pub trait TroupeMember: Actor + NewActor {
    /// The troupe's settings when it starts (Thespian's `@troupe(max_count, idle_count)`).
    fn troupe_settings() -> TroupeSettings {
        TroupeSettings::default()
    }

    /// Thespian's `troupe_work_in_progress`: true while this worker needs more messages to
    /// finish its work. While it is true the worker gets no more work and is not dismissed;
    /// when a later message leaves it false, the leader is told the worker is ready.
    fn work_in_progress(&self) -> bool {
        false
    }

    /// An affinity key for a message: work with the same key goes to one worker at a time,
    /// in order; a key stays with its worker while work of it waits or is being done there
    /// (and the worker lives), then the next work of it may go to any worker. `None` (the
    /// default): any worker.
    fn affinity_key(_envelope: &Envelope) -> Option<u64> {
        None
    }
}

/// The leader's worker handles and work items.
type Policy = TroupePolicy<ActorAddress, (Payload, ActorAddress)>;

enum Role {
    /// Not decided yet: system messages go to the member.
    Undecided,
    Leader(Box<Policy>),
    Worker {
        leader: ActorAddress,
        /// The work held, until the leader is told it is done.
        work: Option<WorkId>,
    },
}

/// A troupe of `W`s behind one address: create it like any actor (`create_actor::<Troupe<W>>`),
/// and register `Troupe<W>` by name for the multi-process bases.
///
/// The leader hands each message to one worker: the first idle one, else an extra one awaiting
/// dismissal, else a new one while fewer than `max_count` exist, else it waits (up to the
/// pending limit; over it the message comes back to its sender as a `PoisonMessage`). A worker
/// that exits has its work dispatched again. The leader also answers `"troupe:status?"`,
/// `"troupe:set_max_count=N"`, `"troupe:set_idle_count=N"` (Thespian's strings and replies),
/// [`TroupeStatusRequest`] and [`UpdateTroupeSettings`]. `ActorExitRequest` to the leader exits
/// every worker (they are its children).
pub struct Troupe<W> {
    member: W,
    role: Role,
}

impl<W: TroupeMember> NewActor for Troupe<W> {
    fn new_actor(caps: &Capabilities, reqs: &Requirements) -> Result<Self, ActorError> {
        Ok(Troupe {
            member: W::new_actor(caps, reqs)?,
            role: Role::Undecided,
        })
    }
}

impl<W: TroupeMember> Actor for Troupe<W> {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        // Work makes an undecided instance a worker; a leader keeps its role (work sent to
        // it is work like any other message).
        if !matches!(self.role, Role::Leader(_)) {
            if let Ok(work) = env.get::<TroupeWork>() {
                return self.work(env.sender(), work, ctx);
            }
        }
        match &mut self.role {
            Role::Worker { .. } => self.worker_message(env, ctx),
            Role::Undecided if env.payload().is_system() => self.member.receive(env, ctx),
            Role::Undecided => {
                self.role = Role::Leader(Box::new(Policy::new(W::troupe_settings())));
                self.receive(env, ctx)
            }
            Role::Leader(policy) => lead::<W>(policy, env, ctx),
        }
    }

    fn capability_check(caps: &Capabilities, requirements: &Requirements) -> bool {
        W::capability_check(caps, requirements)
    }

    fn required_capabilities() -> Vec<RequireCapability> {
        W::required_capabilities()
    }
}

impl<W: TroupeMember> Troupe<W> {
    /// A worker's work: the member handles it as sent by the original sender.
    fn work(
        &mut self,
        leader: &ActorAddress,
        work: &TroupeWork,
        ctx: &mut Context<'_>,
    ) -> ActorResult {
        self.role = Role::Worker {
            leader: leader.clone(),
            work: Some(work.id),
        };
        let envelope = Envelope::new(work.sender.clone(), work.message.clone());
        self.member.receive(&envelope, ctx)?;
        if !self.member.work_in_progress() {
            self.tell_ready(ctx);
        }
        Ok(())
    }

    /// Any other message to a worker: work in progress may finish with it.
    fn worker_message(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let was_in_progress = self.member.work_in_progress();
        self.member.receive(env, ctx)?;
        if was_in_progress && !self.member.work_in_progress() {
            self.tell_ready(ctx);
        }
        Ok(())
    }

    fn tell_ready(&mut self, ctx: &mut Context<'_>) {
        if let Role::Worker { leader, work } = &mut self.role {
            let ready = TroupeReady { id: work.take() };
            if let Err(e) = ctx.send(leader, ready) {
                log::warn!("troupe worker could not tell its leader it is ready: {e}");
            }
        }
    }
}

/// The leader's handling of one message.
fn lead<W: TroupeMember>(
    policy: &mut Policy,
    env: &Envelope,
    ctx: &mut Context<'_>,
) -> ActorResult {
    let sender = env.sender();
    let actions = if let Ok(ready) = env.get::<TroupeReady>() {
        policy.ready(sender, ready.id, &mut spawner::<W>(ctx))
    } else if let Ok(exited) = env.get::<ChildActorExited>() {
        policy.worker_exited(&exited.child_address, &mut spawner::<W>(ctx))
    } else if let Ok(poison) = env.get::<PoisonMessage>() {
        match poison.poison_message.get::<TroupeWork>() {
            Ok(work) => policy.failed(sender, work.id, &poison.details, &mut spawner::<W>(ctx)),
            Err(_) => {
                log::debug!(
                    "troupe leader ignores a returned message: {}",
                    poison.details
                );
                Vec::new()
            }
        }
    } else if env.is::<WakeupMessage>() {
        policy.dismiss_extras()
    } else if env.is::<TroupeStatusRequest>() {
        ctx.send(sender, status(policy))?;
        Vec::new()
    } else if let Ok(update) = env.get::<UpdateTroupeSettings>() {
        update_settings::<W>(policy, *update, sender, ctx)?
    } else if env.is::<ActorExitRequest>() {
        // The framework exits the leader after this, and its workers (its children) first:
        // their exits must not dispatch work again.
        policy.close();
        Vec::new()
    } else if env.payload().is_system() {
        log::debug!("troupe leader ignores {}", env.type_name());
        Vec::new()
    } else if let Some(command) = env
        .try_get::<String>()
        .and_then(|s| s.strip_prefix("troupe:"))
    {
        let reply = command_reply::<W>(policy, command, ctx);
        if let Some((text, actions)) = reply {
            ctx.send(sender, text)?;
            actions
        } else {
            new_work::<W>(policy, env, ctx)
        }
    } else {
        new_work::<W>(policy, env, ctx)
    };
    perform(actions, ctx);
    Ok(())
}

fn new_work<W: TroupeMember>(
    policy: &mut Policy,
    env: &Envelope,
    ctx: &mut Context<'_>,
) -> Actions {
    let key = W::affinity_key(env);
    let item = (env.payload().clone(), env.sender().clone());
    policy.new_work(item, key, &mut spawner::<W>(ctx))
}

/// Creates a worker for the policy.
fn spawner<'c, 'a: 'c, W: TroupeMember>(
    ctx: &'c mut Context<'a>,
) -> impl FnMut() -> Result<ActorAddress, String> + use<'c, 'a, W> {
    move || {
        ctx.create(CreateRequest::of::<Troupe<W>>())
            .map_err(|e| e.to_string())
    }
}

/// Carries out the policy's actions.
fn perform(actions: Actions, ctx: &mut Context<'_>) {
    for action in actions {
        match action {
            Action::Assign { worker, id, item } => {
                let (message, sender) = item;
                let work = TroupeWork {
                    message,
                    sender,
                    id,
                };
                // A worker that cannot be given its work is let go: its exit dispatches the
                // work again (and a worker already gone has its `ChildActorExited` coming).
                if let Err(e) = ctx.send(&worker, work) {
                    log::warn!("troupe leader could not send work to {worker}, letting it go: {e}");
                    if let Err(e) = ctx.send(&worker, ActorExitRequest::new()) {
                        log::warn!("troupe leader could not dismiss {worker}: {e}");
                    }
                }
            }
            Action::Reject { item, reason } => {
                let (message, sender) = item;
                if let Err(e) = ctx.send(&sender, PoisonMessage::new(message, reason)) {
                    log::warn!("troupe leader could not return work to {sender}: {e}");
                }
            }
            Action::Dismiss(worker) => {
                if let Err(e) = ctx.send(&worker, ActorExitRequest::new()) {
                    log::debug!("troupe leader could not dismiss {worker}: {e}");
                }
            }
            Action::ScheduleDismissal(delay) => ctx.wakeup_after(delay),
        }
    }
}

/// The typed status.
fn status(policy: &Policy) -> TroupeStatus {
    let counts = policy.counts();
    let settings = policy.settings();
    TroupeStatus {
        max_count: settings.max_count,
        idle_count: settings.idle_count,
        workers: counts.workers,
        idle: counts.idle,
        extra: counts.extra,
        pending: counts.pending,
        handled: counts.handled,
        rejected: counts.rejected,
        worker_addresses: policy.roster().map(|(_, w)| w.clone()).collect(),
    }
}

/// Thespian's status line: `Idle=2, Max=10, Troupers [3, 1 idle, 0 extra]: ['I:…', '…'],
/// Pending=0`.
pub(crate) fn status_line<
    A: std::fmt::Display + Clone + Eq + std::hash::Hash + std::fmt::Debug,
    T: Clone,
>(
    policy: &TroupePolicy<A, T>,
) -> String {
    let counts = policy.counts();
    let settings = policy.settings();
    let roster: Vec<String> = policy
        .roster()
        .map(|(prefix, w)| format!("'{prefix}{w}'"))
        .collect();
    format!(
        "Idle={}, Max={}, Troupers [{}, {} idle, {} extra]: [{}], Pending={}",
        settings.idle_count,
        settings.max_count,
        counts.workers,
        counts.idle,
        counts.extra,
        roster.join(", "),
        counts.pending
    )
}

type Actions = Vec<Action<ActorAddress, (Payload, ActorAddress)>>;

/// A `"troupe:…"` string command: its reply and the policy's actions, or `None` when it is
/// not a command (then it is work like any other string).
fn command_reply<W: TroupeMember>(
    policy: &mut Policy,
    command: &str,
    ctx: &mut Context<'_>,
) -> Option<(String, Actions)> {
    if command == "status?" {
        return Some((status_line(policy), Vec::new()));
    }
    let (name, value) = command.strip_prefix("set_")?.split_once('=')?;
    let (max, idle) = match name {
        "max_count" => (true, false),
        "idle_count" => (false, true),
        _ => return None,
    };
    match parse_count(value) {
        Ok(n) => {
            let actions =
                policy.update(max.then_some(n), idle.then_some(n), &mut spawner::<W>(ctx));
            Some((format!("Set troupe {name} to {n}"), actions))
        }
        Err(e) => Some((
            format!("Error changing {name} for troupe based on message \"troupe:{command}\": {e}"),
            Vec::new(),
        )),
    }
}

/// Parses a count as Python's `int()` would (surrounding blanks allowed), with its error text.
fn parse_count(value: &str) -> Result<u32, String> {
    let trimmed = value.trim();
    match trimmed.parse::<i64>() {
        Ok(n) if n > 0 && n <= i64::from(u32::MAX) => Ok(n as u32),
        Ok(n) => Err(format!(
            "troupe count must be between 1 and {}, not {n}",
            u32::MAX
        )),
        Err(_) => Err(format!("invalid literal for int() with base 10: '{value}'")),
    }
}

fn update_settings<W: TroupeMember>(
    policy: &mut Policy,
    update: UpdateTroupeSettings,
    sender: &ActorAddress,
    ctx: &mut Context<'_>,
) -> Result<Actions, ActorError> {
    if let Err(reason) = UpdateTroupeSettings::new(update.max_count, update.idle_count) {
        ctx.send(sender, PoisonMessage::new(Payload::new(update), reason))?;
        return Ok(Vec::new());
    }
    let actions = policy.update(update.max_count, update.idle_count, &mut spawner::<W>(ctx));
    let settings = policy.settings();
    ctx.send(
        sender,
        UpdateTroupeSettings {
            max_count: Some(settings.max_count),
            idle_count: Some(settings.idle_count),
        },
    )?;
    Ok(actions)
}
