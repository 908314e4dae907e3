//! Transport: handshake outcomes, frame errors, queues and reconnection, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_node::transport::{
    CLUSTER_SECRET_LENGTH_MIN, ClusterSecret, HandshakeError, Hello, INBOUND_CONNECTIONS_DEFAULT,
    NONCE_LENGTH, Network, NetworkConfig, PEER_QUEUE_LENGTH_MAX, SecretError, SendOutcome, Side,
    handshake, raise_open_files_limit,
};
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::frame::{PROTOCOL_VERSION, encode_frame};
use berth_protocol::ids::Term;
use berth_protocol::message::{Message, Ping, Pong};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Long enough for anything on loopback; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(10);

fn cluster() -> Name {
    Name::new("test-cluster").expect("a valid name")
}

fn address(text: &str) -> Address {
    Address::new(text).expect("a valid address")
}

fn config(address: Address, secret: &ClusterSecret) -> NetworkConfig {
    NetworkConfig {
        address,
        cluster: cluster(),
        secret: secret.clone(),
    }
}

fn ping(sequence: u64) -> Message {
    Message::Ping(Ping {
        term: Term(1),
        sequence,
    })
}

/// A network listening on 127.0.0.1, run until `stop`.
struct Node {
    network: Network,
    inbox: mpsc::Receiver<(Address, Message)>,
    address: Address,
    socket_address: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Node {
    async fn start(secret: &ClusterSecret) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Node::start_on(listener, secret)
    }

    fn start_on(listener: TcpListener, secret: &ClusterSecret) -> Node {
        Node::start_limited(listener, secret, INBOUND_CONNECTIONS_DEFAULT)
    }

    fn start_limited(
        listener: TcpListener,
        secret: &ClusterSecret,
        inbound_connections_max: usize,
    ) -> Node {
        let socket_address = listener.local_addr().expect("local address");
        let address = address(&socket_address.to_string());
        let (network, inbox) = Network::new(config(address.clone(), secret));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let network = network.clone();
            async move {
                network
                    .run(listener, inbound_connections_max, async {
                        let _ = stopped.await;
                    })
                    .await;
            }
        });
        Node {
            network,
            inbox,
            address,
            socket_address,
            stop,
            server,
        }
    }

    async fn receive(&mut self) -> (Address, Message) {
        tokio::time::timeout(PATIENCE, self.inbox.recv())
            .await
            .expect("a message in time")
            .expect("the inbox is open")
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.server)
            .await
            .expect("the server stops in time")
            .expect("the server task does not panic");
    }
}

/// Opens a connection to `to` and runs the handshake as a dialer with `config`.
async fn raw_handshake(
    to: SocketAddr,
    config: &NetworkConfig,
) -> (TcpStream, Result<Address, HandshakeError>) {
    let mut stream = TcpStream::connect(to).await.expect("connect");
    let result = handshake(&mut stream, Side::Dialer, config).await;
    (stream, result)
}

/// Waits until the peer closes `stream` (an end of stream or a reset), ignoring what it sent.
async fn assert_closed(stream: &mut TcpStream) {
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the peer did not close the connection");
}

/// A fake peer that accepts one connection, sends `bytes` and keeps the connection open.
async fn fake_peer(bytes: Vec<u8>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let socket_address = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let _ = stream.write_all(&bytes).await;
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    (socket_address, task)
}

