//! A client's view of the masters: who leads, as each master answers `FindLeader`, and what
//! the cluster holds, as each answers `StateRequest`.
//!
//! A client does not listen, so its [`Address`] is a name (`client-<random hex>`) rather than
//! a socket address. It dials each master; the handshake tells the master that name, and the
//! master's [`LeaderHint`] comes back over the same connection.

#![warn(missing_docs)]

use std::time::Duration;

use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::Term;
use berth_protocol::message::{LeaderHint, Message, StateReport};
use berth_protocol::registry::{AgentStatus, Registry};
use serde::Serialize;
use tokio::time::Instant;

use crate::transport::{ClusterSecret, Network, NetworkConfig};

/// How long [`find_leader`] waits for answers by default.
pub const FIND_LEADER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Random bytes in a client's name.
const CLIENT_NAME_RANDOM_LENGTH: usize = 8;

/// What one master answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MasterAnswer {
    /// The master asked.
    pub address: Address,
    /// Its term, if it answered in time.
    pub term: Option<Term>,
    /// The leader it knows of, if it answered and knows one.
    pub leader: Option<Address>,
    /// Whether it answered in time.
    pub answered: bool,
}

/// Every master's answer, and the leader they point at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderReport {
    /// The leader named in the answer of the highest term, if any answer names one.
    pub leader: Option<Address>,
    /// That answer's term.
    pub term: Option<Term>,
    /// Each master's answer, in the order asked.
    pub masters: Vec<MasterAnswer>,
}

impl LeaderReport {
    fn from_answers(masters: Vec<MasterAnswer>) -> LeaderReport {
        // At most one master leads a term (E1), so answers of one term name the same leader.
        let best = masters
            .iter()
            .filter_map(|answer| Some((answer.term?, answer.leader.clone()?)))
            .max_by_key(|(term, _)| *term);
        LeaderReport {
            leader: best.as_ref().map(|(_, leader)| leader.clone()),
            term: best.map(|(term, _)| term),
            masters,
        }
    }
}

/// A unique name for a client connection.
pub fn client_address() -> Address {
    let random: [u8; CLIENT_NAME_RANDOM_LENGTH] = rand::random();
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    Address::new(&format!("client-{hex}")).expect("a client name is short printable ASCII")
}

/// Asks each of `masters` who leads, and waits until every one answered or `timeout` passed.
/// A master that cannot be reached is reported as not answering.
pub async fn find_leader(
    masters: &[Address],
    cluster: Name,
    secret: ClusterSecret,
    timeout: Duration,
) -> LeaderReport {
    let config = NetworkConfig {
        address: client_address(),
        cluster,
        secret,
    };
    let (network, mut inbox) = Network::new(config);
    let mut answers: Vec<MasterAnswer> = masters
        .iter()
        .map(|address| MasterAnswer {
            address: address.clone(),
            term: None,
            leader: None,
            answered: false,
        })
        .collect();
    for address in masters {
        let _ = network.send(address, Message::FindLeader);
    }
    let deadline = Instant::now() + timeout;
    while answers.iter().any(|answer| !answer.answered) {
        let received = tokio::time::timeout_at(deadline, inbox.recv()).await;
        let Ok(Some((from, message))) = received else {
            break;
        };
        let Message::LeaderHint(LeaderHint { term, leader }) = message else {
            continue;
        };
        if let Some(answer) = answers.iter_mut().find(|answer| answer.address == from) {
            answer.term = Some(term);
            answer.leader = leader;
            answer.answered = true;
        }
    }
    network.shutdown().await;
    LeaderReport::from_answers(answers)
}

/// One registered agent, as `berth state` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentRow {
    /// The agent's id.
    pub id: String,
    /// Where it listens.
    pub address: String,
    /// Its host name.
    pub hostname: String,
    /// `admitted`, `unreachable` or `gone`.
    pub status: &'static str,
    /// Its total resources, as a resource string.
    pub resources: String,
    /// Whether it registered or re-registered with the current leader.
    pub registered_with_leader: bool,
}

/// One registered framework, as `berth state` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameworkRow {
    /// The framework's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// Its principal.
    pub principal: String,
    /// Whether its scheduler is connected (its failover timer is not running).
    pub connected: bool,
    /// Its failover timeout, in seconds.
    pub failover_timeout_seconds: u64,
}

/// The cluster as the masters report it: each master's term and leader, and the registry of
/// the master that knows the most (the leader's, when it answered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterState {
    /// Who leads, and each master's answer.
    #[serde(flatten)]
    pub leaders: LeaderReport,
    /// The commit index of the registry shown.
    pub commit_index: Option<u64>,
    /// The agents in the registry, gone ones included.
    pub agents: Vec<AgentRow>,
    /// The frameworks in the registry.
    pub frameworks: Vec<FrameworkRow>,
    /// Roles with a configured weight, and the weight.
    pub role_weights: Vec<(String, String)>,
}

