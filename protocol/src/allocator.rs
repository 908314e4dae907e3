//! The allocator: which framework is offered which agent's resources.
//!
//! [`allocate`] is a pure function from a view of the cluster, a [`Cluster`], to the
//! [`Offer`]s the leading master should make. The view holds each agent's total and
//! *available* resources (total minus what tasks use minus what outstanding offers hold), the
//! role weights, each framework's role, whether it wants offers and what it is allocated
//! (its tasks and its outstanding offers), and the active decline filters. The allocator keeps
//! nothing between calls, so the master, the model checker and the simulator get the same
//! offers from the same view. The master calls it every [`ALLOCATION_INTERVAL_DEFAULT`] and,
//! once per batch of inputs, after events that add resources or demand (an agent registers,
//! a task ends, an offer is declined or rescinded, a framework subscribes or revives). A decline installs a filter for
//! that framework and agent, by default for [`DECLINE_FILTER_DEFAULT`]; the master expires it.
//!
//! # Algorithm
//!
//! Hierarchical dominant resource fairness (DRF; Ghodsi et al., NSDI 2011), in the shape of
//! Mesos's hierarchical allocator: roles share the cluster by weighted DRF, and the
//! frameworks of a role share what the role gets by DRF.
//!
//! * The **dominant share** of an allocation is its largest fraction of the cluster's total
//!   over the scalar resource names (`cpus`, `mem`, `disk`, …), counting every reservation.
//!   Ranges (`ports`) do not count, as in Mesos. A role's allocation is the sum of its
//!   frameworks' allocations, including frameworks that do not want offers; its *weighted*
//!   share is its dominant share divided by its [`Weight`] (1 when it has none recorded).
//!   Shares are exact fractions of integers, compared by cross-multiplying: no rounding can
//!   reorder two frameworks.
//! * Each agent's available resources are cut into **pools**: its unreserved resources, and
//!   for each role its resources reserved for that role, persistent volumes included. A pool
//!   goes whole to one framework, or stays unoffered. A framework's pools on one agent form one
//!   offer.
//! * A framework is **eligible** for an agent if it wants offers and does not filter that
//!   agent.
//!
//! Agents are visited in id order, in two stages:
//!
//! 1. **Reservations.** Each pool reserved for a role goes to the eligible framework of that
//!    role with the lowest dominant share.
//! 2. **Unreserved resources.** Each agent's unreserved pool goes to the eligible framework
//!    found by hierarchical DRF: the role with the lowest weighted dominant share that has an
//!    eligible framework, then its eligible framework with the lowest dominant share. That
//!    framework also receives its role's pool on the agent if stage 1 left it unoffered.
//!    (Stage 1 leaves it only when no framework of the role is eligible for the agent, which
//!    the winner contradicts, so today this only guards the rule against a change of stage 1.)
//!
//! After each grant, the framework's and its role's allocations grow by the pool, and both
//! move to their new place in their ordered sets, so later agents see the new shares. Ties
//! are broken by role name, then framework id. Agents are visited in id order every cycle
//! (Mesos shuffles them); this keeps the function deterministic.
//!
//! # Invariants
//!
//! | rule | protects |
//! | --- | --- |
//! | a pool goes to at most one framework; offers are cut from the agent's available resources | R1 |
//! | a reserved pool goes only to a framework of its role; a reservation for a role without frameworks is not offered | R2 |
//! | a persistent volume travels in its role's pool; a volume on unreserved disk has no role and is never offered | R3 |
//!
//! [`allocate`] checks its result with [`check_offers`] in debug builds; tests, the model and
//! the simulator can call the same check. R1 across cycles rests on the caller: offers it makes
//! are subtracted from the agents' available resources until they are answered.
//!
//! # Complexity
//!
//! For `A` agents with `E` entries each, `F` frameworks in `R` roles, `K` scalar resource
//! names and `L` active filters: setup reads every entry a few times and sorts each agent's
//! pools, `O(A·E·log E + (A + F)·E·log K + F·log F)`. Each stage visits each agent once. Picking a framework starts at the lowest share of an
//! ordered set and only skips frameworks that filter that agent, so all picks of a stage cost
//! `O(A·(log R + log F) + L)` set steps, each with a filter lookup of `O(log L)`. A grant moves
//! one framework and one role in their sets, `O(K + log F + log R)`. Building the offers copies
//! each offered entry once, `O(A·E·log E)`. In all, linear in agents up to a logarithmic
//! factor. (Mesos's allocator walks its sorted roles and frameworks for every agent, which is
//! `O(A·F)` at least.) BENCHMARKS.md has the measured figures.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;

