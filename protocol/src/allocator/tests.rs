use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

use proptest::prelude::*;

use super::share::{Share, product};
use super::*;
use crate::ids::{AssignedId, Principal, Term, VolumeId};
use crate::resources::{ContainerPath, DISK, PersistentVolume, Quantity, Reservation};

fn parse(text: &str) -> Resources {
    Resources::parse(text).expect("valid resource string")
}

fn role(name: &str) -> Role {
    Role::new(name).expect("valid role")
}

fn agent_id(sequence: u64) -> AgentId {
    AgentId(AssignedId {
        term: Term(1),
        sequence,
    })
}

fn framework_id(sequence: u64) -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(1),
        sequence,
    })
}

fn weight(text: &str) -> Weight {
    text.parse().expect("valid weight")
}

/// `amount` units of `name` dynamically reserved for `role`.
fn dynamic(name: &str, role_name: &str, amount: u64) -> Resources {
    let key = ResourceKey::unreserved(name).reserved(Reservation::Dynamic {
        role: role(role_name),
        principal: Principal::new("alice").expect("valid"),
    });
    Resources::scalar(key, Quantity::from_units(amount).expect("fits"))
}

/// A persistent volume `id` of `size` units of disk, on disk reserved with `reservation`.
fn volume(id: &str, reservation: Reservation, size: u64) -> Resources {
    let key = ResourceKey {
        volume: Some(PersistentVolume {
            id: VolumeId::new(id).expect("valid"),
            container_path: ContainerPath::new("data").expect("valid"),
        }),
        ..ResourceKey::unreserved(DISK).reserved(reservation)
    };
    Resources::scalar(key, Quantity::from_units(size).expect("fits"))
}

fn dynamic_reservation(role_name: &str) -> Reservation {
    Reservation::Dynamic {
        role: role(role_name),
        principal: Principal::new("alice").expect("valid"),
    }
}

fn sum(parts: &[Resources]) -> Resources {
    parts.iter().fold(Resources::new(), |sum, part| {
        sum.checked_add(part).expect("disjoint parts")
    })
}

/// An owned cluster that lends itself to the allocator as a [`Cluster`] view.
#[derive(Clone, Debug, Default)]
struct Fixture {
    /// Per agent: total and available.
    agents: BTreeMap<AgentId, (Resources, Resources)>,
    /// Per framework: role, whether it wants offers, allocation.
    frameworks: BTreeMap<FrameworkId, (Role, bool, Resources)>,
    weights: BTreeMap<Role, Weight>,
    filters: BTreeSet<(FrameworkId, AgentId)>,
}

impl Fixture {
    /// Adds an agent with nothing used yet.
    fn agent(&mut self, sequence: u64, resources: Resources) -> AgentId {
        let id = agent_id(sequence);
        self.agents.insert(id, (resources.clone(), resources));
        id
    }

    /// Adds a framework of `role_name` that wants offers and holds nothing.
    fn framework(&mut self, sequence: u64, role_name: &str) -> FrameworkId {
        let id = framework_id(sequence);
        self.frameworks
            .insert(id, (role(role_name), true, Resources::new()));
        id
    }

