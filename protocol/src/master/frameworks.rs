//! The leader's framework-facing part: subscriptions, offers, launches, task statuses,
//! acknowledgements, reconciliation and kills. Like the agent directory, everything here is
//! soft state of the leader except the framework records of the registry, and a new leader
//! rebuilds it from subscriptions and re-registrations.
//!
//! * **Subscription.** A new framework is registered with a `FrameworkRegistered` entry and
//!   hears its id once the entry commits. A subscription with an existing id is a failover:
//!   the previous scheduler hears [`Message::FrameworkReplaced`]; statuses and offers go to
//!   the new one.
//! * **Offers.** After every commit, every launch and every end of a task (and a decline, a
//!   revive, a subscription, ...), the leader runs the [allocator](crate::allocator) over
//!   the agents registered with it (their totals, less their live tasks and outstanding
//!   offers) and the frameworks that want offers: once per batch of inputs, when the driver
//!   ends the batch ([`Machine::end_batch`](crate::Machine::end_batch)), and on every ping
//!   round. What the live tasks use is kept summed per agent and framework as tasks change
//!   ([`AgentTasks`](super::AgentTasks)), so a cycle costs O(agents + offers), not O(tasks).
//!   An offer is outstanding until it is accepted or declined, or its agent becomes
//!   unreachable.
//! * **Launch.** An accept names offers of one agent and operations. A launch whose task id
//!   is new to the framework and whose resources the offers still hold becomes a `RunTask`
//!   to the agent; any other fails with a status the master generates (`ERROR`, or `DROPPED`
//!   if the offers are not outstanding). What is left returns to the pool.
//! * **Statuses (A2).** An agent's update is recorded and passed to the framework's
//!   scheduler; the scheduler's acknowledgement is passed back to the agent, which only then
//!   sends the task's next update. States the master generates (`UNREACHABLE`, `DROPPED`,
//!   `ERROR`, a task's state again after its agent is readmitted) are sent with every ping
//!   round until acknowledged. After a master failover, reconciliation answers from the
//!   registry: a task on an agent the registry marks unreachable is `UNREACHABLE`.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::{ElectionRole, Master, MasterTimer, Waiter};
use crate::allocator::{AgentResources, Cluster, FrameworkDemand, allocate};
use crate::bounded::{BoundedVec, Name};
use crate::ids::OperationId;
use crate::ids::{AgentId, FrameworkId, IdSequence, OfferId, TaskId};
use crate::message::{
    Accept, Acknowledge, AgentOperation, ApplyOperations, Decline, Kill, KillTask, Message,
    OFFERS_MAX, OfferInfo, Offers, OperationFailure, OperationKind, OperationState,
    OperationStatus, Ping, Reconcile, RunTask, StatusAcknowledgement, StatusSource, StatusUpdate,
    Subscribe, Subscribed, TaskStatus,
};
use crate::message::{RescindOffer, SubscriptionRefusal, SubscriptionRefused};
use crate::note::Note;
use crate::operation::{self, Conversion, Permission};
use crate::registry::{AgentStatus, LogIndex, RegistryEntry};
use crate::resources::{Quantity, Reservation, ResourceKey, Resources};
use crate::task::{TaskState, TaskStatusReason};
use crate::{Address, DurationRange, Outbox};

use super::agents::{GENERATED_UPDATES_MAX, GeneratedUpdate, TaskView};
use super::tasks::add_scalars;

/// The leader's soft state about frameworks and offers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameworkDirectory {
    /// The source of new frameworks' and offers' ids, in the leader's term.
    ids: IdSequence,
    /// Per framework with a scheduler subscribed to this leader.
    frameworks: BTreeMap<FrameworkId, FrameworkView>,
    /// The outstanding offers.
    offers: BTreeMap<OfferId, OutstandingOffer>,
    /// Decline filters: the framework is offered nothing of the agent until the filter's
    /// timer ends it (or the framework revives).
    filters: BTreeSet<(FrameworkId, AgentId)>,
    /// The next ping sent to schedulers.
    ping: u64,
    /// Per framework the registry holds as connected but whose scheduler has not subscribed
    /// to this leader: ping rounds since this leader began (F1: a scheduler that died during
    /// a failover is noticed too).
    absent: BTreeMap<FrameworkId, u32>,
    /// Whether an input of the current batch freed resources or added demand, so that the
    /// allocator runs when the batch ends ([`Machine::end_batch`](crate::Machine::end_batch)).
    allocation_pending: bool,
}

impl FrameworkDirectory {
    pub(super) fn new(ids: IdSequence) -> FrameworkDirectory {
        FrameworkDirectory {
            ids,
            frameworks: BTreeMap::new(),
            offers: BTreeMap::new(),
            filters: BTreeSet::new(),
            ping: 0,
            absent: BTreeMap::new(),
            allocation_pending: false,
        }
    }

    /// The frameworks whose schedulers subscribed to this leader.
    pub fn frameworks(&self) -> &BTreeMap<FrameworkId, FrameworkView> {
        &self.frameworks
    }

    /// The outstanding offers.
    pub fn offers(&self) -> &BTreeMap<OfferId, OutstandingOffer> {
        &self.offers
    }
}

/// What the leader knows of one framework's scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameworkView {
    /// Where its scheduler is.
    pub scheduler: Address,
    /// Whether it asked for no offers (its queue is empty).
    pub suppressed: bool,
    /// Consecutive ping rounds its scheduler did not answer.
    pub missed_pings: u32,
}

/// An offer the framework has not answered yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutstandingOffer {
    /// Offered to.
    pub framework: FrameworkId,
    /// Of this agent.
    pub agent: AgentId,
    /// The resources.
    pub resources: Resources,
}

impl Master {
    /// The leader's framework directory; `None` on a master that does not lead.
    pub fn framework_directory(&self) -> Option<&FrameworkDirectory> {
        match &self.role {
            ElectionRole::Leader(leader) => Some(&leader.frameworks),
            _ => None,
        }
    }

    fn frameworks_mut(&mut self) -> Option<&mut FrameworkDirectory> {
        match &mut self.role {
            ElectionRole::Leader(leader) => Some(&mut leader.frameworks),
            _ => None,
        }
    }

    /// The scheduler of `framework`, if it subscribed to this leader.
    fn scheduler_of(&self, framework: FrameworkId) -> Option<&Address> {
        self.framework_directory()?
            .frameworks
            .get(&framework)
            .map(|view| &view.scheduler)
    }

