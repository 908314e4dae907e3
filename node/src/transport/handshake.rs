//! The handshake that opens every connection: version and cluster check, then mutual
//! authentication with the cluster secret. See the [transport documentation](super) for the
//! protocol.

use std::io;
use std::time::Duration;

use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::frame::PROTOCOL_VERSION;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ClusterSecret, NetworkConfig};

/// The first bytes a Berth peer sends on a connection.
pub const HELLO_MAGIC: [u8; 4] = *b"BRTH";
/// Bytes before a hello's body: magic, version, body length.
pub const HELLO_PREFIX_LENGTH: usize = 8;
/// The largest hello body accepted, in bytes (a nonce, a cluster name and an address fit in
/// 226).
pub const HELLO_BODY_LENGTH_MAX: usize = 256;
/// Bytes in a hello's random nonce.
pub const NONCE_LENGTH: usize = 32;
/// Bytes in a proof: an HMAC-SHA256 tag.
pub const PROOF_LENGTH: usize = 32;
/// How long a handshake may take, from the first byte sent to the peer's proof verified.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which end of a connection this side is: the two compute their proofs with different
/// labels, so a proof can never be reflected back to the side that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the connection.
    Dialer,
    /// The side that accepted it.
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialer => b"berth handshake: dialer proof",
            Side::Acceptor => b"berth handshake: acceptor proof",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Dialer => Side::Acceptor,
            Side::Acceptor => Side::Dialer,
        }
    }
}

/// The first message of each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the sender speaks.
    pub version: u16,
    /// The sender's cluster.
    pub cluster: Name,
    /// Fresh random bytes, so that each handshake's proofs are new.
    pub nonce: [u8; NONCE_LENGTH],
    /// The address the sender is known by in the protocol.
    pub address: Address,
}

impl Hello {
    /// The hello's bytes on the wire (see the [transport documentation](super)).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(HELLO_BODY_LENGTH_MAX);
        body.extend_from_slice(&self.nonce);
        push_text(&mut body, self.cluster.as_str());
        push_text(&mut body, self.address.as_str());
        debug_assert!(
            body.len() <= HELLO_BODY_LENGTH_MAX,
            "names and addresses are bounded"
        );
        let mut bytes = Vec::with_capacity(HELLO_PREFIX_LENGTH + body.len());
        bytes.extend_from_slice(&HELLO_MAGIC);
        bytes.extend_from_slice(&self.version.to_be_bytes());
        bytes.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Reads a hello, checking the magic and the version before anything else: a peer of
    /// another version may lay out the rest differently.
    async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Hello, HandshakeError> {
        let mut prefix = [0; HELLO_PREFIX_LENGTH];
        stream.read_exact(&mut prefix[..HELLO_MAGIC.len()]).await?;
        if prefix[..HELLO_MAGIC.len()] != HELLO_MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        stream.read_exact(&mut prefix[HELLO_MAGIC.len()..]).await?;
        let version = u16::from_be_bytes([prefix[4], prefix[5]]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        let length = usize::from(u16::from_be_bytes([prefix[6], prefix[7]]));
        if length > HELLO_BODY_LENGTH_MAX {
            return Err(HandshakeError::Malformed("hello longer than the maximum"));
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        Hello::decode_body(version, &body)
    }

    fn decode_body(version: u16, body: &[u8]) -> Result<Hello, HandshakeError> {
        let (nonce, rest) = body
            .split_first_chunk::<NONCE_LENGTH>()
            .ok_or(HandshakeError::Malformed("hello too short for its nonce"))?;
        let (cluster, rest) = take_text(rest)?;
        let cluster =
            Name::new(cluster).map_err(|_| HandshakeError::Malformed("invalid cluster name"))?;
        let (address, rest) = take_text(rest)?;
        let address =
            Address::new(address).map_err(|_| HandshakeError::Malformed("invalid address"))?;
        if !rest.is_empty() {
            return Err(HandshakeError::Malformed("bytes after the hello"));
        }
        Ok(Hello {
            version,
            cluster,
            nonce: *nonce,
            address,
        })
    }
}

/// Appends `text` with a one-byte length; names and addresses are at most 128 bytes.
fn push_text(bytes: &mut Vec<u8>, text: &str) {
    bytes.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    bytes.extend_from_slice(text.as_bytes());
}

fn take_text(bytes: &[u8]) -> Result<(&str, &[u8]), HandshakeError> {
    let (length, rest) = bytes
        .split_first()
        .ok_or(HandshakeError::Malformed("hello truncated"))?;
    let (text, rest) = rest
        .split_at_checked(usize::from(*length))
        .ok_or(HandshakeError::Malformed("hello truncated"))?;
    let text =
        std::str::from_utf8(text).map_err(|_| HandshakeError::Malformed("text not UTF-8"))?;
    Ok((text, rest))
}

/// Runs the handshake on a fresh connection as `side`, within [`HANDSHAKE_TIMEOUT`], and
/// returns the peer's authenticated protocol address. On any error the caller closes the
/// connection.
pub async fn handshake<S>(
    stream: &mut S,
    side: Side,
    config: &NetworkConfig,
) -> Result<Address, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange(stream, side, config))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn exchange<S>(
    stream: &mut S,
    side: Side,
    config: &NetworkConfig,
) -> Result<Address, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = Hello {
        version: PROTOCOL_VERSION,
        cluster: config.cluster.clone(),
        nonce: rand::random(),
        address: config.address.clone(),
    };
    // Both sides send their hello at once: it is small enough for any socket buffer.
    stream.write_all(&ours.encode()).await?;
    stream.flush().await?;
    let theirs = Hello::read(stream).await?;
    if theirs.cluster != ours.cluster {
        return Err(HandshakeError::ClusterMismatch {
            ours: ours.cluster.as_str().to_string(),
            theirs: theirs.cluster.as_str().to_string(),
        });
    }
    if theirs.nonce == ours.nonce {
        return Err(HandshakeError::Malformed("the peer echoed our nonce"));
    }
    let (dialer, acceptor) = match side {
        Side::Dialer => (&ours, &theirs),
        Side::Acceptor => (&theirs, &ours),
    };
    let our_proof = transcript_mac(&config.secret, side, dialer, acceptor).finalize();
    stream.write_all(&our_proof.into_bytes()).await?;
    stream.flush().await?;
    let mut their_proof = [0; PROOF_LENGTH];
    stream.read_exact(&mut their_proof).await?;
    // `verify_slice` compares in constant time.
    transcript_mac(&config.secret, side.other(), dialer, acceptor)
        .verify_slice(&their_proof)
        .map_err(|_| HandshakeError::WrongSecret)?;
    Ok(theirs.address)
}