    fn with_cluster<T>(&self, body: impl FnOnce(&Cluster<'_>) -> T) -> T {
        let agents: BTreeMap<AgentId, AgentResources<'_>> = self
            .agents
            .iter()
            .map(|(id, (total, available))| (*id, AgentResources { total, available }))
            .collect();
        let frameworks: BTreeMap<FrameworkId, FrameworkDemand<'_>> = self
            .frameworks
            .iter()
            .map(|(id, (role, wants_offers, allocation))| {
                let demand = FrameworkDemand {
                    role,
                    wants_offers: *wants_offers,
                    allocation,
                };
                (*id, demand)
            })
            .collect();
        body(&Cluster {
            agents: &agents,
            weights: &self.weights,
            frameworks: &frameworks,
            filters: &self.filters,
        })
    }

    /// Allocates, and checks R1–R3 on the result whatever the build.
    fn allocate(&self) -> Vec<Offer> {
        self.with_cluster(|cluster| {
            let offers = allocate(cluster);
            assert_eq!(check_offers(cluster, &offers), Ok(()));
            offers
        })
    }
}

fn offer(framework: FrameworkId, agent: AgentId, resources: Resources) -> Offer {
    Offer {
        framework,
        agent,
        resources,
    }
}

// ---------------------------------------------------------------------------------------------
// R2, R3 and eligibility.

#[test]
fn reserved_resources_go_only_to_frameworks_of_their_role() {
    // R2. Stage 1 gives `ops` its reservation; stage 2 gives the unreserved rest to `web`,
    // whose share is then lower.
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:4;mem:1024;cpus(ops):2"));
    let web = fixture.framework(1, "web");
    let ops = fixture.framework(2, "ops");
    assert_eq!(
        fixture.allocate(),
        [
            offer(web, agent, parse("cpus:4;mem:1024")),
            offer(ops, agent, parse("cpus(ops):2")),
        ]
    );
}

#[test]
fn a_reservation_for_a_role_without_frameworks_is_not_offered() {
    // R2: nobody else may have it, even when it would otherwise go unused.
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:4;cpus(ops):2;ports(ops):[1-10]"));
    let web = fixture.framework(1, "web");
    assert_eq!(fixture.allocate(), [offer(web, agent, parse("cpus:4"))]);
}

#[test]
fn a_framework_gets_its_roles_reservations_with_the_unreserved_resources_in_one_offer() {
    let mut fixture = Fixture::default();
    let total = sum(&[
        parse("cpus:4;cpus(ops):2;ports(ops):[1-10]"),
        dynamic("mem", "ops", 64),
    ]);
    let agent = fixture.agent(1, total.clone());
    let ops = fixture.framework(1, "ops");
    assert_eq!(fixture.allocate(), [offer(ops, agent, total)]);
}

#[test]
fn persistent_volumes_are_offered_only_to_their_role() {
    // R3. The volume on unreserved disk is malformed: it has no role, so nobody gets it.
    let mut fixture = Fixture::default();
    let database = volume("pg", dynamic_reservation("db"), 50);
    let orphan = volume("lost", Reservation::Unreserved, 10);
    let agent = fixture.agent(
        1,
        sum(&[parse("cpus:4;disk:100"), database.clone(), orphan.clone()]),
    );
    let web = fixture.framework(1, "web");
    let db = fixture.framework(2, "db");
    let offers = fixture.allocate();
    assert_eq!(
        offers,
        [
            offer(web, agent, parse("cpus:4;disk:100")),
            offer(db, agent, database)
        ]
    );
    assert!(
        offers
            .iter()
            .all(|offer| !offer.resources.contains(&orphan))
    );
}

#[test]
fn a_filtered_framework_gets_nothing_from_that_agent() {
    let mut fixture = Fixture::default();
    let first = fixture.agent(1, parse("cpus:4;cpus(web):1"));
    let second = fixture.agent(2, parse("cpus:4;cpus(web):1"));
    let filtering = fixture.framework(1, "web");
    let other = fixture.framework(2, "web");
    fixture.filters.insert((filtering, first));
    assert_eq!(
        fixture.allocate(),
        [
            offer(other, first, parse("cpus:4;cpus(web):1")),
            offer(filtering, second, parse("cpus:4;cpus(web):1")),
        ]
    );
    // When every framework filters an agent, it is not offered at all.
    fixture.filters.insert((other, first));
    let offers = fixture.allocate();
    assert!(offers.iter().all(|offer| offer.agent != first));
}

#[test]
fn frameworks_that_want_no_offers_get_none_but_their_allocation_counts() {
    // `idle` holds half the cluster's cpus, so its role `busy` has share 1/2 and the agent
    // goes to `fresh` of role `new` (share 0), although `eager` of `busy` has share 0 itself.
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:4;mem:1024"));
    let idle = fixture.framework(1, "busy");
    fixture
        .frameworks
        .insert(idle, (role("busy"), false, parse("cpus:2")));
    fixture.framework(2, "busy");
    let fresh = fixture.framework(3, "new");
    assert_eq!(
        fixture.allocate(),
        [offer(fresh, agent, parse("cpus:4;mem:1024"))]
    );
    // Alone, the idle framework is offered nothing.
    fixture.frameworks.retain(|id, _| *id == idle);
    assert_eq!(fixture.allocate(), []);
}

#[test]
fn ties_are_broken_by_role_name_then_framework_id() {
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:1"));
    fixture.framework(1, "b");
    fixture.framework(2, "a");
    let first_of_a = fixture.framework(0, "a");
    assert_eq!(
        fixture.allocate(),
        [offer(first_of_a, agent, parse("cpus:1"))]
    );
}

#[test]
fn roles_share_fairly_whatever_their_number_of_frameworks() {
    // Hierarchical DRF: the three frameworks of `many` share one role's half.
    let mut fixture = Fixture::default();
    for sequence in 0..8 {
        fixture.agent(sequence, parse("cpus:1;mem:1"));
    }
    for sequence in 0..3 {
        fixture.framework(sequence, "many");
    }
    let solo = fixture.framework(3, "solo");
    let offers = fixture.allocate();
    let to_solo = offers
        .iter()
        .filter(|offer| offer.framework == solo)
        .count();
    assert_eq!((offers.len(), to_solo), (8, 4));
}

#[test]
fn the_same_cluster_gives_the_same_offers() {
    let mut forward = Fixture::default();
    let mut backward = Fixture::default();
    for sequence in 0..20 {
        forward.agent(sequence, parse("cpus:4;mem:256;cpus(r1):1;ports:[1-9]"));
        forward.framework(sequence, ["r0", "r1", "r2"][(sequence % 3) as usize]);
    }
    for sequence in (0..20).rev() {
        backward.agent(sequence, parse("cpus:4;mem:256;cpus(r1):1;ports:[1-9]"));
        backward.framework(sequence, ["r0", "r1", "r2"][(sequence % 3) as usize]);
    }
    let offers = forward.allocate();
    assert_eq!(offers, forward.allocate());
    assert_eq!(offers, backward.allocate());
    assert_eq!(offers.len(), 20 + 20);
}

// ---------------------------------------------------------------------------------------------
// Fairness, by simulation: frameworks launch tasks from their offers and decline the rest.

/// The most cycles a simulation may take to converge.
const CYCLES_MAX: usize = 100;

/// A cluster in which every framework runs tasks of one size, at most one per offer, and
/// declines (with a filter for the rest of the run) an offer its task does not fit in.
struct Simulation {
    fixture: Fixture,
    tasks: BTreeMap<FrameworkId, (Resources, u64)>,
}

impl Simulation {
    fn new(fixture: Fixture) -> Simulation {
        Simulation {
            fixture,
            tasks: BTreeMap::new(),
        }
    }