use crate::bounded::Name;
use crate::ids::{AgentId, FrameworkId, Role};
use crate::resources::{ResourceKey, Resources};

mod share;
mod weight;

pub use weight::{Weight, WeightError};

use share::{FrameworkKey, RoleKey, Share};

/// How often the master runs the allocator when nothing else triggers it (Mesos: 1 s).
pub const ALLOCATION_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// How long a decline without an explicit duration keeps the agent from that framework
/// (Mesos: 5 s).
pub const DECLINE_FILTER_DEFAULT: Duration = Duration::from_secs(5);

/// The view of the cluster that one allocation cycle reads.
///
/// Everything is borrowed: the master builds the agent and framework maps each cycle from
/// its own state (it has to compute the available resources anyway) and lends its weights
/// and filters as they are. Maps keyed by id make duplicates impossible and fix the order.
#[derive(Clone, Copy, Debug)]
pub struct Cluster<'a> {
    /// Every agent that can be offered, with its resources.
    pub agents: &'a BTreeMap<AgentId, AgentResources<'a>>,
    /// Role weights; a role missing here has [`Weight::ONE`].
    pub weights: &'a BTreeMap<Role, Weight>,
    /// Every framework whose allocation counts in fair sharing.
    pub frameworks: &'a BTreeMap<FrameworkId, FrameworkDemand<'a>>,
    /// The active decline filters: the framework is offered nothing from the agent.
    pub filters: &'a BTreeSet<(FrameworkId, AgentId)>,
}

/// One agent's resources, as the allocator sees them.
#[derive(Clone, Copy, Debug)]
pub struct AgentResources<'a> {
    /// Everything the agent has; the cluster total used for shares is the sum of these.
    pub total: &'a Resources,
    /// What may be offered now: `total` minus what tasks use minus what outstanding offers
    /// hold. Must be contained in `total`.
    pub available: &'a Resources,
}

/// One framework, as the allocator sees it.
#[derive(Clone, Copy, Debug)]
pub struct FrameworkDemand<'a> {
    /// The role the framework belongs to.
    pub role: &'a Role,
    /// Whether it wants offers now (it is subscribed and has not suppressed them).
    pub wants_offers: bool,
    /// What it holds: its tasks' resources and its outstanding offers.
    pub allocation: &'a Resources,
}

/// Resources the master should offer to a framework. The master gives it an offer id and
/// counts it as outstanding until it is accepted, declined, rescinded or timed out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Offer {
    /// Who is offered.
    pub framework: FrameworkId,
    /// Whose resources.
    pub agent: AgentId,
    /// What is offered: never empty, always within the agent's available resources.
    pub resources: Resources,
}

