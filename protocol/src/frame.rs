//! Framing: how a [`Message`] is laid out on a byte stream.
//!
//! ```text
//! +-------------------+--------------------+--------------------------------+
//! | length: u32, BE   | version: u16, BE   | postcard(Message)              |
//! +-------------------+--------------------+--------------------------------+
//!  4 bytes             `length` bytes: the version and the message
//! ```
//!
//! The version comes first and is fixed-size, so a frame of an unknown version is refused
//! without decoding its body. A reader checks the declared length against
//! [`FRAME_LENGTH_MAX`] from the 4-byte header alone ([`frame_length`]), before it buffers
//! anything, so a peer cannot make it allocate more than one maximum-size frame. Decoding is
//! strict: a short, truncated, oversized, unknown-version or malformed frame, or one with
//! bytes after its message, is a typed [`FrameError`], never a panic.
//!
//! Decoding is not *canonical*: postcard accepts overlong varints (`0xce 0x00` reads as 78),
//! so two byte strings can decode to one message. Nothing in Berth compares or authenticates
//! encoded frames (the transport authenticates the connection), so this is harmless; the
//! fuzzer checks the property that matters, that every accepted message round-trips.

use alloc::vec::Vec;
use core::fmt;

use crate::message::Message;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes in the length header.
pub const FRAME_HEADER_LENGTH: usize = 4;
/// Bytes in the version field.
pub const VERSION_LENGTH: usize = 2;
/// The largest frame body (version and message) accepted, in bytes: 16 MiB, enough for an
/// agent re-registering with tens of thousands of tasks.
pub const FRAME_LENGTH_MAX: usize = 16 * 1024 * 1024;

/// Encodes `message` as one frame.
pub fn encode_frame(message: &Message) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&[0; FRAME_HEADER_LENGTH]);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    let mut frame = postcard::to_extend(message, frame).map_err(|_| FrameError::Encode)?;
    let length = frame.len() - FRAME_HEADER_LENGTH;
    if length > FRAME_LENGTH_MAX {
        return Err(FrameError::Oversized {
            length,
            max: FRAME_LENGTH_MAX,
        });
    }
    let header = u32::try_from(length).expect("FRAME_LENGTH_MAX fits in u32");
    frame[..FRAME_HEADER_LENGTH].copy_from_slice(&header.to_be_bytes());
    Ok(frame)
}

/// Reads the body length from a frame header, refusing it if it exceeds `max`.
pub fn frame_length(header: [u8; FRAME_HEADER_LENGTH], max: usize) -> Result<usize, FrameError> {
    let length = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if length > max {
        return Err(FrameError::Oversized { length, max });
    }
    if length < VERSION_LENGTH {
        return Err(FrameError::Short {
            length,
            min: VERSION_LENGTH,
        });
    }
    Ok(length)
}

/// Decodes a frame body (the bytes after the header): version, then exactly one message.
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    let (version, message) = body
        .split_at_checked(VERSION_LENGTH)
        .ok_or(FrameError::Short {
            length: body.len(),
            min: VERSION_LENGTH,
        })?;
    let version = u16::from_be_bytes([version[0], version[1]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnknownVersion { version });
    }
    let (message, rest) =
        postcard::take_from_bytes::<Message>(message).map_err(FrameError::Malformed)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { count: rest.len() });
    }
    Ok(message)
}

/// Decodes `bytes` as exactly one whole frame, with the default [`FRAME_LENGTH_MAX`].
pub fn decode_frame(bytes: &[u8]) -> Result<Message, FrameError> {
    let (header, body) =
        bytes
            .split_first_chunk::<FRAME_HEADER_LENGTH>()
            .ok_or(FrameError::Short {
                length: bytes.len(),
                min: FRAME_HEADER_LENGTH,
            })?;
    let length = frame_length(*header, FRAME_LENGTH_MAX)?;
    if body.len() < length {
        return Err(FrameError::Truncated {
            length,
            available: body.len(),
        });
    }
    if body.len() > length {
        return Err(FrameError::TrailingBytes {
            count: body.len() - length,
        });
    }
    decode_body(body)
}

/// Why a frame could not be encoded or decoded. Every decoding error is the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the smallest valid frame part (`min`).
    Short {
        /// Bytes present.
        length: usize,
        /// Bytes needed.
        min: usize,
    },
    /// The header declares more bytes than arrived.
    Truncated {
        /// The declared body length.
        length: usize,
        /// Bytes present after the header.
        available: usize,
    },
    /// The declared (or encoded) body length exceeds the maximum.
    Oversized {
        /// The body length.
        length: usize,
        /// The maximum.
        max: usize,
    },
    /// Bytes follow the message (inside the body, or after the frame).
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The frame's protocol version is not [`PROTOCOL_VERSION`].
    UnknownVersion {
        /// The version in the frame.
        version: u16,
    },
    /// The body is not a valid message (bad tag, bad UTF-8, out-of-bounds collection, ...).
    Malformed(postcard::Error),
    /// The message could not be serialized (a bug, not a peer's fault).
    Encode,
}

impl fmt::Display for FrameError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Short { length, min } => {
                write!(
                    formatter,
                    "frame too short: {length} bytes, at least {min} needed"
                )
            }
            FrameError::Truncated { length, available } => write!(
                formatter,
                "frame truncated: header declares {length} bytes, {available} present"
            ),
            FrameError::Oversized { length, max } => {
                write!(
                    formatter,
                    "frame of {length} bytes exceeds the maximum of {max}"
                )
            }
            FrameError::TrailingBytes { count } => {
                write!(formatter, "{count} unexpected bytes after the message")
            }
            FrameError::UnknownVersion { version } => write!(
                formatter,
                "protocol version {version} is not supported (this node speaks {PROTOCOL_VERSION})"
            ),
            FrameError::Malformed(error) => write!(formatter, "malformed message: {error}"),
            FrameError::Encode => formatter.write_str("the message could not be encoded"),
        }
    }
}

impl core::error::Error for FrameError {}

#[cfg(test)]
mod tests;
