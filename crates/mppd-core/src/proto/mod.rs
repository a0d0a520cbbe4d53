//! Wire types: how inbound frames are read and outbound messages are written, and the
//! validation rules for strings, colours and numbers (PROTOCOL.md §1, §4–§6).

pub mod inbound;
pub mod outbound;
pub mod validate;
