//! asobi's binary `world.tick`: little-endian, a per-frame field-name dictionary, 2-byte slots.
//!
//! ```text
//! frame   kind:u8 zx:i32 zy:i32 frame_seq:u64 kf:u8 tick:u64 dict_len:u8 dict rec_count:u16 records
//! dict    dict_len × (len:u8 name)                       at most 32 names
//! record  op:u8 slot:u16 gen:u8 [id_len:u8 id]? field_count:u8 fields     (id on op 0 only)
//! field   type:3 idx:5 (one byte), then the value
//! ```
//!
//! kind 1 sequenced, 2 ungated (frame_seq written as 0); op 0 add, 1 update, 2 remove; type 0
//! f32, 1 i32, 2 true, 3 false, 4 string (len:u16 + UTF-8), 5 null. The dictionary lists the
//! distinct field names in order of first appearance across the records.
//!
//! Encode refuses what the layout cannot count (it never truncates a length); decode is total
//! over arbitrary bytes: every malformed input is a [`DecodeError`], never a panic, and
//! trailing bytes are rejected.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Op, Record, Seq, Value, WorldTick};

const KIND_SEQUENCED: u8 = 1;
const KIND_UNGATED: u8 = 2;
const OP_ADD: u8 = 0;
const OP_UPDATE: u8 = 1;
const OP_REMOVE: u8 = 2;
const T_F32: u8 = 0;
const T_I32: u8 = 1;
const T_TRUE: u8 = 2;
const T_FALSE: u8 = 3;
const T_STR: u8 = 4;
const T_NULL: u8 = 5;

/// Five bits of dictionary index.
pub(crate) const MAX_DICT: usize = 32;
/// A one-byte length prefix.
const MAX_NAME: usize = 255;
const MAX_ID: usize = 255;
/// A two-byte length prefix.
const MAX_STR: usize = 65_535;
const MAX_RECORDS: usize = 65_535;
/// A one-byte field count.
const MAX_FIELDS: usize = 255;
/// kind, zone, frame_seq, kf, tick, dict_len.
const HEADER: usize = 1 + 4 + 4 + 8 + 1 + 8 + 1;

/// Why a tick has no binary form. The frame then goes out as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EncodeError {
    /// More than 32 distinct field names in one frame.
    #[error("more than {MAX_DICT} distinct field names in one frame")]
    DictTooLarge,
    /// A field name longer than 255 bytes.
    #[error("a field name is longer than {MAX_NAME} bytes")]
    FieldNameTooLong,
    /// The same field name twice in one record.
    #[error("field `{0}` appears twice in one record")]
    AmbiguousFieldName(String),
    /// An entity id longer than 255 bytes on an add.
    #[error("an entity id is longer than {MAX_ID} bytes")]
    EntityIdTooLong,
    /// A string value longer than 65,535 bytes.
    #[error("a string value is longer than {MAX_STR} bytes")]
    ValueTooLarge,
    /// An integer outside `i32`.
    #[error("integer {0} does not fit int32")]
    IntOutOfRange(i64),
    /// More than 65,535 records, or more than 255 fields in a record.
    #[error("too many records or fields for one frame")]
    TooMany,
}

/// Why bytes are not a binary `world.tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DecodeError {
    /// The bytes end inside the frame.
    #[error("truncated frame")]
    Truncated,
    /// Bytes follow the last record.
    #[error("trailing bytes after the frame")]
    Trailing,
    /// A kind byte other than 1 or 2.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// An op byte other than 0, 1 or 2.
    #[error("unknown record op {0}")]
    Op(u8),
    /// A value type other than 0–5.
    #[error("unknown value type {0}")]
    Type(u8),
    /// A field index past the frame's dictionary.
    #[error("field index {0} is past the dictionary")]
    Index(u8),
    /// A name, id or string that is not UTF-8.
    #[error("text that is not UTF-8")]
    Utf8,
}

