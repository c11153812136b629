//! The etcd engine against a real member: the state suite, and what only etcd does (pages,
//! ids, deadlines, TLS).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::*;
use crate::state::engine::Entry;
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

/// The feed delivers every write in order; of this controller's own writes and older events
/// of a key it wrote since, `superseded` says so.
#[test]
fn the_feed_brings_other_writers_changes_and_skips_its_own() {
    let prefix = fresh_prefix();
    let mine = engine(&prefix);
    let other = engine(&prefix);
    let before = other.tree("hosts").unwrap();
    before.put(b"web0", b"old").unwrap();
    let mut feed = mine.feed().unwrap();
    let next = |feed: &mut tokio::sync::mpsc::Receiver<feed::Feed>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match feed.try_recv() {
                Ok(item) => return item,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(err) => panic!("no feed item: {err}"),
            }
        }
    };
    assert!(matches!(
        next(&mut feed),
        feed::Feed::Start { again: false, .. }
    ));

    let theirs = other.tree("hosts").unwrap();
    let ours = mine.tree("hosts").unwrap();
    theirs.put(b"web1", b"a").unwrap(); // older than our write of the same key
    ours.put(b"web1", b"b").unwrap();
    ours.put(b"web2", b"c").unwrap();
    theirs.put(b"web3", b"d").unwrap();
    theirs.delete(b"web0").unwrap();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        if let feed::Feed::Changes(changes) = next(&mut feed) {
            seen.extend(changes);
        }
    }
    let got: Vec<(String, Option<Vec<u8>>)> = seen
        .into_iter()
        .filter(|c| !mine.superseded(c))
        .map(|c| {
            (
                format!("{}/{}", c.tree, String::from_utf8_lossy(&c.key)),
                c.value,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("hosts/web3".to_string(), Some(b"d".to_vec())),
            ("hosts/web0".to_string(), None),
        ]
    );
}
