//! Command bodies at the edge: JSON syntax, then the command's JSON Schema from
//! `schemas/commands/`, then typed parsing.
//!
//! The schema files are compiled into the binary and are the same documents the OpenAPI
//! description embeds (see [`crate::openapi`]), so what the docs promise is what is checked.
//! A syntax error is a 422 `invalid_json` problem; every schema violation is one entry in the
//! `errors` of a 422 `validation` problem, with the JSON pointer of the offending value.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::{ApiError, FieldError};

/// Longest message kept per field error (messages can quote the offending value).
const MAX_MESSAGE_CHARS: usize = 200;

/// The body schemas of the command endpoints, one file each in `schemas/commands/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandSchema {
    OpenAccount,
    Deposit,
    Withdrawal,
    Transfer,
    /// Freeze, unfreeze and close: an optional reason.
    StatusChange,
    OverdraftLimit,
    /// The holder's personal fields to change.
    Holder,
}

impl CommandSchema {
    pub const ALL: [CommandSchema; 7] = [
        CommandSchema::OpenAccount,
        CommandSchema::Deposit,
        CommandSchema::Withdrawal,
        CommandSchema::Transfer,
        CommandSchema::StatusChange,
        CommandSchema::OverdraftLimit,
        CommandSchema::Holder,
    ];

    /// The file name under `schemas/commands/`.
    pub fn file_name(self) -> &'static str {
        match self {
            CommandSchema::OpenAccount => "open-account.json",
            CommandSchema::Deposit => "deposit.json",
            CommandSchema::Withdrawal => "withdrawal.json",
            CommandSchema::Transfer => "transfer.json",
            CommandSchema::StatusChange => "status-change.json",
            CommandSchema::OverdraftLimit => "overdraft-limit.json",
            CommandSchema::Holder => "holder.json",
        }
    }

    /// The schema's name among the OpenAPI components (its `title`).
    pub fn component(self) -> &'static str {
        match self {
            CommandSchema::OpenAccount => "OpenAccount",
            CommandSchema::Deposit => "Deposit",
            CommandSchema::Withdrawal => "Withdrawal",
            CommandSchema::Transfer => "Transfer",
            CommandSchema::StatusChange => "StatusChange",
            CommandSchema::OverdraftLimit => "OverdraftLimit",
            CommandSchema::Holder => "HolderChange",
        }
    }

    /// The file's text, as compiled in.
    pub fn source(self) -> &'static str {
        match self {
            CommandSchema::OpenAccount => include_str!("../../schemas/commands/open-account.json"),
            CommandSchema::Deposit => include_str!("../../schemas/commands/deposit.json"),
            CommandSchema::Withdrawal => include_str!("../../schemas/commands/withdrawal.json"),
            CommandSchema::Transfer => include_str!("../../schemas/commands/transfer.json"),
            CommandSchema::StatusChange => {
                include_str!("../../schemas/commands/status-change.json")
            }
            CommandSchema::OverdraftLimit => {
                include_str!("../../schemas/commands/overdraft-limit.json")
            }
            CommandSchema::Holder => include_str!("../../schemas/commands/holder.json"),
        }
    }

    /// The file as JSON (an invalid file is a build defect, caught by the unit tests).
    pub fn document(self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.source())
    }

    fn index(self) -> usize {
        match self {
            CommandSchema::OpenAccount => 0,
            CommandSchema::Deposit => 1,
            CommandSchema::Withdrawal => 2,
            CommandSchema::Transfer => 3,
            CommandSchema::StatusChange => 4,
            CommandSchema::OverdraftLimit => 5,
            CommandSchema::Holder => 6,
        }
    }

    fn validator(self) -> Result<&'static Validator, ApiError> {
        VALIDATORS[self.index()]
            .as_ref()
            .map_err(|error| ApiError::internal(anyhow::anyhow!("{}: {error}", self.file_name())))
    }
}

static VALIDATORS: LazyLock<Vec<Result<Validator, String>>> =
    LazyLock::new(|| CommandSchema::ALL.iter().map(|s| compile(*s)).collect());

fn compile(schema: CommandSchema) -> Result<Validator, String> {
    let document = schema.document().map_err(|e| e.to_string())?;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&document)
        .map_err(|e| e.to_string())
}

/// Parses a command body: JSON, then `schema`, then the typed `T` (whose own checks, such as
/// `deny_unknown_fields`, stay as a second line of defence). An empty body counts as `{}`.
pub fn parse_command<T: DeserializeOwned>(
    schema: CommandSchema,
    body: &[u8],
) -> Result<T, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson(error.to_string()))?
    };
    let errors: Vec<FieldError> = schema
        .validator()?
        .iter_errors(&value)
        .flat_map(field_errors)
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    serde_json::from_value(value).map_err(|error| {
        ApiError::Validation(vec![FieldError::new("", truncate(error.to_string()))])
    })
}

/// One schema violation as field errors: an unknown property points at itself.
fn field_errors(error: ValidationError<'_>) -> Vec<FieldError> {
    let pointer = error.instance_path().to_string();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| FieldError::new(format!("{pointer}/{}", escape(name)), "unknown field"))
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![FieldError::new(
                format!("{pointer}/{}", escape(name)),
                "required",
            )]
        }
        _ => vec![FieldError::new(pointer, truncate(error.to_string()))],
    }
}

