//! The HTTP client side of the generator: what any API client knows (paths, bodies, token).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::args::Op;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what} answered {status}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("unexpected answer to {0}")]
    Shape(&'static str),
}

/// What the generator keeps of a command answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The `position` token of a successful answer (absent in systems without one).
    pub position: Option<String>,
    /// The transfer id of a transfer's answer.
    pub transfer_id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
struct Accepted {
    account_id: Option<Uuid>,
    transfer_id: Option<Uuid>,
    position: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TransferStatus {
    status: String,
}

/// A cheap-to-clone client of one API under test.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    pub fn new(base: &str, token: &str, connections: usize) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {}", token.trim()),
        })
    }

    /// Opens an account and pays `funding` into it; returns its id.
    pub async fn open_funded(&self, funding: i64) -> Result<Uuid, ClientError> {
        let body = json!({ "owner_id": "bench", "currency": "EUR" });
        let answer = self.post("/v1/accounts", &body).await?;
        let (status, accepted) = answer;
        if status != 201 {
            return Err(ClientError::Status {
                what: "open",
                status,
                body: String::new(),
            });
        }
        let id = accepted
            .and_then(|a| a.account_id)
            .ok_or(ClientError::Shape("open"))?;
        let (status, _) = self
            .post(
                &format!("/v1/accounts/{id}/deposits"),
                &json!({ "amount": funding, "reference": "bench-funding" }),
            )
            .await?;
        if status != 200 {
            return Err(ClientError::Status {
                what: "funding deposit",
                status,
                body: String::new(),
            });
        }
        Ok(id)
    }

    /// Sends one command of the mix.
    pub async fn command(
        &self,
        op: Op,
        account: Uuid,
        other: Uuid,
        amount: i64,
        n: u64,
    ) -> Result<Answer, ClientError> {
        let reference = format!("bench-{n}");
        let (path, body) = match op {
            Op::Deposit => (
                format!("/v1/accounts/{account}/deposits"),
                json!({ "amount": amount, "reference": reference }),
            ),
            Op::Withdraw => (
                format!("/v1/accounts/{account}/withdrawals"),
                json!({ "amount": amount, "reference": reference }),
            ),
            Op::Transfer => (
                "/v1/transfers".to_owned(),
                json!({ "from_account_id": account, "to_account_id": other,
                        "amount": amount, "reference": reference }),
            ),
        };
        let (status, accepted) = self.post(&path, &body).await?;
        let (position, transfer_id) =
            accepted.map_or((None, None), |a| (a.position, a.transfer_id));
        Ok(Answer {
            status,
            position,
            transfer_id,
        })
    }

    /// GET /v1/transfers/{id}: the HTTP status and, on 200, the transfer's status
    /// (pending, completed or failed).
    pub async fn transfer_status(
        &self,
        transfer: Uuid,
    ) -> Result<(u16, Option<String>), ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/transfers/{transfer}", self.base))
            .header("authorization", &self.auth)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = (status == 200)
            .then(|| serde_json::from_slice::<TransferStatus>(&bytes).ok())
            .flatten();
        Ok((status, body.map(|b| b.status)))
    }

    /// GET /v1/accounts/{id}, waiting for `position` when given; returns the status.
    pub async fn read_account(
        &self,
        account: Uuid,
        position: Option<&str>,
    ) -> Result<u16, ClientError> {
        let mut url = format!("{}/v1/accounts/{account}", self.base);
        if let Some(position) = position {
            // Position tokens are `v1.<partition>.<offset>`: nothing to escape.
            url = format!("{url}?min_position={position}");
        }
        let response = self
            .http
            .get(url)
            .header("authorization", &self.auth)
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok(status)
    }

    /// Sum of the lag of the live projections (GET /v1/admin/projections, admin token).
    pub async fn projector_lag(&self, admin_token: &str) -> Result<i64, ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/admin/projections", self.base))
            .bearer_auth(admin_token.trim())
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ClientError::Status {
                what: "admin projections",
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        let body: serde_json::Value = response.json().await?;
        let partitions = body["partitions"]
            .as_array()
            .ok_or(ClientError::Shape("admin projections"))?;
        Ok(partitions
            .iter()
            .filter(|p| !p["projection"].as_str().unwrap_or("").contains("__"))
            .filter_map(|p| p["lag"].as_i64())
            .sum())
    }

    /// The Prometheus text of GET /metrics.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?;
        Ok(response.text().await?)
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, Option<Accepted>), ClientError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let accepted = if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
        Ok((status, accepted))
    }
}