impl ClusterState {
    fn from_reports(reports: Vec<(MasterAnswer, Option<StateReport>)>) -> ClusterState {
        // The leader's registry is the most recent committed one; failing that, the one with
        // the highest commit index.
        let best = reports
            .iter()
            .filter_map(|(answer, report)| Some((answer, report.as_ref()?)))
            .max_by_key(|(answer, report)| {
                let leads = report.leader.as_ref() == Some(&answer.address);
                (leads, report.term, report.commit_index)
            })
            .map(|(_, report)| report.clone());
        let leaders =
            LeaderReport::from_answers(reports.into_iter().map(|(answer, _)| answer).collect());
        let registry = best.as_ref().map(|report| &report.registry);
        ClusterState {
            leaders,
            commit_index: best.as_ref().map(|report| report.commit_index.0),
            agents: best
                .as_ref()
                .map(|report| agent_rows(&report.registry, report.registered.as_slice()))
                .unwrap_or_default(),
            frameworks: registry.map(framework_rows).unwrap_or_default(),
            role_weights: registry
                .map(|registry| {
                    registry
                        .role_weights()
                        .iter()
                        .map(|(role, weight)| (role.to_string(), weight.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn agent_rows(registry: &Registry, registered: &[berth_protocol::ids::AgentId]) -> Vec<AgentRow> {
    registry
        .agents()
        .iter()
        .map(|(id, record)| AgentRow {
            id: id.to_string(),
            address: record.address.to_string(),
            hostname: record.info.hostname.to_string(),
            status: match record.status {
                AgentStatus::Admitted => "admitted",
                AgentStatus::Unreachable { .. } => "unreachable",
                AgentStatus::Gone => "gone",
            },
            resources: record.info.resources.to_string(),
            registered_with_leader: registered.contains(id),
        })
        .collect()
}

fn framework_rows(registry: &Registry) -> Vec<FrameworkRow> {
    registry
        .frameworks()
        .iter()
        .map(|(id, record)| FrameworkRow {
            id: id.to_string(),
            name: record.info.name.to_string(),
            role: record.info.role.to_string(),
            principal: record.info.principal.to_string(),
            connected: record.disconnected_since.is_none(),
            failover_timeout_seconds: record.info.failover_timeout.as_secs(),
        })
        .collect()
}

/// Asks each of `masters` for its state, and waits until every one answered or `timeout`
/// passed. A master that cannot be reached is reported as not answering.
pub async fn query_state(
    masters: &[Address],
    cluster: Name,
    secret: ClusterSecret,
    timeout: Duration,
) -> ClusterState {
    let config = NetworkConfig {
        address: client_address(),
        cluster,
        secret,
    };
    let (network, mut inbox) = Network::new(config);
    let mut reports: Vec<(MasterAnswer, Option<StateReport>)> = masters
        .iter()
        .map(|address| {
            let answer = MasterAnswer {
                address: address.clone(),
                term: None,
                leader: None,
                answered: false,
            };
            (answer, None)
        })
        .collect();
    for address in masters {
        let _ = network.send(address, Message::StateRequest);
    }
    let deadline = Instant::now() + timeout;
    while reports.iter().any(|(answer, _)| !answer.answered) {
        let received = tokio::time::timeout_at(deadline, inbox.recv()).await;
        let Ok(Some((from, message))) = received else {
            break;
        };
        let Message::StateReport(report) = message else {
            continue;
        };
        if let Some((answer, slot)) = reports
            .iter_mut()
            .find(|(answer, _)| answer.address == from)
        {
            answer.term = Some(report.term);
            answer.leader = report.leader.clone();
            answer.answered = true;
            *slot = Some(*report);
        }
    }
    network.shutdown().await;
    ClusterState::from_reports(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(address: &str, term: u64, leader: Option<&str>) -> MasterAnswer {
        MasterAnswer {
            address: Address::new(address).expect("valid"),
            term: Some(Term(term)),
            leader: leader.map(|leader| Address::new(leader).expect("valid")),
            answered: true,
        }
    }

    #[test]
    fn the_leader_is_named_by_the_highest_term() {
        let report = LeaderReport::from_answers(vec![
            answer("10.0.0.1:5050", 3, Some("10.0.0.1:5050")),
            answer("10.0.0.2:5050", 4, Some("10.0.0.3:5050")),
            answer("10.0.0.3:5050", 5, None),
        ]);
        assert_eq!(
            report.leader.map(String::from).as_deref(),
            Some("10.0.0.3:5050")
        );
        assert_eq!(report.term, Some(Term(4)));
    }

    #[test]
    fn no_answer_names_no_leader() {
        let report = LeaderReport::from_answers(vec![answer("10.0.0.1:5050", 2, None)]);
        assert_eq!(report.leader, None);
        assert_eq!(report.term, None);
    }

    #[test]
    fn client_names_are_addresses() {
        let address = client_address();
        assert!(address.as_str().starts_with("client-"));
        assert_ne!(address, client_address());
    }
}
