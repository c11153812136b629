//! etcd under the engine seam: the state of several controllers in one etcd cluster.
//!
//! A tree's key `k` is stored as `<prefix><tree>/<k>` (the prefix `/boltfleet/` by default);
//! tree names are fixed strings of the store, and names starting with `_` are kept for the
//! engine's own keys (`<prefix>_ids/`, `<prefix>_leader`, `<prefix>_presence/`). Each
//! call is one etcd request with a deadline, made on the engine's own thread
//! ([`bridge`]): callers are on blocking threads, as for sled.
//!
//! - scans are paged ([`PAGE`] keys per range request), so a tree of 50,000 hosts never comes
//!   back in one response;
//! - a batch is one transaction, bounded like etcd's ([`LIMIT`]); its operations are reduced
//!   to the last one per key first (a transaction may not touch a key twice);
//! - compare-and-swap is a transaction comparing the value (absent: `create_revision == 0`);
//! - ids are etcd revisions (of a put to `<prefix>_ids/counter`) plus a floor that a migration
//!   from sled raises above the ids sled gave: they grow across restarts and controllers;
//! - `flush` does nothing: an acknowledged etcd write is already durable on a quorum;
//! - a request a member refused to connect for is tried on another (it never reached etcd);
//!   one whose deadline passed is an error of unknown outcome, as with any remote store: etcd
//!   may still apply it (a proposal waiting for a quorum or a new leader), so callers read
//!   again rather than assume it was lost.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, LeaseClient,
    TxnOp, TxnOpResponse, WatchClient,
};

mod bridge;
mod election;
pub use election::{Campaign, LEASE_TTL};
pub mod feed;
mod members;
pub mod presence;
pub use members::MemberStatus;
mod scan;

use self::bridge::{describe, retried, Bridge, CallError};
use self::scan::range_of;
use super::engine::{Batch, BatchLimit, Engine, EngineError, Scan, Tree};
use super::fence::{self, Fence};

const ENGINE: &str = "etcd";

/// Keys per range request of a scan.
pub const PAGE: i64 = 500;

/// What one batch may hold: etcd's default `--max-txn-ops` (128), and 1 MiB of keys and
/// values, which leaves room under its default `--max-request-bytes` (1.5 MiB) for the
/// prefixes and the request's framing.
pub const LIMIT: BatchLimit = BatchLimit {
    ops: 128,
    bytes: 1024 * 1024,
};

/// Deadline of each request (and of connecting) unless the options say otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response the client decodes: a page of large values (the engine halves its
/// page when one is larger still).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where the etcd cluster is and how to reach it.
#[derive(Clone)]
pub struct EtcdOptions {
    /// Client URLs, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Every key starts with it; starts and ends with `/`.
    pub prefix: String,
    /// TLS to etcd (with `https://` endpoints).
    pub tls: Option<EtcdTls>,
    /// Deadline of connecting and of each request.
    pub timeout: Duration,
}

/// TLS to etcd: the CA that signed the members' certificates, and the controller's client
/// certificate and key when etcd asks for one (`--client-cert-auth`).
#[derive(Clone)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

/// The engine's connection, shared by its trees.
struct Inner {
    bridge: Bridge,
    kv: KvClient,
    lease: LeaseClient,
    watch: WatchClient,
    /// For `cluster status`: each endpoint is asked on its own.
    endpoints: Vec<String>,
    connect: ConnectOptions,
    /// The revision of this controller's last write of each key the feed has not delivered
    /// back yet: the feed skips those events and older ones of the same key, which this
    /// controller's memory is already past ([`feed`]).
    written: Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, i64>>>,
    /// A feed runs (only then are writes noted).
    feeding: std::sync::atomic::AtomicBool,
    prefix: Vec<u8>,
    /// The endpoints, for errors.
    at: String,
    timeout: Duration,
    /// Tries of one request when a member refuses the connection ([`bridge::retried`]).
    attempts: usize,
    /// Whether calls get answers ([`crate::state::health`]), updated by [`Inner::call`].
    health: Arc<crate::state::health::Health>,
}

impl Inner {
    fn error(&self, what: impl std::fmt::Display, err: impl std::fmt::Display) -> EngineError {
        EngineError::new(ENGINE, format!("etcd at {}: {what}: {err}", self.at))
    }

    fn failed(&self, what: impl std::fmt::Display, err: CallError) -> EngineError {
        self.error(what, describe(&err))
    }

