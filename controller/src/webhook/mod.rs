//! Signed webhooks: fleet events POSTed to receivers operators name, from a durable outbox.
//!
//! An event is written to the outbox ([`crate::state::Delivery`], one per webhook it goes to)
//! in the call that records its fact, before that call returns; the [`sender`] task sends what
//! is due, each attempt signed ([`sign`]) and bounded in time ([`post`]), and retries with
//! backoff for a day ([`backoff`]). A delivery is marked delivered, durably, after a 2xx
//! answer. Delivery is at least once: a controller killed between a receiver's 2xx and that
//! mark sends the event again, with the same id (`X-Boltfleet-Delivery`), by which receivers
//! deduplicate. Otherwise a receiver that acknowledged an event never gets it again.
//!
//! [`event`] says which events exist, which webhooks get one, and what document they get.

pub mod backoff;
pub mod event;
pub mod post;
pub mod sender;
pub mod sign;

pub use event::{Event, EventType, Subject};