/// RFC 6901 escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn truncate(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut short: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Amount {
        amount: i64,
        reference: Option<String>,
    }

    /// The schemas are where the HTTP input's lengths and ranges are checked (the handlers do
    /// not check them again): they must say what the domain accepts.
    #[test]
    fn schema_limits_are_the_domain_limits() {
        use logbook_commands::domain::{
            MAX_AMOUNT, MAX_OWNER_ID_CHARS, MAX_REASON_CHARS, MAX_REFERENCE_CHARS,
        };
        let property = |schema: CommandSchema, name: &str| {
            schema.document().expect("schema")["properties"][name].clone()
        };
        for schema in [
            CommandSchema::Deposit,
            CommandSchema::Withdrawal,
            CommandSchema::Transfer,
        ] {
            let amount = property(schema, "amount");
            assert_eq!(amount["minimum"], 1, "{schema:?}");
            assert_eq!(amount["maximum"], MAX_AMOUNT, "{schema:?}");
            let reference = property(schema, "reference");
            assert_eq!(reference["maxLength"], MAX_REFERENCE_CHARS, "{schema:?}");
        }
        let owner = property(CommandSchema::OpenAccount, "owner_id");
        assert_eq!(
            (owner["minLength"].clone(), owner["maxLength"].clone()),
            (1.into(), MAX_OWNER_ID_CHARS.into())
        );
        let overdraft = property(CommandSchema::OpenAccount, "overdraft_limit");
        assert_eq!(
            (overdraft["minimum"].clone(), overdraft["maximum"].clone()),
            (0.into(), MAX_AMOUNT.into())
        );
        let limit = property(CommandSchema::OverdraftLimit, "limit");
        assert_eq!(
            (limit["minimum"].clone(), limit["maximum"].clone()),
            (0.into(), MAX_AMOUNT.into())
        );
        let reason = property(CommandSchema::StatusChange, "reason");
        assert_eq!(reason["maxLength"], MAX_REASON_CHARS);
    }

    fn pointers(result: Result<Amount, ApiError>) -> Vec<(String, String)> {
        match result {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.pointer, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_schema_file_compiles_and_is_titled_by_its_component() {
        for schema in CommandSchema::ALL {
            assert!(schema.validator().is_ok(), "{}", schema.file_name());
            let document = schema.document().expect("json");
            assert_eq!(document["title"], schema.component());
            assert_eq!(document["additionalProperties"], false);
        }
    }

    #[test]
    fn valid_bodies_parse_into_their_type() {
        let body = br#"{"amount": 5, "reference": "x"}"#;
        let parsed: Amount = parse_command(CommandSchema::Deposit, body).expect("valid");
        assert_eq!(parsed.amount, 5);
    }

    #[test]
    fn each_kind_of_violation_points_at_its_field() {
        let check = |body: &str| pointers(parse_command(CommandSchema::Deposit, body.as_bytes()));
        assert_eq!(check(r#"{"amount": 0}"#)[0].0, "/amount");
        assert_eq!(check(r#"{"amount": 1000000000000001}"#)[0].0, "/amount");
        assert_eq!(check(r#"{"amount": "5"}"#)[0].0, "/amount");
        assert_eq!(check(r#"{}"#), vec![("/amount".into(), "required".into())]);
        assert_eq!(
            check(r#"{"amount": 1, "a/b": 1}"#),
            vec![("/a~1b".into(), "unknown field".into())]
        );
        let long = "x".repeat(141);
        assert_eq!(
            check(&format!(r#"{{"amount": 1, "reference": "{long}"}}"#))[0].0,
            "/reference"
        );
        assert!(
            check(&format!(r#"{{"amount": 1, "reference": "{long}"}}"#))[0]
                .1
                .chars()
                .count()
                <= 201
        );
    }

    #[test]
    fn uuids_and_currencies_are_checked_by_the_schemas() {
        let transfer = r#"{"from_account_id": "nope", "to_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000002", "amount": 1}"#;
        let result: Result<Value, _> = parse_command(CommandSchema::Transfer, transfer.as_bytes());
        assert!(
            matches!(&result, Err(ApiError::Validation(e)) if e[0].pointer == "/from_account_id"),
            "{result:?}"
        );
        let open = r#"{"owner_id": "alice", "currency": "eur"}"#;
        let result: Result<Value, _> = parse_command(CommandSchema::OpenAccount, open.as_bytes());
        assert!(matches!(&result, Err(ApiError::Validation(e)) if e[0].pointer == "/currency"));
    }

    #[test]
    fn malformed_json_is_its_own_kind_and_empty_is_an_empty_object() {
        let result: Result<Value, _> = parse_command(CommandSchema::StatusChange, b"{");
        assert!(matches!(result, Err(ApiError::InvalidJson(_))));
        let empty: Value = parse_command(CommandSchema::StatusChange, b"").expect("empty ok");
        assert_eq!(empty, serde_json::json!({}));
        let result: Result<Value, _> = parse_command(CommandSchema::Deposit, b"");
        assert!(matches!(result, Err(ApiError::Validation(_))));
    }
}
