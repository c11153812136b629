//! etcd under the engine seam: the state of several controllers in one etcd cluster.
//!
//! A tree's key `k` is stored as `<prefix><tree>/<k>` (the prefix `/boltfleet/` by default);
//! tree names are fixed strings of the store, and names starting with `_` are kept for the
//! engine's own keys (`<prefix>_ids/`, and later the controllers' election and presence). Each
//! call is one etcd request with a deadline, made on the engine's own thread
//! ([`super::etcd_bridge`]): callers are on blocking threads, as for sled.
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
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, TxnOp,
    TxnOpResponse,
};

use super::engine::{Batch, BatchLimit, Engine, EngineError, Entry, Scan, Tree};
use super::etcd_bridge::{Bridge, CallError};

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
    prefix: Vec<u8>,
    /// The endpoints, for errors.
    at: String,
    timeout: Duration,
    /// Tries of one request when a member refuses the connection ([`retried`]).
    attempts: usize,
}

impl Inner {
    fn error(&self, what: impl std::fmt::Display, err: impl std::fmt::Display) -> EngineError {
        EngineError::new(ENGINE, format!("etcd at {}: {what}: {err}", self.at))
    }

    fn failed(&self, what: impl std::fmt::Display, err: CallError) -> EngineError {
        self.error(what, describe(&err))
    }