/// The HMAC of what `side` proves: its label, the version, both nonces, the cluster and both
/// addresses, each variable-length field prefixed with its length so that the encoding is
/// unambiguous.
fn transcript_mac(
    secret: &ClusterSecret,
    side: Side,
    dialer: &Hello,
    acceptor: &Hello,
) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.key())
        .expect("HMAC takes a key of any length");
    let mut transcript = Vec::with_capacity(2 * HELLO_BODY_LENGTH_MAX);
    transcript.extend_from_slice(side.label());
    transcript.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    transcript.extend_from_slice(&dialer.nonce);
    transcript.extend_from_slice(&acceptor.nonce);
    push_text(&mut transcript, dialer.cluster.as_str());
    push_text(&mut transcript, dialer.address.as_str());
    push_text(&mut transcript, acceptor.address.as_str());
    mac.update(&transcript);
    mac
}

/// Why a handshake failed. The connection is closed; nothing else changes.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer did not start with [`HELLO_MAGIC`]: not a Berth node.
    #[error("the peer is not a Berth node (no handshake magic)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: this node speaks {ours}, the peer {theirs}")]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer belongs to another cluster.
    #[error("cluster mismatch: this node is in {ours}, the peer in {theirs}")]
    ClusterMismatch {
        /// Ours.
        ours: String,
        /// The peer's (a valid cluster name).
        theirs: String,
    },
    /// The peer's proof is wrong: it does not hold this cluster's secret.
    #[error("authentication failed: the peer does not hold this cluster's secret")]
    WrongSecret,
    /// The peer's hello is not well formed.
    #[error("malformed hello: {0}")]
    Malformed(&'static str),
    /// The handshake did not finish within [`HANDSHAKE_TIMEOUT`].
    #[error("the handshake did not finish within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    /// The connection failed (or the peer closed it, having refused us).
    #[error("connection failed during the handshake: {0}")]
    Io(io::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(error: io::Error) -> HandshakeError {
        HandshakeError::Io(error)
    }
}
