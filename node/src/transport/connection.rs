//! One authenticated connection: a reader that delivers frames to the inbox and a writer that
//! drains the connection's queue.

use std::io;
use std::net::SocketAddr;

use berth_protocol::Address;
use berth_protocol::frame::{
    FRAME_HEADER_LENGTH, FRAME_LENGTH_MAX, FrameError, decode_body, encode_frame, frame_length,
};
use berth_protocol::message::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Shared;

/// Why a connection was closed other than by a clean end of stream.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    /// The peer sent a frame that is oversized, malformed or of another version.
    #[error("bad frame: {0}")]
    Frame(FrameError),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for ConnectionError {
    fn from(error: io::Error) -> ConnectionError {
        ConnectionError::Io(error)
    }
}

/// Carries messages both ways on an authenticated `stream` until either direction ends: the
/// peer closes, a frame is bad, I/O fails, or the queue's senders are gone. Messages still
/// queued are dropped and counted.
pub(super) async fn run(
    shared: &Shared,
    stream: TcpStream,
    socket_address: SocketAddr,
    peer: &Address,
    queue: &mut mpsc::Receiver<Message>,
) {
    let (reader, writer) = stream.into_split();
    let outcome = tokio::select! {
        outcome = read_frames(shared, reader, peer) => outcome,
        outcome = write_frames(shared, writer, queue) => outcome,
    };
    match outcome {
        Ok(()) => tracing::debug!(peer = %socket_address, address = %peer, "connection closed"),
        Err(error) => tracing::warn!(
            peer = %socket_address,
            address = %peer,
            %error,
            "closing the connection"
        ),
    }
    queue.close();
    while queue.try_recv().is_ok() {
        shared.count_dropped();
    }
}