    /// Runs one request on the engine's thread ([`bridge::retried`]), within the deadline.
    fn call<T, F, Fut>(&self, what: impl std::fmt::Display, request: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(KvClient) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let attempts = self.attempts;
        let answer = self
            .bridge
            .call(self.timeout, retried(self.kv.clone(), attempts, request));
        match &answer {
            Ok(_) => self.health.succeeded(),
            Err(_) => self.health.failed(jiff::Timestamp::now()),
        }
        answer.map_err(|err| self.failed(what, err))
    }

    /// Notes that this controller wrote `keys` at `revision`.
    fn wrote<'a>(&self, keys: impl IntoIterator<Item = &'a Vec<u8>>, revision: i64) {
        if revision <= 0 || !self.feeding.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            let at = written.entry(key.clone()).or_insert(revision);
            *at = (*at).max(revision);
        }
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }
}

/// An etcd cluster under a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct EtcdEngine {
    inner: Arc<Inner>,
}

impl EtcdEngine {
    /// Connects to `options.endpoints` and checks that the cluster answers (a read that needs
    /// a quorum), within the deadline.
    pub fn open(options: &EtcdOptions) -> Result<Self, EngineError> {
        Self::open_decoding(options, MAX_RESPONSE_BYTES)
    }

    /// [`EtcdEngine::open`], decoding answers of at most `max_response` bytes.
    fn open_decoding(options: &EtcdOptions, max_response: usize) -> Result<Self, EngineError> {
        let at = options.endpoints.join(",");
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            EngineError::new(ENGINE, format!("etcd at {at}: {what}: {err}"))
        };
        let call_failed = |what: &str, err: CallError| failed(what, &describe(&err));
        let prefix = &options.prefix;
        if !(prefix.starts_with('/') && prefix.ends_with('/')) {
            return Err(failed(
                "prefix",
                &format!("{prefix:?} must start and end with /"),
            ));
        }
        let bridge = Bridge::start().map_err(|err| failed("engine thread", &err))?;
        // The per-request deadline is the bridge's (one text for every timeout).
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.timeout)
            .with_keep_alive(Duration::from_secs(10), options.timeout);
        if let Some(tls) = &options.tls {
            let mut config = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        let endpoints = options.endpoints.clone();
        let client = bridge
            .call(
                options.timeout,
                Client::connect(endpoints, Some(connect.clone())),
            )
            .map_err(|err| call_failed("connect", err))?;
        let kv = client.kv_client().max_decoding_message_size(max_response);
        let engine = Self {
            inner: Arc::new(Inner {
                bridge,
                kv,
                lease: client.lease_client(),
                watch: client.watch_client(),
                endpoints: options.endpoints.clone(),
                connect: connect.clone(),
                written: Arc::default(),
                feeding: std::sync::atomic::AtomicBool::new(false),
                prefix: prefix.as_bytes().to_vec(),
                at,
                timeout: options.timeout,
                attempts: 2 * options.endpoints.len() + 1,
                health: Arc::new(crate::state::health::Health::new(ENGINE)),
            }),
        };
        engine.id_floor("check that the cluster answers")?;
        Ok(engine)
    }

    /// The endpoints, comma-separated (for logs).
    pub fn endpoints(&self) -> &str {
        &self.inner.at
    }

    /// How many keys the prefix holds (any tree's, and the engine's own).
    pub fn keys_under_prefix(&self) -> Result<i64, EngineError> {
        let range = range_of(&self.inner.prefix);
        let start = self.inner.prefix.clone();
        self.inner.call("count keys", move |mut kv| {
            let options = GetOptions::new()
                .with_range(range.clone())
                .with_count_only();
            let start = start.clone();
            async move { Ok(kv.get(start, Some(options)).await?.count()) }
        })
    }

    /// Makes every id from now on greater than `floor` (a migration's last sled id). The
    /// floor only goes up.
    pub fn raise_ids_above(&self, floor: u64) -> Result<(), EngineError> {
        if self.id_floor("read the id floor")? >= floor {
            return Ok(());
        }
        let key = self.inner.key(&[IDS_FLOOR]);
        self.inner.call("raise the id floor", move |mut kv| {
            let key = key.clone();
            async move { kv.put(key, floor.to_string(), None).await.map(drop) }
        })
    }

    /// The floor ids start above (0 unless raised).
    fn id_floor(&self, what: &str) -> Result<u64, EngineError> {
        let key = self.inner.key(&[IDS_FLOOR]);
        let value = self.inner.call(what, move |kv| get(kv, key.clone()))?;
        value.map_or(Ok(0), |v| self.parse_floor(&v))
    }

    fn parse_floor(&self, value: &[u8]) -> Result<u64, EngineError> {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                self.inner.error(
                    "read the id floor",
                    format!("{:?} is not a number", String::from_utf8_lossy(value)),
                )
            })
    }
}

