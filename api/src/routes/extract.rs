//! Extractors that own their rejections: [`AccountId`] and [`TransferId`] (the path's id, 422
//! with the pointer `/path/id` when it is not a UUID) and [`CommandBody`] (a command body checked
//! against its JSON Schema and parsed into its type; see [`crate::validation`]).
//!
//! A command body's verdict is kept, not answered at once: for a customer, an account it is
//! not known to own answers 404 before anything about the body is said
//! ([`super::Ownership::hide`]), so the handler asks for the body once it knows.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::Ownership;
use crate::problem::{ApiError, FieldError};
use crate::validation::CommandSchema;

/// The account id of a `/v1/accounts/{id}/…` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountId(pub Uuid);

/// The transfer id of a `/v1/transfers/{id}` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferId(pub Uuid);

/// The path's `{id}` as a UUID.
fn path_uuid(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::Validation(vec![FieldError::new("/path/id", "not a UUID")]))
}

async fn path_id<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Uuid, ApiError> {
    let Path(id) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::Validation(vec![FieldError::new("/path/id", "missing")]))?;
    path_uuid(&id)
}

impl<S: Send + Sync> FromRequestParts<S> for AccountId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state).await.map(AccountId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TransferId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state).await.map(TransferId)
    }
}

/// A command body type and the schema it is checked against.
pub trait CommandPayload: DeserializeOwned {
    const SCHEMA: CommandSchema;
}

/// A command body: JSON syntax, then its schema, then its type. A body that cannot be read
/// (too large, broken stream) is rejected at once; the verdict on what it says waits for
/// [`CommandBody::checked`] or [`CommandBody::into_result`].
#[derive(Debug)]
pub struct CommandBody<T> {
    parsed: Result<T, ApiError>,
    raw: Bytes,
}

impl<T> CommandBody<T> {
    /// The parsed body, or its error as a customer not known to own the account may see it.
    pub fn checked(self, ownership: Ownership) -> Result<T, ApiError> {
        self.parsed.map_err(|error| ownership.hide(error))
    }

    /// The parsed body or its error (for requests about no particular account).
    pub fn into_result(self) -> Result<T, ApiError> {
        self.parsed
    }

    /// The body as sent (to find the account it names before it is judged).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> CommandBody<U> {
        CommandBody {
            parsed: self.parsed.map(f),
            raw: self.raw,
        }
    }
}

impl<S: Send + Sync, T: CommandPayload> FromRequest<S> for CommandBody<T> {
    type Rejection = BytesRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(request, state).await?;
        let parsed = crate::validation::parse_command(T::SCHEMA, &raw);
        Ok(CommandBody { parsed, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Limit {
        limit: i64,
    }

    impl CommandPayload for Limit {
        const SCHEMA: CommandSchema = CommandSchema::OverdraftLimit;
    }

    async fn body(text: &'static str) -> CommandBody<Limit> {
        let request = Request::new(axum::body::Body::from(text));
        CommandBody::from_request(request, &()).await.expect("read")
    }

    #[tokio::test]
    async fn bodies_are_checked_against_their_schema_and_hidden_when_asked() {
        assert_eq!(
            body(r#"{"limit": 5}"#)
                .await
                .into_result()
                .expect("ok")
                .limit,
            5
        );
        let invalid = body(r#"{"limit": "five"}"#).await.into_result();
        assert!(
            matches!(invalid, Err(ApiError::Validation(_))),
            "{invalid:?}"
        );
        let broken = body("{").await.into_result();
        assert!(
            matches!(broken, Err(ApiError::InvalidJson(_))),
            "{broken:?}"
        );
        let hidden = body("{").await.checked(Ownership::Unknown);
        assert!(
            matches!(hidden, Err(ApiError::Rejected { .. })),
            "{hidden:?}"
        );
        assert!(path_uuid("not-a-uuid").is_err());
    }
}