    /// Runs one request on the engine's thread ([`retried`]), within the deadline.
    fn call<T, F, Fut>(&self, what: impl std::fmt::Display, request: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(KvClient) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let attempts = self.attempts;
        self.bridge
            .call(self.timeout, retried(self.kv.clone(), attempts, request))
            .map_err(|err| self.failed(what, err))
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
            .call(options.timeout, Client::connect(endpoints, Some(connect)))
            .map_err(|err| call_failed("connect", err))?;
        let kv = client.kv_client().max_decoding_message_size(max_response);
        let engine = Self {
            inner: Arc::new(Inner {
                bridge,
                kv,
                prefix: prefix.as_bytes().to_vec(),
                at,
                timeout: options.timeout,
                attempts: 2 * options.endpoints.len() + 1,
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
}

/// One tree: the keys under `<prefix><name>/`.
struct EtcdTree {
    name: String,
    /// `<prefix><name>/`, the start of every key of this tree.
    keys: Vec<u8>,
    inner: Arc<Inner>,
}

impl EtcdTree {
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
        self.inner.call(self.what("put"), move |mut kv| {
            let (key, value) = (key.clone(), value.clone());
            async move { kv.put(key, value, None).await.map(drop) }
        })
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let key = self.full(key);
        self.inner.call(self.what("delete"), move |mut kv| {
            let key = key.clone();
            async move {
                let options = DeleteOptions::new().with_prev_key();
                let mut deleted = kv.delete(key, Some(options)).await?;
                Ok(deleted
                    .take_prev_kvs()
                    .pop()
                    .map(|kv| kv.into_key_value().1))
            }
        })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Scan<'_> {
        let start = self.full(prefix);
        let end = range_of(&start);
        Box::new(Pages {
            tree: self,
            from: Some(start),
            end,
            limit: PAGE,
            page: Vec::new().into_iter(),
        })
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
        let ops: Vec<TxnOp> = last
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => TxnOp::put(self.full(&key), value, None),
                None => TxnOp::delete(self.full(&key), None),
            })
            .collect();
        self.inner.call(self.what("apply"), move |mut kv| {
            let txn = etcd_client::Txn::new().and_then(ops.clone());
            async move { kv.txn(txn).await.map(drop) }
        })
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
        let then = match new {
            Some(new) => TxnOp::put(key, new, None),
            None => TxnOp::delete(key, None),
        };
        self.inner
            .call(self.what("compare and swap"), move |mut kv| {
                let txn = etcd_client::Txn::new()
                    .when([when.clone()])
                    .and_then([then.clone()]);
                async move { Ok(kv.txn(txn).await?.succeeded()) }
            })
    }

    fn flush(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The end of the range of keys starting with `prefix` (exclusive): the prefix with its last
/// byte below 0xff incremented, past it cut off.
fn range_of(prefix: &[u8]) -> Vec<u8> {
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

/// The value of `key`, if it has one.
async fn get(mut kv: KvClient, key: Vec<u8>) -> Result<Option<Vec<u8>>, etcd_client::Error> {
    let mut got = kv.get(key, None).await?;
    Ok(got.take_kvs().pop().map(|kv| kv.into_key_value().1))
}

/// Makes `request`, again (up to `attempts` in all) while a member refuses the connection:
/// the request never reached it, so trying it on another member is safe for every request,
/// a transaction's too. The client balances over the endpoints and finds a dead member only
/// by trying it, so without this one request in a few would fail while a member is down.
async fn retried<T, F, Fut>(
    kv: KvClient,
    attempts: usize,
    request: F,
) -> Result<T, etcd_client::Error>
where
    F: Fn(KvClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut tried = 1;
    loop {
        match request(kv.clone()).await {
            Err(err) if tried < attempts && never_sent(&err) => tried += 1,
            result => return result,
        }
    }
}

/// Whether the request failed before it was sent: the connection was refused.
fn never_sent(err: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = err.source();
    }
    false
}

/// A failed call in one line: gRPC's code and message and the innermost cause (not the
/// chain of debug dumps the client's own text carries).
fn describe(err: &CallError) -> String {
    let CallError::Etcd(etcd_client::Error::GRpcStatus(status)) = err else {
        return err.to_string();
    };
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(err) = cause {
        innermost = Some(err);
        cause = err.source();
    }
    if let Some(innermost) = innermost {
        text.push_str(&format!(": {innermost}"));
    }
    text
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use super::*;
    use crate::state::etcd_member::EtcdMember;
    use crate::state::suite::Harness;

    /// The one etcd member of this test binary, started by the first test that needs it;
    /// each test works under a prefix of its own. (Its watchdog ends it with the binary.)
    pub(crate) fn member() -> &'static EtcdMember {
        static MEMBER: OnceLock<EtcdMember> = OnceLock::new();
        MEMBER.get_or_init(|| EtcdMember::single().expect("an etcd member for the tests"))
    }

    /// A prefix no other test of this binary uses.
    pub(crate) fn fresh_prefix() -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        format!("/test{}/", N.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn options(endpoints: Vec<String>, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            prefix: prefix.into(),
            tls: None,
            timeout: TIMEOUT,
        }
    }

    /// The shared member under a prefix of its own, opened again as a restarted controller
    /// would (a new connection to the same keys).
    pub(crate) struct EtcdHarness {
        prefix: String,
    }

    impl EtcdHarness {
        pub(crate) fn new() -> Self {
            Self {
                prefix: fresh_prefix(),
            }
        }
    }

    impl Harness for EtcdHarness {
        fn open(&self) -> Arc<dyn Engine> {
            let options = options(vec![member().endpoint()], &self.prefix);
            Arc::new(EtcdEngine::open(&options).unwrap())
        }
    }

    crate::state::suite::engine_suite!(EtcdHarness::new());

    fn engine(prefix: &str) -> EtcdEngine {
        EtcdEngine::open(&options(vec![member().endpoint()], prefix)).unwrap()
    }

    fn keys(tree: &dyn Tree, prefix: &[u8]) -> Vec<Vec<u8>> {
        tree.scan_prefix(prefix).map(|kv| kv.unwrap().0).collect()
    }

    #[test]
    fn scans_page_through_large_trees_in_key_order() {
        let engine = engine(&fresh_prefix());
        let tree = engine.tree("hosts").unwrap();
        let n = 2 * PAGE as usize + 7;
        let mut all: Vec<Vec<u8>> = (0..n).map(|i| format!("h{i:05}").into_bytes()).collect();
        // Written in reverse, in batches as large as etcd takes.
        let mut batch = Batch::default();
        for key in all.iter().rev() {
            batch.put(key.clone(), b"{}".to_vec());
        }
        for part in batch.split(tree.batch_limit()) {
            tree.apply(part).unwrap();
        }
        // A key just past the prefix's range, and one in a tree whose name extends this one's.
        tree.put(b"i", b"").unwrap();
        engine.tree("hosts2").unwrap().put(b"h0", b"").unwrap();
        all.sort();
        assert_eq!(keys(tree.as_ref(), b"h"), all);
        assert_eq!(keys(tree.as_ref(), b"h0050").len(), 10);
        assert_eq!(keys(tree.as_ref(), b"").len(), n + 1);
    }

    #[test]
    fn a_page_too_large_to_decode_is_read_in_smaller_pages() {
        let prefix = fresh_prefix();
        let value = vec![b'v'; 512 * 1024];
        let writer = engine(&prefix);
        let tree = writer.tree("big").unwrap();
        for i in 0..12 {
            tree.put(format!("k{i:02}").as_bytes(), &value).unwrap();
        }
        // 6 MiB in one page would be past a 2 MiB decoding limit.
        let reader = EtcdEngine::open_decoding(
            &options(vec![member().endpoint()], &prefix),
            2 * 1024 * 1024,
        )
        .unwrap();
        let read: Vec<Entry> = reader
            .tree("big")
            .unwrap()
            .scan_prefix(b"")
            .map(Result::unwrap)
            .collect();
        assert_eq!(read.len(), 12);
        assert!(read.iter().all(|(_, v)| *v == value));
        assert_eq!(read[11].0, b"k11");
    }

    #[test]
    fn ids_grow_across_engines_and_above_a_raised_floor() {
        let prefix = fresh_prefix();
        let one = engine(&prefix);
        let two = engine(&prefix);
        let a = one.generate_id().unwrap();
        let b = two.generate_id().unwrap();
        let c = one.generate_id().unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        one.raise_ids_above(c + 1_000_000).unwrap();
        let d = two.generate_id().unwrap();
        assert!(d > c + 1_000_000, "{d}");
        // The floor only goes up.
        one.raise_ids_above(5).unwrap();
        assert!(one.generate_id().unwrap() > d);
        // Another prefix has its own floor (and shares the cluster's revisions).
        let other = engine(&fresh_prefix());
        assert!(other.generate_id().unwrap() < d);
    }

    #[test]
    fn tree_names_that_would_clash_are_refused() {
        let engine = engine(&fresh_prefix());
        for bad in ["", "_ids", "a/b", "h\u{0}"] {
            let err = engine.tree(bad).err().expect(bad).to_string();
            assert!(err.contains("tree name"), "{err}");
        }
        assert_eq!(engine.keys_under_prefix().unwrap(), 0);
        engine.tree("a.b-c_d").unwrap().put(b"k", b"v").unwrap();
        assert_eq!(engine.keys_under_prefix().unwrap(), 1);
    }

    /// A CA's PEM certificate, and a certificate and key it signed for `identity`.
    fn signed(
        ca: &boltfleet_common::pki::CertificateAuthority,
        identity: &boltfleet_common::identity::Identity,
        names: &[String],
    ) -> (Vec<u8>, Vec<u8>) {
        let issued = ca
            .issue(identity, names, Duration::from_secs(3600))
            .unwrap();
        (issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())
    }

    #[test]
    fn tls_to_etcd_needs_its_ca_and_a_client_certificate_it_signed() {
        use boltfleet_common::identity::Identity;
        use boltfleet_common::pki::CertificateAuthority;
        boltfleet_common::tls::install_crypto_provider();
        let new_ca = || {
            let pem = CertificateAuthority::generate().unwrap();
            CertificateAuthority::load(&pem.cert_pem, &pem.key_pem).unwrap()
        };
        let ca = new_ca();
        let dir = crate::state::etcd_member::temp_dir().unwrap();
        let (cert, key) = signed(&ca, &Identity::Controller, &["127.0.0.1".into()]);
        let files = ["ca.crt", "server.crt", "server.key"].map(|f| dir.path().join(f));
        std::fs::write(&files[0], ca.cert_pem()).unwrap();
        std::fs::write(&files[1], cert).unwrap();
        boltfleet_common::files::write_atomic(&files[2], &key, 0o600).unwrap();
        let mut member = EtcdMember::cluster(dir.path(), 1).unwrap().remove(0);
        member.serve_tls(&files[0], &files[1], &files[2]);
        member.start().unwrap();
        member
            .wait_healthy(crate::state::etcd_member::START_TIMEOUT)
            .unwrap();
        assert!(member.endpoint().starts_with("https://"));

        let client = signed(&ca, &Identity::operator("controller-a").unwrap(), &[]);
        let with = |tls: EtcdTls| {
            let mut options = options(vec![member.endpoint()], "/tls/");
            options.tls = Some(tls);
            EtcdEngine::open(&options)
        };
        let engine = with(EtcdTls {
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            identity: Some(client.clone()),
        })
        .unwrap();
        let tree = engine.tree("hosts").unwrap();
        tree.put(b"web1", b"{}").unwrap();
        assert_eq!(tree.get(b"web1").unwrap(), Some(b"{}".to_vec()));

        // No client certificate, or another CA's: refused at the first request.
        let anonymous = with(EtcdTls {
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            identity: None,
        });
        assert!(anonymous.is_err());
        let stranger = new_ca();
        let foreign = with(EtcdTls {
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            identity: Some(signed(&stranger, &Identity::operator("x").unwrap(), &[])),
        });
        assert!(foreign.is_err());
        // A server this CA did not sign is not trusted.
        let distrusted = with(EtcdTls {
            ca_pem: stranger.cert_pem().as_bytes().to_vec(),
            identity: Some(client),
        });
        let err = distrusted.err().unwrap().to_string();
        assert!(err.contains(&member.endpoint()), "{err}");
    }

    #[test]
    fn an_unreachable_etcd_is_a_clear_error_within_the_deadline() {
        let port = crate::state::etcd_member::free_port().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut unreachable = options(vec![endpoint.clone()], "/x/");
        unreachable.timeout = Duration::from_millis(500);
        let err = EtcdEngine::open(&unreachable).err().unwrap().to_string();
        assert!(err.contains(&endpoint), "{err}");
        assert!(err.contains("refused"), "{err}");
        // A port that takes the connection and never answers: the deadline ends the wait.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let mut hangs = options(vec![endpoint.clone()], "/x/");
        hangs.timeout = Duration::from_millis(500);
        let err = EtcdEngine::open(&hangs).err().unwrap().to_string();
        assert!(err.contains(&endpoint) && err.contains("500ms"), "{err}");

        // A member that goes away under an open engine: each call fails, naming it.
        let mut own = EtcdMember::single().unwrap();
        let mut reach = options(vec![own.endpoint()], "/x/");
        reach.timeout = Duration::from_millis(500);
        let engine = EtcdEngine::open(&reach).unwrap();
        let tree = engine.tree("hosts").unwrap();
        tree.put(b"web1", b"{}").unwrap();
        own.kill();
        let err = tree.get(b"web1").unwrap_err().to_string();
        assert!(
            err.contains(&own.endpoint()) && err.contains("tree hosts"),
            "{err}"
        );
        assert!(tree.scan_prefix(b"").next().unwrap().is_err());
        // Back: the same engine answers again.
        own.start().unwrap();
        own.wait_healthy(crate::state::etcd_member::START_TIMEOUT)
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let back = loop {
            match tree.get(b"web1") {
                Ok(value) => break value,
                Err(err) if std::time::Instant::now() > deadline => panic!("{err}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        assert_eq!(back, Some(b"{}".to_vec()));
    }
}