/// Computes the offers of one allocation cycle; see the [module docs](self).
///
/// The result holds at most one offer per framework and agent, sorted by agent id and then
/// framework id. It satisfies R1–R3 for `cluster` ([`check_offers`]).
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use berth_protocol::allocator::{AgentResources, Cluster, FrameworkDemand, allocate};
/// use berth_protocol::ids::{AgentId, AssignedId, FrameworkId, Role, Term};
/// use berth_protocol::resources::Resources;
///
/// let id = |sequence| AssignedId { term: Term(1), sequence };
/// let total = Resources::parse("cpus:4;mem:1024;cpus(ops):2").expect("valid");
/// let agents = BTreeMap::from([(
///     AgentId(id(0)),
///     AgentResources { total: &total, available: &total },
/// )]);
/// let (web, ops) = (Role::new("web").expect("valid"), Role::new("ops").expect("valid"));
/// let nothing = Resources::new();
/// let frameworks = BTreeMap::from([
///     (FrameworkId(id(0)), FrameworkDemand { role: &web, wants_offers: true, allocation: &nothing }),
///     (FrameworkId(id(1)), FrameworkDemand { role: &ops, wants_offers: true, allocation: &nothing }),
/// ]);
/// let (weights, filters) = (BTreeMap::new(), BTreeSet::new());
/// let cluster = Cluster { agents: &agents, weights: &weights, frameworks: &frameworks, filters: &filters };
///
/// let offers = allocate(&cluster);
/// // `ops` gets its reservation (R2); `web`, now the role with the lower share, the rest.
/// assert_eq!(offers[0].framework, FrameworkId(id(0)));
/// assert_eq!(offers[0].resources.to_string(), "cpus:4;mem:1024");
/// assert_eq!(offers[1].framework, FrameworkId(id(1)));
/// assert_eq!(offers[1].resources.to_string(), "cpus(ops):2");
/// ```
pub fn allocate(cluster: &Cluster<'_>) -> Vec<Offer> {
    let mut cycle = Cycle::new(cluster);
    cycle.offer_reservations();
    cycle.offer_unreserved();
    let offers = cycle.offers();
    debug_assert_eq!(check_offers(cluster, &offers), Ok(()), "R1–R3 hold");
    offers
}

/// Checks offers against the cluster they were made from: R1 (on every agent the offers are
/// disjoint and within the available resources), R2 (reserved resources only to their role),
/// R3 (volumes only to their role), and that they go only to eligible frameworks.
pub fn check_offers(cluster: &Cluster<'_>, offers: &[Offer]) -> Result<(), OfferViolation> {
    let mut offered: BTreeMap<AgentId, Resources> = BTreeMap::new();
    let mut pairs: BTreeSet<(FrameworkId, AgentId)> = BTreeSet::new();
    for offer in offers {
        let (framework, agent) = (offer.framework, offer.agent);
        let demand = cluster
            .frameworks
            .get(&framework)
            .ok_or(OfferViolation::UnknownFramework { framework })?;
        if !cluster.agents.contains_key(&agent) {
            return Err(OfferViolation::UnknownAgent { agent });
        }
        if offer.resources.is_empty() {
            return Err(OfferViolation::Empty { framework, agent });
        }
        if !pairs.insert((framework, agent)) {
            return Err(OfferViolation::Duplicate { framework, agent });
        }
        if !demand.wants_offers || cluster.filters.contains(&(framework, agent)) {
            return Err(OfferViolation::NotEligible { framework, agent });
        }
        check_roles(&offer.resources, demand.role, framework, agent)?;
        let sum = offered.remove(&agent).unwrap_or_default();
        let sum = sum
            .checked_add(&offer.resources)
            .map_err(|_| OfferViolation::Overcommitted { agent })?;
        offered.insert(agent, sum);
    }
    for (agent, sum) in &offered {
        let available = cluster
            .agents
            .get(agent)
            .map(|resources| resources.available);
        if !available.is_some_and(|available| available.contains(sum)) {
            return Err(OfferViolation::Overcommitted { agent: *agent });
        }
    }
    Ok(())
}

