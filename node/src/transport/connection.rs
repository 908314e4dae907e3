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
