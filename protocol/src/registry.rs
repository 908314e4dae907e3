//! The registry: the small, replicated part of the master's state.
//!
//! Everything else a master knows (which tasks run where, outstanding offers, connected
//! schedulers) is soft state, rebuilt from agents and frameworks after a failover. The
//! registry holds what cannot be rebuilt that way, because the party who would tell it might
//! be gone:
//!
//! * which agents were admitted, and whether they are reachable or gone — so a new leader can
//!   contact every agent itself, and a gone agent is never readmitted;
//! * which frameworks exist, with their failover timeout and whether their scheduler is
//!   connected — so a framework's failover timer survives master failover (F1; Mesos loses
//!   this, MESOS-4659);
//! * role weights for the allocator.
//!
//! The registry is the fold of the committed entries of the masters' replicated log (see
//! [`crate::master`]) by [`Registry::apply`]. `apply` is total and deterministic: an entry that
//! does not fit the current registry (readmitting an unknown agent, say) changes nothing. The
//! leader validates a change before proposing it and acts on it only after it commits.

use alloc::collections::BTreeMap;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::allocator::Weight;
use crate::bounded::Name;
use crate::ids::{AgentId, FrameworkId, Principal, Role};
use crate::resources::Resources;

/// The most agents the registry holds, gone ones included.
pub const REGISTRY_AGENTS_MAX: usize = 100_000;
/// The most frameworks the registry holds.
pub const REGISTRY_FRAMEWORKS_MAX: usize = 10_000;
/// The most roles with a configured weight.
pub const REGISTRY_ROLES_MAX: usize = 10_000;

/// A position in the replicated log, from 1; 0 is "before the first entry".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The index after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one (0 stays 0).
    #[must_use]
    pub fn previous(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl core::fmt::Display for LogIndex {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// What an agent registers with, kept in the registry so a new leader knows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The host name the agent reports, for operators.
    pub hostname: Name,
    /// The agent's total resources from its configuration, static reservations included.
    pub resources: Resources,
}

/// What a framework subscribes with, kept in the registry so its failover timeout survives
/// master failover.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// A name for operators.
    pub name: Name,
    /// The role the framework's resources are allocated in.
    pub role: Role,
    /// Who the framework authenticates as.
    pub principal: Principal,
    /// How long the framework's tasks outlive a disconnected scheduler.
    pub failover_timeout: Duration,
}

/// One change to the registry: the payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RegistryEntry {
    /// Changes nothing. A new leader appends one so that it can commit the entries of earlier
    /// terms (they commit only under an entry of the leader's own term).
    Noop,
    /// A new agent was admitted with this id.
    AgentAdmitted {
        /// The id the leader assigned.
        agent: AgentId,
        /// Where the agent listens.
        address: Address,
        /// What it registered with.
        info: AgentInfo,
    },
    /// The leader stopped hearing from an admitted agent; its tasks are reported unreachable.
    AgentUnreachable {
        /// The agent.
        agent: AgentId,
    },
    /// An unreachable agent came back, or an admitted one re-registered from a new address;
    /// its tasks resume.
    AgentReadmitted {
        /// The agent.
        agent: AgentId,
        /// Where it listens now.
        address: Address,
    },
    /// The agent is gone for good: it must shut down its tasks and register anew.
    AgentGone {
        /// The agent.
        agent: AgentId,
    },
    /// A framework subscribed for the first time and got this id.
    FrameworkRegistered {
        /// The id the leader assigned.
        framework: FrameworkId,
        /// What it subscribed with.
        info: FrameworkInfo,
    },
    /// A framework's scheduler disconnected: its failover timer started. A new leader re-arms
    /// the timer in full, so it fires late, never early (F1).
    FrameworkDisconnected {
        /// The framework.
        framework: FrameworkId,
    },
    /// A framework's scheduler (re)subscribed: its failover timer stopped.
    FrameworkReconnected {
        /// The framework.
        framework: FrameworkId,
    },
    /// A framework was removed (torn down, or its failover timeout expired).
    FrameworkRemoved {
        /// The framework.
        framework: FrameworkId,
    },
    /// An operator set a role's weight for the allocator.
    RoleWeightSet {
        /// The role.
        role: Role,
        /// Its new weight.
        weight: Weight,
    },
}

