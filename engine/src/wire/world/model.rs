//! The `world.tick` model both encodings share. Plain data, no I/O and no engine types, so
//! the binary codec and this model can also be compiled into a test client.

/// One zone's delta frame for one broadcast tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorldTick {
    /// The zone's grid coordinates.
    pub(crate) zone: (i32, i32),
    /// Its position in the zone's sequence, or none (the leave-removal frame).
    pub(crate) seq: Seq,
    /// A keyframe: a complete baseline, all adds.
    pub(crate) kf: bool,
    /// The zone's tick number (informational; `frame_seq` detects loss, not this).
    pub(crate) tick: u64,
    pub(crate) records: Vec<Record>,
}

/// Whether a frame holds a place in its zone's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seq {
    /// `frame_seq`, contiguous per zone; a client drops a frame at or below its high-water mark.
    Sequenced(u64),
    /// Applied without the sequence check: the removals a client gets for a zone it leaves.
    Ungated,
}

/// What a record does to the client's per-zone entity table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// The entity enters the table with every field (and binds its slot).
    Add,
    /// The changed fields of an entity already in the table.
    Update,
    /// The entity leaves the table.
    Remove,
}

/// One entity's change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) op: Op,
    /// The entity id (a decoded binary frame carries it on adds only; it is empty otherwise).
    pub(crate) id: String,
    /// The entity's slot in its zone's [`Slots`].
    pub(crate) slot: u16,
    /// The slot's generation (advances each time the slot is bound to another entity).
    pub(crate) gen: u8,
    /// Field name and value; empty on a removal.
    pub(crate) fields: Vec<(String, Value)>,
}

/// A field value: the six kinds the binary wire carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A number with a fractional part or a Lua float: `float32` on the binary wire.
    Float(f64),
    /// A Lua integer: `int32` on the binary wire (one outside `i32` refuses the binary frame).
    Int(i64),
    Bool(bool),
    Str(String),
    Null,
}