/// Checks R2 and R3 for one offer to `framework`, of `role`, on `agent`.
fn check_roles(
    resources: &Resources,
    role: &Role,
    framework: FrameworkId,
    agent: AgentId,
) -> Result<(), OfferViolation> {
    let keys = resources
        .scalars()
        .map(|(key, _)| key)
        .chain(resources.range_sets().map(|(key, _)| key));
    for key in keys {
        let reserved_for = key.reservation.role();
        if key.volume.is_some() && reserved_for != Some(role) {
            return Err(OfferViolation::ForeignVolume { framework, agent });
        }
        if reserved_for.is_some_and(|reserved_for| reserved_for != role) {
            return Err(OfferViolation::ForeignReservation { framework, agent });
        }
    }
    Ok(())
}

/// How a set of offers breaks the rules [`check_offers`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferViolation {
    /// R1: the offers on the agent count a resource twice or exceed its available resources.
    Overcommitted {
        /// The agent.
        agent: AgentId,
    },
    /// R2: the framework is offered resources reserved for another role.
    ForeignReservation {
        /// The framework.
        framework: FrameworkId,
        /// The agent.
        agent: AgentId,
    },
    /// R3: the framework is offered a persistent volume that is not its role's.
    ForeignVolume {
        /// The framework.
        framework: FrameworkId,
        /// The agent.
        agent: AgentId,
    },
    /// The framework does not want offers, or filters the agent.
    NotEligible {
        /// The framework.
        framework: FrameworkId,
        /// The agent.
        agent: AgentId,
    },
    /// The framework has two offers on the agent.
    Duplicate {
        /// The framework.
        framework: FrameworkId,
        /// The agent.
        agent: AgentId,
    },
    /// An offer is empty.
    Empty {
        /// The framework.
        framework: FrameworkId,
        /// The agent.
        agent: AgentId,
    },
    /// An offer names a framework that is not in the cluster.
    UnknownFramework {
        /// The framework.
        framework: FrameworkId,
    },
    /// An offer names an agent that is not in the cluster.
    UnknownAgent {
        /// The agent.
        agent: AgentId,
    },
}

impl fmt::Display for OfferViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferViolation::Overcommitted { agent } => write!(
                formatter,
                "R1: offers on agent {agent} overlap or exceed its available resources"
            ),
            OfferViolation::ForeignReservation { framework, agent } => write!(
                formatter,
                "R2: framework {framework} is offered another role's reservation on agent {agent}"
            ),
            OfferViolation::ForeignVolume { framework, agent } => write!(
                formatter,
                "R3: framework {framework} is offered another role's volume on agent {agent}"
            ),
            OfferViolation::NotEligible { framework, agent } => write!(
                formatter,
                "framework {framework} does not want offers from agent {agent}"
            ),
            OfferViolation::Duplicate { framework, agent } => write!(
                formatter,
                "framework {framework} has two offers on agent {agent}"
            ),
            OfferViolation::Empty { framework, agent } => write!(
                formatter,
                "framework {framework} has an empty offer on agent {agent}"
            ),
            OfferViolation::UnknownFramework { framework } => {
                write!(formatter, "framework {framework} is not in the cluster")
            }
            OfferViolation::UnknownAgent { agent } => {
                write!(formatter, "agent {agent} is not in the cluster")
            }
        }
    }
}

impl core::error::Error for OfferViolation {}

/// Amounts of each scalar resource name, one row of `width` cells per role, framework or pool.
struct Table {
    width: usize,
    cells: Vec<u64>,
}

impl Table {
    fn new(width: usize, rows: usize) -> Table {
        Table {
            width,
            cells: alloc::vec![0; width * rows],
        }
    }

    fn row(&self, row: usize) -> &[u64] {
        &self.cells[row * self.width..(row + 1) * self.width]
    }

    fn row_mut(&mut self, row: usize) -> &mut [u64] {
        &mut self.cells[row * self.width..(row + 1) * self.width]
    }

    /// Appends a row of zeros.
    fn push_row(&mut self) {
        self.cells.resize(self.cells.len() + self.width, 0);
    }
}

/// Adds `amounts` to `row`, saturating: a share past `u64::MAX` thousandths is already
/// larger than any other.
fn add_amounts(row: &mut [u64], amounts: &[u64]) {
    for (cell, amount) in row.iter_mut().zip(amounts) {
        *cell = cell.saturating_add(*amount);
    }
}

