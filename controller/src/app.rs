//! The controller's domain operations, shared by the gRPC services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::{self, CertificateAuthority};
use tonic::Status;
use tracing::{info, warn};

mod agents;
mod fleet;
mod history;

pub use fleet::{FleetPage, PAGE_BYTES, PAGE_SIZE, PAGE_SIZE_MAX};
pub use history::{JobPage, JOBS_PAGE, JOBS_PAGE_MAX};

use crate::error::Error;
use crate::hot::{HostCache, JobCache, Observations};
use crate::registry::Registry;
use crate::store::{AuditEntry, HostRecord, Store, StoreError, TokenRecord};
use crate::tokens;

/// Longest a join token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What an operator asks for when creating a join token.
pub struct NewToken {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub ttl: Duration,
}

/// State shared by every request handler.
///
/// What agents and the scheduler read all the time is also held in memory (see [`crate::hot`]),
/// loaded from the store by [`App::open`]: host records, each host's latest observation, and an
/// index of the jobs. Host records change only through `put_host` and `update_host`, jobs only
/// through [`JobCache::write`], observations only through `observe` (in `app/agents.rs`).
pub struct App {
    pub store: Store,
    pub ca: CertificateAuthority,
    pub registry: Registry,
    pub agent_cert_validity: Duration,
    /// Poked when something the scheduler looks at changed (reports, job events, connections,
    /// operator actions), so it ticks before its next timer.
    pub scheduler_wake: tokio::sync::Notify,
    /// Serializes changes to rollout records: the scheduler's ticks and operators' actions.
    pub(crate) rollout_lock: std::sync::Mutex<()>,
    /// Every host record, written through to the store.
    pub(crate) hosts: HostCache,
    /// Each host's latest observation, written to the store in batches.
    pub(crate) observations: Observations,
    /// The jobs' index, updated with every job write.
    pub(crate) job_index: JobCache,
    /// Per-host rate, refusal counts and stream replacements of the agent door.
    pub door: crate::door::Door,
}

impl App {
    /// Opens the controller on `store`, loading what it keeps in memory (and indexing the jobs
    /// of a store written before the job index existed). A record that cannot be decoded is
    /// logged and skipped; only an unreadable store fails.
    pub fn open(
        store: Store,
        ca: CertificateAuthority,
        agent_cert_validity: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let hosts = HostCache::load(store.hosts.clone())?;
        let observations = Observations::load(store.observed.clone())?;
        let job_index = JobCache::load(store.jobs.clone())?;
        info!(hosts = hosts.read().len(), "controller state loaded");
        Ok(Arc::new(Self {
            store,
            ca,
            registry: Registry::default(),
            agent_cert_validity,
            scheduler_wake: tokio::sync::Notify::new(),
            rollout_lock: std::sync::Mutex::new(()),
            hosts,
            observations,
            job_index,
            door: crate::door::Door::default(),
        }))
    }

    /// [`App::open`], for callers with no use for the error (tests, benchmarks).
    ///
    /// # Panics
    ///
    /// When the store cannot be read (an I/O error, not a bad record).
    pub fn new(store: Store, ca: CertificateAuthority, agent_cert_validity: Duration) -> Arc<Self> {
        Self::open(store, ca, agent_cert_validity)
            .unwrap_or_else(|err| panic!("cannot load the controller's state: {err}"))
    }

    /// Writes the observations still batched in memory, at once (at shutdown, before the
    /// store's last flush).
    pub fn persist_observations(&self) -> Result<(), StoreError> {
        self.observations.persist().map(drop)
    }

    /// The host's record, if it is enrolled (revoked or not).
    pub fn host(&self, id: &str) -> Option<HostRecord> {
        self.hosts.get(id)
    }

    /// Asks the scheduler to tick soon (a permit is kept if it is busy).
    pub fn wake_scheduler(&self) {
        self.scheduler_wake.notify_one();
    }

    pub(crate) fn audit_entry(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), Error> {
        Ok(self
            .store
            .audit(&AuditEntry::new(now(), actor, action, target, detail))?)
    }

