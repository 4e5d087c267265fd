//! The REST client the command-line tools share: a base URL, an optional bearer token, and
//! answers read as JSON, with the server's problem `detail` as the error of a failed call.
//!
//! It never retries: the commands are interactive, and a person can run them again.

use anyhow::Context;
use serde_json::Value;

pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(target: &str, token: Option<String>) -> Self {
        Self {
            base: target.trim_end_matches('/').to_string(),
            token,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// `GET path?query`.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        for (name, value) in query {
            request = request.query(*name, value);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.answer(path, request.call())
    }

    /// `method path` with a JSON body (`POST`, `DELETE`).
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let sent = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(body.to_string())?,
            ),
            None => self.agent.run(request.body(())?),
        };
        self.answer(path, sent)
    }

    fn answer(
        &self,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response = sent.with_context(|| {
            format!(
                "cannot reach {}{path}; is 'streampulse run' running?",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .context("the server's answer is not JSON")?;
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            anyhow::bail!("{path} answered {status}: {detail}");
        }
        Ok(body)
    }
}