/// The scalar resource names of the cluster and its total of each.
struct Names<'a> {
    /// Sorted, distinct.
    names: Vec<&'a Name>,
    /// `totals[i]` is the cluster's total of `names[i]`, over every reservation.
    totals: Vec<u64>,
}

impl<'a> Names<'a> {
    fn new(agents: &BTreeMap<AgentId, AgentResources<'a>>) -> Names<'a> {
        // One pass over the agents; the map stays as small as the set of names.
        let mut totals: BTreeMap<&'a Name, u64> = BTreeMap::new();
        for agent in agents.values() {
            for (key, quantity) in agent.total.scalars() {
                let total = totals.entry(&key.name).or_insert(0);
                *total = total.saturating_add(quantity.thousandths());
            }
        }
        let (names, totals) = totals.into_iter().unzip();
        Names { names, totals }
    }

    fn index(&self, name: &Name) -> Option<usize> {
        self.names.binary_search(&name).ok()
    }
}

/// Adds the scalars of `resources` to `row`, by name; names not in `names` do not count.
fn add_scalars(names: &[&Name], row: &mut [u64], resources: &Resources) {
    for (key, quantity) in resources.scalars() {
        if let Ok(index) = names.binary_search(&&key.name) {
            row[index] = row[index].saturating_add(quantity.thousandths());
        }
    }
}

/// The fair-sharing state of a cycle: allocations, shares and the two orders.
struct Shares<'a> {
    /// Roles with at least one framework, in name order.
    roles: Vec<&'a Role>,
    role_weights: Vec<Weight>,
    role_allocations: Table,
    role_shares: Vec<Share>,
    /// Per role, its frameworks that want offers, lowest share first.
    role_frameworks: Vec<BTreeSet<FrameworkKey>>,
    /// Roles that have a framework wanting offers, lowest weighted share first.
    role_order: BTreeSet<RoleKey>,
    /// In id order.
    framework_ids: Vec<FrameworkId>,
    framework_roles: Vec<usize>,
    framework_allocations: Table,
    framework_shares: Vec<Share>,
    totals: Vec<u64>,
}