/// Reads frames and delivers each message, tagged with the peer's address, to the inbox.
/// A clean end of stream between frames is `Ok`; so is an inbox whose reader is gone.
async fn read_frames(
    shared: &Shared,
    reader: impl AsyncRead + Unpin,
    peer: &Address,
) -> Result<(), ConnectionError> {
    let mut reader = BufReader::new(reader);
    loop {
        let mut header = [0; FRAME_HEADER_LENGTH];
        if !read_header(&mut reader, &mut header).await? {
            return Ok(());
        }
        // The length is checked from the header alone, before any buffer is allocated.
        let length = frame_length(header, FRAME_LENGTH_MAX).map_err(ConnectionError::Frame)?;
        // The body buffer grows with the bytes that arrive, not with the declared length.
        let mut body = Vec::new();
        (&mut reader)
            .take(u64::try_from(length).unwrap_or(u64::MAX))
            .read_to_end(&mut body)
            .await?;
        if body.len() < length {
            return Err(ConnectionError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        let message = decode_body(&body).map_err(ConnectionError::Frame)?;
        if shared.inbox.send((peer.clone(), message)).await.is_err() {
            return Ok(());
        }
    }
}

/// Fills `header`; `Ok(false)` if the stream ends before its first byte.
async fn read_header(
    reader: &mut (impl AsyncRead + Unpin),
    header: &mut [u8; FRAME_HEADER_LENGTH],
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < header.len() {
        let read = reader.read(&mut header[filled..]).await?;
        if read == 0 {
            return if filled == 0 {
                Ok(false)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        filled += read;
    }
    Ok(true)
}

/// Writes queued messages as frames, flushing whenever the queue is empty. Ends when every
/// sender of the queue is gone.
async fn write_frames(
    shared: &Shared,
    writer: impl AsyncWrite + Unpin,
    queue: &mut mpsc::Receiver<Message>,
) -> Result<(), ConnectionError> {
    let mut writer = BufWriter::new(writer);
    while let Some(message) = queue.recv().await {
        write_frame(shared, &mut writer, &message).await?;
        // Batch what is already queued (at most the queue's capacity) into one flush.
        while let Ok(message) = queue.try_recv() {
            write_frame(shared, &mut writer, &message).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn write_frame(
    shared: &Shared,
    writer: &mut (impl AsyncWrite + Unpin),
    message: &Message,
) -> io::Result<()> {
    match encode_frame(message) {
        Ok(frame) => writer.write_all(&frame).await,
        Err(error) => {
            // Our own message is too large to frame: a bug upstream, not the peer's fault.
            tracing::warn!(%error, "dropping a message that cannot be framed");
            shared.count_dropped();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    //! What the reader does with each kind of bad frame after a good handshake: the
    //! connection ends with the error that names it, and nothing after the last good frame
    //! reaches the inbox. (`tests/transport.rs` checks the same over real sockets, where only
    //! the closed connection is visible.)

    use berth_protocol::bounded::Name;
    use berth_protocol::frame::PROTOCOL_VERSION;
    use berth_protocol::ids::Term;
    use berth_protocol::message::Ping;

    use super::*;
    use crate::transport::{ClusterSecret, Network, NetworkConfig};

    fn ping(sequence: u64) -> Message {
        Message::Ping(Ping {
            term: Term(1),
            sequence,
        })
    }

    fn frame(message: &Message) -> Vec<u8> {
        encode_frame(message).expect("a small message frames")
    }

    /// Reads `bytes` as one connection from a peer would, and returns how the reader
    /// ended and what reached the inbox.
    async fn read(bytes: &[u8]) -> (Result<(), ConnectionError>, Vec<Message>) {
        let config = NetworkConfig {
            address: Address::new("reader").expect("an address"),
            cluster: Name::new("test").expect("a name"),
            secret: ClusterSecret::generate(),
        };
        let (network, mut inbox) = Network::new(config);
        let peer = Address::new("peer").expect("an address");
        let result = read_frames(&network.shared, bytes, &peer).await;
        let mut delivered = Vec::new();
        while let Ok((from, message)) = inbox.try_recv() {
            assert_eq!(from, peer);
            delivered.push(message);
        }
        network.shutdown().await;
        (result, delivered)
    }

    /// A good frame, `bad`, then another good frame.
    fn between_good_frames(bad: &[u8]) -> Vec<u8> {
        let mut bytes = frame(&ping(1));
        bytes.extend_from_slice(bad);
        bytes.extend_from_slice(&frame(&ping(2)));
        bytes
    }

    #[tokio::test]
    async fn good_frames_are_delivered_in_order_until_a_clean_end() {
        let mut bytes = frame(&ping(1));
        bytes.extend_from_slice(&frame(&ping(2)));
        let (result, delivered) = read(&bytes).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(delivered, [ping(1), ping(2)]);
    }

    #[tokio::test]
    async fn an_oversized_frame_ends_the_connection_before_its_body_is_read() {
        let (result, delivered) = read(&between_good_frames(&[0xff; 4])).await;
        match result {
            Err(ConnectionError::Frame(FrameError::Oversized { length, max })) => {
                assert_eq!(length, 0xffff_ffff);
                assert_eq!(max, FRAME_LENGTH_MAX);
            }
            other => panic!("expected an oversized frame, got {other:?}"),
        }
        assert_eq!(delivered, [ping(1)], "nothing after the bad header");
    }

    #[tokio::test]
    async fn a_body_that_is_no_message_ends_the_connection() {
        let mut garbage = 10u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        garbage.extend_from_slice(&[0xff; 8]); // no such message variant
        let (result, delivered) = read(&between_good_frames(&garbage)).await;
        assert!(
            matches!(
                result,
                Err(ConnectionError::Frame(FrameError::Malformed(_)))
            ),
            "{result:?}"
        );
        assert_eq!(delivered, [ping(1)]);
    }

    #[tokio::test]
    async fn a_frame_of_another_version_ends_the_connection() {
        let mut stale = frame(&ping(7));
        let version = PROTOCOL_VERSION + 1;
        stale[FRAME_HEADER_LENGTH..FRAME_HEADER_LENGTH + 2].copy_from_slice(&version.to_be_bytes());
        let (result, delivered) = read(&between_good_frames(&stale)).await;
        assert!(
            matches!(
                result,
                Err(ConnectionError::Frame(FrameError::UnknownVersion { version: found })) if found == version
            ),
            "{result:?}"
        );
        assert_eq!(delivered, [ping(1)]);
    }

    #[tokio::test]
    async fn bytes_after_the_message_inside_a_frame_end_the_connection() {
        let mut padded = frame(&ping(7));
        padded.push(0);
        let length = u32::try_from(padded.len() - FRAME_HEADER_LENGTH).expect("small");
        padded[..FRAME_HEADER_LENGTH].copy_from_slice(&length.to_be_bytes());
        let (result, delivered) = read(&between_good_frames(&padded)).await;
        assert!(
            matches!(
                result,
                Err(ConnectionError::Frame(FrameError::TrailingBytes {
                    count: 1
                }))
            ),
            "{result:?}"
        );
        assert_eq!(delivered, [ping(1)]);
    }

    #[tokio::test]
    async fn a_connection_that_ends_inside_a_frame_is_an_error() {
        let whole = frame(&ping(7));
        for cut in [2, FRAME_HEADER_LENGTH + 1] {
            let mut bytes = frame(&ping(1));
            bytes.extend_from_slice(&whole[..cut]);
            let (result, delivered) = read(&bytes).await;
            assert!(
                matches!(&result, Err(ConnectionError::Io(error)) if error.kind() == io::ErrorKind::UnexpectedEof),
                "cut at {cut}: {result:?}"
            );
            assert_eq!(delivered, [ping(1)], "cut at {cut}");
        }
    }
}
