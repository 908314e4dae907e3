//! A client's view of the masters: who leads, as each master answers `FindLeader`.
//!
//! A client does not listen, so its [`Address`] is a name (`client-<random hex>`) rather than
//! a socket address. It dials each master; the handshake tells the master that name, and the
//! master's [`LeaderHint`] comes back over the same connection.

#![warn(missing_docs)]

use std::time::Duration;

use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::Term;
use berth_protocol::message::{LeaderHint, Message};
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