const IDS_COUNTER: &[u8] = b"_ids/counter";
const IDS_FLOOR: &[u8] = b"_ids/floor";

/// Why a tree name cannot be a tree of this engine, if it cannot.
fn check_tree_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if name.is_empty() || name.len() > 64 {
        Err(format!("tree name {name:?}: 1 to 64 characters"))
    } else if name.starts_with('_') {
        Err(format!(
            "tree name {name:?}: names starting with _ are the engine's own"
        ))
    } else if !name.chars().all(fine) {
        Err(format!("tree name {name:?}: letters, digits, _ - . only"))
    } else {
        Ok(())
    }
}

impl Engine for EtcdEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn tree(&self, name: &str) -> Result<Arc<dyn Tree>, EngineError> {
        check_tree_name(name).map_err(|err| self.inner.error("open tree", err))?;
        Ok(Arc::new(EtcdTree {
            name: name.to_string(),
            keys: self.inner.key(&[name.as_bytes(), b"/"]),
            inner: self.inner.clone(),
        }))
    }

    fn generate_id(&self) -> Result<u64, EngineError> {
        let counter = self.inner.key(&[IDS_COUNTER]);
        let floor = self.inner.key(&[IDS_FLOOR]);
        let (revision, floor) = self.inner.call("generate an id", move |mut kv| {
            let txn = etcd_client::Txn::new().and_then([
                TxnOp::put(counter.clone(), Vec::new(), None),
                TxnOp::get(floor.clone(), None),
            ]);
            async move {
                let response = kv.txn(txn).await?;
                let revision = response.header().map_or(0, |h| h.revision());
                let floor = response.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Get(mut got) => got.take_kvs().pop(),
                    _ => None,
                });
                Ok((revision, floor.map(|kv| kv.into_key_value().1)))
            }
        })?;
        let floor = floor.map_or(Ok(0), |v| self.parse_floor(&v))?;
        let revision = u64::try_from(revision)
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| {
                self.inner
                    .error("generate an id", "no revision in the answer")
            })?;
        Ok(floor + revision)
    }

    /// An acknowledged etcd write is durable on a quorum already.
    fn flush(&self) -> Result<(), EngineError> {
        Ok(())
    }

    fn health(&self) -> Option<Arc<crate::state::health::Health>> {
        Some(self.inner.health.clone())
    }
}

/// One tree: the keys under `<prefix><name>/`.
struct EtcdTree {
    name: String,
    /// `<prefix><name>/`, the start of every key of this tree.
    keys: Vec<u8>,
    inner: Arc<Inner>,
}

impl EtcdTree {
    /// Applies `ops` in one transaction that first checks `fence` (the leader key still has
    /// the revision this controller created it at); refused, nothing written, when it does not.
    fn fenced(
        &self,
        op: &str,
        fence: Fence,
        keys: &[Vec<u8>],
        ops: Vec<TxnOp>,
    ) -> Result<(), EngineError> {
        let compare = fence_compare(&fence);
        let (held, revision) = self.inner.call(self.what(op), move |mut kv| {
            let txn = etcd_client::Txn::new()
                .when([compare.clone()])
                .and_then(ops.clone());
            async move {
                let done = kv.txn(txn).await?;
                Ok((done.succeeded(), revision_of(done.header())))
            }
        })?;
        if !held {
            let why = "refused: this controller no longer leads the scheduler (its lease ended)";
            return Err(self.inner.error(self.what(op), why));
        }
        self.inner.wrote(keys, revision);
        Ok(())
    }