impl<'a> Shares<'a> {
    fn new(cluster: &Cluster<'a>, names: &Names<'a>) -> Shares<'a> {
        let mut roles: Vec<&'a Role> = cluster.frameworks.values().map(|f| f.role).collect();
        roles.sort_unstable();
        roles.dedup();
        let width = names.names.len();
        let mut shares = Shares {
            role_weights: roles
                .iter()
                .map(|role| cluster.weights.get(*role).copied().unwrap_or_default())
                .collect(),
            role_allocations: Table::new(width, roles.len()),
            role_shares: alloc::vec![Share::ZERO; roles.len()],
            role_frameworks: roles.iter().map(|_| BTreeSet::new()).collect(),
            role_order: BTreeSet::new(),
            framework_ids: Vec::with_capacity(cluster.frameworks.len()),
            framework_roles: Vec::with_capacity(cluster.frameworks.len()),
            framework_allocations: Table::new(width, cluster.frameworks.len()),
            framework_shares: Vec::with_capacity(cluster.frameworks.len()),
            totals: names.totals.clone(),
            roles,
        };
        for (framework, (id, demand)) in cluster.frameworks.iter().enumerate() {
            shares.add_framework(framework, *id, demand, names);
        }
        for role in 0..shares.roles.len() {
            shares.role_shares[role] =
                Share::dominant(shares.role_allocations.row(role), &shares.totals);
            if !shares.role_frameworks[role].is_empty() {
                shares.role_order.insert(shares.role_key(role));
            }
        }
        shares
    }

    fn add_framework(
        &mut self,
        framework: usize,
        id: FrameworkId,
        demand: &FrameworkDemand<'a>,
        names: &Names<'a>,
    ) {
        let role = self.role_index(demand.role).unwrap_or_else(|| {
            unreachable!("roles were collected from the frameworks");
        });
        add_scalars(
            &names.names,
            self.framework_allocations.row_mut(framework),
            demand.allocation,
        );
        let allocation = self.framework_allocations.row(framework);
        add_amounts(self.role_allocations.row_mut(role), allocation);
        let share = Share::dominant(allocation, &self.totals);
        self.framework_ids.push(id);
        self.framework_roles.push(role);
        self.framework_shares.push(share);
        if demand.wants_offers {
            self.role_frameworks[role].insert(FrameworkKey { share, framework });
        }
    }

    fn role_index(&self, role: &Role) -> Option<usize> {
        self.roles.binary_search(&role).ok()
    }

    fn role_key(&self, role: usize) -> RoleKey {
        RoleKey {
            share: self.role_shares[role],
            weight: self.role_weights[role],
            role,
        }
    }

    fn framework_key(&self, framework: usize) -> FrameworkKey {
        FrameworkKey {
            share: self.framework_shares[framework],
            framework,
        }
    }

    /// Counts `amounts` as allocated to `framework` (which wants offers) and its role, and
    /// moves both to their new places.
    fn grant(&mut self, framework: usize, amounts: &[u64]) {
        let role = self.framework_roles[framework];
        let key = self.framework_key(framework);
        let moved = self.role_frameworks[role].remove(&key);
        debug_assert!(moved, "only frameworks that want offers are granted");
        add_amounts(self.framework_allocations.row_mut(framework), amounts);
        self.framework_shares[framework] =
            Share::dominant(self.framework_allocations.row(framework), &self.totals);
        let key = self.framework_key(framework);
        self.role_frameworks[role].insert(key);

        let key = self.role_key(role);
        let moved = self.role_order.remove(&key);
        debug_assert!(
            moved,
            "a role with a framework that wants offers is ordered"
        );
        add_amounts(self.role_allocations.row_mut(role), amounts);
        self.role_shares[role] = Share::dominant(self.role_allocations.row(role), &self.totals);
        let key = self.role_key(role);
        self.role_order.insert(key);
    }
}

/// Which pool an entry of an agent's available resources belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PoolClass {
    Unreserved,
    /// Reserved for the role of this index.
    Reserved(usize),
}

/// Part of one agent's available resources that goes whole to one framework.
#[derive(Clone, Copy, Debug)]
struct Pool {
    class: PoolClass,
    /// The framework it is granted to, if any.
    assignee: Option<usize>,
}

/// The pools of every agent; `pools[agent_pools[a]]` are agent `a`'s, sorted by class.
struct Pools {
    pools: Vec<Pool>,
    /// Row `p` holds pool `p`'s scalar amounts, by name.
    amounts: Table,
    agent_pools: Vec<Range<usize>>,
    /// Whether every entry of agent `a`'s available resources is in one of its pools.
    agent_complete: Vec<bool>,
    /// Scratch: the pool of each entry of the agent being added, scalars first.
    entry_classes: Vec<Option<PoolClass>>,
    /// Scratch: the name index and amount of each scalar entry of the agent being added.
    entry_amounts: Vec<(Option<usize>, u64)>,
    /// Scratch: the distinct classes of the agent being added.
    classes: Vec<PoolClass>,
}

