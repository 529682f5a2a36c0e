//! What every operation shares: the problem+json schema, the error responses (each with an
//! example), bearer security on `/v1`, and the `Idempotency-Key` header on commands.
//!
//! [`standard_errors`] is the one place that says which errors an operation can answer besides
//! those its annotation lists; keep it in step with [`crate::problem::ApiError`].

use serde_json::{Map, Value, json};

use crate::problem::problem_type;

/// The problem+json document (RFC 9457) every error uses.
pub(super) fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details. `type` is stable per kind of error \
            (`urn:logbook:problem:<code>`); some kinds add members (`command_id` on a command \
            timeout, `min_position` when the read model is behind).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "description": "urn:logbook:problem:<code>" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string" },
            "errors": {
                "type": "array",
                "description": "Validation problems: one per invalid field.",
                "items": {
                    "type": "object",
                    "required": ["pointer", "message"],
                    "properties": {
                        "pointer": { "type": "string", "description": "JSON pointer into the body, or /path/<name>, /query/<name>, /header/<name>" },
                        "message": { "type": "string" }
                    }
                }
            },
            "command_id": { "type": "string", "format": "uuid" },
            "min_position": { "type": "string" }
        }
    })
}

/// (component name, status, description, problem code, title, example detail)
type ErrorSpec = (
    &'static str,
    u16,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const ERRORS: [ErrorSpec; 10] = [
    (
        "Unauthorized",
        401,
        "No token, or an invalid or expired one.",
        "unauthorized",
        "Unauthorized",
        "missing or invalid credentials",
    ),
    (
        "Forbidden",
        403,
        "The token's role may not do this.",
        "forbidden",
        "Forbidden",
        "not allowed",
    ),
    (
        "NotFound",
        404,
        "Unknown account or transfer (or one the caller may not see).",
        "not_found",
        "Not found",
        "not found",
    ),
    (
        "Conflict",
        409,
        "A business rule refused the command (insufficient funds, frozen or closed account, currency mismatch, duplicate account id, a limit below the current overdraft), or the first request with this Idempotency-Key is still in progress (`idempotency_in_flight`, with Retry-After).",
        "insufficient_funds",
        "Command rejected",
        "balance 100 and overdraft limit 0 do not cover 500",
    ),
    (
        "Invalid",
        422,
        "Invalid input: malformed JSON (`invalid_json`), a schema or parameter violation (`validation`, one entry per field in `errors`), or an Idempotency-Key reused with another body (`idempotency_key_reused`).",
        "validation",
        "Invalid request",
        "the request is invalid",
    ),
    (
        "TooLarge",
        413,
        "The body exceeds the size limit.",
        "payload_too_large",
        "Body too large",
        "the request body is larger than 65536 bytes",
    ),
    (
        "RateLimited",
        429,
        "Over the caller's quota; see Retry-After.",
        "rate_limited",
        "Too many requests",
        "rate limit exceeded; retry after the time in Retry-After",
    ),
    (
        "Unavailable",
        503,
        "Not ready, or the read model did not reach `min_position` in time; retry (see Retry-After).",
        "unavailable",
        "Unavailable",
        "the service is not ready",
    ),
    (
        "Timeout",
        504,
        "The command's result did not arrive in time; retry with the same Idempotency-Key.",
        "command_timeout",
        "Result not in time",
        "the command 0193a5c2-7d1e-7c3a-9f00-00000000000a was sent but its result did not arrive in time; retry with the same Idempotency-Key",
    ),
    (
        "MethodNotAllowed",
        405,
        "The path exists but not with this method.",
        "method_not_allowed",
        "Method not allowed",
        "method DELETE is not allowed on /v1/accounts",
    ),
];

/// The reusable error responses (`#/components/responses/<name>`).
pub(super) fn responses() -> Value {
    let mut responses = Map::new();
    for (name, status, description, code, title, detail) in ERRORS {
        let mut example = json!({
            "type": problem_type(code), "title": title, "status": status, "detail": detail,
        });
        if status == 422 {
            example["errors"] =
                json!([{ "pointer": "/amount", "message": "0 is less than the minimum of 1" }]);
        }
        responses.insert(
            name.into(),
            json!({
                "description": description,
                "content": { "application/problem+json": {
                    "schema": { "$ref": "#/components/schemas/Problem" },
                    "example": example,
                }},
            }),
        );
    }
    Value::Object(responses)
}

/// The errors an operation can answer besides those its annotation lists.
fn standard_errors(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    if !path.starts_with("/v1/") {
        return Vec::new();
    }
    let mut errors = vec![
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("422", "Invalid"),
        ("429", "RateLimited"),
        ("503", "Unavailable"),
    ];
    // commands name accounts (in the path or the body) that may not exist
    if path.contains('{') || method == "post" {
        errors.push(("404", "NotFound"));
    }
    if method == "post" || method == "put" {
        errors.extend([("409", "Conflict"), ("413", "TooLarge"), ("504", "Timeout")]);
    }
    errors
}

/// Whether the operation is a command (accepts `Idempotency-Key`).
fn is_command(method: &str, path: &str) -> bool {
    (method == "post" || method == "put")
        && path.starts_with("/v1/")
        && !path.starts_with("/v1/admin/")
}

/// Adds the standard errors, security and headers to every operation of `paths`.
pub(super) fn decorate_operations(paths: &mut Map<String, Value>) {
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            decorate(method, path, operation);
        }
    }
}

fn decorate(method: &str, path: &str, operation: &mut Map<String, Value>) {
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        for (status, name) in standard_errors(method, path) {
            responses
                .entry(status)
                .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
        }
    }
    if path.starts_with("/v1/") {
        operation.insert("security".into(), json!([{ "bearer": [] }]));
    }
    if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
        parameters.iter_mut().for_each(|p| constrain(path, p));
    }
    if is_command(method, path) {
        let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
        if let Some(list) = parameters.as_array_mut() {
            list.push(idempotency_key());
        }
    }
}

/// The formats of the parameters shared by many endpoints, so every operation documents them
/// alike: position tokens, page cursors, projection names.
fn constrain(path: &str, parameter: &mut Value) {
    let name = parameter["name"].as_str().unwrap_or_default();
    let schema = match name {
        "cursor" if !path.starts_with("/v1/audit/security") => {
            json!({ "type": "string", "pattern": "^([0-9a-f]{2})+$", "maxLength": 128 })
        }
        "name" if path.starts_with("/v1/admin/projections/") => {
            json!({ "type": "string", "enum": ["ledger", "archive"] })
        }
        _ => return,
    };
    if let Some(map) = parameter.as_object_mut() {
        map.insert("schema".into(), schema);
    }
}

fn idempotency_key() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "Makes retries safe: the same key with the same body gets the first \
            answer again (status and body, also after a restart, for 24 h by default); the same \
            key with another body gets 422; while the first attempt is in progress, 409. \
            Keys are scoped per caller (token `sub`). 1 to 255 visible ASCII characters.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7E]+$" },
        "example": "order-4711-payment"
    })
}