    /// Creates a single-use join token bound to a host id; returns it with its expiry.
    pub fn create_token(
        &self,
        operator: &str,
        req: NewToken,
        now: i64,
    ) -> Result<(String, i64), Error> {
        let host = HostId::new(&req.host_id)?;
        if req.ttl.is_zero() || req.ttl > MAX_TOKEN_TTL {
            return Err(Error::invalid("ttl", "must be between 1s and 7 days"));
        }
        check_labels(&req.labels)?;
        let token = tokens::generate(&host);
        let created_at = now;
        let expires_at = created_at + req.ttl.as_secs() as i64;
        let record = TokenRecord {
            host_id: host.to_string(),
            tenant: req.tenant,
            labels: req.labels,
            created_at,
            expires_at,
            created_by: operator.to_string(),
            used_at: None,
        };
        self.store.tokens.put(&tokens::hash(&token), &record)?;
        self.store.tokens.flush()?;
        self.audit_entry(
            &format!("operator {operator}"),
            "token.create",
            host.as_str(),
            "",
        )?;
        info!(host = %host, operator, expires_at, "join token created");
        Ok((token, expires_at))
    }

    /// Exchanges a join token and a CSR for a certificate; the token works once. A refused CSR
    /// does not use the token up.
    pub fn enroll(&self, token: &str, csr_pem: &str, now: i64) -> Result<(HostId, String), Error> {
        let key = tokens::hash(token);
        let record = self.store.tokens.get(&key)?.ok_or(Error::TokenUnknown)?;
        if record.used_at.is_some() {
            return Err(Error::TokenUsed);
        }
        if record.expires_at <= now {
            return Err(Error::TokenExpired);
        }
        let host = HostId::new(&record.host_id)?;
        // A token made before the host was revoked does not bring it back.
        if let Some(revoked_at) = self.host(host.as_str()).and_then(|h| h.revoked_at) {
            if record.created_at < revoked_at {
                return Err(Error::Revoked(host.to_string()));
            }
        }
        let cert_pem = self.sign_agent_csr(&host, csr_pem)?;
        let used = TokenRecord {
            used_at: Some(now),
            ..record.clone()
        };
        if !self
            .store
            .tokens
            .compare_and_swap(&key, Some(&record), &used)?
        {
            return Err(Error::TokenUsed);
        }
        let serial = serial_of(&cert_pem)?;
        let host_record = HostRecord {
            host_id: host.to_string(),
            tenant: record.tenant,
            labels: record.labels,
            enrolled_at: now,
            cert_serials: vec![serial],
            revoked: false,
            revoked_at: None,
        };
        self.put_host(&host, &host_record)?;
        self.store.flush()?;
        // Whoever held the previous key loses its stream at once (its certificate is refused
        // from now on: the record names only the new one).
        self.registry.kick(&host, reenrolled(&host));
        self.audit_entry(&format!("agent {host}"), "host.enroll", host.as_str(), "")?;
        info!(host = %host, "host enrolled");
        Ok((host, cert_pem))
    }

    /// Signs a fresh certificate for an enrolled agent (its key stays on the host).
    pub fn renew(&self, host: &HostId, csr_pem: &str) -> Result<String, Error> {
        let cert_pem = self.sign_agent_csr(host, csr_pem)?;
        let serial = serial_of(&cert_pem)?;
        self.update_host(host, |old| {
            if old.revoked {
                return Err(Error::Revoked(host.to_string()));
            }
            let mut new = old.clone();
            new.cert_serials.push(serial.clone());
            let excess = new.cert_serials.len().saturating_sub(2);
            new.cert_serials.drain(..excess);
            Ok(new)
        })?;
        self.store.flush()?;
        info!(host = %host, "agent certificate renewed");
        Ok(cert_pem)
    }

    /// Signs an agent's CSR for `host`: the CSR must name that host and nothing else.
    pub(crate) fn sign_agent_csr(&self, host: &HostId, csr_pem: &str) -> Result<String, Error> {
        self.ca
            .sign_csr(
                csr_pem,
                &Identity::Agent(host.clone()),
                self.agent_cert_validity,
            )
            .map_err(Error::Csr)
    }

