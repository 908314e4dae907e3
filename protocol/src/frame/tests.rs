use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::ids::Term;
use crate::message::{Ping, Pong};

fn ping() -> Message {
    Message::Ping(Ping {
        term: Term(7),
        sequence: 300,
    })
}

/// A frame with the given header length, version and body bytes.
fn frame(length: u32, version: u16, body: &[u8]) -> Vec<u8> {
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn a_frame_round_trips() {
    let bytes = encode_frame(&ping()).expect("encodes");
    assert_eq!(
        usize::try_from(u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"))).expect("fits"),
        bytes.len() - FRAME_HEADER_LENGTH
    );
    assert_eq!(decode_frame(&bytes), Ok(ping()));
}

#[test]
fn short_frames_are_refused() {
    assert_eq!(
        decode_frame(&[]),
        Err(FrameError::Short { length: 0, min: 4 })
    );
    assert_eq!(
        decode_frame(&[0, 0, 0]),
        Err(FrameError::Short { length: 3, min: 4 })
    );
    // A header declaring a body too small to hold a version.
    assert_eq!(
        decode_frame(&[0, 0, 0, 1, 0]),
        Err(FrameError::Short { length: 1, min: 2 })
    );
    assert_eq!(
        decode_body(&[1]),
        Err(FrameError::Short { length: 1, min: 2 })
    );
}

#[test]
fn truncated_frames_are_refused() {
    let bytes = encode_frame(&ping()).expect("encodes");
    let cut = &bytes[..bytes.len() - 1];
    assert_eq!(
        decode_frame(cut),
        Err(FrameError::Truncated {
            length: bytes.len() - 4,
            available: bytes.len() - 5,
        })
    );
}

#[test]
fn oversized_frames_are_refused_from_the_header_alone() {
    let declared = u32::try_from(FRAME_LENGTH_MAX + 1).expect("fits");
    assert_eq!(
        decode_frame(&declared.to_be_bytes()),
        Err(FrameError::Oversized {
            length: FRAME_LENGTH_MAX + 1,
            max: FRAME_LENGTH_MAX,
        })
    );
    assert_eq!(
        frame_length(u32::MAX.to_be_bytes(), 1024),
        Err(FrameError::Oversized {
            length: usize::try_from(u32::MAX).expect("fits"),
            max: 1024,
        })
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut after_frame = encode_frame(&ping()).expect("encodes");
    after_frame.push(0);
    assert_eq!(
        decode_frame(&after_frame),
        Err(FrameError::TrailingBytes { count: 1 })
    );

    // Garbage inside the declared body, after a complete message.
    let mut message = postcard::to_allocvec(&ping()).expect("encodes");
    message.extend_from_slice(&[0xde, 0xad]);
    let length = u32::try_from(message.len() + 2).expect("fits");
    assert_eq!(
        decode_frame(&frame(length, PROTOCOL_VERSION, &message)),
        Err(FrameError::TrailingBytes { count: 2 })
    );
}

#[test]
fn unknown_versions_are_refused_before_the_body_is_read() {
    // The body is garbage: the version check must come first.
    assert_eq!(
        decode_frame(&frame(4, 99, &[0xff, 0xff])),
        Err(FrameError::UnknownVersion { version: 99 })
    );
}

#[test]
fn malformed_bodies_are_refused() {
    // Variant tag 200 does not exist.
    assert!(matches!(
        decode_frame(&frame(3, PROTOCOL_VERSION, &[200])),
        Err(FrameError::Malformed(_))
    ));
    // A ping whose varint sequence is cut off.
    assert!(matches!(
        decode_frame(&frame(5, PROTOCOL_VERSION, &[0, 7, 0x80])),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn a_list_claiming_more_elements_than_its_bound_fails_without_allocating_for_them() {
    // A varint length of 2^62 elements followed by nothing.
    let bytes = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    let decoded = postcard::from_bytes::<crate::bounded::BoundedVec<u64, 8>>(&bytes);
    assert!(decoded.is_err());
    let decoded = postcard::from_bytes::<crate::resources::Resources>(&bytes);
    assert!(decoded.is_err());
}

/// Found by the frame fuzzer (seed 1, iteration 376): an overlong varint is accepted, and the
/// message it gives re-encodes canonically.
#[test]
fn an_overlong_varint_decodes_to_the_canonical_message() {
    let overlong = [0, 0, 0, 6, 0, 1, 1, 0, 206, 0];
    let message = decode_frame(&overlong).expect("postcard reads overlong varints");
    assert_eq!(
        message,
        Message::Pong(Pong {
            term: Term(0),
            sequence: 78
        })
    );
    assert_eq!(encode_frame(&message), Ok(vec![0, 0, 0, 5, 0, 1, 1, 0, 78]));
}

fn arbitrary_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(term, sequence)| Message::Ping(Ping {
            term: Term(term),
            sequence
        })),
        (any::<u64>(), any::<u64>()).prop_map(|(term, sequence)| Message::Pong(Pong {
            term: Term(term),
            sequence
        })),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(message in arbitrary_message()) {
        let bytes = encode_frame(&message).expect("encodes");
        prop_assert_eq!(decode_frame(&bytes), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_frame(&bytes);
        let _ = decode_body(&bytes);
    }

    #[test]
    fn every_strict_prefix_of_a_frame_is_refused(message in arbitrary_message()) {
        let bytes = encode_frame(&message).expect("encodes");
        for end in 0..bytes.len() {
            prop_assert!(decode_frame(&bytes[..end]).is_err());
        }
    }
}
