//! `EnrollService`: join token + CSR in, signed agent certificate out.

use std::sync::Arc;

use boltfleet_common::proto::enroll_service_server::EnrollService;
use boltfleet_common::proto::{EnrollRequest, EnrollResponse};
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::app::App;

pub struct Enroll {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl EnrollService for Enroll {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let peer = request.remote_addr();
        let req = request.into_inner();
        let app = self.app.clone();
        // Signing and the store are blocking work.
        let result = tokio::task::spawn_blocking(move || {
            app.enroll(&req.token, &req.csr_pem, crate::app::now())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        match result {
            Ok((host, certificate_pem)) => Ok(Response::new(EnrollResponse {
                host_id: host.to_string(),
                certificate_pem,
                ca_pem: self.app.ca.cert_pem().to_string(),
            })),
            Err(err) => {
                warn!(peer = ?peer, error = %err, "enrollment refused");
                Err(err.into())
            }
        }
    }
}