    /// Revokes a host: its certificates are refused from now on, its stream is cut and its
    /// unused join tokens are void. It comes back only through a token created afterwards.
    pub fn revoke(&self, operator: &str, host_id: &str) -> Result<(), Error> {
        let host = HostId::new(host_id)?;
        let at = now();
        self.update_host(&host, |old| {
            Ok(HostRecord {
                revoked: true,
                revoked_at: Some(at),
                cert_serials: Vec::new(),
                ..old.clone()
            })
        })?;
        let voided = self.void_tokens(&host)?;
        self.store.flush()?;
        self.registry.kick(
            &host,
            Status::permission_denied(format!("host {host} is revoked")),
        );
        self.audit_entry(
            &format!("operator {operator}"),
            "host.revoke",
            host.as_str(),
            "",
        )?;
        warn!(host = %host, operator, voided_tokens = voided, "host revoked");
        Ok(())
    }

    /// Deletes the host's unused join tokens; returns how many.
    fn void_tokens(&self, host: &HostId) -> Result<usize, Error> {
        let mut voided = 0;
        for (key, token) in self.store.tokens.list()? {
            if token.host_id == host.as_str() && token.used_at.is_none() {
                self.store.tokens.remove(&key)?;
                voided += 1;
            }
        }
        Ok(voided)
    }

    /// Stores a host's record as enrollment wrote it (store, then memory).
    pub(crate) fn put_host(&self, host: &HostId, record: &HostRecord) -> Result<(), Error> {
        Ok(self.hosts.write().put(host.as_str(), record.clone())?)
    }

    /// Replaces an enrolled host's record with `change(old)`, atomically: host writes hold the
    /// host cache's write lock from the read to the write.
    fn update_host(
        &self,
        host: &HostId,
        change: impl FnOnce(&HostRecord) -> Result<HostRecord, Error>,
    ) -> Result<(), Error> {
        let mut hosts = self.hosts.write();
        let old = hosts
            .get(host.as_str())
            .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
        let new = change(old)?;
        hosts.put(host.as_str(), new)?;
        Ok(())
    }
}

/// The status a stream ends with when its host enrolled again (with another key).
pub(crate) fn reenrolled(host: &HostId) -> Status {
    Status::permission_denied(format!(
        "host {host} enrolled again: this key's certificate is no longer valid"
    ))
}

/// Label keys are non-empty and hold no `=` (selectors are written `key=value`).
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Error> {
    for key in labels.keys() {
        if key.is_empty() || key.contains('=') {
            return Err(Error::invalid("labels", format!("bad label key {key:?}")));
        }
    }
    Ok(())
}