/// Whether an admitted agent is in contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgentStatus {
    /// Registered and reachable.
    Admitted,
    /// Missed too many pings, since the entry at this index.
    Unreachable {
        /// The log index of the entry that marked it unreachable.
        since: LogIndex,
    },
    /// Gone for good; the id is never readmitted.
    Gone,
}

/// The registry's record of one agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Where the agent listens.
    pub address: Address,
    /// What it registered with.
    pub info: AgentInfo,
    /// Whether it is in contact.
    pub status: AgentStatus,
}

/// The registry's record of one framework.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FrameworkRecord {
    /// What it subscribed with.
    pub info: FrameworkInfo,
    /// `Some(index)` while its scheduler is disconnected: the entry that started its failover
    /// timer.
    pub disconnected_since: Option<LogIndex>,
}

/// The replicated registry. See the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Registry {
    agents: BTreeMap<AgentId, AgentRecord>,
    frameworks: BTreeMap<FrameworkId, FrameworkRecord>,
    role_weights: BTreeMap<Role, Weight>,
}

/// The record one entry applied by [`Registry::apply_undoably`] replaced (`None`: there
/// was none), so that [`Registry::undo`] can put it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryUndo {
    /// The entry changes no record.
    Nothing,
    /// An agent's record before the entry.
    Agent(AgentId, Option<AgentRecord>),
    /// A framework's record before the entry.
    Framework(FrameworkId, Option<FrameworkRecord>),
    /// A role's weight before the entry.
    RoleWeight(Role, Option<Weight>),
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Registry {
        Registry {
            agents: BTreeMap::new(),
            frameworks: BTreeMap::new(),
            role_weights: BTreeMap::new(),
        }
    }

    /// Every agent ever admitted, gone ones included.
    pub fn agents(&self) -> &BTreeMap<AgentId, AgentRecord> {
        &self.agents
    }

    /// Every framework not removed.
    pub fn frameworks(&self) -> &BTreeMap<FrameworkId, FrameworkRecord> {
        &self.frameworks
    }

    /// The roles with a configured weight.
    pub fn role_weights(&self) -> &BTreeMap<Role, Weight> {
        &self.role_weights
    }

    /// Whether `entry` would change this registry. The leader proposes only entries that do,
    /// so a repeated request (a retried `SetRoleWeight`, a duplicated message) adds nothing to
    /// the log.
    ///
    /// It looks up the one record `entry` concerns, without copying the registry: each case
    /// is the condition under which [`apply`](Registry::apply) changes that record.
    pub fn would_change(&self, entry: &RegistryEntry) -> bool {
        match entry {
            RegistryEntry::Noop => false,
            RegistryEntry::AgentAdmitted { agent, .. } => {
                !self.agents.contains_key(agent) && self.agents.len() < REGISTRY_AGENTS_MAX
            }
            RegistryEntry::AgentUnreachable { agent } => self
                .agents
                .get(agent)
                .is_some_and(|record| record.status == AgentStatus::Admitted),
            RegistryEntry::AgentReadmitted { agent, address } => self
                .agents
                .get(agent)
                .is_some_and(|record| match record.status {
                    AgentStatus::Gone => false,
                    AgentStatus::Admitted => record.address != *address,
                    AgentStatus::Unreachable { .. } => true,
                }),
            RegistryEntry::AgentGone { agent } => self
                .agents
                .get(agent)
                .is_some_and(|record| record.status != AgentStatus::Gone),
            RegistryEntry::FrameworkRegistered { framework, .. } => {
                !self.frameworks.contains_key(framework)
                    && self.frameworks.len() < REGISTRY_FRAMEWORKS_MAX
            }
            RegistryEntry::FrameworkDisconnected { framework } => self
                .frameworks
                .get(framework)
                .is_some_and(|record| record.disconnected_since.is_none()),
            RegistryEntry::FrameworkReconnected { framework } => self
                .frameworks
                .get(framework)
                .is_some_and(|record| record.disconnected_since.is_some()),
            RegistryEntry::FrameworkRemoved { framework } => {
                self.frameworks.contains_key(framework)
            }
            RegistryEntry::RoleWeightSet { role, weight } => match self.role_weights.get(role) {
                Some(current) => current != weight,
                None => self.role_weights.len() < REGISTRY_ROLES_MAX,
            },
        }
    }

    /// Applies `entry` at `index` like [`apply`](Registry::apply) and returns what puts the
    /// registry back as it was: [`undo`](Registry::undo) it before applying anything else.
    /// Lets the leader look at the registry as it will be once its log commits without
    /// copying it: the few uncommitted entries are applied, read through, and undone.
    pub fn apply_undoably(&mut self, index: LogIndex, entry: &RegistryEntry) -> RegistryUndo {
        let undo = match entry {
            RegistryEntry::Noop => RegistryUndo::Nothing,
            RegistryEntry::AgentAdmitted { agent, .. }
            | RegistryEntry::AgentUnreachable { agent }
            | RegistryEntry::AgentReadmitted { agent, .. }
            | RegistryEntry::AgentGone { agent } => {
                RegistryUndo::Agent(*agent, self.agents.get(agent).cloned())
            }
            RegistryEntry::FrameworkRegistered { framework, .. }
            | RegistryEntry::FrameworkDisconnected { framework }
            | RegistryEntry::FrameworkReconnected { framework }
            | RegistryEntry::FrameworkRemoved { framework } => {
                RegistryUndo::Framework(*framework, self.frameworks.get(framework).cloned())
            }
            RegistryEntry::RoleWeightSet { role, .. } => {
                RegistryUndo::RoleWeight(role.clone(), self.role_weights.get(role).copied())
            }
        };
        self.apply(index, entry);
        undo
    }

    /// Puts back the one record an [`apply_undoably`](Registry::apply_undoably) changed.
    pub fn undo(&mut self, undo: RegistryUndo) {
        fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) {
            match value {
                Some(value) => {
                    map.insert(key, value);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        match undo {
            RegistryUndo::Nothing => {}
            RegistryUndo::Agent(agent, record) => restore(&mut self.agents, agent, record),
            RegistryUndo::Framework(framework, record) => {
                restore(&mut self.frameworks, framework, record);
            }
            RegistryUndo::RoleWeight(role, weight) => restore(&mut self.role_weights, role, weight),
        }
    }

    /// Folds one committed entry, at log position `index`, into the registry. Total: an entry
    /// that does not fit (an unknown id, a full table) changes nothing.
    pub fn apply(&mut self, index: LogIndex, entry: &RegistryEntry) {
        match entry {
            RegistryEntry::Noop => {}
            RegistryEntry::AgentAdmitted {
                agent,
                address,
                info,
            } => {
                if !self.agents.contains_key(agent) && self.agents.len() < REGISTRY_AGENTS_MAX {
                    self.agents.insert(
                        *agent,
                        AgentRecord {
                            address: address.clone(),
                            info: info.clone(),
                            status: AgentStatus::Admitted,
                        },
                    );
                }
            }
            RegistryEntry::AgentUnreachable { agent } => {
                if let Some(record) = self.agents.get_mut(agent)
                    && record.status == AgentStatus::Admitted
                {
                    record.status = AgentStatus::Unreachable { since: index };
                }
            }
            RegistryEntry::AgentReadmitted { agent, address } => {
                if let Some(record) = self.agents.get_mut(agent)
                    && record.status != AgentStatus::Gone
                {
                    record.status = AgentStatus::Admitted;
                    record.address = address.clone();
                }
            }
            RegistryEntry::AgentGone { agent } => {
                if let Some(record) = self.agents.get_mut(agent) {
                    record.status = AgentStatus::Gone;
                }
            }
            RegistryEntry::FrameworkRegistered { framework, info } => {
                if !self.frameworks.contains_key(framework)
                    && self.frameworks.len() < REGISTRY_FRAMEWORKS_MAX
                {
                    self.frameworks.insert(
                        *framework,
                        FrameworkRecord {
                            info: info.clone(),
                            disconnected_since: None,
                        },
                    );
                }
            }
            RegistryEntry::FrameworkDisconnected { framework } => {
                if let Some(record) = self.frameworks.get_mut(framework)
                    && record.disconnected_since.is_none()
                {
                    record.disconnected_since = Some(index);
                }
            }
            RegistryEntry::FrameworkReconnected { framework } => {
                if let Some(record) = self.frameworks.get_mut(framework) {
                    record.disconnected_since = None;
                }
            }
            RegistryEntry::FrameworkRemoved { framework } => {
                self.frameworks.remove(framework);
            }
            RegistryEntry::RoleWeightSet { role, weight } => {
                if self.role_weights.contains_key(role)
                    || self.role_weights.len() < REGISTRY_ROLES_MAX
                {
                    self.role_weights.insert(role.clone(), *weight);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AssignedId, Term};

    fn agent(sequence: u64) -> AgentId {
        AgentId(AssignedId {
            term: Term(1),
            sequence,
        })
    }

    fn admitted(sequence: u64) -> RegistryEntry {
        RegistryEntry::AgentAdmitted {
            agent: agent(sequence),
            address: Address::new("10.0.0.1:5051").expect("valid"),
            info: AgentInfo {
                hostname: Name::new("host").expect("valid"),
                resources: Resources::parse("cpus:1").expect("valid"),
            },
        }
    }

    #[test]
    fn an_agent_goes_unreachable_comes_back_and_is_gone_for_good() {
        let mut registry = Registry::new();
        registry.apply(LogIndex(1), &admitted(0));
        registry.apply(
            LogIndex(2),
            &RegistryEntry::AgentUnreachable { agent: agent(0) },
        );
        assert_eq!(
            registry.agents()[&agent(0)].status,
            AgentStatus::Unreachable { since: LogIndex(2) }
        );
        let address = Address::new("10.0.0.1:6000").expect("valid");
        let readmit = RegistryEntry::AgentReadmitted {
            agent: agent(0),
            address: address.clone(),
        };
        registry.apply(LogIndex(3), &readmit);
        assert_eq!(registry.agents()[&agent(0)].status, AgentStatus::Admitted);
        assert_eq!(registry.agents()[&agent(0)].address, address);
        registry.apply(LogIndex(4), &RegistryEntry::AgentGone { agent: agent(0) });
        // A gone agent is never readmitted, nor admitted again under its id.
        registry.apply(
            LogIndex(5),
            &RegistryEntry::AgentUnreachable { agent: agent(0) },
        );
        registry.apply(LogIndex(6), &readmit);
        registry.apply(LogIndex(7), &admitted(0));
        assert_eq!(registry.agents()[&agent(0)].status, AgentStatus::Gone);
    }

    #[test]
    fn entries_that_do_not_fit_change_nothing() {
        let mut registry = Registry::new();
        let before = registry.clone();
        for entry in [
            RegistryEntry::AgentUnreachable { agent: agent(9) },
            RegistryEntry::AgentGone { agent: agent(9) },
            RegistryEntry::FrameworkDisconnected {
                framework: FrameworkId(agent(9).0),
            },
        ] {
            assert!(!registry.would_change(&entry));
            registry.apply(LogIndex(1), &entry);
        }
        assert_eq!(registry, before);
    }

    #[test]
    fn a_framework_failover_timer_starts_once_and_stops_on_reconnect() {
        let framework = FrameworkId(agent(0).0);
        let mut registry = Registry::new();
        registry.apply(
            LogIndex(1),
            &RegistryEntry::FrameworkRegistered {
                framework,
                info: FrameworkInfo {
                    name: Name::new("web").expect("valid"),
                    role: Role::new("web").expect("valid"),
                    principal: Principal::new("alice").expect("valid"),
                    failover_timeout: Duration::from_secs(60),
                },
            },
        );
        registry.apply(
            LogIndex(2),
            &RegistryEntry::FrameworkDisconnected { framework },
        );
        registry.apply(
            LogIndex(3),
            &RegistryEntry::FrameworkDisconnected { framework },
        );
        assert_eq!(
            registry.frameworks()[&framework].disconnected_since,
            Some(LogIndex(2)),
            "a repeated disconnect does not restart the timer"
        );
        registry.apply(
            LogIndex(4),
            &RegistryEntry::FrameworkReconnected { framework },
        );
        assert_eq!(registry.frameworks()[&framework].disconnected_since, None);
        registry.apply(LogIndex(5), &RegistryEntry::FrameworkRemoved { framework });
        assert!(registry.frameworks().is_empty());
    }

    #[test]
    fn setting_the_same_weight_again_changes_nothing() {
        let mut registry = Registry::new();
        let entry = RegistryEntry::RoleWeightSet {
            role: Role::new("ops").expect("valid"),
            weight: "2".parse().expect("valid"),
        };
        assert!(registry.would_change(&entry));
        registry.apply(LogIndex(1), &entry);
        assert!(!registry.would_change(&entry));
    }

    /// Every kind of entry, about known and unknown agents, frameworks and roles.
    fn every_kind_of_entry() -> alloc::vec::Vec<RegistryEntry> {
        let framework = |sequence| FrameworkId(agent(sequence).0);
        let info = FrameworkInfo {
            name: Name::new("web").expect("valid"),
            role: Role::new("web").expect("valid"),
            principal: Principal::new("alice").expect("valid"),
            failover_timeout: Duration::from_secs(60),
        };
        let mut entries = alloc::vec![RegistryEntry::Noop];
        for sequence in 0..3 {
            entries.extend([
                admitted(sequence),
                RegistryEntry::AgentUnreachable {
                    agent: agent(sequence),
                },
                RegistryEntry::AgentReadmitted {
                    agent: agent(sequence),
                    address: Address::new("10.0.0.1:5051").expect("valid"),
                },
                RegistryEntry::AgentReadmitted {
                    agent: agent(sequence),
                    address: Address::new("10.0.0.2:5051").expect("valid"),
                },
                RegistryEntry::AgentGone {
                    agent: agent(sequence),
                },
                RegistryEntry::FrameworkRegistered {
                    framework: framework(sequence),
                    info: info.clone(),
                },
                RegistryEntry::FrameworkDisconnected {
                    framework: framework(sequence),
                },
                RegistryEntry::FrameworkReconnected {
                    framework: framework(sequence),
                },
                RegistryEntry::FrameworkRemoved {
                    framework: framework(sequence),
                },
            ]);
        }
        for weight in ["1", "2"] {
            entries.push(RegistryEntry::RoleWeightSet {
                role: Role::new("web").expect("valid"),
                weight: weight.parse().expect("valid"),
            });
        }
        entries
    }

    #[test]
    fn would_change_agrees_with_applying_to_a_copy_and_undo_restores() {
        let entries = every_kind_of_entry();
        // Registries reached by every pair of entries from an empty one, and by a longer
        // deterministic walk through the entries.
        let mut registries = alloc::vec![Registry::new()];
        for first in &entries {
            for second in &entries {
                let mut registry = Registry::new();
                registry.apply(LogIndex(1), first);
                registry.apply(LogIndex(2), second);
                registries.push(registry);
            }
        }
        let mut walk = Registry::new();
        for step in 0..entries.len() * 7 {
            walk.apply(LogIndex(step as u64), &entries[(step * 5) % entries.len()]);
            registries.push(walk.clone());
        }
        for registry in &registries {
            for entry in &entries {
                let mut copy = registry.clone();
                copy.apply(LogIndex(9), entry);
                assert_eq!(
                    registry.would_change(entry),
                    copy != *registry,
                    "{entry:?} on {registry:?}"
                );
                let mut undone = registry.clone();
                let undo = undone.apply_undoably(LogIndex(9), entry);
                assert_eq!(undone, copy, "applied undoably like apply");
                undone.undo(undo);
                assert_eq!(undone, *registry, "undo puts back {entry:?}");
            }
        }
    }
}