    fn framework(&mut self, sequence: u64, role_name: &str, task: &str) -> FrameworkId {
        let id = self.fixture.framework(sequence, role_name);
        self.tasks.insert(id, (parse(task), 0));
        id
    }

    /// Runs cycles until no offer is made.
    fn run(&mut self) {
        for _ in 0..CYCLES_MAX {
            let offers = self.fixture.allocate();
            if offers.is_empty() {
                return;
            }
            offers.into_iter().for_each(|offer| self.answer(offer));
        }
        panic!("no convergence in {CYCLES_MAX} cycles");
    }

    fn answer(&mut self, offer: Offer) {
        let (task, launched) = self.tasks.get_mut(&offer.framework).expect("known");
        if !offer.resources.contains(task) {
            self.fixture.filters.insert((offer.framework, offer.agent));
            return;
        }
        *launched += 1;
        let (_, available) = self.fixture.agents.get_mut(&offer.agent).expect("known");
        *available = available.checked_sub(task).expect("the task fits");
        let (_, _, allocation) = self
            .fixture
            .frameworks
            .get_mut(&offer.framework)
            .expect("known");
        *allocation = allocation.checked_add(task).expect("no overflow");
    }

    fn launched(&self, framework: FrameworkId) -> u64 {
        self.tasks[&framework].1
    }
}

#[test]
fn drf_paper_example_converges_to_equal_dominant_shares() {
    // Ghodsi et al., "Dominant Resource Fairness", section 4: 9 cpus and 18 GiB; A's tasks
    // need <1 cpu, 4 GiB> (memory-dominant), B's <3 cpus, 1 GiB> (cpu-dominant). DRF gives
    // A 3 tasks and B 2, both with dominant share 2/3. Here the cluster is three agents,
    // two of which only B's tasks fit on. Checked with both frameworks in one role (DRF among
    // frameworks) and in two roles (DRF among roles).
    for (role_a, role_b) in [("default", "default"), ("a", "b")] {
        let mut fixture = Fixture::default();
        fixture.agent(1, parse("cpus:3;mem:1024"));
        fixture.agent(2, parse("cpus:3;mem:1024"));
        fixture.agent(3, parse("cpus:3;mem:16384"));
        let mut simulation = Simulation::new(fixture);
        let a = simulation.framework(1, role_a, "cpus:1;mem:4096");
        let b = simulation.framework(2, role_b, "cpus:3;mem:1024");
        simulation.run();
        assert_eq!(
            (simulation.launched(a), simulation.launched(b)),
            (3, 2),
            "roles {role_a} and {role_b}"
        );
        let frameworks = &simulation.fixture.frameworks;
        assert_eq!(frameworks[&a].2, parse("cpus:3;mem:12288"), "share 12/18");
        assert_eq!(frameworks[&b].2, parse("cpus:6;mem:2048"), "share 6/9");
    }
}

#[test]
fn a_role_of_weight_two_gets_twice_the_share() {
    let mut fixture = Fixture::default();
    for sequence in 0..30 {
        fixture.agent(sequence, parse("cpus:1;mem:1024"));
    }
    fixture.weights.insert(role("gold"), weight("2"));
    fixture.weights.insert(role("silver"), weight("1"));
    let mut simulation = Simulation::new(fixture);
    let gold = simulation.framework(1, "gold", "cpus:1;mem:1024");
    let silver = simulation.framework(2, "silver", "cpus:1;mem:1024");
    simulation.run();
    assert_eq!(
        (simulation.launched(gold), simulation.launched(silver)),
        (20, 10)
    );
}

#[test]
fn a_lighter_role_waits_behind_a_heavier_one() {
    // Weighted shares: `half` (weight 0.5) holds 1/4 of the cpus, weighted 1/2; `one` holds
    // 1/3, weighted 1/3. So `one` is next, although its unweighted share is larger.
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:24"));
    fixture.weights.insert(role("half"), weight("0.5"));
    let half = framework_id(1);
    let one = framework_id(2);
    fixture
        .frameworks
        .insert(half, (role("half"), true, parse("cpus:6")));
    fixture
        .frameworks
        .insert(one, (role("one"), true, parse("cpus:8")));
    assert_eq!(fixture.allocate(), [offer(one, agent, parse("cpus:24"))]);
    fixture.weights.insert(role("half"), weight("1"));
    assert_eq!(fixture.allocate(), [offer(half, agent, parse("cpus:24"))]);
}

// ---------------------------------------------------------------------------------------------
// The checker.

#[test]
fn check_offers_names_each_broken_rule() {
    let mut fixture = Fixture::default();
    let agent = fixture.agent(1, parse("cpus:4;cpus(ops):2;ports:[1-10]"));
    let web = fixture.framework(1, "web");
    let ops = fixture.framework(2, "ops");
    let idle = fixture.framework(3, "web");
    fixture
        .frameworks
        .insert(idle, (role("web"), false, Resources::new()));
    let cases = [
        (
            vec![
                offer(web, agent, parse("cpus:3")),
                offer(ops, agent, parse("cpus:2")),
            ],
            OfferViolation::Overcommitted { agent },
        ),
        (
            vec![
                offer(web, agent, parse("ports:[1-5]")),
                offer(ops, agent, parse("ports:[5-6]")),
            ],
            OfferViolation::Overcommitted { agent },
        ),
        (
            vec![offer(web, agent, parse("cpus(ops):1"))],
            OfferViolation::ForeignReservation {
                framework: web,
                agent,
            },
        ),
        (
            vec![offer(web, agent, volume("v", Reservation::Unreserved, 1))],
            OfferViolation::ForeignVolume {
                framework: web,
                agent,
            },
        ),
        (
            vec![offer(idle, agent, parse("cpus:1"))],
            OfferViolation::NotEligible {
                framework: idle,
                agent,
            },
        ),
        (
            vec![
                offer(web, agent, parse("cpus:1")),
                offer(web, agent, parse("cpus:1")),
            ],
            OfferViolation::Duplicate {
                framework: web,
                agent,
            },
        ),
        (
            vec![offer(web, agent, Resources::new())],
            OfferViolation::Empty {
                framework: web,
                agent,
            },
        ),
        (
            vec![offer(framework_id(9), agent, parse("cpus:1"))],
            OfferViolation::UnknownFramework {
                framework: framework_id(9),
            },
        ),
        (
            vec![offer(web, agent_id(9), parse("cpus:1"))],
            OfferViolation::UnknownAgent { agent: agent_id(9) },
        ),
    ];
    for (offers, violation) in cases {
        let found = fixture.with_cluster(|cluster| check_offers(cluster, &offers));
        assert_eq!(found, Err(violation), "{offers:?}");
        assert!(!violation.to_string().is_empty());
    }
    fixture.filters.insert((web, agent));
    let filtered = [offer(web, agent, parse("cpus:1"))];
    assert_eq!(
        fixture.with_cluster(|cluster| check_offers(cluster, &filtered)),
        Err(OfferViolation::NotEligible {
            framework: web,
            agent
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Random clusters: R1–R3, eligibility, whole pools, work conservation, determinism.

const ROLES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Clone, Debug)]
struct AgentSpec {
    cpus: u64,
    mem: u64,
    ports: bool,
    static_cpus: Option<(usize, u64)>,
    dynamic_mem: Option<(usize, u64)>,
    volume: Option<usize>,
    orphan_volume: bool,
    /// Bit `i` keeps entry `i` of the total in the available resources.
    available_mask: u64,
}

impl AgentSpec {
    fn total(&self, sequence: u64) -> Resources {
        let mut parts = vec![parse(&format!("cpus:{};mem:{}", self.cpus, self.mem))];
        if self.ports {
            parts.push(parse("ports:[31000-31099]"));
        }
        if let Some((role_index, cpus)) = self.static_cpus {
            parts.push(parse(&format!("cpus({}):{cpus}", ROLES[role_index])));
        }
        if let Some((role_index, mem)) = self.dynamic_mem {
            parts.push(dynamic("mem", ROLES[role_index], mem));
        }
        if let Some(role_index) = self.volume {
            let id = format!("v{sequence}");
            parts.push(volume(&id, dynamic_reservation(ROLES[role_index]), 100));
        }
        if self.orphan_volume {
            parts.push(volume("orphan", Reservation::Unreserved, 10));
        }
        sum(&parts)
    }

    fn available(&self, total: &Resources) -> Resources {
        let mut entry = 0;
        total.filter(|_| {
            entry += 1;
            self.available_mask >> (entry % 64) & 1 == 1
        })
    }
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    (
        (0u64..8, 0u64..4096, any::<bool>()),
        proptest::option::of((0usize..3, 1u64..4)),
        proptest::option::of((0usize..3, 1u64..512)),
        proptest::option::of(0usize..3),
        proptest::bool::weighted(0.1),
        any::<u64>(),
    )
        .prop_map(
            |((cpus, mem, ports), static_cpus, dynamic_mem, volume, orphan_volume, mask)| {
                AgentSpec {
                    cpus,
                    mem,
                    ports,
                    static_cpus,
                    dynamic_mem,
                    volume,
                    orphan_volume,
                    available_mask: mask,
                }
            },
        )
}

#[derive(Clone, Debug)]
struct FrameworkSpec {
    role: usize,
    wants_offers: bool,
    cpus: u64,
    mem: u64,
}

fn framework_spec() -> impl Strategy<Value = FrameworkSpec> {
    (
        0usize..4,
        proptest::bool::weighted(0.8),
        0u64..10,
        0u64..2048,
    )
        .prop_map(|(role, wants_offers, cpus, mem)| FrameworkSpec {
            role,
            wants_offers,
            cpus,
            mem,
        })
}

fn cluster_fixture() -> impl Strategy<Value = Fixture> {
    (
        proptest::collection::vec(agent_spec(), 1..8),
        proptest::collection::vec(framework_spec(), 0..8),
        proptest::collection::vec((0u64..8, 0u64..8), 0..10),
        proptest::collection::vec(proptest::option::of(1u64..3000), 4),
    )
        .prop_map(|(agents, frameworks, filters, weights)| {
            let mut fixture = Fixture::default();
            for (sequence, spec) in (0u64..).zip(&agents) {
                let total = spec.total(sequence);
                let available = spec.available(&total);
                fixture
                    .agents
                    .insert(agent_id(sequence), (total, available));
            }
            for (sequence, spec) in (0u64..).zip(&frameworks) {
                let allocation = parse(&format!("cpus:{};mem:{}", spec.cpus, spec.mem));
                let entry = (role(ROLES[spec.role]), spec.wants_offers, allocation);
                fixture.frameworks.insert(framework_id(sequence), entry);
            }
            for (framework, agent) in filters {
                fixture
                    .filters
                    .insert((framework_id(framework), agent_id(agent)));
            }
            for (name, thousandths) in ROLES.iter().zip(weights) {
                if let Some(thousandths) = thousandths {
                    let weight = Weight::from_thousandths(thousandths).expect("positive");
                    fixture.weights.insert(role(name), weight);
                }
            }
            fixture
        })
}

/// The pool an entry belongs to, as the module docs define it: `None` for a volume on
/// unreserved disk, `Some(None)` for unreserved, `Some(Some(role))` for reserved.
fn entry_pool(key: &ResourceKey) -> Option<Option<Role>> {
    match key.reservation.role() {
        None if key.volume.is_some() => None,
        reserved => Some(reserved.cloned()),
    }
}

/// Whether the pool can go to somebody: an eligible framework exists (of its role, if any).
fn pool_has_taker(fixture: &Fixture, agent: AgentId, pool: &Option<Role>) -> bool {
    fixture
        .frameworks
        .iter()
        .any(|(id, (framework_role, wants, _))| {
            *wants
                && !fixture.filters.contains(&(*id, agent))
                && pool.as_ref().is_none_or(|pool| pool == framework_role)
        })
}

fn keys(resources: &Resources) -> Vec<&ResourceKey> {
    resources
        .scalars()
        .map(|(key, _)| key)
        .chain(resources.range_sets().map(|(key, _)| key))
        .collect()
}

proptest! {
    #[test]
    fn random_clusters_get_whole_pools_within_the_rules(fixture in cluster_fixture()) {
        let offers = fixture.allocate();
        prop_assert_eq!(&offers, &fixture.allocate(), "deterministic");
        let order: Vec<(AgentId, FrameworkId)> =
            offers.iter().map(|offer| (offer.agent, offer.framework)).collect();
        prop_assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "sorted and unique");
        for (agent, (_, available)) in &fixture.agents {
            let on_agent: Vec<&Offer> =
                offers.iter().filter(|offer| offer.agent == *agent).collect();
            // Each pool is in at most one offer (one framework per pool and stage).
            let mut owners: BTreeMap<Option<Role>, FrameworkId> = BTreeMap::new();
            for offer in &on_agent {
                for key in keys(&offer.resources) {
                    let pool = entry_pool(key);
                    prop_assert!(pool.is_some(), "R3: an orphan volume is never offered");
                    let owner = *owners.entry(pool.clone().unwrap_or_default()).or_insert(offer.framework);
                    prop_assert_eq!(owner, offer.framework, "pool {:?} split", pool);
                }
            }
            // Work conservation: exactly the pools with a taker are offered, whole (R1: the
            // union is within available, which check_offers verified).
            let expected = available.filter(|key| {
                entry_pool(key).is_some_and(|pool| pool_has_taker(&fixture, *agent, &pool))
            });
            let union = on_agent.iter().fold(Resources::new(), |union, offer| {
                union.checked_add(&offer.resources).expect("R1: offers are disjoint")
            });
            prop_assert_eq!(union, expected);
        }
    }

    #[test]
    fn product_is_exact(a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
        prop_assert_eq!(limbs_of(product(a, b, c)), reference_product(a, b, c));
    }

    #[test]
    fn weighted_shares_compare_exactly(
        allocated in any::<u64>(), total in 1u64.., weight in 1u64..,
        other_allocated in any::<u64>(), other_total in 1u64.., other_weight in 1u64..,
    ) {
        let share = Share::new(allocated, total).expect("positive total");
        let other = Share::new(other_allocated, other_total).expect("positive total");
        let weight_of = |thousandths| Weight::from_thousandths(thousandths).expect("positive");
        let found = share.cmp_weighted(weight_of(weight), other, weight_of(other_weight));
        // a / (b·w) vs c / (d·v) ⇔ a·d·v vs c·b·w.
        let left = reference_product(allocated, other_total, other_weight);
        let right = reference_product(other_allocated, total, weight);
        prop_assert_eq!(found, compare_limbs(&left, &right));
        prop_assert_eq!(share.cmp_weighted(Weight::ONE, other, Weight::ONE), share.cmp(&other));
    }
}

/// `a·b·c` by schoolbook multiplication on 32-bit limbs, least significant first.
fn reference_product(a: u64, b: u64, c: u64) -> [u32; 6] {
    let mut result = [0u32; 6];
    result[0] = a as u32;
    result[1] = (a >> 32) as u32;
    for factor in [b, c] {
        let factor_limbs = [factor as u32, (factor >> 32) as u32];
        let mut next = [0u32; 6];
        for (i, x) in result.iter().enumerate() {
            let mut carry = 0u64;
            for (j, y) in factor_limbs.iter().enumerate() {
                let Some(slot) = next.get_mut(i + j) else {
                    continue;
                };
                let sum = u64::from(*slot) + u64::from(*x) * u64::from(*y) + carry;
                *slot = sum as u32;
                carry = sum >> 32;
            }
            let mut position = i + 2;
            while carry > 0 && position < 6 {
                let sum = u64::from(next[position]) + carry;
                next[position] = sum as u32;
                carry = sum >> 32;
                position += 1;
            }
        }
        result = next;
    }
    result
}

fn limbs_of((high, low): (u128, u128)) -> [u32; 6] {
    assert!(high >> 64 == 0, "a product of three u64 fits in 192 bits");
    core::array::from_fn(|i| {
        if i < 4 {
            (low >> (32 * i)) as u32
        } else {
            (high >> (32 * (i - 4))) as u32
        }
    })
}

fn compare_limbs(left: &[u32; 6], right: &[u32; 6]) -> Ordering {
    left.iter().rev().cmp(right.iter().rev())
}

#[test]
fn shares_are_fractions_compared_by_value() {
    let half = Share::new(1, 2).expect("positive");
    assert_eq!(half, Share::new(2, 4).expect("positive"));
    assert!(Share::new(1, 3).expect("positive") < half);
    assert_eq!(Share::new(1, 0), None);
    assert_eq!(Share::dominant(&[1, 3], &[4, 6]), half);
    assert_eq!(
        Share::dominant(&[5, 0], &[0, 6]),
        Share::ZERO,
        "no total, no share"
    );
    assert_eq!(
        product(u64::MAX, u64::MAX, u64::MAX),
        // (2^64 - 1)^3 = 2^192 - 3·2^128 + 3·2^64 - 1
        ((1u128 << 64) - 3, (3u128 << 64) - 1)
    );
}

// ---------------------------------------------------------------------------------------------
// Weights.

#[test]
fn weights_parse_and_print_like_quantities() {
    assert_eq!(weight("2").thousandths(), 2_000);
    assert_eq!(weight("0.5").thousandths(), 500);
    assert_eq!(weight("1.25").to_string(), "1.25");
    assert_eq!(weight("3").to_string(), "3");
    assert_eq!(Weight::default(), Weight::ONE);
    assert_eq!(Weight::ONE.to_string(), "1");
    let errors = [
        ("0", WeightError::Zero),
        ("0.000", WeightError::Zero),
        ("", WeightError::NotANumber),
        ("-1", WeightError::NotANumber),
        ("two", WeightError::NotANumber),
        ("1.0001", WeightError::TooManyDecimals),
        ("99999999999999999999", WeightError::TooLarge),
    ];
    for (text, error) in errors {
        assert_eq!(text.parse::<Weight>(), Err(error), "{text:?}");
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(Weight::from_thousandths(0), Err(WeightError::Zero));
    assert!(weight("0.5") < Weight::ONE);
}

#[test]
fn weights_round_trip_and_decoding_refuses_zero() {
    let encoded = postcard::to_allocvec(&weight("2.5")).expect("encodes");
    assert_eq!(postcard::from_bytes::<Weight>(&encoded), Ok(weight("2.5")));
    let zero = postcard::to_allocvec(&0u64).expect("encodes");
    assert!(postcard::from_bytes::<Weight>(&zero).is_err());
}

// ---------------------------------------------------------------------------------------------
// Scale.

#[test]
fn a_large_cluster_is_allocated_within_the_rules() {
    // 2,000 agents with static and dynamic reservations, 200 frameworks in 10 roles.
    let mut fixture = Fixture::default();
    for sequence in 0..2_000u64 {
        let role_name = format!("r{}", sequence % 10);
        let mut parts = vec![parse(&format!(
            "cpus:32;mem:262144;disk:1000000;ports:[31000-32000];cpus({role_name}):4"
        ))];
        if sequence % 4 == 0 {
            parts.push(dynamic("mem", &role_name, 4096));
        }
        fixture.agent(sequence, sum(&parts));
    }
    for sequence in 0..200u64 {
        fixture.framework(sequence, &format!("r{}", sequence % 10));
        if sequence % 7 == 0 {
            fixture
                .filters
                .insert((framework_id(sequence), agent_id(sequence)));
        }
    }
    let offers = fixture.allocate();
    // Every agent's unreserved pool and reservation are offered; the reservation goes with
    // the unreserved pool when the same framework wins both.
    let agents: BTreeSet<AgentId> = offers.iter().map(|offer| offer.agent).collect();
    assert_eq!(agents.len(), 2_000);
    let frameworks: BTreeSet<FrameworkId> = offers.iter().map(|offer| offer.framework).collect();
    assert_eq!(frameworks.len(), 200, "everybody gets something");
}
