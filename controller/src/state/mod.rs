//! The ground of the controller's state: the engine seam ([`engine`]) that the typed store
//! ([`crate::store`]) is written against; sled as its embedded engine ([`sled_engine`]) and etcd
//! as the replicated one for several controllers ([`etcd_engine`]); the `[store]` config that
//! picks one ([`open`]); the suite every engine must pass (`suite`, tests only) and real etcd
//! members for tests (`etcd_member`, also for the end-to-end tests through `testkit`).

pub mod engine;
pub mod etcd_engine;
#[cfg(any(test, feature = "testkit"))]
pub mod etcd_member;
pub mod migrate;
pub mod open;
pub mod sled_engine;
#[cfg(test)]
pub(crate) mod suite;
