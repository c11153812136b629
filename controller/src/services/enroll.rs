//! `EnrollService`: join token + CSR in, signed agent certificate out.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boltfleet_common::proto::enroll_service_server::EnrollService;
use boltfleet_common::proto::{EnrollRequest, EnrollResponse};
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::app::App;
use crate::door::throttle::LogThrottle;
use crate::limits::RateLimiter;
use crate::metrics::Refusal;

pub struct Enroll {
    pub app: Arc<App>,
    /// Attempts per source address: tokens are guessed nowhere near fast enough to matter.
    pub limiter: Mutex<RateLimiter>,
    /// Refusals are logged once a minute per address, with a count.
    pub log: LogThrottle<IpAddr>,
}

impl Enroll {
    pub fn new(app: Arc<App>, limiter: RateLimiter) -> Self {
        Self {
            app,
            limiter: Mutex::new(limiter),
            log: LogThrottle::new(Duration::from_secs(60)),
        }
    }
}

#[tonic::async_trait]
impl EnrollService for Enroll {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let peer = request.remote_addr();
        let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let allowed = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(ip, Instant::now());
        if !allowed {
            self.app.metrics().refused(Refusal::Enrollment);
            if let Some(n) = self.log.hit(ip, Instant::now()) {
                warn!(peer = %ip, refused = n, "enrollment rate limit hit");
            }
            return Err(Status::resource_exhausted(format!(
                "too many enrollment attempts from {ip}; retry later"
            )));
        }
        let req = request.into_inner();
        let result = super::blocking(&self.app, move |app| {
            app.enroll(&req.token, &req.csr_pem, jiff::Timestamp::now())
        })
        .await?;
        match result {
            Ok((host, certificate_pem)) => Ok(Response::new(EnrollResponse {
                host_id: host.to_string(),
                certificate_pem,
                ca_pem: self.app.ca_pem().to_string(),
            })),
            Err(err) => {
                if let Some(n) = self.log.hit(ip, Instant::now()) {
                    warn!(peer = ?peer, refused = n, error = %crate::door::loggable(&err.to_string()), "enrollment refused");
                }
                Err(err.into())
            }
        }
    }
}
