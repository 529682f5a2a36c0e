//! The command bus: what the HTTP routes need to send a command and wait for its result.
//!
//! The Kafka [`Gateway`] is the bus of the running service; router tests give the router a bus
//! of their own, so the HTTP layer (authentication, the role matrix, validation, problem+json)
//! is tested without a broker.

use async_trait::async_trait;
use logbook_commands::envelope::{CommandEnvelope, CommandResult};

use crate::gateway::{Gateway, GatewayError};

/// Sends a command and waits for its result.
#[async_trait]
pub trait CommandBus: Send + Sync + std::fmt::Debug {
    /// The command's result, or why there is none (not sent, or no answer in time).
    async fn send(&self, command: &CommandEnvelope) -> Result<CommandResult, GatewayError>;

    /// Whether results can arrive (readiness).
    fn is_listening(&self) -> bool;
}

#[async_trait]
impl CommandBus for Gateway {
    async fn send(&self, command: &CommandEnvelope) -> Result<CommandResult, GatewayError> {
        Gateway::send(self, command).await
    }

    fn is_listening(&self) -> bool {
        Gateway::is_listening(self)
    }
}
