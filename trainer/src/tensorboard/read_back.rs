//! Tests' reader of the event files `tensorboard.rs` writes: the TFRecord framing with its
//! masked CRCs checked, and the protobuf fields written decoded (TensorBoard itself is the oracle
//! in tests/tensorboard_events.rs).

use std::path::Path;

use super::masked_crc32c;

/// One decoded event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ReadEvent {
    pub step: u64,
    pub file_version: Option<String>,
    pub session_start: bool,
    pub scalars: Vec<(String, f32)>,
}

/// Reads back every event of the file at `path`, checking each record's framing and CRCs.
pub(crate) fn read_events(path: &Path) -> Vec<ReadEvent> {
    let bytes = std::fs::read(path).unwrap();
    let crc_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let (mut events, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        let length = &bytes[at..at + 8];
        assert_eq!(crc_at(at + 8), masked_crc32c(length), "length CRC at {at}");
        let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
        let data = &bytes[at + 12..at + 12 + n];
        assert_eq!(crc_at(at + 12 + n), masked_crc32c(data), "data CRC at {at}");
        events.push(decode_event(data));
        at += 16 + n;
    }
    events
}

fn read_varint(data: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = data[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

/// The fields of a protobuf message: `(number, varint value, bytes of any other wire type)`.
fn fields(data: &[u8]) -> Vec<(u64, u64, &[u8])> {
    let (mut out, mut at) = (Vec::new(), 0);
    while at < data.len() {
        let key = read_varint(data, &mut at);
        let len = match key & 7 {
            0 => {
                out.push((key >> 3, read_varint(data, &mut at), &data[at..at]));
                continue;
            }
            1 => 8,
            2 => read_varint(data, &mut at) as usize,
            5 => 4,
            wire => panic!("wire type {wire}"),
        };
        out.push((key >> 3, 0, &data[at..at + len]));
        at += len;
    }
    out
}

fn decode_event(data: &[u8]) -> ReadEvent {
    let mut event = ReadEvent::default();
    for (number, value, bytes) in fields(data) {
        match number {
            1 => assert_eq!(bytes.len(), 8, "wall_time is a double"),
            2 => event.step = value,
            3 => event.file_version = Some(String::from_utf8(bytes.to_vec()).unwrap()),
            5 => {
                for (_, _, entry) in fields(bytes) {
                    let parts = fields(entry);
                    let [(1, _, tag), (2, _, value)] = parts[..] else {
                        panic!("Summary.Value {parts:?}");
                    };
                    let value = f32::from_le_bytes(value.try_into().unwrap());
                    (event.scalars).push((String::from_utf8(tag.to_vec()).unwrap(), value));
                }
            }
            7 => event.session_start = matches!(fields(bytes)[..], [(1, 1, _)]),
            other => panic!("unexpected Event field {other}"),
        }
    }
    event
}