impl Pools {
    fn new(
        agents: &[(AgentId, AgentResources<'_>)],
        names: &Names<'_>,
        shares: &Shares<'_>,
    ) -> Pools {
        let mut pools = Pools {
            pools: Vec::with_capacity(agents.len()),
            amounts: Table::new(names.names.len(), 0),
            agent_pools: Vec::with_capacity(agents.len()),
            agent_complete: Vec::with_capacity(agents.len()),
            entry_classes: Vec::new(),
            entry_amounts: Vec::new(),
            classes: Vec::new(),
        };
        for (_, resources) in agents {
            pools.add_agent(resources.available, names, shares);
        }
        pools
    }

    /// Cuts `available` into pools. Reads the entries once (agents' resources are large and
    /// scattered in memory), then makes the pools and adds up their amounts from the scratch.
    fn add_agent(&mut self, available: &Resources, names: &Names<'_>, shares: &Shares<'_>) {
        self.entry_classes.clear();
        self.entry_amounts.clear();
        for (key, quantity) in available.scalars() {
            self.entry_classes.push(pool_class(key, shares));
            self.entry_amounts
                .push((names.index(&key.name), quantity.thousandths()));
        }
        let ranges = available.range_sets();
        self.entry_classes
            .extend(ranges.map(|(key, _)| pool_class(key, shares)));
        self.classes.clear();
        self.classes.extend(self.entry_classes.iter().flatten());
        self.classes.sort_unstable();
        self.classes.dedup();

        let start = self.pools.len();
        for class in &self.classes {
            self.pools.push(Pool {
                class: *class,
                assignee: None,
            });
            self.amounts.push_row();
        }
        self.agent_pools.push(start..self.pools.len());
        let complete = self.entry_classes.iter().all(Option::is_some);
        self.agent_complete.push(complete);

        let agent = self.agent_pools.len() - 1;
        for (class, (name, amount)) in self.entry_classes.iter().zip(&self.entry_amounts) {
            let pool = class.and_then(|class| self.find(agent, class));
            if let (Some(pool), Some(name)) = (pool, name) {
                let cell = &mut self.amounts.row_mut(pool)[*name];
                *cell = cell.saturating_add(*amount);
            }
        }
    }

    /// Agent `agent`'s pool of `class`, if it has one.
    fn find(&self, agent: usize, class: PoolClass) -> Option<usize> {
        let range = self.agent_pools[agent].clone();
        let offset = self.pools[range.clone()]
            .binary_search_by_key(&class, |pool| pool.class)
            .ok()?;
        Some(range.start + offset)
    }
}

/// The pool an entry belongs to, or `None` if it is never offered: a reservation for a role
/// that has no framework (R2), or a volume on unreserved disk, which has no role (R3).
fn pool_class(key: &ResourceKey, shares: &Shares<'_>) -> Option<PoolClass> {
    match key.reservation.role() {
        None if key.volume.is_some() => None,
        None => Some(PoolClass::Unreserved),
        Some(role) => shares.role_index(role).map(PoolClass::Reserved),
    }
}

/// One allocation cycle over a cluster.
struct Cycle<'a> {
    agents: Vec<(AgentId, AgentResources<'a>)>,
    filters: &'a BTreeSet<(FrameworkId, AgentId)>,
    shares: Shares<'a>,
    pools: Pools,
}

impl<'a> Cycle<'a> {
    fn new(cluster: &Cluster<'a>) -> Cycle<'a> {
        debug_assert!(
            cluster
                .agents
                .values()
                .all(|agent| agent.total.contains(agent.available)),
            "an agent's available resources are part of its total"
        );
        let agents: Vec<(AgentId, AgentResources<'a>)> = cluster
            .agents
            .iter()
            .map(|(id, resources)| (*id, *resources))
            .collect();
        let names = Names::new(cluster.agents);
        let shares = Shares::new(cluster, &names);
        let pools = Pools::new(&agents, &names, &shares);
        Cycle {
            agents,
            filters: cluster.filters,
            shares,
            pools,
        }
    }

    /// Stage 1: each reserved pool to its role's eligible framework with the lowest share (R2).
    fn offer_reservations(&mut self) {
        for agent in 0..self.agents.len() {
            for pool in self.pools.agent_pools[agent].clone() {
                let PoolClass::Reserved(role) = self.pools.pools[pool].class else {
                    continue;
                };
                if let Some(framework) = self.pick_in_role(role, agent) {
                    self.grant(framework, pool);
                }
            }
        }
    }

    /// Stage 2: each unreserved pool by hierarchical DRF, with the winner's reserved pool if
    /// stage 1 left it.
    fn offer_unreserved(&mut self) {
        for agent in 0..self.agents.len() {
            let Some(pool) = self.pools.find(agent, PoolClass::Unreserved) else {
                continue;
            };
            let Some(framework) = self.pick_by_drf(agent) else {
                continue;
            };
            self.grant(framework, pool);
            let role = self.shares.framework_roles[framework];
            if let Some(reserved) = self.pools.find(agent, PoolClass::Reserved(role))
                && self.pools.pools[reserved].assignee.is_none()
            {
                self.grant(framework, reserved);
            }
        }
    }

    /// The eligible framework for `agent` of the lowest-weighted-share role that has one.
    fn pick_by_drf(&self, agent: usize) -> Option<usize> {
        self.shares
            .role_order
            .iter()
            .find_map(|key| self.pick_in_role(key.role, agent))
    }

    /// The eligible framework of `role` for `agent` with the lowest share. Skips only
    /// frameworks that filter the agent: those that do not want offers are not in the order.
    fn pick_in_role(&self, role: usize, agent: usize) -> Option<usize> {
        let agent = self.agents[agent].0;
        self.shares.role_frameworks[role]
            .iter()
            .map(|key| key.framework)
            .find(|framework| {
                self.filters.is_empty()
                    || !self
                        .filters
                        .contains(&(self.shares.framework_ids[*framework], agent))
            })
    }

    fn grant(&mut self, framework: usize, pool: usize) {
        let granted = &mut self.pools.pools[pool];
        debug_assert!(granted.assignee.is_none(), "R1: a pool is granted once");
        debug_assert!(
            match granted.class {
                PoolClass::Unreserved => true,
                PoolClass::Reserved(role) => role == self.shares.framework_roles[framework],
            },
            "R2: a reserved pool goes to its role"
        );
        granted.assignee = Some(framework);
        self.shares.grant(framework, self.pools.amounts.row(pool));
    }

    /// The granted pools as offers: one per framework and agent, by agent then framework id.
    fn offers(&self) -> Vec<Offer> {
        let mut offers = Vec::with_capacity(self.agents.len());
        let mut assignees: Vec<usize> = Vec::new();
        for (agent, (agent_id, resources)) in self.agents.iter().enumerate() {
            let pools = &self.pools.pools[self.pools.agent_pools[agent].clone()];
            assignees.clear();
            assignees.extend(pools.iter().filter_map(|pool| pool.assignee));
            assignees.sort_unstable();
            assignees.dedup();
            let whole = self.pools.agent_complete[agent]
                && assignees.len() == 1
                && pools.iter().all(|pool| pool.assignee.is_some());
            for framework in &assignees {
                let resources = if whole {
                    // Everything goes to one framework: a copy is cheaper than a filter.
                    resources.available.clone()
                } else {
                    self.cut(agent, resources.available, *framework)
                };
                offers.push(Offer {
                    framework: self.shares.framework_ids[*framework],
                    agent: *agent_id,
                    resources,
                });
            }
        }
        offers
    }

    /// The entries of `available`, agent `agent`'s, in the pools granted to `framework`.
    fn cut(&self, agent: usize, available: &Resources, framework: usize) -> Resources {
        let role = self.shares.framework_roles[framework];
        let granted = |class: PoolClass| {
            self.pools
                .find(agent, class)
                .is_some_and(|pool| self.pools.pools[pool].assignee == Some(framework))
        };
        let unreserved = granted(PoolClass::Unreserved);
        let reserved = granted(PoolClass::Reserved(role));
        let role = self.shares.roles[role];
        available.filter(|key| match key.reservation.role() {
            None => unreserved && key.volume.is_none(),
            Some(reserved_for) => reserved && reserved_for == role,
        })
    }
}

#[cfg(test)]
mod tests;