    /// Whether `from` is the subscribed scheduler of `framework`.
    fn is_scheduler(&self, from: &Address, framework: FrameworkId) -> bool {
        self.scheduler_of(framework) == Some(from)
    }

    /// A scheduler subscribes, as a new framework or as a framework's new scheduler.
    pub(super) fn handle_subscribe(
        &mut self,
        from: &Address,
        subscribe: Subscribe,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || subscribe.highest_term > self.term() {
            self.send_leader_hint(from, out);
            return;
        }
        let term = self.term();
        let refuse = |reason, out: &mut Outbox<Master>| {
            out.send(
                from.clone(),
                Message::SubscriptionRefused(Box::new(SubscriptionRefused { term, reason })),
            );
        };
        if !operation::authorized(
            self.config.access.as_ref(),
            Permission::Register,
            &subscribe.info.principal,
            &subscribe.info.role,
        ) {
            refuse(SubscriptionRefusal::Unauthorized, out);
            return;
        }
        // What the registry (log included) says: for a resubscription, whether the framework
        // is known with this role and principal, and whether it is disconnected; for a new
        // subscription, the frameworks registered with exactly this information.
        let (known, matching) = self.with_latest_registry(|latest| match subscribe.framework {
            Some(framework) => {
                let known = latest
                    .frameworks()
                    .get(&framework)
                    .filter(|record| {
                        record.info.role == subscribe.info.role
                            && record.info.principal == subscribe.info.principal
                    })
                    .map(|record| record.disconnected_since.is_some());
                (known, BTreeSet::new())
            }
            None => {
                let matching: BTreeSet<FrameworkId> = latest
                    .frameworks()
                    .iter()
                    .filter(|(_, record)| record.info == subscribe.info)
                    .map(|(framework, _)| *framework)
                    .collect();
                (None, matching)
            }
        });
        let (framework, entry) = match subscribe.framework {
            Some(framework) => {
                let Some(disconnected) = known else {
                    out.note(Note::UnknownFramework {
                        peer: from.clone(),
                        framework,
                    });
                    refuse(SubscriptionRefusal::UnknownFramework, out);
                    return;
                };
                let entry =
                    disconnected.then_some(RegistryEntry::FrameworkReconnected { framework });
                (framework, entry)
            }
            None => {
                // A retried subscription (its answer was lost) finds its framework.
                let Some(directory) = self.frameworks_mut() else {
                    return;
                };
                let retried = directory
                    .frameworks
                    .iter()
                    .find(|(framework, view)| {
                        view.scheduler == *from && matching.contains(framework)
                    })
                    .map(|(framework, _)| *framework);
                match retried {
                    Some(framework) => (framework, None),
                    None => {
                        let framework = FrameworkId(directory.ids.next_id());
                        let entry = RegistryEntry::FrameworkRegistered {
                            framework,
                            info: subscribe.info,
                        };
                        (framework, Some(entry))
                    }
                }
            }
        };
        let Some(directory) = self.frameworks_mut() else {
            return;
        };
        let previous = directory.frameworks.insert(
            framework,
            FrameworkView {
                scheduler: from.clone(),
                suppressed: subscribe.suppressed,
                missed_pings: 0,
            },
        );
        directory.absent.remove(&framework);
        if let Some(previous) = previous
            && previous.scheduler != *from
        {
            // Failover: the old scheduler stops; its offers are void.
            directory
                .offers
                .retain(|_, offer| offer.framework != framework);
            out.send(
                previous.scheduler,
                Message::FrameworkReplaced(Subscribed { term, framework }),
            );
        }
        self.propose(
            entry,
            Waiter::Agent {
                address: from.clone(),
                answer: Message::Subscribed(Subscribed { term, framework }),
            },
            out,
        );
        self.request_allocation();
    }

    /// Leader: something freed resources or added demand; the allocator runs once the
    /// current batch of inputs ends, however many inputs asked for it.
    pub(super) fn request_allocation(&mut self) {
        if let Some(directory) = self.frameworks_mut() {
            directory.allocation_pending = true;
        }
    }

    /// Leader: runs the allocator if an input of the batch that ends asked for it.
    pub(super) fn allocate_if_pending(&mut self, out: &mut Outbox<Master>) {
        if let Some(directory) = self.frameworks_mut()
            && core::mem::take(&mut directory.allocation_pending)
        {
            self.allocate_offers(out);
        }
    }

