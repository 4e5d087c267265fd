//! The web console: the built pages of `console/` (see its README), compiled into the binary and
//! served at `/` and `/console/*`, so `streampulse run` alone gives a browser UI.
//!
//! The pages hold no data and need no token: everything they show they fetch from the API with
//! the token the user enters, under the same roles as any client. Each answer carries a Content
//! Security Policy that allows scripts, styles and connections from this origin only, so the
//! console cannot be made to load or send anything elsewhere, and `frame-ancestors 'none'` so no
//! other site can frame it. This module must never serve a file that is not in [`ASSETS`].

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// The built console: (name under `/console/`, media type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../console/dist/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../console/dist/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../../console/dist/index.html");

/// Same-origin only, no inline code or styles (the page sets styles through the CSSOM, which the
/// policy does not restrict). `'self'` in `connect-src` covers the WebSocket of the same host and
/// port.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the console's page.
pub async fn index() -> Response {
    asset_response("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media, bytes)) => asset_response(media, bytes),
        None => Problem::new(
            StatusCode::NOT_FOUND,
            format!(
                "the console has no file '{}'",
                file.chars().take(100).collect::<String>()
            ),
        )
        .into_response(),
    }
}

fn asset_response(media: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: revalidate rather than keep a stale console after an
    // upgrade (they are small and served from memory).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_are_served() {
        let page = std::str::from_utf8(INDEX).expect("utf-8");
        for (name, _, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name} is empty");
        }
        for needed in [
            "/console/app.js",
            "/console/app.css",
            "/console/favicon.svg",
        ] {
            assert!(page.contains(needed), "index.html does not load {needed}");
        }
        // Nothing from another origin: the CSP would block it anyway.
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
