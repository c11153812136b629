//! The ground of the controller's state: the engine seam ([`engine`]) that the typed store
//! ([`crate::store`]) is written against, sled as its embedded engine ([`sled_engine`]), and the
//! suite every engine must pass (`suite`, tests only).

pub mod engine;
pub mod sled_engine;
#[cfg(test)]
pub(crate) mod suite;
