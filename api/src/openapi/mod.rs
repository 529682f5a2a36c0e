//! The OpenAPI 3.1 description of the HTTP API, generated from the code.
//!
//! Handlers carry `#[utoipa::path(...)]` and are registered with `.routes(routes!(handler))` in
//! [`crate::routes`], so registering a route and documenting it are one step. This module then
//! completes the generated document with what every operation shares (see [`common`]): the
//! bearer security scheme, the problem+json error responses with examples, the
//! `Idempotency-Key` header of the commands, and the command body schemas, embedded verbatim from
//! `schemas/commands/` (the files [`crate::validation`] checks requests against).
//!
//! The document is served at `/openapi.json`, browsable at `/docs` (Swagger UI, vendored into
//! the binary), and checked in as `schemas/openapi.json`; `logbook openapi` prints it.
//!
//! To document a new endpoint: annotate the handler with `#[utoipa::path(get, path = "/v1/...",
//! tag = "...", params(...), responses((status = 200, body = T, example = json!(...))))]`,
//! register it with `.routes(routes!(module::handler))`, then regenerate the checked-in file with
//! `UPDATE_OPENAPI=1 cargo test -p logbook-api openapi` (or `logbook openapi`). Only the success
//! responses and endpoint-specific errors need listing: the common errors are added here.

mod common;

use axum::Router;
use serde_json::{Map, Value, json};
use utoipa_swagger_ui::SwaggerUi;

use crate::validation::CommandSchema;

/// Version of the API contract shown in the document (`/v1` paths).
pub const API_VERSION: &str = "1.0.0";

/// The complete OpenAPI document as JSON.
pub fn document() -> Value {
    let (_, generated) = crate::routes::api_routes().split_for_parts();
    let mut document = match serde_json::to_value(generated) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    complete(&mut document);
    Value::Object(document)
}

/// The document as checked in: pretty JSON with a trailing newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `/openapi.json` and the Swagger UI at `/docs` (assets served from the binary).
pub fn docs_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", document())
        .into()
}

fn complete(document: &mut Map<String, Value>) {
    document.insert("openapi".into(), json!("3.1.0"));
    document.insert(
        "info".into(),
        json!({
            "title": "Logbook API",
            "version": API_VERSION,
            "description": "Event-sourced money ledger. Version 1 of the contract: every \
                endpoint lives under `/v1`; a breaking change would be served as `/v2` beside it. \
                Errors are RFC 9457 `application/problem+json` with a stable `type` URI \
                (`urn:logbook:problem:<code>`). Commands accept an `Idempotency-Key`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        }),
    );
    document.insert(
        "servers".into(),
        json!([{ "url": "/", "description": "this server (paths carry /v1)" }]),
    );
    let mut components = take_object(document, "components");
    let mut schemes = take_object(&mut components, "securitySchemes");
    schemes.insert(
        "bearer".into(),
        json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A token from `logbook token --role <role> --sub <sub>`." }),
    );
    components.insert("securitySchemes".into(), Value::Object(schemes));
    let mut schemas = take_object(&mut components, "schemas");
    for schema in CommandSchema::ALL {
        schemas.insert(schema.component().into(), embedded(schema));
    }
    schemas.insert("Problem".into(), common::problem_schema());
    components.insert("schemas".into(), Value::Object(schemas));
    components.insert("responses".into(), common::responses());
    document.insert("components".into(), Value::Object(components));
    let mut paths = take_object(document, "paths");
    common::decorate_operations(&mut paths);
    document.insert("paths".into(), Value::Object(paths));
}

/// A command schema file as a component: the file itself, less the keywords that only make
/// sense at the top of a standalone document.
fn embedded(schema: CommandSchema) -> Value {
    let mut value = schema.document().unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        map.remove("$schema");
        map.remove("$id");
    }
    value
}

/// Takes the object at `key` out of `map` (an empty one when absent); put it back when done.
fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.remove(key) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_responses_with_examples() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.keys().any(|p| p.starts_with("/v1/")));
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let responses = operation["responses"].as_object().expect("responses");
                assert!(!responses.is_empty(), "{method} {path}");
                if path.starts_with("/v1/") {
                    assert!(responses.contains_key("401"), "{method} {path}");
                    assert_eq!(operation["security"], json!([{ "bearer": [] }]));
                }
            }
        }
    }

    /// Every command (the routes behind the idempotency middleware, PUT included) documents
    /// the answers a command can give and takes an `Idempotency-Key`.
    #[test]
    fn every_command_documents_conflicts_timeouts_and_the_idempotency_key() {
        let document = document();
        let commands = [
            ("post", "/v1/accounts"),
            ("post", "/v1/accounts/{id}/deposits"),
            ("post", "/v1/accounts/{id}/close"),
            ("put", "/v1/accounts/{id}/overdraft-limit"),
            ("post", "/v1/transfers"),
        ];
        for (method, path) in commands {
            let operation = &document["paths"][path][method];
            for status in ["409", "413", "504"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} lacks {status}"
                );
            }
            let parameters = operation["parameters"].as_array().expect("parameters");
            assert!(
                parameters.iter().any(|p| p["name"] == "Idempotency-Key"),
                "{method} {path} lacks Idempotency-Key"
            );
        }
    }

    #[test]
    fn command_bodies_are_the_schema_files() {
        let document = document();
        for schema in CommandSchema::ALL {
            let mut file = schema.document().expect("json");
            let map = file.as_object_mut().expect("object");
            map.remove("$schema");
            map.remove("$id");
            assert_eq!(document["components"]["schemas"][schema.component()], file);
        }
        let open = &document["paths"]["/v1/accounts"]["post"]["requestBody"];
        assert_eq!(
            open["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/OpenAccount"
        );
    }

    /// Fails when the code's document drifts from `schemas/openapi.json`;
    /// `UPDATE_OPENAPI=1 cargo test -p logbook-api openapi` rewrites the file.
    #[test]
    fn checked_in_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/openapi.json");
        let generated = document_text();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write schemas/openapi.json");
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "schemas/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p logbook-api openapi"
        );
    }
}