    /// Leader: offers what is free to the frameworks that want offers.
    pub(super) fn allocate_offers(&mut self, out: &mut Outbox<Master>) {
        if let Some(directory) = self.frameworks_mut() {
            directory.allocation_pending = false;
        }
        let term = self.term();
        let (Some(agents), Some(frameworks)) = (self.agent_directory(), self.framework_directory())
        else {
            return;
        };
        if frameworks.frameworks.values().all(|view| view.suppressed) {
            // No framework wants offers: nothing to sum (a cycle is linear in the agents).
            return;
        }
        // Each agent's outstanding offers, summed in one pass over the offers (a sum that
        // fails, which R1 rules out, leaves the agent out of this cycle).
        let mut offered_by_agent: BTreeMap<AgentId, Option<Resources>> = BTreeMap::new();
        let outstanding = frameworks
            .offers
            .values()
            .filter(|_| !self.mutated(super::Mutation::OfferOutstandingAgain));
        for offer in outstanding {
            let sum = offered_by_agent
                .entry(offer.agent)
                .or_insert_with(|| Some(Resources::new()));
            *sum = sum
                .take()
                .and_then(|sum| sum.checked_add(&offer.resources).ok());
        }
        // Each agent's available resources: its total less what its live tasks use (kept
        // summed) and what its outstanding offers hold.
        let mut totals: BTreeMap<AgentId, (&Resources, Resources)> = BTreeMap::new();
        for (agent, record) in self.registry.agents() {
            let Some(view) = agents.agents().get(agent) else {
                continue;
            };
            if record.status != AgentStatus::Admitted || !view.registered {
                continue;
            }
            let total = view.total.as_ref().unwrap_or(&record.info.resources);
            let offered = offered_by_agent
                .remove(agent)
                .unwrap_or_else(|| Some(Resources::new()));
            let available = match (view.tasks.used(), offered) {
                (Some(used), Some(offered)) if used.is_empty() && offered.is_empty() => {
                    Some(total.clone())
                }
                (Some(used), Some(offered)) if offered.is_empty() => total.checked_sub(used).ok(),
                (Some(used), Some(offered)) => total
                    .checked_sub(used)
                    .ok()
                    .and_then(|rest| rest.checked_sub(&offered).ok()),
                _ => None,
            };
            if let Some(available) = available {
                totals.insert(*agent, (total, available));
            }
        }
        // Each framework's allocation, its live tasks (summed as they change) and its
        // outstanding offers, as scalar amounts by name: all that fair sharing reads.
        let mut sums: BTreeMap<FrameworkId, BTreeMap<Name, u128>> = BTreeMap::new();
        for view in agents.agents().values() {
            for (framework, used) in view.tasks.framework_sums() {
                let sum = sums.entry(*framework).or_default();
                for (name, amount) in used {
                    *sum.entry(name.clone()).or_insert(0) += amount;
                }
            }
        }
        for offer in frameworks.offers.values() {
            add_scalars(sums.entry(offer.framework).or_default(), &offer.resources);
        }
        let allocations: BTreeMap<FrameworkId, Resources> = sums
            .into_iter()
            .map(|(framework, sum)| (framework, scalars_by_name(sum)))
            .collect();
        let nothing = Resources::new();
        let mut demands = BTreeMap::new();
        for (framework, view) in &frameworks.frameworks {
            let Some(record) = self.registry.frameworks().get(framework) else {
                continue; // Not committed yet.
            };
            demands.insert(
                *framework,
                FrameworkDemand {
                    role: &record.info.role,
                    wants_offers: !view.suppressed,
                    allocation: allocations.get(framework).unwrap_or(&nothing),
                },
            );
        }
        let agent_resources: BTreeMap<AgentId, AgentResources<'_>> = totals
            .iter()
            .map(|(agent, (total, available))| {
                let total: &Resources = total;
                (*agent, AgentResources { total, available })
            })
            .collect();
        let weights = self.registry.role_weights().clone();
        let filters = frameworks.filters.clone();
        #[allow(unused_mut)] // Only a seeded bug changes the offers.
        let mut offers = allocate(&Cluster {
            agents: &agent_resources,
            weights: &weights,
            frameworks: &demands,
            filters: &filters,
        });
        #[cfg(feature = "mutations")]
        self.mutate_offers(&agent_resources, &demands, &mut offers);
        if offers.is_empty() {
            return;
        }
        let Some(directory) = self.frameworks_mut() else {
            return;
        };
        let mut by_framework: BTreeMap<FrameworkId, Vec<OfferInfo>> = BTreeMap::new();
        for offer in offers {
            let id = OfferId(directory.ids.next_id());
            out.set_timer(
                MasterTimer::OfferTimeout(id),
                DurationRange::fixed(super::OFFER_TIMEOUT_DEFAULT),
            );
            directory.offers.insert(
                id,
                OutstandingOffer {
                    framework: offer.framework,
                    agent: offer.agent,
                    resources: offer.resources.clone(),
                },
            );
            by_framework
                .entry(offer.framework)
                .or_default()
                .push(OfferInfo {
                    offer: id,
                    agent: offer.agent,
                    resources: offer.resources,
                });
        }
        for (framework, offers) in by_framework {
            let Some(view) = directory.frameworks.get(&framework) else {
                continue;
            };
            for chunk in offers.chunks(OFFERS_MAX) {
                out.send(
                    view.scheduler.clone(),
                    Message::Offers(Box::new(Offers {
                        term,
                        framework,
                        offers: BoundedVec::from_vec(chunk.to_vec())
                            .expect("chunks are within bounds"),
                    })),
                );
            }
        }
    }

