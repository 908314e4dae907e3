//! One full allocation cycle on clusters of 1,000 to 50,000 agents and 100 to 2,000
//! frameworks in 10 roles, with static and dynamic reservations, persistent volumes, partly
//! used agents and decline filters. Run with `cargo bench -p berth-protocol --bench allocator`;
//! BENCHMARKS.md records the figures.
//!
//! The clusters are built once, outside the measurement, from integer formulas (no
//! randomness): each measurement is one call of `allocate` on borrowed views, as the master
//! makes it. Dropping the offers is left out: the master keeps them as outstanding offers.
//!
//! The clock is the time the benchmark thread spends on a CPU ([`ThreadTime`]), so that other
//! work on a shared machine does not inflate the figures; on a quiet machine it equals wall
//! time for this single-threaded work.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_protocol::allocator::{
    AgentResources, Cluster, FrameworkDemand, Weight, allocate, check_offers,
};
use berth_protocol::ids::{AgentId, AssignedId, FrameworkId, Principal, Role, Term, VolumeId};
use berth_protocol::resources::{
    ContainerPath, DISK, PersistentVolume, Quantity, Reservation, ResourceKey, Resources,
};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

/// The number of roles frameworks are spread over.
const ROLES: u64 = 10;
/// Decline filters installed per framework.
const FILTERS_PER_FRAMEWORK: u64 = 5;
/// The (agents, frameworks) configurations measured: 1,000, 10,000 and 50,000 agents with
/// 100 and 1,000 frameworks, and 20,000 × 2,000, the larger configuration Mesos reported.
const CONFIGURATIONS: [(u64, u64); 7] = [
    (1_000, 100),
    (1_000, 1_000),
    (10_000, 100),
    (10_000, 1_000),
    (20_000, 2_000),
    (50_000, 100),
    (50_000, 1_000),
];

/// A cluster, owned; [`Owned::with_cluster`] lends it as the allocator's view.
struct Owned {
    agents: BTreeMap<AgentId, (Resources, Resources)>,
    frameworks: BTreeMap<FrameworkId, (Role, bool, Resources)>,
    weights: BTreeMap<Role, Weight>,
    filters: BTreeSet<(FrameworkId, AgentId)>,
}

/// A well-mixed integer from `value`: SplitMix64's finaliser, for varied but repeatable input.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn id(sequence: u64) -> AssignedId {
    AssignedId {
        term: Term(1),
        sequence,
    }
}

fn role(index: u64) -> Role {
    Role::new(&format!("role-{index}")).expect("valid role")
}

fn parse(text: &str) -> Resources {
    Resources::parse(text).expect("valid resources")
}

fn add(left: Resources, right: &Resources) -> Resources {
    left.checked_add(right).expect("disjoint")
}

fn dynamic_reservation(role_index: u64) -> Reservation {
    Reservation::Dynamic {
        role: role(role_index),
        principal: Principal::new("operator").expect("valid principal"),
    }
}

fn units(amount: u64) -> Quantity {
    Quantity::from_units(amount).expect("fits")
}

/// Agent `sequence`: 32 cpus, 256 GiB, ~1 TB of disk, 1,001 ports; every 5th has 8 cpus
/// statically reserved, every 7th 4 cpus and 16 GiB dynamically reserved, every 50th a
/// persistent volume on reserved disk.
fn agent_total(sequence: u64) -> Resources {
    let mut total = parse("cpus:32;mem:262144;disk:1000000;ports:[31000-32000]");
    if sequence % 5 == 0 {
        total = add(total, &parse(&format!("cpus(role-{}):8", sequence % ROLES)));
    }
    if sequence % 7 == 0 {
        let reservation = dynamic_reservation((sequence / 7) % ROLES);
        let cpus = ResourceKey::unreserved("cpus").reserved(reservation.clone());
        let mem = ResourceKey::unreserved("mem").reserved(reservation);
        total = add(total, &Resources::scalar(cpus, units(4)));
        total = add(total, &Resources::scalar(mem, units(16_384)));
    }
    if sequence % 50 == 0 {
        let key = ResourceKey {
            volume: Some(PersistentVolume {
                id: VolumeId::new(&format!("volume-{sequence}")).expect("valid id"),
                container_path: ContainerPath::new("data").expect("valid path"),
            }),
            ..ResourceKey::unreserved(DISK).reserved(dynamic_reservation(sequence % ROLES))
        };
        total = add(total, &Resources::scalar(key, units(10_000)));
    }
    total
}