    fn get_full(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, EngineError> {
        self.inner
            .call(self.what("get"), move |kv| get(kv, key.clone()))
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.keys.clone();
        full.extend_from_slice(key);
        full
    }

    fn what(&self, op: &str) -> String {
        format!("{op} in tree {}", self.name)
    }
}

impl Tree for EtcdTree {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let key = self.full(key);
        self.inner
            .call(self.what("get"), move |kv| get(kv, key.clone()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        let (key, value) = (self.full(key), value.to_vec());
        if let Some(fence) = fence::current() {
            let keys = [key.clone()];
            return self.fenced("put", fence, &keys, vec![TxnOp::put(key, value, None)]);
        }
        let at = key.clone();
        let revision = self.inner.call(self.what("put"), move |mut kv| {
            let (key, value) = (key.clone(), value.clone());
            async move { Ok(revision_of(kv.put(key, value, None).await?.header())) }
        })?;
        self.inner.wrote([&at], revision);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let key = self.full(key);
        if let Some(fence) = fence::current() {
            let old = self.get_full(key.clone())?;
            let keys = [key.clone()];
            self.fenced("delete", fence, &keys, vec![TxnOp::delete(key, None)])?;
            return Ok(old);
        }
        let at = key.clone();
        let (old, revision) = self.inner.call(self.what("delete"), move |mut kv| {
            let key = key.clone();
            async move {
                let options = DeleteOptions::new().with_prev_key();
                let mut deleted = kv.delete(key, Some(options)).await?;
                let revision = revision_of(deleted.header());
                let old = deleted
                    .take_prev_kvs()
                    .pop()
                    .map(|kv| kv.into_key_value().1);
                Ok((old, revision))
            }
        })?;
        self.inner.wrote([&at], revision);
        Ok(old)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        scan::scan(self, self.full(prefix))
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        if !LIMIT.admits(&batch) {
            let size = format!("{} operations, {} bytes", batch.len(), batch.bytes());
            let why = format!("a batch of {size} is more than one transaction takes ({LIMIT})");
            return Err(self.inner.error(self.what("apply"), why));
        }
        // The last operation on each key is what the batch leaves there.
        let last: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = batch.into_ops().collect();
        if last.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = last.keys().map(|key| self.full(key)).collect();
        let ops: Vec<TxnOp> = last
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => TxnOp::put(self.full(&key), value, None),
                None => TxnOp::delete(self.full(&key), None),
            })
            .collect();
        if let Some(fence) = fence::current() {
            return self.fenced("apply", fence, &keys, ops);
        }
        let revision = self.inner.call(self.what("apply"), move |mut kv| {
            let txn = etcd_client::Txn::new().and_then(ops.clone());
            async move { Ok(revision_of(kv.txn(txn).await?.header())) }
        })?;
        self.inner.wrote(&keys, revision);
        Ok(())
    }

    fn batch_limit(&self) -> BatchLimit {
        LIMIT
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, EngineError> {
        let key = self.full(key);
        let when = match old {
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Some(old) => Compare::value(key.clone(), CompareOp::Equal, old),
        };
        let at = key.clone();
        let then = match new {
            Some(new) => TxnOp::put(key, new, None),
            None => TxnOp::delete(key, None),
        };
        let fence = fence::current();
        let compares: Vec<Compare> = fence.iter().map(fence_compare).chain([when]).collect();
        let (swapped, revision) =
            self.inner
                .call(self.what("compare and swap"), move |mut kv| {
                    let txn = etcd_client::Txn::new()
                        .when(compares.clone())
                        .and_then([then.clone()]);
                    async move {
                        let done = kv.txn(txn).await?;
                        Ok((done.succeeded(), revision_of(done.header())))
                    }
                })?;
        if swapped {
            self.inner.wrote([&at], revision);
        }
        // Not swapped: because the value differs, or because the fence no longer holds.
        if let (false, Some(fence)) = (swapped, fence) {
            self.fenced("compare and swap", fence, &[], vec![])?;
        }
        Ok(swapped)
    }

    fn flush(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The transaction's check of `fence`: the leader key still has its creation revision.
fn fence_compare(fence: &Fence) -> Compare {
    Compare::create_revision(fence.key.clone(), CompareOp::Equal, fence.revision)
}

/// The revision a write's answer carries (0 when it carries none).
fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// The value of `key`, if it has one.
async fn get(mut kv: KvClient, key: Vec<u8>) -> Result<Option<Vec<u8>>, etcd_client::Error> {
    let mut got = kv.get(key, None).await?;
    Ok(got.take_kvs().pop().map(|kv| kv.into_key_value().1))
}

#[cfg(test)]
mod election_tests;
#[cfg(test)]
pub(crate) mod tests;