    /// A scheduler accepts offers with operations, applied in order against what the offers
    /// hold. A launch becomes a `RunTask`; a resource operation is applied to the leader's
    /// view of the agent and sent to the agent, which applies it once (R5) and answers with
    /// its new resources. A refused operation changes nothing and fails with a reason.
    pub(super) fn handle_accept(
        &mut self,
        from: &Address,
        accept: Accept,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() {
            self.send_leader_hint(from, out);
            return;
        }
        let framework = accept.framework;
        if !self.is_scheduler(from, framework) {
            out.note(Note::UnknownFramework {
                peer: from.clone(),
                framework,
            });
            return;
        }
        let Some(info) = self
            .registry
            .frameworks()
            .get(&framework)
            .map(|record| record.info.clone())
        else {
            return;
        };
        let term = self.term();
        // Take the offers: all must be outstanding, the framework's, and of one agent.
        let Some(directory) = self.frameworks_mut() else {
            return;
        };
        if let Some(view) = directory.frameworks.get_mut(&framework) {
            view.suppressed = accept.suppress;
        }
        let mut agent = None;
        let mut pool = Some(Resources::new());
        for offer in accept.offers.iter() {
            match directory.offers.get(offer) {
                Some(outstanding)
                    if outstanding.framework == framework
                        && agent.is_none_or(|agent| agent == outstanding.agent) =>
                {
                    agent = Some(outstanding.agent);
                    pool = pool.and_then(|pool| pool.checked_add(&outstanding.resources).ok());
                }
                _ => pool = None,
            }
        }
        let address = agent.and_then(|agent| self.admitted_address(agent).cloned());
        let (Some(agent), Some(mut pool), Some(address)) = (agent, pool, address) else {
            // Unknown, foreign, rescinded or mixed offers, or an agent gone since: every
            // operation fails and nothing changes.
            for operation in accept.operations.into_vec() {
                match operation.kind {
                    // A duplicate of an accept already applied names offers that are gone:
                    // its launches are known and stand (a DROPPED would end a running task).
                    OperationKind::Launch(spec) if self.task_known(framework, &spec.task) => {}
                    OperationKind::Launch(spec) => self.generate_status(
                        framework,
                        spec.task,
                        None,
                        TaskState::Dropped,
                        TaskStatusReason::InvalidOffers,
                        out,
                    ),
                    _ => self.operation_failed(
                        framework,
                        operation.id,
                        None,
                        OperationFailure::InvalidOffers,
                        out,
                    ),
                }
            }
            self.request_allocation();
            return;
        };
        if let Some(directory) = self.frameworks_mut() {
            for offer in accept.offers.iter() {
                directory.offers.remove(offer);
                out.cancel_timer(MasterTimer::OfferTimeout(*offer));
            }
        }
        let mut total = self.agent_total(agent);
        let mut conversions = Vec::new();
        let mut launches = Vec::new();
        for operation in accept.operations.into_vec() {
            let spec = match operation.kind {
                OperationKind::Launch(spec) => spec,
                kind => {
                    match self.check_conversion(agent, &info, &kind, &pool, &total) {
                        Ok((conversion, next_pool, next_total)) => {
                            pool = next_pool;
                            total = next_total;
                            conversions.push(AgentOperation {
                                id: operation.id,
                                consumed: conversion.consumed,
                                produced: conversion.produced,
                            });
                        }
                        Err(failure) => {
                            self.operation_failed(
                                framework,
                                operation.id,
                                Some(agent),
                                failure,
                                out,
                            );
                        }
                    }
                    continue;
                }
            };
            let key = (framework, spec.task.clone());
            if self.task_known(framework, &spec.task) {
                continue; // The task's own status stands; a second launch changes nothing.
            }
            let Ok(rest) = pool.checked_sub(&spec.resources) else {
                self.generate_status(
                    framework,
                    spec.task,
                    Some(agent),
                    TaskState::Error,
                    TaskStatusReason::ResourcesUnavailable,
                    out,
                );
                continue;
            };
            pool = rest;
            if let Some(agents) = self.agents_mut() {
                agents.insert_task(
                    agent,
                    key,
                    TaskView {
                        executor: Some(spec.executor.clone()),
                        state: TaskState::Staging,
                        update: None,
                        resources: spec.resources.clone(),
                        launch: Some(spec.command.clone()),
                    },
                );
            }
            launches.push(spec);
        }
        if let Some(view) = self
            .directory_mut_for_launch()
            .and_then(|agents| agents.get_mut(&agent))
        {
            view.total = Some(total);
            view.pending_operations.extend(
                conversions
                    .iter()
                    .map(|operation| (framework, operation.clone())),
            );
        }
        if !conversions.is_empty() {
            out.send(
                address.clone(),
                Message::ApplyOperations(Box::new(ApplyOperations {
                    term,
                    agent,
                    framework,
                    operations: BoundedVec::from_vec(conversions)
                        .expect("no more than the accept's operations"),
                })),
            );
        }
        // What the accept left unused goes back to the pool under a decline filter.
        if !pool.is_empty() {
            self.install_filter(framework, agent, out);
        }
        for spec in launches {
            out.send(
                address.clone(),
                Message::RunTask(Box::new(RunTask {
                    term,
                    framework,
                    executor: spec.executor,
                    task: spec.task,
                    resources: spec.resources,
                    command: spec.command,
                })),
            );
        }
        self.request_allocation();
    }

    /// Where an admitted agent is; `None` for an unknown, unreachable or gone one.
    fn admitted_address(&self, agent: AgentId) -> Option<&Address> {
        self.registry
            .agents()
            .get(&agent)
            .filter(|record| record.status == AgentStatus::Admitted)
            .map(|record| &record.address)
    }

    /// Whether the leader knows the framework's task: on an agent, or by a state it
    /// generated.
    fn task_known(&self, framework: FrameworkId, task: &TaskId) -> bool {
        let key = (framework, task.clone());
        self.agent_directory().is_some_and(|agents| {
            agents.index.contains(&key) || agents.generated().contains_key(&key)
        })
    }

    /// The agent's resources as the leader knows them now.
    fn agent_total(&self, agent: AgentId) -> Resources {
        self.agent_directory()
            .and_then(|agents| agents.agents().get(&agent))
            .and_then(|view| view.total.clone())
            .or_else(|| {
                self.registry
                    .agents()
                    .get(&agent)
                    .map(|record| record.info.resources.clone())
            })
            .unwrap_or_default()
    }

    /// Checks a resource operation against the framework's rights, the offers' `pool` and the
    /// agent's `total`; returns the conversion and both after it.
    fn check_conversion(
        &self,
        agent: AgentId,
        info: &crate::registry::FrameworkInfo,
        kind: &OperationKind,
        pool: &Resources,
        total: &Resources,
    ) -> Result<(Conversion, Resources, Resources), OperationFailure> {
        if let Some(permission) = operation::permission_of(kind)
            && !operation::authorized(
                self.config.access.as_ref(),
                permission,
                &info.principal,
                &info.role,
            )
        {
            return Err(OperationFailure::Unauthorized);
        }
        let conversion = operation::conversion(kind, &info.role, &info.principal)
            .map_err(|_| OperationFailure::Invalid)?;
        if let OperationKind::DestroyVolume(volume) = kind {
            let in_use = self
                .agent_directory()
                .and_then(|agents| agents.agents().get(&agent))
                .is_some_and(|view| {
                    view.tasks.values().any(|task| {
                        !task.state.is_terminal()
                            && volume
                                .volumes()
                                .any(|(key, _)| task.resources.keys().any(|used| used == key))
                    })
                });
            if in_use {
                return Err(OperationFailure::VolumeInUse);
            }
        }
        let pool =
            operation::apply(pool, &conversion).ok_or(OperationFailure::ResourcesUnavailable)?;
        let total =
            operation::apply(total, &conversion).ok_or(OperationFailure::ResourcesUnavailable)?;
        Ok((conversion, pool, total))
    }

    /// Tells the framework an operation failed.
    fn operation_failed(
        &self,
        framework: FrameworkId,
        operation: OperationId,
        agent: Option<AgentId>,
        failure: OperationFailure,
        out: &mut Outbox<Master>,
    ) {
        if let Some(scheduler) = self.scheduler_of(framework) {
            out.send(
                scheduler.clone(),
                Message::OperationStatus(Box::new(OperationStatus {
                    term: self.term(),
                    agent,
                    framework,
                    operation,
                    state: OperationState::Failed(failure),
                    total: None,
                })),
            );
        }
    }

