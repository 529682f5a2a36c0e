//! The web console at `/console`: plain HTML, CSS and JavaScript modules embedded in the binary
//! (`include_str!`), served without a token. The page is a client of `/v1` like any other: the
//! operator enters a bearer token once, the browser keeps it in `sessionStorage` (gone with the
//! tab) and sends it on every API call, so the console sees exactly what the role matrix lets
//! that token see. Nothing is fetched from another origin; the Content-Security-Policy of these
//! answers ([`crate::security::headers`]) allows scripts, styles and connections to this origin
//! only, and no inline script or style.
//!
//! `/console` and `/console/` answer the page; `/console/<asset>` one of [`ASSETS`]; anything
//! else under `/console/` is a 404 problem like every unknown route.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::problem::ApiError;

/// Why the console cannot answer a request.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console has no asset {0}")]
    UnknownAsset(String),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::UnknownAsset(name) => {
                ApiError::RouteNotFound(format!("/console/{name}")).into_response()
            }
        }
    }
}

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

/// Every file of the console.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("plot.js", JS),
    asset!("pages/common.js", JS),
    asset!("pages/accounts.js", JS),
    asset!("pages/account.js", JS),
    asset!("pages/history.js", JS),
    asset!("pages/transfer.js", JS),
    asset!("pages/operations.js", JS),
    asset!("pages/security.js", JS),
];

/// The console's routes (no token: the page itself holds no data).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*name}", get(asset))
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn asset(Path(name): Path<String>) -> Result<Response, ConsoleError> {
    find(&name)
        .map(serve)
        .ok_or(ConsoleError::UnknownAsset(name))
}

/// The asset called `name`, if the console has one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn serve(asset: &Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // the assets change with the binary: revalidate rather than keep a stale console
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_loads_is_embedded_and_nothing_inline_or_foreign() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{}", asset.name);
            // the SVG namespace is a name, not a place anything is fetched from
            let body = asset.body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{} names another origin",
                asset.name
            );
        }
        let page = ASSETS[0].body;
        assert!(page.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        assert_eq!(
            page.matches("<script").count(),
            1,
            "one script, no inline one"
        );
        assert!(!page.contains("style="), "no inline style");
        // every module imported by another is served
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .split('\'')
                    .nth(1)
                    .unwrap_or_else(|| panic!("{}: {line}", asset.name));
                let base = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                let resolved = resolve(base, target);
                assert!(find(&resolved).is_some(), "{} imports {target}", asset.name);
            }
        }
        assert!(find("../Cargo.toml").is_none());
    }

    /// `target` (`./x.js`, `../x.js`) relative to the folder `base`.
    fn resolve(base: &str, target: &str) -> String {
        let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
        for part in target.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