/// Encodes `tick`. Total over any `WorldTick`: what the layout cannot express is an error.
pub(crate) fn encode(tick: &WorldTick) -> Result<Bytes, EncodeError> {
    if tick.records.len() > MAX_RECORDS {
        return Err(EncodeError::TooMany);
    }
    // The dictionary, in first-appearance order. At most 32 entries, so a linear scan beats
    // hashing; each record's fields are mapped to indices here and reused below.
    let mut dict: Vec<&str> = Vec::with_capacity(8);
    let mut size = HEADER + 2;
    for r in &tick.records {
        if r.fields.len() > MAX_FIELDS {
            return Err(EncodeError::TooMany);
        }
        size += 5 + r.fields.len() * 5;
        if r.op == Op::Add {
            if r.id.len() > MAX_ID {
                return Err(EncodeError::EntityIdTooLong);
            }
            size += 1 + r.id.len();
        }
        for (i, (name, value)) in r.fields.iter().enumerate() {
            if !dict.iter().any(|d| *d == name) {
                if name.len() > MAX_NAME {
                    return Err(EncodeError::FieldNameTooLong);
                }
                if dict.len() == MAX_DICT {
                    return Err(EncodeError::DictTooLarge);
                }
                dict.push(name);
                size += 1 + name.len();
            }
            if r.fields[..i].iter().any(|(n, _)| n == name) {
                return Err(EncodeError::AmbiguousFieldName(name.clone()));
            }
            match value {
                Value::Str(s) if s.len() > MAX_STR => return Err(EncodeError::ValueTooLarge),
                Value::Str(s) => size += s.len(),
                Value::Int(n) if i32::try_from(*n).is_err() => {
                    return Err(EncodeError::IntOutOfRange(*n))
                }
                _ => {}
            }
        }
    }
    let mut out = BytesMut::with_capacity(size);
    let (kind, seq) = match tick.seq {
        Seq::Sequenced(n) => (KIND_SEQUENCED, n),
        Seq::Ungated => (KIND_UNGATED, 0),
    };
    out.put_u8(kind);
    out.put_i32_le(tick.zone.0);
    out.put_i32_le(tick.zone.1);
    out.put_u64_le(seq);
    out.put_u8(u8::from(tick.kf));
    out.put_u64_le(tick.tick);
    out.put_u8(dict.len() as u8);
    for name in &dict {
        out.put_u8(name.len() as u8);
        out.put_slice(name.as_bytes());
    }
    out.put_u16_le(tick.records.len() as u16);
    for r in &tick.records {
        out.put_u8(match r.op {
            Op::Add => OP_ADD,
            Op::Update => OP_UPDATE,
            Op::Remove => OP_REMOVE,
        });
        out.put_u16_le(r.slot);
        out.put_u8(r.gen);
        if r.op == Op::Add {
            out.put_u8(r.id.len() as u8);
            out.put_slice(r.id.as_bytes());
        }
        out.put_u8(r.fields.len() as u8);
        for (name, value) in &r.fields {
            // Present: every name went into the dictionary above.
            let idx = dict.iter().position(|d| d == name).unwrap_or(0) as u8;
            let head = |t: u8| (t << 5) | idx;
            match value {
                Value::Float(f) => {
                    out.put_u8(head(T_F32));
                    out.put_f32_le(*f as f32);
                }
                Value::Int(n) => {
                    out.put_u8(head(T_I32));
                    out.put_i32_le(*n as i32);
                }
                Value::Bool(true) => out.put_u8(head(T_TRUE)),
                Value::Bool(false) => out.put_u8(head(T_FALSE)),
                Value::Str(s) => {
                    out.put_u8(head(T_STR));
                    out.put_u16_le(s.len() as u16);
                    out.put_slice(s.as_bytes());
                }
                Value::Null => out.put_u8(head(T_NULL)),
            }
        }
    }
    Ok(out.freeze())
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn text(&mut self, len: usize) -> Result<String, DecodeError> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8)
    }
}

/// Decodes one binary `world.tick`. Records of a decoded frame carry an id on adds only.
pub(crate) fn decode(bytes: &[u8]) -> Result<WorldTick, DecodeError> {
    let mut r = Reader(bytes);
    let kind = r.u8()?;
    let zx = i32::from_le_bytes(r.array()?);
    let zy = i32::from_le_bytes(r.array()?);
    let frame_seq = u64::from_le_bytes(r.array()?);
    let seq = match kind {
        KIND_SEQUENCED => Seq::Sequenced(frame_seq),
        KIND_UNGATED => Seq::Ungated,
        k => return Err(DecodeError::Kind(k)),
    };
    let kf = r.u8()? != 0;
    let tick = u64::from_le_bytes(r.array()?);
    let dict_len = r.u8()?;
    let mut dict = Vec::with_capacity(usize::from(dict_len).min(MAX_DICT));
    for _ in 0..dict_len {
        let len = r.u8()?;
        dict.push(r.text(usize::from(len))?);
    }
    let count = u16::from_le_bytes(r.array()?);
    // Each record is at least five bytes: never reserve more than the input could hold.
    let mut records = Vec::with_capacity(usize::from(count).min(r.0.len() / 5));
    for _ in 0..count {
        let op = match r.u8()? {
            OP_ADD => Op::Add,
            OP_UPDATE => Op::Update,
            OP_REMOVE => Op::Remove,
            o => return Err(DecodeError::Op(o)),
        };
        let slot = u16::from_le_bytes(r.array()?);
        let gen = r.u8()?;
        let id = if op == Op::Add {
            let len = r.u8()?;
            r.text(usize::from(len))?
        } else {
            String::new()
        };
        let nfields = r.u8()?;
        let mut fields = Vec::with_capacity(usize::from(nfields).min(r.0.len()));
        for _ in 0..nfields {
            let head = r.u8()?;
            let (t, idx) = (head >> 5, head & 0x1f);
            let name = dict
                .get(usize::from(idx))
                .ok_or(DecodeError::Index(idx))?
                .clone();
            let value = match t {
                T_F32 => Value::Float(f64::from(f32::from_le_bytes(r.array()?))),
                T_I32 => Value::Int(i64::from(i32::from_le_bytes(r.array()?))),
                T_TRUE => Value::Bool(true),
                T_FALSE => Value::Bool(false),
                T_STR => {
                    let len = u16::from_le_bytes(r.array()?);
                    Value::Str(r.text(usize::from(len))?)
                }
                T_NULL => Value::Null,
                t => return Err(DecodeError::Type(t)),
            };
            fields.push((name, value));
        }
        records.push(Record {
            op,
            id,
            slot,
            gen,
            fields,
        });
    }
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(WorldTick {
        zone: (zx, zy),
        seq,
        kf,
        tick,
        records,
    })
}