    /// An agent answers a resource operation: its resources are what it says, and the
    /// framework hears the outcome.
    pub(super) fn handle_operation_status(
        &mut self,
        from: &Address,
        status: OperationStatus,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() {
            return;
        }
        let Some(agent) = status.agent else {
            return;
        };
        let from_agent = self.registry.agents().get(&agent).is_some_and(|record| {
            record.status == AgentStatus::Admitted && record.address == *from
        });
        if !from_agent {
            return;
        }
        let Some(view) = self
            .directory_mut_for_launch()
            .and_then(|agents| agents.get_mut(&agent))
        else {
            return;
        };
        let before = view.pending_operations.len();
        view.pending_operations.retain(|(framework, operation)| {
            !(*framework == status.framework && operation.id == status.operation)
        });
        if view.pending_operations.len() == before {
            return; // A duplicate answer.
        }
        if let Some(total) = &status.total {
            view.total = Some(total.clone());
        }
        if let Some(scheduler) = self.scheduler_of(status.framework) {
            out.send(
                scheduler.clone(),
                Message::OperationStatus(Box::new(OperationStatus {
                    term: self.term(),
                    total: None,
                    ..status
                })),
            );
        }
        self.request_allocation();
    }

    /// A scheduler declines offers.
    pub(super) fn handle_decline(
        &mut self,
        from: &Address,
        decline: Decline,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || !self.is_scheduler(from, decline.framework) {
            return;
        }
        let Some(directory) = self.frameworks_mut() else {
            return;
        };
        if let Some(view) = directory.frameworks.get_mut(&decline.framework) {
            view.suppressed = decline.suppress;
        }
        let mut declined = BTreeSet::new();
        for offer in decline.offers.iter() {
            if let Some(outstanding) = directory
                .offers
                .get(offer)
                .filter(|outstanding| outstanding.framework == decline.framework)
            {
                declined.insert(outstanding.agent);
                directory.offers.remove(offer);
                out.cancel_timer(MasterTimer::OfferTimeout(*offer));
            }
        }
        for agent in declined {
            self.install_filter(decline.framework, agent, out);
        }
        self.request_allocation();
    }

    /// A scheduler wants offers again.
    pub(super) fn handle_revive(
        &mut self,
        from: &Address,
        framework: FrameworkId,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || !self.is_scheduler(from, framework) {
            return;
        }
        if let Some(directory) = self.frameworks_mut() {
            if let Some(view) = directory.frameworks.get_mut(&framework) {
                view.suppressed = false;
            }
            // Reviving clears the framework's decline filters (as in Mesos).
            let cleared: Vec<AgentId> = directory
                .filters
                .iter()
                .filter(|(owner, _)| *owner == framework)
                .map(|(_, agent)| *agent)
                .collect();
            for agent in cleared {
                directory.filters.remove(&(framework, agent));
                out.cancel_timer(MasterTimer::DeclineFilter(framework, agent));
            }
        }
        self.request_allocation();
    }

    /// Passes an agent's update to the task's scheduler, if one is subscribed; the agent
    /// retries until the scheduler's acknowledgement comes back.
    pub(super) fn forward_status(&self, update: StatusUpdate, out: &mut Outbox<Master>) {
        if let Some(scheduler) = self.scheduler_of(update.framework) {
            out.send(
                scheduler.clone(),
                Message::TaskStatus(Box::new(TaskStatus {
                    term: self.term(),
                    framework: update.framework,
                    task: update.task,
                    agent: Some(update.agent),
                    state: update.state,
                    reason: update.reason,
                    source: StatusSource::Agent(update.update),
                })),
            );
        }
    }

    /// Records a state the master generates and sends it to the framework; it is resent with
    /// every ping round until acknowledged.
    pub(super) fn generate_status(
        &mut self,
        framework: FrameworkId,
        task: TaskId,
        agent: Option<AgentId>,
        state: TaskState,
        reason: TaskStatusReason,
        out: &mut Outbox<Master>,
    ) {
        let Some(agents) = self.agents_mut() else {
            return;
        };
        let key = (framework, task.clone());
        if agents.generated.len() >= GENERATED_UPDATES_MAX && !agents.generated.contains_key(&key) {
            return;
        }
        agents.generated.insert(
            key,
            GeneratedUpdate {
                agent,
                state,
                reason: Some(reason),
            },
        );
        self.send_generated(framework, &task, out);
    }

    /// Sends the generated state of one task to its framework's scheduler.
    pub(super) fn send_generated_status(
        &self,
        framework: FrameworkId,
        task: &TaskId,
        out: &mut Outbox<Master>,
    ) {
        self.send_generated(framework, task, out);
    }

    fn send_generated(&self, framework: FrameworkId, task: &TaskId, out: &mut Outbox<Master>) {
        let (Some(agents), Some(scheduler)) =
            (self.agent_directory(), self.scheduler_of(framework))
        else {
            return;
        };
        let Some(generated) = agents.generated().get(&(framework, task.clone())) else {
            return;
        };
        out.send(
            scheduler.clone(),
            Message::TaskStatus(Box::new(TaskStatus {
                term: self.term(),
                framework,
                task: task.clone(),
                agent: generated.agent,
                state: generated.state,
                reason: generated.reason,
                source: StatusSource::Master,
            })),
        );
    }

    /// Ping round: resends every unacknowledged generated state and pings the schedulers.
    pub(super) fn framework_round(&mut self, out: &mut Outbox<Master>) {
        let keys: Vec<(FrameworkId, TaskId)> = self
            .agent_directory()
            .map(|agents| agents.generated().keys().cloned().collect())
            .unwrap_or_default();
        for (framework, task) in keys {
            self.send_generated(framework, &task, out);
        }
        self.resend_operations(out);
        self.resend_launches(out);
        // The allocation interval (Mesos: 1 s): whatever an event did not offer yet, and
        // what a batch left pending.
        self.allocate_offers(out);
        let term = self.term();
        let max_missed = self.config.max_missed_pings;
        let connected: Vec<FrameworkId> = self
            .registry
            .frameworks()
            .iter()
            .filter(|(_, record)| record.disconnected_since.is_none())
            .map(|(framework, _)| *framework)
            .collect();
        let mut silent = Vec::new();
        if let Some(directory) = self.frameworks_mut() {
            directory.ping = directory.ping.wrapping_add(1);
            let sequence = directory.ping;
            for (framework, view) in &mut directory.frameworks {
                view.missed_pings = view.missed_pings.saturating_add(1);
                if view.missed_pings > max_missed {
                    silent.push(*framework);
                }
                out.send(
                    view.scheduler.clone(),
                    Message::Ping(Ping { term, sequence }),
                );
            }
            for framework in connected {
                if directory.frameworks.contains_key(&framework) {
                    continue;
                }
                let rounds = directory.absent.entry(framework).or_insert(0);
                *rounds = rounds.saturating_add(1);
                if *rounds > max_missed {
                    silent.push(framework);
                }
            }
        }
        self.disconnect_frameworks(silent, out);
    }