pub(crate) fn serial_of(cert_pem: &str) -> Result<String, Error> {
    let der = pki::pem_certs(cert_pem).map_err(Error::Pki)?.remove(0);
    Ok(pki::inspect(&der).map_err(Error::Pki)?.serial)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use boltfleet_common::pki::new_csr;
    use boltfleet_common::proto::Inventory;

    pub(crate) fn app(dir: &std::path::Path) -> Arc<App> {
        let keys = CertificateAuthority::generate().unwrap();
        let ca = CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).unwrap();
        App::new(Store::open(dir).unwrap(), ca, Duration::from_secs(3600))
    }

    /// An app with `host` enrolled and reporting `version`.
    pub(crate) fn app_with_host(dir: &std::path::Path, host: &str, version: &str) -> Arc<App> {
        let app = app(dir);
        let t = token(&app, host, 60, now());
        app.enroll(&t, &csr(host), now()).unwrap();
        let inventory = Inventory {
            passbolt_version: version.into(),
            ..Inventory::default()
        };
        app.record_report(&HostId::new(host).unwrap(), inventory)
            .unwrap();
        app
    }

    pub(crate) fn token(app: &App, host: &str, ttl: u64, now: i64) -> String {
        let req = NewToken {
            host_id: host.into(),
            tenant: "acme".into(),
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            ttl: Duration::from_secs(ttl),
        };
        app.create_token("alice", req, now).unwrap().0
    }

    pub(crate) fn csr(host: &str) -> String {
        new_csr(&Identity::Agent(HostId::new(host).unwrap()))
            .unwrap()
            .0
    }

    #[test]
    fn a_token_enrolls_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        assert!(matches!(
            app.enroll(&t, &csr("web1"), 1060),
            Err(Error::TokenExpired)
        ));
        let (host, _) = app.enroll(&t, &csr("web1"), 1059).unwrap();
        assert_eq!(host.as_str(), "web1");
        assert!(matches!(
            app.enroll(&t, &csr("web1"), 1059),
            Err(Error::TokenUsed)
        ));
        assert!(matches!(
            app.enroll("bf1.web1.00", &csr("web1"), 1000),
            Err(Error::TokenUnknown)
        ));
        let record = app.store.hosts.get("web1").unwrap().unwrap();
        assert_eq!(
            (record.tenant.as_str(), record.labels["env"].as_str()),
            ("acme", "prod")
        );
        let stored = app.store.tokens.list().unwrap();
        assert!(
            stored.iter().all(|(key, _)| !key.contains(&t[9..])),
            "only the hash is stored"
        );
    }

    #[test]
    fn revoking_voids_leftover_tokens_and_only_a_newer_token_brings_the_host_back() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let first = token(&app, "web1", 3600, now());
        app.enroll(&first, &csr("web1"), now()).unwrap();
        let leftover = token(&app, "web1", 3600, now());
        app.revoke("alice", "web1").unwrap();
        assert!(matches!(
            app.enroll(&leftover, &csr("web1"), now()),
            Err(Error::TokenUnknown)
        ));
        assert!(app.host("web1").unwrap().revoked, "still revoked");
        // A token stored before the revocation (as if voiding had missed it) is refused too.
        let old = token(&app, "web1", 3600, now() - 10);
        assert!(matches!(
            app.enroll(&old, &csr("web1"), now()),
            Err(Error::Revoked(_))
        ));
        let fresh = token(&app, "web1", 3600, now() + 1);
        app.enroll(&fresh, &csr("web1"), now()).unwrap();
        assert!(
            !app.host("web1").unwrap().revoked,
            "an operator's new token"
        );
    }

    #[tokio::test]
    async fn enrolling_again_cuts_the_previous_key_holders_stream() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 3600, now());
        app.enroll(&t, &csr("web1"), now()).unwrap();
        let host = HostId::new("web1").unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let old = app.registry.register(&host, tx);
        let again = token(&app, "web1", 3600, now());
        app.enroll(&again, &csr("web1"), now()).unwrap();
        let status = old.stop.await.unwrap();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("enrolled again"), "{status}");
    }

    #[test]
    fn a_csr_for_another_host_is_refused_without_using_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        assert!(matches!(
            app.enroll(&t, &csr("web2"), 1001),
            Err(Error::Csr(_))
        ));
        assert!(app.store.hosts.get("web2").unwrap().is_none());
        assert!(app.enroll(&t, &csr("web1"), 1001).is_ok());
    }

    #[test]
    fn ttl_and_host_id_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let req = |host: &str, ttl| NewToken {
            host_id: host.into(),
            tenant: String::new(),
            labels: BTreeMap::new(),
            ttl: Duration::from_secs(ttl),
        };
        assert!(app.create_token("alice", req("a/b", 60), 0).is_err());
        assert!(app.create_token("alice", req("web1", 0), 0).is_err());
        assert!(app
            .create_token("alice", req("web1", 8 * 24 * 3600), 0)
            .is_err());
    }

    #[test]
    fn revoking_clears_the_certificates_and_renewal_keeps_two() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        app.enroll(&t, &csr("web1"), 1001).unwrap();
        let host = HostId::new("web1").unwrap();
        for _ in 0..3 {
            app.renew(&host, &csr("web1")).unwrap();
        }
        assert_eq!(
            app.store
                .hosts
                .get("web1")
                .unwrap()
                .unwrap()
                .cert_serials
                .len(),
            2
        );
        app.revoke("alice", "web1").unwrap();
        let record = app.store.hosts.get("web1").unwrap().unwrap();
        assert!(record.revoked && record.cert_serials.is_empty());
        assert!(matches!(
            app.renew(&host, &csr("web1")),
            Err(Error::Revoked(_))
        ));
        let actions: Vec<String> = app
            .store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["token.create", "host.enroll", "host.revoke"]);
    }
}