/// What runs on agent `sequence`: nothing on a third of the agents, some of every kind on
/// the rest.
fn agent_used(sequence: u64) -> Resources {
    let load = mix(sequence) % 24;
    if sequence % 3 == 0 || load == 0 {
        return Resources::new();
    }
    parse(&format!(
        "cpus:{load};mem:{};disk:{};ports:[31000-{}]",
        load * 8192,
        load * 20_000,
        31_000 + load * 10
    ))
}

impl Owned {
    fn new(agent_count: u64, framework_count: u64) -> Owned {
        let agents = (0..agent_count)
            .map(|sequence| {
                let total = agent_total(sequence);
                let available = total.checked_sub(&agent_used(sequence)).expect("fits");
                (AgentId(id(sequence)), (total, available))
            })
            .collect();
        let frameworks = (0..framework_count)
            .map(|sequence| {
                let cpus = mix(sequence) % 200;
                let allocation = parse(&format!("cpus:{cpus};mem:{}", cpus * 6144));
                let wants_offers = sequence % 10 != 9;
                let entry = (role(sequence % ROLES), wants_offers, allocation);
                (FrameworkId(id(sequence)), entry)
            })
            .collect();
        let weights = (0..ROLES)
            .map(|index| {
                let weight = Weight::from_thousandths(1_000 + 500 * (index % 3)).expect("positive");
                (role(index), weight)
            })
            .collect();
        let filters = (0..framework_count)
            .flat_map(|framework| {
                (0..FILTERS_PER_FRAMEWORK).map(move |filter| {
                    let agent = mix(framework * FILTERS_PER_FRAMEWORK + filter) % agent_count;
                    (FrameworkId(id(framework)), AgentId(id(agent)))
                })
            })
            .collect();
        Owned {
            agents,
            frameworks,
            weights,
            filters,
        }
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
}

/// CPU time of the calling thread, from Linux's `/proc/thread-self/schedstat` (nanoseconds on
/// a CPU); wall time where that file cannot be read.
struct ThreadTime {
    wall: WallTime,
}

/// The nanoseconds the calling thread has spent on a CPU, if the kernel says.
fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl Measurement for ThreadTime {
    type Intermediate = (Option<u64>, Instant);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        (thread_cpu_nanos(), Instant::now())
    }

    fn end(&self, (cpu_start, wall_start): Self::Intermediate) -> Duration {
        match (cpu_start, thread_cpu_nanos()) {
            (Some(start), Some(end)) => Duration::from_nanos(end.saturating_sub(start)),
            _ => wall_start.elapsed(),
        }
    }

    fn add(&self, first: &Duration, second: &Duration) -> Duration {
        *first + *second
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn allocation_cycle(criterion: &mut Criterion<ThreadTime>) {
    let mut group = criterion.benchmark_group("allocation cycle");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for (agent_count, framework_count) in CONFIGURATIONS {
        let owned = Owned::new(agent_count, framework_count);
        owned.with_cluster(|cluster| {
            let offers = allocate(cluster);
            assert_eq!(check_offers(cluster, &offers), Ok(()), "R1–R3 hold");
            let name = format!("{agent_count} agents x {framework_count} frameworks");
            group.bench_with_input(
                BenchmarkId::from_parameter(name),
                cluster,
                |bench, cluster| {
                    // The master keeps the offers it makes: dropping them is not part of
                    // a cycle.
                    bench.iter_batched(
                        || (),
                        |()| allocate(black_box(cluster)),
                        BatchSize::PerIteration,
                    );
                },
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadTime { wall: WallTime });
    targets = allocation_cycle
}
criterion_main!(benches);