    /// Resends the launch of every task still staging since this leader launched it: the
    /// agent ignores a launch it has seen (R5), and runs one it never received.
    fn resend_launches(&self, out: &mut Outbox<Master>) {
        let Some(agents) = self.agent_directory() else {
            return;
        };
        for (agent, view) in agents.agents() {
            let Some(address) = self.admitted_address(*agent) else {
                continue;
            };
            for ((framework, task), known) in &view.tasks {
                let (Some(command), Some(executor), TaskState::Staging) =
                    (&known.launch, &known.executor, known.state)
                else {
                    continue;
                };
                out.send(
                    address.clone(),
                    Message::RunTask(Box::new(RunTask {
                        term: self.term(),
                        framework: *framework,
                        executor: executor.clone(),
                        task: task.clone(),
                        resources: known.resources.clone(),
                        command: command.clone(),
                    })),
                );
            }
        }
    }

    /// Resends every unanswered resource operation to its agent, in order.
    fn resend_operations(&self, out: &mut Outbox<Master>) {
        let Some(agents) = self.agent_directory() else {
            return;
        };
        for (agent, view) in agents.agents() {
            let Some(address) = self.admitted_address(*agent) else {
                continue;
            };
            let mut by_framework: BTreeMap<FrameworkId, Vec<AgentOperation>> = BTreeMap::new();
            for (framework, operation) in &view.pending_operations {
                by_framework
                    .entry(*framework)
                    .or_default()
                    .push(operation.clone());
            }
            for (framework, operations) in by_framework {
                for chunk in operations.chunks(crate::message::AGENT_OPERATIONS_MAX) {
                    out.send(
                        address.clone(),
                        Message::ApplyOperations(Box::new(ApplyOperations {
                            term: self.term(),
                            agent: *agent,
                            framework,
                            operations: BoundedVec::from_vec(chunk.to_vec())
                                .expect("chunks are within bounds"),
                        })),
                    );
                }
            }
        }
    }

    /// A scheduler acknowledges a status: to the agent if it came from one, or done with if
    /// the master generated it.
    pub(super) fn handle_acknowledge(
        &mut self,
        from: &Address,
        acknowledge: Acknowledge,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || !self.is_scheduler(from, acknowledge.framework) {
            return;
        }
        let key = (acknowledge.framework, acknowledge.task.clone());
        match acknowledge.source {
            StatusSource::Agent(update) => {
                let Some(agent) = acknowledge.agent else {
                    return;
                };
                let Some(address) = self.admitted_address(agent) else {
                    return;
                };
                out.send(
                    address.clone(),
                    Message::StatusAcknowledgement(StatusAcknowledgement {
                        term: self.term(),
                        framework: acknowledge.framework,
                        task: acknowledge.task,
                        update,
                    }),
                );
            }
            StatusSource::Master => {
                if let Some(agents) = self.agents_mut()
                    && agents
                        .generated
                        .get(&key)
                        .is_some_and(|generated| generated.state == acknowledge.state)
                {
                    agents.generated.remove(&key);
                }
            }
            StatusSource::Reconciliation => {}
        }
    }

    /// A scheduler asks for its tasks' latest states. The leader answers what it knows: a
    /// task's state on an agent registered with it, `UNREACHABLE` or `GONE` from the
    /// registry, `DROPPED` for a task its agent re-registered without (the launch was lost,
    /// for example with the leader that sent it), and `UNKNOWN` for a task on an agent the
    /// registry does not hold. A task on an admitted agent that has not re-registered yet
    /// gets no answer; the scheduler asks again.
    pub(super) fn handle_reconcile(
        &mut self,
        from: &Address,
        reconcile: Reconcile,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || !self.is_scheduler(from, reconcile.framework) {
            return;
        }
        let framework = reconcile.framework;
        let Some(agents) = self.agent_directory() else {
            return;
        };
        let mut answers: Vec<(TaskId, Option<AgentId>, TaskState, TaskStatusReason)> = Vec::new();
        let find = |task: &TaskId| {
            let key = (framework, task.clone());
            agents.agents_holding(&key).find_map(|agent| {
                let known = agents.agents().get(&agent)?.tasks.get(&key)?;
                Some((agent, known.state))
            })
        };
        let mut offered_agents: Option<BTreeSet<AgentId>> = None;
        if reconcile.tasks.is_empty() {
            for (agent, view) in agents.agents() {
                for ((owner, task), known) in &view.tasks {
                    if *owner == framework {
                        answers.push((
                            task.clone(),
                            Some(*agent),
                            known.state,
                            TaskStatusReason::Reconciliation,
                        ));
                    }
                }
            }
        }
        for (task, hint) in reconcile.tasks.iter() {
            if let Some((agent, state)) = find(task) {
                answers.push((
                    task.clone(),
                    Some(agent),
                    state,
                    TaskStatusReason::Reconciliation,
                ));
                continue;
            }
            let status =
                hint.and_then(|agent| self.registry.agents().get(&agent).map(|r| r.status));
            let view = hint.and_then(|agent| agents.agents().get(&agent));
            let registered = view.is_some_and(|view| view.registered);
            let reported = view.is_some_and(|view| view.reported);
            // An offer of the agent that the framework still holds: an accept launching the
            // task on it may be on its way. The agents it holds offers of are listed once per
            // request, and only when a task needs it, so a request naming many tasks costs
            // one pass over the outstanding offers, not one per task.
            let offered = reported
                && hint.is_some_and(|agent| {
                    offered_agents
                        .get_or_insert_with(|| self.agents_offered_to(framework))
                        .contains(&agent)
                });
            let answer = match status {
                Some(AgentStatus::Unreachable { .. }) => {
                    Some((TaskState::Unreachable, TaskStatusReason::AgentUnreachable))
                }
                Some(AgentStatus::Gone) => Some((TaskState::Gone, TaskStatusReason::AgentGone)),
                Some(AgentStatus::Admitted) if !registered => None,
                // Its agent re-registered with this leader and does not hold it, and the
                // framework holds no offer of the agent to launch it with: the launch never
                // reached the agent, and never will. The agent's report was made in this
                // term (`handle_reregister_agent`), after which it obeys no older leader
                // (E3); this leader's own launches are in its view, an accept still on its
                // way names an outstanding offer (ids are never reused), and a newer
                // leader's launch would fence this answer off at the scheduler. (A task that
                // ran and ended is forgotten by its agent only once the framework
                // acknowledged its end, which the framework recorded first, so nothing
                // follows it there.)
                Some(AgentStatus::Admitted) if reported && !offered => {
                    Some((TaskState::Dropped, TaskStatusReason::Reconciliation))
                }
                Some(AgentStatus::Admitted) | None => {
                    Some((TaskState::Unknown, TaskStatusReason::Reconciliation))
                }
            };
            if let Some((state, reason)) = answer {
                answers.push((task.clone(), *hint, state, reason));
            }
        }
        for (task, agent, state, reason) in answers {
            out.send(
                from.clone(),
                Message::TaskStatus(Box::new(TaskStatus {
                    term: self.term(),
                    framework,
                    task,
                    agent,
                    state,
                    reason: Some(reason),
                    source: StatusSource::Reconciliation,
                })),
            );
        }
    }