#[tokio::test]
async fn messages_flow_both_ways_after_a_good_handshake() {
    let secret = ClusterSecret::generate();
    let mut a = Node::start(&secret).await;
    let mut b = Node::start(&secret).await;

    assert_eq!(b.network.send(&a.address, ping(7)), SendOutcome::Queued);
    let (from, message) = a.receive().await;
    assert_eq!(from, b.address);
    assert_eq!(message, ping(7));

    let pong = Message::Pong(Pong {
        term: Term(1),
        sequence: 7,
    });
    assert_eq!(a.network.send(&from, pong.clone()), SendOutcome::Queued);
    assert_eq!(b.receive().await, (a.address.clone(), pong));

    // Many messages, in order, on the same connection.
    for sequence in 0..100 {
        assert_eq!(
            b.network.send(&a.address, ping(sequence)),
            SendOutcome::Queued
        );
    }
    for sequence in 0..100 {
        assert_eq!(a.receive().await, (b.address.clone(), ping(sequence)));
    }
    assert_eq!(a.network.dropped_count(), 0);
    assert_eq!(b.network.dropped_count(), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn replies_to_a_client_use_its_inbound_connection() {
    let secret = ClusterSecret::generate();
    let mut server = Node::start(&secret).await;
    // A scheduler: it does not listen, and its address is not a socket address.
    let scheduler = address("scheduler-1");
    let (client, mut client_inbox) = Network::new(config(scheduler.clone(), &secret));

    assert_eq!(client.send(&server.address, ping(1)), SendOutcome::Queued);
    let (from, message) = server.receive().await;
    assert_eq!((&from, &message), (&scheduler, &ping(1)));

    let pong = Message::Pong(Pong {
        term: Term(1),
        sequence: 1,
    });
    assert_eq!(
        server.network.send(&from, pong.clone()),
        SendOutcome::Queued
    );
    let reply = tokio::time::timeout(PATIENCE, client_inbox.recv())
        .await
        .expect("a reply in time");
    assert_eq!(reply, Some((server.address.clone(), pong)));

    // An address with no connection that cannot be dialed.
    assert_eq!(
        server.network.send(&address("nobody"), ping(2)),
        SendOutcome::NoRoute
    );
    assert_eq!(server.network.dropped_count(), 1);

    client.shutdown().await;
    assert_eq!(client.send(&server.address, ping(3)), SendOutcome::ShutDown);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_fails_and_delivers_nothing() {
    let mut server = Node::start(&ClusterSecret::generate()).await;
    let impostor = config(address("impostor"), &ClusterSecret::generate());
    let (mut stream, result) = raw_handshake(server.socket_address, &impostor).await;
    assert!(
        matches!(result, Err(HandshakeError::WrongSecret)),
        "{result:?}"
    );
    // The impostor sends a frame anyway; the server has closed the connection.
    let frame = encode_frame(&ping(1)).expect("encode");
    let _ = stream.write_all(&frame).await;
    assert_closed(&mut stream).await;

    // A whole network with the wrong secret gets nothing through either.
    let (client, _inbox) = Network::new(impostor);
    assert_eq!(client.send(&server.address, ping(2)), SendOutcome::Queued);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.inbox.recv())
            .await
            .is_err(),
        "nothing is delivered"
    );
    client.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_cluster_is_refused() {
    let secret = ClusterSecret::generate();
    let mut server = Node::start(&secret).await;
    let other = NetworkConfig {
        cluster: Name::new("other-cluster").expect("a valid name"),
        ..config(address("stranger"), &secret)
    };
    let (mut stream, result) = raw_handshake(server.socket_address, &other).await;
    match result {
        Err(HandshakeError::ClusterMismatch { ours, theirs }) => {
            assert_eq!(ours, "other-cluster");
            assert_eq!(theirs, cluster().as_str());
        }
        other => panic!("expected a cluster mismatch, got {other:?}"),
    }
    assert_closed(&mut stream).await;
    assert!(server.inbox.try_recv().is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_version_mismatch_is_refused() {
    let secret = ClusterSecret::generate();
    let newer = Hello {
        version: PROTOCOL_VERSION + 1,
        cluster: cluster(),
        nonce: [7; NONCE_LENGTH],
        address: address("from-the-future"),
    };

    // Our side reports the peer's version.
    let (fake, _task) = fake_peer(newer.encode()).await;
    let (_stream, result) = raw_handshake(fake, &config(address("client"), &secret)).await;
    match result {
        Err(HandshakeError::VersionMismatch { ours, theirs }) => {
            assert_eq!(ours, PROTOCOL_VERSION);
            assert_eq!(theirs, PROTOCOL_VERSION + 1);
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }

    // A node closes the connection of a peer of another version.
    let mut server = Node::start(&secret).await;
    let mut stream = TcpStream::connect(server.socket_address)
        .await
        .expect("connect");
    stream.write_all(&newer.encode()).await.expect("write");
    assert_closed(&mut stream).await;
    assert!(server.inbox.try_recv().is_err());
    server.stop().await;
}

#[tokio::test]
async fn garbage_instead_of_a_hello_is_refused() {
    let secret = ClusterSecret::generate();
    let garbage = b"GET / HTTP/1.1\r\nHost: berth\r\n\r\n".to_vec();

    let (fake, _task) = fake_peer(garbage.clone()).await;
    let (_stream, result) = raw_handshake(fake, &config(address("client"), &secret)).await;
    assert!(
        matches!(result, Err(HandshakeError::BadMagic)),
        "{result:?}"
    );

    let mut server = Node::start(&secret).await;
    let mut stream = TcpStream::connect(server.socket_address)
        .await
        .expect("connect");
    stream.write_all(&garbage).await.expect("write");
    assert_closed(&mut stream).await;

    // A hello whose body is not what it claims.
    let mut bad_body = Hello {
        version: PROTOCOL_VERSION,
        cluster: cluster(),
        nonce: [1; NONCE_LENGTH],
        address: address("client"),
    }
    .encode();
    let address_length_at = bad_body.len() - "client".len() - 1;
    bad_body[address_length_at] = 200; // the address now overruns the body
    let (fake, _task) = fake_peer(bad_body).await;
    let (_stream, result) = raw_handshake(fake, &config(address("client"), &secret)).await;
    assert!(
        matches!(result, Err(HandshakeError::Malformed(_))),
        "{result:?}"
    );

    assert!(server.inbox.try_recv().is_err());
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_header_closes_the_connection() {
    let secret = ClusterSecret::generate();
    let mut server = Node::start(&secret).await;
    let client = config(address("raw-client"), &secret);
    let (mut stream, result) = raw_handshake(server.socket_address, &client).await;
    assert_eq!(result.expect("handshake"), server.address);

    // A good frame first: the connection works.
    let frame = encode_frame(&ping(1)).expect("encode");
    stream.write_all(&frame).await.expect("write");
    assert_eq!(server.receive().await, (address("raw-client"), ping(1)));

    // A header claiming 4 GiB, then what would be its body.
    stream.write_all(&[0xff; 4]).await.expect("write");
    let _ = stream.write_all(&frame).await;
    assert_closed(&mut stream).await;
    assert!(server.inbox.try_recv().is_err(), "nothing is delivered");
    server.stop().await;
}

#[tokio::test]
async fn garbage_after_the_handshake_closes_the_connection() {
    let secret = ClusterSecret::generate();
    let mut server = Node::start(&secret).await;
    let client = config(address("raw-client"), &secret);

    let mut bad_message = Vec::new();
    bad_message.extend_from_slice(&10u32.to_be_bytes());
    bad_message.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    bad_message.extend_from_slice(&[0xff; 8]); // no such message variant
    let mut stale_version = encode_frame(&ping(1)).expect("encode");
    stale_version[4..6].copy_from_slice(&(PROTOCOL_VERSION - 1).to_be_bytes());
    let mut trailing_bytes = encode_frame(&ping(1)).expect("encode");
    trailing_bytes.push(0);
    let length = u32::try_from(trailing_bytes.len() - 4).expect("small");
    trailing_bytes[..4].copy_from_slice(&length.to_be_bytes());

    for bytes in [bad_message, stale_version, trailing_bytes] {
        let (mut stream, result) = raw_handshake(server.socket_address, &client).await;
        result.expect("handshake");
        stream.write_all(&bytes).await.expect("write");
        // A good frame after the bad one must not be delivered either.
        let _ = stream
            .write_all(&encode_frame(&ping(2)).expect("encode"))
            .await;
        assert_closed(&mut stream).await;
        assert!(server.inbox.try_recv().is_err(), "nothing is delivered");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_drops_instead_of_blocking() {
    // A peer that never answers: the kernel accepts the connection, nobody reads it, so the
    // dialer waits in its handshake and nothing leaves the queue.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_address = address(&silent.local_addr().expect("local address").to_string());
    let secret = ClusterSecret::generate();
    let (client, _inbox) = Network::new(config(address("client"), &secret));

    let extra = 10;
    let started = Instant::now();
    let outcomes: Vec<SendOutcome> = (0..PEER_QUEUE_LENGTH_MAX + extra)
        .map(|sequence| client.send(&silent_address, ping(sequence as u64)))
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "send never waits"
    );
    let queued = outcomes
        .iter()
        .filter(|outcome| **outcome == SendOutcome::Queued)
        .count();
    let full = outcomes
        .iter()
        .filter(|outcome| **outcome == SendOutcome::QueueFull)
        .count();
    assert_eq!(queued, PEER_QUEUE_LENGTH_MAX);
    assert_eq!(full, extra);
    assert_eq!(client.dropped_count(), extra as u64);

    tokio::time::timeout(PATIENCE, client.shutdown())
        .await
        .expect("shutdown does not wait for the silent peer");
    drop(silent);
}

#[tokio::test]
async fn a_sender_reconnects_after_the_peer_restarts() {
    let secret = ClusterSecret::generate();
    let server = Node::start(&secret).await;
    let socket_address = server.socket_address;
    let server_address = server.address.clone();
    let (client, mut client_inbox) = Network::new(config(address("client"), &secret));
    let mut server = server;
    assert_eq!(client.send(&server_address, ping(0)), SendOutcome::Queued);
    assert_eq!(server.receive().await.1, ping(0));
    server.stop().await;

    // The client keeps sending while the server is down; some messages are lost.
    for sequence in 1..4 {
        let _ = client.send(&server_address, ping(sequence));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The server comes back on the same port.
    let listener = TcpListener::bind(socket_address).await.expect("rebind");
    let mut restarted = Node::start_on(listener, &secret);
    let deadline = Instant::now() + PATIENCE;
    let mut sequence = 100;
    let received = loop {
        assert!(Instant::now() < deadline, "no message after the restart");
        let _ = client.send(&server_address, ping(sequence));
        sequence += 1;
        match tokio::time::timeout(Duration::from_millis(100), restarted.inbox.recv()).await {
            Ok(Some(received)) => break received,
            Ok(None) => panic!("the inbox closed"),
            Err(_) => continue,
        }
    };
    assert_eq!(received.0, address("client"));

    // And replies flow back over the new connection.
    let pong = Message::Pong(Pong {
        term: Term(1),
        sequence: 0,
    });
    assert_eq!(
        restarted.network.send(&address("client"), pong.clone()),
        SendOutcome::Queued
    );
    let reply = tokio::time::timeout(PATIENCE, client_inbox.recv())
        .await
        .expect("a reply in time");
    assert_eq!(reply, Some((server_address, pong)));
    client.shutdown().await;
    restarted.stop().await;
}

/// More than the 1,024 inbound connections the transport once allowed at most: a limit
/// above that must really hold them all.
const CONNECTIONS_LIMIT_TESTED: usize = 1_100;

#[tokio::test]
async fn inbound_connections_are_held_up_to_the_limit_and_refused_beyond_it() {
    // Both ends of every connection are in this process, and the default soft limit of
    // open files is often 1,024.
    let needed = 2 * CONNECTIONS_LIMIT_TESTED as u64 + 256;
    let open_files = raise_open_files_limit(needed).expect("raising the open files limit");
    assert!(
        open_files >= needed,
        "this test needs {needed} open files; the hard limit allows {open_files} (ulimit -Hn)"
    );
    let secret = ClusterSecret::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let node = Node::start_limited(listener, &secret, CONNECTIONS_LIMIT_TESTED);
    let client = config(address("client"), &secret);
    let mut held = Vec::new();
    for index in 0..CONNECTIONS_LIMIT_TESTED {
        let (stream, result) = raw_handshake(node.socket_address, &client).await;
        result.unwrap_or_else(|error| panic!("connection {index} is within the limit: {error}"));
        held.push(stream);
    }
    assert_eq!(node.network.refused_count(), 0);

    // One more: closed before the acceptor says hello, and counted.
    let (mut refused, result) = raw_handshake(node.socket_address, &client).await;
    assert!(result.is_err(), "a connection beyond the limit is refused");
    assert_closed(&mut refused).await;
    assert_eq!(node.network.refused_count(), 1);

    // A connection that ends frees its place for a new one.
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (stream, result) = raw_handshake(node.socket_address, &client).await;
        if result.is_ok() {
            held.push(stream);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never reused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_while_freeing = node.network.refused_count();
    let (_, result) = raw_handshake(node.socket_address, &client).await;
    assert!(result.is_err(), "full again");
    assert_eq!(node.network.refused_count(), refused_while_freeing + 1);
    drop(held);
    node.stop().await;
}

#[tokio::test]
async fn a_limit_of_one_refuses_the_second_connection() {
    let secret = ClusterSecret::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let node = Node::start_limited(listener, &secret, 1);
    let client = config(address("client"), &secret);
    let (_held, result) = raw_handshake(node.socket_address, &client).await;
    result.expect("the first connection is accepted");
    let (_, result) = raw_handshake(node.socket_address, &client).await;
    assert!(result.is_err(), "the second is refused");
    assert_eq!(node.network.refused_count(), 1);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_closes_inbound_connections() {
    let secret = ClusterSecret::generate();
    let server = Node::start(&secret).await;
    let (mut stream, result) = raw_handshake(
        server.socket_address,
        &config(address("raw-client"), &secret),
    )
    .await;
    result.expect("handshake");
    let network = server.network.clone();
    server.stop().await;
    assert_closed(&mut stream).await;
    assert_eq!(
        network.send(&address("raw-client"), ping(1)),
        SendOutcome::ShutDown
    );
}

/// The next connection end `ends` reports, or `None` once its channel closed.
async fn next_end(ends: &mut mpsc::Receiver<Address>) -> Option<Address> {
    tokio::time::timeout(PATIENCE, ends.recv())
        .await
        .expect("a connection end or the channel's close in time")
}

#[tokio::test]
async fn connection_ends_are_reported_but_failed_dials_and_shutdowns_are_not() {
    let secret = ClusterSecret::generate();
    let mut server = Node::start(&secret).await;
    let mut server_ends = server.network.connection_ends();

    // An inbound connection ends: the client shut down.
    let (client, _client_inbox) = Network::new(config(address("client-1"), &secret));
    let mut client_ends = client.connection_ends();
    assert_eq!(client.send(&server.address, ping(1)), SendOutcome::Queued);
    assert_eq!(server.receive().await, (address("client-1"), ping(1)));
    client.shutdown().await;
    assert_eq!(next_end(&mut server_ends).await, Some(address("client-1")));
    assert_eq!(next_end(&mut client_ends).await, None, "its own shutdown");

    // An outbound connection ends: the server went away (as a killed process's does).
    let (client, _client_inbox) = Network::new(config(address("client-2"), &secret));
    let mut client_ends = client.connection_ends();
    assert_eq!(client.send(&server.address, ping(2)), SendOutcome::Queued);
    assert_eq!(server.receive().await, (address("client-2"), ping(2)));
    let server_address = server.address.clone();
    server.stop().await;
    assert_eq!(
        next_end(&mut client_ends).await,
        Some(server_address.clone())
    );
    assert_eq!(next_end(&mut server_ends).await, None, "its own shutdown");

    // Dialing the stopped server fails: no connection ended, nothing is reported.
    assert_eq!(client.send(&server_address, ping(3)), SendOutcome::Queued);
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.shutdown().await;
    assert_eq!(next_end(&mut client_ends).await, None);
}

/// A fresh file path under the system's temporary directory, removed when dropped.
struct TestFile {
    path: PathBuf,
}

impl TestFile {
    fn new(name: &str) -> TestFile {
        let path =
            std::env::temp_dir().join(format!("berth-transport-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TestFile { path }
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn a_cluster_secret_is_read_from_a_file() {
    let file = TestFile::new("secret");
    let generated = ClusterSecret::generate();
    generated.write_new_file(&file.path).expect("write");
    assert_eq!(ClusterSecret::read(&file.path).expect("read"), generated);

    // A trailing newline is not part of the secret.
    std::fs::write(&file.path, b"0123456789abcdef0123\r\n").expect("write");
    let with_newline = ClusterSecret::read(&file.path).expect("read");
    assert_eq!(
        with_newline,
        ClusterSecret::from_bytes(b"0123456789abcdef0123".to_vec()).expect("long enough")
    );
    // Never printed.
    let debug = format!("{with_newline:?}");
    assert!(!debug.contains("0123"), "{debug}");

    std::fs::write(&file.path, b"short\n").expect("write");
    match ClusterSecret::read(&file.path) {
        Err(error @ SecretError::TooShort { length: 5, .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&file.path.display().to_string()),
                "{message}"
            );
            assert!(
                message.contains(&CLUSTER_SECRET_LENGTH_MIN.to_string()),
                "{message}"
            );
        }
        other => panic!("expected a short secret, got {other:?}"),
    }

    let missing = TestFile::new("missing-secret");
    assert!(matches!(
        ClusterSecret::read(&missing.path),
        Err(SecretError::Read { .. })
    ));
}
