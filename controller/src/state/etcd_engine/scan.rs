//! Scans of an etcd tree: one range request per page of keys, in key order, the page halved
//! while its answer is too large to decode.

use etcd_client::GetOptions;

use super::bridge::{retried, CallError};
use super::{EtcdTree, PAGE};
use crate::state::engine::{EngineError, Entry, Scan};

/// The scan of the keys of `tree` that start with `start` (its full key).
pub(super) fn scan(tree: &EtcdTree, start: Vec<u8>) -> Scan<'_> {
    let end = range_of(&start);
    Box::new(Pages {
        tree,
        from: Some(start),
        end,
        limit: PAGE,
        page: Vec::new().into_iter(),
    })
}

/// The end of the range of keys starting with `prefix` (exclusive): the prefix with its last
/// byte below 0xff incremented, past it cut off.
pub(super) fn range_of(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

/// A scan, one range request per page of keys.
struct Pages<'a> {
    tree: &'a EtcdTree,
    /// The first key of the next page; `None` when the scan is done (or failed).
    from: Option<Vec<u8>>,
    end: Vec<u8>,
    limit: i64,
    page: std::vec::IntoIter<Entry>,
}

impl Pages<'_> {
    /// Reads the page starting at `from`; halves the page while its answer is too large.
    fn fetch(&mut self, from: Vec<u8>) -> Result<(), EngineError> {
        loop {
            let (start, end, limit) = (from.clone(), self.end.clone(), self.limit);
            let inner = &self.tree.inner;
            let page = retried(inner.kv.clone(), inner.attempts, move |mut kv| {
                let options = GetOptions::new().with_range(end.clone()).with_limit(limit);
                let start = start.clone();
                async move {
                    let mut got = kv.get(start, Some(options)).await?;
                    Ok((got.more(), got.take_kvs()))
                }
            });
            let got = inner.bridge.call(inner.timeout, page);
            let (more, kvs) = match got {
                Err(CallError::Etcd(etcd_client::Error::GRpcStatus(status)))
                    if too_large(&status) && self.limit > 1 =>
                {
                    self.limit = (self.limit / 2).max(1);
                    continue;
                }
                got => got.map_err(|err| self.tree.inner.failed(self.tree.what("scan"), err))?,
            };
            let strip = self.tree.keys.len();
            if more {
                self.from = kvs.last().map(|kv| [kv.key(), &[0]].concat());
            }
            let entries: Vec<Entry> = kvs
                .into_iter()
                .map(|kv| {
                    let (mut key, value) = kv.into_key_value();
                    key.drain(..strip);
                    (key, value)
                })
                .collect();
            self.page = entries.into_iter();
            return Ok(());
        }
    }
}

/// An answer the client refused for its size.
fn too_large(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
}

impl Iterator for Pages<'_> {
    type Item = Result<Entry, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.page.next() {
                return Some(Ok(entry));
            }
            let from = self.from.take()?;
            if let Err(err) = self.fetch(from) {
                return Some(Err(err));
            }
        }
    }
}