    /// The agents of which `framework` holds an outstanding offer.
    fn agents_offered_to(&self, framework: FrameworkId) -> BTreeSet<AgentId> {
        self.framework_directory()
            .map(|directory| {
                directory
                    .offers
                    .values()
                    .filter(|offer| offer.framework == framework)
                    .map(|offer| offer.agent)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A scheduler asks to kill a task: the agent holding it is told.
    pub(super) fn handle_kill(&mut self, from: &Address, kill: Kill, out: &mut Outbox<Master>) {
        if !self.is_leader() || !self.is_scheduler(from, kill.framework) {
            return;
        }
        let key = (kill.framework, kill.task.clone());
        let Some(agent) = self.agent_directory().and_then(|agents| {
            agents.agents_holding(&key).find(|agent| {
                agents
                    .agents()
                    .get(agent)
                    .and_then(|view| view.tasks.get(&key))
                    .is_some_and(|task| !task.state.is_terminal())
            })
        }) else {
            return;
        };
        if let Some(address) = self.admitted_address(agent) {
            out.send(
                address.clone(),
                Message::KillTask(KillTask {
                    term: self.term(),
                    framework: kill.framework,
                    task: kill.task,
                }),
            );
        }
    }

    /// An agent became unreachable or gone: its outstanding offers are rescinded.
    pub(super) fn rescind_offers_of(&mut self, agent: AgentId, out: &mut Outbox<Master>) {
        let offers: Vec<OfferId> = self
            .framework_directory()
            .map(|directory| {
                directory
                    .offers
                    .iter()
                    .filter(|(_, offer)| offer.agent == agent)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for offer in offers {
            self.rescind(offer, out);
        }
    }

    /// Withdraws an outstanding offer and tells its framework.
    fn rescind(&mut self, offer: OfferId, out: &mut Outbox<Master>) {
        let term = self.term();
        let Some(directory) = self.frameworks_mut() else {
            return;
        };
        let Some(outstanding) = directory.offers.remove(&offer) else {
            return;
        };
        out.cancel_timer(MasterTimer::OfferTimeout(offer));
        if let Some(view) = directory.frameworks.get(&outstanding.framework) {
            out.send(
                view.scheduler.clone(),
                Message::RescindOffer(RescindOffer {
                    term,
                    framework: outstanding.framework,
                    offer,
                }),
            );
        }
    }

    /// An offer was held for the offer timeout: it is rescinded and its resources offered
    /// again.
    pub(super) fn offer_timed_out(&mut self, offer: OfferId, out: &mut Outbox<Master>) {
        if !self.is_leader() {
            return;
        }
        self.rescind(offer, out);
        self.request_allocation();
    }

    /// The framework is offered nothing of the agent for the decline filter's time.
    fn install_filter(&mut self, framework: FrameworkId, agent: AgentId, out: &mut Outbox<Master>) {
        if let Some(directory) = self.frameworks_mut() {
            directory.filters.insert((framework, agent));
            out.set_timer(
                MasterTimer::DeclineFilter(framework, agent),
                DurationRange::fixed(crate::allocator::DECLINE_FILTER_DEFAULT),
            );
        }
    }

    /// A decline filter ended: the agent may be offered to the framework again.
    pub(super) fn end_decline_filter(&mut self, framework: FrameworkId, agent: AgentId) {
        if let Some(directory) = self.frameworks_mut()
            && directory.filters.remove(&(framework, agent))
        {
            self.request_allocation();
        }
    }
}

impl Master {
    /// A scheduler answers a ping.
    pub(super) fn handle_scheduler_pong(&mut self, from: &Address, pong: crate::message::Pong) {
        if pong.term != self.term() {
            return;
        }
        if let Some(directory) = self.frameworks_mut() {
            for view in directory.frameworks.values_mut() {
                if view.scheduler == *from {
                    view.missed_pings = 0;
                }
            }
        }
    }

    /// The runtime says its connection with `peer` ended: the frameworks whose scheduler
    /// was there are disconnected now rather than after missed pings ([`MasterEvent`]).
    ///
    /// [`MasterEvent`]: super::MasterEvent
    pub(super) fn handle_connection_lost(&mut self, peer: &Address, out: &mut Outbox<Master>) {
        if !self.is_leader() {
            return;
        }
        let gone: Vec<FrameworkId> = self
            .framework_directory()
            .map(|directory| {
                directory
                    .frameworks
                    .iter()
                    .filter(|(_, view)| view.scheduler == *peer)
                    .map(|(framework, _)| *framework)
                    .collect()
            })
            .unwrap_or_default();
        self.disconnect_frameworks(gone, out);
    }

    /// Proposes `FrameworkDisconnected` for frameworks whose schedulers went silent; their
    /// offers are void and their failover timers start once the entries commit.
    fn disconnect_frameworks(&mut self, silent: Vec<FrameworkId>, out: &mut Outbox<Master>) {
        if silent.is_empty() {
            return;
        }
        let disconnected: BTreeSet<FrameworkId> = self.with_latest_registry(|latest| {
            silent
                .iter()
                .copied()
                .filter(|framework| {
                    latest.would_change(&RegistryEntry::FrameworkDisconnected {
                        framework: *framework,
                    })
                })
                .collect()
        });
        let mut appended = false;
        for framework in silent {
            if let Some(directory) = self.frameworks_mut() {
                directory.frameworks.remove(&framework);
                directory.absent.remove(&framework);
                directory
                    .offers
                    .retain(|_, offer| offer.framework != framework);
            }
            let entry = RegistryEntry::FrameworkDisconnected { framework };
            if disconnected.contains(&framework) {
                out.note(Note::FrameworkDisconnected { framework });
                appended |= self.append(entry, out).is_some();
            }
        }
        if appended {
            self.replicate_all(out);
        }
    }

    /// A new leader: every framework the registry holds as disconnected gets its failover
    /// timer, in full. It may fire late, never early (F1).
    pub(super) fn arm_framework_failovers(&self, out: &mut Outbox<Master>) {
        for (framework, record) in self.latest_registry().frameworks() {
            if record.disconnected_since.is_some() {
                let timeout = if self.mutated(super::Mutation::FailoverTimerNotRearmed) {
                    core::time::Duration::ZERO
                } else {
                    record.info.failover_timeout
                };
                out.set_timer(
                    MasterTimer::FrameworkFailover(*framework),
                    DurationRange::fixed(timeout),
                );
            }
        }
    }

    /// Leader: acts on newly committed framework entries.
    pub(super) fn framework_entries_committed(
        &mut self,
        entries: &[(LogIndex, RegistryEntry)],
        out: &mut Outbox<Master>,
    ) {
        for (_, entry) in entries {
            match entry {
                RegistryEntry::FrameworkDisconnected { framework } => {
                    if let Some(record) = self.registry.frameworks().get(framework) {
                        out.set_timer(
                            MasterTimer::FrameworkFailover(*framework),
                            DurationRange::fixed(record.info.failover_timeout),
                        );
                    }
                }
                RegistryEntry::FrameworkReconnected { framework } => {
                    out.cancel_timer(MasterTimer::FrameworkFailover(*framework));
                }
                RegistryEntry::FrameworkRemoved { framework } => {
                    out.cancel_timer(MasterTimer::FrameworkFailover(*framework));
                    self.kill_framework_tasks(*framework, out);
                }
                _ => {}
            }
        }
    }

    /// The failover timeout of a disconnected framework ran out: remove it (its tasks are
    /// killed once that commits), unless its scheduler came back meanwhile.
    pub(super) fn handle_framework_failover(
        &mut self,
        framework: FrameworkId,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() {
            return;
        }
        let still_disconnected = self
            .registry
            .frameworks()
            .get(&framework)
            .is_some_and(|record| record.disconnected_since.is_some());
        let entry = RegistryEntry::FrameworkRemoved { framework };
        if still_disconnected && self.with_latest_registry(|latest| latest.would_change(&entry)) {
            out.note(Note::FrameworkRemoved { framework });
            if self.append(entry, out).is_some() {
                self.replicate_all(out);
            }
        }
    }

    /// A removed framework's tasks are killed on every agent, and its offers and generated
    /// statuses dropped.
    fn kill_framework_tasks(&mut self, framework: FrameworkId, out: &mut Outbox<Master>) {
        let term = self.term();
        let mut kills = Vec::new();
        if let Some(agents) = self.agent_directory() {
            for (agent, view) in agents.agents() {
                let Some(address) = self.admitted_address(*agent) else {
                    continue;
                };
                for ((owner, task), known) in &view.tasks {
                    if *owner == framework && !known.state.is_terminal() {
                        kills.push((address.clone(), task.clone()));
                    }
                }
            }
        }
        for (address, task) in kills {
            out.send(
                address,
                Message::KillTask(KillTask {
                    term,
                    framework,
                    task,
                }),
            );
        }
        if let Some(directory) = self.frameworks_mut() {
            directory.frameworks.remove(&framework);
            directory
                .offers
                .retain(|_, offer| offer.framework != framework);
        }
        if let Some(agents) = self.agents_mut() {
            agents.generated.retain(|(owner, _), _| *owner != framework);
        }
    }
}

/// Scalar amounts by name (thousandths) as unreserved resources, each capped at the largest
/// quantity (fair sharing saturates there too).
fn scalars_by_name(sums: BTreeMap<Name, u128>) -> Resources {
    let mut resources = Resources::new();
    for (name, amount) in sums {
        let amount = u64::try_from(amount).unwrap_or(u64::MAX);
        let key = ResourceKey {
            name,
            reservation: Reservation::Unreserved,
            volume: None,
        };
        let one = Resources::scalar(key, Quantity::from_thousandths(amount));
        resources = resources
            .checked_add(&one)
            .expect("each name is added once, and an unreserved key holds no volume");
    }
    resources
}

#[cfg(feature = "mutations")]
impl Master {
    /// The seeded allocator bugs of [`Mutation`](super::Mutation): each offer of an agent
    /// also gets what is left of the agent, reserved for other roles (R2), or other roles'
    /// volumes (R3).
    fn mutate_offers(
        &self,
        agents: &BTreeMap<AgentId, AgentResources<'_>>,
        demands: &BTreeMap<FrameworkId, FrameworkDemand<'_>>,
        offers: &mut [crate::allocator::Offer],
    ) {
        let volumes = self.mutated(super::Mutation::OfferOtherRolesVolumes);
        if !volumes && !self.mutated(super::Mutation::OfferOtherRolesReservations) {
            return;
        }
        let mut left: BTreeMap<AgentId, Resources> = agents
            .iter()
            .map(|(agent, resources)| (*agent, resources.available.clone()))
            .collect();
        for offer in offers.iter() {
            if let Some(rest) = left.get_mut(&offer.agent)
                && let Ok(less) = rest.checked_sub(&offer.resources)
            {
                *rest = less;
            }
        }
        for offer in offers.iter_mut() {
            let (Some(rest), Some(demand)) =
                (left.get_mut(&offer.agent), demands.get(&offer.framework))
            else {
                continue;
            };
            let foreign = rest.filter(|key| {
                key.reservation
                    .role()
                    .is_some_and(|role| role != demand.role)
                    && key.volume.is_some() == volumes
            });
            if let (Ok(more), Ok(less)) = (
                offer.resources.checked_add(&foreign),
                rest.checked_sub(&foreign),
            ) {
                offer.resources = more;
                *rest = less;
            }
        }
    }
}
